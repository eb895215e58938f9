"""Web Push over REST: the VAPID key, the caller's browser subscriptions, a test push.

==================================  ===============================================================
``GET push/public-key/``            the VAPID application server key; open to anyone
``POST push/subscribe/``            save this browser's ``PushSubscription`` (upsert by endpoint)
``POST push/unsubscribe/``          delete it, by endpoint
``GET push/subscriptions/``         the caller's subscriptions, without secrets
``DELETE push/subscriptions/<id>/`` delete one
``PUT push/preferences/``           one subscription's category and type switches
``POST push/test/``                 a test push to each of the caller's active subscriptions
==================================  ===============================================================

Every route answers ``404 {"detail": "Web Push is not configured."}`` while no
channel uses :class:`~django_notify.backends.webpush.WebPushBackend`. Endpoints and
keys are bearer secrets (RFC 8030 section 8.3, RFC 8291 section 2.1): they are
written, never read back, and no message repeats them.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from django.db import IntegrityError, router, transaction
from django.db.models import F
from django.db.models.functions import Coalesce, Greatest
from django.utils import timezone
from django.utils.translation import gettext_lazy as _
from rest_framework import mixins, serializers, status, viewsets
from rest_framework.decorators import action
from rest_framework.exceptions import APIException, NotFound
from rest_framework.permissions import AllowAny, IsAuthenticated
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.throttling import UserRateThrottle

from django_notify.api.parsers import SafeJSONParser
from django_notify.api.preferences import StrictBooleanField, check_categories
from django_notify.exceptions import UnknownNotificationType
from django_notify.models import PushSubscription
from django_notify.models.push import endpoint_digest
from django_notify.push import crypto, endpoints, push_channel
from django_notify.registry import TEST_TYPE, registry
from django_notify.service import notify

if TYPE_CHECKING:
    from collections.abc import Sequence

    from django.db.models import QuerySet

    from django_notify.backends.webpush import WebPushBackend

    _Base = viewsets.GenericViewSet[Any]
else:
    _Base = object

NOT_CONFIGURED = _("Web Push is not configured.")

#: Longest endpoint (or ``oldEndpoint``) read; the SSRF rules may allow less.
ENDPOINT_MAX_LENGTH = 4096

#: Tries of the subscribe upsert when concurrent requests race on the endpoint.
UPSERT_ATTEMPTS = 3

#: Seconds browsers and proxies may cache ``public-key/``; a rotated key shows after this.
PUBLIC_KEY_MAX_AGE = 300


# -- user agents ---------------------------------------------------------------------

#: (token in the User-Agent, browser name), first match wins: Edge and Opera also say Chrome.
_BROWSERS = (
    ("Edg/", "Edge"),
    ("EdgA/", "Edge"),
    ("EdgiOS/", "Edge"),
    ("OPR/", "Opera"),
    ("SamsungBrowser/", "Samsung Internet"),
    ("Firefox/", "Firefox"),
    ("FxiOS/", "Firefox"),
    ("CriOS/", "Chrome"),
    ("Chromium/", "Chromium"),
    ("Chrome/", "Chrome"),
    ("Safari/", "Safari"),
)
#: (token, system); Android says Linux too, so it comes first.
_SYSTEMS = (
    ("Android", "Android"),
    ("iPhone", "iOS"),
    ("iPad", "iPadOS"),
    ("CrOS", "ChromeOS"),
    ("Windows", "Windows"),
    ("Macintosh", "macOS"),
    ("Linux", "Linux"),
)


def browser_label(user_agent: str) -> str:
    """A short name for the browser behind a User-Agent, e.g. ``"Firefox on Android"``; ``""`` if none."""
    if not user_agent:
        return ""
    browser = next((name for token, name in _BROWSERS if token in user_agent), "")
    system = next((name for token, name in _SYSTEMS if token in user_agent), "")
    if browser and system:
        return f"{browser} on {system}"
    return browser or system or str(_("Other browser"))


# -- serializers ---------------------------------------------------------------------


def _secret_free(message: str, value: str) -> str:
    # The validators promise not to echo the value; a message that did would leak a
    # secret. (A value of a few characters is no secret, and may occur by chance.)
    return str(_("This value is not valid.")) if len(value) >= 8 and value in message else message


class SubscriptionKeysSerializer(serializers.Serializer[Any]):
    """``keys`` of ``PushSubscription.toJSON()``; stored as unpadded base64url."""

    p256dh = serializers.CharField(max_length=256, trim_whitespace=False)
    auth = serializers.CharField(max_length=256, trim_whitespace=False)

    def validate_p256dh(self, value: str) -> str:
        try:
            return crypto.b64url_encode(crypto.validate_p256dh(value))
        except ValueError as exc:
            raise serializers.ValidationError(_secret_free(str(exc), value)) from None

    def validate_auth(self, value: str) -> str:
        try:
            return crypto.b64url_encode(crypto.validate_auth(value))
        except ValueError as exc:
            raise serializers.ValidationError(_secret_free(str(exc), value)) from None


class SubscriptionJSONSerializer(serializers.Serializer[Any]):
    """``PushSubscription.toJSON()``: ``{"endpoint", "expirationTime", "keys": {"p256dh", "auth"}}``.

    The endpoint must pass the channel's SSRF rules (``context["allowed_hosts"]``).
    Other fields are ignored.
    """

    endpoint = serializers.CharField(max_length=ENDPOINT_MAX_LENGTH)
    expirationTime = serializers.JSONField(  # the browser's name
        required=False,
        allow_null=True,
        default=None,
        help_text="null, or when the push service ends the subscription, in milliseconds since 1970.",
    )
    keys = SubscriptionKeysSerializer()

    def validate_endpoint(self, value: str) -> str:
        return _checked_endpoint(value, self.context["allowed_hosts"])

    def validate_expirationTime(self, value: Any) -> dt.datetime | None:
        if value is None:
            return None
        problem = _("Must be null or a time in milliseconds since 1970-01-01, as PushSubscription.expirationTime.")
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            raise serializers.ValidationError(problem)
        try:
            when = dt.datetime.fromtimestamp(value / 1000, tz=dt.timezone.utc)
        except (OverflowError, OSError, ValueError):
            raise serializers.ValidationError(problem) from None
        if when <= timezone.now():
            raise serializers.ValidationError(_("This subscription has expired already: subscribe again."))
        return when


def _checked_endpoint(value: str, allowed: Sequence[endpoints.AllowedHost]) -> str:
    try:
        endpoints.validate_endpoint(value, allowed)
    except endpoints.EndpointRejected as exc:
        raise serializers.ValidationError(_secret_free(str(exc), value), code=exc.code) from None
    return value


class SubscriptionPreferencesSerializer(serializers.Serializer[Any]):
    """``{"categories": {"<category>": bool}, "types": {"<type key>": bool}}``, for one subscription.

    ``false`` mutes the category or type on that browser. A type that cannot be muted
    on the channel (critical, or the channel is in its ``required_channels``) is
    refused; critical types are sent whatever their category's switch says.
    """

    categories = serializers.DictField(child=StrictBooleanField(), required=False, default=dict)
    types = serializers.DictField(child=StrictBooleanField(), required=False, default=dict)

    def to_internal_value(self, data: Any) -> dict[str, Any]:
        if isinstance(data, Mapping):
            unknown = sorted(set(data) - set(self.fields))
            if unknown:
                message = _("Unknown field. Valid fields: categories, types.")
                raise serializers.ValidationError({key: [message] for key in unknown})
        validated: dict[str, Any] = super().to_internal_value(data)
        return validated

    def validate_categories(self, value: dict[str, bool]) -> dict[str, bool]:
        check_categories(value)
        return value

    def validate_types(self, value: dict[str, bool]) -> dict[str, bool]:
        alias = self.context.get("channel", "")
        errors: dict[str, list[str]] = {}
        for key, enabled in value.items():
            try:
                notification_type = registry.get(key)
            except UnknownNotificationType as exc:
                errors[key] = [str(exc)]
                continue
            if enabled:
                continue
            params = {"type": key, "alias": alias}
            if notification_type.critical:
                errors[key] = [str(_("%(type)s is critical: it cannot be muted.") % params)]
            elif notification_type.is_locked(alias):
                errors[key] = [str(_("%(type)s is locked on for %(alias)s (required_channels).") % params)]
        if errors:
            raise serializers.ValidationError(errors)
        return value


class SubscribeSerializer(serializers.Serializer[Any]):
    """Body of ``POST push/subscribe/``: the subscription wrapped, with optional extras."""

    subscription = SubscriptionJSONSerializer()
    preferences = SubscriptionPreferencesSerializer(required=False)
    oldEndpoint = serializers.CharField(  # the service worker's name
        required=False,
        max_length=ENDPOINT_MAX_LENGTH,
        help_text="The endpoint this subscription replaces (pushsubscriptionchange); one of the caller's or ignored.",
    )


class BareSubscribeSerializer(SubscriptionJSONSerializer):
    """Body of ``POST push/subscribe/``: ``PushSubscription.toJSON()`` itself, with optional extras."""

    preferences = SubscriptionPreferencesSerializer(required=False)
    oldEndpoint = serializers.CharField(required=False, max_length=ENDPOINT_MAX_LENGTH)


class EndpointSerializer(serializers.Serializer[Any]):
    """Body of ``POST push/unsubscribe/``."""

    endpoint = serializers.CharField(max_length=ENDPOINT_MAX_LENGTH)


class SubscriptionPreferencesBodySerializer(serializers.Serializer[Any]):
    """Body of ``PUT push/preferences/``: which subscription (``endpoint`` or ``id``) and its preferences."""

    endpoint = serializers.CharField(required=False, max_length=ENDPOINT_MAX_LENGTH)
    id = serializers.IntegerField(required=False, min_value=1, max_value=2**63 - 1)
    preferences = SubscriptionPreferencesSerializer()

    def validate(self, attrs: dict[str, Any]) -> dict[str, Any]:
        if ("endpoint" in attrs) == ("id" in attrs):
            raise serializers.ValidationError({"non_field_errors": [_("Give either endpoint or id.")]})
        return attrs


class PushSubscriptionSerializer(serializers.ModelSerializer[PushSubscription]):
    """A subscription as its owner sees it: never the endpoint or the keys."""

    browser = serializers.SerializerMethodField(help_text='Short name from the User-Agent, e.g. "Chrome on Android".')

    class Meta:
        model = PushSubscription
        fields = (
            "id",
            "browser",
            "user_agent",
            "is_active",
            "created_at",
            "last_success_at",
            "expiration_time",
            "preferences",
        )
        read_only_fields = fields

    def get_browser(self, obj: PushSubscription) -> str:
        return browser_label(obj.user_agent)


class PublicKeySerializer(serializers.Serializer[Any]):
    public_key = serializers.CharField(help_text="The VAPID public key, base64url: applicationServerKey.")


class PushTestResultSerializer(serializers.Serializer[Any]):
    subscriptions = serializers.IntegerField(help_text="Deliveries queued: one per active subscription.")


# -- storage -------------------------------------------------------------------------


def save_subscription(
    user_id: Any,
    subscription: Mapping[str, Any],
    *,
    vapid_key_id: str,
    user_agent: str = "",
    preferences: Mapping[str, Any] | None = None,
    old_endpoint: str | None = None,
    max_per_user: int,
) -> tuple[PushSubscription, bool]:
    """Store a validated ``subscription`` for ``user_id``; return the row and whether it is new to the user.

    Upsert by endpoint. The same endpoint again updates the keys, user agent and
    expiry and reactivates the row (``preferences`` only if given). An endpoint
    stored for another user moves to this one: the browser is the authority, and
    the old row is deleted, so its pending deliveries are skipped rather than shown
    to the new owner. ``old_endpoint``, if one of this user's, is replaced in place.
    A row new to the user may evict their least recently used ones beyond
    ``max_per_user``. Race-safe: concurrent identical requests leave one row.
    """
    using = router.db_for_write(PushSubscription)
    attempts = UPSERT_ATTEMPTS
    while True:
        attempts -= 1
        try:
            with transaction.atomic(using=using):
                row, new = _upsert(user_id, subscription, vapid_key_id, user_agent, preferences, old_endpoint, using)
                if new:
                    evict_least_recently_used(user_id, keep=row, max_per_user=max_per_user, using=using)
                return row, new
        except IntegrityError:
            # A concurrent request stored this endpoint first: the next round finds its row.
            if not attempts:
                raise


def _upsert(
    user_id: Any,
    subscription: Mapping[str, Any],
    vapid_key_id: str,
    user_agent: str,
    preferences: Mapping[str, Any] | None,
    old_endpoint: str | None,
    using: str,
) -> tuple[PushSubscription, bool]:
    rows = PushSubscription.objects.using(using).select_for_update()
    endpoint = subscription["endpoint"]
    digest = endpoint_digest(endpoint)
    existing = rows.filter(endpoint_sha256=digest).first()
    replaced = None
    if old_endpoint is not None and endpoint_digest(old_endpoint) != digest:
        # Another user's old endpoint is not looked for: nothing is said about it.
        replaced = rows.filter(user=user_id, endpoint_sha256=endpoint_digest(old_endpoint)).first()

    new = False
    if existing is not None and existing.user_id != user_id:
        existing.delete()
        existing = None
    if existing is not None:
        row = existing
        if replaced is not None:
            replaced.delete()
    elif replaced is not None:
        row = replaced
        row.endpoint = endpoint
    else:
        row = PushSubscription(user_id=user_id, endpoint=endpoint)
        new = True
    row.p256dh = subscription["keys"]["p256dh"]
    row.auth = subscription["keys"]["auth"]
    row.expiration_time = subscription.get("expirationTime")
    row.vapid_key_id = vapid_key_id
    row.user_agent = user_agent[:255]
    row.is_active = True
    row.deactivated_at = None
    row.deactivation_reason = ""
    row.failure_count = 0
    if preferences is not None:
        row.preferences = dict(preferences)
    row.save(using=using)
    return row, new


def evict_least_recently_used(user_id: Any, *, keep: PushSubscription, max_per_user: int, using: str) -> int:
    """Delete the user's subscriptions beyond ``max_per_user``, least recently used first; return how many.

    ``keep`` stays. Inactive rows go before active ones; among each, the row used
    longest ago (its last successful push, or its last subscribe) goes first.
    """
    others = PushSubscription.objects.using(using).filter(user=user_id).exclude(pk=keep.pk)
    last_used = Greatest(Coalesce("last_success_at", "updated_at"), "updated_at")
    ranked = others.order_by(F("is_active").desc(), last_used.desc(), "-pk")
    stale = list(ranked.values_list("pk", flat=True)[max(max_per_user - 1, 0) :])
    if stale:
        PushSubscription.objects.using(using).filter(pk__in=stale).delete()
    return len(stale)


# -- views ---------------------------------------------------------------------------


class PushJSONParser(SafeJSONParser):
    """A subscription is a few hundred bytes; preferences for many types a few kilobytes."""

    max_bytes = 64 * 1024


class NoActiveSubscription(APIException):
    status_code = status.HTTP_400_BAD_REQUEST
    default_detail = _("You have no active push subscription: allow notifications in a browser first.")
    default_code = "no_active_subscription"


class PushTestThrottle(UserRateThrottle):
    """``push/test/`` per user: each call sends a real push to every browser of the caller."""

    scope = "django_notify_push_test"
    rate = "5/minute"


class WebPushChannelMixin(_Base):
    """404 ``Web Push is not configured.`` on every action while no channel uses Web Push.

    Checked after authentication and permissions, so an anonymous caller still
    gets 401/403 where the action needs a login.
    """

    def initial(self, request: Request, *args: Any, **kwargs: Any) -> None:
        super().initial(request, *args, **kwargs)
        if push_channel() is None:
            raise NotFound(NOT_CONFIGURED)

    @property
    def push_backend(self) -> WebPushBackend:
        backend = push_channel()
        if backend is None:
            raise NotFound(NOT_CONFIGURED)
        return backend

    def get_push_subscriptions(self) -> QuerySet[PushSubscription]:
        """The caller's subscriptions: every lookup goes through this, so another user's is a 404."""
        return PushSubscription.objects.filter(user=self.request.user.pk)

    def get_queryset(self) -> QuerySet[PushSubscription]:
        return self.get_push_subscriptions()

    def get_by_endpoint(self, endpoint: str) -> PushSubscription:
        """The caller's subscription to ``endpoint``; 404 if they have none."""
        row = self.get_push_subscriptions().filter(endpoint_sha256=endpoint_digest(endpoint)).first()
        if row is None:
            raise NotFound(_("No push subscription of yours has this endpoint."))
        return row


class PublicKeyMixin(WebPushChannelMixin):
    """``GET push/public-key/``: ``{"public_key": ...}``, the ``applicationServerKey``.

    Public information, so no login, no session read and ``Cache-Control: public``.
    """

    @action(
        detail=False,
        methods=["get"],
        url_path="public-key",
        permission_classes=[AllowAny],
        authentication_classes=[],
        serializer_class=PublicKeySerializer,
    )
    def public_key(self, request: Request) -> Response:
        data = PublicKeySerializer({"public_key": self.push_backend.signer.public_key}).data
        return Response(data, headers={"Cache-Control": f"public, max-age={PUBLIC_KEY_MAX_AGE}"})


class SubscribeMixin(WebPushChannelMixin):
    """``POST push/subscribe/``: 201 with the subscription when new to the caller, else 200.

    Override :meth:`perform_subscribe` to change how a valid body is stored.
    """

    @action(detail=False, methods=["post"], serializer_class=SubscribeSerializer)
    def subscribe(self, request: Request) -> Response:
        backend = self.push_backend
        wrapped = isinstance(request.data, Mapping) and "subscription" in request.data
        serializer_class = SubscribeSerializer if wrapped else BareSubscribeSerializer
        context = {"allowed_hosts": backend.allowed_hosts, "channel": backend.alias}
        body = serializer_class(data=request.data, context=context)
        body.is_valid(raise_exception=True)
        row, new = self.perform_subscribe(body.validated_data, wrapped=wrapped)
        code = status.HTTP_201_CREATED if new else status.HTTP_200_OK
        return Response(PushSubscriptionSerializer(row).data, status=code)

    def perform_subscribe(self, data: Mapping[str, Any], *, wrapped: bool) -> tuple[PushSubscription, bool]:
        backend = self.push_backend
        return save_subscription(
            self.request.user.pk,
            data["subscription"] if wrapped else data,
            vapid_key_id=backend.signer.key_id,
            user_agent=self.request.headers.get("User-Agent", ""),
            preferences=data.get("preferences"),
            old_endpoint=data.get("oldEndpoint"),
            max_per_user=backend.options["max_subscriptions_per_user"],
        )


class UnsubscribeMixin(WebPushChannelMixin):
    """``POST push/unsubscribe/`` ``{"endpoint": ...}``: delete the caller's row; 204, or 404."""

    @action(detail=False, methods=["post"], serializer_class=EndpointSerializer)
    def unsubscribe(self, request: Request) -> Response:
        body = EndpointSerializer(data=request.data)
        body.is_valid(raise_exception=True)
        row = self.get_by_endpoint(body.validated_data["endpoint"])
        row.delete()
        return Response(status=status.HTTP_204_NO_CONTENT)


class SubscriptionPreferencesMixin(WebPushChannelMixin):
    """``PUT push/preferences/``: replace one subscription's preferences; 200 with the subscription."""

    @action(
        detail=False,
        methods=["put"],
        url_path="preferences",
        url_name="preferences",
        serializer_class=SubscriptionPreferencesBodySerializer,
    )
    def subscription_preferences(self, request: Request) -> Response:
        context = {"channel": self.push_backend.alias}
        body = SubscriptionPreferencesBodySerializer(data=request.data, context=context)
        body.is_valid(raise_exception=True)
        data = body.validated_data
        if "id" in data:
            row = self.get_push_subscriptions().filter(pk=data["id"]).first()
            if row is None:
                raise NotFound(_("No push subscription of yours has this id."))
        else:
            row = self.get_by_endpoint(data["endpoint"])
        row.preferences = dict(data["preferences"])
        row.save(update_fields=["preferences", "updated_at"])
        return Response(PushSubscriptionSerializer(row).data)

    def get_object(self) -> PushSubscription:
        # The route has no id (the body names the subscription), but DRF's OPTIONS
        # metadata asks a PUT route for its object: say there is none, not a 500.
        raise NotFound(_("This route names the subscription in its body: endpoint or id."))


class PushTestMixin(WebPushChannelMixin):
    """``POST push/test/``: queue the ``django_notify.test`` notification to the caller's active subscriptions.

    202 ``{"subscriptions": n}``; 400 without an active subscription; throttled by
    :class:`PushTestThrottle`.
    """

    @action(
        detail=False, methods=["post"], throttle_classes=[PushTestThrottle], serializer_class=PushTestResultSerializer
    )
    def test(self, request: Request) -> Response:
        backend = self.push_backend
        if not self.get_push_subscriptions().filter(is_active=True).exists():
            raise NoActiveSubscription()
        result = notify(TEST_TYPE, request.user, channels=[backend.alias])
        data = PushTestResultSerializer({"subscriptions": result.deliveries}).data
        return Response(data, status=status.HTTP_202_ACCEPTED)


class PushViewSet(
    PublicKeyMixin,
    SubscribeMixin,
    UnsubscribeMixin,
    SubscriptionPreferencesMixin,
    PushTestMixin,
    viewsets.GenericViewSet,  # type: ignore[type-arg]
):
    """``push/``: the VAPID key, subscribe, unsubscribe, per-subscription preferences, a test push."""

    permission_classes = [IsAuthenticated]
    parser_classes = [PushJSONParser]


class PushSubscriptionViewSet(
    WebPushChannelMixin,
    mixins.ListModelMixin,
    mixins.DestroyModelMixin,
    viewsets.GenericViewSet,  # type: ignore[type-arg]
):
    """``push/subscriptions/``: the caller's subscriptions (at most ``max_subscriptions_per_user``); delete one."""

    serializer_class = PushSubscriptionSerializer
    permission_classes = [IsAuthenticated]
    parser_classes = [PushJSONParser]
    pagination_class = None
    lookup_value_regex = "[0-9]{1,18}"

    def get_queryset(self) -> QuerySet[PushSubscription]:
        return self.get_push_subscriptions().order_by("-created_at", "-pk")


__all__ = [
    "BareSubscribeSerializer",
    "EndpointSerializer",
    "NoActiveSubscription",
    "PublicKeyMixin",
    "PushJSONParser",
    "PushSubscriptionSerializer",
    "PushSubscriptionViewSet",
    "PushTestThrottle",
    "PushViewSet",
    "SubscribeMixin",
    "SubscribeSerializer",
    "SubscriptionJSONSerializer",
    "SubscriptionPreferencesBodySerializer",
    "SubscriptionPreferencesMixin",
    "SubscriptionPreferencesSerializer",
    "PushTestMixin",
    "UnsubscribeMixin",
    "WebPushChannelMixin",
    "browser_label",
    "evict_least_recently_used",
    "save_subscription",
]

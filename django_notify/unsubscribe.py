"""One-click unsubscribe links for email (RFC 8058).

Each email that can be muted carries ``List-Unsubscribe: <https://…/unsubscribe/<token>/>``
and ``List-Unsubscribe-Post: List-Unsubscribe=One-Click``. The token is signed
(``SECRET_KEY``, salt ``"django_notify.unsubscribe"``), carries a timestamp and is
accepted for ``UNSUBSCRIBE_TOKEN_MAX_AGE_DAYS``. It names the recipient, the channel
and what to turn off: the message's category (``UNSUBSCRIBE_SCOPE = "category"``,
the default) or its type, and the notification and delivery it came with, so the
change is recorded against them. Types the recipient cannot mute on the channel
(critical ones, or ``required_channels``) get no link: it could not work.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import timedelta
from typing import TYPE_CHECKING, Any

from django.contrib.auth import get_user_model
from django.core import signing
from django.core.exceptions import ValidationError
from django.core.signals import setting_changed
from django.db import router, transaction
from django.dispatch import receiver
from django.urls import NoReverseMatch, get_script_prefix, get_urlconf, reverse

from django_notify.conf import notify_settings
from django_notify.exceptions import BadUnsubscribeToken
from django_notify.preferences import RecipientPreferences, specificity
from django_notify.registry import registry
from django_notify.sites import absolute_url, base_url

if TYPE_CHECKING:
    from django_notify.models import Delivery, Preference
    from django_notify.registry import NotificationType

logger = logging.getLogger(__name__)

#: The signing salt: a token for another purpose never passes as an unsubscribe token.
SALT = "django_notify.unsubscribe"

#: Longest token :func:`read_token` looks at.
MAX_TOKEN_LENGTH = 1000


@dataclass(frozen=True)
class UnsubscribeScope:
    """What one unsubscribe link turns off: ``categories`` or ``types`` of ``channel`` for a user."""

    user_id: str
    channel: str
    categories: tuple[str, ...] = ()
    types: tuple[str, ...] = ()
    notification_id: int | None = None
    delivery_id: int | None = None


def _signer() -> signing.TimestampSigner:
    return signing.TimestampSigner(salt=SALT)


def make_token(scope: UnsubscribeScope) -> str:
    """Sign ``scope`` into a URL-safe token."""
    payload: dict[str, Any] = {"u": scope.user_id, "c": scope.channel}
    if scope.categories:
        payload["k"] = list(scope.categories)
    if scope.types:
        payload["t"] = list(scope.types)
    if scope.notification_id is not None:
        payload["n"] = scope.notification_id
    if scope.delivery_id is not None:
        payload["d"] = scope.delivery_id
    return _signer().sign_object(payload, compress=True)


def read_token(token: str, max_age: timedelta | None = None) -> UnsubscribeScope:
    """Check a token and return its scope; raise :class:`BadUnsubscribeToken` if it is not valid."""
    if max_age is None:
        max_age = timedelta(days=notify_settings.UNSUBSCRIBE_TOKEN_MAX_AGE_DAYS)
    if not isinstance(token, str) or not token or len(token) > MAX_TOKEN_LENGTH:
        raise BadUnsubscribeToken("This unsubscribe link is not valid.")
    try:
        payload = _signer().unsign_object(token, max_age=max_age)
    except signing.SignatureExpired:
        raise BadUnsubscribeToken("This unsubscribe link has expired.", expired=True) from None
    except (signing.BadSignature, ValueError, UnicodeDecodeError):
        raise BadUnsubscribeToken("This unsubscribe link is not valid.") from None

    def strings(key: str) -> tuple[str, ...]:
        value = payload.get(key, [])
        if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
            raise BadUnsubscribeToken("This unsubscribe link is not valid.")
        return tuple(value)

    def optional_id(key: str) -> int | None:
        value = payload.get(key)
        if value is not None and not (isinstance(value, int) and not isinstance(value, bool)):
            raise BadUnsubscribeToken("This unsubscribe link is not valid.")
        return value

    if not isinstance(payload, dict) or not isinstance(payload.get("u"), str) or not isinstance(payload.get("c"), str):
        raise BadUnsubscribeToken("This unsubscribe link is not valid.")
    scope = UnsubscribeScope(
        user_id=payload["u"],
        channel=payload["c"],
        categories=strings("k"),
        types=strings("t"),
        notification_id=optional_id("n"),
        delivery_id=optional_id("d"),
    )
    if not scope.categories and not scope.types:
        raise BadUnsubscribeToken("This unsubscribe link is not valid.")
    return scope


def scope_for(deliveries: Sequence[Delivery], types: Sequence[NotificationType]) -> UnsubscribeScope | None:
    """The scope of the link of an email carrying ``deliveries`` (one, or a digest's items).

    ``types`` are the deliveries' notification types. ``None`` if every one of them
    is locked on the channel, so no preference could stop the email.
    """
    if not deliveries:
        return None
    first = deliveries[0]
    channel = first.channel
    mutable = [t for t in types if not t.is_locked(channel)]
    if not mutable:
        return None
    by_type = notify_settings.UNSUBSCRIBE_SCOPE == "type"
    return UnsubscribeScope(
        user_id=str(first.notification.recipient_id),
        channel=channel,
        categories=() if by_type else tuple(sorted({t.category for t in mutable})),
        types=tuple(sorted({t.key for t in mutable})) if by_type else (),
        notification_id=first.notification_id,
        delivery_id=first.pk,
    )


def unsubscribe_url(scope: UnsubscribeScope) -> str:
    """The absolute URL of the unsubscribe endpoint for ``scope``.

    Raises ``NoReverseMatch`` if ``django_notify.urls`` is not included (check W051 says so).
    """
    # reverse() costs more than signing the token: build the URL around a placeholder
    # once per URLconf, script prefix and site address, then only put the token in.
    key = (get_urlconf(), get_script_prefix(), base_url())
    template = _url_templates.get(key)
    if template is None:
        template = absolute_url(reverse("django_notify:unsubscribe", args=[_PLACEHOLDER]))
        _url_templates[key] = template
    return template.replace(_PLACEHOLDER, make_token(scope))


# Token characters are base64url and ":", so this never appears in one.
_PLACEHOLDER = "dn-unsubscribe-token"
_url_templates: dict[tuple[Any, str, str], str] = {}


@receiver(setting_changed)
def _forget_url_templates(*, setting: str, **kwargs: Any) -> None:
    if setting in {"ROOT_URLCONF", "DJANGO_NOTIFY", "FORCE_SCRIPT_NAME", "INSTALLED_APPS", "SITE_ID"}:
        _url_templates.clear()


def unsubscribe_link(deliveries: Sequence[Delivery], types: Sequence[NotificationType]) -> str | None:
    """The one-click URL for an email carrying ``deliveries``, or ``None`` when there is none to give."""
    scope = scope_for(deliveries, types)
    if scope is None:
        return None
    try:
        return unsubscribe_url(scope)
    except NoReverseMatch:
        return None


# -- applying a link -----------------------------------------------------------------

#: ``(channel, category, type)`` of a :class:`~django_notify.models.Preference`; blank is "any".
RuleScope = tuple[str, str, str]


def recipient(scope: UnsubscribeScope) -> Any:
    """The user ``scope`` names; :class:`BadUnsubscribeToken` if they no longer exist."""
    try:
        user = get_user_model()._default_manager.filter(pk=scope.user_id).first()
    except (ValueError, TypeError, ValidationError):
        # A primary key of another shape than this user model's (the model was swapped).
        user = None
    if user is None:
        raise BadUnsubscribeToken("This unsubscribe link is not valid.")
    return user


def covered_types(scope: UnsubscribeScope) -> list[NotificationType]:
    """The registered types ``scope`` turns off on its channel, locked ones included.

    A category covers its types sent on the channel; a key no longer registered is left out.
    """
    found = {t.key: t for t in registry if t.category in scope.categories and scope.channel in t.get_channels()}
    found.update({key: registry.get(key) for key in scope.types if key in registry})
    return sorted(found.values(), key=lambda t: (t.category, t.key))


def still_sent(scope: UnsubscribeScope) -> list[NotificationType]:
    """The types of ``scope`` no preference can stop on its channel (critical or required there)."""
    return [t for t in covered_types(scope) if t.is_locked(scope.channel)]


class _Rules:
    """One user's preference rows, changed one scope at a time inside a transaction."""

    def __init__(self, user_id: Any, using: str) -> None:
        from django_notify.models import Preference

        self.user_id = user_id
        self.using = using
        self.rows: dict[RuleScope, Preference] = {
            (row.channel, row.category, row.type): row
            for row in Preference.objects.using(using).filter(user_id=user_id)
        }
        self.changed = False

    def resolved(self) -> RecipientPreferences:
        return RecipientPreferences(rules=[(specificity(row), row) for row in self.rows.values()])

    def set_enabled(self, scope: RuleScope, enabled: bool | None) -> None:
        """Store ``enabled`` on the row of ``scope``, keeping its ``frequency``.

        A row left setting nothing is deleted, as the settings API leaves none.
        """
        from django_notify.models import Preference

        row = self.rows.get(scope)
        if (row.enabled if row is not None else None) is enabled:
            return
        channel, category, type_key = scope
        rows = Preference.objects.using(self.using).filter(
            user_id=self.user_id, channel=channel, category=category, type=type_key
        )
        if enabled is None and row is not None and not row.frequency:
            rows.delete()
            del self.rows[scope]
        else:
            # update_or_create: a row a concurrent request just created is updated, not duplicated.
            self.rows[scope], _created = Preference.objects.using(self.using).update_or_create(
                user_id=self.user_id, channel=channel, category=category, type=type_key, defaults={"enabled": enabled}
            )
        self.changed = True

    def outrank(self, notification_type: NotificationType, channel: str) -> None:
        """Make sure ``notification_type`` is off on ``channel`` after its type or category was switched off.

        A more specific rule may still switch it on (a preference center that saves
        every type sets one per type). Such a rule for this channel is cleared; one
        for every channel is outranked by the same rule for this channel. Each step
        removes a rule in the way or adds one that wins, so this ends.
        """
        while True:
            rule = self.resolved().rule_for(channel, notification_type.category, notification_type.key, "enabled")
            if rule is None or not rule.enabled:
                return
            if rule.channel == channel:
                self.set_enabled((rule.channel, rule.category, rule.type), None)
            else:
                self.set_enabled((channel, rule.category, rule.type), False)


def apply(scope: UnsubscribeScope, *, method: str) -> bool:
    """Turn off what ``scope`` names; ``True`` if that changed anything, ``False`` if it was off already.

    A category gets ``Preference(channel, category)``, a type ``Preference(channel,
    type=key)`` (the row the settings API writes for it, so a user can switch it back
    there), each with ``enabled=False``. A change is recorded as an ``unsubscribed``
    :class:`~django_notify.models.EngagementEvent` of the notification the link came
    with, if it still exists. ``method`` (``"one-click"``, ``"form"``) goes into the
    event. Raises :class:`BadUnsubscribeToken` if the user no longer exists.
    """
    from django_notify.models import Preference

    user = recipient(scope)
    channel = scope.channel
    with transaction.atomic(using=router.db_for_write(Preference)):
        rules = _Rules(user.pk, router.db_for_write(Preference))
        for category in scope.categories:
            rules.set_enabled((channel, category, ""), False)
        for key in scope.types:
            rules.set_enabled((channel, "", key), False)
        for notification_type in covered_types(scope):
            if not notification_type.is_locked(channel):
                rules.outrank(notification_type, channel)
        if rules.changed:
            _record(scope, method)
    if rules.changed:
        logger.info(
            "User %s unsubscribed from %s on %s (%s).",
            user.pk,
            ", ".join([*scope.categories, *scope.types]),
            channel,
            method,
        )
    return rules.changed


def resubscribe(scope: UnsubscribeScope) -> bool:
    """Undo :func:`apply`: clear the switches it sets; ``True`` if that changed anything.

    Only rows for the link's channel are touched, so a type the user had switched
    off on its own stays off after undoing a category. Raises
    :class:`BadUnsubscribeToken` if the user no longer exists.
    """
    from django_notify.models import Preference

    user = recipient(scope)
    channel = scope.channel
    with transaction.atomic(using=router.db_for_write(Preference)):
        rules = _Rules(user.pk, router.db_for_write(Preference))
        switched: list[RuleScope] = [(channel, category, "") for category in scope.categories]
        for key in scope.types:
            category = registry.get(key).category if key in registry else ""
            # The second is the row apply() adds when a rule for every channel was in the way.
            switched += [(channel, "", key), (channel, category, key)]
        for rule_scope in switched:
            row = rules.rows.get(rule_scope)
            if row is not None and row.enabled is False:
                rules.set_enabled(rule_scope, None)
    if rules.changed:
        logger.info(
            "User %s undid unsubscribing from %s on %s.", user.pk, ", ".join([*scope.categories, *scope.types]), channel
        )
    return rules.changed


def _record(scope: UnsubscribeScope, method: str) -> None:
    from django_notify.models import Delivery, EngagementEvent, Notification

    using = router.db_for_write(EngagementEvent)
    if scope.notification_id is None:
        return
    # The event needs its notification; retention may have deleted it (or the delivery) since.
    notification = Notification.objects.using(using).filter(pk=scope.notification_id).only("type").first()
    if notification is None:
        return
    delivery_id = scope.delivery_id
    if delivery_id is not None and not Delivery.objects.using(using).filter(pk=delivery_id).exists():
        delivery_id = None
    EngagementEvent.objects.using(using).create(
        notification=notification,
        delivery_id=delivery_id,
        type=notification.type,
        channel=scope.channel,
        kind=EngagementEvent.Kind.UNSUBSCRIBED,
        metadata={"categories": list(scope.categories), "types": list(scope.types), "method": method},
    )

"""Web Push (RFC 8030) with VAPID (RFC 8292) and ``aes128gcm`` payloads (RFC 8291).

One batch is sent concurrently over kept-alive connections: the payloads are
built first, then :func:`django_notify.push.sender.send_all` encrypts and POSTs
them, many in flight at once (each is encrypted as it is sent, while the others
wait for their answers), and every answer is classified on its own
(reliability.md, section 1.7):

========================  ===========  ============================================
Answer                    Outcome      Subscription
========================  ===========  ============================================
2xx                       sent         ``last_success_at``
404, 410                  gone         deactivated (if still on that endpoint)
429, 5xx, timeouts        retry        kept (``Retry-After`` honoured)
413                       failed       kept; the payload cap is too high for it
400, other 4xx            failed       kept
401, 403                  failed       deactivated if made with another VAPID key
3xx                       failed       kept; redirects are never followed
refused endpoint          gone         deactivated (SSRF rules, at send time)
========================  ===========  ============================================

Endpoints and keys are secrets (RFC 8030 section 8.3): reasons, destinations and
logs name the endpoint's origin at most.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import logging
import math
from collections.abc import Sequence
from datetime import datetime
from functools import partial
from typing import TYPE_CHECKING, Any, ClassVar

from django.conf import settings
from django.core import checks
from django.urls import NoReverseMatch, reverse
from django.utils import timezone

from django_notify import __version__, content
from django_notify.backends.base import BaseChannelBackend, DeliveryResult, parse_retry_after
from django_notify.exceptions import InvalidBackendError
from django_notify.push import crypto, endpoints, payload, vapid
from django_notify.push.sender import PushRequest, PushResponse, send_all
from django_notify.registry import registry

if TYPE_CHECKING:
    from django_notify.models import Delivery, Notification
    from django_notify.registry import NotificationType

logger = logging.getLogger(__name__)

USER_AGENT = f"django-notify-kit/{__version__}"
#: How much of a refused request's answer is kept on the delivery.
RESPONSE_EXCERPT_BYTES = 512
#: ``NotificationType.push`` keys and the names the service worker reads them by.
_PUSH_OPTION_NAMES = {
    "icon": "icon",
    "badge": "badge",
    "image": "image",
    "actions": "actions",
    "require_interaction": "requireInteraction",
    "silent": "silent",
    "vibrate": "vibrate",
}


class WebPushBackend(BaseChannelBackend):
    """Send each delivery to one browser push subscription.

    ``OPTIONS``: ``vapid_private_key`` (required; base64url as printed by
    ``manage.py generate_vapid_keys``, or PEM), ``vapid_public_key`` (optional,
    checked against the private key), ``vapid_subject`` (``mailto:`` or
    ``https:``), ``allowed_endpoint_hosts``, timeouts, ``concurrency``,
    ``max_payload_bytes``, ``max_subscriptions_per_user``, and default ``icon`` /
    ``badge`` URLs.
    """

    destination: ClassVar[str] = "push_subscription"
    default_options: ClassVar[dict[str, Any]] = {
        "vapid_private_key": None,
        "vapid_public_key": None,
        "vapid_subject": None,
        "allowed_endpoint_hosts": list(endpoints.DEFAULT_ALLOWED_HOSTS),
        "connect_timeout": 5.0,
        "read_timeout": 10.0,
        "concurrency": 256,
        "max_payload_bytes": payload.DEFAULT_MAX_BYTES,
        "max_subscriptions_per_user": 20,
        "icon": "",
        "badge": "",
    }

    signer: vapid.VapidSigner
    allowed_hosts: tuple[endpoints.AllowedHost, ...]

    # Options ---------------------------------------------------------------------

    def validate_options(self) -> None:
        options = self.options
        try:
            private_key = vapid.parse_private_key(options["vapid_private_key"])
        except ValueError as exc:
            raise self._invalid(
                "vapid_private_key",
                str(exc),
                "E040",
                "Run `python manage.py generate_vapid_keys` and paste its output into the channel's OPTIONS.",
            ) from None
        public = options["vapid_public_key"]
        if public is not None:
            try:
                public_raw = vapid.parse_public_key(public)
            except ValueError as exc:
                raise self._invalid("vapid_public_key", str(exc), "E041") from None
            if crypto.b64url_encode(public_raw) != vapid.public_key_b64(private_key):
                raise self._invalid(
                    "vapid_public_key",
                    "is not the public half of vapid_private_key",
                    "E041",
                    "Use the pair printed together by generate_vapid_keys, or leave vapid_public_key out: "
                    "it is derived from the private key.",
                )
        subject = options["vapid_subject"]
        problem = vapid.subject_problem(subject)
        if problem:
            raise self._invalid(
                "vapid_subject",
                problem,
                "E042",
                'Use a contact push services can reach, e.g. "mailto:ops@example.com" or "https://example.com/contact".',
            )
        try:
            self.allowed_hosts = endpoints.parse_allowed_hosts(options["allowed_endpoint_hosts"])
        except ValueError as exc:
            raise self._invalid(
                "allowed_endpoint_hosts",
                str(exc),
                "E043",
                f"The browsers' push services are {list(endpoints.DEFAULT_ALLOWED_HOSTS)!r}.",
            ) from None
        for name in ("connect_timeout", "read_timeout"):
            value = options[name]
            if isinstance(value, bool) or not isinstance(value, (int, float)) or not (0 < value < math.inf):
                raise self._invalid(name, f"must be a number of seconds above 0, not {value!r}", "E044")
        for name, low, high in (
            ("concurrency", 1, 10_000),
            ("max_payload_bytes", 256, payload.HARD_MAX_BYTES),
            ("max_subscriptions_per_user", 1, 10_000),
        ):
            value = options[name]
            if isinstance(value, bool) or not isinstance(value, int) or not low <= value <= high:
                raise self._invalid(name, f"must be a whole number from {low} to {high}, not {value!r}", "E044")
        for name in ("icon", "badge"):
            if not isinstance(options[name], str):
                raise self._invalid(name, f"must be a URL string, not {options[name]!r}", "E044")
        self.signer = vapid.VapidSigner(private_key, subject)

    def _invalid(self, option: str, problem: str, code: str, hint: str | None = None) -> InvalidBackendError:
        # Never the value: it may be the private key.
        return InvalidBackendError(
            f"OPTIONS[{option!r}] of channel {self.alias!r} ({type(self).__qualname__}) {problem.rstrip('.')}.",
            check_id=f"django_notify.{code}",
            hint=hint,
        )

    def check(self) -> list[checks.CheckMessage]:
        loopback = [entry.pattern for entry in self.allowed_hosts if entry.loopback]
        if loopback and not settings.DEBUG:
            return [
                checks.Warning(
                    f"Channel {self.alias!r} allows push endpoints on this machine ({', '.join(loopback)}) "
                    "while DEBUG is False.",
                    hint="Loopback endpoints (and plain http to them) are for local push receivers in "
                    "development and tests; remove them from allowed_endpoint_hosts in production.",
                    id="django_notify.W045",
                )
            ]
        return []

    # The batch -------------------------------------------------------------------

    def send_batch(self, deliveries: Sequence[Delivery], *, deadline: float | None = None) -> list[DeliveryResult]:
        now = timezone.now()
        results: dict[int, DeliveryResult] = {}
        requests: list[PushRequest] = []
        rows: dict[int, Delivery] = {}
        events_url = _events_url()
        for delivery in deliveries:
            try:
                request = self.prepare(delivery, now, events_url)
            except _Refused as refused:
                results[delivery.pk] = refused.result
            except Exception as exc:  # one bad row never sinks the batch
                logger.exception("Web Push delivery %s could not be prepared", delivery.pk)
                results[delivery.pk] = DeliveryResult.failed(delivery, f"could not prepare the message: {exc}")
            else:
                requests.append(request)
                rows[delivery.pk] = delivery
        if requests:
            responses = send_all(
                requests,
                connect_timeout=float(self.options["connect_timeout"]),
                read_timeout=float(self.options["read_timeout"]),
                concurrency=self.options["concurrency"],
                deadline=deadline,
                user_agent=USER_AGENT,
            )
            for response in responses:
                results[response.key] = self.classify(rows[response.key], response, now)
        return [results[delivery.pk] for delivery in deliveries]

    def prepare(self, delivery: Delivery, now: datetime, events_url: str | None) -> PushRequest:
        """Build, encrypt and address one delivery; raise :class:`_Refused` if it cannot be sent."""
        subscription = delivery.subscription
        if subscription is None:
            raise _Refused(DeliveryResult.failed(delivery, "the delivery has no push subscription"))
        try:
            endpoint = endpoints.validate_endpoint(subscription.endpoint, self.allowed_hosts)
        except endpoints.EndpointRejected as exc:
            raise _Refused(DeliveryResult.gone(delivery, f"endpoint_rejected: {exc}")) from None
        try:
            p256dh = crypto.validate_p256dh(subscription.p256dh)
            auth = crypto.validate_auth(subscription.auth)
        except ValueError as exc:
            raise _Refused(DeliveryResult.gone(delivery, f"bad subscription keys: {exc}")) from None
        notification = delivery.notification
        notification_type = registry.get(notification.type) if notification.type in registry else None
        try:
            body = payload.build_payload(
                self.message(delivery, notification, notification_type, events_url),
                max_bytes=self.options["max_payload_bytes"],
            )
        except payload.PayloadTooLarge as exc:
            raise _Refused(DeliveryResult.failed(delivery, f"payload_too_large: {exc}")) from None
        return PushRequest(
            key=delivery.pk,
            endpoint=endpoint,
            # Encrypted when sent: send_all() overlaps it with the other requests' waits.
            body=partial(crypto.encrypt, body, p256dh, auth),
            headers={
                "Authorization": self.signer.authorization(endpoint.origin),
                "TTL": str(self.ttl(delivery, notification_type, now)),
                "Urgency": notification_type.priority if notification_type else "normal",
                "Topic": topic(notification.pk),
                "Content-Encoding": "aes128gcm",
                "Content-Type": "application/octet-stream",
            },
        )

    def message(
        self,
        delivery: Delivery,
        notification: Notification,
        notification_type: NotificationType | None,
        events_url: str | None,
    ) -> dict[str, Any]:
        """The JSON document the service worker shows (SPEC 2.3); override to add fields."""
        from django_notify.tokens import make_event_token

        options = notification_type.push if notification_type else {}
        title, body = notification.title, notification.body
        if notification_type is not None and content.has_own_text(notification_type, self.alias):
            own = content.render_stored(notification, notification_type, self.alias)
            title, body = own.title, own.body
        message: dict[str, Any] = {
            "id": notification.pk,
            "title": title,
            "body": body,
            "url": notification.url,
            "tag": f"notification-{notification.pk}",
            "icon": self.options["icon"],
            "badge": self.options["badge"],
            "actions": [],
            "timestamp": int(notification.created_at.timestamp() * 1000),
            "data": notification.data,
            "token": make_event_token(delivery),
        }
        for name, key in _PUSH_OPTION_NAMES.items():
            if name in options:
                message[key] = options[name]
        if events_url:
            message["events"] = events_url
        return message

    def ttl(self, delivery: Delivery, notification_type: NotificationType | None, now: datetime) -> int:
        """Seconds the push service may hold the message: what is left of the delivery's life."""
        if delivery.expires_at is not None:
            return max(0, int((delivery.expires_at - now).total_seconds()))
        if notification_type is not None:
            return int(notification_type.ttl.total_seconds())
        return 86_400

    def classify(self, delivery: Delivery, response: PushResponse, now: datetime) -> DeliveryResult:
        """Turn one answer into a result (the table in this module's docstring)."""
        status = response.status
        if status is None:
            if response.error == "deferred":
                return DeliveryResult.deferred(delivery, "the batch ran out of time")
            if response.error and response.error.startswith("rejected"):
                return DeliveryResult.gone(delivery, f"endpoint_{response.error}")
            if response.error and response.error.startswith("unsendable"):
                return DeliveryResult.failed(delivery, f"could not encrypt the message ({response.error})")
            return DeliveryResult.retry(delivery, f"{response.error or 'no answer'} ({response_origin(delivery)})")
        recorded: dict[str, Any] = {"status": status}
        where = f"HTTP {status} from {response_origin(delivery)}"
        if 200 <= status < 300:
            if response.location:
                recorded["location"] = response.location[:500]
            return DeliveryResult.sent(delivery, response=recorded)
        if response.body_excerpt:
            recorded["body"] = response.body_excerpt[:RESPONSE_EXCERPT_BYTES].decode("utf-8", "replace")
        if status in (404, 410):
            return DeliveryResult.gone(delivery, f"HTTP {status}", response=recorded)
        if status == 429 or status >= 500:
            retry_at = parse_retry_after(response.retry_after, now)
            return DeliveryResult.retry(delivery, where, retry_at=retry_at, response=recorded)
        if status in (401, 403):
            subscription = delivery.subscription
            if subscription is not None and subscription.vapid_key_id not in ("", self.signer.key_id):
                # Made with a key this server no longer signs with: it can never work again (RFC 8292 4.2).
                return DeliveryResult.gone(delivery, "subscribed with another VAPID key", response=recorded)
            logger.warning("%s refused our VAPID credentials (delivery %s)", response_origin(delivery), delivery.pk)
            return DeliveryResult.failed(delivery, f"auth: {where}", response=recorded)
        if status == 413:
            logger.warning("%s refused a payload as too large: lower max_payload_bytes", response_origin(delivery))
            return DeliveryResult.failed(delivery, f"payload_too_large: {where}", response=recorded)
        if 300 <= status < 400:
            return DeliveryResult.failed(
                delivery, f"redirect: {where} (redirects are never followed)", response=recorded
            )
        return DeliveryResult.failed(delivery, f"bad_request: {where}", response=recorded)


class _Refused(Exception):
    """A delivery that cannot be sent as it is; carries its result."""

    def __init__(self, result: DeliveryResult) -> None:
        super().__init__(result.reason)
        self.result = result


def topic(notification_id: int) -> str:
    """The ``Topic`` header: opaque (keyed with ``SECRET_KEY``), 32 base64url characters.

    Every delivery of a notification to one browser shares it, so a duplicate sent
    after a crash replaces an undelivered copy at the push service (RFC 8030 5.4).
    """
    digest = hmac.new(settings.SECRET_KEY.encode(), f"topic:{notification_id}".encode(), hashlib.sha256).digest()
    return base64.urlsafe_b64encode(digest[:24]).decode()


def response_origin(delivery: Delivery) -> str:
    """The push service a delivery went to, safe to show (never the endpoint's path)."""
    subscription = delivery.subscription
    if subscription is None:
        return "an unknown push service"
    try:
        return endpoints.origin_of(subscription.endpoint)
    except ValueError:
        return "an invalid endpoint"


def _events_url() -> str | None:
    """Where the service worker reports engagement, if the host mounted the API."""
    try:
        return reverse("django_notify:event-list")
    except NoReverseMatch:
        return None

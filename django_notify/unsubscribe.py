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

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import timedelta
from typing import TYPE_CHECKING, Any

from django.core import signing
from django.urls import NoReverseMatch, reverse

from django_notify.conf import notify_settings
from django_notify.exceptions import BadUnsubscribeToken
from django_notify.sites import absolute_url

if TYPE_CHECKING:
    from django_notify.models import Delivery
    from django_notify.registry import NotificationType

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

    Raises ``NoReverseMatch`` if ``django_notify.urls`` is not included (check E040 says so).
    """
    return absolute_url(reverse("django_notify:unsubscribe", args=[make_token(scope)]))


def unsubscribe_link(deliveries: Sequence[Delivery], types: Sequence[NotificationType]) -> str | None:
    """The one-click URL for an email carrying ``deliveries``, or ``None`` when there is none to give."""
    scope = scope_for(deliveries, types)
    if scope is None:
        return None
    try:
        return unsubscribe_url(scope)
    except NoReverseMatch:
        return None

"""Signed tracking tokens that let the service worker report engagement without a session.

A token names a notification and, for an external channel, its delivery::

    "1234.5678:1tXk2P:Yq0nM1...43 chars"

that is ``notification_id[.delivery_id]``, a base62 timestamp and an HMAC-SHA256
signature made with ``SECRET_KEY`` (``SECRET_KEY_FALLBACKS`` are accepted, so keys
can rotate) and the salt ``"django_notify.events"``. It holds ids only, is 50 to
70 characters long (it rides in the Web Push payload, at most 3000 bytes), and is
accepted for ``EVENT_TOKEN_MAX_AGE_DAYS``.
"""

from __future__ import annotations

import re
from datetime import timedelta
from typing import Any, NamedTuple

from django.core import signing

from django_notify.conf import notify_settings
from django_notify.exceptions import BadEventToken

#: The signing salt: a token for another purpose never passes as an event token.
SALT = "django_notify.events"

#: Longest token ``read_event_token()`` looks at; the longest possible is 90 characters.
MAX_TOKEN_LENGTH = 200


class EventTarget(NamedTuple):
    """What an event token names; ``delivery_id`` is ``None`` for the in-app channel."""

    notification_id: int
    delivery_id: int | None


#: The signed value: ``notification_id`` or ``notification_id.delivery_id``.
_VALUE = re.compile(r"([1-9][0-9]{0,18})(?:\.([1-9][0-9]{0,18}))?")


def _is_id(value: Any) -> bool:
    # bool is an int subclass, and True would sign as "True".
    return isinstance(value, int) and not isinstance(value, bool) and value > 0


def _signer() -> signing.TimestampSigner:
    return signing.TimestampSigner(salt=SALT)


def make_event_token(delivery_or_ids: Any) -> str:
    """Sign a tracking token for a delivery, a notification, or ``(notification_id, delivery_id)``.

    A :class:`~django_notify.models.Delivery` gives a token for that delivery; a
    :class:`~django_notify.models.Notification` (or ``delivery_id=None``) gives one
    for the in-app notification.
    """
    from django_notify.models import Delivery, Notification

    if isinstance(delivery_or_ids, Delivery):
        target = EventTarget(delivery_or_ids.notification_id, delivery_or_ids.pk)
    elif isinstance(delivery_or_ids, Notification):
        target = EventTarget(delivery_or_ids.pk, None)
    else:
        notification_id, delivery_id = delivery_or_ids
        target = EventTarget(notification_id, delivery_id)
    # An unsaved row has pk None; a token for it could never be read back usefully.
    if not _is_id(target.notification_id) or not (target.delivery_id is None or _is_id(target.delivery_id)):
        raise TypeError(f"An event token names saved rows by integer id, not {tuple(target)!r}.")
    value = str(target.notification_id)
    if target.delivery_id is not None:
        value += f".{target.delivery_id}"
    return _signer().sign(value)


def read_event_token(token: str, max_age: timedelta | float | None = None) -> EventTarget:
    """Check a token and return what it names.

    ``max_age`` (a ``timedelta`` or seconds) defaults to ``EVENT_TOKEN_MAX_AGE_DAYS``.
    Raises :class:`~django_notify.exceptions.BadEventToken` if the token is
    malformed, tampered with, signed for another purpose, or expired.
    """
    if max_age is None:
        max_age = timedelta(days=notify_settings.EVENT_TOKEN_MAX_AGE_DAYS)
    elif not isinstance(max_age, timedelta):
        max_age = timedelta(seconds=max_age)
    if not isinstance(token, str) or not token or len(token) > MAX_TOKEN_LENGTH:
        raise BadEventToken("Invalid event token.")
    try:
        value = _signer().unsign(token, max_age=max_age)
    except signing.SignatureExpired:
        raise BadEventToken("This event token has expired.", expired=True) from None
    except signing.BadSignature:
        raise BadEventToken("Invalid event token.") from None
    # Only this module signs with SALT, so this fails only if the format ever changes.
    match = _VALUE.fullmatch(value)
    if match is None:
        raise BadEventToken("Invalid event token.")
    notification_id, delivery_id = match.groups()
    return EventTarget(int(notification_id), None if delivery_id is None else int(delivery_id))


__all__ = ["SALT", "EventTarget", "make_event_token", "read_event_token"]

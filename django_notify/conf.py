"""The ``DJANGO_NOTIFY`` setting, read through :data:`notify_settings`.

Every property reads ``settings.DJANGO_NOTIFY`` on each access, so
``override_settings`` works without extra wiring. Bad values are reported by
``manage.py check`` (see :mod:`django_notify.checks`), not here: a property returns
what it finds, falling back to the default only for keys that are absent.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any, TypedDict
from urllib.parse import urlsplit

from django.conf import settings


class ChannelConfig(TypedDict, total=False):
    """One entry of ``CHANNELS``: shaped like an entry of Django's ``STORAGES``."""

    BACKEND: str
    OPTIONS: dict[str, Any]


DEFAULTS: dict[str, Any] = {
    "CHANNELS": {"in_app": {"BACKEND": "django_notify.backends.in_app.InAppBackend"}},
    "DEFAULT_CHANNELS": ("in_app",),
    "FANOUT_CHUNK_SIZE": 5000,
    "PAGE_SIZE": 20,
    "MAX_PAGE_SIZE": 100,
    "CREATE_PERMISSION_CLASSES": ("rest_framework.permissions.IsAdminUser",),
    "CREATE_THROTTLE_RATE": "60/minute",
    "API_MAX_RECIPIENTS": 1000,
    "DELIVERY_MODE": "queue",
    "BATCH_SIZE": 500,
    "LEASE_SECONDS": 300,
    "RETRY_BASE_SECONDS": 30,
    "RETRY_MAX_SECONDS": 3600,
    "MAX_ATTEMPTS": 8,
    "SWEEP_MINUTES": 1,
    "DIGEST_CHANNEL": "email",
    "DIGEST_HOUR": 8,
    "DIGEST_WEEKDAY": 0,
    "NOTIFICATION_RETENTION_DAYS": 180,
    "DELIVERY_RETENTION_DAYS": 30,
    "EVENT_RETENTION_DAYS": 180,
    "HEALTH_MAX_LAG_SECONDS": 300,
    "HEALTH_MAX_HEARTBEAT_SECONDS": 120,
    "HEALTH_PERMISSION_CLASSES": ("rest_framework.permissions.AllowAny",),
    "STATS_PERMISSION_CLASSES": ("rest_framework.permissions.IsAdminUser",),
    "EVENT_TOKEN_MAX_AGE_DAYS": 30,
    "BASE_URL": None,
    "SITE_NAME": None,
    "RECIPIENT_LANGUAGE": "language",
    "UNSUBSCRIBE_SCOPE": "category",
    "UNSUBSCRIBE_TOKEN_MAX_AGE_DAYS": 90,
    "TEMPLATE_CACHE_SECONDS": 30,
}

#: Values of ``UNSUBSCRIBE_SCOPE``.
UNSUBSCRIBE_SCOPES = ("category", "type")

#: Values of ``DELIVERY_MODE``.
DELIVERY_MODES = ("queue", "inline", "manual")


def _user_settings() -> Mapping[str, Any]:
    value = getattr(settings, "DJANGO_NOTIFY", {})
    # A non-mapping is reported by check E001; behave as if unset meanwhile.
    return value if isinstance(value, Mapping) else {}


class NotifySettings:
    """Typed, always-fresh view of ``settings.DJANGO_NOTIFY``."""

    def _get(self, key: str) -> Any:
        return _user_settings().get(key, DEFAULTS[key])

    @property
    def CHANNELS(self) -> dict[str, ChannelConfig]:
        """Channel aliases mapped to ``{"BACKEND": dotted path, "OPTIONS": {...}}``."""
        return dict(self._get("CHANNELS"))

    @property
    def DEFAULT_CHANNELS(self) -> tuple[str, ...]:
        """Channels used by a notification type that does not list its own."""
        return tuple(self._get("DEFAULT_CHANNELS"))

    @property
    def FANOUT_CHUNK_SIZE(self) -> int:
        """Recipients inserted per statement by ``notify()``; bounds memory per chunk."""
        return int(self._get("FANOUT_CHUNK_SIZE"))

    @property
    def PAGE_SIZE(self) -> int:
        """Default page size of the inbox list endpoint."""
        return int(self._get("PAGE_SIZE"))

    @property
    def MAX_PAGE_SIZE(self) -> int:
        """Largest ``page_size`` a client may ask the inbox list endpoint for."""
        return int(self._get("MAX_PAGE_SIZE"))

    @property
    def CREATE_PERMISSION_CLASSES(self) -> tuple[str, ...]:
        """Dotted paths of DRF permission classes guarding ``POST /`` (create)."""
        return tuple(self._get("CREATE_PERMISSION_CLASSES"))

    @property
    def CREATE_THROTTLE_RATE(self) -> str | None:
        """DRF rate (``"60/minute"``) for ``POST /`` per user; ``None`` disables it."""
        value: str | None = self._get("CREATE_THROTTLE_RATE")
        return value

    @property
    def API_MAX_RECIPIENTS(self) -> int:
        """Most recipients one ``POST /`` may name."""
        return int(self._get("API_MAX_RECIPIENTS"))

    @property
    def DELIVERY_MODE(self) -> str:
        """``"queue"``: django-q2 tasks after commit; ``"inline"``: deliver in the
        committing process (tests, scripts); ``"manual"``: only ``notify_process``."""
        return str(self._get("DELIVERY_MODE"))

    @property
    def BATCH_SIZE(self) -> int:
        """Deliveries one worker claims and sends at a time."""
        return int(self._get("BATCH_SIZE"))

    @property
    def LEASE_SECONDS(self) -> int:
        """How long a claim lasts; an unfinished claim is retried after it. Must exceed
        django-q2's ``timeout``."""
        return int(self._get("LEASE_SECONDS"))

    @property
    def RETRY_BASE_SECONDS(self) -> float:
        """First retry delay ceiling; doubles per attempt (full jitter)."""
        return float(self._get("RETRY_BASE_SECONDS"))

    @property
    def RETRY_MAX_SECONDS(self) -> float:
        """Cap of any retry delay."""
        return float(self._get("RETRY_MAX_SECONDS"))

    @property
    def MAX_ATTEMPTS(self) -> int:
        """Attempts before a delivery is failed (a dead letter)."""
        return int(self._get("MAX_ATTEMPTS"))

    @property
    def SWEEP_MINUTES(self) -> int:
        """Longest interval between sweeps (the sweeper also wakes for due retries)."""
        return int(self._get("SWEEP_MINUTES"))

    @property
    def DIGEST_CHANNEL(self) -> str:
        """The channel whose messages users may receive as daily or weekly digests."""
        return str(self._get("DIGEST_CHANNEL"))

    @property
    def DIGEST_HOUR(self) -> int:
        """Hour (0-23, the recipient's time zone) digests go out."""
        return int(self._get("DIGEST_HOUR"))

    @property
    def DIGEST_WEEKDAY(self) -> int:
        """Weekday of weekly digests: 0 is Monday."""
        return int(self._get("DIGEST_WEEKDAY"))

    @property
    def NOTIFICATION_RETENTION_DAYS(self) -> int | None:
        """Notifications older than this are deleted by ``notify_cleanup``; None keeps them."""
        value = self._get("NOTIFICATION_RETENTION_DAYS")
        return None if value is None else int(value)

    @property
    def DELIVERY_RETENTION_DAYS(self) -> int | None:
        """Finished deliveries older than this are deleted; None keeps them."""
        value = self._get("DELIVERY_RETENTION_DAYS")
        return None if value is None else int(value)

    @property
    def EVENT_RETENTION_DAYS(self) -> int | None:
        """Engagement events older than this are deleted; None keeps them."""
        value = self._get("EVENT_RETENTION_DAYS")
        return None if value is None else int(value)

    @property
    def HEALTH_MAX_LAG_SECONDS(self) -> int:
        """``health/`` answers 503 when a due delivery has waited longer than this."""
        return int(self._get("HEALTH_MAX_LAG_SECONDS"))

    @property
    def HEALTH_MAX_HEARTBEAT_SECONDS(self) -> int:
        """``health/`` answers 503 when the sweeper has not run for this long."""
        return int(self._get("HEALTH_MAX_HEARTBEAT_SECONDS"))

    @property
    def HEALTH_PERMISSION_CLASSES(self) -> tuple[str, ...]:
        """DRF permission classes of ``health/`` (default: open, for load balancers)."""
        return tuple(self._get("HEALTH_PERMISSION_CLASSES"))

    @property
    def STATS_PERMISSION_CLASSES(self) -> tuple[str, ...]:
        """DRF permission classes of ``stats/`` (default: staff)."""
        return tuple(self._get("STATS_PERMISSION_CLASSES"))

    @property
    def EVENT_TOKEN_MAX_AGE_DAYS(self) -> int:
        """How long a delivery's signed tracking token is accepted by ``events/``."""
        return int(self._get("EVENT_TOKEN_MAX_AGE_DAYS"))

    @property
    def BASE_URL(self) -> str | None:
        """Scheme and host that make links in emails absolute (``"https://example.com"``).

        ``None``: the current ``Site`` of ``django.contrib.sites`` (over https), if installed.
        """
        value: str | None = self._get("BASE_URL")
        return value.rstrip("/") if isinstance(value, str) else value

    @property
    def SITE_NAME(self) -> str | None:
        """The name emails sign with; ``None``: the current ``Site``'s name, or the host of ``BASE_URL``."""
        value: str | None = self._get("SITE_NAME")
        return value

    @property
    def RECIPIENT_LANGUAGE(self) -> str | None:
        """How to find a recipient's language: a user field or ``__`` lookup path
        (``"profile__language"``), an attribute name, or the dotted path of a callable
        taking the user; ``None``: always the site's ``LANGUAGE_CODE``."""
        value: str | None = self._get("RECIPIENT_LANGUAGE")
        return value

    @property
    def UNSUBSCRIBE_SCOPE(self) -> str:
        """What an email's one-click unsubscribe turns off: its ``"category"`` or its ``"type"``."""
        return str(self._get("UNSUBSCRIBE_SCOPE"))

    @property
    def UNSUBSCRIBE_TOKEN_MAX_AGE_DAYS(self) -> int:
        """How long the unsubscribe link of an email keeps working."""
        return int(self._get("UNSUBSCRIBE_TOKEN_MAX_AGE_DAYS"))

    @property
    def TEMPLATE_CACHE_SECONDS(self) -> float:
        """How long a process keeps the template overrides it read; 0 reads them every time.

        Saving an override in the admin clears that process's copy at once.
        """
        return float(self._get("TEMPLATE_CACHE_SECONDS"))


notify_settings = NotifySettings()


def _is_int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _is_positive_int(value: Any) -> bool:
    return _is_int(value) and value > 0


def _is_positive_number(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool) and value > 0


def _is_str_sequence(value: Any) -> bool:
    return isinstance(value, Sequence) and not isinstance(value, str) and all(isinstance(v, str) for v in value)


def _is_rate(value: Any) -> bool:
    if value is None:
        return True
    if not isinstance(value, str) or "/" not in value:
        return False
    count, _, period = value.partition("/")
    return count.isdigit() and period[:1] in {"s", "m", "h", "d"}


def _is_base_url(value: Any) -> bool:
    if value is None:
        return True
    if not isinstance(value, str):
        return False
    parts = urlsplit(value)
    return (
        parts.scheme in ("http", "https")
        and bool(parts.hostname)
        and parts.path in ("", "/")
        and not (parts.query or parts.fragment or parts.username)
    )


#: How each key's value must look: (predicate, description for the check message).
VALIDATORS: dict[str, tuple[Any, str]] = {
    "CHANNELS": (lambda v: isinstance(v, Mapping), "a dict of channel aliases"),
    "DEFAULT_CHANNELS": (_is_str_sequence, "a list of channel aliases"),
    "FANOUT_CHUNK_SIZE": (_is_positive_int, "a positive integer"),
    "PAGE_SIZE": (_is_positive_int, "a positive integer"),
    "MAX_PAGE_SIZE": (_is_positive_int, "a positive integer"),
    "CREATE_PERMISSION_CLASSES": (_is_str_sequence, "a list of dotted paths"),
    "CREATE_THROTTLE_RATE": (_is_rate, 'a DRF rate such as "60/minute", or None'),
    "API_MAX_RECIPIENTS": (_is_positive_int, "a positive integer"),
    "DELIVERY_MODE": (lambda v: v in DELIVERY_MODES, f"one of {', '.join(DELIVERY_MODES)}"),
    "BATCH_SIZE": (_is_positive_int, "a positive integer"),
    "LEASE_SECONDS": (_is_positive_int, "a positive integer"),
    "RETRY_BASE_SECONDS": (_is_positive_number, "a positive number"),
    "RETRY_MAX_SECONDS": (_is_positive_number, "a positive number"),
    "MAX_ATTEMPTS": (_is_positive_int, "a positive integer"),
    "SWEEP_MINUTES": (_is_positive_int, "a positive integer"),
    "DIGEST_CHANNEL": (lambda v: isinstance(v, str), "a channel alias"),
    "DIGEST_HOUR": (lambda v: _is_int(v) and 0 <= v <= 23, "an hour from 0 to 23"),
    "DIGEST_WEEKDAY": (lambda v: _is_int(v) and 0 <= v <= 6, "a weekday from 0 (Monday) to 6"),
    "NOTIFICATION_RETENTION_DAYS": (lambda v: v is None or _is_positive_int(v), "a positive integer or None"),
    "DELIVERY_RETENTION_DAYS": (lambda v: v is None or _is_positive_int(v), "a positive integer or None"),
    "EVENT_RETENTION_DAYS": (lambda v: v is None or _is_positive_int(v), "a positive integer or None"),
    "HEALTH_MAX_LAG_SECONDS": (_is_positive_int, "a positive integer"),
    "HEALTH_MAX_HEARTBEAT_SECONDS": (_is_positive_int, "a positive integer"),
    "HEALTH_PERMISSION_CLASSES": (_is_str_sequence, "a list of dotted paths"),
    "STATS_PERMISSION_CLASSES": (_is_str_sequence, "a list of dotted paths"),
    "EVENT_TOKEN_MAX_AGE_DAYS": (_is_positive_int, "a positive integer"),
    "BASE_URL": (_is_base_url, 'None or a scheme and host such as "https://example.com"'),
    "SITE_NAME": (lambda v: v is None or isinstance(v, str), "None or a string"),
    "RECIPIENT_LANGUAGE": (
        lambda v: v is None or (isinstance(v, str) and v != ""),
        "None, a field name or a dotted path",
    ),
    "UNSUBSCRIBE_SCOPE": (lambda v: v in UNSUBSCRIBE_SCOPES, f"one of {', '.join(UNSUBSCRIBE_SCOPES)}"),
    "UNSUBSCRIBE_TOKEN_MAX_AGE_DAYS": (_is_positive_int, "a positive integer"),
    "TEMPLATE_CACHE_SECONDS": (
        lambda v: isinstance(v, (int, float)) and not isinstance(v, bool) and v >= 0,
        "a number of seconds, 0 or more",
    ),
}

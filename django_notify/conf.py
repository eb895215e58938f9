"""The ``DJANGO_NOTIFY`` setting, read through :data:`notify_settings`.

Every property reads ``settings.DJANGO_NOTIFY`` on each access, so
``override_settings`` works without extra wiring. Bad values are reported by
``manage.py check`` (see :mod:`django_notify.checks`), not here: a property returns
what it finds, falling back to the default only for keys that are absent.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any, TypedDict

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
}


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


notify_settings = NotifySettings()


def _is_positive_int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool) and value > 0


def _is_str_sequence(value: Any) -> bool:
    return isinstance(value, Sequence) and not isinstance(value, str) and all(isinstance(v, str) for v in value)


def _is_rate(value: Any) -> bool:
    if value is None:
        return True
    if not isinstance(value, str) or "/" not in value:
        return False
    count, _, period = value.partition("/")
    return count.isdigit() and period[:1] in {"s", "m", "h", "d"}


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
}

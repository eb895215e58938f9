"""Notification types and the registry that holds them.

A type is declared once, in code, usually in an app's ``notifications.py`` (found at
start-up, like ``admin.py``)::

    from django_notify import NotificationType, registry

    registry.register(NotificationType(
        key="low_stock_alert",
        category="inventory",
        title="Low stock: {{ item_name }}",
        body="Only {{ quantity }} left.",
        channels=["in_app", "email"],
    ))

    @registry.register
    class OrderShipped(NotificationType):
        key = "order_shipped"
        category = "orders"
        title = "Order {{ target.number }} is on its way"
"""

from __future__ import annotations

import re
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from datetime import timedelta
from typing import Any, ClassVar, TypeVar, overload

from django.utils.module_loading import autodiscover_modules

from django_notify.exceptions import (
    AlreadyRegistered,
    UnknownNotificationType,
)

KEY_RE = re.compile(r"^[a-z0-9][a-z0-9_.-]*$")
KEY_MAX_LENGTH = 100
CATEGORY_MAX_LENGTH = 50
TITLE_MAX_LENGTH = 255
URL_MAX_LENGTH = 2048

#: Web Push ``Urgency`` values (RFC 8030 section 5.3), lowest first.
PRIORITIES = ("very-low", "low", "normal", "high")

#: Keys of :attr:`NotificationType.push`, the options of the browser notification.
PUSH_OPTIONS = ("icon", "badge", "image", "actions", "require_interaction", "silent", "vibrate")

#: Context names django_notify fills in itself.
RESERVED_CONTEXT = frozenset({"recipient"})


@dataclass(frozen=True)
class Rendered:
    """The text of one notification as shown in the inbox."""

    title: str
    body: str
    url: str


class NotificationType:
    """A kind of notification: its key, category, templates and channels.

    Declare one as an instance, ``NotificationType(key=..., title=...)``, or as a
    subclass whose class attributes hold the same names. ``title``, ``body`` and
    ``url`` are Django templates rendered with the context given to ``notify()``,
    plus ``actor``, ``target`` and ``recipient``.
    """

    #: Stable identifier stored on every notification (lowercase, digits, ``_.-``).
    key: str = ""
    #: Group shown to users and used by preferences (e.g. ``"orders"``).
    category: str = "general"
    #: Human name for admin and preference screens; defaults to the key.
    verbose_name: str = ""
    #: One sentence on when this notification is sent.
    description: str = ""
    #: Title template: one line, at most 255 characters after rendering.
    title: str = ""
    #: Body template (plain text).
    body: str = ""
    #: Link template. ``notify(url=...)`` wins over it; without either, the target's
    #: ``get_absolute_url()`` is used.
    url: str = ""
    #: Channel aliases; ``None`` means ``DJANGO_NOTIFY["DEFAULT_CHANNELS"]``.
    channels: Sequence[str] | None = None
    #: Critical types cannot be muted and are not held by quiet hours or digests.
    critical: bool = False
    #: Channels users cannot mute for this type (it is still sent on its other channels).
    required_channels: Sequence[str] = ()
    #: Channels this type is never sent on, even if ``notify(channels=...)`` names them.
    forbidden_channels: Sequence[str] = ()
    #: One of :data:`PRIORITIES`; sent as Web Push ``Urgency``.
    priority: str = "normal"
    #: Values for context variables that callers may leave out.
    defaults: Mapping[str, Any] = {}
    #: Context used by previews and ``notify_send_test``.
    sample_context: Mapping[str, Any] = {}
    #: How long an undelivered message on an external channel stays worth sending
    #: (also the Web Push ``TTL``).
    ttl: timedelta = timedelta(days=1)
    #: How the browser shows it: any of :data:`PUSH_OPTIONS` (``icon``, ``badge``,
    #: ``image``, ``actions``, ``require_interaction``, ``silent``, ``vibrate``).
    push: Mapping[str, Any] = {}

    _attribute_names: ClassVar[frozenset[str]] = frozenset(
        {
            "key",
            "category",
            "verbose_name",
            "description",
            "title",
            "body",
            "url",
            "channels",
            "critical",
            "required_channels",
            "forbidden_channels",
            "priority",
            "defaults",
            "sample_context",
            "ttl",
            "push",
        }
    )

    def __init__(self, **attributes: Any) -> None:
        unknown = set(attributes) - self._attribute_names
        if unknown:
            raise TypeError(
                f"NotificationType got unknown attribute(s) {', '.join(sorted(unknown))}; "
                f"valid ones are {', '.join(sorted(self._attribute_names))}."
            )
        for name, value in attributes.items():
            setattr(self, name, value)
        self.validate()
        if self.channels is not None:
            self.channels = tuple(self.channels)
        self.required_channels = tuple(self.required_channels)
        self.forbidden_channels = tuple(self.forbidden_channels)

    def validate(self) -> None:
        """Raise ``ValueError`` if an attribute cannot work."""
        if not isinstance(self.key, str) or not KEY_RE.match(self.key) or len(self.key) > KEY_MAX_LENGTH:
            raise ValueError(
                f"Notification type key {self.key!r} must be 1-{KEY_MAX_LENGTH} characters of "
                "lowercase letters, digits, '_', '.' or '-', starting with a letter or digit."
            )
        if (
            not isinstance(self.category, str)
            or not KEY_RE.match(self.category)
            or len(self.category) > CATEGORY_MAX_LENGTH
        ):
            raise ValueError(
                f"Notification type {self.key!r}: category {self.category!r} must be 1-"
                f"{CATEGORY_MAX_LENGTH} characters of lowercase letters, digits, '_', '.' or '-'."
            )
        if self.priority not in PRIORITIES:
            raise ValueError(f"Notification type {self.key!r}: priority must be one of {', '.join(PRIORITIES)}.")
        if self.channels is not None and (
            isinstance(self.channels, str) or not all(isinstance(c, str) for c in self.channels)
        ):
            raise ValueError(f"Notification type {self.key!r}: channels must be a list of channel aliases.")
        for name in ("required_channels", "forbidden_channels"):
            value = getattr(self, name)
            if isinstance(value, str) or not all(isinstance(c, str) for c in value):
                raise ValueError(f"Notification type {self.key!r}: {name} must be a list of channel aliases.")
        both = set(self.required_channels) & set(self.forbidden_channels)
        if both:
            raise ValueError(f"Notification type {self.key!r}: {', '.join(sorted(both))} both required and forbidden.")
        for name in ("title", "body", "url"):
            if not isinstance(getattr(self, name), str):
                raise ValueError(f"Notification type {self.key!r}: {name} must be a template string.")
        self._validate_push()
        reserved = RESERVED_CONTEXT.intersection(self.defaults)
        if reserved:
            raise ValueError(f"Notification type {self.key!r}: defaults may not set {', '.join(sorted(reserved))}.")

    def _validate_push(self) -> None:
        problem = _push_options_problem(self.push)
        if problem:
            raise ValueError(f"Notification type {self.key!r}: push {problem}.")

    def __repr__(self) -> str:
        return f"<NotificationType {self.key!r}>"

    def __str__(self) -> str:
        return str(self.verbose_name or self.key)

    def get_channels(self) -> tuple[str, ...]:
        """The channel aliases this type is sent on (never a forbidden one)."""
        from django_notify.conf import notify_settings

        channels = tuple(self.channels) if self.channels is not None else notify_settings.DEFAULT_CHANNELS
        return tuple(c for c in channels if c not in self.forbidden_channels)

    def is_locked(self, channel: str) -> bool:
        """Whether users may not mute ``channel`` for this type."""
        return self.critical or channel in self.required_channels

    def get_context(self, context: Mapping[str, Any] | None, **provided: Any) -> dict[str, Any]:
        """The full template context: the caller's values over ``provided`` over the type's defaults.

        ``notify()`` provides ``actor`` and ``target``.
        """
        values = {**self.defaults, **provided, **(context or {})}
        reserved = RESERVED_CONTEXT.intersection(context or {})
        if reserved:
            raise ValueError(
                f"Notification type {self.key!r}: the context may not set {', '.join(sorted(reserved))}; "
                "django_notify provides it for each recipient."
            )
        return values


NT = TypeVar("NT", bound=NotificationType)


def _push_options_problem(push: Any) -> str | None:
    """What is wrong with a type's ``push`` options, or ``None``."""
    if not isinstance(push, Mapping):
        return f"must be a dict with keys among {', '.join(PUSH_OPTIONS)}"
    unknown = set(push) - set(PUSH_OPTIONS)
    if unknown:
        return f"has unknown option(s) {', '.join(sorted(map(str, unknown)))}; valid ones are {', '.join(PUSH_OPTIONS)}"
    for name in ("icon", "badge", "image"):
        if not isinstance(push.get(name, ""), str):
            return f"{name} must be a URL string"
    for name in ("require_interaction", "silent"):
        if not isinstance(push.get(name, False), bool):
            return f"{name} must be True or False"
    vibrate = push.get("vibrate", [])
    if not isinstance(vibrate, (list, tuple)) or not all(
        isinstance(ms, int) and not isinstance(ms, bool) and 0 <= ms <= 10_000 for ms in vibrate
    ):
        return "vibrate must be a list of milliseconds (integers from 0 to 10000)"
    actions = push.get("actions", [])
    if not isinstance(actions, (list, tuple)) or not all(
        isinstance(a, Mapping)
        and isinstance(a.get("action"), str)
        and a["action"]
        and isinstance(a.get("title"), str)
        and set(a) <= {"action", "title", "icon", "url"}
        and all(isinstance(v, str) for v in a.values())
        for a in actions
    ):
        return 'actions must be a list of {"action": ..., "title": ..., "icon"?: ..., "url"?: ...} with string values'
    return None


class NotificationTypeRegistry:
    """All notification types of the project, by key."""

    def __init__(self) -> None:
        self._types: dict[str, NotificationType] = {}

    @overload
    def register(self, notification_type: type[NT]) -> type[NT]: ...
    @overload
    def register(self, notification_type: NT) -> NT: ...

    def register(self, notification_type: NT | type[NT]) -> NT | type[NT]:
        """Register a type instance, or a subclass (usable as a class decorator)."""
        instance = notification_type() if isinstance(notification_type, type) else notification_type
        if not isinstance(instance, NotificationType):
            raise TypeError(f"registry.register() takes a NotificationType, not {notification_type!r}.")
        existing = self._types.get(instance.key)
        if existing is not None and existing is not instance:
            raise AlreadyRegistered(f"A notification type with key {instance.key!r} is already registered.")
        self._types[instance.key] = instance
        return notification_type

    def unregister(self, key: str | NotificationType | type[NotificationType]) -> None:
        """Remove a type; an unknown key raises :class:`UnknownNotificationType`."""
        self._types.pop(self.get(key).key)

    def get(self, key: str | NotificationType | type[NotificationType]) -> NotificationType:
        """The registered type for a key (or for a type object's key)."""
        lookup = key if isinstance(key, str) else key.key
        try:
            return self._types[lookup]
        except KeyError:
            raise UnknownNotificationType(lookup, self._types) from None

    def __contains__(self, key: object) -> bool:
        return isinstance(key, str) and key in self._types

    def __iter__(self) -> Iterator[NotificationType]:
        return iter(sorted(self._types.values(), key=lambda t: (t.category, t.key)))

    def __len__(self) -> int:
        return len(self._types)

    def keys(self) -> list[str]:
        return sorted(self._types)

    def categories(self) -> list[str]:
        return sorted({t.category for t in self._types.values()})

    def autodiscover(self) -> None:
        """Import every installed app's ``notifications`` module."""
        autodiscover_modules("notifications")


registry = NotificationTypeRegistry()

#: The type of ``notify_send_test`` and the push test: critical, so no preference,
#: quiet hours or digest holds it back.
TEST_TYPE = NotificationType(
    key="django_notify.test",
    category="system",
    verbose_name="Test notification",
    description="Sent on request to check that a channel reaches you.",
    title="Test notification",
    body="If you can read this, notifications reach you here.",
    critical=True,
)

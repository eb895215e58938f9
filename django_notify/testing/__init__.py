"""Helpers for testing a project that sends notifications.

* :data:`outbox`: what :class:`~django_notify.backends.locmem.LocMemBackend` sent,
  like ``django.core.mail.outbox``.
* :func:`capture_notifications`: collect the notifications ``notify()`` creates.
* :func:`registered`: register notification types for the length of a test.
* pytest fixtures in :mod:`django_notify.testing.plugin`, loaded automatically.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from django_notify.models import Delivery, Notification
    from django_notify.registry import NotificationType

__all__ = ["OutboxMessage", "capture_notifications", "outbox", "registered"]


@dataclass(frozen=True)
class OutboxMessage:
    """One message the locmem backend "sent"."""

    channel: str
    delivery_id: int
    notification_id: int
    recipient_id: Any
    type: str
    title: str
    body: str
    url: str
    data: dict[str, Any] = field(default_factory=dict)
    #: For a digest: the messages it holds (``type`` is then ``"digest"``).
    items: tuple[OutboxMessage, ...] = ()

    @classmethod
    def from_delivery(cls, delivery: Delivery) -> OutboxMessage:
        notification = delivery.notification
        return cls(
            channel=delivery.channel,
            delivery_id=delivery.pk,
            notification_id=notification.pk,
            recipient_id=notification.recipient_id,
            type=notification.type,
            title=notification.title,
            body=notification.body,
            url=notification.url,
            data=dict(notification.data or {}),
        )

    @classmethod
    def digest_of(cls, deliveries: Sequence[Delivery]) -> OutboxMessage:
        items = tuple(cls.from_delivery(delivery) for delivery in deliveries)
        first = items[0]
        return cls(
            channel=first.channel,
            delivery_id=first.delivery_id,
            notification_id=first.notification_id,
            recipient_id=first.recipient_id,
            type="digest",
            title=f"{len(items)} notifications",
            body="\n".join(item.title for item in items),
            url="",
            items=items,
        )


#: Messages collected by the locmem backend; clear it between tests
#: (the ``notify_outbox`` fixture does).
outbox: list[OutboxMessage] = []


class Capture(list["Notification"]):
    """The notifications created inside a :func:`capture_notifications` block."""

    def of_type(self, key: str) -> list[Notification]:
        return [n for n in self if n.type == key]

    def for_user(self, user: Any) -> list[Notification]:
        user_id = getattr(user, "pk", user)
        return [n for n in self if n.recipient_id == user_id]


@contextmanager
def capture_notifications() -> Iterator[Capture]:
    """Collect every notification ``notify()`` creates inside the block::

    with capture_notifications() as sent:
        place_order()
    assert [n.type for n in sent] == ["new_order"]
    """
    from django_notify.signals import notification_created

    captured = Capture()

    def collect(*, notifications: Any, **kwargs: Any) -> None:
        captured.extend(notifications.order_by("pk"))

    notification_created.connect(
        collect,
        weak=False,
        dispatch_uid=("django_notify.testing.capture", id(captured)),
    )
    try:
        yield captured
    finally:
        notification_created.disconnect(dispatch_uid=("django_notify.testing.capture", id(captured)))


@contextmanager
def registered(*types: NotificationType | type[NotificationType]) -> Iterator[None]:
    """Register notification types for the block only::

    with registered(NotificationType(key="ping", title="Ping")):
        notify("ping", user)
    """
    from django_notify.registry import registry

    done = []
    try:
        for notification_type in types:
            registry.register(notification_type)
            done.append(notification_type)
        yield
    finally:
        for notification_type in done:
            registry.unregister(notification_type)

"""The in-app inbox channel."""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING, ClassVar

from django_notify.backends.base import BaseChannelBackend, DeliveryResult

if TYPE_CHECKING:
    from django_notify.models import Delivery


class InAppBackend(BaseChannelBackend):
    """The inbox. A notification row is its own in-app delivery.

    ``notify()`` makes the row visible in the recipient's inbox (at once, or at
    ``send_at``) and creates no outbox rows for this channel.
    """

    is_inbox: ClassVar[bool] = True

    def send_batch(self, deliveries: Sequence[Delivery], *, deadline: float | None = None) -> list[DeliveryResult]:
        # Nothing to send: the inbox reads the notification table directly.
        return [DeliveryResult.sent(delivery) for delivery in deliveries]

"""A channel backend that sends nothing, and the one-task-per-message baseline task.

:class:`SinkBackend` answers ``sent`` for every delivery without I/O and keeps
nothing (unlike ``LocMemBackend``, whose outbox would grow in a long-lived worker),
so the benchmark measures the engine and the queue, not a provider.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from django.db.models import F
from django.utils import timezone

from django_notify.backends.base import BaseChannelBackend, DeliveryResult, Outcome

if TYPE_CHECKING:
    from django_notify.models import Delivery


class SinkBackend(BaseChannelBackend):
    """Accept every delivery at once; send and keep nothing."""

    def send(self, delivery: Delivery) -> DeliveryResult:
        return DeliveryResult.sent(delivery)


def send_one(delivery_id: int) -> str:
    """The naive design: one django-q2 task per message, enqueued by the app.

    Loads its delivery, sends it with the same no-op backend, marks it sent.
    """
    from django_notify.channels import channels
    from django_notify.models import Delivery

    delivery = Delivery.objects.select_related("notification").get(pk=delivery_id)
    result = channels[delivery.channel].send(delivery)
    now = timezone.now()
    status = "sent" if result.outcome is Outcome.SENT else "failed"
    Delivery.objects.filter(pk=delivery_id).update(
        status=status, attempts=F("attempts") + 1, sent_at=now, finished_at=now
    )
    return status

"""A backend for development: prints each message to standard output."""

from __future__ import annotations

import sys
from typing import TYPE_CHECKING

from django_notify.backends.base import BaseChannelBackend, DeliveryResult

if TYPE_CHECKING:
    from django_notify.models import Delivery


class ConsoleBackend(BaseChannelBackend):
    """Write each delivery to ``sys.stdout``, like Django's console email backend."""

    def send(self, delivery: Delivery) -> DeliveryResult:
        notification = delivery.notification
        lines = [
            f"[{self.alias}] delivery {delivery.pk} to user {notification.recipient_id} ({notification.type})",
            f"Title: {notification.title}",
        ]
        if notification.body:
            lines.append(notification.body)
        if notification.url:
            lines.append(f"Link: {notification.url}")
        sys.stdout.write("\n".join(lines) + "\n" + "-" * 79 + "\n")
        sys.stdout.flush()
        return DeliveryResult.sent(delivery, destination="console")

"""Retention: delete old rows in small batches (no long locks, works on MySQL)."""

from __future__ import annotations

import datetime as dt
from typing import Any

from django.db import router
from django.db.models import QuerySet
from django.utils import timezone

from django_notify.conf import notify_settings
from django_notify.models import TERMINAL_STATUSES, Delivery, EngagementEvent, Notification

BATCH = 1000


def purge(*, now: dt.datetime | None = None, dry_run: bool = False) -> dict[str, int]:
    """Delete notifications, finished deliveries and events past their retention.

    Also deletes notifications that expired more than a day ago. Returns the
    number of rows deleted (or that would be) per kind.
    """
    now = now or timezone.now()
    using = router.db_for_write(Notification)
    counts = {"notifications": 0, "deliveries": 0, "events": 0}
    old_notifications = Notification.objects.using(using).filter(expires_at__lt=now - dt.timedelta(days=1))
    if notify_settings.NOTIFICATION_RETENTION_DAYS is not None:
        cutoff = now - dt.timedelta(days=notify_settings.NOTIFICATION_RETENTION_DAYS)
        old_notifications = old_notifications | Notification.objects.using(using).filter(created_at__lt=cutoff)
    counts["notifications"] = _delete(old_notifications, dry_run)
    if notify_settings.DELIVERY_RETENTION_DAYS is not None:
        cutoff = now - dt.timedelta(days=notify_settings.DELIVERY_RETENTION_DAYS)
        finished = Delivery.objects.using(using).filter(status__in=TERMINAL_STATUSES, finished_at__lt=cutoff)
        counts["deliveries"] = _delete(finished, dry_run)
    if notify_settings.EVENT_RETENTION_DAYS is not None:
        cutoff = now - dt.timedelta(days=notify_settings.EVENT_RETENTION_DAYS)
        counts["events"] = _delete(EngagementEvent.objects.using(using).filter(created_at__lt=cutoff), dry_run)
    return counts


def _delete(queryset: QuerySet[Any], dry_run: bool) -> int:
    """Delete in primary-key order, oldest first, ``BATCH`` rows per statement.

    Ordered by key, the database reads the oldest rows first and stops at a batch,
    so each round is cheap even without an index on the time column.
    """
    if dry_run:
        return queryset.count()
    total = 0
    model = queryset.model
    while True:
        ids = list(queryset.order_by("pk").values_list("pk", flat=True)[:BATCH])
        if not ids:
            return total
        # Through the ORM, so cascades (a notification's deliveries and events) follow.
        model._default_manager.using(queryset.db).filter(pk__in=ids).delete()
        total += len(ids)

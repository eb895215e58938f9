"""Entry points run by django-q2 workers (and by ``notify_process``).

Tasks carry no arguments but settings: each one claims due rows itself, so a
task is never tied to deliveries that another worker already sent, and a task
re-run by django-q2 after a crash finds only what is still due. Expected
delivery failures are recorded on the rows; these functions do not raise for them.
"""

from __future__ import annotations

import logging
from typing import Any

from django.apps import apps
from django.utils import timezone

from django_notify import delivery, queue
from django_notify.conf import notify_settings

logger = logging.getLogger(__name__)


def _time_budget() -> float:
    # Finish well inside django-q2's timeout (checked to be below the lease).
    timeout = None
    if apps.is_installed("django_q"):
        from django.conf import settings

        timeout = getattr(settings, "Q_CLUSTER", {}).get("timeout")
    return 0.5 * float(timeout or notify_settings.LEASE_SECONDS / 2)


def deliver() -> dict[str, Any]:
    """Drain due deliveries in batches for at most half of django-q2's timeout."""
    queue.task_started()
    report = delivery.deliver_due(budget_seconds=_time_budget())
    queue.beat("worker")
    if delivery.due_count():
        queue.kick(delivery.due_count())  # out of time with work left: hand it on
    queue.wake_sweeper(report.next_due)
    return {"claimed": report.claimed, "sent": report.sent, "retried": report.retried, "failed": report.failed}


def sweep() -> dict[str, Any]:
    """Periodic upkeep: reclaim dead leases, expire, send digests, kick what is due."""
    now = timezone.now()
    queue.beat("sweeper", now)
    released = delivery.release_expired_leases(now=now)
    expired = delivery.expire_overdue(now=now)
    digests = delivery.send_digests(now=now)
    due = delivery.due_count(now=now)
    queue.kick(due)
    _reschedule()
    if released or expired or due:
        logger.info(
            "Sweep: %d leases released, %d expired, %d due, %d digest items sent", released, expired, due, digests.sent
        )
    return {"released": released, "expired": expired, "due": due, "digest_items": digests.sent}


def _reschedule() -> None:
    """Run the sweeper again when the earliest pending row falls due (within SWEEP_MINUTES)."""
    queue.wake_sweeper(delivery.next_due_time())


def cleanup() -> dict[str, int]:
    """Daily retention: delete what is older than the configured ages."""
    from django_notify.retention import purge

    return purge()

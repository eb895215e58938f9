"""How work reaches the workers: kicks after commit, the sweeper's schedule.

With ``DELIVERY_MODE = "queue"`` (the default), a commit that created due
deliveries enqueues a django-q2 task that drains them in batches. A burst of
``notify()`` calls enqueues one task, not one each: the ``kick`` row of
:class:`~django_notify.models.EngineState` marks a task as queued until it starts.
The sweeper (a django-q2 ``Schedule`` created after ``migrate``) is the guarantee
behind the kicks: it runs at least every ``SWEEP_MINUTES`` and is woken earlier for
a retry or a ``send_at`` that falls due sooner.
"""

from __future__ import annotations

import datetime as dt
import logging
import math
from typing import Any

from django.apps import apps
from django.conf import settings
from django.db import IntegrityError, router, transaction
from django.utils import timezone

from django_notify.conf import notify_settings
from django_notify.models import EngineState

logger = logging.getLogger(__name__)

SWEEP_SCHEDULE = "django_notify.sweep"
CLEANUP_SCHEDULE = "django_notify.cleanup"
DELIVER_TASK = "django_notify.tasks.deliver"
SWEEP_TASK = "django_notify.tasks.sweep"
CLEANUP_TASK = "django_notify.tasks.cleanup"

#: A queued kick older than this is assumed lost (e.g. a purged queue) and replaced.
KICK_STALE_AFTER = dt.timedelta(minutes=5)


def uses_queue() -> bool:
    return notify_settings.DELIVERY_MODE == "queue" and apps.is_installed("django_q")


def beat(key: str, now: dt.datetime | None = None) -> None:
    """Record a heartbeat (``"sweeper"``, ``"worker"``) for ``health/``."""
    value = now or timezone.now()
    states = EngineState.objects.using(router.db_for_write(EngineState))
    # A plain UPDATE, then an INSERT that yields to a concurrent one. update_or_create()
    # would SELECT … FOR UPDATE first, which on MySQL/MariaDB takes gap locks while the
    # row is missing: two workers' first beats then deadlock (error 1213).
    if not states.filter(key=key).update(value=value):
        states.bulk_create([EngineState(key=key, value=value)], ignore_conflicts=True)


def _claim_kick(now: dt.datetime) -> bool:
    """Mark a task as queued; False if one already is (it will deliver ours too)."""
    using = router.db_for_write(EngineState)
    state = EngineState.objects.using(using)
    free = state.filter(key="kick").filter(value__isnull=True) | state.filter(
        key="kick", value__lt=now - KICK_STALE_AFTER
    )
    if free.update(value=now):
        return True
    if state.filter(key="kick").exists():
        return False
    try:
        with transaction.atomic(using=using):
            state.create(key="kick", value=now)
    except IntegrityError:
        return False  # created by a concurrent kick
    return True


def task_started() -> None:
    """Called first by every delivery task: later commits must queue a new kick."""
    EngineState.objects.using(router.db_for_write(EngineState)).filter(key="kick").update(value=None)


def kick(due: int) -> None:
    """Get ``due`` newly committed deliveries sent, as ``DELIVERY_MODE`` says."""
    mode = notify_settings.DELIVERY_MODE
    if due <= 0 or mode == "manual":
        return
    if mode == "inline" or not apps.is_installed("django_q"):
        from django_notify.delivery import deliver_due

        deliver_due()
        return
    from django_q.tasks import async_task

    # One task drains everything, in batches; more run in parallel for a big fan-out.
    extra = min(math.ceil(due / notify_settings.BATCH_SIZE), _workers()) - 1
    if _claim_kick(timezone.now()):
        async_task(DELIVER_TASK, q_options={"group": "django_notify"})
    for _ in range(extra):
        async_task(DELIVER_TASK, q_options={"group": "django_notify"})


def _workers() -> int:
    configured = getattr(settings, "Q_CLUSTER", {}).get("workers")
    if isinstance(configured, int) and configured > 0:
        return configured
    from django_q.conf import Conf

    return int(Conf.WORKERS or 1)


def wake_sweeper(at: dt.datetime | None) -> None:
    """Make the sweeper run no later than ``at`` (a retry or ``send_at`` due then)."""
    if at is None or not uses_queue():
        return
    from django_q.models import Schedule

    at = max(at, timezone.now())
    Schedule.objects.filter(name=SWEEP_SCHEDULE, next_run__gt=at).update(next_run=at)


def ensure_schedules(**kwargs: Any) -> None:
    """Create or update the sweeper and cleanup schedules (idempotent; after migrate)."""
    if not uses_queue():
        return
    from django_q.models import Schedule

    using = kwargs.get("using") or router.db_for_write(Schedule)
    schedules = Schedule.objects.using(using)
    sweep, created = schedules.get_or_create(
        name=SWEEP_SCHEDULE,
        defaults={
            "func": SWEEP_TASK,
            "schedule_type": Schedule.MINUTES,
            "minutes": notify_settings.SWEEP_MINUTES,
            "repeats": -1,
            "next_run": timezone.now(),
        },
    )
    if not created and (sweep.func, sweep.minutes, sweep.schedule_type) != (
        SWEEP_TASK,
        notify_settings.SWEEP_MINUTES,
        Schedule.MINUTES,
    ):
        sweep.func, sweep.minutes, sweep.schedule_type, sweep.repeats = (
            SWEEP_TASK,
            notify_settings.SWEEP_MINUTES,
            Schedule.MINUTES,
            -1,
        )
        sweep.save()
    schedules.get_or_create(
        name=CLEANUP_SCHEDULE,
        defaults={"func": CLEANUP_TASK, "schedule_type": Schedule.DAILY, "repeats": -1, "next_run": timezone.now()},
    )

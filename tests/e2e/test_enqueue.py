"""What reaches the cluster: a rollback sends nothing (P2), a lost kick is recovered
by the sweeper within 90 s (P5); reference T4.

The sweeper is django-q2's ``Schedule`` "django_notify.sweep", run by the
cluster's own scheduler, which checks for due schedules every 30 s (see
``conftest``): a sweep happens at most ``SWEEP_MINUTES`` (1) after the previous
one, rounded up to the next 30 s tick.
"""

from __future__ import annotations

import datetime as dt
import time

import pytest
from django.db import transaction
from django.utils import timezone
from django_q.models import OrmQ, Task

from django_notify import notify
from django_notify.models import Delivery, Notification
from tests.e2e.conftest import ORDER
from tests.e2e.harness import wait_until

pytestmark = pytest.mark.django_db(transaction=True)

SWEEP_TASK = "django_notify.tasks.sweep"
#: The first sweep of a fresh cluster comes with its scheduler's first tick, 30 s
#: after it starts; allow some margin.
FIRST_SWEEP_TIMEOUT = 45


class Boom(Exception):
    pass


def sweeps(after=None):
    found = Task.objects.filter(func=SWEEP_TASK, success=True)
    if after is not None:
        found = found.filter(started__gt=after)
    return list(found.order_by("started"))


@pytest.mark.slow
def test_a_rolled_back_notify_sends_nothing(e2e):
    e2e.cluster()
    recipients = list(e2e.users(5, prefix="rolled-back"))
    with pytest.raises(Boom), transaction.atomic():
        notify("order_placed", recipients, context=ORDER, channels=["in_app", "webhook"])
        assert Delivery.objects.count() == 5  # written, inside the transaction
        raise Boom
    rolled_back_at = timezone.now()
    assert not Notification.objects.exists()
    assert not Delivery.objects.exists()
    assert not OrmQ.objects.exists(), "no task may be queued for a transaction that rolled back"

    # Wake the sweeper (as queue.wake_sweeper does), and commit a marker after the rollback:
    # the task its kick queues drains everything due, so whatever the rolled-back
    # transaction had left would be sent before or with it.
    e2e.reset_schedules(next_run=rolled_back_at)
    marker = e2e.deliveries(1, prefix="marker")
    e2e.sink.wait_for(marker, timeout=30)
    e2e.settle(marker, timeout=30, quiet=0)
    marker_sent = timezone.now()
    # Then a whole sweep ran, and found nothing due.
    sweep = wait_until(lambda: sweeps(after=marker_sent), FIRST_SWEEP_TIMEOUT, interval=0.2)[0]
    assert sweep.result["due"] == 0 and sweep.result["released"] == 0
    wait_until(lambda: not OrmQ.objects.exists(), 15)  # whatever that sweep queued has run

    assert dict(e2e.sink.counts()) == {marker[0]: 1}, "only the committed marker reached the sink"
    assert list(Delivery.objects.values_list("pk", flat=True)) == marker
    assert not e2e.log_problems()


@pytest.mark.slow
def test_a_lost_kick_is_delivered_by_the_sweeper_within_90_seconds(e2e):
    """No kick at all (``DELIVERY_MODE = "manual"`` here, as if the process died right
    after COMMIT): the sweeper finds the rows. Worst case: the rows are committed just
    after a sweep, so the sweeper's schedule is where the scheduler leaves it after
    running, a whole ``SWEEP_MINUTES`` away."""
    e2e.configure(producer_mode="manual")
    started = timezone.now()
    e2e.reset_schedules(next_run=started + dt.timedelta(minutes=1))
    e2e.cluster()

    committed = time.time()
    ids = e2e.deliveries(20, prefix="unkicked")
    assert not OrmQ.objects.exists(), "nothing may be queued: the kick is lost"
    e2e.sink.wait_for(ids, timeout=100)
    latency = max(r.at for r in e2e.sink.snapshot()) - committed

    print(f"lost kick: all {len(ids)} deliveries arrived {latency:.1f} s after the commit")
    assert latency < 90
    assert set(e2e.sink.counts().values()) == {1}
    e2e.settle(ids, timeout=30)
    assert dict(e2e.statuses()) == {"sent": len(ids)}
    found = sweeps(after=started)
    assert found and found[0].result["due"] == len(ids), "the sweeper found them"
    assert not e2e.log_problems()

"""Quiet hours across the 2026 daylight-saving changes, in a real cluster (P15; reference T13).

The cluster runs under libfaketime (``LD_PRELOAD`` + ``FAKETIME="@…"``): it starts
believing it is 23:30 local time in the recipient's zone on the night of a clock
change, and its clock ticks on from there (its forked workers continue it). The
test process keeps the real clock: it writes the rows with the fake times the
cluster needs (``next_attempt_at`` = the fake "now") and, since its own
``on_commit`` kick would be stamped with the real date, queues the ``deliver``
task itself with a broker lock in the fake past (:meth:`E2E.enqueue_deliver`).
The recipient's quiet hours are 22:00-07:00. The worker must defer the webhook
delivery to exactly 07:00 local time the next morning (as UTC, across the
change), send nothing, and keep the in-app notification; a cluster started at
07:00:05 local then sends it exactly once.
"""

from __future__ import annotations

import datetime as dt
from zoneinfo import ZoneInfo

import pytest
from django_q.models import OrmQ, Task

from django_notify import notify
from django_notify.models import Delivery, Notification, UserPreferences
from tests.e2e.conftest import ORDER
from tests.e2e.harness import wait_until

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.usefixtures("faketime")]

UTC = dt.timezone.utc
DELIVER_TASK = "django_notify.tasks.deliver"


def finished_deliver_tasks() -> int:
    return Task.objects.filter(func=DELIVER_TASK, success=True).count()


@pytest.mark.parametrize(
    ("zone", "night", "end_utc"),
    [
        # 23:30 local on the night of each 2026 change; the quiet hours end at 07:00 local.
        pytest.param(
            "Europe/Berlin", dt.date(2026, 3, 28), dt.datetime(2026, 3, 29, 5, 0, tzinfo=UTC), id="berlin-spring"
        ),
        pytest.param(
            "Europe/Berlin", dt.date(2026, 10, 24), dt.datetime(2026, 10, 25, 6, 0, tzinfo=UTC), id="berlin-autumn"
        ),
        pytest.param(
            "America/New_York", dt.date(2026, 3, 7), dt.datetime(2026, 3, 8, 11, 0, tzinfo=UTC), id="new-york-spring"
        ),
        pytest.param(
            "America/New_York", dt.date(2026, 10, 31), dt.datetime(2026, 11, 1, 12, 0, tzinfo=UTC), id="new-york-autumn"
        ),
    ],
)
def test_quiet_hours_defer_to_07_00_local_across_dst_then_send_once(e2e, zone, night, end_utc):
    e2e.configure(producer_mode="manual")
    evening = dt.datetime.combine(night, dt.time(23, 30), tzinfo=ZoneInfo(zone)).astimezone(UTC)
    assert end_utc.astimezone(ZoneInfo(zone)).time() == dt.time(7, 0)

    user = e2e.users(1, prefix="sleeper").get()
    UserPreferences.objects.create(user=user, timezone=zone, quiet_hours_start=dt.time(22), quiet_hours_end=dt.time(7))
    notify("order_placed", user, context=ORDER, channels=["in_app", "webhook"])
    Delivery.objects.update(next_attempt_at=evening, created_at=evening, expires_at=evening + dt.timedelta(days=2))
    pk = Delivery.objects.get().pk

    # 23:30 local: the worker defers the delivery to the end of the quiet hours.
    night_cluster = e2e.cluster(fake_start_utc=evening)
    e2e.enqueue_deliver(lock=evening - dt.timedelta(minutes=1))
    wait_until(finished_deliver_tasks, timeout=30, describe=lambda: f"row: {Delivery.objects.values().get()}")
    # (Task.started is the enqueue time, this process's; stopped is the worker's.)
    task = Task.objects.get(func=DELIVER_TASK)
    assert evening <= task.stopped < evening + dt.timedelta(minutes=1), "the worker ran on the fake clock"
    row = Delivery.objects.get(pk=pk)
    assert (row.status, row.attempts, row.last_error) == ("pending", 0, "deferred by quiet hours")
    assert row.next_attempt_at == end_utc
    assert e2e.sink.count() == 0, "nothing is sent during quiet hours"
    assert Notification.objects.filter(recipient=user, type="order_placed").count() == 1, "in-app is never held"
    night_cluster.stop()

    # 07:00:05 local: a new cluster sends it, once.
    morning = end_utc + dt.timedelta(seconds=5)
    e2e.cluster(fake_start_utc=morning)
    e2e.enqueue_deliver(lock=morning - dt.timedelta(minutes=1))
    e2e.sink.wait_for([pk], timeout=30)
    e2e.settle([pk], timeout=15, quiet=0)
    # One more task over the same rows: a sent delivery is never claimed again.
    e2e.enqueue_deliver(lock=morning - dt.timedelta(minutes=1))
    wait_until(lambda: finished_deliver_tasks() == 3 and not OrmQ.objects.exists(), timeout=30)

    row = Delivery.objects.get(pk=pk)
    assert (row.status, row.attempts) == ("sent", 1)
    assert morning <= row.sent_at < morning + dt.timedelta(minutes=1)
    assert dict(e2e.sink.counts()) == {pk: 1}
    assert not e2e.log_problems()

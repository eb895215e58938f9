"""Retries in a real cluster: the backoff (P6; reference T5) and hung calls (P8; T8).

A failed attempt puts the row back to ``pending`` at ``now + uniform(0, min(RETRY_MAX,
RETRY_BASE * 2**(attempt-1)))`` (1 s, 2 s, 4 s, 4 s… here) and moves the sweeper's
schedule to that time; the sweeper then kicks a ``deliver`` task. django-q2's
scheduler checks for due schedules every 30 s, so a retry comes at the first
scheduler tick after its ``next_attempt_at``: each gap between attempts is at most
the backoff ceiling plus that resolution.
"""

from __future__ import annotations

import datetime as dt
import time

import pytest
from django_q.models import Schedule

from django_notify import queue
from django_notify.models import Delivery
from tests.e2e.harness import wait_until
from tests.e2e.settings import ENGINE, WEBHOOK_TIMEOUT

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.slow]

#: django-q2's scheduler tick (30 s of guard loop; the loop's own overhead adds a little).
SCHEDULER_RESOLUTION = 31.0
#: Margin for the hops between the tick and the attempt: the sweep task, the
#: ``deliver`` task it queues, the pusher's poll, process start-up on a busy machine.
MARGIN = 4.0


def ceiling(attempt: int) -> float:
    """The largest backoff after failed attempt number ``attempt``."""
    return min(ENGINE["RETRY_MAX_SECONDS"], ENGINE["RETRY_BASE_SECONDS"] * 2 ** (attempt - 1))


def test_retries_follow_the_backoff_and_next_attempt_at(e2e):
    e2e.configure(producer_mode="manual")  # script the sink before the first attempt can start
    e2e.cluster()
    (pk,) = ids = e2e.deliveries(1)
    e2e.sink.fail_first[pk] = 3  # 503, 503, 503, then 201
    e2e.kick(1)

    # Watch the row between attempts: the retry time each failure recorded, and the sweeper's schedule.
    retry_at: dict[int, dt.datetime] = {}
    sweeper_at: dict[int, dt.datetime] = {}
    deadline = time.monotonic() + 4 * (SCHEDULER_RESOLUTION + MARGIN + ceiling(4))
    while time.monotonic() < deadline:
        row = Delivery.objects.get(pk=pk)
        if row.status == "sent":
            break
        if row.status == "pending" and row.attempts >= 1:
            retry_at[row.attempts] = row.next_attempt_at
            assert "HTTP 503" in row.last_error
            # The task wakes the sweeper right after recording the retry: keep the earliest run seen.
            next_run = Schedule.objects.get(name=queue.SWEEP_SCHEDULE).next_run
            sweeper_at[row.attempts] = min(next_run, sweeper_at.get(row.attempts, next_run))
        time.sleep(0.02)
    e2e.settle(ids, timeout=5)

    row = Delivery.objects.get(pk=pk)
    assert (row.status, row.attempts) == ("sent", 4)
    requests = e2e.sink.of(pk)
    assert [r.status for r in requests] == [503, 503, 503, 201]
    assert [r.attempt for r in requests] == [1, 2, 3, 4]
    assert set(retry_at) <= {1, 2, 3}
    gaps = []
    for n in (1, 2, 3):
        failed, retried = requests[n - 1].at, requests[n].at
        gaps.append(round(retried - failed, 2))
        # The retry came at the latest one scheduler tick after the backoff ceiling.
        assert 0 <= retried - failed <= ceiling(n) + SCHEDULER_RESOLUTION + MARGIN
        if n not in retry_at:
            # Never seen pending: a backoff drawn near 0 let the same task claim the row
            # again within milliseconds, before this loop's next look.
            assert retried - failed < 0.5
            continue
        planned = retry_at[n].timestamp()
        # The backoff drawn after attempt n is within [0, ceiling(n)] of that attempt
        # (measured from its arrival at the sink, just before the worker recorded it)...
        assert failed - 0.5 <= planned <= failed + ceiling(n) + 1.0
        # ...no attempt came before it...
        assert retried >= planned
        # ...and the sweeper was woken for it (its next run moved from a minute away to
        # that time; to "now" if the time had passed when the task got there).
        assert sweeper_at[n] <= retry_at[n] + dt.timedelta(seconds=1)
    print(f"gaps between attempts: {gaps} s (ceilings {[ceiling(n) for n in (1, 2, 3)]} s + {SCHEDULER_RESOLUTION} s)")
    assert not e2e.log_problems()


def test_a_hung_call_times_out_and_the_rest_keep_flowing(e2e):
    """The sink never answers the first request of a few deliveries. Each of those attempts
    gives up after the webhook timeout, the rest of the traffic keeps arriving, and the
    hung deliveries are retried and sent once the sink answers again."""
    e2e.configure(q={"workers": 2}, producer_mode="manual")  # script the sink first
    e2e.sink.delay = 0.002
    e2e.cluster()
    ids = e2e.deliveries(1_000)
    hung = [ids[5], ids[160], ids[330]]
    for pk in hung:
        e2e.sink.hang_first[pk] = 1
    e2e.kick(len(ids))
    e2e.settle(ids, timeout=SCHEDULER_RESOLUTION + 30)

    requests = e2e.sink.snapshot()
    counts = e2e.sink.counts()
    assert set(counts) == set(ids)
    assert {pk: counts[pk] for pk in hung} == dict.fromkeys(hung, 2), "hung once, then sent on the retry"
    assert all(counts[pk] == 1 for pk in set(ids) - set(hung)), "everything else exactly once"
    assert dict(e2e.statuses()) == {"sent": len(ids)}
    attempts = dict(Delivery.objects.values_list("pk", "attempts"))
    assert {pk: attempts[pk] for pk in hung} == dict.fromkeys(hung, 2)
    assert {attempts[pk] for pk in set(ids) - set(hung)} == {1}

    others_during = []
    for pk in hung:
        hang = next(r for r in requests if r.delivery_id == pk and r.status is None)
        after = [r for r in requests if r.at > hang.at and r.delivery_id not in hung]
        # The attempt gave up after the timeout: the traffic resumed by then at the latest.
        assert after and after[0].at - hang.at <= WEBHOOK_TIMEOUT + 0.5
        others_during.append(sum(1 for r in after if r.at < hang.at + WEBHOOK_TIMEOUT))
    print(f"requests of other deliveries during each {WEBHOOK_TIMEOUT:g} s hang: {others_during}")
    assert sum(others_during) > 0, "the other worker kept sending during the hangs"
    # No worker was killed for overrunning django-q2's timeout.
    assert not e2e.log_problems()


def test_a_slow_provider_never_outlasts_the_task_timeout(e2e):
    """Every call answers, slowly (0.3 s), so sending one claimed batch (20 rows: 6 s)
    takes longer than django-q2's task ``timeout`` (5 s). Nothing crashes, so nothing may
    be sent twice (P3), and no batch may outlast the django-q timeout (P8): the engine
    must stop sending at the task's time budget and hand the rest on.

    Why it matters: django-q2 enforces ``timeout`` with SIGALRM raising
    ``TimeoutException`` (a ``SystemExit``) inside the task, then replaces the worker.
    A batch cut there records nothing: its rows stay ``sending``, those the provider
    already accepted are sent again when the sweeper releases the lease, and the next
    attempt is cut the same way.
    """
    e2e.configure(q={"workers": 1}, notify={"BATCH_SIZE": 20})
    e2e.sink.delay = 0.3
    cluster = e2e.cluster()
    ids = e2e.deliveries(40)

    def done_or_broken():
        counts = e2e.sink.counts()
        twice = [pk for pk, n in counts.items() if n > 1]
        killed = "after timeout" in cluster.log()
        return twice or killed or (len(counts) == len(ids) and e2e.statuses() == {"sent": len(ids)})

    wait_until(done_or_broken, timeout=90, interval=0.1)
    killed = [line for line in cluster.log().splitlines() if "after timeout" in line or "exceeded maximum" in line]
    assert not killed, "a worker overran django-q2's timeout mid-batch:\n" + "\n".join(killed[:5])
    twice = {pk: n for pk, n in e2e.sink.counts().items() if n > 1}
    assert not twice, f"sent more than once without any crash: {twice}"
    e2e.settle(ids, timeout=30)
    assert dict(e2e.statuses()) == {"sent": len(ids)}

"""No concurrent double-send: many workers, two clusters, two brokers (P4, reference T3).

Each test commits its deliveries with ``notify()`` in the test process; the
``on_commit`` kick puts ``deliver`` tasks in the broker, and the cluster(s) claim,
send and record. The oracle is the sink: every delivery id must arrive exactly
once, with no crash injected.
"""

from __future__ import annotations

import pytest

from django_notify.models import Delivery

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.slow]

#: Seconds the sink takes per request in the two-cluster tests. The kick queues one
#: task per worker of *this* process's ``Q_CLUSTER`` (2), and each task hands the rest
#: on when its time budget runs out; a slow provider makes the run outlast several
#: budgets, so the hand-on tasks are spread over both clusters' pushers.
SLOW_PROVIDER = 0.003


def assert_exactly_once(e2e, ids):
    counts = e2e.sink.counts()
    assert set(counts) == set(ids), "the sink saw ids that were never created, or missed some"
    doubles = {pk: n for pk, n in counts.items() if n != 1}
    assert not doubles, f"{len(doubles)} deliveries were sent more than once: {dict(list(doubles.items())[:10])}"
    rows = Delivery.objects.filter(pk__in=ids)
    assert dict(e2e.statuses()) == {"sent": len(ids)}
    assert set(rows.values_list("attempts", flat=True)) == {1}
    assert not e2e.log_problems()


def test_each_delivery_exactly_once_at_scale(e2e):
    """10,000 deliveries and 4 workers (on SQLite they take turns to write; the claims are compare-and-set)."""
    count, workers = 10_000, 4
    e2e.configure(q={"workers": workers})
    e2e.cluster()
    ids = e2e.deliveries(count)
    e2e.settle(ids, timeout=120)
    assert_exactly_once(e2e, ids)
    if workers > 1:
        # The batches really were claimed concurrently: more tasks ran than one worker's worth.
        assert e2e.tasks_run(e2e.clusters[0]) >= 2


def test_two_clusters_sharing_the_database(e2e):
    """Two machines: two ``qcluster`` processes, same name and SECRET_KEY, one ORM queue."""
    e2e.configure(q={"workers": 2})
    e2e.sink.delay = SLOW_PROVIDER
    first, second = e2e.cluster(), e2e.cluster()
    ids = e2e.deliveries(10_000)
    e2e.settle(ids, timeout=120)
    assert_exactly_once(e2e, ids)
    assert e2e.tasks_run(first) >= 1 and e2e.tasks_run(second) >= 1, "both clusters must have taken part"


def test_two_clusters_sharing_the_redis_broker(redis_broker, e2e):
    """django-q2's queue in Redis, the outbox still in the database: each delivery once.

    (``redis_broker`` comes first: its flush at teardown runs after the clusters stopped.)
    """
    from django_q.models import OrmQ

    e2e.configure(q={"workers": 2, "redis": redis_broker})
    e2e.sink.delay = SLOW_PROVIDER
    first, second = e2e.cluster(), e2e.cluster()
    ids = e2e.deliveries(10_000)
    e2e.settle(ids, timeout=120)
    assert_exactly_once(e2e, ids)
    assert not OrmQ.objects.exists(), "with the Redis broker nothing may be queued in the database"
    assert e2e.tasks_run(first) >= 1 and e2e.tasks_run(second) >= 1, "both clusters must have taken part"

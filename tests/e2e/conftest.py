"""Fixtures of the end-to-end tests: a real ``qcluster`` against the test database.

**Two processes, one database.** The test process keeps ``tests.settings`` (the
settings of the whole pytest run); the cluster runs ``tests.e2e.settings``, told
the name of the test database pytest-django created. On SQLite that database
must be a file another process can open, so this conftest points
``DATABASES["default"]["TEST"]["NAME"]`` at a temporary file as soon as it is
imported (before any test database exists; in a run that collects these tests
the whole run then uses that file instead of ``:memory:``).

**How work reaches the cluster: the production path.** The test process plays a
web process configured like the cluster: ``DJANGO_NOTIFY`` is the cluster's
(same channels, ``DELIVERY_MODE = "queue"``), and django-q2's ``Conf.SYNC``,
which ``tests.settings`` turns on for the unit tests and django-q2 reads once at
import, is switched off for the test (``monkeypatch``). So ``notify()`` commits
its rows, its ``on_commit`` kick runs ``queue.kick()``, and ``async_task()``
signs the task (same ``SECRET_KEY``, same ``Q_CLUSTER["name"]``) and writes it
to the broker the cluster reads: an ``OrmQ`` row in the test database, or the
Redis list when a test configures the Redis broker (``Conf.ORM``/``Conf.REDIS``
are switched the same way). The cluster's pusher dequeues it, a worker runs
``django_notify.tasks.deliver``, which claims rows and POSTs them to the sink.
Nothing in the test process calls the engine. Tests of the sweeper set
``DELIVERY_MODE = "manual"`` in the test process instead (no kick at all), and
tests that run the cluster under a fake clock enqueue the task themselves with a
broker lock in the fake past (:meth:`E2E.enqueue_deliver`).

django-q2's scheduler, which runs the sweeper, only checks for due schedules
every 30 s of its guard loop (``counter += guard_cycle; if counter >= 30``),
whatever ``guard_cycle`` is: anything that waits for a sweep (a released lease,
a retry) waits up to that long.
"""

from __future__ import annotations

import atexit
import datetime as dt
import json
import os
import shutil
import tempfile
import time
from collections import Counter
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from django.conf import settings as django_settings
from django.contrib.auth import get_user_model
from django.db import connection
from django.test import override_settings
from django.utils import timezone

from tests.e2e import settings as e2e_settings
from tests.e2e.harness import FAKETIME_LIBRARY, ROOT, Cluster, Sink, faketime_env, wait_until

SQLITE = connection.vendor == "sqlite"
ORDER = {"order_number": "E2E-1", "total": "1.00"}
TERMINAL = ("sent", "failed", "skipped", "expired")
REDIS_DB = 7  # flushed before and after each Redis test; nothing else may use it

if SQLITE:
    # Another process cannot open an in-memory database: test on a file.
    _sqlite_dir = tempfile.mkdtemp(prefix="dn_e2e_sqlite_")
    atexit.register(shutil.rmtree, _sqlite_dir, True)
    _default = django_settings.DATABASES["default"]
    _default.setdefault("TEST", {})["NAME"] = os.path.join(_sqlite_dir, "test.sqlite3")
    # As the cluster (tests/e2e/settings.py): wait for locks, take the write lock at BEGIN.
    _default["OPTIONS"] = {**_default.get("OPTIONS", {}), "timeout": 20, "transaction_mode": "IMMEDIATE"}


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo[None]) -> Iterator[None]:
    """Attach the tail of every cluster log to a failed test's report."""
    outcome = yield
    report = outcome.get_result()  # type: ignore[attr-defined]
    harness: E2E | None = getattr(item, "_e2e", None)
    if report.failed and harness is not None:
        harness.failed = True
        for cluster in harness.clusters:
            lines = cluster.log().splitlines()
            report.sections.append((f"{cluster.label} log ({cluster.log_path})", "\n".join(lines[-150:])))


class E2E:
    """One test's world: its sink, its clusters, and the test process's settings."""

    def __init__(self, request: pytest.FixtureRequest, settings: Any, monkeypatch: pytest.MonkeyPatch) -> None:
        self.request = request
        self.settings = settings
        self.monkeypatch = monkeypatch
        self.sink = Sink().start()
        self.clusters: list[Cluster] = []
        self.logs = Path(tempfile.mkdtemp(prefix="dn_e2e_logs_"))
        self.q_overrides: dict[str, Any] = {}
        self.notify_overrides: dict[str, Any] = {}
        self.failed = False
        self.user_batches = 0
        #: Extra environment of the clusters started from now on (``DN_E2E_SMTP_PORT``).
        self.env: dict[str, str] = {}
        self.configure()

    # Configuration shared by the test process and the clusters ---------------------

    def configure(
        self,
        *,
        q: dict[str, Any] | None = None,
        notify: dict[str, Any] | None = None,
        producer_mode: str = "queue",
    ) -> None:
        """Set the clusters' ``Q_CLUSTER``/``DJANGO_NOTIFY`` overrides and the test process's settings.

        ``producer_mode`` is the test process's ``DELIVERY_MODE``: ``"queue"`` kicks
        the cluster after each commit, ``"manual"`` leaves the rows to the sweeper.
        """
        from django_q.conf import Conf

        self.q_overrides = dict(q or {})
        self.notify_overrides = dict(notify or {})
        q_cluster = e2e_settings.q_cluster(self.q_overrides)
        # django-q2 signs tasks with SECRET_KEY and the cluster name: a mismatch drops them silently.
        assert q_cluster["name"] == Conf.PREFIX
        assert e2e_settings.SECRET_KEY == django_settings.SECRET_KEY == Conf.SECRET_KEY
        self.settings.Q_CLUSTER = q_cluster
        self.settings.DJANGO_NOTIFY = {
            **e2e_settings.notify_settings(self.sink.port, self.notify_overrides),
            "DELIVERY_MODE": producer_mode,
        }
        # django-q2 read tests.settings' Q_CLUSTER at import: make this process's
        # async_task() write to the broker the cluster reads, as a web process would.
        self.monkeypatch.setattr(Conf, "SYNC", False)
        if "redis" in q_cluster:
            self.monkeypatch.setattr(Conf, "ORM", None)
            self.monkeypatch.setattr(Conf, "REDIS", q_cluster["redis"])
        else:
            self.monkeypatch.setattr(Conf, "ORM", "default")

    @property
    def notify_settings(self) -> dict[str, Any]:
        return e2e_settings.notify_settings(self.sink.port, self.notify_overrides)

    # Clusters -------------------------------------------------------------------

    def cluster(self, *, fake_start_utc: dt.datetime | None = None, ready: bool = True) -> Cluster:
        """Start a ``qcluster`` with the current configuration (optionally under libfaketime)."""
        label = f"qcluster-{len(self.clusters) + 1}"
        env = {
            **os.environ,
            "DJANGO_SETTINGS_MODULE": "tests.e2e.settings",
            "PYTHONPATH": os.pathsep.join([str(ROOT), *filter(None, [os.environ.get("PYTHONPATH")])]),
            "PYTHONUNBUFFERED": "1",
            "DN_E2E_DB_NAME": str(connection.settings_dict["NAME"]),
            "DN_E2E_SINK_PORT": str(self.sink.port),
            "DN_E2E_Q_CLUSTER": json.dumps(self.q_overrides),
            "DN_E2E_NOTIFY": json.dumps(self.notify_overrides),
            **self.env,
        }
        if fake_start_utc is not None:
            env.update(faketime_env(fake_start_utc.astimezone(dt.timezone.utc).strftime("%Y-%m-%d %H:%M:%S")))
            label += f"@{fake_start_utc:%Y-%m-%dT%H:%M:%S%z}"
        cluster = Cluster(label, self.logs / f"{label.split('@')[0]}.log", env)
        self.clusters.append(cluster)
        cluster.start()
        if ready:
            cluster.wait_ready()
        return cluster

    def close(self) -> None:
        try:
            for cluster in self.clusters:
                cluster.stop(timeout=20)
        finally:
            self.sink.close()
        leftovers = [c.label for c in self.clusters if c.alive()]
        assert not leftovers, f"clusters still running after teardown: {leftovers}"
        if not self.failed:
            shutil.rmtree(self.logs, ignore_errors=True)

    def log_problems(self) -> list[str]:
        """Lines of the cluster logs that a healthy run never writes."""
        markers = ("ERROR", "CRITICAL", "Traceback", "database is locked", "Lost the lease", "reincarnated")
        return [
            f"{cluster.label}: {line}"
            for cluster in self.clusters
            for line in cluster.log().splitlines()
            if any(marker in line for marker in markers)
        ]

    def tasks_run(self, cluster: Cluster, func: str = "django_notify.tasks.deliver") -> int:
        """How many times ``cluster``'s workers started ``func`` (from its log)."""
        return sum(1 for line in cluster.log().splitlines() if " processing " in line and f"'{func}'" in line)

    # Data -----------------------------------------------------------------------

    def users(self, count: int, prefix: str = "e2e") -> Any:
        """Create ``count`` users (one bulk insert); return them as a queryset."""
        self.user_batches += 1
        prefix = f"{prefix}-{self.user_batches}-"
        user_model = get_user_model()
        user_model.objects.bulk_create(
            [user_model(username=f"{prefix}{i}", email=f"{prefix}{i}@example.com") for i in range(count)],
            batch_size=500,
        )
        return user_model.objects.filter(username__startswith=prefix)

    def deliveries(
        self, count: int, *, prefix: str = "e2e", channels: tuple[str, ...] = ("webhook",), **notify_kwargs: Any
    ) -> list[int]:
        """Commit ``count`` notifications, each with one ``webhook`` delivery; return the delivery ids."""
        from django_notify import notify
        from django_notify.models import Delivery

        before = set(Delivery.objects.values_list("pk", flat=True))
        result = notify(
            "order_placed", self.users(count, prefix), context=ORDER, channels=list(channels), **notify_kwargs
        )
        assert result.created == count
        ids = sorted(set(Delivery.objects.filter(channel="webhook").values_list("pk", flat=True)) - before)
        assert len(ids) == count
        return ids

    def statuses(self) -> Counter[str]:
        from django_notify.models import Delivery

        return Counter(Delivery.objects.values_list("status", flat=True))

    def settle(self, ids: list[int], timeout: float, quiet: float = 1.5) -> None:
        """Wait until every delivery of ``ids`` is final and the sink has been idle for ``quiet`` s."""
        from django_notify.models import Delivery

        def settled() -> bool:
            if Delivery.objects.filter(pk__in=ids).exclude(status__in=TERMINAL).exists():
                return False
            last = max((r.at for r in self.sink.snapshot()), default=0.0)
            return time.time() - last >= quiet

        wait_until(
            settled,
            timeout,
            interval=0.2,
            describe=lambda: f"statuses {dict(self.statuses())}, sink saw {self.sink.count()} requests",
        )

    # The queue ------------------------------------------------------------------

    def reset_schedules(self, next_run: dt.datetime | None = None) -> Any:
        """(Re)create the sweeper schedule (as ``migrate`` does) due at ``next_run`` (default: now)."""
        from django_q.models import Schedule

        from django_notify import queue

        with override_settings(DJANGO_NOTIFY={**self.notify_settings, "DELIVERY_MODE": "queue"}):
            queue.ensure_schedules()
        Schedule.objects.filter(name=queue.SWEEP_SCHEDULE).update(next_run=next_run or timezone.now())
        return Schedule.objects.get(name=queue.SWEEP_SCHEDULE)

    def kick(self, due: int) -> None:
        """Run the kick ``notify()`` runs after its commit (for rows created in ``"manual"`` mode)."""
        from django_notify import queue

        with override_settings(DJANGO_NOTIFY={**self.notify_settings, "DELIVERY_MODE": "queue"}):
            queue.kick(due)

    def enqueue_deliver(self, lock: dt.datetime | None = None) -> None:
        """Put one ``deliver`` task in the ORM queue, visible to the cluster from ``lock`` on."""
        from django_q.models import OrmQ
        from django_q.tasks import async_task

        from django_notify import queue

        before = set(OrmQ.objects.values_list("pk", flat=True))
        async_task(queue.DELIVER_TASK, q_options={"group": "django_notify", "sync": False})
        if lock is not None:
            OrmQ.objects.exclude(pk__in=before).update(lock=lock)


@pytest.fixture
def e2e(
    request: pytest.FixtureRequest, transactional_db: None, settings: Any, monkeypatch: pytest.MonkeyPatch
) -> Iterator[E2E]:
    """The sink, the test process configured as a producer, and a cluster factory.

    Depends on ``transactional_db`` so that its teardown (stopping every cluster)
    runs before pytest-django empties the database.
    """
    harness = E2E(request, settings, monkeypatch)
    request.node._e2e = harness  # type: ignore[attr-defined]
    harness.reset_schedules()
    try:
        yield harness
    finally:
        harness.close()


@pytest.fixture
def redis_broker() -> Iterator[dict[str, Any]]:
    """django-q2's Redis broker settings on a dedicated database, flushed before and after."""
    redis = pytest.importorskip("redis", reason="the redis package is not installed (pip install redis)")
    options = {"host": "127.0.0.1", "port": 6379, "db": REDIS_DB}
    client = redis.Redis(**options)
    try:
        client.ping()
    except redis.RedisError as exc:
        pytest.skip(f"no Redis server at 127.0.0.1:6379: {exc}")
    client.flushdb()
    try:
        yield options
    finally:
        client.flushdb()
        client.close()


@pytest.fixture
def faketime() -> None:
    """Skip unless libfaketime is installed (apt-get install faketime)."""
    if FAKETIME_LIBRARY is None:
        pytest.skip("libfaketime is not installed (libfaketime.so.1 not found; apt-get install faketime)")


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """Mark every test of this directory ``e2e`` (``-m "not e2e"`` skips them all)."""
    here = Path(__file__).parent
    for item in items:
        if item.path.is_relative_to(here):
            item.add_marker(pytest.mark.e2e)

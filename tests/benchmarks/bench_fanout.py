"""Fan-out and inbox-read benchmark for django_notify (a script, not a test).

    python tests/benchmarks/bench_fanout.py                  # SQLite and PostgreSQL
    python tests/benchmarks/bench_fanout.py --db sqlite --users 10000 --reps 5
    python tests/benchmarks/bench_fanout.py --json results.json

For each database it runs, in one process on a fresh database:

* the baseline: one ``INSERT`` per recipient (``Notification(...).save()`` in a
  loop, autocommit, as django-notifications-hq does), and the same loop inside
  ``transaction.atomic()``;
* ``notify()`` to a queryset of N users, in-app only, and with pending outbox rows
  for two more channels; the number of SQL queries for N and 2N recipients;
* the inbox read path for one user with 10,000 unread notifications among 110,000
  rows: unread count and first page, through the ORM and through the API views;
* peak memory growth of ``notify()`` to 100,000 recipients (Python heap by
  tracemalloc, and process RSS).

PostgreSQL is reached at ``--pg-url`` (default 127.0.0.1:5432, user postgres); a
scratch database is created and dropped. Figures are medians of ``--reps`` runs.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
import tracemalloc
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[2]


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--db", choices=["sqlite", "postgres", "both"], default="both")
    parser.add_argument("--users", type=int, default=10_000, help="recipients per fan-out (default 10,000)")
    parser.add_argument("--reps", type=int, default=3, help="timed repetitions per figure (median reported)")
    parser.add_argument("--memory-users", type=int, default=100_000, help="recipients for the memory run")
    parser.add_argument("--pg-url", default="postgres://postgres@127.0.0.1:5432/postgres")
    parser.add_argument("--json", type=Path, help="also write the figures to this file")
    parser.add_argument("--child", help=argparse.SUPPRESS)  # internal: DATABASE_URL of one run
    parser.add_argument("--phase", default="main", help=argparse.SUPPRESS)  # internal: "main" or "memory"
    return parser.parse_args()


# -- parent: one child process per database ----------------------------------------


def main() -> None:
    args = parse_args()
    if args.child:
        print(json.dumps(run_child(args)))
        return
    results = {}
    for vendor in ["sqlite", "postgres"] if args.db == "both" else [args.db]:
        with scratch_database(vendor, args.pg_url) as url:
            print(f"== {vendor}: {url.split('@')[-1]}", file=sys.stderr, flush=True)
            command = [sys.executable, __file__, "--child", url, "--users", str(args.users), "--reps", str(args.reps)]
            command += ["--memory-users", str(args.memory_users)]
            results[vendor] = {}
            # The memory run gets a fresh process, so nothing else has grown it before.
            for phase in ("main", "memory"):
                output = subprocess.run(
                    [*command, "--phase", phase], check=True, stdout=subprocess.PIPE, text=True, cwd=ROOT
                )
                results[vendor].update(json.loads(output.stdout.strip().splitlines()[-1]))
    print(report(results, args))
    if args.json:
        args.json.write_text(json.dumps(results, indent=2))


class scratch_database:
    def __init__(self, vendor: str, pg_url: str) -> None:
        self.vendor, self.pg_url = vendor, pg_url
        self.name = f"dn_bench_{os.getpid()}"

    def __enter__(self) -> str:
        if self.vendor == "sqlite":
            self.tmp = tempfile.TemporaryDirectory()
            return f"sqlite:///{self.tmp.name}/bench.sqlite3"
        import psycopg

        with psycopg.connect(self.pg_url.replace("postgres://", "postgresql://"), autocommit=True) as conn:
            conn.execute(f'DROP DATABASE IF EXISTS "{self.name}"')
            conn.execute(f'CREATE DATABASE "{self.name}"')
        return self.pg_url.rsplit("/", 1)[0] + "/" + self.name

    def __exit__(self, *exc: object) -> None:
        if self.vendor == "sqlite":
            self.tmp.cleanup()
            return
        import psycopg

        with psycopg.connect(self.pg_url.replace("postgres://", "postgresql://"), autocommit=True) as conn:
            conn.execute(f'DROP DATABASE IF EXISTS "{self.name}" WITH (FORCE)')


# -- child: the measurements on one database ---------------------------------------


def run_child(args: argparse.Namespace) -> dict[str, Any]:
    os.environ["DATABASE_URL"] = args.child
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "tests.settings")
    sys.path.insert(0, str(ROOT))
    import django

    django.setup()
    from django.conf import settings
    from django.core.management import call_command

    settings.ALLOWED_HOSTS = ["testserver"]  # the API views build absolute "next" links

    call_command("migrate", verbosity=0)
    bench = Bench(args)
    return bench.run() if args.phase == "main" else {"memory": bench.memory()}


class Bench:
    def __init__(self, args: argparse.Namespace) -> None:
        from django.db import connection

        from django_notify import NotificationType, registry

        self.args = args
        self.connection = connection
        self.vendor = connection.vendor
        registry.register(
            NotificationType(
                key="bench_in_app",
                category="orders",
                title="Order {{ number }} is ready",
                body="Table {{ table }} can collect order {{ number }}.",
                channels=["in_app"],
            )
        )
        registry.register(
            NotificationType(
                key="bench_three_channels",
                category="orders",
                title="Order {{ number }} is ready",
                body="Table {{ table }} can collect order {{ number }}.",
                channels=["in_app", "email", "sms"],
            )
        )
        self.context = {"number": "A-1042", "table": 7}

    def log(self, message: str) -> None:
        print(f"   {self.vendor}: {message}", file=sys.stderr, flush=True)

    # -- helpers -------------------------------------------------------------------

    def make_users(self, count: int, prefix: str) -> None:
        from django.contrib.auth import get_user_model

        user_model = get_user_model()
        batch = [user_model(username=f"{prefix}{i}", password="!") for i in range(count)]
        user_model.objects.bulk_create(batch, batch_size=2000)

    def users(self, prefix: str) -> Any:
        from django.contrib.auth import get_user_model

        return get_user_model().objects.filter(username__startswith=prefix)

    def clear(self) -> None:
        from django_notify.models import Delivery, Notification

        tables = [self.connection.ops.quote_name(model._meta.db_table) for model in (Delivery, Notification)]
        with self.connection.cursor() as cursor:
            if self.vendor == "postgresql":
                cursor.execute(f"TRUNCATE {', '.join(tables)} CASCADE")
            else:
                for table in tables:
                    cursor.execute(f"DELETE FROM {table}")
        if self.vendor == "postgresql":
            self.vacuum()

    def vacuum(self) -> None:
        with self.connection.cursor() as cursor:
            cursor.execute("VACUUM ANALYZE")

    def timed(self, func: Any, reps: int) -> list[float]:
        times = []
        for _ in range(reps):
            self.clear()
            start = time.perf_counter()
            func()
            times.append(time.perf_counter() - start)
        return times

    # -- measurements --------------------------------------------------------------

    def run(self) -> dict[str, Any]:
        n, reps = self.args.users, self.args.reps
        self.make_users(n, "fan")
        self.make_users(n, "more")  # a second population for the 2N query count
        recipients = self.users("fan")
        out: dict[str, Any] = {"vendor": self.vendor, "users": n, "reps": reps}

        self.log("baseline: one INSERT per recipient")
        out["loop_autocommit_s"] = statistics.median(
            self.timed(lambda: self.per_row_loop(recipients, atomic=False), reps)
        )
        out["loop_atomic_s"] = statistics.median(self.timed(lambda: self.per_row_loop(recipients, atomic=True), reps))

        from django_notify import notify

        self.log("notify(): in-app only, then three channels")
        notify("bench_in_app", recipients, context=self.context)  # warm-up: connection, caches
        out["notify_in_app_s"] = statistics.median(
            self.timed(lambda: notify("bench_in_app", recipients, context=self.context), reps)
        )
        out["notify_three_channels_s"] = statistics.median(
            self.timed(lambda: notify("bench_three_channels", recipients, context=self.context), reps)
        )
        out["queries"] = self.query_counts()

        self.log("inbox reads")
        out["reads"] = self.reads()

        self.make_users(self.args.memory_users, "mem")  # for the memory phase
        return out

    def per_row_loop(self, recipients: Any, *, atomic: bool) -> None:
        from django.db import transaction
        from django.utils import timezone

        from django_notify.models import Notification

        def loop() -> None:
            now = timezone.now()
            for user in recipients.only("pk"):
                Notification(
                    recipient=user,
                    type="bench_in_app",
                    category="orders",
                    title="Order A-1042 is ready",
                    body="Table 7 can collect order A-1042.",
                    created_at=now,
                    visible_at=now,
                ).save()

        if atomic:
            with transaction.atomic():
                loop()
        else:
            loop()

    def query_counts(self) -> dict[str, Any]:
        from django.test.utils import CaptureQueriesContext

        from django_notify import notify
        from django_notify.conf import notify_settings

        counts: dict[str, Any] = {"chunk_size": notify_settings.FANOUT_CHUNK_SIZE}
        everyone = self.users("fan") | self.users("more")
        for label, recipients in (("n", self.users("fan")), ("2n", everyone)):
            for key in ("bench_in_app", "bench_three_channels"):
                self.clear()
                with CaptureQueriesContext(self.connection) as queries:
                    notify(key, recipients, context=self.context)
                counts[f"{key}_{label}"] = len(queries)
        self.clear()
        return counts

    def reads(self) -> dict[str, Any]:
        from django.contrib.auth import get_user_model
        from rest_framework.test import APIRequestFactory, force_authenticate

        from django_notify import notify
        from django_notify.api.views import NotificationViewSet
        from django_notify.models import Notification

        # 110,000 rows: 10,000 unread for the target user, ~10 each for 10,000 others.
        target = get_user_model().objects.create(username="reader", password="!")
        others = self.users("fan")
        rounds = max(1, 100_000 // others.count())
        for _ in range(rounds):
            notify("bench_in_app", others, context=self.context)
        notify_many(target, 10_000, self.context)
        total = Notification.objects.count()
        if self.vendor == "postgresql":
            # Steady state, as autovacuum leaves it: no checkpoint flushing the
            # fan-out runs' writes while the reads are timed.
            self.vacuum()
            with self.connection.cursor() as cursor:
                cursor.execute("CHECKPOINT")

        factory = APIRequestFactory()
        list_view = NotificationViewSet.as_view({"get": "list"})
        count_view = NotificationViewSet.as_view({"get": "unread_count"})

        def api(view: Any, path: str) -> Any:
            request = factory.get(path)
            force_authenticate(request, user=target)
            response = view(request)
            response.render()
            return response

        assert api(count_view, "/unread-count/").data == {"count": 10_000}
        assert len(api(list_view, "/").data["results"]) == 20
        operations = {
            "orm_unread_count": lambda: Notification.objects.inbox(target).unread().count(),
            "orm_first_page": lambda: list(Notification.objects.inbox(target).newest_first()[:21]),
            "api_unread_count": lambda: api(count_view, "/unread-count/"),
            "api_first_page": lambda: api(list_view, "/"),
            "api_first_unread_page": lambda: api(list_view, "/?unread=true"),
        }
        figures: dict[str, Any] = {"rows_in_table": total, "unread_for_user": 10_000}
        for name, operation in operations.items():
            for _ in range(20):
                operation()  # warm-up
            samples = []
            for _ in range(200):
                start = time.perf_counter()
                operation()
                samples.append((time.perf_counter() - start) * 1000)
            figures[f"{name}_ms"] = statistics.median(samples)
        self.clear()
        return figures

    def memory(self) -> dict[str, Any]:
        """Run in a process of its own: setup, one warm-up call, then the measured call."""
        from django_notify import notify

        self.log(f"memory: {self.args.memory_users:,} recipients")
        recipients = self.users("mem")
        notify("bench_three_channels", recipients[:1], context=self.context)  # imports, caches, connection
        self.clear()
        rss_before = reset_peak_rss()
        start = time.perf_counter()
        result = notify("bench_three_channels", recipients, context=self.context)
        seconds = time.perf_counter() - start
        rss_growth_mb = (peak_rss_kb() - rss_before) / 1024
        assert result.created == self.args.memory_users
        self.clear()
        tracemalloc.start()
        notify("bench_three_channels", recipients, context=self.context)
        _current, peak = tracemalloc.get_traced_memory()
        tracemalloc.stop()
        self.clear()
        return {
            "recipients": self.args.memory_users,
            "deliveries": result.deliveries,
            "seconds": seconds,
            "rss_peak_growth_mb": rss_growth_mb,
            "python_heap_peak_mb": peak / 1024 / 1024,
        }


def _status_kb(field: str) -> int:
    with open("/proc/self/status") as status:
        for line in status:
            if line.startswith(field + ":"):
                return int(line.split()[1])
    raise LookupError(field)


def reset_peak_rss() -> int:
    """Reset the process's peak RSS to its current RSS (Linux); return that, in kB.

    Earlier phases of the benchmark allocate more than the measured call, so the
    lifetime peak (``ru_maxrss``) would hide its growth.
    """
    with open("/proc/self/clear_refs", "w") as clear_refs:
        clear_refs.write("5")
    return _status_kb("VmRSS")


def peak_rss_kb() -> int:
    return _status_kb("VmHWM")


def notify_many(user: Any, count: int, context: dict[str, Any]) -> None:
    """Give one user ``count`` notifications quickly (bulk insert, as history would)."""
    from django.utils import timezone

    from django_notify.models import Notification

    now = timezone.now()
    rows = [
        Notification(
            recipient=user,
            type="bench_in_app",
            category="orders",
            title=f"Order {i} is ready",
            body="Table 7 can collect it.",
            created_at=now,
            visible_at=now - timezone.timedelta(seconds=count - i),
        )
        for i in range(count)
    ]
    Notification.objects.bulk_create(rows, batch_size=1000)


# -- report -------------------------------------------------------------------------


def report(results: dict[str, dict[str, Any]], args: argparse.Namespace) -> str:
    lines = [
        f"# django_notify fan-out benchmark ({args.users:,} recipients, median of {args.reps})",
        "",
        "| figure | " + " | ".join(results) + " |",
        "|---|" + "---:|" * len(results),
    ]

    def row(label: str, fn: Any) -> None:
        lines.append(f"| {label} | " + " | ".join(fn(r) for r in results.values()) + " |")

    n = args.users
    row("baseline: INSERT per recipient, autocommit (notifications/s)", lambda r: f"{n / r['loop_autocommit_s']:,.0f}")
    row("baseline: INSERT per recipient, in atomic() (notifications/s)", lambda r: f"{n / r['loop_atomic_s']:,.0f}")
    row("notify(), in-app only (notifications/s)", lambda r: f"{n / r['notify_in_app_s']:,.0f}")
    row("  ratio to the autocommit loop", lambda r: f"{r['loop_autocommit_s'] / r['notify_in_app_s']:,.0f}x")
    row("  ratio to the atomic loop", lambda r: f"{r['loop_atomic_s'] / r['notify_in_app_s']:,.1f}x")
    row("notify(), in-app + 2 outbox channels (notifications/s)", lambda r: f"{n / r['notify_three_channels_s']:,.0f}")
    row(
        "queries for N / 2N recipients, in-app",
        lambda r: f"{r['queries']['bench_in_app_n']} / {r['queries']['bench_in_app_2n']}",
    )
    row(
        "queries for N / 2N recipients, 3 channels",
        lambda r: f"{r['queries']['bench_three_channels_n']} / {r['queries']['bench_three_channels_2n']}",
    )
    row("chunk size", lambda r: f"{r['queries']['chunk_size']:,}")
    for key, label in [
        ("orm_unread_count_ms", "unread count, ORM (ms)"),
        ("api_unread_count_ms", "unread count, API view (ms)"),
        ("orm_first_page_ms", "first page of 20, ORM (ms)"),
        ("api_first_page_ms", "first page of 20, API view (ms)"),
        ("api_first_unread_page_ms", "first unread page of 20, API view (ms)"),
    ]:
        row(label, lambda r, key=key: f"{r['reads'][key]:.2f}")
    row("memory run: recipients", lambda r: f"{r['memory']['recipients']:,}")
    row("memory run: seconds (3 channels)", lambda r: f"{r['memory']['seconds']:.2f}")
    row("memory run: peak RSS growth (MB)", lambda r: f"{r['memory']['rss_peak_growth_mb']:.1f}")
    row("memory run: Python heap peak (MB)", lambda r: f"{r['memory']['python_heap_peak_mb']:.1f}")
    return "\n".join(lines)


if __name__ == "__main__":
    main()

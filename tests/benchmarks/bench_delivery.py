"""Delivery benchmark for django_notify with a real django-q2 cluster (a script, not a test).

    python tests/benchmarks/bench_delivery.py                        # about 5 minutes
    python tests/benchmarks/bench_delivery.py --baseline-deliveries 2000 --reps 1
    python tests/benchmarks/bench_delivery.py --history 1000000 --json results.json --profile

On PostgreSQL only (the ORM broker's target), in a scratch database, it measures:

* **end to end**: ``notify()`` to N users on ``["in_app", "sink"]`` (N outbox rows;
  ``sink`` is a backend that answers ``sent`` without I/O) with ``DELIVERY_MODE =
  "queue"``, against a running ``python -m django qcluster`` (ORM broker, 2 workers,
  ``save_limit`` 0, ``CONN_MAX_AGE`` 600; see ``q_settings.py``). Timed from just
  before ``notify()`` until every row is ``sent`` (polled every 50 ms), plus the
  enqueue-to-first-attempt latency of each row (``sent_at - created_at``; the
  engine stamps ``sent_at`` with the time of the claim that sent the row);
* **the one-task-per-message baseline**: the same kind of rows, created with
  ``DELIVERY_MODE = "manual"`` and a future ``send_at`` (so neither a kick nor the
  sweeper touches them), then one ``async_task`` per row running
  ``tests.benchmarks.sink.send_one`` (load the row, send it with the same backend,
  mark it sent), against the same cluster. Timed from the first ``async_task``
  until every row is ``sent``. Its cost per message grows with the backlog (the
  ORM broker scans its queue table on every dequeue), so the same N is the fair
  comparison; a smaller ``--baseline-deliveries`` flatters it;
* **the engine alone**: ``deliver_due()`` in this process on N rows, without a
  queue (with ``--profile``, also under cProfile, top costs to standard error).

``--history N`` leaves N sent deliveries in the table during every run, as
``DELIVERY_RETENTION_DAYS`` would, to show costs that grow with the table.

The report is a Markdown table on standard output; progress goes to standard
error. Figures are medians of ``--reps`` runs; the latency percentiles pool every
row of every run. The cluster's output goes to a log file, named on failure.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import math
import os
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[2]
SETTINGS = "tests.benchmarks.q_settings"
NAIVE_TASK = "tests.benchmarks.sink.send_one"
HISTORY_CHANNEL = "history"  # rows of --history: sent, never claimed, kept across runs
DELIVER_TASK = "django_notify.tasks.deliver"
POLL_SECONDS = 0.05
TARGETS = {"deliveries_per_s": 1000, "ratio": 30, "p95_s": 5.0}


class BenchError(Exception):
    """A phase failed or timed out; the message says which and how far it got."""


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--deliveries", type=int, default=10_000, help="deliveries end to end (default 10,000)")
    parser.add_argument(
        "--baseline-deliveries",
        type=int,
        help="deliveries for the one-task-per-message baseline (default: --deliveries; about 100 s a run for 10,000)",
    )
    parser.add_argument(
        "--history",
        type=int,
        default=0,
        help="sent deliveries left in the table during every run, as retention keeps them (default 0)",
    )
    parser.add_argument("--reps", type=int, default=3, help="timed repetitions per figure (median reported)")
    parser.add_argument("--timeout", type=float, default=300, help="seconds allowed per phase (default 300)")
    parser.add_argument("--profile", action="store_true", help="also profile deliver_due() in-process (cProfile)")
    parser.add_argument("--pg-url", default="postgres://postgres@127.0.0.1:5432/postgres")
    parser.add_argument("--json", type=Path, help="also write the figures to this file")
    parser.add_argument("--keep-logs", action="store_true", help="keep the cluster log even when all went well")
    parser.add_argument("--child", help=argparse.SUPPRESS)  # internal: DATABASE_URL of the run
    parser.add_argument("--workdir", type=Path, help=argparse.SUPPRESS)  # internal: log and pid files
    return parser.parse_args(argv)


# -- parent: a scratch database and one child process --------------------------------


def main() -> int:
    args = parse_args()
    if args.baseline_deliveries is None:
        args.baseline_deliveries = args.deliveries
    if args.child:
        signal.signal(signal.SIGTERM, _exit_on_signal)  # so `finally` stops the cluster
        try:
            print(json.dumps(run_child(args)))
        except BenchError as exc:
            print(f"error: {exc}", file=sys.stderr, flush=True)
            return 2
        return 0
    signal.signal(signal.SIGTERM, _exit_on_signal)
    workdir = Path(tempfile.mkdtemp(prefix="dn_bench_delivery_"))
    ok = False
    try:
        with scratch_database(args.pg_url) as url:
            print(f"== postgres: {url.split('@')[-1]}", file=sys.stderr, flush=True)
            results = run_parent(args, url, workdir)
        print(report(results))
        if args.json:
            args.json.write_text(json.dumps(results, indent=2))
        ok = True
    except BenchError as exc:
        print(f"\nbench_delivery failed: {exc}", file=sys.stderr)
        print(f"cluster log: {workdir / 'qcluster.log'}", file=sys.stderr)
    except (KeyboardInterrupt, SystemExit):
        print(f"\nbench_delivery interrupted; cluster log: {workdir / 'qcluster.log'}", file=sys.stderr)
        raise
    finally:
        stop_process_group(_read_pid(workdir / "qcluster.pid"))  # if the child could not
        if ok and not args.keep_logs:
            shutil.rmtree(workdir, ignore_errors=True)
        elif ok:
            print(f"cluster log: {workdir / 'qcluster.log'}", file=sys.stderr)
    return 0 if ok else 1


def _exit_on_signal(signum: int, _frame: Any) -> None:
    raise SystemExit(128 + signum)


def run_parent(args: argparse.Namespace, url: str, workdir: Path) -> dict[str, Any]:
    command = [sys.executable, str(Path(__file__).resolve()), "--child", url, "--workdir", str(workdir)]
    command += ["--deliveries", str(args.deliveries), "--baseline-deliveries", str(args.baseline_deliveries)]
    command += ["--reps", str(args.reps), "--timeout", str(args.timeout), "--history", str(args.history)]
    command += ["--profile"] if args.profile else []
    child = subprocess.Popen(command, stdout=subprocess.PIPE, text=True, cwd=ROOT, env=child_env(url))
    try:
        stdout, _ = child.communicate()
    finally:
        if child.poll() is None:
            child.terminate()
            try:
                child.wait(45)  # it stops the cluster first
            except subprocess.TimeoutExpired:
                child.kill()
    if child.returncode != 0:
        raise BenchError(f"the benchmark process exited with status {child.returncode} (its error is above)")
    result: dict[str, Any] = json.loads(stdout.strip().splitlines()[-1])
    return result


def child_env(url: str) -> dict[str, str]:
    """The environment of the driver and of the cluster: settings, database, import path."""
    env = dict(os.environ, DJANGO_SETTINGS_MODULE=SETTINGS, DATABASE_URL=url, PYTHONUNBUFFERED="1")
    env["PYTHONPATH"] = os.pathsep.join([str(ROOT), *filter(None, [os.environ.get("PYTHONPATH")])])
    return env


class scratch_database:
    """A PostgreSQL database created for the run and dropped afterwards."""

    def __init__(self, pg_url: str) -> None:
        self.pg_url = pg_url
        self.name = f"dn_bench_delivery_{os.getpid()}"

    def _execute(self, sql: str) -> None:
        import psycopg

        with psycopg.connect(self.pg_url.replace("postgres://", "postgresql://"), autocommit=True) as conn:
            conn.execute(sql)

    def __enter__(self) -> str:
        try:
            self._execute(f'DROP DATABASE IF EXISTS "{self.name}"')
            self._execute(f'CREATE DATABASE "{self.name}"')
        except Exception as exc:
            raise BenchError(f"cannot create a scratch database at {self.pg_url}: {exc}") from exc
        return self.pg_url.rsplit("/", 1)[0] + "/" + self.name

    def __exit__(self, *exc: object) -> None:
        self._execute(f'DROP DATABASE IF EXISTS "{self.name}" WITH (FORCE)')


def _read_pid(path: Path) -> int | None:
    """The cluster's pid, if the file is there and that process still leads its own session."""
    try:
        pid = int(path.read_text())
        return pid if os.getsid(pid) == pid else None  # not a reused pid
    except (OSError, ValueError):
        return None


def stop_process_group(pid: int | None, process: subprocess.Popen[bytes] | None = None, grace: float = 30.0) -> None:
    """Stop ``qcluster`` (``pid`` leads a session we started) and everything it spawned.

    SIGTERM goes to the leader alone: django-q2 then stops its sentinel, pusher,
    workers and monitor in order (they keep SIGTERM's default action, so signalling
    the whole group would kill them mid-way). Whatever is left of the group after
    ``grace`` seconds gets SIGKILL.
    """
    if pid is None:
        return
    with contextlib.suppress(ProcessLookupError):
        os.kill(pid, signal.SIGTERM)
    deadline = time.monotonic() + grace
    while time.monotonic() < deadline:
        if process is not None:
            process.poll()  # reap the leader, or the group never looks empty
        try:
            os.killpg(pid, 0)
        except ProcessLookupError:
            return
        time.sleep(0.1)
    with contextlib.suppress(ProcessLookupError):
        os.killpg(pid, signal.SIGKILL)
    if process is not None:
        process.wait()


# -- child: the measurements -------------------------------------------------------


def run_child(args: argparse.Namespace) -> dict[str, Any]:
    sys.path.insert(0, str(ROOT))
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", SETTINGS)
    import django

    django.setup()
    from django.conf import settings
    from django.core.management import call_command
    from django_q.conf import Conf

    if Conf.SYNC or settings.Q_CLUSTER.get("sync"):
        raise BenchError("Q_CLUSTER runs tasks synchronously; the benchmark needs a real cluster")
    call_command("migrate", verbosity=0)  # also creates the sweeper's Schedule
    bench = Bench(args)
    cluster = Cluster(args.workdir)
    try:
        return bench.run(cluster)
    finally:
        cluster.stop()


class Cluster:
    """``python -m django qcluster`` in its own session, output to a log file."""

    def __init__(self, workdir: Path) -> None:
        self.log_path = workdir / "qcluster.log"
        self.pid_path = workdir / "qcluster.pid"
        self.process: subprocess.Popen[bytes] | None = None
        self.stop_seconds: float | None = None

    def start(self) -> None:
        url = os.environ["DATABASE_URL"]
        with open(self.log_path, "ab") as log:
            self.process = subprocess.Popen(
                [sys.executable, "-m", "django", "qcluster"],
                stdout=log,
                stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
                cwd=ROOT,
                env={**child_env(url), "DN_BENCH_Q_LOG_LEVEL": "INFO"},
                start_new_session=True,
            )
        self.pid_path.write_text(str(self.process.pid))

    def check_alive(self) -> None:
        if self.process is None or self.process.poll() is not None:
            code = None if self.process is None else self.process.returncode
            raise BenchError(f"the cluster is not running (exit status {code}); see {self.log_path}")

    def stop(self) -> None:
        if self.process is None:
            return
        started = time.monotonic()
        stop_process_group(self.process.pid, self.process)
        self.stop_seconds = time.monotonic() - started
        self.pid_path.unlink(missing_ok=True)
        self.process = None

    def log_counts(self) -> dict[str, int]:
        text = self.log_path.read_text(errors="replace") if self.log_path.exists() else ""
        started = [line for line in text.splitlines() if " processing " in line]
        return {
            "deliver_tasks_processed": sum(f"'{DELIVER_TASK}'" in line for line in started),
            "naive_tasks_processed": sum(f"'{NAIVE_TASK}'" in line for line in started),
            "failed_tasks": text.count(" Failed '"),
            "tracebacks": text.count("Traceback"),
        }


class Bench:
    def __init__(self, args: argparse.Namespace) -> None:
        from django.db import connection

        from tests.benchmarks.notifications import BENCH_TYPE

        self.args = args
        self.connection = connection
        self.type = BENCH_TYPE
        self.context = {"number": "A-1042", "table": 7}

    def log(self, message: str) -> None:
        print(f"   {message}", file=sys.stderr, flush=True)

    # -- helpers ---------------------------------------------------------------------

    def make_users(self, count: int, prefix: str) -> Any:
        from django.contrib.auth import get_user_model

        user_model = get_user_model()
        batch = [user_model(username=f"{prefix}{i}", password="!") for i in range(count)]
        user_model.objects.bulk_create(batch, batch_size=2000)
        return user_model.objects.filter(username__startswith=prefix)

    def quoted(self, *models: Any) -> str:
        return ", ".join(self.connection.ops.quote_name(m._meta.db_table) for m in models)

    def clear(self) -> None:
        """Empty the notification tables (but the history) and django-q2's results; vacuum."""
        from django_q.models import Task

        from django_notify.models import Delivery, Notification

        with self.connection.cursor() as cursor:
            if self.args.history:
                cursor.execute(f"TRUNCATE {self.quoted(Notification, Task)} CASCADE")
                cursor.execute(f"DELETE FROM {self.quoted(Delivery)} WHERE channel <> %s", [HISTORY_CHANNEL])
            else:
                cursor.execute(f"TRUNCATE {self.quoted(Delivery, Notification, Task)} CASCADE")
            cursor.execute(f"VACUUM ANALYZE {self.quoted(Delivery, Notification, Task)}")

    def add_history(self, count: int) -> None:
        """``count`` sent deliveries of a day ago, as retention keeps them (one INSERT … SELECT)."""
        from django_notify.models import Delivery

        with self.connection.cursor() as cursor:
            cursor.execute(
                f"INSERT INTO {self.quoted(Delivery)} (channel, destination, status, attempts, next_attempt_at, "
                "created_at, sent_at, finished_at, last_error, notification_id, digest) "
                "SELECT %s, '', 'sent', 1, t, t, t, t, '', 0, '' "
                "FROM generate_series(1, %s), (SELECT now() - interval '1 day' AS t) AS day",
                [HISTORY_CHANNEL, count],
            )
            cursor.execute(f"VACUUM ANALYZE {self.quoted(Delivery)}")

    def runs_rows(self) -> Any:
        """This run's deliveries (not the history)."""
        from django_notify.models import Delivery

        return Delivery.objects.exclude(channel=HISTORY_CHANNEL)

    def status_counts(self) -> dict[str, int]:
        from django.db.models import Count

        return dict(self.runs_rows().values_list("status").annotate(n=Count("pk")).order_by())

    def wait_until_sent(self, expected: int, phase: str, cluster: Cluster | None, started: float) -> float:
        """Poll every 50 ms until no row is pending or sending; return perf_counter() then.

        Counting the unfinished rows (an index range of the ``status`` index) stays
        cheap however many sent rows the table holds; all must then be ``sent``.
        """
        from django_notify.models import Delivery

        deadline = started + self.args.timeout
        unfinished = Delivery.objects.filter(status__in=["pending", "sending"])
        while True:
            now = time.perf_counter()
            left = unfinished.count()
            if left == 0:
                counts = self.status_counts()
                if counts.get("sent", 0) != expected:
                    raise BenchError(f"{phase}: expected {expected:,} deliveries sent; rows by status: {counts}")
                return now
            if cluster is not None:
                cluster.check_alive()
            if now > deadline:
                raise BenchError(
                    f"{phase}: timed out after {self.args.timeout:g} s with {left:,} of {expected:,} deliveries "
                    f"not sent; rows by status: {self.status_counts()}"
                )
            time.sleep(POLL_SECONDS)

    def wait_queue_settled(self, phase: str, cluster: Cluster) -> None:
        """Wait until django-q2's queue is empty: every task has run, and its result is saved
        (the monitor saves it before acknowledging, which deletes the queue row)."""
        from django_q.models import OrmQ

        deadline = time.monotonic() + self.args.timeout
        while OrmQ.objects.exists():
            cluster.check_alive()
            if time.monotonic() > deadline:
                raise BenchError(f"{phase}: django-q2's queue still holds {OrmQ.objects.count()} tasks")
            time.sleep(POLL_SECONDS)

    def deliver_tasks(self) -> dict[str, Any]:
        """The ``deliver`` tasks the cluster ran since the last clear, from django-q2's results."""
        from django_q.models import Task

        tasks = list(Task.objects.filter(func=DELIVER_TASK).values("success", "result", "started", "stopped"))
        sent = sum((t["result"] or {}).get("sent", 0) for t in tasks if t["success"])
        busy = sum((t["stopped"] - t["started"]).total_seconds() for t in tasks)
        return {"tasks": len(tasks), "failed": sum(not t["success"] for t in tasks), "sent": sent, "busy_s": busy}

    # -- measurements ----------------------------------------------------------------

    def run(self, cluster: Cluster) -> dict[str, Any]:
        from django.conf import settings

        args = self.args
        n, nb = args.deliveries, args.baseline_deliveries
        out: dict[str, Any] = {
            "database": self.connection.vendor,
            "server_version": self.connection.pg_version if self.connection.vendor == "postgresql" else None,
            "deliveries": n,
            "baseline_deliveries": nb,
            "reps": args.reps,
            "q_cluster": settings.Q_CLUSTER,
            "conn_max_age": settings.DATABASES["default"]["CONN_MAX_AGE"],
            "batch_size": _notify_setting("BATCH_SIZE"),
            "cpus": os.cpu_count(),
        }
        users = self.make_users(n, "u")
        baseline_users = self.make_users(nb, "b")
        probe_user = self.make_users(1, "probe")
        if args.history:
            self.log(f"adding {args.history:,} sent deliveries as history")
            self.add_history(args.history)
            out["history"] = args.history

        self.log(f"engine alone: deliver_due() in this process on {n:,} rows")
        out["in_process"] = self.in_process(users)

        self.log("starting the cluster")
        out["startup_s"] = self.start_cluster(cluster, probe_user)

        out["end_to_end"] = []
        for rep in range(args.reps):
            self.log(f"end to end, run {rep + 1} of {args.reps}: notify() to {n:,} users, then the cluster")
            out["end_to_end"].append(self.end_to_end(users, cluster))
        out["baseline"] = []
        for rep in range(args.reps):
            self.log(f"one task per message, run {rep + 1} of {args.reps}: {nb:,} async_task calls")
            out["baseline"].append(self.baseline(baseline_users, cluster))
        cluster.stop()
        out["cluster_stop_s"] = cluster.stop_seconds
        out["cluster_log"] = cluster.log_counts()
        out["summary"] = summarize(out)
        return out

    def in_process(self, users: Any) -> dict[str, Any]:
        from django.test import override_settings

        from django_notify import notify
        from django_notify.delivery import deliver_due

        manual = override_settings(DJANGO_NOTIFY={**_notify_settings(), "DELIVERY_MODE": "manual"})
        figures: dict[str, Any] = {}
        runs = []
        with manual:
            for _ in range(self.args.reps):
                self.clear()
                notify(self.type, users, context=self.context)
                start = time.perf_counter()
                report = deliver_due(budget_seconds=self.args.timeout)
                runs.append(time.perf_counter() - start)
                if report.sent != self.args.deliveries:
                    raise BenchError(f"in-process: deliver_due() sent {report.sent} of {self.args.deliveries}")
            figures["seconds"] = statistics.median(runs)
            figures["deliveries_per_s"] = self.args.deliveries / figures["seconds"]
            if self.args.profile:
                figures["profile"] = self.profile(users)
        self.clear()
        return figures

    def profile(self, users: Any) -> list[dict[str, Any]]:
        import cProfile
        import pstats

        from django_notify import notify
        from django_notify.delivery import deliver_due

        self.clear()
        notify(self.type, users, context=self.context)
        profiler = cProfile.Profile()
        profiler.enable()
        deliver_due()
        profiler.disable()
        stats = pstats.Stats(profiler, stream=sys.stderr)
        self.log("profile of deliver_due() (top 25 by cumulative time):")
        stats.sort_stats("cumulative").print_stats(25)
        stats.sort_stats("tottime").print_stats(15)
        rows = []
        for (filename, line, name), (_cc, calls, tottime, cumtime, _callers) in stats.stats.items():
            rows.append(
                {"function": f"{filename}:{line}({name})", "calls": calls, "tottime": tottime, "cumtime": cumtime}
            )
        return sorted(rows, key=lambda r: r["tottime"], reverse=True)[:25]

    def start_cluster(self, cluster: Cluster, probe_user: Any) -> float:
        """Start the cluster; return seconds until it has sent a probe delivery."""
        from django_notify import notify

        self.clear()
        start = time.perf_counter()
        cluster.start()
        notify(self.type, probe_user, context=self.context)  # queue mode: kicks a deliver task
        try:
            done = self.wait_until_sent(1, "cluster start (probe delivery)", cluster, start)
        except BenchError as exc:
            raise BenchError(f"{exc}; the cluster log is {cluster.log_path}") from None
        self.wait_queue_settled("cluster start", cluster)
        ran = self.deliver_tasks()
        if ran["tasks"] < 1 or ran["sent"] != 1:
            raise BenchError(f"the probe was not delivered by a cluster task: {ran}")
        return done - start

    def end_to_end(self, users: Any, cluster: Cluster) -> dict[str, Any]:
        from django_notify import notify

        n = self.args.deliveries
        self.clear()
        start = time.perf_counter()
        result = notify(self.type, users, context=self.context)
        committed = time.perf_counter()
        if result.deliveries != n:
            raise BenchError(f"end to end: notify() created {result.deliveries} deliveries, not {n}")
        done = self.wait_until_sent(n, "end to end", cluster, start)
        rows = list(self.runs_rows().values_list("created_at", "sent_at", "attempts"))
        latencies = [(sent - created).total_seconds() for created, sent, _attempts in rows]
        self.wait_queue_settled("end to end", cluster)
        ran = self.deliver_tasks()
        if ran["sent"] != n:
            raise BenchError(f"end to end: the cluster's deliver tasks report {ran['sent']} sent, not {n}: {ran}")
        return {
            "notify_s": committed - start,
            "total_s": done - start,
            "deliveries_per_s": n / (done - start),
            **latency_figures(latencies),
            "max_attempts": max(a for _c, _s, a in rows),
            "deliver_tasks": ran,
        }

    def baseline(self, users: Any, cluster: Cluster) -> dict[str, Any]:
        import datetime as dt

        from django.test import override_settings
        from django.utils import timezone
        from django_q.tasks import async_task

        from django_notify import notify

        nb = self.args.baseline_deliveries
        self.clear()
        # Manual mode and a later send_at: no kick, and the sweeper leaves them alone.
        with override_settings(DJANGO_NOTIFY={**_notify_settings(), "DELIVERY_MODE": "manual"}):
            later = timezone.now() + dt.timedelta(days=1)
            notify(self.type, users, context=self.context, send_at=later)
        ids = list(self.runs_rows().order_by("pk").values_list("pk", flat=True))
        if len(ids) != nb:
            raise BenchError(f"baseline: notify() created {len(ids)} deliveries, not {nb}")
        enqueued_at = {}
        start = time.perf_counter()
        for pk in ids:
            enqueued_at[pk] = timezone.now()
            async_task(NAIVE_TASK, pk)
        enqueue_s = time.perf_counter() - start
        done = self.wait_until_sent(nb, "one task per message", cluster, start)
        latencies = [
            (sent - enqueued_at[pk]).total_seconds() for pk, sent in self.runs_rows().values_list("pk", "sent_at")
        ]
        self.wait_queue_settled("one task per message", cluster)
        return {
            "enqueue_s": enqueue_s,
            "total_s": done - start,
            "deliveries_per_s": nb / (done - start),
            **latency_figures(latencies),
        }


def _notify_settings() -> dict[str, Any]:
    from django.conf import settings

    return dict(settings.DJANGO_NOTIFY)


def _notify_setting(name: str) -> Any:
    from django_notify.conf import notify_settings

    return getattr(notify_settings, name)


# -- summary and report --------------------------------------------------------------


def percentile(values: list[float], fraction: float) -> float:
    """Nearest-rank percentile."""
    ordered = sorted(values)
    return ordered[max(0, math.ceil(fraction * len(ordered)) - 1)]


def latency_figures(latencies: list[float]) -> dict[str, Any]:
    """This run's percentiles, and its samples for pooling (dropped from the output)."""
    return {
        "latency_p50_s": percentile(latencies, 0.50),
        "latency_p95_s": percentile(latencies, 0.95),
        "latency_max_s": max(latencies),
        "_latency_s": latencies,
    }


def latency_summary(runs: list[dict[str, Any]]) -> dict[str, float]:
    pooled = [value for run in runs for value in run.pop("_latency_s")]
    return {"p50": percentile(pooled, 0.50), "p95": percentile(pooled, 0.95), "max": max(pooled)}


def summarize(out: dict[str, Any]) -> dict[str, Any]:
    e2e, base = out["end_to_end"], out["baseline"]
    summary = {
        "end_to_end_deliveries_per_s": statistics.median(r["deliveries_per_s"] for r in e2e),
        "end_to_end_total_s": statistics.median(r["total_s"] for r in e2e),
        "end_to_end_notify_s": statistics.median(r["notify_s"] for r in e2e),
        "end_to_end_latency_s": latency_summary(e2e),
        "end_to_end_deliver_tasks": statistics.median(r["deliver_tasks"]["tasks"] for r in e2e),
        "end_to_end_worker_busy_s": statistics.median(r["deliver_tasks"]["busy_s"] for r in e2e),
        "baseline_deliveries_per_s": statistics.median(r["deliveries_per_s"] for r in base),
        "baseline_total_s": statistics.median(r["total_s"] for r in base),
        "baseline_enqueue_s": statistics.median(r["enqueue_s"] for r in base),
        "baseline_latency_s": latency_summary(base),
    }
    summary["ratio"] = summary["end_to_end_deliveries_per_s"] / summary["baseline_deliveries_per_s"]
    return summary


def report(results: dict[str, Any]) -> str:
    s = results["summary"]
    n, nb, reps = results["deliveries"], results["baseline_deliveries"], results["reps"]
    q = results["q_cluster"]
    version = results["server_version"] or 0
    lat, base_lat = s["end_to_end_latency_s"], s["baseline_latency_s"]

    def verdict(ok: bool) -> str:
        return "met" if ok else "**missed**"

    rows: list[tuple[str, str, str]] = [
        ("end to end: deliveries (N)", f"{n:,}", ""),
        ("end to end: notify() itself (s)", f"{s['end_to_end_notify_s']:.2f}", ""),
        ("end to end: from notify() until all sent (s)", f"{s['end_to_end_total_s']:.2f}", ""),
        (
            "**end to end: deliveries/s**",
            f"**{s['end_to_end_deliveries_per_s']:,.0f}**",
            f"≥ {TARGETS['deliveries_per_s']:,}: {verdict(s['end_to_end_deliveries_per_s'] >= TARGETS['deliveries_per_s'])}",
        ),
        (
            "enqueue → first attempt, p50 / p95 / max (s)",
            f"{lat['p50']:.2f} / {lat['p95']:.2f} / {lat['max']:.2f}",
            f"p95 ≤ {TARGETS['p95_s']:.0f} s: {verdict(lat['p95'] <= TARGETS['p95_s'])}",
        ),
        (
            "deliver tasks run per run / worker busy time (s)",
            f"{s['end_to_end_deliver_tasks']:.0f} / {s['end_to_end_worker_busy_s']:.2f}",
            "",
        ),
        ("one task per message: deliveries", f"{nb:,}", ""),
        ("one task per message: enqueue, async_task × N (s)", f"{s['baseline_enqueue_s']:.2f}", ""),
        ("one task per message: first enqueue until all sent (s)", f"{s['baseline_total_s']:.2f}", ""),
        ("**one task per message: deliveries/s**", f"**{s['baseline_deliveries_per_s']:,.0f}**", ""),
        (
            "one task per message: enqueue → sent, p50 / p95 / max (s)",
            f"{base_lat['p50']:.2f} / {base_lat['p95']:.2f} / {base_lat['max']:.2f}",
            "",
        ),
        (
            "**ratio, end to end / one task per message**",
            f"**{s['ratio']:.1f}x**",
            f"≥ {TARGETS['ratio']}x: {verdict(s['ratio'] >= TARGETS['ratio'])}",
        ),
        (
            "engine alone: deliver_due() in one process, no queue (deliveries/s)",
            f"{results['in_process']['deliveries_per_s']:,.0f}",
            "",
        ),
        (
            "cluster: start until a probe delivery is sent / SIGTERM until stopped (s)",
            f"{results['startup_s']:.2f} / {results['cluster_stop_s']:.2f}",
            "",
        ),
    ]
    log = results["cluster_log"]
    rows.append(
        (
            "cluster log: deliver / one-message tasks processed, failed tasks, tracebacks",
            f"{log['deliver_tasks_processed']} / {log['naive_tasks_processed']:,}, {log['failed_tasks']}, {log['tracebacks']}",
            "",
        )
    )
    lines = [
        f"# django_notify delivery benchmark (PostgreSQL {version // 10000}, median of {reps})",
        "",
        f"django-q2 ORM broker, `qcluster` with workers={q['workers']}, save_limit={q['save_limit']}, "
        f"CONN_MAX_AGE={results['conn_max_age']}, BATCH_SIZE={results['batch_size']}, {results['cpus']} CPUs. "
        f"{results.get('history', 0):,} earlier sent deliveries in the table. "
        "Latency percentiles pool the rows of every run.",
        "",
        "| figure | value | target |",
        "|---|---:|---|",
        *(f"| {label} | {value} | {target} |" for label, value, target in rows),
    ]
    return "\n".join(lines)


if __name__ == "__main__":
    sys.exit(main())

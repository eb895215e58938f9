"""Email sending benchmark for django_notify (a script, not a test).

    python tests/benchmarks/bench_email.py                       # about 2 minutes
    python tests/benchmarks/bench_email.py --messages 500 --reps 1 --latency-ms 0
    DATABASE_URL=postgres://postgres@127.0.0.1:5432/postgres python tests/benchmarks/bench_email.py

Every SMTP server is ``python -m tests.smtp`` (``tests/smtp.py``, aiosmtpd) in a
subprocess on 127.0.0.1, one per case, so each counts its own sessions (TCP
connections) and messages; it keeps counters only, it does not parse messages.
``--latency-ms`` (``0,2,20``) adds that much before every SMTP reply, one pair of
cases per value: 2 ms stands for a relay on the local network, 20 ms for a
provider's SMTP endpoint in another data centre.

* **ours**: ``notify()`` to ``--messages`` (2,000) users on ``["in_app", "email"]``,
  then ``deliver_due()`` in this process: claims batches of ``--batch-size`` (500),
  and ``EmailBackend`` renders each message (the type's templates, the layouts,
  an unsubscribe token) and sends the batch through Django's SMTP backend over
  its default 4 connections at once. Rates are for ``deliver_due()`` (the sending), and for
  ``notify()`` + ``deliver_due()`` together.
* **the usual design**: for each message, the same two layouts rendered with
  ``render_to_string()`` and sent with ``django.core.mail.send_mail(...,
  html_message=...)``: Django opens and closes an SMTP connection for each message.
  It renders no type templates and no unsubscribe token, and touches no database.

The database is a scratch SQLite file, or, with ``DATABASE_URL`` naming a
PostgreSQL server, a scratch database on it (dropped afterwards). Figures are
medians of ``--reps`` runs, with the cases interleaved so they share the machine's
load. The report is a Markdown table on standard output; progress goes to standard
error.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import platform
import signal
import statistics
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[2]
BENCH_TYPE = "bench_email"
FROM_EMAIL = "Bench <bench@bench.example>"


class BenchError(Exception):
    """A phase failed; the message says which and what came back."""


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--messages", type=int, default=2_000, help="messages per run of ours (default 2,000)")
    parser.add_argument(
        "--baseline-messages", type=int, default=1_000, help="messages per run of send_mail() (default 1,000)"
    )
    parser.add_argument("--batch-size", type=int, default=500, help="DJANGO_NOTIFY['BATCH_SIZE'] (default 500)")
    parser.add_argument(
        "--latency-ms",
        type=_latencies,
        default=[0.0, 2.0, 20.0],
        help="comma-separated delays added before each SMTP reply, one pair of cases each (default 0,2,20)",
    )
    parser.add_argument("--reps", type=int, default=3, help="timed repetitions per case (median reported)")
    parser.add_argument("--json", type=Path, help="also write the figures to this file")
    args = parser.parse_args(argv)
    for name in ("messages", "baseline_messages", "batch_size", "reps"):
        if getattr(args, name) < 1:
            parser.error(f"--{name.replace('_', '-')} must be at least 1")
    return args


#: From this latency on, runs send fewer messages, so a run stays under a minute.
SLOW_LATENCY_MS = 10.0


def _latencies(value: str) -> list[float]:
    try:
        found = [float(part) for part in value.split(",") if part.strip()]
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a list of numbers: {value!r}") from None
    if not found or any(latency < 0 for latency in found):
        raise argparse.ArgumentTypeError("latencies must be 0 or more")
    return found


def log(message: str) -> None:
    print(f"   {message}", file=sys.stderr, flush=True)


# -- SMTP servers ---------------------------------------------------------------------


class Server:
    """``python -m tests.smtp`` in a subprocess: its port, then its exit counters."""

    def __init__(self, label: str, latency_ms: float) -> None:
        self.label = label
        command = [sys.executable, "-m", "tests.smtp", "--latency-ms", str(latency_ms)]
        self.process = subprocess.Popen(command, stdout=subprocess.PIPE, stdin=subprocess.DEVNULL, text=True, cwd=ROOT)
        self.port = 0
        self.counters: dict[str, int] = {}

    def ready(self) -> Server:
        assert self.process.stdout is not None
        line = self.process.stdout.readline()
        if not line:
            raise BenchError(f"SMTP server {self.label!r} exited with status {self.process.wait()} before serving")
        self.port = int(json.loads(line)["port"])
        return self

    def stop(self) -> dict[str, int]:
        """SIGTERM, then the counters it prints on its way out."""
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
        try:
            stdout, _ = self.process.communicate(timeout=60)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()
            raise BenchError(f"SMTP server {self.label!r} did not stop within 60 s of SIGTERM") from None
        lines = stdout.strip().splitlines()
        if self.process.returncode != 0 or not lines:
            raise BenchError(f"SMTP server {self.label!r} exited with status {self.process.returncode}")
        self.counters = json.loads(lines[-1])
        return self.counters


@contextlib.contextmanager
def servers(labels: dict[str, float]) -> Iterator[dict[str, Server]]:
    """One server per ``label: latency_ms``, all at once; killed if still running after."""
    started: dict[str, Server] = {}
    try:
        for label, latency in labels.items():
            started[label] = Server(label, latency)
        for server in started.values():
            server.ready()
        yield started
    finally:
        for server in started.values():
            if server.process.poll() is None:
                server.process.kill()
                server.process.wait()


# -- Django ---------------------------------------------------------------------------


def setup_django(database_url: str, batch_size: int) -> None:
    sys.path.insert(0, str(ROOT))
    import dj_database_url
    import django
    from django.conf import settings

    settings.configure(
        SECRET_KEY="django_notify-bench-email",
        USE_TZ=True,
        TIME_ZONE="UTC",
        DATABASES={"default": dj_database_url.parse(database_url, conn_max_age=600)},
        INSTALLED_APPS=[
            "django.contrib.auth",
            "django.contrib.contenttypes",
            "rest_framework",
            "django_q",
            "django_notify",
        ],
        TEMPLATES=[{"BACKEND": "django.template.backends.django.DjangoTemplates", "APP_DIRS": True}],
        # This module's urlpatterns (below): the unsubscribe link of every message is reversed.
        ROOT_URLCONF="tests.benchmarks.bench_email",
        EMAIL_BACKEND="django.core.mail.backends.smtp.EmailBackend",
        EMAIL_HOST="127.0.0.1",
        EMAIL_PORT=25,  # set per case
        DEFAULT_FROM_EMAIL=FROM_EMAIL,
        DJANGO_NOTIFY={
            "CHANNELS": {
                "in_app": {"BACKEND": "django_notify.backends.in_app.InAppBackend"},
                "email": {"BACKEND": "django_notify.backends.email.EmailBackend"},
            },
            "DELIVERY_MODE": "manual",  # deliver_due() is called here
            "BASE_URL": "https://bench.example",
            "SITE_NAME": "Bench",
            "BATCH_SIZE": batch_size,
        },
        # Unused (nothing is queued) but read by django_q on import.
        Q_CLUSTER={"name": "dn_bench_email", "orm": "default", "timeout": 60, "retry": 120},
    )
    django.setup()
    from django_notify import NotificationType, registry

    registry.register(
        NotificationType(
            key=BENCH_TYPE,
            category="orders",
            title="Order {{ number }} is ready",
            body="Table {{ table }} can collect order {{ number }}.",
            url="/orders/{{ number }}/",
            channels=["in_app", "email"],
        )
    )


def __getattr__(name: str) -> Any:
    # Built on first use, once Django is set up (include() imports models).
    if name == "urlpatterns":
        from django.urls import include, path

        return [path("api/notifications/", include("django_notify.urls"))]
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


@contextlib.contextmanager
def scratch_database(url: str | None) -> Iterator[str]:
    """A scratch database on ``url``'s PostgreSQL server, or a SQLite file; dropped afterwards."""
    if str(ROOT) not in sys.path:
        sys.path.insert(0, str(ROOT))
    from tests.benchmarks.scratch import ScratchDatabaseError
    from tests.benchmarks.scratch import scratch_database as scratch_database_of

    try:
        with scratch_database_of(url, "bench_email") as scratch:
            yield scratch
    except ScratchDatabaseError as exc:
        raise BenchError(str(exc)) from None


def create_users(n: int) -> Any:
    from django.contrib.auth import get_user_model

    user_model = get_user_model()
    user_model.objects.bulk_create(
        [user_model(username=f"bench{i}", email=f"bench{i}@mail.example", password="!") for i in range(n)],
        batch_size=2000,
    )
    return user_model.objects.filter(username__startswith="bench")


# -- the two senders ------------------------------------------------------------------


def ours_once(recipients: Any, n: int, port: int) -> dict[str, float]:
    from django.conf import settings

    from django_notify import notify
    from django_notify.delivery import deliver_due
    from django_notify.models import Delivery, Notification

    settings.EMAIL_PORT = port
    Delivery.objects.all().delete()
    Notification.objects.all().delete()
    cpu, start = time.process_time(), time.perf_counter()
    created = notify(BENCH_TYPE, recipients, context={"number": "A-1042", "table": 7})
    notified = time.perf_counter()
    report = deliver_due()
    done, cpu = time.perf_counter(), time.process_time() - cpu
    if created.deliveries != n or report.sent != n:
        raise BenchError(f"ours: notify() made {created.deliveries} deliveries and deliver_due() reported {report}")
    return {
        "n": n,
        "notify_s": notified - start,
        "send_s": done - notified,
        "per_s": n / (done - notified),
        "total_per_s": n / (done - start),
        "cpu_us_per_message": cpu / n * 1e6,
    }


def send_mail_once(n: int, port: int) -> dict[str, float]:
    from django.conf import settings
    from django.core.mail import send_mail
    from django.template.loader import render_to_string

    settings.EMAIL_PORT = port
    cpu, start = time.process_time(), time.perf_counter()
    for i in range(n):
        # As an app would: the same layouts rendered for each message, then send_mail().
        context = {
            "title": "Order A-1042 is ready",
            "body": "Table 7 can collect order A-1042.",
            "url": "https://bench.example/orders/A-1042/",
            "site_name": "Bench",
            "base_url": "https://bench.example",
        }
        text = render_to_string("django_notify/email/message.txt", context)
        html = render_to_string("django_notify/email/message.html", context)
        if send_mail(context["title"], text, FROM_EMAIL, [f"bench{i}@mail.example"], html_message=html) != 1:
            raise BenchError(f"send_mail() did not send the message to bench{i}@mail.example")
    done, cpu = time.perf_counter(), time.process_time() - cpu
    return {"n": n, "send_s": done - start, "per_s": n / (done - start), "cpu_us_per_message": cpu / n * 1e6}


# -- the run ----------------------------------------------------------------------------


def run(args: argparse.Namespace) -> dict[str, Any]:
    from django.core.management import call_command
    from django.db import connection

    call_command("migrate", verbosity=0)
    log(f"{max(args.messages, args.baseline_messages):,} users")
    users = create_users(max(args.messages, args.baseline_messages))
    pks = list(users.order_by("pk").values_list("pk", flat=True))

    def recipients_of(n: int) -> Any:
        return users.model.objects.filter(pk__in=pks[:n])

    warm_recipients = users.model.objects.filter(pk__in=pks[:10])
    latencies = list(args.latency_ms)
    labels: dict[str, tuple[str, float]] = {}
    for latency in latencies:
        labels[f"ours {latency:g} ms"] = ("ours", latency)
        labels[f"send_mail {latency:g} ms"] = ("send_mail", latency)
    runs: dict[str, list[dict[str, float]]] = {label: [] for label in labels}
    with servers({label: latency for label, (_kind, latency) in labels.items()}) as running:
        log("warm-up: one batch of ours, one send_mail()")
        warm = Server("warm-up", 0).ready()
        try:
            send_mail_once(1, warm.port)
            ours_once(warm_recipients, 10, warm.port)
        finally:
            warm.stop()
        for rep in range(args.reps):
            for label, (kind, _latency) in labels.items():
                port = running[label].port
                log(f"{label}, run {rep + 1} of {args.reps}")
                slow = _latency >= SLOW_LATENCY_MS
                if kind == "ours":
                    n = max(1, args.messages // 4) if slow else args.messages
                    runs[label].append(ours_once(recipients_of(n), n, port))
                else:
                    n = max(1, args.baseline_messages // 5) if slow else args.baseline_messages
                    runs[label].append(send_mail_once(n, port))
        counters = {label: server.stop() for label, server in running.items()}
    cases = {}
    for label, case_runs in runs.items():
        sent = sum(int(r["n"]) for r in case_runs)
        if counters[label]["messages"] != sent:
            raise BenchError(f"{label}: sent {sent} messages, the server received {counters[label]['messages']}")
        cases[label] = {
            "n": case_runs[0]["n"],
            "per_s": statistics.median(r["per_s"] for r in case_runs),
            "per_s_range": [min(r["per_s"] for r in case_runs), max(r["per_s"] for r in case_runs)],
            "total_per_s": statistics.median(r.get("total_per_s", r["per_s"]) for r in case_runs),
            "cpu_us_per_message": statistics.median(r["cpu_us_per_message"] for r in case_runs),
            "sessions_per_message": counters[label]["sessions"] / counters[label]["messages"],
            "server_cpu_us_per_message": counters[label]["cpu_s"] / counters[label]["messages"] * 1e6,
            "runs": case_runs,
            "server": counters[label],
        }
    return {
        "environment": {
            "python": platform.python_version(),
            "database": connection.vendor,
            "cpus": os.cpu_count(),
            "load_average": os.getloadavg(),
            "messages": args.messages,
            "baseline_messages": args.baseline_messages,
            "batch_size": args.batch_size,
            "reps": args.reps,
        },
        "latencies_ms": latencies,
        "cases": cases,
    }


def report(results: dict[str, Any]) -> str:
    env, cases = results["environment"], results["cases"]
    lines = [
        f"Email: {env['messages']:,} messages per run of ours, {env['baseline_messages']:,} of send_mail() "
        f"(a quarter and a fifth of those from {SLOW_LATENCY_MS:g} ms on); "
        f"median of {env['reps']}; {env['database']}; Python {env['python']}; {env['cpus']} CPUs, "
        f"load {env['load_average'][0]:.2f}; SMTP server on 127.0.0.1 in a subprocess.",
        "",
        "| case | messages/s (range) | notify() + send, messages/s | client CPU µs/message "
        "| server CPU µs/message | SMTP connections/message |",
        "|---|---:|---:|---:|---:|---:|",
    ]
    for label, case in cases.items():
        low, high = case["per_s_range"]
        total = f"{case['total_per_s']:,.0f}" if label.startswith("ours") else "–"
        lines.append(
            f"| {label} | {case['per_s']:,.0f} ({low:,.0f}–{high:,.0f}) | {total} | "
            f"{case['cpu_us_per_message']:,.0f} | {case['server_cpu_us_per_message']:,.0f} | "
            f"{case['sessions_per_message']:.4f} |"
        )
    lines += ["", "| latency per SMTP reply | ours / send_mail(), sending | ours (notify() + send) / send_mail() |"]
    lines.append("|---|---:|---:|")
    for latency in results["latencies_ms"]:
        ours, base = cases[f"ours {latency:g} ms"], cases[f"send_mail {latency:g} ms"]
        lines.append(
            f"| {latency:g} ms | **{ours['per_s'] / base['per_s']:.1f}x** | {ours['total_per_s'] / base['per_s']:.1f}x |"
        )
    return "\n".join(lines)


def main() -> int:
    args = parse_args()
    try:
        with scratch_database(os.environ.get("DATABASE_URL")) as url:
            setup_django(url, args.batch_size)
            results = run(args)
    except BenchError as exc:
        print(f"\nbench_email failed: {exc}", file=sys.stderr)
        return 1
    print(report(results))
    if args.json:
        args.json.write_text(json.dumps(results, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())

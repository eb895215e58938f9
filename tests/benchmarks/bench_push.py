"""Web Push sending benchmark for django_notify (a script, not a test).

    python tests/benchmarks/bench_push.py                      # about 2 minutes
    python tests/benchmarks/bench_push.py --messages 2000 --baseline-messages 100 --reps 1
    python tests/benchmarks/bench_push.py --profile --json results.json
    DATABASE_URL=postgres://postgres@127.0.0.1:5432/postgres python tests/benchmarks/bench_push.py --engine

Every push service is ``python -m tests.push.receiver`` (``tests/push/receiver.py``,
written from the RFCs, sharing no code with the package) in a subprocess on
127.0.0.1, answering 201 at once or after ``--delay`` (50 ms), standing in for a
push service's round trip. One receiver per case, all running at once, and the
repetitions of the cases interleaved, so ours and the baseline see the same load.

* **ours**: ``WebPushBackend.send_batch()`` in this process, the real backend:
  payload JSON, event token, VAPID header (cached per audience), then the
  concurrent POSTs, each message encrypted (``aes128gcm``, a fresh ECDH key per
  message) as it is sent, over connections the process keeps from one batch to
  the next. ``--messages`` (5,000) unsaved ``Delivery`` rows, each with
  its own notification and subscription attached (no database), sent in batches
  of ``--batch-size`` (500, like ``BATCH_SIZE``) one after another; one batch is
  sent first to warm up (imports, the VAPID header of the receiver's origin).
* **the baseline**: ``pywebpush.webpush()`` called serially as its documentation
  shows, with its defaults: no session (a new connection per message), a fresh
  claims dict per call (so it loads the key and signs each time), and
  ``ttl=86400``. Its payloads are the same JSON documents, built before the
  clock starts. At 50 ms it sends about 19 messages/s, so it runs on
  ``--baseline-messages`` (200): its rate does not depend on N.

The throughput receivers run with ``--no-verify`` (they check the headers only),
so verifying is not what limits the rate: the receiver shares the two cores.
Two more receivers verify everything (the VAPID JWT's signature and claims, then
decrypting the body with the subscription's private key) on ``--verify-messages``
of ours and 20 of the baseline's: the report shows how many passed and failed.

Reported: messages/s (median and range of ``--reps``), client CPU per message
(``time.process_time()`` of this process over the run / N; its inverse is what one
free core could send), the receiver's CPU per request and TCP connections (from
its exit counters), the ratios, and the targets with PASS/MISS. The machine may
be busy with other work: the load average is printed, and the CPU figures are the
ones to compare across runs.

``--engine`` adds ``notify()`` to N users with one subscription each, then
``deliver_due()``, in this process on a scratch database (created on the
PostgreSQL server ``DATABASE_URL`` names, else a SQLite file; dropped afterwards),
against two more receivers (0 ms and ``--delay``). ``--profile`` runs ours once
more at each latency under cProfile (top costs to standard error), then splits
its client CPU between ``prepare()`` and ``send_all()``, and sends all N in one
``send_all()`` call to show what a call per batch costs.

The report is a Markdown table on standard output; progress goes to standard error.
"""

from __future__ import annotations

import argparse
import contextlib
import datetime as dt
import functools
import json
import os
import platform
import signal
import statistics
import subprocess
import sys
import time
from collections import Counter
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[2]
SETTINGS = "tests.benchmarks.push_settings"
BENCH_TYPE = "bench_push"
SUBJECT = "mailto:bench@example.com"
BASELINE_VERIFY_MESSAGES = 20
TARGETS = {"ours_delay_per_s": 1500, "ours_0ms_per_s": 2000, "ratio_delay": 50}


class BenchError(Exception):
    """A phase failed; the message says which and what came back."""


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--messages", type=int, default=5_000, help="messages per run of ours (default 5,000)")
    parser.add_argument(
        "--baseline-messages", type=int, default=200, help="messages per run of pywebpush serial (default 200)"
    )
    parser.add_argument("--batch-size", type=int, default=500, help="deliveries per send_batch() (default 500)")
    parser.add_argument("--delay", type=float, default=0.05, help="the push service's added latency, s (default 0.05)")
    parser.add_argument("--reps", type=int, default=3, help="timed repetitions per figure (median reported)")
    parser.add_argument(
        "--verify-messages", type=int, default=500, help="messages of ours fully verified by a receiver (default 500)"
    )
    parser.add_argument(
        "--concurrency", type=int, help="the webpush channel's OPTIONS['concurrency'] (default: the backend's, 256)"
    )
    parser.add_argument("--engine", action="store_true", help="also time notify() + deliver_due() on a database")
    parser.add_argument("--profile", action="store_true", help="profile one more run of ours per latency (cProfile)")
    parser.add_argument("--json", type=Path, help="also write the figures to this file")
    args = parser.parse_args(argv)
    for name in ("messages", "baseline_messages", "batch_size", "reps", "verify_messages", "concurrency"):
        if getattr(args, name) is not None and getattr(args, name) < 1:
            parser.error(f"--{name.replace('_', '-')} must be at least 1")
    if args.delay <= 0:
        parser.error("--delay must be above 0 (the 0 ms rows always run)")
    return args


def log(message: str) -> None:
    print(f"   {message}", file=sys.stderr, flush=True)


# -- push receivers -------------------------------------------------------------------


class Receiver:
    """``python -m tests.push.receiver`` in a subprocess: its subscriptions, then its exit counters."""

    def __init__(self, label: str, *, delay: float, subscriptions: int, verify: bool) -> None:
        self.label = label
        command = [sys.executable, "-m", "tests.push.receiver", "--delay", str(delay)]
        command += ["--subscriptions", str(subscriptions), "--verify" if verify else "--no-verify"]
        self.process = subprocess.Popen(command, stdout=subprocess.PIPE, stdin=subprocess.DEVNULL, text=True, cwd=ROOT)
        self.origin = ""
        self.subscriptions: list[dict[str, Any]] = []
        self.counters: dict[str, Any] = {}

    def ready(self) -> Receiver:
        """Wait for the receiver's first line: its origin and subscriptions."""
        assert self.process.stdout is not None
        line = self.process.stdout.readline()
        if not line:
            raise BenchError(f"receiver {self.label!r} exited with status {self.process.wait()} before serving")
        info = json.loads(line)
        self.origin, self.subscriptions = info["origin"], info["subscriptions"]
        return self

    def stop(self) -> dict[str, Any]:
        """SIGTERM, then the counters it prints on its way out."""
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
        try:
            stdout, _ = self.process.communicate(timeout=60)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()
            raise BenchError(f"receiver {self.label!r} did not stop within 60 s of SIGTERM") from None
        lines = stdout.strip().splitlines()
        if self.process.returncode != 0 or not lines:
            raise BenchError(f"receiver {self.label!r} exited with status {self.process.returncode}")
        self.counters = json.loads(lines[-1])
        return self.counters


@contextlib.contextmanager
def receivers(specs: dict[str, tuple[float, int, bool]]) -> Iterator[dict[str, Receiver]]:
    """Start one receiver per ``label: (delay, subscriptions, verify)``, all at once; stop them after."""
    started: dict[str, Receiver] = {}
    try:
        for label, (delay, count, verify) in specs.items():
            started[label] = Receiver(label, delay=delay, subscriptions=count, verify=verify)
        for receiver in started.values():
            receiver.ready()
        yield started
    finally:
        for receiver in started.values():
            if receiver.process.poll() is None:
                receiver.process.terminate()
                with contextlib.suppress(subprocess.TimeoutExpired):
                    receiver.process.wait(30)
            if receiver.process.poll() is None:
                receiver.process.kill()
                receiver.process.wait()


# -- the two senders ------------------------------------------------------------------


def setup_django(database_url: str | None, concurrency: int | None = None) -> None:
    # Without --engine only the backend's read of template overrides touches a database,
    # an empty one in memory: never a project's DATABASE_URL. With it, a scratch database.
    os.environ["DATABASE_URL"] = database_url or "sqlite://:memory:"
    if concurrency is not None:
        os.environ["DN_BENCH_PUSH_CONCURRENCY"] = str(concurrency)
    os.environ["DJANGO_SETTINGS_MODULE"] = SETTINGS
    sys.path.insert(0, str(ROOT))
    import django

    django.setup()
    from django.core.management import call_command

    call_command("migrate", verbosity=0)
    from django_notify import NotificationType, registry

    registry.register(
        NotificationType(
            key=BENCH_TYPE,
            category="orders",
            title="Order {{ number }} is ready",
            body="Table {{ table }} can collect order {{ number }}.",
            url="/orders/{{ number }}/",
            channels=["in_app", "webpush"],
        )
    )


def webpush_backend() -> Any:
    from django_notify.channels import channels

    return channels["webpush"]


def build_deliveries(subscriptions: list[dict[str, Any]]) -> list[Any]:
    """Unsaved deliveries with pk set, each with its own notification and subscription attached."""
    from django.utils import timezone

    from django_notify.models import Delivery, Notification, PushSubscription

    now = timezone.now()
    key_id = webpush_backend().signer.key_id
    rows = []
    for pk, info in enumerate(subscriptions, start=1):
        notification = Notification(
            pk=pk,
            recipient_id=pk,
            type=BENCH_TYPE,
            category="orders",
            title=f"Order A-{pk} is ready",
            body=f"Table 7 can collect order A-{pk}.",
            url=f"/orders/A-{pk}/",
            data={"order": f"A-{pk}", "table": 7},
            created_at=now,
            visible_at=now,
        )
        subscription = PushSubscription(
            pk=pk,
            user_id=pk,
            endpoint=info["endpoint"],
            p256dh=info["keys"]["p256dh"],
            auth=info["keys"]["auth"],
            vapid_key_id=key_id,
        )
        rows.append(
            Delivery(
                pk=pk,
                notification=notification,
                subscription=subscription,
                channel="webpush",
                created_at=now,
                expires_at=now + dt.timedelta(days=1),
            )
        )
    return rows


def send_ours(deliveries: list[Any], batch_size: int) -> dict[str, float]:
    """``send_batch()`` over consecutive batches; every delivery must come back sent."""
    from django_notify.backends.base import Outcome

    backend = webpush_backend()
    outcomes: Counter[Outcome] = Counter()
    reasons: Counter[str] = Counter()
    cpu, start = time.process_time(), time.perf_counter()
    for first in range(0, len(deliveries), batch_size):
        for result in backend.send_batch(deliveries[first : first + batch_size]):
            outcomes[result.outcome] += 1
            if result.outcome is not Outcome.SENT:
                reasons[result.reason] += 1
    seconds, cpu = time.perf_counter() - start, time.process_time() - cpu
    if outcomes[Outcome.SENT] != len(deliveries):
        counts = {outcome.value: count for outcome, count in outcomes.items()}
        raise BenchError(f"ours: {counts} of {len(deliveries)}; most common reasons: {reasons.most_common(3)}")
    return timing(len(deliveries), seconds, cpu)


def baseline_items(subscriptions: list[dict[str, Any]]) -> list[tuple[dict[str, Any], str]]:
    """pywebpush's arguments: each subscription's info and the same JSON document ours would send."""
    from django.urls import reverse

    from django_notify import registry
    from django_notify.push import payload

    backend = webpush_backend()
    events_url = reverse("django_notify:event-list")
    notification_type = registry.get(BENCH_TYPE)
    items = []
    for delivery, info in zip(build_deliveries(subscriptions), subscriptions, strict=True):
        message = backend.message(delivery, delivery.notification, notification_type, events_url)
        body = payload.build_payload(message, max_bytes=backend.options["max_payload_bytes"])
        items.append(({"endpoint": info["endpoint"], "keys": info["keys"]}, body.decode()))
    return items


def send_pywebpush(items: list[tuple[dict[str, Any], str]]) -> dict[str, float]:
    """``pywebpush.webpush()`` serially with its defaults (no session, claims made per call), ``ttl=86400``."""
    from pywebpush import WebPushException, webpush

    private_key = webpush_backend().options["vapid_private_key"]  # the key ours signs with
    cpu, start = time.process_time(), time.perf_counter()
    for info, data in items:
        try:
            webpush(info, data=data, vapid_private_key=private_key, vapid_claims={"sub": SUBJECT}, ttl=86_400)
        except WebPushException as exc:
            status = exc.response.status_code if exc.response is not None else "no answer"
            raise BenchError(f"pywebpush: the receiver answered {status}") from None
    seconds, cpu = time.perf_counter() - start, time.process_time() - cpu
    return timing(len(items), seconds, cpu)


def timing(n: int, seconds: float, cpu: float) -> dict[str, float]:
    return {"messages": n, "seconds": seconds, "per_s": n / seconds, "cpu_us_per_message": cpu / n * 1e6}


# -- the run ---------------------------------------------------------------------------


def run(args: argparse.Namespace) -> dict[str, Any]:
    n, nb, delay = args.messages, args.baseline_messages, args.delay
    latencies = {"0 ms": 0.0, f"{delay * 1000:g} ms": delay}
    specs: dict[str, tuple[float, int, bool]] = {}
    for label, seconds in latencies.items():
        specs[f"ours {label}"] = (seconds, n, False)
        specs[f"pywebpush {label}"] = (seconds, nb, False)
    specs["verify ours"] = (0.0, args.verify_messages, True)
    specs["verify pywebpush"] = (0.0, BASELINE_VERIFY_MESSAGES, True)
    # Extra phases get receivers of their own, so the counters above describe the timed runs only.
    for phase in ("profile", "engine"):
        if getattr(args, phase):
            specs.update({f"{phase} {label}": (seconds, n, False) for label, seconds in latencies.items()})
    out: dict[str, Any] = {"environment": environment(args)}
    log(f"starting {len(specs)} push receivers ({n:,} subscriptions each for ours)")
    with receivers(specs) as running:
        runs = timed_runs(args, running)
        log("verification: every message checked and decrypted by the receiver")
        send_ours(build_deliveries(running["verify ours"].subscriptions), args.batch_size)
        send_pywebpush(baseline_items(running["verify pywebpush"].subscriptions))
        if args.profile:
            out["profile"], out["breakdown"] = {}, {}
            for label in latencies:
                subscriptions = running[f"profile {label}"].subscriptions
                out["profile"][label] = profile(build_deliveries(subscriptions), args.batch_size, label)
                out["breakdown"][label] = breakdown(build_deliveries(subscriptions), args.batch_size, label)
        if args.engine:
            out["engine"] = run_engine(args, {label: running[f"engine {label}"] for label in latencies})
        counters = {label: receiver.stop() for label, receiver in running.items()}
    out["cases"] = {label: summarize(runs[label], counters[label]) for label in runs}
    out["verification"] = {label: verification(counters[f"verify {label}"]) for label in ("ours", "pywebpush")}
    for label, figures in out.get("engine", {}).items():
        figures["receiver"] = receiver_figures(counters[f"engine {label}"])
    out["environment"]["loadavg_end"] = [round(x, 2) for x in os.getloadavg()]
    return out


def timed_runs(args: argparse.Namespace, running: dict[str, Receiver]) -> dict[str, list[dict[str, float]]]:
    """Warm each case up, then run the cases in turn, ``--reps`` times."""
    cases: dict[str, Callable[[], dict[str, float]]] = {}
    for label, receiver in running.items():
        if label.startswith("ours"):
            deliveries = build_deliveries(receiver.subscriptions)
            send_ours(deliveries[: args.batch_size], args.batch_size)  # imports, the origin's VAPID header
            cases[label] = functools.partial(send_ours, deliveries, args.batch_size)
        elif label.startswith("pywebpush"):
            items = baseline_items(receiver.subscriptions)
            send_pywebpush(items[:1])  # imports
            cases[label] = functools.partial(send_pywebpush, items)
    runs: dict[str, list[dict[str, float]]] = {label: [] for label in cases}
    for rep in range(args.reps):
        for label, case in cases.items():
            log(f"run {rep + 1} of {args.reps}: {label}")
            runs[label].append(case())
    return runs


def summarize(runs: list[dict[str, float]], counters: dict[str, Any]) -> dict[str, Any]:
    rates = [r["per_s"] for r in runs]
    return {
        "messages": runs[0]["messages"],
        "per_s": statistics.median(rates),
        "per_s_min": min(rates),
        "per_s_max": max(rates),
        "cpu_us_per_message": statistics.median(r["cpu_us_per_message"] for r in runs),
        "runs": runs,
        "receiver": receiver_figures(counters),
    }


def receiver_figures(counters: dict[str, Any]) -> dict[str, Any]:
    return {
        "requests": counters["requests"],
        "accepted": counters["accepted"],
        "cpu_us_per_request": counters["cpu_us_per_request"],
        "connections": counters["connections"],
        "max_in_flight": counters["max_in_flight"],
    }


def verification(counters: dict[str, Any]) -> dict[str, Any]:
    return {
        "requests": counters["requests"],
        "verified": counters["accepted"],
        "failed": counters["requests"] - counters["accepted"],
        "errors": counters["errors"],
        "cpu_us_per_request": counters["cpu_us_per_request"],
    }


def environment(args: argparse.Namespace) -> dict[str, Any]:
    from importlib.metadata import version

    import aiohttp
    import django

    backend = webpush_backend()
    return {
        "messages": args.messages,
        "baseline_messages": args.baseline_messages,
        "batch_size": args.batch_size,
        "concurrency": backend.options["concurrency"],
        "delay_s": args.delay,
        "reps": args.reps,
        "cpus": os.cpu_count(),
        "loadavg_start": [round(x, 2) for x in os.getloadavg()],
        "python": platform.python_version(),
        "django": django.__version__,
        "aiohttp": aiohttp.__version__,
        "pywebpush": version("pywebpush"),
    }


def profile(deliveries: list[Any], batch_size: int, label: str) -> list[dict[str, Any]]:
    """One more run of ours under cProfile; the top costs go to standard error."""
    import cProfile
    import pstats

    profiler = cProfile.Profile()
    profiler.enable()
    send_ours(deliveries, batch_size)
    profiler.disable()
    stats = pstats.Stats(profiler, stream=sys.stderr)
    log(f"profile of ours at {label} (top 30 by own time, then top 25 by cumulative time):")
    stats.sort_stats("tottime").print_stats(30)
    stats.sort_stats("cumulative").print_stats(25)
    rows = [
        {"function": f"{filename}:{line}({name})", "calls": calls, "tottime": tottime, "cumtime": cumtime}
        for (filename, line, name), (_cc, calls, tottime, cumtime, _callers) in stats.stats.items()  # type: ignore[attr-defined]
    ]
    return sorted(rows, key=lambda row: row["tottime"], reverse=True)[:30]


def breakdown(deliveries: list[Any], batch_size: int, label: str) -> dict[str, float]:
    """Client CPU per message of the backend's two phases, and of sending all N in one call.

    ``send_batch()`` first prepares every delivery (payload, token, VAPID header),
    then hands the batch to ``send_all()``, which encrypts each message as it
    sends it, over the connections the process keeps between calls. Sending all N
    in one ``send_all()`` call shows what a call per batch costs.
    """
    from django.urls import reverse
    from django.utils import timezone

    from django_notify.push.sender import send_all

    log(f"breakdown of ours at {label}: prepare(), then send_all() per batch, then once for all")
    backend = webpush_backend()
    now, events_url, n = timezone.now(), reverse("django_notify:event-list"), len(deliveries)
    options = {
        "connect_timeout": float(backend.options["connect_timeout"]),
        "read_timeout": float(backend.options["read_timeout"]),
        "concurrency": backend.options["concurrency"],
    }
    cpu = time.process_time()
    requests = [backend.prepare(delivery, now, events_url) for delivery in deliveries]
    figures = {"prepare_cpu_us": (time.process_time() - cpu) / n * 1e6}
    for name, chunk in (("send_per_batch", batch_size), ("send_one_call", n)):
        cpu, start = time.process_time(), time.perf_counter()
        statuses = Counter(
            response.status
            for first in range(0, n, chunk)
            for response in send_all(requests[first : first + chunk], **options)
        )
        figures[f"{name}_per_s"] = n / (time.perf_counter() - start)
        figures[f"{name}_cpu_us"] = (time.process_time() - cpu) / n * 1e6
        if statuses != {201: n}:
            raise BenchError(f"breakdown, {name}: the receiver answered {dict(statuses)}")
    return figures


# -- --engine: notify() then deliver_due() on a database --------------------------------


def run_engine(args: argparse.Namespace, engine_receivers: dict[str, Receiver]) -> dict[str, Any]:
    from django.contrib.auth import get_user_model
    from django.core.management import call_command
    from django.db import connection

    from django_notify.models import PushSubscription
    from django_notify.models.push import endpoint_digest

    call_command("migrate", verbosity=0)
    key_id = webpush_backend().signer.key_id
    figures: dict[str, Any] = {}
    for label, receiver in engine_receivers.items():
        prefix = f"engine{label.split()[0]}-"
        log(f"engine, {label}: {args.messages:,} users with one subscription each")
        user_model = get_user_model()
        user_model.objects.bulk_create(
            [user_model(username=f"{prefix}{i}", password="!") for i in range(args.messages)], batch_size=2000
        )
        users = list(get_user_model().objects.filter(username__startswith=prefix).order_by("pk"))
        PushSubscription.objects.bulk_create(
            [
                PushSubscription(
                    user=user,
                    endpoint=info["endpoint"],
                    endpoint_sha256=endpoint_digest(info["endpoint"]),
                    p256dh=info["keys"]["p256dh"],
                    auth=info["keys"]["auth"],
                    vapid_key_id=key_id,
                )
                for user, info in zip(users, receiver.subscriptions, strict=True)
            ],
            batch_size=2000,
        )
        recipients = get_user_model().objects.filter(username__startswith=prefix)
        runs = [
            engine_once(recipients, args.messages, f"{label}, run {rep + 1} of {args.reps}") for rep in range(args.reps)
        ]
        figures[label] = {
            "vendor": connection.vendor,
            "notify_s": statistics.median(r["notify_s"] for r in runs),
            "deliver_s": statistics.median(r["deliver_s"] for r in runs),
            "deliver_per_s": statistics.median(r["deliver_per_s"] for r in runs),
            "total_per_s": statistics.median(r["total_per_s"] for r in runs),
            "cpu_us_per_message": statistics.median(r["cpu_us_per_message"] for r in runs),
            "runs": runs,
        }
    return figures


def engine_once(recipients: Any, n: int, label: str) -> dict[str, float]:
    from django_notify import notify
    from django_notify.delivery import deliver_due
    from django_notify.models import Delivery, Notification

    Delivery.objects.all().delete()
    Notification.objects.all().delete()
    log(f"engine {label}: notify() then deliver_due()")
    context = {"number": "A-1042", "table": 7}
    cpu, start = time.process_time(), time.perf_counter()
    created = notify(BENCH_TYPE, recipients, context=context)
    notified = time.perf_counter()
    report = deliver_due()
    done, cpu = time.perf_counter(), time.process_time() - cpu
    if created.deliveries != n or report.sent != n:
        raise BenchError(f"engine: notify() made {created.deliveries} deliveries and deliver_due() reported {report}")
    return {
        "notify_s": notified - start,
        "deliver_s": done - notified,
        "deliver_per_s": n / (done - notified),
        "total_per_s": n / (done - start),
        "cpu_us_per_message": cpu / n * 1e6,
    }


@contextlib.contextmanager
def engine_database(url: str | None) -> Iterator[str]:
    """A scratch database on ``url``'s PostgreSQL server, or a SQLite file; dropped afterwards."""
    if str(ROOT) not in sys.path:
        sys.path.insert(0, str(ROOT))
    from tests.benchmarks.scratch import ScratchDatabaseError
    from tests.benchmarks.scratch import scratch_database as scratch_database_of

    try:
        with scratch_database_of(url, "bench_push") as scratch:
            yield scratch
    except ScratchDatabaseError as exc:
        raise BenchError(str(exc)) from None


# -- report -----------------------------------------------------------------------------


def report(results: dict[str, Any]) -> str:
    env, cases, checked = results["environment"], results["cases"], results["verification"]
    delay_label = f"{env['delay_s'] * 1000:g} ms"
    ours0, ours_d = cases["ours 0 ms"], cases[f"ours {delay_label}"]
    base0, base_d = cases["pywebpush 0 ms"], cases[f"pywebpush {delay_label}"]
    ratio0, ratio_d = ours0["per_s"] / base0["per_s"], ours_d["per_s"] / base_d["per_s"]

    def verdict(value: float, target: float) -> str:
        return f"≥ {target:,}: {'PASS' if value >= target else '**MISS**'}"

    def rate(case: dict[str, Any]) -> str:
        return f"{case['per_s']:,.0f} ({case['per_s_min']:,.0f}–{case['per_s_max']:,.0f})"

    rows: list[tuple[str, str, str]] = []
    for label, case, target in (
        ("ours, 0 ms", ours0, TARGETS["ours_0ms_per_s"]),
        (f"ours, {delay_label}", ours_d, TARGETS["ours_delay_per_s"]),
        ("pywebpush serial, 0 ms", base0, None),
        (f"pywebpush serial, {delay_label}", base_d, None),
    ):
        receiver = case["receiver"]
        rows.append(
            (
                f"**{label}: messages/s** (N = {case['messages']:,})",
                f"**{rate(case)}**",
                verdict(case["per_s"], target) if target else "",
            )
        )
        rows.append(
            (
                f"{label}: client CPU µs/message · receiver CPU µs/request · TCP connections/request",
                f"{case['cpu_us_per_message']:,.0f} (≤ {1e6 / case['cpu_us_per_message']:,.0f}/s on a free core) · "
                f"{receiver['cpu_us_per_request']:,.0f} · "
                f"{receiver['connections'] / receiver['requests']:.3f}",
                "",
            )
        )
    rows.append(
        (
            f"**ratio ours / pywebpush serial, {delay_label}**",
            f"**{ratio_d:,.1f}x**",
            verdict(ratio_d, TARGETS["ratio_delay"]),
        )
    )
    rows.append(("ratio ours / pywebpush serial, 0 ms", f"{ratio0:,.1f}x", ""))
    for label, figures in checked.items():
        rows.append(
            (
                f"verified by the receiver (VAPID JWT + decryption), {label}",
                f"{figures['verified']:,} of {figures['requests']:,} verified, {figures['failed']} failed",
                "all: PASS" if figures["failed"] == 0 and figures["verified"] > 0 else "**MISS**",
            )
        )
    for label, figures in results.get("breakdown", {}).items():
        rows.append(
            (
                f"ours, {label}, client CPU µs/message: prepare() · send_all() per batch · send_all() once for all N",
                f"{figures['prepare_cpu_us']:,.0f} · {figures['send_per_batch_cpu_us']:,.0f} · "
                f"{figures['send_one_call_cpu_us']:,.0f}",
                "",
            )
        )
    for label, figures in results.get("engine", {}).items():
        rows.append(
            (
                f"engine end to end, {label} ({figures['vendor']}): notify() · deliver_due() s · deliver_due() msg/s",
                f"{figures['notify_s']:.2f} · {figures['deliver_s']:.2f} · {figures['deliver_per_s']:,.0f}",
                "",
            )
        )
        rows.append(
            (
                f"engine end to end, {label}: messages/s incl. notify() · client CPU µs/message",
                f"{figures['total_per_s']:,.0f} · {figures['cpu_us_per_message']:,.0f}",
                "",
            )
        )
    lines = [
        f"# django_notify Web Push benchmark (median of {env['reps']}, range in brackets)",
        "",
        f"{env['cpus']} CPUs (load average {env['loadavg_start'][0]} at start, {env['loadavg_end'][0]} at end), "
        f"Python {env['python']}, Django {env['django']}, aiohttp {env['aiohttp']}, pywebpush {env['pywebpush']}. "
        f"Ours: send_batch() of {env['batch_size']} at concurrency {env['concurrency']}, one process. "
        f"pywebpush serial on {env['baseline_messages']:,} messages (its rate does not depend on N). "
        "Throughput receivers check headers only (--no-verify); the verification rows check everything.",
        "",
        "| figure | value | target |",
        "|---|---:|---|",
        *(f"| {label} | {value} | {target} |" for label, value, target in rows),
    ]
    return "\n".join(lines)


def main() -> int:
    args = parse_args()
    try:
        with contextlib.ExitStack() as stack:
            url = stack.enter_context(engine_database(os.environ.get("DATABASE_URL"))) if args.engine else None
            setup_django(url, args.concurrency)
            results = run(args)
    except BenchError as exc:
        print(f"\nbench_push failed: {exc}", file=sys.stderr)
        return 1
    print(report(results))
    if args.json:
        args.json.write_text(json.dumps(results, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())

"""The two real things the end-to-end tests drive: an HTTP sink and a ``qcluster`` process.

:class:`Sink` is the webhook receiver: a ``ThreadingHTTPServer`` on 127.0.0.1 in
the test process that records every request it gets (the delivery id from the
``Idempotency-Key`` header, the arrival time, the attempt number from the body,
the status it answered) *before* answering, so what reached the "provider" is
known even when the worker that sent it is killed a microsecond later. It can be
scripted per test: 503 for the first N requests of an id, hang (never answer) the
first N requests of an id, or slow every request down.

:class:`Cluster` is one ``python -m django qcluster`` subprocess in its own session
(so its process group holds the sentinel, the workers, the monitor and the
pusher), logging to a file. ``stop()`` asks it to stop like a process manager
would (SIGTERM to the main process: django-q2's stop procedure lets the workers
finish what they hold), then SIGKILLs the whole group; ``kill()`` is ``kill -9``
of the group.
"""

from __future__ import annotations

import collections
import contextlib
import http.server
import json
import os
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

ROOT = Path(__file__).resolve().parents[2]
T = TypeVar("T")


def wait_until(
    predicate: Callable[[], T], timeout: float, *, interval: float = 0.05, describe: Callable[[], str] | None = None
) -> T:
    """Poll ``predicate`` until it returns something truthy; fail after ``timeout`` seconds."""
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() >= deadline:
            detail = f": {describe()}" if describe else ""
            raise AssertionError(f"not reached within {timeout:g} s{detail}")
        time.sleep(interval)


# -- the sink ------------------------------------------------------------------------


@dataclass(frozen=True)
class Request:
    delivery_id: int
    at: float  # time.time() on arrival
    attempt: int | None  # the "attempt" field of the body
    status: int | None  # what the sink answered; None: it hung


class Sink:
    """A scriptable webhook receiver that records every request (thread-safe)."""

    def __init__(self) -> None:
        self.requests: list[Request] = []
        self.seen: collections.Counter[int] = collections.Counter()
        self.lock = threading.Lock()
        self.fail_first: dict[int, int] = {}  # id -> answer 503 to this many first requests
        self.hang_first: dict[int, int] = {}  # id -> never answer this many first requests
        self.delay = 0.0  # seconds before answering each request
        #: Called with the number of requests so far, after recording one and before answering it.
        self.on_request: Callable[[int], object] | None = None
        self.release = threading.Event()  # set at shutdown: hung handlers return
        sink = self

        class Handler(http.server.BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"  # keep-alive, as the webhook backend expects
            # Headers and body are two writes: without TCP_NODELAY, Nagle's algorithm and
            # the client's delayed ACK add 40 ms to every answer.
            disable_nagle_algorithm = True

            def do_POST(self) -> None:
                sink.handle(self)

            def log_message(self, format: str, *args: Any) -> None:
                pass

        class Server(http.server.ThreadingHTTPServer):
            daemon_threads = True
            request_queue_size = 256

            def handle_error(self, request: Any, client_address: Any) -> None:
                # A killed worker or a client timeout leaves a broken connection; expected.
                if not isinstance(sys.exc_info()[1], (ConnectionError, TimeoutError)):
                    super().handle_error(request, client_address)

        self.server = Server(("127.0.0.1", 0), Handler)
        self.port: int = self.server.server_address[1]
        self.thread = threading.Thread(target=self.server.serve_forever, name="e2e-sink", daemon=True)

    def start(self) -> Sink:
        self.thread.start()
        return self

    def close(self) -> None:
        self.release.set()
        self.server.shutdown()
        self.server.server_close()
        self.thread.join(5)

    def handle(self, handler: http.server.BaseHTTPRequestHandler) -> None:
        at = time.time()
        body = handler.rfile.read(int(handler.headers.get("Content-Length") or 0))
        key = handler.headers.get("Idempotency-Key") or ""
        delivery_id = int(key.removeprefix("delivery-")) if key.startswith("delivery-") else -1
        try:
            document = json.loads(body)
        except ValueError:
            document = {}
        attempt = document.get("attempt")
        if document.get("id") != delivery_id:
            delivery_id = -1  # key and body disagree: an id no test expects
        with self.lock:
            seen = self.seen[delivery_id]
            self.seen[delivery_id] += 1
            hang = seen < self.hang_first.get(delivery_id, 0)
            status = None if hang else 503 if seen < self.fail_first.get(delivery_id, 0) else 201
            self.requests.append(Request(delivery_id, at, attempt, status))
            number = len(self.requests)
        if self.on_request is not None:
            self.on_request(number)
        if hang:
            self.release.wait(120)  # the client gives up first; close without an answer
            handler.close_connection = True
            return
        if self.delay:
            time.sleep(self.delay)
        payload = b'{"ok":true}' if status == 201 else b'{"error":"unavailable"}'
        handler.send_response(status or 500)
        handler.send_header("Content-Type", "application/json")
        handler.send_header("Content-Length", str(len(payload)))
        handler.end_headers()
        handler.wfile.write(payload)

    # What arrived -------------------------------------------------------------------

    def snapshot(self) -> list[Request]:
        with self.lock:
            return list(self.requests)

    def count(self) -> int:
        with self.lock:
            return len(self.requests)

    def counts(self) -> collections.Counter[int]:
        with self.lock:
            return collections.Counter(self.seen)

    def of(self, delivery_id: int) -> list[Request]:
        return [r for r in self.snapshot() if r.delivery_id == delivery_id]

    def wait_for(self, ids: Iterable[int], timeout: float) -> None:
        """Wait until every id of ``ids`` has been requested at least once."""
        wanted = set(ids)
        wait_until(
            lambda: wanted <= set(self.counts()),
            timeout,
            describe=lambda: f"{len(wanted - set(self.counts()))} of {len(wanted)} ids never arrived",
        )


# -- the cluster ---------------------------------------------------------------------

#: libfaketime as Debian's ``faketime`` package installs it (any architecture), or None.
FAKETIME_LIBRARY = next(
    (
        path
        for pattern in ("/usr/lib/*/faketime/libfaketime.so.1", "/usr/*lib*/faketime/libfaketime.so.1")
        for path in sorted(Path("/").glob(pattern.lstrip("/")))
    ),
    None,
)


class Cluster:
    """One ``python -m django qcluster`` subprocess, in its own session."""

    def __init__(self, label: str, log_path: Path, env: Mapping[str, str]) -> None:
        self.label = label
        self.log_path = log_path
        self.env = dict(env)
        self.process: subprocess.Popen[bytes] | None = None

    def start(self) -> Cluster:
        with open(self.log_path, "ab") as log:
            log.write(f"==== {self.label}: starting at {time.strftime('%H:%M:%S')}\n".encode())
            log.flush()
            self.process = subprocess.Popen(
                [sys.executable, "-m", "django", "qcluster"],
                cwd=ROOT,
                env=self.env,
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
                start_new_session=True,  # its own process group: kill -9 takes all of it
            )
        return self

    @property
    def pid(self) -> int:
        assert self.process is not None, "the cluster was never started"
        return self.process.pid

    def alive(self) -> bool:
        return self.process is not None and self.process.poll() is None

    def log(self) -> str:
        try:
            return self.log_path.read_text(errors="replace")
        except FileNotFoundError:
            return ""

    def wait_ready(self, timeout: float = 60) -> Cluster:
        """Wait for the sentinel's "Q Cluster … running." (its workers are spawned by then)."""
        start = len(self.log())

        def ready() -> bool:
            if not self.alive():
                raise AssertionError(f"{self.label} exited with status {self.process and self.process.returncode}")
            text = self.log()[start:] if start else self.log()
            return "running." in text

        wait_until(ready, timeout, interval=0.1, describe=lambda: f"{self.label} did not report 'running'")
        return self

    def kill(self) -> None:
        """``kill -9`` the whole process group (sentinel, workers, monitor, pusher) and reap it."""
        self.send_kill()
        assert self.process is not None
        self.process.wait(30)

    def send_kill(self) -> None:
        """``kill -9`` the whole process group without waiting (safe from any thread)."""
        with contextlib.suppress(ProcessLookupError):
            os.killpg(self.pid, signal.SIGKILL)

    def terminate(self) -> None:
        """SIGTERM to the main ``qcluster`` process only, without waiting (safe from any thread).

        django-q2 then stops gracefully: the workers finish the tasks they hold. (Its
        sentinel and workers keep SIGTERM's default action, so a SIGTERM sent to the
        whole group, as ``stopasgroup`` process managers do, kills them at once.)
        """
        with contextlib.suppress(ProcessLookupError):
            os.kill(self.pid, signal.SIGTERM)

    def stop(self, timeout: float = 30) -> int | None:
        """SIGTERM to the main process (graceful), then SIGKILL whatever is left of the group."""
        if self.process is None:
            return None
        if self.process.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                os.kill(self.pid, signal.SIGTERM)
            with contextlib.suppress(subprocess.TimeoutExpired):
                self.process.wait(timeout)
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(self.pid, signal.SIGKILL)  # orphans (workers of a dead sentinel), if any
        if self.process.poll() is None:
            self.process.wait(30)
        return self.process.returncode


def faketime_env(at_utc: str) -> dict[str, str]:
    """Environment that makes a process believe it starts at ``at_utc`` ("YYYY-MM-DD HH:MM:SS", UTC).

    libfaketime's "@" form: the clock starts there and keeps ticking; forked
    children (django-q2's workers) continue the parent's clock.
    """
    assert FAKETIME_LIBRARY is not None, "libfaketime is not installed"
    return {"LD_PRELOAD": str(FAKETIME_LIBRARY), "FAKETIME": f"@{at_utc}", "TZ": "UTC"}

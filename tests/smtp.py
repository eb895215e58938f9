"""A real SMTP server on 127.0.0.1 for the email tests and benchmark (aiosmtpd).

In a test::

    with SMTPServer() as server:
        server.refuse("bad@example.com", 550, "5.1.1 No such user")
        server.stall_rcpt("slow@example.com", 3)
        ...  # EMAIL_HOST="127.0.0.1", EMAIL_PORT=server.port
        server.messages[0].message["Subject"]

As a process (``tests/benchmarks/bench_email.py``)::

    python -m tests.smtp --port 0 --latency-ms 2

prints ``{"host": ..., "port": ...}`` once it listens, serves until SIGTERM or
SIGINT, then prints its counters (sessions, messages, recipients, CPU seconds since it listens)
as one JSON line.

The server runs its own event loop in a thread; every session is a TCP connection
and is counted. Stalls sleep without answering, as a hung server would, and do not
hold up the other sessions.
"""

from __future__ import annotations

import argparse
import asyncio
import email
import email.policy
import json
import signal
import sys
import threading
import time
from dataclasses import dataclass, field
from email.message import EmailMessage
from typing import Any

from aiosmtpd.smtp import SMTP, Envelope, Session

HOST = "127.0.0.1"


@dataclass
class Received:
    """One message the server accepted."""

    mail_from: str
    rcpt_tos: list[str]
    data: bytes
    session: int  # which connection carried it, from 1
    message: EmailMessage = field(init=False)

    def __post_init__(self) -> None:
        parsed = email.message_from_bytes(self.data, policy=email.policy.default)
        assert isinstance(parsed, EmailMessage)
        self.message = parsed


class _Handler:
    """aiosmtpd hooks: refuse, stall or accept, as the server is told."""

    def __init__(self, server: SMTPServer) -> None:
        self.server = server

    async def handle_RCPT(
        self, smtp: SMTP, session: Session, envelope: Envelope, address: str, rcpt_options: list[str]
    ) -> str:
        server = self.server
        key = address.lower()
        with server.lock:
            server.rcpts.append(address)
            stall = server._stall_rcpt.get(key, 0.0)
            refusal = server._refusals.get(key)
        if stall:
            await asyncio.sleep(stall)
        if refusal is not None:
            return f"{refusal[0]} {refusal[1]}"
        envelope.rcpt_tos.append(address)
        return "250 OK"

    async def handle_DATA(self, smtp: SMTP, session: Session, envelope: Envelope) -> str:
        server = self.server
        with server.lock:
            stall = max(
                [server._stall_data.get("*", 0.0)]
                + [server._stall_data.get(address.lower(), 0.0) for address in envelope.rcpt_tos]
            )
        if stall:
            await asyncio.sleep(stall)
        data = envelope.original_content or b""
        number = getattr(smtp, "number", 0)
        with server.lock:
            server.message_count += 1
            server.recipient_count += len(envelope.rcpt_tos)
            count = server.message_count
            if server.record:
                server.messages.append(Received(str(envelope.mail_from), list(envelope.rcpt_tos), data, number))
        return f"250 OK queued as {count}"


class _Session(SMTP):
    """One connection: counted, tracked for shutdown, and slowed by ``latency`` per reply."""

    def __init__(self, server: SMTPServer, **kwargs: Any) -> None:
        super().__init__(_Handler(server), **kwargs)
        self.server = server
        self.number = 0

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        with self.server.lock:
            self.server.sessions += 1
            self.number = self.server.sessions
            self.server._open.add(self)
            self.server.max_open = max(self.server.max_open, len(self.server._open))
        super().connection_made(transport)

    def connection_lost(self, error: Exception | None) -> None:
        with self.server.lock:
            self.server._open.discard(self)
        super().connection_lost(error)

    async def push(self, status: Any) -> None:
        if self.server.latency:
            await asyncio.sleep(self.server.latency)
        await super().push(status)


class SMTPServer:
    """An SMTP server on an ephemeral port of 127.0.0.1, in a thread; a context manager."""

    def __init__(self, *, port: int = 0, latency: float = 0.0, record: bool = True) -> None:
        self.requested_port = port
        #: Seconds added before every reply (greeting included): a relay's round trip.
        self.latency = latency
        #: Keep each message (parsed); off, only the counters are kept.
        self.record = record
        self.lock = threading.Lock()
        self.messages: list[Received] = []
        #: Every ``RCPT TO`` address, accepted or not, in order.
        self.rcpts: list[str] = []
        #: Connections accepted so far.
        self.sessions = 0
        #: Most connections open at the same time.
        self.max_open = 0
        self.message_count = 0
        self.recipient_count = 0
        self.port = 0
        self._refusals: dict[str, tuple[int, str]] = {}
        self._stall_rcpt: dict[str, float] = {}
        self._stall_data: dict[str, float] = {}
        self._open: set[_Session] = set()
        self._loop = asyncio.new_event_loop()
        self._server: asyncio.AbstractServer | None = None
        self._thread: threading.Thread | None = None

    # What the server does ------------------------------------------------------------

    def refuse(self, address: str, code: int = 550, text: str = "5.1.1 No such user here") -> None:
        """Answer ``RCPT TO:<address>`` with ``code text`` (550: permanent, 451: transient)."""
        with self.lock:
            self._refusals[address.lower()] = (code, text)

    def accept(self, address: str) -> None:
        """Undo :meth:`refuse` and the stalls for ``address``."""
        with self.lock:
            self._refusals.pop(address.lower(), None)
            self._stall_rcpt.pop(address.lower(), None)
            self._stall_data.pop(address.lower(), None)

    def stall_rcpt(self, address: str, seconds: float) -> None:
        """Sleep ``seconds`` before answering ``RCPT TO:<address>``."""
        with self.lock:
            self._stall_rcpt[address.lower()] = seconds

    def stall_data(self, seconds: float, address: str = "*") -> None:
        """Sleep ``seconds`` at the end of ``DATA`` (of messages to ``address``; ``"*"``: all)."""
        with self.lock:
            self._stall_data[address.lower()] = seconds

    def counters(self) -> dict[str, int]:
        with self.lock:
            return {"sessions": self.sessions, "messages": self.message_count, "recipients": self.recipient_count}

    # Lifecycle -------------------------------------------------------------------------

    def start(self) -> SMTPServer:
        ready = threading.Event()
        failure: list[BaseException] = []

        def run() -> None:
            asyncio.set_event_loop(self._loop)
            try:
                self._server = self._loop.run_until_complete(
                    self._loop.create_server(self._session, HOST, self.requested_port)
                )
            except BaseException as exc:  # the port is taken: reported by start()
                failure.append(exc)
                ready.set()
                self._loop.close()
                return
            self.port = self._server.sockets[0].getsockname()[1]
            ready.set()
            self._loop.run_forever()
            self._loop.run_until_complete(self._loop.shutdown_asyncgens())
            self._loop.close()

        self._thread = threading.Thread(target=run, name="test-smtp", daemon=True)
        self._thread.start()
        ready.wait(10)
        if failure:
            self._thread.join()
            raise failure[0]
        return self

    def _session(self) -> _Session:
        # No reverse DNS for the greeting's host name: a fixed one.
        return _Session(self, hostname="smtp.test", loop=self._loop, enable_SMTPUTF8=True)

    async def _shutdown(self) -> None:
        assert self._server is not None
        self._server.close()
        with self.lock:
            sessions = list(self._open)
        for session in sessions:
            if session.transport is not None:
                session.transport.abort()  # stalled sessions end now
        current = asyncio.current_task()
        tasks = [task for task in asyncio.all_tasks() if task is not current]
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        await self._server.wait_closed()

    def stop(self) -> None:
        if self._thread is None:
            return
        if self._server is not None and not self._loop.is_closed():
            asyncio.run_coroutine_threadsafe(self._shutdown(), self._loop).result(10)
            self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(10)
        self._thread = None

    def __enter__(self) -> SMTPServer:
        return self.start()

    def __exit__(self, *exc_info: Any) -> None:
        self.stop()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="An SMTP sink on 127.0.0.1 that counts sessions and messages.")
    parser.add_argument("--port", type=int, default=0, help="port to listen on (default: any free one)")
    parser.add_argument("--latency-ms", type=float, default=0.0, help="milliseconds added before every reply")
    parser.add_argument("--record", action="store_true", help="parse and keep every message (costs CPU)")
    args = parser.parse_args(argv)
    server = SMTPServer(port=args.port, latency=args.latency_ms / 1000, record=args.record).start()
    started_cpu = time.process_time()  # the CPU of serving, not of starting Python
    stopping = threading.Event()
    for signum in (signal.SIGTERM, signal.SIGINT):
        signal.signal(signum, lambda *_: stopping.set())
    print(json.dumps({"host": HOST, "port": server.port}), flush=True)
    while not stopping.wait(0.2):
        pass
    server.stop()
    print(json.dumps({**server.counters(), "cpu_s": time.process_time() - started_cpu}), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())

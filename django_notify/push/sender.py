"""Concurrent POSTs of encrypted Web Push messages over reused connections.

:func:`send_all` takes requests the backend has encrypted and signed and returns
one :class:`PushResponse` per request, in order. It never raises for a failed
request: a timeout, a reset, a TLS error or a garbage answer becomes that
request's ``error`` and leaves the others alone.

Inside, each process keeps one asyncio event loop with one
:class:`aiohttp.ClientSession`, run by each call in turn: connections to a push
service are kept alive from one batch to the next, and up to ``concurrency``
requests of a call are in flight. A request's body may be encrypted only when
the request is sent, so encrypting overlaps the network waits. Redirects are
never followed, no proxy or cookie is used, and at most 16 KB of an answer is read.

A host's addresses are looked up at most every 30 seconds and checked with
:func:`~django_notify.push.endpoints.check_addresses` before any request to it;
the connector connects to exactly those checked addresses, so a second DNS
answer (DNS rebinding) cannot send a request somewhere else.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import socket
import ssl
import threading
import time
from collections import OrderedDict
from collections.abc import Awaitable, Callable, Coroutine, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from ipaddress import ip_address
from typing import Any, TypeVar

import aiohttp
from aiohttp.abc import AbstractResolver, ResolveResult

from django_notify import __version__
from django_notify.push.endpoints import Endpoint, EndpointRejected, check_addresses

logger = logging.getLogger(__name__)

USER_AGENT = f"django-notify-kit/{__version__}"
#: How much of a response body :attr:`PushResponse.body_excerpt` keeps.
EXCERPT_BYTES = 512
#: At most this much of a response body is read; a longer body costs the connection.
MAX_READ_BYTES = 16 * 1024
# The total timeout only backs up the connect and per-read timeouts (e.g. against a
# server that trickles its answer one byte at a time), so it leaves them this margin.
_TOTAL_TIMEOUT_MARGIN = 1.0

#: Seconds a host's checked addresses are used before it is looked up again.
DNS_TTL = 30.0
#: Seconds a failed lookup is the answer for every request to that host.
DNS_FAILURE_TTL = 2.0

#: ``resolve(host, port)`` returns the host's addresses (as strings) for one lookup.
Resolver = Callable[[str, int], Awaitable[list[str]]]
T = TypeVar("T")


@dataclass(frozen=True, slots=True, repr=False)
class PushRequest:
    """One push message, ready to POST: the encrypted body, headers set by the caller.

    ``body`` may be a function that returns the encrypted body: it is called when
    the request is sent, so that encrypting one message (most of its CPU) overlaps
    the network waits of the others.
    """

    key: int  #: echoed on the response; the backend uses the delivery id
    endpoint: Endpoint
    body: bytes | Callable[[], bytes]
    headers: Mapping[str, str]

    def __repr__(self) -> str:
        # The endpoint URL is a bearer capability and Authorization a signed token.
        size = f"{len(self.body)} bytes" if isinstance(self.body, bytes) else "encrypted when sent"
        return f"PushRequest(key={self.key}, origin={self.endpoint.origin!r}, body={size})"


@dataclass(frozen=True, slots=True, repr=False)
class PushResponse:
    """What the push service answered to one :class:`PushRequest`.

    ``status`` is set once the status line arrived; ``error`` is set when anything
    went wrong, so both are set when the body of an answer was cut short.
    ``error`` is one of ``"timeout"``, ``"connect"``, ``"tls"``,
    ``"rejected: <why>"`` (the endpoint's addresses are not allowed; nothing was
    sent), ``"deferred"`` (not started before the deadline; nothing was sent),
    ``"unsendable: <exception>"`` (``body()`` raised; nothing was sent) or
    ``"protocol: <what>"``; it never holds the endpoint's URL.
    """

    key: int
    status: int | None
    retry_after: str | None  #: the raw ``Retry-After`` header
    location: str | None  #: the raw ``Location`` header (never followed)
    body_excerpt: bytes  #: at most the first :data:`EXCERPT_BYTES` of the body
    error: str | None
    elapsed: float  #: seconds from the start of this request to its end

    def __repr__(self) -> str:
        # Location is the message's URL on the push service: a capability too.
        return (
            f"PushResponse(key={self.key}, status={self.status}, error={self.error!r}, "
            f"elapsed={self.elapsed:.3f}, body_excerpt={len(self.body_excerpt)} bytes)"
        )


def send_all(
    requests: Sequence[PushRequest],
    *,
    connect_timeout: float = 5.0,
    read_timeout: float = 10.0,
    concurrency: int = 256,
    deadline: float | None = None,
    user_agent: str = USER_AGENT,
    resolve: Resolver | None = None,
    ssl_context: ssl.SSLContext | None = None,
) -> list[PushResponse]:
    """POST every request concurrently and return one response per request, in order.

    ``connect_timeout`` bounds the DNS lookup and the TCP (and TLS) connect,
    ``read_timeout`` each wait for the answer. ``deadline`` is a
    :func:`time.monotonic` value: requests not started by then come back
    ``"deferred"``. ``resolve`` replaces the DNS lookup (the default asks the
    event loop's ``getaddrinfo``). ``ssl_context`` replaces the default TLS
    settings (the system's trusted CAs; certificates always verified).

    Synchronous, from any thread, also one that runs an event loop (Django under
    ASGI). Calls in one process take turns on its event loop.
    """
    _validate_arguments(connect_timeout, read_timeout, concurrency, user_agent)
    if not requests:
        return []
    timeout = aiohttp.ClientTimeout(
        total=connect_timeout + read_timeout + _TOTAL_TIMEOUT_MARGIN,
        sock_connect=connect_timeout,
        sock_read=read_timeout,
    )
    client = _client(resolve, ssl_context, user_agent)
    return client.run(client.send_all(requests, timeout=timeout, concurrency=concurrency, deadline=deadline))


def close_connections() -> None:
    """Close this process's kept-alive push connections.

    Never needed for correctness (idle connections are closed after
    :data:`KEEPALIVE_SECONDS`, and die with the process); for tests whose push
    receivers must see no connection from an earlier test, and a clean shutdown.
    """
    with _clients_lock:
        clients = list(_clients.values())
        _clients.clear()
    for client in clients:
        if client.pid == os.getpid():
            client.close()


def _validate_arguments(connect_timeout: float, read_timeout: float, concurrency: int, user_agent: str) -> None:
    for name, value in (("connect_timeout", connect_timeout), ("read_timeout", read_timeout)):
        if isinstance(value, bool) or not isinstance(value, (int, float)) or not value > 0:
            raise ValueError(f"send_all() {name} must be a number of seconds above 0, not {value!r}")
    if isinstance(concurrency, bool) or not isinstance(concurrency, int) or concurrency < 1:
        raise ValueError(
            f"send_all() concurrency must be a whole number of requests of at least 1, not {concurrency!r}"
        )
    if not isinstance(user_agent, str) or not user_agent or not user_agent.isprintable() or not user_agent.isascii():
        raise ValueError(
            f"send_all() user_agent must be printable ASCII text such as {USER_AGENT!r}, not {user_agent!r}"
        )


#: Seconds an idle connection to a push service is kept for the next batch.
KEEPALIVE_SECONDS = 30.0
#: How many (resolver, TLS settings, user agent) combinations keep a client; the
#: backend uses one. The least recently used is closed beyond that.
MAX_CLIENTS = 4

_clients: OrderedDict[tuple[object, ...], _Client] = OrderedDict()
_clients_lock = threading.Lock()


def _client(resolve: Resolver | None, ssl_context: ssl.SSLContext | None, user_agent: str) -> _Client:
    """This process's client for these settings, made on first use."""
    key = (resolve, ssl_context, user_agent)
    evicted: list[_Client] = []
    with _clients_lock:
        pid = os.getpid()
        if any(client.pid != pid for client in _clients.values()):
            # A forked child (a django-q2 worker) inherits the parent's clients, whose
            # sockets it shares: forget them, without closing what belongs to the parent.
            _clients.clear()
        client = _clients.get(key)
        if client is None or client.closed:
            client = _clients[key] = _Client(resolve, ssl_context, user_agent)
            while len(_clients) > MAX_CLIENTS:
                evicted.append(_clients.popitem(last=False)[1])
        _clients.move_to_end(key)
    for old in evicted:
        old.close()
    return client


class _Client:
    """An event loop of this process's own with one aiohttp session, run by each call in turn.

    Connections to a push service are kept alive from one call of :func:`send_all`
    to the next, so a worker sending batch after batch connects (and shakes hands
    over TLS) once, not once per batch. The loop runs only during a call, in the
    calling thread (or, if that thread runs an event loop already, a helper thread).
    """

    def __init__(self, resolve: Resolver | None, ssl_context: ssl.SSLContext | None, user_agent: str) -> None:
        self.pid = os.getpid()
        self.closed = False
        self.loop = asyncio.new_event_loop()
        self._lock = threading.Lock()
        self.resolver = _CheckedResolver(resolve or _getaddrinfo)
        self.session = self.run(self._open(ssl_context, user_agent))

    async def _open(self, ssl_context: ssl.SSLContext | None, user_agent: str) -> aiohttp.ClientSession:
        connector = aiohttp.TCPConnector(
            # Each call bounds its own requests in flight (its ``concurrency``).
            limit=0,
            limit_per_host=0,
            ssl=ssl_context if ssl_context is not None else True,
            resolver=self.resolver,
            # _CheckedResolver keeps the checked answers; aiohttp's cache would bypass the check.
            use_dns_cache=False,
            keepalive_timeout=KEEPALIVE_SECONDS,
        )
        return aiohttp.ClientSession(
            connector=connector,
            # A compressed answer is not wanted: only its first bytes are kept. Saying so
            # here rather than with skip_auto_headers keeps aiohttp on its fast path.
            headers={"User-Agent": user_agent, "Accept-Encoding": "identity"},
            cookie_jar=aiohttp.DummyCookieJar(),
            auto_decompress=False,
            trust_env=False,
            raise_for_status=False,
        )

    def run(self, coroutine: Coroutine[Any, Any, T]) -> T:
        """Run ``coroutine`` on the client's loop, one call at a time, and return its result."""
        with self._lock:
            try:
                asyncio.get_running_loop()
            except RuntimeError:
                return self.loop.run_until_complete(coroutine)
            # This thread runs another loop (Django under ASGI) and is blocked by the
            # synchronous caller anyway: run ours on a short-lived helper thread.
            with ThreadPoolExecutor(max_workers=1, thread_name_prefix="django-notify-push") as executor:
                return executor.submit(self.loop.run_until_complete, coroutine).result()

    def close(self) -> None:
        if self.closed:
            return
        self.closed = True
        with contextlib.suppress(Exception):
            self.run(self._close())
        self.loop.close()

    async def _close(self) -> None:
        await self.session.close()
        await self.resolver.close()

    async def send_all(
        self,
        requests: Sequence[PushRequest],
        *,
        timeout: aiohttp.ClientTimeout,
        concurrency: int,
        deadline: float | None,
    ) -> list[PushResponse]:
        started = time.monotonic()
        # While the loop was idle, servers may have closed kept-alive connections: one
        # pass through the loop handles those closes before a request could pick one.
        await asyncio.sleep(0)
        responses: dict[int, PushResponse] = {}
        # Workers take the next index from one shared iterator, so a slow endpoint
        # holds up only the worker waiting on it.
        indexes = iter(range(len(requests)))

        async def worker() -> None:
            for index in indexes:
                request = requests[index]
                if deadline is not None and time.monotonic() >= deadline:
                    responses[index] = PushResponse(request.key, None, None, None, b"", "deferred", 0.0)
                else:
                    responses[index] = await self.send(request, timeout)

        # Started one per pass of the loop: aiohttp writes a request in a task of its own,
        # so workers started together would all encrypt before the first byte is sent.
        # Staggered, each request is on the wire while the next one is encrypted.
        workers = []
        for _ in range(min(concurrency, len(requests))):
            workers.append(asyncio.ensure_future(worker()))
            await asyncio.sleep(0)
        await asyncio.gather(*workers)
        logger.debug("Sent %d push requests in %.3f s", len(requests), time.monotonic() - started)
        return [responses[index] for index in range(len(requests))]

    async def send(self, request: PushRequest, timeout: aiohttp.ClientTimeout) -> PushResponse:
        started = time.monotonic()
        status: int | None = None
        retry_after = location = None
        excerpt = b""
        try:
            body = request.body() if callable(request.body) else request.body
        except Exception as exc:
            logger.exception("Push request %d could not be encrypted", request.key)
            return PushResponse(request.key, None, None, None, b"", f"unsendable: {type(exc).__name__}", 0.0)
        try:
            await self.resolver.check(request.endpoint, timeout=timeout.sock_connect or 5.0)
            async with self.session.post(
                request.endpoint.url, data=body, headers=request.headers, allow_redirects=False, timeout=timeout
            ) as response:
                status = response.status
                retry_after = response.headers.get("Retry-After")
                location = response.headers.get("Location")
                excerpt = await _read_excerpt(response)
        except EndpointRejected as exc:
            error: str | None = f"rejected: {exc}"
        except (aiohttp.ClientError, OSError, asyncio.TimeoutError) as exc:
            error = _describe_error(exc)
        except Exception as exc:  # e.g. a header value aiohttp refuses: one request's fault only
            error = f"protocol: unexpected {type(exc).__name__}"
            # Not the exception's message: aiohttp's messages may carry the URL.
            logger.warning("Push request %d to %s failed: %s", request.key, request.endpoint.origin, error)
        else:
            error = None
        return PushResponse(request.key, status, retry_after, location, excerpt, error, time.monotonic() - started)


async def _read_excerpt(response: aiohttp.ClientResponse) -> bytes:
    """The start of the body; the connection is dropped rather than read past 16 KB."""
    content = response.content
    if content.at_eof():
        return b""
    chunks: list[bytes] = []
    size = 0
    while size < MAX_READ_BYTES:
        chunk = await content.read(MAX_READ_BYTES - size)
        if not chunk:
            break
        chunks.append(chunk)
        size += len(chunk)
    if not content.at_eof():
        response.close()
    return b"".join(chunks)[:EXCERPT_BYTES]


def _describe_error(exc: aiohttp.ClientError | OSError | asyncio.TimeoutError) -> str:
    """A short, URL-free name for a failure (aiohttp's own messages carry the URL)."""
    # Order matters: the timeout and TLS errors are also connector errors.
    if isinstance(exc, asyncio.TimeoutError):
        return "timeout"
    if isinstance(exc, (aiohttp.ClientSSLError, ssl.SSLError)):
        return "tls"
    if isinstance(exc, (aiohttp.ClientConnectorError, _LookupFailed)):
        return "connect"
    if isinstance(exc, aiohttp.ServerDisconnectedError):
        return "protocol: the server closed the connection before answering"
    if isinstance(exc, aiohttp.ClientPayloadError):
        return "protocol: the response body was cut short"
    if isinstance(exc, aiohttp.ClientResponseError):
        return "protocol: not a valid HTTP response"
    if isinstance(exc, (aiohttp.ClientConnectionError, OSError)):
        return "protocol: the connection was lost"
    return f"protocol: {type(exc).__name__}"


class _LookupFailed(OSError):
    """The host's name did not resolve."""


class _CheckedResolver(AbstractResolver):
    """Hands the connector only addresses that passed the endpoint checks.

    :meth:`check` runs before every request: it looks the host up (one lookup per
    host and port, shared by all requests to it, kept :data:`DNS_TTL` seconds, a
    failure :data:`DNS_FAILURE_TTL`) and raises
    :class:`~django_notify.push.endpoints.EndpointRejected` unless every address is
    allowed for the endpoint. :meth:`resolve`, which the connector calls to open a
    connection, never looks anything up: it answers with addresses :meth:`check`
    accepted, so a second DNS answer (rebinding) cannot redirect a connection.
    """

    def __init__(self, lookup: Resolver) -> None:
        self._lookup = lookup
        self._answers: dict[tuple[str, int], tuple[float, asyncio.Task[list[str]]]] = {}
        self._checked: dict[tuple[str, int], list[str]] = {}
        # (host, port, loopback) -> (the answer checked, None if allowed, else the rejection's
        # message and code): the same answer is not checked again for every request.
        self._verdicts: dict[tuple[str, int, bool], tuple[asyncio.Task[list[str]], tuple[str, str] | None]] = {}

    async def check(self, endpoint: Endpoint, *, timeout: float) -> None:
        key = (endpoint.host, endpoint.port)
        answer = self._answer(key, timeout)
        addresses = await answer
        verdict_key = (endpoint.host, endpoint.port, endpoint.loopback)
        cached = self._verdicts.get(verdict_key)
        if cached is None or cached[0] is not answer:
            try:
                check_addresses(endpoint, addresses)
            except EndpointRejected as exc:
                cached = (answer, (str(exc), exc.code))
            else:
                cached = (answer, None)
                self._checked[key] = addresses
            self._verdicts[verdict_key] = cached
        verdict = cached[1]
        if verdict is not None:
            # A fresh exception each time: a shared one would collect every raiser's traceback.
            raise EndpointRejected(*verdict)

    def _answer(self, key: tuple[str, int], timeout: float) -> asyncio.Task[list[str]]:
        now = time.monotonic()
        cached = self._answers.get(key)
        if cached is not None:
            looked_up, answer = cached
            failed = answer.done() and (answer.cancelled() or answer.exception() is not None)
            if now - looked_up < (DNS_FAILURE_TTL if failed else DNS_TTL):
                return answer
        answer = asyncio.ensure_future(self._addresses(*key, timeout=timeout))
        self._answers[key] = (now, answer)
        return answer

    async def _addresses(self, host: str, port: int, *, timeout: float) -> list[str]:
        if _is_ip_literal(host):
            # aiohttp connects to an IP literal without asking a resolver.
            return [host]
        try:
            addresses = await asyncio.wait_for(self._lookup(host, port), timeout)
        except asyncio.TimeoutError:
            raise  # a TimeoutError is an OSError too, but it is reported as a timeout
        except OSError as exc:
            raise _LookupFailed(f"{host} did not resolve ({type(exc).__name__})") from None
        if not addresses:
            # Most likely a DNS hiccup: reported as a connect error, worth a retry, where a
            # rejection would deactivate the subscription.
            raise _LookupFailed(f"{host} has no address")
        return addresses

    async def resolve(
        self, host: str, port: int = 0, family: socket.AddressFamily = socket.AF_INET
    ) -> list[ResolveResult]:
        addresses = self._checked.get((host, port))
        if addresses is None:
            # Unreachable while every request goes through check() first.
            raise _LookupFailed(f"{host} was not checked before connecting")
        return [
            ResolveResult(
                hostname=host,
                host=address,
                port=port,
                family=socket.AF_INET6 if ":" in address else socket.AF_INET,
                proto=0,
                flags=socket.AI_NUMERICHOST,
            )
            for address in addresses
        ]

    async def close(self) -> None:
        for _, answer in self._answers.values():
            answer.cancel()


async def _getaddrinfo(host: str, port: int) -> list[str]:
    """The host's addresses from the system resolver, without duplicates."""
    infos = await asyncio.get_running_loop().getaddrinfo(host, port, type=socket.SOCK_STREAM)
    return list(dict.fromkeys(str(info[4][0]) for info in infos))


def _is_ip_literal(host: str) -> bool:
    try:
        ip_address(host)
    except ValueError:
        return False
    return True

"""Concurrent POSTs of encrypted Web Push messages over reused connections.

:func:`send_all` takes requests the backend has already encrypted and signed and
returns one :class:`PushResponse` per request, in order. It never raises for a
failed request: a timeout, a reset, a TLS error or a garbage answer becomes that
request's ``error`` and leaves the others alone.

Inside, one asyncio event loop runs one :class:`aiohttp.ClientSession`, so
requests to the same push service share kept-alive connections, with up to
``concurrency`` requests in flight. Redirects are never followed, no proxy or
cookie is used, and at most 16 KB of an answer is read.

Every host is resolved once per call and its addresses are checked with
:func:`~django_notify.push.endpoints.check_addresses` before any connection is
made; the connector then connects to exactly those checked addresses, so a
second DNS answer (DNS rebinding) cannot send a request somewhere else.
"""

from __future__ import annotations

import asyncio
import logging
import socket
import ssl
import time
from collections.abc import Awaitable, Callable, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from ipaddress import ip_address

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

#: ``resolve(host, port)`` returns the host's addresses (as strings) for one lookup.
Resolver = Callable[[str, int], Awaitable[list[str]]]


@dataclass(frozen=True, slots=True, repr=False)
class PushRequest:
    """One push message, ready to POST: encrypted body, headers set by the caller."""

    key: int  #: echoed on the response; the backend uses the delivery id
    endpoint: Endpoint
    body: bytes
    headers: Mapping[str, str]

    def __repr__(self) -> str:
        # The endpoint URL is a bearer capability and Authorization a signed token.
        return f"PushRequest(key={self.key}, origin={self.endpoint.origin!r}, body={len(self.body)} bytes)"


@dataclass(frozen=True, slots=True, repr=False)
class PushResponse:
    """What the push service answered to one :class:`PushRequest`.

    ``status`` is set once the status line arrived; ``error`` is set when anything
    went wrong, so both are set when the body of an answer was cut short.
    ``error`` is one of ``"timeout"``, ``"connect"``, ``"tls"``,
    ``"rejected: <why>"`` (the endpoint's addresses are not allowed; nothing was
    sent), ``"deferred"`` (not started before the deadline; nothing was sent) or
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

    Synchronous: from a thread that already runs an event loop (Django under
    ASGI), the requests run on a new loop in a short-lived worker thread.
    """
    _validate_arguments(connect_timeout, read_timeout, concurrency, user_agent)
    if not requests:
        return []
    sender = _Sender(
        connect_timeout=connect_timeout,
        read_timeout=read_timeout,
        concurrency=concurrency,
        deadline=deadline,
        user_agent=user_agent,
        resolve=resolve,
        ssl_context=ssl_context,
    )
    try:
        asyncio.get_running_loop()
    except RuntimeError:
        return asyncio.run(sender.run(requests))
    # asyncio.run() refuses to nest; this thread's loop waits for the batch anyway,
    # since the caller is synchronous.
    with ThreadPoolExecutor(max_workers=1, thread_name_prefix="django-notify-push") as executor:
        return executor.submit(lambda: asyncio.run(sender.run(requests))).result()


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


class _Sender:
    """One call of :func:`send_all`: its settings, then :meth:`run` on a fresh event loop."""

    def __init__(
        self,
        *,
        connect_timeout: float,
        read_timeout: float,
        concurrency: int,
        deadline: float | None,
        user_agent: str,
        resolve: Resolver | None,
        ssl_context: ssl.SSLContext | None,
    ) -> None:
        self.connect_timeout = connect_timeout
        self.read_timeout = read_timeout
        self.concurrency = concurrency
        self.deadline = deadline
        self.user_agent = user_agent
        self.resolve = resolve
        self.ssl_context = ssl_context

    async def run(self, requests: Sequence[PushRequest]) -> list[PushResponse]:
        resolver = _CheckedResolver(self.resolve or _getaddrinfo, timeout=self.connect_timeout)
        connector = aiohttp.TCPConnector(
            limit=self.concurrency,
            limit_per_host=0,
            ssl=self.ssl_context if self.ssl_context is not None else True,
            resolver=resolver,
            # Each call resolves and checks afresh; nothing outlives the call anyway.
            use_dns_cache=False,
        )
        timeout = aiohttp.ClientTimeout(
            total=self.connect_timeout + self.read_timeout + _TOTAL_TIMEOUT_MARGIN,
            sock_connect=self.connect_timeout,
            sock_read=self.read_timeout,
        )
        session = aiohttp.ClientSession(
            connector=connector,
            timeout=timeout,
            # A compressed answer is not wanted: only its first bytes are kept. Saying so
            # here rather than with skip_auto_headers keeps aiohttp on its fast path.
            headers={"User-Agent": self.user_agent, "Accept-Encoding": "identity"},
            cookie_jar=aiohttp.DummyCookieJar(),
            auto_decompress=False,
            trust_env=False,
            raise_for_status=False,
        )
        responses: dict[int, PushResponse] = {}
        # Workers take the next index from one shared iterator, so a slow endpoint
        # holds up only the worker waiting on it.
        indexes = iter(range(len(requests)))

        async def worker() -> None:
            for index in indexes:
                request = requests[index]
                if self.deadline is not None and time.monotonic() >= self.deadline:
                    responses[index] = PushResponse(request.key, None, None, None, b"", "deferred", 0.0)
                else:
                    responses[index] = await self._send(session, resolver, request)

        started = time.monotonic()
        async with session:
            await asyncio.gather(*(worker() for _ in range(min(self.concurrency, len(requests)))))
        logger.debug("Sent %d push requests in %.3f s", len(requests), time.monotonic() - started)
        return [responses[index] for index in range(len(requests))]

    async def _send(
        self, session: aiohttp.ClientSession, resolver: _CheckedResolver, request: PushRequest
    ) -> PushResponse:
        started = time.monotonic()
        status: int | None = None
        retry_after = location = None
        excerpt = b""
        try:
            await resolver.check(request.endpoint)
            async with session.post(
                request.endpoint.url, data=request.body, headers=request.headers, allow_redirects=False
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
    """Resolves each host once per call and hands the connector only checked addresses.

    :meth:`check` runs before a request: it looks the host up (one lookup per host
    and port, shared by all requests to it) and raises
    :class:`~django_notify.push.endpoints.EndpointRejected` unless every address is
    allowed for the endpoint. :meth:`resolve`, which the connector calls, never
    looks anything up: it answers with addresses :meth:`check` accepted.
    """

    def __init__(self, lookup: Resolver, *, timeout: float) -> None:
        self._lookup = lookup
        self._timeout = timeout
        self._answers: dict[tuple[str, int], asyncio.Task[list[str]]] = {}
        self._checked: dict[tuple[str, int], list[str]] = {}
        # (host, port, loopback) -> None if allowed, else the rejection's message and code:
        # the same answer is not checked again for every request to a push service.
        self._verdicts: dict[tuple[str, int, bool], tuple[str, str] | None] = {}

    async def check(self, endpoint: Endpoint) -> None:
        key = (endpoint.host, endpoint.port)
        answer = self._answers.get(key)
        if answer is None:
            answer = self._answers[key] = asyncio.ensure_future(self._addresses(endpoint.host, endpoint.port))
        addresses = await answer
        verdict_key = (endpoint.host, endpoint.port, endpoint.loopback)
        if verdict_key not in self._verdicts:
            try:
                check_addresses(endpoint, addresses)
            except EndpointRejected as exc:
                self._verdicts[verdict_key] = (str(exc), exc.code)
            else:
                self._verdicts[verdict_key] = None
                self._checked[key] = addresses
        verdict = self._verdicts[verdict_key]
        if verdict is not None:
            # A fresh exception each time: a shared one would collect every raiser's traceback.
            raise EndpointRejected(*verdict)

    async def _addresses(self, host: str, port: int) -> list[str]:
        if _is_ip_literal(host):
            # aiohttp connects to an IP literal without asking a resolver.
            return [host]
        try:
            addresses = await asyncio.wait_for(self._lookup(host, port), self._timeout)
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
        for answer in self._answers.values():
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

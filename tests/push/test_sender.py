"""The Web Push sender against real servers on 127.0.0.1: well-behaved, slow, hung and hostile ones."""

from __future__ import annotations

import asyncio
import datetime
import gzip
import ipaddress
import os
import socket
import ssl
import threading
import time
from collections.abc import Awaitable, Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from aiohttp import web
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from django_notify.push.endpoints import Endpoint, parse_allowed_hosts, validate_endpoint
from django_notify.push.sender import (
    EXCERPT_BYTES,
    MAX_READ_BYTES,
    PushRequest,
    PushResponse,
    close_connections,
    send_all,
)

LOOPBACK = parse_allowed_hosts(["127.0.0.1"])
TOKEN = "secret-subscription-token"
HEADERS = {
    "TTL": "86400",
    "Urgency": "normal",
    "Topic": "dGVzdC10b3BpYw",
    "Authorization": "vapid t=header.claims.signature, k=BPublicKey",
    "Content-Encoding": "aes128gcm",
    "Content-Type": "application/octet-stream",
}

Handler = Callable[[web.BaseRequest], Awaitable[web.StreamResponse]]
RawHandler = Callable[[asyncio.StreamReader, asyncio.StreamWriter], Awaitable[None]]


# Servers ---------------------------------------------------------------------------------------


class HttpServer:
    """An aiohttp server on 127.0.0.1 that counts TCP connections and requests in flight."""

    def __init__(self, handler: Handler, host: str = "127.0.0.1") -> None:
        self.handler = handler
        self.host = host
        self.port = 0
        self.connections = 0
        self.requests: list[tuple[str, dict[str, str], bytes]] = []
        self.in_flight = 0
        self.peak_in_flight = 0
        self._server: asyncio.AbstractServer | None = None

    def url(self, path: str = f"/push/{TOKEN}") -> str:
        return f"http://{self.host}:{self.port}{path}"

    async def start(self) -> None:
        low_level = web.Server(self._handle, access_log=None)

        def new_connection() -> asyncio.BaseProtocol:
            self.connections += 1
            return low_level()

        self._server = await asyncio.get_running_loop().create_server(new_connection, self.host, 0)
        self.port = self._server.sockets[0].getsockname()[1]

    async def _handle(self, request: web.BaseRequest) -> web.StreamResponse:
        self.requests.append((request.path, dict(request.headers), await request.read()))
        self.in_flight += 1
        self.peak_in_flight = max(self.peak_in_flight, self.in_flight)
        try:
            return await self.handler(request)
        finally:
            self.in_flight -= 1

    async def stop(self) -> None:
        if self._server is not None:
            self._server.close()


class RawServer:
    """A TCP server on 127.0.0.1 whose handler writes whatever bytes it likes, or none."""

    def __init__(self, handler: RawHandler, ssl_context: ssl.SSLContext | None = None) -> None:
        self.handler = handler
        self.ssl_context = ssl_context
        self.port = 0
        self.connections = 0
        self._server: asyncio.Server | None = None

    def url(self, path: str = f"/push/{TOKEN}", scheme: str = "http") -> str:
        return f"{scheme}://127.0.0.1:{self.port}{path}"

    async def start(self) -> None:
        self._server = await asyncio.start_server(self._handle, "127.0.0.1", 0, ssl=self.ssl_context)
        self.port = self._server.sockets[0].getsockname()[1]

    async def _handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.connections += 1
        try:
            await self.handler(reader, writer)
        except (ConnectionError, ssl.SSLError):
            pass
        finally:
            writer.close()

    async def stop(self) -> None:
        if self._server is not None:
            self._server.close()


class ServerThread:
    """An event loop in a background thread that hosts the test's servers."""

    def __init__(self) -> None:
        self.loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self.loop.run_forever, name="test-servers", daemon=True)
        self._thread.start()
        self._servers: list[HttpServer | RawServer] = []

    def run(self, coroutine: Awaitable[Any]) -> Any:
        async def wrapper() -> Any:
            return await coroutine

        return asyncio.run_coroutine_threadsafe(wrapper(), self.loop).result(timeout=10)

    def http(self, handler: Handler, host: str = "127.0.0.1") -> HttpServer:
        server = HttpServer(handler, host)
        self.run(server.start())
        self._servers.append(server)
        return server

    def raw(self, handler: RawHandler, ssl_context: ssl.SSLContext | None = None) -> RawServer:
        server = RawServer(handler, ssl_context)
        self.run(server.start())
        self._servers.append(server)
        return server

    def close(self) -> None:
        async def shutdown() -> None:
            for server in self._servers:
                await server.stop()
            tasks = [task for task in asyncio.all_tasks() if task is not asyncio.current_task()]
            for task in tasks:
                task.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)

        self.run(shutdown())
        self.loop.call_soon_threadsafe(self.loop.stop)
        self._thread.join(timeout=10)
        self.loop.close()


@pytest.fixture
def servers() -> Iterator[ServerThread]:
    thread = ServerThread()
    yield thread
    # The sender keeps connections alive for the next call: end them before the servers go.
    close_connections()
    thread.close()


async def created(request: web.BaseRequest) -> web.Response:
    return web.Response(status=201, headers={"Location": "http://push.test/m/1"})


def sleeping(seconds: float) -> Handler:
    async def handler(request: web.BaseRequest) -> web.Response:
        await asyncio.sleep(seconds)
        return web.Response(status=201)

    return handler


async def hang(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    await reader.read()  # reads the request, answers nothing, until the client gives up


def replying(answer: bytes) -> RawHandler:
    """A raw server that reads the request head, writes ``answer`` and closes."""

    async def handler(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await reader.readuntil(b"\r\n\r\n")
        writer.write(answer)
        await writer.drain()

    return handler


def endpoint(url: str) -> Endpoint:
    return validate_endpoint(url, LOOPBACK)


def push(key: int, url: str, body: bytes = b"ciphertext", **headers: str) -> PushRequest:
    return PushRequest(key=key, endpoint=endpoint(url), body=body, headers={**HEADERS, **headers})


def unresolvable_endpoint(port: int, *, loopback: bool) -> Endpoint:
    """An endpoint whose host only the test's ``resolve`` can answer for (``.invalid`` never resolves).

    Built directly, as a stored row that predates the subscribe-time rules would be: the
    send-time address check is what is under test.
    """
    origin = f"http://push.invalid:{port}"
    return Endpoint(
        url=f"{origin}/push/{TOKEN}", scheme="http", host="push.invalid", port=port, origin=origin, loopback=loopback
    )


def answering(
    *addresses: str, calls: list[tuple[str, int]] | None = None
) -> Callable[[str, int], Awaitable[list[str]]]:
    async def resolve(host: str, port: int) -> list[str]:
        if calls is not None:
            calls.append((host, port))
        return list(addresses)

    return resolve


def assert_no_secret(response: PushResponse) -> None:
    for text in (response.error or "", repr(response)):
        assert TOKEN not in text
        assert "/push/" not in text


# Answers, order and headers ----------------------------------------------------------------------


def test_every_request_comes_back_in_order_with_its_answer(servers: ServerThread) -> None:
    async def by_path(request: web.BaseRequest) -> web.Response:
        status = int(request.path.rsplit("/", 1)[1])
        headers = {"Retry-After": "120"} if status == 429 else {"Location": f"http://push.test/m/{status}"}
        return web.Response(status=status, headers=headers, body=b"why" if status >= 400 else b"")

    server = servers.http(by_path)
    statuses = [201, 404, 410, 429, 500, 202, 413, 400] * 10
    requests = [push(1000 + index, server.url(f"/s/{status}")) for index, status in enumerate(statuses)]

    responses = send_all(requests, concurrency=16)

    assert [response.key for response in responses] == [request.key for request in requests]
    assert [response.status for response in responses] == statuses
    assert all(response.error is None for response in responses)
    by_status = {response.status: response for response in responses}
    assert by_status[429].retry_after == "120"
    assert by_status[429].location is None
    assert by_status[201].location == "http://push.test/m/201"
    assert by_status[201].retry_after is None
    assert by_status[400].body_excerpt == b"why"
    assert by_status[201].body_excerpt == b""
    assert all(0 < response.elapsed < 5 for response in responses)
    assert len(server.requests) == len(requests)


def test_the_request_carries_the_callers_headers_and_body_untouched(servers: ServerThread) -> None:
    server = servers.http(created)
    body = os.urandom(300)

    (response,) = send_all([push(1, server.url(), body)], user_agent="notify-tests/1.0")

    assert response.status == 201
    path, headers, received = server.requests[0]
    assert path == f"/push/{TOKEN}"
    assert received == body
    assert headers["Content-Length"] == "300"
    for name, value in HEADERS.items():
        assert headers[name] == value
    assert headers["User-Agent"] == "notify-tests/1.0"
    assert headers["Host"] == f"127.0.0.1:{server.port}"
    # RFC 8291 §4: no other content coding; and a compressed answer is not wanted either.
    assert headers["Accept-Encoding"] == "identity"
    assert "Transfer-Encoding" not in headers
    assert "Cookie" not in headers


def test_no_cookie_is_kept_between_requests(servers: ServerThread) -> None:
    async def sets_cookie(request: web.BaseRequest) -> web.Response:
        return web.Response(status=201, headers={"Set-Cookie": "session=abc; Path=/"})

    server = servers.http(sets_cookie)
    # A host name: cookie jars keep no cookies for IP addresses anyway.
    requests = [PushRequest(key, unresolvable_endpoint(server.port, loopback=True), b"x", HEADERS) for key in range(3)]

    send_all(requests, concurrency=1, resolve=answering("127.0.0.1"))

    assert [headers.get("Cookie") for _, headers, _ in server.requests] == [None, None, None]


def test_a_compressed_answer_is_kept_as_sent_never_decompressed(servers: ServerThread) -> None:
    compressed = gzip.compress(b"A" * 1_000_000)

    async def gzipped(request: web.BaseRequest) -> web.Response:
        return web.Response(status=400, body=compressed, headers={"Content-Encoding": "gzip"})

    server = servers.http(gzipped)

    (response,) = send_all([push(1, server.url())])

    assert (response.status, response.error) == (400, None)
    assert response.body_excerpt == compressed[:EXCERPT_BYTES]


def test_proxy_settings_in_the_environment_are_ignored(servers: ServerThread, monkeypatch: pytest.MonkeyPatch) -> None:
    proxy = servers.http(created)
    server = servers.http(created)
    for name in ("HTTP_PROXY", "http_proxy", "HTTPS_PROXY", "https_proxy", "ALL_PROXY"):
        monkeypatch.setenv(name, proxy.url("/"))
    monkeypatch.delenv("NO_PROXY", raising=False)
    monkeypatch.delenv("no_proxy", raising=False)

    (response,) = send_all([push(1, server.url())])

    assert response.status == 201
    assert proxy.connections == 0
    assert len(server.requests) == 1


def test_no_requests_means_no_network() -> None:
    assert send_all([]) == []


@pytest.mark.parametrize(
    ("arguments", "message"),
    [
        ({"concurrency": 0}, "concurrency must be a whole number of requests of at least 1, not 0"),
        ({"concurrency": 2.5}, "concurrency must be a whole number of requests of at least 1, not 2.5"),
        ({"connect_timeout": 0}, "connect_timeout must be a number of seconds above 0, not 0"),
        ({"read_timeout": -1.0}, "read_timeout must be a number of seconds above 0, not -1.0"),
        ({"read_timeout": float("nan")}, "read_timeout must be a number of seconds above 0, not nan"),
        ({"user_agent": "x\r\nX-Injected: 1"}, "user_agent must be printable ASCII text such as 'django-notify-kit/"),
    ],
)
def test_bad_arguments_are_refused_with_what_to_change(arguments: dict[str, Any], message: str) -> None:
    with pytest.raises(ValueError, match=message.replace(".", r"\.")):
        send_all([], **arguments)


def test_reprs_show_neither_the_endpoint_nor_the_token() -> None:
    request = push(7, f"http://127.0.0.1:9/push/{TOKEN}")
    response = PushResponse(7, 201, None, f"http://127.0.0.1:9/m/{TOKEN}", b"", None, 0.01)

    assert repr(request) == "PushRequest(key=7, origin='http://127.0.0.1:9', body=10 bytes)"
    assert TOKEN not in repr(response)
    assert "header.claims.signature" not in repr(request)


# Connections and concurrency --------------------------------------------------------------------


def test_connections_are_reused_across_requests(servers: ServerThread) -> None:
    server = servers.http(created)

    responses = send_all([push(key, server.url()) for key in range(200)], concurrency=8)

    assert [response.status for response in responses] == [201] * 200
    assert 1 <= server.connections <= 8


def test_requests_run_concurrently(servers: ServerThread) -> None:
    server = servers.http(sleeping(0.2))
    started = time.monotonic()

    responses = send_all([push(key, server.url()) for key in range(100)], concurrency=100)

    elapsed = time.monotonic() - started
    assert [response.status for response in responses] == [201] * 100
    assert elapsed < 5  # one after the other: 100 × 0.2 s = 20 s
    assert server.peak_in_flight > 50


def test_concurrency_caps_the_requests_in_flight(servers: ServerThread) -> None:
    server = servers.http(sleeping(0.05))

    responses = send_all([push(key, server.url()) for key in range(40)], concurrency=4)

    assert [response.status for response in responses] == [201] * 40
    assert 1 < server.peak_in_flight <= 4
    assert server.connections <= 4


def test_connections_are_kept_from_one_call_to_the_next(servers: ServerThread) -> None:
    server = servers.http(created)

    for batch in range(5):
        responses = send_all([push(batch * 10 + key, server.url()) for key in range(10)], concurrency=2)
        assert [response.status for response in responses] == [201] * 10

    assert 1 <= server.connections <= 2


def test_close_connections_ends_the_kept_connections(servers: ServerThread) -> None:
    server = servers.http(created)
    send_all([push(1, server.url())])

    close_connections()
    send_all([push(2, server.url())])

    assert server.connections == 2


def test_a_body_function_is_called_as_its_request_goes_out_while_others_wait(servers: ServerThread) -> None:
    arrived: list[float] = []

    async def slow(request: web.BaseRequest) -> web.Response:
        arrived.append(time.monotonic())
        await asyncio.sleep(0.3)
        return web.Response(status=201)

    server = servers.http(slow)
    encrypted: list[float] = []

    def encrypt() -> bytes:
        time.sleep(0.1)  # encrypting holds the CPU
        encrypted.append(time.monotonic())
        return b"ciphertext"

    # Connections kept from an earlier call: a request goes out as soon as it is encrypted.
    send_all([push(key, server.url()) for key in range(5)], concurrency=5)
    arrived.clear()
    requests = [PushRequest(key, endpoint(server.url()), encrypt, HEADERS) for key in range(5)]
    started = time.monotonic()
    responses = send_all(requests, concurrency=5)

    assert [response.status for response in responses] == [201] * 5
    assert [body for _, _, body in server.requests[5:]] == [b"ciphertext"] * 5
    # Each request was on the network before the next one was encrypted...
    assert all(arrived[n] < encrypted[n + 1] for n in range(4))
    # ...so the call took the encryption time and about one answer, not one answer after another.
    assert time.monotonic() - started < 0.5 + 0.3 + 0.4
    assert "encrypted when sent" in repr(requests[0])


def test_a_body_function_that_fails_makes_only_that_request_unsendable(servers: ServerThread) -> None:
    server = servers.http(created)

    def broken() -> bytes:
        raise ValueError("no key")

    unsendable, fine = send_all([PushRequest(1, endpoint(server.url()), broken, HEADERS), push(2, server.url())])

    assert (unsendable.status, unsendable.error) == (None, "unsendable: ValueError")
    assert fine.status == 201
    assert len(server.requests) == 1


def test_a_forked_worker_process_starts_its_own_sender(servers: ServerThread, monkeypatch: pytest.MonkeyPatch) -> None:
    from django_notify.push import sender

    server = servers.http(created)
    send_all([push(1, server.url())])
    (parent,) = sender._clients.values()

    # What a django-q2 worker forked after the parent sent sees: the parent's client and sockets.
    monkeypatch.setattr(sender.os, "getpid", lambda: parent.pid + 1)
    (response,) = send_all([push(2, server.url())])

    assert response.status == 201
    (child,) = sender._clients.values()
    assert child is not parent and child.pid == parent.pid + 1
    assert server.connections == 2
    monkeypatch.undo()
    parent.close()
    child.close()
    sender._clients.clear()


def test_the_least_recently_used_sender_is_closed_beyond_the_limit(servers: ServerThread) -> None:
    from django_notify.push import sender

    server = servers.http(created)
    resolvers = [answering("127.0.0.1") for _ in range(sender.MAX_CLIENTS + 1)]
    send_all([push(1, server.url())], resolve=resolvers[0])
    (first,) = sender._clients.values()

    for resolve in resolvers[1:]:
        send_all([push(1, server.url())], resolve=resolve)

    assert len(sender._clients) == sender.MAX_CLIENTS
    assert first not in sender._clients.values() and first.closed and first.session.closed


def test_a_host_is_looked_up_again_once_its_answer_is_old(
    servers: ServerThread, monkeypatch: pytest.MonkeyPatch
) -> None:
    from django_notify.push import sender

    server = servers.http(created)
    calls: list[tuple[str, int]] = []
    resolve = answering("127.0.0.1", calls=calls)
    request = PushRequest(1, unresolvable_endpoint(server.port, loopback=True), b"x", HEADERS)

    send_all([request], resolve=resolve)
    send_all([request], resolve=resolve)
    assert len(calls) == 1  # the answer is kept between calls

    monkeypatch.setattr(sender, "DNS_TTL", 0.0)
    send_all([request], resolve=resolve)
    assert len(calls) == 2


def test_a_failed_lookup_is_tried_again_soon(servers: ServerThread, monkeypatch: pytest.MonkeyPatch) -> None:
    from django_notify.push import sender

    server = servers.http(created)
    answers = [[], ["127.0.0.1"]]

    async def resolve(host: str, port: int) -> list[str]:
        return answers.pop(0)

    request = PushRequest(1, unresolvable_endpoint(server.port, loopback=True), b"x", HEADERS)
    (failed,) = send_all([request], resolve=resolve)
    assert failed.error == "connect"

    monkeypatch.setattr(sender, "DNS_FAILURE_TTL", 0.0)
    (sent,) = send_all([request], resolve=resolve)
    assert sent.status == 201


# Misbehaving servers -----------------------------------------------------------------------------


def test_a_hung_endpoint_times_out_while_the_others_finish_promptly(servers: ServerThread) -> None:
    hung = servers.raw(hang)
    good = servers.http(created)
    requests = [push(0, hung.url())] + [push(key, good.url()) for key in range(1, 21)]
    started = time.monotonic()

    responses = send_all(requests, read_timeout=1.0, concurrency=4)

    assert time.monotonic() - started < 4
    stuck, *others = responses
    assert (stuck.status, stuck.error) == (None, "timeout")
    assert 0.9 <= stuck.elapsed < 3
    assert [response.status for response in others] == [201] * 20
    assert max(response.elapsed for response in others) < 0.9
    assert hung.connections == 1


@pytest.mark.parametrize(
    ("answer", "status", "error"),
    [
        # The status line and headers arrived, then the connection closed inside the body.
        (
            b"HTTP/1.1 201 Created\r\nContent-Length: 100\r\n\r\npartial",
            201,
            "protocol: the response body was cut short",
        ),
        (b"", None, "protocol: the server closed the connection before answering"),
        (b"SSH-2.0-OpenSSH_9.6\r\n\r\n", None, "protocol: not a valid HTTP response"),
        (b"HTTP/1.1 2x1 Nope\r\n\r\n", None, "protocol: not a valid HTTP response"),
    ],
    ids=["closes-mid-body", "closes-before-answering", "not-http", "bad-status-line"],
)
def test_a_broken_answer_is_an_error_for_that_request_only(
    servers: ServerThread, answer: bytes, status: int | None, error: str
) -> None:
    broken = servers.raw(replying(answer))
    good = servers.http(created)
    requests = [push(1, good.url()), push(2, broken.url()), push(3, good.url())]

    responses = send_all(requests, read_timeout=5.0)

    assert [(response.key, response.status, response.error) for response in responses] == [
        (1, 201, None),
        (2, status, error),
        (3, 201, None),
    ]
    assert_no_secret(responses[1])


def test_a_refused_connection_is_a_connect_error(servers: ServerThread) -> None:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        closed_port = probe.getsockname()[1]
    good = servers.http(created)

    refused, fine = send_all([push(1, f"http://127.0.0.1:{closed_port}/push/{TOKEN}"), push(2, good.url())])

    assert (refused.status, refused.error) == (None, "connect")
    assert_no_secret(refused)
    assert fine.status == 201


@pytest.fixture
def certificate(tmp_path: Path) -> Path:
    """A self-signed certificate for 127.0.0.1, and its key, in one PEM file."""
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "127.0.0.1")])
    now = datetime.datetime.now(datetime.timezone.utc)
    certificate = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(days=1))
        .not_valid_after(now + datetime.timedelta(days=1))
        .add_extension(x509.SubjectAlternativeName([x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]), False)
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), True)
        .sign(key, hashes.SHA256())
    )
    path = tmp_path / "certificate.pem"
    path.write_bytes(
        certificate.public_bytes(serialization.Encoding.PEM)
        + key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption())
    )
    return path


# CPython 3.10's asyncio leaves the SSL transport of a failed handshake unclosed and warns when it is
# collected (its sslproto was rewritten in 3.11); the refused connection is what this test checks.
@pytest.mark.filterwarnings(
    "ignore:Exception ignored in.*_SSLProtocolTransport:pytest.PytestUnraisableExceptionWarning"
)
def test_tls_certificates_are_verified(servers: ServerThread, certificate: Path) -> None:
    heads: list[bytes] = []

    async def answer(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        heads.append(await reader.readuntil(b"\r\n\r\n"))
        writer.write(b"HTTP/1.1 201 Created\r\nContent-Length: 0\r\n\r\n")
        await writer.drain()

    server_context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    server_context.load_cert_chain(certificate)
    tls = servers.raw(answer, ssl_context=server_context)
    good = servers.http(created)

    untrusted, fine = send_all([push(1, tls.url(scheme="https")), push(2, good.url())])

    assert (untrusted.status, untrusted.error) == (None, "tls")
    assert_no_secret(untrusted)
    assert heads == []  # nothing was sent to a server that could not prove who it is
    assert fine.status == 201

    (trusted,) = send_all(
        [push(3, tls.url(scheme="https"))], ssl_context=ssl.create_default_context(cafile=certificate)
    )

    assert (trusted.status, trusted.error) == (201, None)
    assert len(heads) == 1


def test_a_redirect_is_returned_and_never_followed(servers: ServerThread) -> None:
    canary = servers.http(created)

    async def redirect(request: web.BaseRequest) -> web.Response:
        return web.Response(status=307, headers={"Location": canary.url("/stolen")})

    server = servers.http(redirect)

    (response,) = send_all([push(1, server.url())])

    assert (response.status, response.error) == (307, None)
    assert response.location == canary.url("/stolen")
    assert canary.connections == 0


def test_a_long_body_is_cut_at_the_excerpt_and_the_rest_is_never_read(servers: ServerThread) -> None:
    async def endless(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        # Promises 10 MB, sends 64 KB, then waits: reading to the end would take until the timeout.
        await reader.readuntil(b"\r\n\r\n")
        writer.write(b"HTTP/1.1 400 Bad Request\r\nContent-Length: 10000000\r\n\r\n")
        writer.write(bytes(range(256)) * 256)
        await writer.drain()
        await reader.read()

    server = servers.raw(endless)

    (response,) = send_all([push(1, server.url())], read_timeout=5.0)

    assert (response.status, response.error) == (400, None)
    assert response.body_excerpt == bytes(range(256)) * (EXCERPT_BYTES // 256)
    assert response.elapsed < 2
    assert MAX_READ_BYTES < 64 * 1024


def test_a_connection_is_kept_after_a_short_body_and_dropped_after_a_long_one(servers: ServerThread) -> None:
    async def by_size(request: web.BaseRequest) -> web.Response:
        size = int(request.path.rsplit("/", 1)[1])
        return web.Response(status=400, body=b"x" * size)

    server = servers.http(by_size)

    short = send_all([push(key, server.url("/size/100")) for key in range(3)], concurrency=1)
    assert [len(response.body_excerpt) for response in short] == [100] * 3
    assert server.connections == 1

    # 4 MB cannot all be in flight: what is left unread would have to be read to reuse the connection.
    # The first long answer comes over the connection kept from the short ones.
    long = send_all([push(key, server.url(f"/size/{4 * 1024 * 1024}")) for key in range(3)], concurrency=1)
    assert [(response.status, response.error) for response in long] == [(400, None)] * 3
    assert [response.body_excerpt for response in long] == [b"x" * EXCERPT_BYTES] * 3
    assert server.connections == 1 + 2


# Send-time address checks (SSRF) -----------------------------------------------------------------


@pytest.mark.parametrize("address", ["169.254.169.254", "10.0.0.1", "127.0.0.1", "::1", "::ffff:127.0.0.1"])
def test_a_private_dns_answer_is_rejected_before_connecting(servers: ServerThread, address: str) -> None:
    canary = servers.http(created)
    good = servers.http(created)
    rebinding = PushRequest(1, unresolvable_endpoint(canary.port, loopback=False), b"ciphertext", HEADERS)
    calls: list[tuple[str, int]] = []

    async def resolve(host: str, port: int) -> list[str]:
        calls.append((host, port))
        return [address]

    rejected, fine = send_all([rebinding, push(2, good.url())], resolve=resolve)

    assert rejected.status is None
    assert rejected.error is not None and rejected.error.startswith("rejected: ")
    assert "which is not a public address" in rejected.error
    assert_no_secret(rejected)
    assert calls == [("push.invalid", canary.port)]
    assert canary.connections == 0
    assert fine.status == 201


def test_one_private_address_in_the_answer_rejects_the_host(servers: ServerThread) -> None:
    canary = servers.http(created)
    requests = [PushRequest(key, unresolvable_endpoint(canary.port, loopback=False), b"x", HEADERS) for key in range(5)]

    responses = send_all(requests, resolve=answering("93.184.215.14", "127.0.0.1"))

    assert all(response.error and response.error.startswith("rejected: ") for response in responses)
    assert canary.connections == 0


def test_the_connection_goes_to_the_checked_address_after_a_single_lookup(servers: ServerThread) -> None:
    # Linux routes all of 127.0.0.0/8 to loopback; nothing listens on this port at 127.0.0.1.
    server = servers.http(created, host="127.0.0.2")
    calls: list[tuple[str, int]] = []
    requests = [PushRequest(key, unresolvable_endpoint(server.port, loopback=True), b"x", HEADERS) for key in range(20)]

    responses = send_all(requests, resolve=answering("127.0.0.2", calls=calls), concurrency=8)

    # push.invalid resolves nowhere: only the checked answer can have reached the server.
    assert [response.status for response in responses] == [201] * 20
    assert calls == [("push.invalid", server.port)]
    assert {headers["Host"] for _, headers, _ in server.requests} == {f"push.invalid:{server.port}"}


def test_a_loopback_endpoint_must_resolve_to_loopback(servers: ServerThread) -> None:
    server = servers.http(created)
    request = PushRequest(1, unresolvable_endpoint(server.port, loopback=True), b"x", HEADERS)

    (response,) = send_all([request], resolve=answering("192.0.2.10"))

    assert response.error is not None and "not a loopback address" in response.error
    assert server.connections == 0


def test_the_default_lookup_uses_the_system_resolver(servers: ServerThread) -> None:
    server = servers.http(created)
    request = PushRequest(
        1,
        validate_endpoint(f"http://localhost:{server.port}/push/{TOKEN}", parse_allowed_hosts(["localhost"])),
        b"x",
        HEADERS,
    )

    (response,) = send_all([request])

    assert (response.status, response.error) == (201, None)


def test_a_failed_lookup_is_a_connect_error(servers: ServerThread) -> None:
    good = servers.http(created)

    async def no_such_host(host: str, port: int) -> list[str]:
        raise socket.gaierror(socket.EAI_NONAME, "Name or service not known")

    failed, fine = send_all(
        [PushRequest(1, unresolvable_endpoint(9, loopback=True), b"x", HEADERS), push(2, good.url())],
        resolve=no_such_host,
    )

    assert (failed.status, failed.error) == (None, "connect")
    assert fine.status == 201


def test_a_lookup_that_never_answers_times_out_after_the_connect_timeout() -> None:
    async def silent(host: str, port: int) -> list[str]:
        await asyncio.sleep(60)
        return []

    started = time.monotonic()

    (response,) = send_all(
        [PushRequest(1, unresolvable_endpoint(9, loopback=True), b"x", HEADERS)], connect_timeout=0.3, resolve=silent
    )

    assert (response.status, response.error) == (None, "timeout")
    assert time.monotonic() - started < 2


# Deadline and event loops ------------------------------------------------------------------------


def test_requests_not_started_by_the_deadline_are_deferred(servers: ServerThread) -> None:
    server = servers.http(sleeping(0.1))
    requests = [push(key, server.url()) for key in range(20)]

    responses = send_all(requests, concurrency=1, deadline=time.monotonic() + 0.5)

    # One at a time, 0.1 s each: about 5 start before the deadline, never all 20.
    outcomes = [(response.status, response.error) for response in responses]
    sent = outcomes.index((None, "deferred"))
    assert 1 <= sent <= 10
    assert outcomes == [(201, None)] * sent + [(None, "deferred")] * (20 - sent)
    assert all(response.elapsed == 0.0 for response in responses[sent:])
    assert len(server.requests) == sent


def test_a_passed_deadline_sends_nothing(servers: ServerThread) -> None:
    server = servers.http(created)

    responses = send_all([push(key, server.url()) for key in range(5)], deadline=time.monotonic() - 1)

    assert [response.error for response in responses] == ["deferred"] * 5
    assert [response.key for response in responses] == list(range(5))
    assert server.connections == 0


def test_send_all_works_from_inside_a_running_event_loop(servers: ServerThread) -> None:
    server = servers.http(created)

    async def asgi_view() -> list[PushResponse]:
        return send_all([push(key, server.url()) for key in range(10)])

    responses = asyncio.run(asgi_view())

    assert [response.status for response in responses] == [201] * 10


def test_a_header_value_aiohttp_refuses_fails_that_request_only(
    servers: ServerThread, caplog: pytest.LogCaptureFixture
) -> None:
    server = servers.http(created)

    broken, fine = send_all([push(1, server.url(), Topic="a\r\nX-Injected: 1"), push(2, server.url())])

    assert broken.status is None
    assert broken.error is not None and broken.error.startswith("protocol: ")
    assert_no_secret(broken)
    assert fine.status == 201
    assert [headers.get("X-Injected") for _, headers, _ in server.requests] == [None]
    assert f"Push request 1 to http://127.0.0.1:{server.port} failed" in caplog.text
    assert TOKEN not in caplog.text

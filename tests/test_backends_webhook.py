"""WebhookBackend against a real HTTP server on 127.0.0.1, scripted per test."""

from __future__ import annotations

import hashlib
import hmac
import ipaddress
import json
import socket
import ssl
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import datetime, timedelta
from datetime import timezone as dt_timezone
from email.utils import format_datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID
from django.core.serializers.json import DjangoJSONEncoder
from django.utils import timezone

import django_notify
from django_notify import notify
from django_notify.backends.base import Outcome, parse_retry_after
from django_notify.backends.webhook import WebhookBackend
from django_notify.checks import check_settings
from django_notify.exceptions import InvalidBackendError
from django_notify.models import Delivery

ORDER = {"order_number": "A-7", "total": "9.90"}
SECRET = "s3cret-signing-key"


@dataclass
class Request:
    path: str
    headers: dict[str, str]
    body: bytes
    connection: int  # which accepted TCP connection carried it, from 1

    def json(self) -> Any:
        return json.loads(self.body)


@dataclass
class Reply:
    status: int = 200
    headers: tuple[tuple[str, str], ...] = ()
    body: bytes = b'{"ok":true}'
    hang: bool = False  # never answer (until the test ends)
    drop: bool = False  # close the connection without answering
    close_after: bool = False  # answer as if kept alive, then close the connection


class Receiver:
    """A ThreadingHTTPServer that records requests and answers as ``script`` says."""

    def __init__(self, script: Callable[[Request], Reply] | None = None, tls: ssl.SSLContext | None = None) -> None:
        self.script = script or (lambda request: Reply())
        self.requests: list[Request] = []
        self.connections = 0
        self.released = threading.Event()
        self.lock = threading.Lock()
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"  # keep-alive, like a real receiver
            disable_nagle_algorithm = True  # headers and body are two writes

            def setup(self) -> None:
                super().setup()
                with receiver.lock:
                    receiver.connections += 1
                    self.number = receiver.connections

            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers.get("Content-Length", 0)))
                request = Request(self.path, dict(self.headers.items()), body, self.number)
                with receiver.lock:
                    receiver.requests.append(request)
                reply = receiver.script(request)
                if reply.hang:
                    receiver.released.wait(10)
                    self.close_connection = True
                    return
                if reply.drop:
                    self.close_connection = True
                    return
                self.send_response(reply.status)
                for name, value in reply.headers:
                    self.send_header(name, value)
                self.send_header("Content-Length", str(len(reply.body)))
                self.end_headers()
                self.wfile.write(reply.body)
                if reply.close_after:
                    self.close_connection = True  # without "Connection: close"

            do_GET = do_POST  # a followed redirect would arrive as either

            def log_message(self, format: str, *args: Any) -> None:
                pass

        class Server(ThreadingHTTPServer):
            def handle_error(self, request: Any, client_address: Any) -> None:
                pass  # the client hanging up on a hung handler is expected

        self.server = Server(("127.0.0.1", 0), Handler)
        if tls is not None:
            self.server.socket = tls.wrap_socket(self.server.socket, server_side=True)
        self.port = self.server.server_address[1]
        self.url = f"http://127.0.0.1:{self.port}/hooks/notify?token=t0p-s3cret"
        self.origin = f"http://127.0.0.1:{self.port}"
        self.thread = threading.Thread(target=self.server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)

    def __enter__(self) -> Receiver:
        self.thread.start()
        return self

    def __exit__(self, *exc_info: Any) -> None:
        self.released.set()
        self.server.shutdown()
        self.server.server_close()
        self.thread.join()


@pytest.fixture
def receiver() -> Iterator[Callable[..., Receiver]]:
    started: list[Receiver] = []

    def start(script: Callable[[Request], Reply] | None = None, tls: ssl.SSLContext | None = None) -> Receiver:
        server = Receiver(script, tls).__enter__()
        started.append(server)
        return server

    yield start
    for server in started:
        server.__exit__()


@pytest.fixture
def deliveries(user_factory: Callable[..., Any]) -> list[Delivery]:
    """Five email deliveries, one per recipient."""
    users = [user_factory() for _ in range(5)]
    notify("order_placed", users, context=ORDER, channels=["in_app", "email"], url="/orders/7/", data={"n": 7})
    return list(Delivery.objects.select_related("notification").order_by("pk"))


def self_signed_context(directory: Path) -> ssl.SSLContext:
    """A server TLS context with a certificate for 127.0.0.1 that nobody trusts."""
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "127.0.0.1")])
    now = datetime.now(dt_timezone.utc)
    certificate = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - timedelta(minutes=1))
        .not_valid_after(now + timedelta(hours=1))
        .add_extension(x509.SubjectAlternativeName([x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]), critical=False)
        .sign(key, hashes.SHA256())
    )
    (directory / "cert.pem").write_bytes(certificate.public_bytes(serialization.Encoding.PEM))
    (directory / "key.pem").write_bytes(
        key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption())
    )
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(directory / "cert.pem", directory / "key.pem")
    return context


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


# The request -----------------------------------------------------------------------


def test_posts_the_documented_json_and_headers(receiver, deliveries):
    server = receiver()
    delivery = deliveries[0]
    [result] = WebhookBackend("hook", url=server.url, headers={"Authorization": "Bearer abc"}).send_batch([delivery])

    assert result.outcome is Outcome.SENT
    assert result.response == {"status": 200}
    assert result.destination == server.origin
    [request] = server.requests
    notification = delivery.notification
    assert request.path == "/hooks/notify?token=t0p-s3cret"
    assert request.json() == {
        "id": delivery.pk,
        "notification": {
            "id": notification.pk,
            "type": "order_placed",
            "category": "orders",
            "title": "Order A-7 placed",
            "body": "Order A-7 for 9.90.",
            "url": "/orders/7/",
            "data": {"n": 7},
            "created_at": DjangoJSONEncoder().default(notification.created_at),
        },
        "recipient": str(notification.recipient_id),
        "channel": "hook",
        "attempt": 0,
    }
    assert request.headers == {
        "Host": f"127.0.0.1:{server.port}",
        "Accept-Encoding": "identity",
        "Content-Length": str(len(request.body)),
        "Content-Type": "application/json",
        "User-Agent": f"django-notify-kit/{django_notify.__version__}",
        "Idempotency-Key": f"delivery-{delivery.pk}",
        "Authorization": "Bearer abc",
    }


def test_signature_verifies_with_the_documented_recipe(receiver, deliveries):
    server = receiver()
    before = int(time.time())
    WebhookBackend("hook", url=server.url, secret=SECRET).send_batch(deliveries[:2])

    for request in server.requests:
        # The recipe of docs/howto/channel-backend.rst.
        timestamp = request.headers["X-Notify-Timestamp"]
        expected = hmac.new(SECRET.encode(), timestamp.encode() + b"." + request.body, hashlib.sha256).hexdigest()
        assert hmac.compare_digest(request.headers["X-Notify-Signature"], f"sha256={expected}")
        assert before <= int(timestamp) <= time.time()
    tampered = server.requests[0].body.replace(b"A-7", b"A-8")
    forged = hmac.new(SECRET.encode(), timestamp.encode() + b"." + tampered, hashlib.sha256).hexdigest()
    assert f"sha256={forged}" != server.requests[0].headers["X-Notify-Signature"]


def test_unsigned_without_a_secret(receiver, deliveries):
    server = receiver()
    WebhookBackend("hook", url=server.url).send_batch(deliveries[:1])
    assert "X-Notify-Signature" not in server.requests[0].headers
    assert "X-Notify-Timestamp" not in server.requests[0].headers


def test_idempotency_key_is_stable_across_attempts(receiver, deliveries):
    server = receiver(lambda request: Reply(503) if len(server.requests) == 1 else Reply())
    backend = WebhookBackend("hook", url=server.url)
    delivery = deliveries[0]
    [first] = backend.send_batch([delivery])
    Delivery.objects.filter(pk=delivery.pk).update(attempts=2)
    delivery.refresh_from_db()
    [second] = backend.send_batch([delivery])

    assert (first.outcome, second.outcome) == (Outcome.RETRY, Outcome.SENT)
    keys = [request.headers["Idempotency-Key"] for request in server.requests]
    assert keys == [f"delivery-{delivery.pk}"] * 2
    assert [request.json()["attempt"] for request in server.requests] == [0, 2]


def test_one_connection_for_a_batch(receiver, deliveries):
    server = receiver()
    results = WebhookBackend("hook", url=server.url).send_batch(deliveries)
    assert [r.outcome for r in results] == [Outcome.SENT] * 5
    assert [r.delivery_id for r in results] == [d.pk for d in deliveries]
    assert [request.connection for request in server.requests] == [1] * 5
    assert server.connections == 1


def test_payload_can_be_reshaped(receiver, deliveries):
    class SlackBackend(WebhookBackend):
        def payload(self, delivery):
            return {"text": f"*{delivery.notification.title}*"}

    server = receiver()
    SlackBackend("slack", url=server.url).send_batch(deliveries[:1])
    assert server.requests[0].json() == {"text": "*Order A-7 placed*"}


# The response ----------------------------------------------------------------------


@pytest.mark.parametrize("status", [200, 201, 202, 204])
def test_2xx_is_sent(receiver, deliveries, status):
    server = receiver(lambda request: Reply(status, body=b"" if status == 204 else b"ok"))
    [result] = WebhookBackend("hook", url=server.url).send_batch(deliveries[:1])
    assert (result.outcome, result.response) == (Outcome.SENT, {"status": status})


@pytest.mark.parametrize("status", [404, 410])
def test_404_and_410_are_gone(receiver, deliveries, status):
    server = receiver(lambda request: Reply(status, body=b"no such hook"))
    [result] = WebhookBackend("hook", url=server.url).send_batch(deliveries[:1])
    assert result.outcome is Outcome.GONE
    assert result.reason == f"HTTP {status} from {server.origin}: the webhook URL does not exist"
    assert result.response == {"status": status, "body": "no such hook"}


@pytest.mark.parametrize("status", [408, 425, 429, 500, 502, 503, 504])
def test_transient_statuses_retry(receiver, deliveries, status):
    server = receiver(lambda request: Reply(status))
    [result] = WebhookBackend("hook", url=server.url).send_batch(deliveries[:1])
    assert result.outcome is Outcome.RETRY
    assert result.reason == f"HTTP {status} from {server.origin}"
    assert result.retry_at is None


def test_429_honours_retry_after_seconds(receiver, deliveries):
    server = receiver(lambda request: Reply(429, headers=(("Retry-After", "120"),)))
    before = timezone.now()
    [result] = WebhookBackend("hook", url=server.url).send_batch(deliveries[:1])
    assert result.outcome is Outcome.RETRY
    assert before + timedelta(seconds=120) <= result.retry_at <= timezone.now() + timedelta(seconds=120)
    assert result.reason == f"HTTP 429 from {server.origin}, Retry-After 120 s"


def test_429_honours_retry_after_http_date(receiver, deliveries):
    when = (timezone.now() + timedelta(minutes=10)).replace(microsecond=0)
    server = receiver(lambda request: Reply(429, headers=(("Retry-After", format_datetime(when, usegmt=True)),)))
    [result] = WebhookBackend("hook", url=server.url).send_batch(deliveries[:1])
    assert result.outcome is Outcome.RETRY
    assert result.retry_at == when


def test_503_retry_after_is_capped_at_an_hour(receiver, deliveries):
    server = receiver(lambda request: Reply(503, headers=(("Retry-After", "86400"),)))
    [result] = WebhookBackend("hook", url=server.url).send_batch(deliveries[:1])
    assert result.outcome is Outcome.RETRY
    assert result.retry_at <= timezone.now() + timedelta(hours=1)
    assert result.retry_at >= timezone.now() + timedelta(minutes=59)


@pytest.mark.parametrize(
    ("value", "seconds"),
    [("0", 0), ("  30 ", 30), ("9" * 5000, 3600), ("Wed, 21 Oct 2015 07:28:00 GMT", 0), ("soon", None), ("-5", None)],
)
def test_parse_retry_after(value, seconds):
    now = timezone.now()
    expected = None if seconds is None else now + timedelta(seconds=seconds)
    assert parse_retry_after(value, now) == expected


@pytest.mark.parametrize("status", [400, 401, 403, 413, 422])
def test_other_4xx_fail(receiver, deliveries, status):
    server = receiver(lambda request: Reply(status, body=b'{"error": "bad"}'))
    [result] = WebhookBackend("hook", url=server.url).send_batch(deliveries[:1])
    assert result.outcome is Outcome.FAILED
    assert result.reason == f"HTTP {status} from {server.origin}"
    assert result.response == {"status": status, "body": '{"error": "bad"}'}


@pytest.mark.parametrize("status", [301, 302, 307, 308])
def test_redirects_fail_and_are_not_followed(receiver, deliveries, status):
    canary = receiver()
    server = receiver(lambda request: Reply(status, headers=(("Location", canary.url),)))
    results = WebhookBackend("hook", url=server.url).send_batch(deliveries[:2])
    assert [r.outcome for r in results] == [Outcome.FAILED] * 2
    assert results[0].reason == f"HTTP {status} from {server.origin}: redirects are not followed"
    assert len(server.requests) == 2
    assert canary.requests == []
    assert canary.connections == 0


def test_a_long_response_body_is_not_read_whole(receiver, deliveries):
    server = receiver(lambda request: Reply(400, body=b"x" * 1_000_000))
    results = WebhookBackend("hook", url=server.url).send_batch(deliveries[:2])
    assert [r.outcome for r in results] == [Outcome.FAILED] * 2
    assert results[0].response == {"status": 400, "body": "x" * 512}
    # The unread rest went with its connection; the next delivery used a new one.
    assert server.connections == 2


# Network failures ------------------------------------------------------------------


def test_a_hanging_server_times_out_and_the_batch_goes_on(receiver, deliveries):
    server = receiver(lambda request: Reply(hang=len(server.requests) == 1))
    started = time.monotonic()
    results = WebhookBackend("hook", url=server.url, timeout=0.5).send_batch(deliveries)
    elapsed = time.monotonic() - started

    assert [r.outcome for r in results] == [Outcome.RETRY] + [Outcome.SENT] * 4
    assert results[0].reason == f"TimeoutError: no answer from {server.origin} within 0.5 s"
    assert 0.5 <= elapsed < 2.5
    # The hung connection was dropped; the rest shared a new one.
    assert [request.connection for request in server.requests] == [1, 2, 2, 2, 2]
    assert server.connections == 2


def test_connection_refused_retries(deliveries):
    url = f"http://127.0.0.1:{free_port()}/hook?token=t0p-s3cret"
    results = WebhookBackend("hook", url=url, timeout=0.5).send_batch(deliveries[:2])
    assert [r.outcome for r in results] == [Outcome.RETRY] * 2
    assert results[0].reason.startswith("ConnectionRefusedError talking to http://127.0.0.1:")
    assert "t0p-s3cret" not in results[0].reason


def test_dns_failure_retries(deliveries):
    # .invalid never resolves (RFC 6761); https so no allow_insecure_http is needed.
    [result] = WebhookBackend("hook", url="https://hooks.example.invalid/x?token=t0p-s3cret").send_batch(deliveries[:1])
    assert result.outcome is Outcome.RETRY
    assert result.reason.startswith("gaierror talking to https://hooks.example.invalid:")
    assert "t0p-s3cret" not in result.reason


def test_an_untrusted_certificate_retries(receiver, deliveries, tmp_path):
    server = receiver(tls=self_signed_context(tmp_path))
    [result] = WebhookBackend("hook", url=f"https://127.0.0.1:{server.port}/hook", timeout=2).send_batch(deliveries[:1])
    assert result.outcome is Outcome.RETRY
    assert result.reason.startswith(f"SSLCertVerificationError talking to https://127.0.0.1:{server.port}:")
    assert server.requests == []


def test_reconnects_once_when_the_server_closed_the_kept_alive_connection(receiver, deliveries, caplog):
    server = receiver(lambda request: Reply(close_after=True))
    with caplog.at_level("DEBUG", logger="django_notify.backends.webhook"):
        results = WebhookBackend("hook", url=server.url).send_batch(deliveries[:3])
    assert [r.outcome for r in results] == [Outcome.SENT] * 3
    assert len(server.requests) == 3  # nothing sent twice
    assert server.connections == 3
    assert [record.getMessage() for record in caplog.records] == [
        f"{server.origin} closed the kept-alive connection; reconnecting once"
    ] * 2


def test_a_dropped_fresh_connection_is_not_retried_in_the_batch(receiver, deliveries):
    server = receiver(lambda request: Reply(drop=len(server.requests) == 1))
    results = WebhookBackend("hook", url=server.url).send_batch(deliveries[:2])
    assert [r.outcome for r in results] == [Outcome.RETRY, Outcome.SENT]
    assert results[0].reason.startswith(f"RemoteDisconnected talking to {server.origin}:")
    assert len(server.requests) == 2


def test_reasons_never_show_the_query_string(receiver, deliveries):
    server = receiver(lambda request: Reply(500, body=b"oops"))
    backend = WebhookBackend("hook", url=server.url, secret=SECRET, headers={"Authorization": "Bearer t0p-s3cret"})
    for result in backend.send_batch(deliveries[:1]):
        text = repr(result)
        assert "t0p-s3cret" not in text and SECRET not in text and "/hooks/notify" not in text


def test_send_works_outside_a_batch(receiver, deliveries):
    server = receiver()
    backend = WebhookBackend("hook", url=server.url)
    assert backend.send(deliveries[0]).outcome is Outcome.SENT
    backend.close()


# Options ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("options", "message"),
    [
        ({}, r"OPTIONS\['url'\] of channel 'hook' \(WebhookBackend\) is required"),
        ({"url": ""}, r"OPTIONS\['url'\] .* is required"),
        ({"url": "ftp://files.example.com/x"}, r"OPTIONS\['url'\] .* must be an http or https URL, not ftp"),
        ({"url": "hooks.example.com/x"}, r"OPTIONS\['url'\] .* not one without a scheme"),
        ({"url": "https://bob:pw@hooks.example.com/x"}, r"OPTIONS\['url'\] .* must not contain credentials"),
        ({"url": "https:///x"}, r"OPTIONS\['url'\] .* has no host"),
        ({"url": f"https://{'a' * 64}.example.com/"}, r"OPTIONS\['url'\] .* host name that is not valid"),
        ({"url": "https://hooks.example.com:99999/x"}, r"OPTIONS\['url'\] .* is not a valid URL"),
        ({"url": "https://hooks.example.com/a b"}, r"OPTIONS\['url'\] .* must not contain spaces"),
        ({"url": "http://hooks.example.com/x"}, r"OPTIONS\['url'\] .* plain http to hooks.example.com"),
        ({"url": "http://10.0.0.5/x"}, r"OPTIONS\['url'\] .* plain http to 10.0.0.5"),
        ({"url": "https://h.example.com", "allow_insecure_http": "yes"}, r"OPTIONS\['allow_insecure_http'\]"),
        ({"url": "https://h.example.com", "timeout": 0}, r"OPTIONS\['timeout'\] .* more than 0 seconds"),
        ({"url": "https://h.example.com", "timeout": -1}, r"OPTIONS\['timeout'\] .* more than 0 seconds"),
        ({"url": "https://h.example.com", "timeout": "5"}, r"OPTIONS\['timeout'\] .* must be a number"),
        ({"url": "https://h.example.com", "timeout": float("inf")}, r"OPTIONS\['timeout'\] .* must be a number"),
        ({"url": "https://h.example.com", "timeout": True}, r"OPTIONS\['timeout'\] .* must be a number"),
        ({"url": "https://h.example.com", "headers": ["X-A"]}, r"OPTIONS\['headers'\] .* must be a dict"),
        ({"url": "https://h.example.com", "headers": {"X-A": "1\r\nX-B: 2"}}, r"value of X-A must not contain CR, LF"),
        ({"url": "https://h.example.com", "headers": {"X-A": "1\nX-B: 2"}}, r"value of X-A must not contain CR, LF"),
        ({"url": "https://h.example.com", "headers": {"X-A\r\n": "1"}}, r"invalid header name"),
        ({"url": "https://h.example.com", "headers": {"X A": "1"}}, r"invalid header name"),
        ({"url": "https://h.example.com", "headers": {"X-A": 1}}, r"value of X-A must be a string"),
        ({"url": "https://h.example.com", "headers": {"X-A": "\u20ac"}}, r"value of X-A must be Latin-1"),
        ({"url": "https://h.example.com", "headers": {"content-type": "text/plain"}}, r"cannot set content-type"),
        ({"url": "https://h.example.com", "headers": {"Idempotency-Key": "x"}}, r"cannot set Idempotency-Key"),
        ({"url": "https://h.example.com", "secret": ""}, r"OPTIONS\['secret'\] .* non-empty string"),
        ({"url": "https://h.example.com", "secret": b"key"}, r"OPTIONS\['secret'\] .* non-empty string"),
        ({"url": "https://h.example.com", "retries": 3}, r"Unknown OPTIONS retries"),
    ],
)
def test_invalid_options_are_refused(options, message):
    with pytest.raises(InvalidBackendError, match=message):
        WebhookBackend("hook", **options)


def test_option_errors_do_not_echo_the_url_or_header_values():
    with pytest.raises(InvalidBackendError) as info:
        WebhookBackend("hook", url="http://hooks.example.com/x?token=t0p-s3cret")
    assert "t0p-s3cret" not in str(info.value)
    with pytest.raises(InvalidBackendError) as info:
        WebhookBackend("hook", url="https://h.example.com", headers={"Authorization": "t0p-s3cret\n"})
    assert "t0p-s3cret" not in str(info.value)


@pytest.mark.parametrize(
    ("options"),
    [
        {"url": "https://hooks.example.com/notify?token=abc"},
        {"url": "http://127.0.0.1:8000/hook"},
        {"url": "http://localhost/hook"},
        {"url": "http://[::1]:8000/hook"},
        {"url": "http://hooks.internal:8080/", "allow_insecure_http": True},
        {"url": "https://h.example.com", "timeout": 1, "headers": {"Authorization": "Bearer x"}, "secret": "k"},
    ],
)
def test_valid_options(options):
    backend = WebhookBackend("hook", **options)
    assert backend.options["url"] == options["url"]


def test_origin_drops_path_and_query():
    backend = WebhookBackend("hook", url="https://Hooks.Example.com:8443/a/b?token=abc#frag")
    assert backend.origin == "https://hooks.example.com:8443"


def test_system_check_reports_bad_options_as_e006(settings):
    settings.DJANGO_NOTIFY = {
        "CHANNELS": {
            "in_app": {"BACKEND": "django_notify.backends.in_app.InAppBackend"},
            "hook": {
                "BACKEND": "django_notify.backends.webhook.WebhookBackend",
                "OPTIONS": {"url": "http://hooks.example.com/notify?token=t0p-s3cret"},
            },
            "good": {
                "BACKEND": "django_notify.backends.webhook.WebhookBackend",
                "OPTIONS": {"url": "https://hooks.example.com/notify", "secret": "k"},
            },
        }
    }
    errors = check_settings()
    assert [error.id for error in errors] == ["django_notify.E006"]
    assert "OPTIONS['url'] of channel 'hook'" in errors[0].msg
    assert "allow_insecure_http" in errors[0].msg
    assert "t0p-s3cret" not in errors[0].msg

"""POST each delivery as JSON to one configured URL: incoming webhooks, internal services.

Only the standard library speaks HTTP here (:mod:`http.client`): one kept-alive
connection per batch, no redirects, a timeout on every socket operation, and a
capped response read. The URL is trusted configuration, never user input: it may
point at a private service, so it is not checked against private addresses the
way Web Push endpoints are; it may carry a token, so only its origin
(``scheme://host[:port]``) ever appears in a reason, a destination or a log.
"""

from __future__ import annotations

import hashlib
import hmac
import http.client
import ipaddress
import json
import logging
import math
import ssl
import threading
import time
from typing import TYPE_CHECKING, Any, ClassVar
from urllib.parse import urlsplit

from django.core.serializers.json import DjangoJSONEncoder
from django.utils import timezone

from django_notify import __version__
from django_notify.backends.base import BaseChannelBackend, DeliveryResult, headers_problem, parse_retry_after
from django_notify.exceptions import InvalidBackendError

if TYPE_CHECKING:
    from django_notify.models import Delivery

logger = logging.getLogger(__name__)

USER_AGENT = f"django-notify-kit/{__version__}"
#: At most this much of a response body is read; a longer body costs the connection.
MAX_RESPONSE_BYTES = 64 * 1024
#: How much of a failure's response body is kept in the recorded response.
RESPONSE_EXCERPT_BYTES = 512
#: Statuses worth another try besides ``5xx``: timeout, too early, rate limited.
RETRY_STATUSES = frozenset({408, 425, 429})
#: The URL no longer exists: trying again cannot help.
GONE_STATUSES = frozenset({404, 410})
#: Headers the backend computes; ``OPTIONS["headers"]`` cannot replace them.
RESERVED_HEADERS = frozenset(
    {
        "connection",
        "content-length",
        "content-type",
        "host",
        "idempotency-key",
        "transfer-encoding",
        "user-agent",
        "x-notify-signature",
        "x-notify-timestamp",
    }
)
# Errors of a kept-alive socket the server shut while it was idle (RemoteDisconnected
# is a ConnectionResetError). The request is sent once more on a new connection: it
# was most likely never read, and the Idempotency-Key covers the rare case it was.
_STALE_CONNECTION_ERRORS = (ConnectionResetError, BrokenPipeError, ConnectionAbortedError)


class WebhookBackend(BaseChannelBackend):
    """POST each delivery as JSON to ``OPTIONS["url"]``, over one connection per batch.

    ``2xx`` is sent; ``404``/``410`` gone; ``408``/``425``/``429``/``5xx``, timeouts
    and connection errors retry (at ``Retry-After`` if given, at most an hour away);
    any other status, redirects included, failed. Override :meth:`payload` to
    change the JSON document.
    """

    default_options: ClassVar[dict[str, Any]] = {
        "url": None,
        "timeout": 5.0,
        "headers": {},
        "secret": None,
        "allow_insecure_http": False,
    }

    #: ``scheme://host[:port]`` of the URL: all of it that reasons and logs show.
    origin: str
    _https: bool
    _host: str
    _port: int | None
    _path: str

    def __init__(self, alias: str, **options: Any) -> None:
        # Per-thread: ChannelHandler shares one instance per alias in a process, and
        # two threads sending batches at once must not share a connection.
        self._local = threading.local()
        self._ssl_context: ssl.SSLContext | None = None
        super().__init__(alias, **options)

    # Options ---------------------------------------------------------------------

    def validate_options(self) -> None:
        insecure = self.options["allow_insecure_http"]
        if not isinstance(insecure, bool):
            raise self._invalid("allow_insecure_http", f"must be True or False, not {insecure!r}")
        self._validate_url(self.options["url"], allow_insecure_http=insecure)
        timeout = self.options["timeout"]
        if isinstance(timeout, bool) or not isinstance(timeout, (int, float)) or not math.isfinite(timeout):
            raise self._invalid("timeout", f"must be a number of seconds, not {timeout!r}")
        if timeout <= 0:
            raise self._invalid("timeout", f"must be more than 0 seconds, not {timeout!r}")
        self._validate_headers(self.options["headers"])
        secret = self.options["secret"]
        # An empty string is most likely an unset environment variable: refuse it
        # rather than send unsigned requests to a receiver that expects signed ones.
        if secret is not None and (not isinstance(secret, str) or not secret):
            raise self._invalid("secret", "must be a non-empty string, or None to send unsigned requests")

    def _validate_url(self, url: Any, *, allow_insecure_http: bool) -> None:
        # Messages show the scheme and host at most: the path or query may hold a token.
        if not isinstance(url, str) or not url:
            raise self._invalid("url", "is required: the http(s) URL to POST deliveries to")
        if any(char.isspace() or not char.isprintable() for char in url):
            raise self._invalid("url", "must not contain spaces or control characters")
        try:
            parts = urlsplit(url)
            port = parts.port
        except ValueError:
            raise self._invalid("url", "is not a valid URL (check the host and the port)") from None
        if parts.scheme not in ("http", "https"):
            raise self._invalid("url", f"must be an http or https URL, not {parts.scheme or 'one without a scheme'}")
        if "@" in parts.netloc:
            raise self._invalid(
                "url",
                "must not contain credentials (user:password@); put them in OPTIONS['headers'], "
                'e.g. {"Authorization": "Bearer ..."}',
            )
        if not parts.hostname:
            raise self._invalid("url", "has no host")
        try:
            parts.hostname.encode("idna")  # as the connection will, on every send
        except UnicodeError:
            raise self._invalid("url", "has a host name that is not valid (IDNA)") from None
        if parts.scheme == "http" and not allow_insecure_http and not _is_loopback(parts.hostname):
            raise self._invalid(
                "url",
                f"uses plain http to {parts.hostname}, which is not this machine; use https, or set "
                "OPTIONS['allow_insecure_http'] = True if the network to it is trusted",
            )
        self._https = parts.scheme == "https"
        self._host = parts.hostname
        self._port = port
        self._path = (parts.path or "/") + (f"?{parts.query}" if parts.query else "")
        self.origin = f"{parts.scheme}://{parts.netloc.lower()}"

    def _validate_headers(self, headers: Any) -> None:
        problem = headers_problem(headers, RESERVED_HEADERS)
        if problem:
            raise self._invalid("headers", problem)
        for name, value in headers.items():
            try:
                value.encode("latin-1")  # what http.client sends header values as
            except UnicodeEncodeError:
                raise self._invalid("headers", f"value of {name} must be Latin-1 text") from None

    def _invalid(self, option: str, problem: str) -> InvalidBackendError:
        return InvalidBackendError(
            f"OPTIONS[{option!r}] of channel {self.alias!r} ({type(self).__qualname__}) {problem}."
        )

    # The batch -------------------------------------------------------------------

    def open(self) -> None:
        # No network yet: the first send connects, so an unreachable server becomes a
        # retry result per delivery instead of an exception out of send_batch().
        self._drop_connection()
        self._local.connection = self._new_connection()

    def close(self) -> None:
        self._drop_connection()

    def send(self, delivery: Delivery) -> DeliveryResult:
        try:
            body = self.encode(self.payload(delivery))
        except (TypeError, ValueError) as exc:
            return DeliveryResult.failed(delivery, f"Cannot encode the payload as JSON: {exc}")
        headers = self.request_headers(delivery, body)
        try:
            status, response_headers, content = self._post(body, headers)
        except (OSError, http.client.HTTPException) as exc:
            return DeliveryResult.retry(delivery, self._describe_error(exc))
        return self.classify(delivery, status, response_headers, content)

    # The request -----------------------------------------------------------------

    def payload(self, delivery: Delivery) -> dict[str, Any]:
        """The JSON document sent for ``delivery``; override to reshape it."""
        notification = delivery.notification
        return {
            "id": delivery.pk,
            "notification": {
                "id": notification.pk,
                "type": notification.type,
                "category": notification.category,
                "title": notification.title,
                "body": notification.body,
                "url": notification.url,
                "data": notification.data,
                "created_at": notification.created_at,
            },
            "recipient": str(notification.recipient_id),
            "channel": self.alias,
            "attempt": delivery.attempts,
        }

    def encode(self, payload: dict[str, Any]) -> bytes:
        """Serialize like the model's JSON fields do (dates, decimals, UUIDs), compactly."""
        return json.dumps(payload, cls=DjangoJSONEncoder, ensure_ascii=False, separators=(",", ":")).encode()

    def request_headers(self, delivery: Delivery, body: bytes) -> dict[str, str]:
        """Request headers: the configured ones, then the backend's own."""
        headers = {
            **self.options["headers"],
            "Content-Type": "application/json",
            "User-Agent": USER_AGENT,
            # The same for every attempt of the delivery, so a receiver can drop the
            # duplicates at-least-once delivery produces.
            "Idempotency-Key": f"delivery-{delivery.pk}",
        }
        secret = self.options["secret"]
        if secret:
            timestamp = str(int(time.time()))
            headers["X-Notify-Timestamp"] = timestamp
            headers["X-Notify-Signature"] = f"sha256={sign(secret, timestamp, body)}"
        return headers

    def _post(self, body: bytes, headers: dict[str, str]) -> tuple[int, http.client.HTTPMessage, bytes]:
        connection = self._connection()
        reused = connection.sock is not None
        try:
            return self._exchange(connection, body, headers)
        except _STALE_CONNECTION_ERRORS:
            self._drop_connection()
            if not reused:
                raise
        except BaseException:
            # The connection is in an unknown state (half a response, a timed-out read).
            self._drop_connection()
            raise
        logger.debug("%s closed the kept-alive connection; reconnecting once", self.origin)
        connection = self._connection()
        try:
            return self._exchange(connection, body, headers)
        except BaseException:
            self._drop_connection()
            raise

    def _exchange(
        self, connection: http.client.HTTPConnection, body: bytes, headers: dict[str, str]
    ) -> tuple[int, http.client.HTTPMessage, bytes]:
        # http.client never follows redirects: a 3xx comes back as it is.
        connection.request("POST", self._path, body=body, headers=headers)
        response = connection.getresponse()
        try:
            content = response.read(MAX_RESPONSE_BYTES)
            # More is coming: drop the connection rather than drain an unbounded body.
            # After an interim 1xx (101, 103) the final answer would follow: drop it too.
            if not response.isclosed() or response.status < 200:
                self._drop_connection()
            return response.status, response.headers, content
        finally:
            response.close()

    def _connection(self) -> http.client.HTTPConnection:
        connection: http.client.HTTPConnection | None = getattr(self._local, "connection", None)
        if connection is None:
            # send() outside send_batch(), or after a dropped connection.
            connection = self._local.connection = self._new_connection()
        return connection

    def _new_connection(self) -> http.client.HTTPConnection:
        # The timeout applies to connecting and to every read and write, not to the
        # whole exchange; DNS resolution is not covered by it.
        timeout = float(self.options["timeout"])
        if self._https:
            if self._ssl_context is None:
                self._ssl_context = ssl.create_default_context()
            return http.client.HTTPSConnection(self._host, self._port, timeout=timeout, context=self._ssl_context)
        return http.client.HTTPConnection(self._host, self._port, timeout=timeout)

    def _drop_connection(self) -> None:
        connection: http.client.HTTPConnection | None = getattr(self._local, "connection", None)
        self._local.connection = None
        if connection is not None:
            connection.close()

    # The response ----------------------------------------------------------------

    def classify(
        self, delivery: Delivery, status: int, headers: http.client.HTTPMessage, content: bytes
    ) -> DeliveryResult:
        """Turn an HTTP answer into a result; override to treat a status differently."""
        if 200 <= status < 300:
            return DeliveryResult.sent(delivery, response={"status": status}, destination=self.origin[:255])
        where = f"HTTP {status} from {self.origin}"
        response: dict[str, Any] = {"status": status}
        if content:
            # Untrusted: kept short, and only for an operator to read.
            response["body"] = content[:RESPONSE_EXCERPT_BYTES].decode("utf-8", "replace")
        if status in GONE_STATUSES:
            return DeliveryResult.gone(delivery, f"{where}: the webhook URL does not exist", response=response)
        if status in RETRY_STATUSES or 500 <= status < 600:
            now = timezone.now()
            retry_at = parse_retry_after(headers.get("Retry-After"), now)
            if retry_at is not None:
                where += f", Retry-After {int((retry_at - now).total_seconds())} s"
            return DeliveryResult.retry(delivery, where, retry_at=retry_at, response=response)
        if 300 <= status < 400:
            # The Location is not shown: like the URL, it may carry a token.
            return DeliveryResult.failed(delivery, f"{where}: redirects are not followed", response=response)
        return DeliveryResult.failed(delivery, where, response=response)

    def _describe_error(self, exc: BaseException) -> str:
        name = type(exc).__name__
        if isinstance(exc, TimeoutError):
            return f"{name}: no answer from {self.origin} within {self.options['timeout']:g} s"
        detail = str(exc) or "no details"
        return f"{name} talking to {self.origin}: {detail}"[:500]


def sign(secret: str, timestamp: str, body: bytes) -> str:
    """Hex HMAC-SHA256 of ``"<timestamp>.<body>"``: the ``X-Notify-Signature`` value after ``sha256=``.

    Signing the timestamp with the body stops a captured request being replayed
    later under a fresh timestamp.
    """
    return hmac.new(secret.encode(), timestamp.encode() + b"." + body, hashlib.sha256).hexdigest()


def _is_loopback(hostname: str) -> bool:
    if hostname == "localhost":
        return True
    try:
        return ipaddress.ip_address(hostname).is_loopback
    except ValueError:
        return False

"""An independent Web Push service on loopback, for tests and benchmarks.

It checks requests the way browser push services do (RFC 8030 headers, RFC 8292 VAPID JWT,
RFC 8291/8188 ``aes128gcm``), decrypts the payload with the subscription's private key and
records what arrived. Written from the RFCs on ``cryptography`` primitives only; it imports
nothing from ``django_notify`` so it can catch the package's own mistakes.

In-process (a server thread with its own event loop)::

    with PushReceiver() as receiver:
        subscription = receiver.subscribe("alice")     # PushSubscription.toJSON() shape
        receiver.script("alice", [Reply(429, {"Retry-After": "2"}), Reply(201)])
        ...
        receiver.wait_for(1)

As a subprocess, so its CPU does not share the sender's GIL::

    python -m tests.push.receiver --delay 0.05 --subscriptions 100 [--no-verify]

prints one JSON line (origin and subscriptions with their private keys), serves until
SIGTERM or SIGINT, then prints one JSON line of counters.
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import collections
import itertools
import json
import os
import re
import secrets
import signal
import sys
import threading
import time
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

from aiohttp import web
from aiohttp.web_protocol import RequestHandler
from cryptography.exceptions import InvalidSignature, InvalidTag
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.asymmetric.utils import encode_dss_signature
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from cryptography.hazmat.primitives.kdf.hkdf import HKDF
from multidict import CIMultiDict

MAX_BODY = 4096  # RFC 8030 §7.2: services must accept bodies up to 4096 octets.
MAX_JWT_LIFETIME = 24 * 3600  # RFC 8292 §2
URGENCIES = frozenset({"very-low", "low", "normal", "high"})
_TOPIC = re.compile(r"[A-Za-z0-9_-]{1,32}")
_TTL = re.compile(r"[0-9]+")
_B64URL = re.compile(r"[A-Za-z0-9_-]+={0,2}")
_AUTHORIZATION = re.compile(r"vapid\s+(.*)", re.IGNORECASE | re.DOTALL)


class Rejected(Exception):
    """A request the push service refuses: ``status`` is 400, 403 or 413, ``reason`` a short text."""

    def __init__(self, status: int, reason: str) -> None:
        super().__init__(reason)
        self.status = status
        self.reason = reason


@dataclass(frozen=True)
class Reply:
    """A scripted answer. ``hang`` never answers (until ``stop()``); ``drop`` closes the connection unanswered."""

    status: int = 201
    headers: Mapping[str, str] = field(default_factory=dict)
    body: bytes = b""
    delay: float = 0.0
    hang: bool = False
    drop: bool = False


@dataclass(frozen=True)
class Received:
    """One request as the receiver saw it. ``status`` is ``None`` when it was never answered."""

    token: str
    status: int | None
    payload: dict[str, Any] | None
    headers: Mapping[str, str]  # case-insensitive (a CIMultiDict)
    claims: dict[str, Any] | None
    error: str | None
    at: float  # time.time() when the request arrived
    connection_id: int


@dataclass
class _Subscription:
    token: str
    private_key: ec.EllipticCurvePrivateKey
    public_raw: bytes
    auth: bytes
    application_server_key: bytes | None


def b64url_decode(value: str) -> bytes:
    """Strict base64url (padding optional)."""
    if not _B64URL.fullmatch(value):
        raise ValueError("not base64url")
    stripped = value.rstrip("=")
    return base64.urlsafe_b64decode(stripped + "=" * (-len(stripped) % 4))


def b64url_encode(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")


def _raw_point(key: ec.EllipticCurvePublicKey) -> bytes:
    return key.public_bytes(serialization.Encoding.X962, serialization.PublicFormat.UncompressedPoint)


def _hkdf(salt: bytes, ikm: bytes, info: bytes, length: int) -> bytes:
    return HKDF(algorithm=hashes.SHA256(), length=length, salt=salt, info=info).derive(ikm)


def decrypt(
    body: bytes, private_key: ec.EllipticCurvePrivateKey, auth: bytes, public_raw: bytes | None = None
) -> bytes:
    """Decrypt an RFC 8291 message (one RFC 8188 ``aes128gcm`` record); :class:`Rejected` (400) if malformed.

    ``public_raw`` is the subscription's own public point, if the caller has it at hand.
    """
    if len(body) < 21:
        raise Rejected(400, "body shorter than the aes128gcm header")
    salt, rs, idlen = body[:16], int.from_bytes(body[16:20], "big"), body[20]
    if idlen != 65:
        raise Rejected(400, f"keyid length {idlen}, expected 65 (RFC 8291 §4)")
    keyid, record = body[21:86], body[86:]
    if len(keyid) != 65 or keyid[0] != 0x04:
        raise Rejected(400, "keyid is not an uncompressed P-256 point")
    if rs < 18:
        raise Rejected(400, f"record size {rs} below the minimum of 18 (RFC 8188 §2)")
    if len(record) > rs:
        raise Rejected(400, "more than one record (RFC 8291 §4 requires exactly one)")
    if len(record) < 17:
        raise Rejected(400, "record shorter than the tag and padding delimiter")
    try:
        sender_key = ec.EllipticCurvePublicKey.from_encoded_point(ec.SECP256R1(), keyid)
    except ValueError:
        raise Rejected(400, "keyid is not a point on P-256") from None
    ua_public = public_raw or _raw_point(private_key.public_key())
    # RFC 8291 §3.3-3.4, then RFC 8188 §2.2-2.3.
    shared = private_key.exchange(ec.ECDH(), sender_key)
    ikm = _hkdf(auth, shared, b"WebPush: info\x00" + ua_public + keyid, 32)
    cek = _hkdf(salt, ikm, b"Content-Encoding: aes128gcm\x00", 16)
    nonce = _hkdf(salt, ikm, b"Content-Encoding: nonce\x00", 12)
    try:
        padded = AESGCM(cek).decrypt(nonce, record, None)
    except InvalidTag:
        raise Rejected(400, "decryption failed (bad keys, auth secret or ciphertext)") from None
    content = padded.rstrip(b"\x00")
    if not content or content[-1] != 0x02:
        raise Rejected(400, "missing the 0x02 last-record padding delimiter (RFC 8188 §2)")
    return content[:-1]


def verify_vapid(authorization: str | None, audience: str, now: float | None = None) -> tuple[dict[str, Any], bytes]:
    """Check a ``vapid t=…, k=…`` header (RFC 8292); return the JWT claims and the raw public key.

    Raises :class:`Rejected` (403) on any problem.
    """
    if not authorization:
        raise Rejected(403, "missing Authorization header")
    match = _AUTHORIZATION.fullmatch(authorization.strip())
    if not match:
        raise Rejected(403, "Authorization scheme is not vapid")
    params: dict[str, str] = {}
    for part in match.group(1).split(","):
        name, eq, value = part.strip().partition("=")
        if not eq:
            raise Rejected(403, "malformed vapid parameters")
        params[name.strip().lower()] = value.strip()
    token, key_text = params.get("t"), params.get("k")
    if not token or not key_text:
        raise Rejected(403, "vapid header needs both t= and k=")
    try:
        key_raw = b64url_decode(key_text)
        public_key = ec.EllipticCurvePublicKey.from_encoded_point(ec.SECP256R1(), key_raw)
    except ValueError:
        raise Rejected(403, "k is not a P-256 public key") from None
    if len(key_raw) != 65:
        raise Rejected(403, "k is not an uncompressed P-256 point")
    pieces = token.split(".")
    if len(pieces) != 3:
        raise Rejected(403, "t is not a JWS compact serialization")
    try:
        header = json.loads(b64url_decode(pieces[0]))
        claims = json.loads(b64url_decode(pieces[1]))
        signature = b64url_decode(pieces[2])
    except ValueError:
        raise Rejected(403, "t is not valid base64url JSON") from None
    if not isinstance(header, dict) or header.get("alg") != "ES256" or header.get("typ", "JWT") != "JWT":
        raise Rejected(403, "JWT header must say alg ES256")
    if len(signature) != 64:
        raise Rejected(403, "ES256 signature must be 64 bytes (r||s)")
    der = encode_dss_signature(int.from_bytes(signature[:32], "big"), int.from_bytes(signature[32:], "big"))
    try:
        public_key.verify(der, f"{pieces[0]}.{pieces[1]}".encode("ascii"), ec.ECDSA(hashes.SHA256()))
    except InvalidSignature:
        raise Rejected(403, "JWT signature does not verify with k") from None
    _check_claims(claims, audience, time.time() if now is None else now)
    return claims, key_raw


def _check_claims(claims: object, audience: str, now: float) -> None:
    if not isinstance(claims, dict):
        raise Rejected(403, "JWT claims are not an object")
    if claims.get("aud") != audience:
        raise Rejected(403, "aud is not this push service's origin")
    exp = claims.get("exp")
    if not isinstance(exp, int) or isinstance(exp, bool):
        raise Rejected(403, "exp missing or not an integer")
    if exp <= now:
        raise Rejected(403, "JWT expired")
    if exp > now + MAX_JWT_LIFETIME:
        raise Rejected(403, "exp more than 24 hours ahead")
    sub = claims.get("sub")
    if not isinstance(sub, str) or not sub.startswith(("mailto:", "https:")):
        raise Rejected(403, "sub must be a mailto: or https: URI")


def check_headers(headers: Mapping[str, str]) -> None:
    """RFC 8030 / RFC 8291 request header rules; :class:`Rejected` (400) on the first violation."""
    ttl = headers.get("TTL")
    if ttl is None:
        raise Rejected(400, "missing TTL header (RFC 8030 §5.2)")
    if not _TTL.fullmatch(ttl.strip()):
        raise Rejected(400, "TTL must be a non-negative integer")
    if headers.get("Content-Encoding") != "aes128gcm":
        raise Rejected(400, "Content-Encoding must be aes128gcm (RFC 8291 §4)")
    urgency = headers.get("Urgency")
    if urgency is not None and urgency not in URGENCIES:
        raise Rejected(400, "Urgency must be very-low, low, normal or high")
    topic = headers.get("Topic")
    if topic is not None and not _TOPIC.fullmatch(topic):
        raise Rejected(400, "Topic must be 1-32 characters of the base64url alphabet")


class _CountingServer(web.Server):
    """The low-level aiohttp server, numbering each accepted TCP connection."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.connection_ids: dict[RequestHandler, int] = {}
        self.accepted = 0

    def connection_made(self, handler: RequestHandler, transport: asyncio.Transport) -> None:
        super().connection_made(handler, transport)
        self.accepted += 1
        self.connection_ids[handler] = self.accepted

    def connection_lost(self, handler: RequestHandler, exc: BaseException | None = None) -> None:
        super().connection_lost(handler, exc)
        self.connection_ids.pop(handler, None)


class PushReceiver:
    """A push service on ``host:port`` (0 picks a free port), served by a background thread."""

    def __init__(self, host: str = "127.0.0.1", port: int = 0, *, verify: bool = True, record: bool = True) -> None:
        self.host = host
        self.port = port
        self.verify = verify
        self.record = record
        #: Seconds to wait before answering every request (a push service's latency).
        self.delay = 0.0
        self.origin = ""
        self.max_in_flight = 0
        self._in_flight = 0
        self._subscriptions: dict[str, _Subscription] = {}
        self._scripts: dict[str, collections.deque[Reply]] = {}
        self._received: list[Received] = []
        self._counters: collections.Counter[str] = collections.Counter()
        self._verified_tokens: dict[str, tuple[dict[str, Any], bytes]] = {}
        self._lock = threading.Lock()
        self._changed = threading.Condition(self._lock)
        self._message_ids = itertools.count(1)
        self._loop: asyncio.AbstractEventLoop | None = None
        self._thread: threading.Thread | None = None
        self._server: _CountingServer | None = None
        self._runner: web.ServerRunner | None = None
        self._release: asyncio.Event | None = None

    # -- lifecycle ---------------------------------------------------------------------------

    def __enter__(self) -> PushReceiver:
        return self.start()

    def __exit__(self, *exc_info: object) -> None:
        self.stop()

    def start(self) -> PushReceiver:
        """Start serving; returns once the port is bound and ``origin`` is set."""
        if self._thread is not None:
            raise RuntimeError("PushReceiver is already running")
        ready = threading.Event()
        failure: list[BaseException] = []
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._serve, args=(ready, failure), name="push-receiver", daemon=True)
        self._thread.start()
        ready.wait()
        if failure:
            self._thread.join()
            self._loop.close()
            self._thread = self._loop = None
            raise failure[0]
        return self

    def stop(self) -> None:
        """Release hanging requests, close every connection and stop the thread."""
        loop, thread = self._loop, self._thread
        if loop is None or thread is None:
            return
        asyncio.run_coroutine_threadsafe(self._shutdown(), loop).result(timeout=30)
        loop.call_soon_threadsafe(loop.stop)
        thread.join(timeout=30)
        loop.close()
        self._loop = self._thread = None
        with self._changed:
            self._changed.notify_all()

    def _serve(self, ready: threading.Event, failure: list[BaseException]) -> None:
        assert self._loop is not None
        asyncio.set_event_loop(self._loop)
        try:
            self._loop.run_until_complete(self._startup())
        except BaseException as exc:  # reported to start()'s caller
            failure.append(exc)
            ready.set()
            return
        ready.set()
        self._loop.run_forever()

    async def _startup(self) -> None:
        self._release = asyncio.Event()
        self._server = _CountingServer(self._handle, handler_cancellation=True, access_log=None)
        self._runner = web.ServerRunner(self._server, shutdown_timeout=2.0)
        await self._runner.setup()
        try:
            await web.TCPSite(self._runner, self.host, self.port, backlog=1024).start()
        except BaseException:
            await self._runner.cleanup()
            raise
        self.port = self._runner.addresses[0][1]
        self.origin = f"http://{self.host}:{self.port}"

    async def _shutdown(self) -> None:
        assert self._release is not None and self._runner is not None
        self._release.set()
        await self._runner.cleanup()

    # -- subscriptions and scripts -----------------------------------------------------------

    def subscribe(self, name: str | None = None, *, application_server_key: str | None = None) -> dict[str, Any]:
        """A new browser-like subscription, in the ``PushSubscription.toJSON()`` shape.

        ``name`` becomes the endpoint's token (random, 128 bits, if omitted). With
        ``application_server_key`` (base64url), requests signed by any other VAPID key get
        403, as for a restricted subscription (RFC 8292 §4.2).
        """
        if not self.origin:
            raise RuntimeError("start() the receiver before subscribing")
        token = name or secrets.token_urlsafe(16)
        if not re.fullmatch(r"[A-Za-z0-9_.~-]+", token):
            raise ValueError("subscription names must be URL-safe (letters, digits, - _ . ~)")
        private_key = ec.generate_private_key(ec.SECP256R1())
        subscription = _Subscription(
            token=token,
            private_key=private_key,
            public_raw=_raw_point(private_key.public_key()),
            auth=os.urandom(16),
            application_server_key=b64url_decode(application_server_key) if application_server_key else None,
        )
        with self._lock:
            if token in self._subscriptions:
                raise ValueError(f"subscription {token!r} exists already")
            self._subscriptions[token] = subscription
        return self.subscription_json(token)

    def subscription_json(self, token: str) -> dict[str, Any]:
        """``PushSubscription.toJSON()`` for an existing subscription."""
        subscription = self._subscriptions[token]
        return {
            "endpoint": f"{self.origin}/push/{token}",
            "expirationTime": None,
            "keys": {"p256dh": b64url_encode(subscription.public_raw), "auth": b64url_encode(subscription.auth)},
        }

    def private_key(self, token: str) -> ec.EllipticCurvePrivateKey:
        """The subscription's private key (what the browser keeps), to decrypt outside the receiver."""
        return self._subscriptions[token].private_key

    def unsubscribe(self, token: str) -> None:
        """Forget a subscription: its endpoint now answers 404, like an expired one (RFC 8030 §7.3)."""
        with self._lock:
            del self._subscriptions[token]

    @staticmethod
    def token(endpoint: str) -> str:
        """The token at the end of an endpoint URL."""
        return endpoint.rsplit("/", 1)[-1]

    def script(self, token: str, replies: Iterable[Reply]) -> None:
        """Answer the next requests to ``token`` with ``replies``, in order; then the default 201."""
        with self._lock:
            self._scripts.setdefault(token, collections.deque()).extend(replies)

    # -- what arrived --------------------------------------------------------------------------

    def requests(self, token: str | None = None) -> list[Received]:
        """Every recorded request, accepted or not, in arrival order."""
        with self._lock:
            return [r for r in self._received if token is None or r.token == token]

    def messages(self, token: str | None = None) -> list[Received]:
        """The accepted messages (answered 2xx), in arrival order."""
        return [r for r in self.requests(token) if r.status is not None and 200 <= r.status < 300]

    def count(self, token: str | None = None) -> int:
        """How many messages were accepted (answered 2xx)."""
        if token is None:
            with self._lock:
                return self._counters["accepted"]
        return len(self.messages(token))

    def counters(self) -> dict[str, Any]:
        """Totals: requests, accepted, per status, rejection reasons, connections, peak concurrency."""
        with self._lock:
            counters = dict(self._counters)
        statuses = {k[len("status ") :]: v for k, v in counters.items() if k.startswith("status ")}
        errors = {k[len("error ") :]: v for k, v in counters.items() if k.startswith("error ")}
        return {
            "requests": counters.get("requests", 0),
            "accepted": counters.get("accepted", 0),
            "statuses": statuses,
            "errors": errors,
            "connections": self.connections(),
            "max_in_flight": self.max_in_flight,
        }

    def wait_for(self, n: int, timeout: float = 10.0, token: str | None = None) -> list[Received]:
        """Block until at least ``n`` messages were accepted; return them. ``TimeoutError`` says what did arrive."""
        deadline = time.monotonic() + timeout
        with self._changed:
            while self._accepted_locked(token) < n:
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    raise TimeoutError(
                        f"{self._accepted_locked(token)} of {n} push messages accepted after {timeout} s; "
                        f"counters: {dict(self._counters)}"
                    )
                self._changed.wait(remaining)
        return self.messages(token)

    def _accepted_locked(self, token: str | None) -> int:
        if token is None:
            return self._counters["accepted"]
        return sum(1 for r in self._received if r.token == token and r.status is not None and 200 <= r.status < 300)

    def connections(self) -> int:
        """How many TCP connections were accepted so far."""
        return self._server.accepted if self._server is not None else 0

    # -- request handling ------------------------------------------------------------------------

    async def _handle(self, request: web.BaseRequest) -> web.StreamResponse:
        self._in_flight += 1
        self.max_in_flight = max(self.max_in_flight, self._in_flight)
        try:
            return await self._answer(request)
        finally:
            self._in_flight -= 1

    async def _answer(self, request: web.BaseRequest) -> web.StreamResponse:
        arrived = time.time()
        path = request.path
        if not path.startswith("/push/"):
            return web.Response(status=404, text="no such resource")
        if request.method != "POST":
            return web.Response(status=405, text="push resources accept POST only", headers={"Allow": "POST"})
        token = path[len("/push/") :]
        subscription = self._subscriptions.get(token)
        if subscription is None:
            self._record(token, 404, None, request, None, "unknown subscription", arrived)
            return web.Response(status=404, text="no such subscription")
        body = await request.read()
        try:
            claims, payload = self._verify(request, body, subscription, arrived)
        except Rejected as exc:
            self._record(token, exc.status, None, request, None, exc.reason, arrived)
            return web.Response(status=exc.status, text=exc.reason)

        reply = self._next_reply(token)
        wait = self.delay + reply.delay
        if wait > 0:
            await asyncio.sleep(wait)
        if reply.hang or reply.drop:
            self._record(token, None, payload, request, claims, "dropped" if reply.drop else None, arrived)
            if reply.drop and request.transport is not None:
                request.transport.abort()  # the lost connection cancels this handler
            assert self._release is not None
            await self._release.wait()
            return web.Response(status=503, text="push service stopped")
        headers = dict(reply.headers)
        if 200 <= reply.status < 300:
            headers.setdefault("Location", f"{self.origin}/message/{next(self._message_ids)}")
        self._record(token, reply.status, payload, request, claims, None, arrived)
        return web.Response(status=reply.status, headers=headers, body=reply.body)

    def _verify(
        self, request: web.BaseRequest, body: bytes, subscription: _Subscription, now: float
    ) -> tuple[dict[str, Any] | None, dict[str, Any] | None]:
        if len(body) > MAX_BODY:
            raise Rejected(413, f"payload larger than {MAX_BODY} bytes")
        check_headers(request.headers)
        if not self.verify:
            return None, None
        claims, key_raw = self._verified_vapid(request.headers.get("Authorization"), now)
        expected_key = subscription.application_server_key
        if expected_key is not None and key_raw != expected_key:
            raise Rejected(403, "signed with a VAPID key other than the subscription's applicationServerKey")
        plaintext = decrypt(body, subscription.private_key, subscription.auth, subscription.public_raw)
        try:
            payload = json.loads(plaintext)
        except ValueError:
            raise Rejected(400, "decrypted payload is not JSON") from None
        if not isinstance(payload, dict):
            raise Rejected(400, "decrypted payload is not a JSON object")
        return claims, payload

    def _verified_vapid(self, authorization: str | None, now: float) -> tuple[dict[str, Any], bytes]:
        # Push services cache verified tokens (RFC 8292 §5); claims are re-checked against the clock.
        cached = self._verified_tokens.get(authorization or "")
        if cached is not None:
            _check_claims(cached[0], self.origin, now)
            return cached
        verified = verify_vapid(authorization, self.origin, now)
        if len(self._verified_tokens) > 1024:
            self._verified_tokens.clear()
        self._verified_tokens[authorization or ""] = verified
        return verified

    def _next_reply(self, token: str) -> Reply:
        with self._lock:
            queue = self._scripts.get(token)
            return queue.popleft() if queue else Reply()

    def _record(
        self,
        token: str,
        status: int | None,
        payload: dict[str, Any] | None,
        request: web.BaseRequest,
        claims: dict[str, Any] | None,
        error: str | None,
        at: float,
    ) -> None:
        assert self._server is not None
        entry = None
        if self.record:  # the subprocess mode keeps counters only, to stay cheap
            connection_id = self._server.connection_ids.get(request.protocol, 0)  # type: ignore[arg-type]
            entry = Received(token, status, payload, CIMultiDict(request.headers), claims, error, at, connection_id)
        with self._changed:
            self._counters["requests"] += 1
            self._counters[f"status {status}"] += 1
            if status is not None and 200 <= status < 300:
                self._counters["accepted"] += 1
            if error is not None:
                self._counters[f"error {error}"] += 1
            if entry is not None:
                self._received.append(entry)
            self._changed.notify_all()


def _main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m tests.push.receiver", description=__doc__.split("\n\n")[0])
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=0)
    parser.add_argument("--delay", type=float, default=0.0, help="seconds before answering each request")
    parser.add_argument("--subscriptions", type=int, default=1, help="how many subscriptions to create")
    parser.add_argument(
        "--verify",
        action=argparse.BooleanOptionalAction,
        default=True,
        help="check VAPID and decrypt every message (default); --no-verify checks headers only",
    )
    args = parser.parse_args(argv)

    # Block the signals before the server thread starts so only sigwait() below sees them.
    signal.pthread_sigmask(signal.SIG_BLOCK, {signal.SIGTERM, signal.SIGINT})
    receiver = PushReceiver(args.host, args.port, verify=args.verify, record=False)
    receiver.delay = args.delay
    receiver.start()
    subscriptions = []
    for _ in range(args.subscriptions):
        subscription = receiver.subscribe()
        token = receiver.token(subscription["endpoint"])
        secret = receiver.private_key(token).private_numbers().private_value.to_bytes(32, "big")
        subscriptions.append({**subscription, "token": token, "private_key": b64url_encode(secret)})
    print(json.dumps({"origin": receiver.origin, "pid": os.getpid(), "subscriptions": subscriptions}), flush=True)
    cpu_start = time.process_time()
    signal.sigwait({signal.SIGTERM, signal.SIGINT})
    cpu = time.process_time() - cpu_start
    receiver.stop()
    counters = receiver.counters()
    counters["cpu_seconds"] = round(cpu, 3)
    counters["cpu_us_per_request"] = round(cpu / counters["requests"] * 1e6, 1) if counters["requests"] else None
    print(json.dumps(counters), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(_main())

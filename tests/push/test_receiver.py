"""The test push service itself: it accepts what real senders send and refuses what push services refuse.

Messages come from pywebpush and py_vapid, independent implementations of RFC 8291 and
RFC 8292, so these tests check the receiver without trusting ``django_notify``.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import requests
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from cryptography.hazmat.primitives.kdf.hkdf import HKDF
from py_vapid import Vapid02
from pywebpush import WebPusher, webpush

from tests.push.receiver import PushReceiver, Received, Rejected, Reply, b64url_decode, b64url_encode, decrypt

SUBJECT = "mailto:ops@example.com"
ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture
def receiver() -> Iterator[PushReceiver]:
    with PushReceiver() as running:
        yield running


@pytest.fixture(scope="module")
def vapid_key() -> ec.EllipticCurvePrivateKey:
    return ec.generate_private_key(ec.SECP256R1())


def _raw_public(key: ec.EllipticCurvePrivateKey) -> bytes:
    return key.public_key().public_bytes(serialization.Encoding.X962, serialization.PublicFormat.UncompressedPoint)


def _authorization(key: ec.EllipticCurvePrivateKey, **claims: Any) -> str:
    return str(Vapid02(private_key=key, conf={"no-strict": True}).sign({"sub": SUBJECT, **claims})["Authorization"])


def _body(subscription: dict[str, Any], payload: dict[str, Any]) -> bytes:
    return bytes(WebPusher(subscription).encode(json.dumps(payload).encode())["body"])


def _post(subscription: dict[str, Any], body: bytes, headers: dict[str, str]) -> requests.Response:
    return requests.post(subscription["endpoint"], data=body, headers=headers, timeout=5, allow_redirects=False)


def _valid_headers(receiver: PushReceiver, key: ec.EllipticCurvePrivateKey) -> dict[str, str]:
    return {
        "TTL": "60",
        "Content-Encoding": "aes128gcm",
        "Authorization": _authorization(key, aud=receiver.origin, exp=int(time.time()) + 3600),
    }


def _push(receiver: PushReceiver, token: str, key: ec.EllipticCurvePrivateKey, **extra: str) -> requests.Response:
    subscription = receiver.subscription_json(token)
    return _post(subscription, _body(subscription, {"n": 1}), {**_valid_headers(receiver, key), **extra})


def test_a_pywebpush_message_verifies_and_decrypts(
    receiver: PushReceiver, vapid_key: ec.EllipticCurvePrivateKey
) -> None:
    subscription = receiver.subscribe("alice")
    private_b64 = b64url_encode(vapid_key.private_numbers().private_value.to_bytes(32, "big"))

    response = webpush(
        subscription,
        json.dumps({"title": "Low stock", "id": 7}),
        vapid_private_key=private_b64,
        vapid_claims={"sub": SUBJECT},  # a fresh dict: pywebpush writes aud and exp into it
        ttl=120,
        headers={"Urgency": "high", "Topic": "abc_DEF-123"},
    )

    assert response.status_code == 201
    assert response.headers["Location"].startswith(f"{receiver.origin}/message/")
    [message] = receiver.wait_for(1)
    assert message.token == "alice"
    assert message.payload == {"title": "Low stock", "id": 7}
    assert message.claims is not None and message.claims["aud"] == receiver.origin
    assert message.claims["sub"] == SUBJECT
    assert message.headers["ttl"] == "120"
    assert message.headers["Urgency"] == "high"
    assert message.error is None and message.connection_id == 1


def test_subscription_has_the_push_subscription_json_shape(receiver: PushReceiver) -> None:
    subscription = receiver.subscribe()

    assert set(subscription) == {"endpoint", "expirationTime", "keys"}
    token = receiver.token(subscription["endpoint"])
    assert subscription["endpoint"] == f"{receiver.origin}/push/{token}"
    assert len(token) >= 22  # at least 128 random bits, like a real capability URL
    p256dh = b64url_decode(subscription["keys"]["p256dh"])
    assert len(p256dh) == 65 and p256dh[0] == 4
    assert len(b64url_decode(subscription["keys"]["auth"])) == 16
    assert receiver.subscribe()["endpoint"] != subscription["endpoint"]


def test_a_flipped_ciphertext_byte_is_refused(receiver: PushReceiver, vapid_key: ec.EllipticCurvePrivateKey) -> None:
    subscription = receiver.subscribe("bob")
    body = bytearray(_body(subscription, {"n": 1}))
    body[-5] ^= 0x01

    response = _post(subscription, bytes(body), _valid_headers(receiver, vapid_key))

    assert response.status_code == 400
    assert "decryption failed" in response.text
    [request] = receiver.requests("bob")
    assert request.status == 400 and request.payload is None and request.error == response.text
    assert receiver.count() == 0


def test_a_jwt_signed_with_another_key_is_refused(
    receiver: PushReceiver, vapid_key: ec.EllipticCurvePrivateKey
) -> None:
    subscription = receiver.subscribe()
    authorization = _authorization(vapid_key, aud=receiver.origin, exp=int(time.time()) + 3600)
    other_public = b64url_encode(_raw_public(ec.generate_private_key(ec.SECP256R1())))
    forged = authorization.split(",k=")[0] + f",k={other_public}"

    response = _post(
        subscription,
        _body(subscription, {"n": 1}),
        {"TTL": "0", "Content-Encoding": "aes128gcm", "Authorization": forged},
    )

    assert response.status_code == 403
    assert response.text == "JWT signature does not verify with k"


@pytest.mark.parametrize(
    ("claims", "reason"),
    [
        ({"aud": "http://127.0.0.1:1"}, "aud is not this push service's origin"),
        ({"exp": int(time.time()) + 25 * 3600}, "exp more than 24 hours ahead"),
        ({"exp": int(time.time()) - 10}, "JWT expired"),
        ({"sub": "admin"}, "sub must be a mailto: or https: URI"),
    ],
)
def test_bad_claims_are_refused(
    receiver: PushReceiver, vapid_key: ec.EllipticCurvePrivateKey, claims: dict[str, Any], reason: str
) -> None:
    subscription = receiver.subscribe()
    full_claims = {"aud": receiver.origin, "exp": int(time.time()) + 3600, "sub": SUBJECT, **claims}
    headers = {"TTL": "0", "Content-Encoding": "aes128gcm", "Authorization": _authorization(vapid_key, **full_claims)}

    response = _post(subscription, _body(subscription, {"n": 1}), headers)

    assert (response.status_code, response.text) == (403, reason)


def test_missing_or_foreign_authorization_is_refused(receiver: PushReceiver) -> None:
    subscription = receiver.subscribe()
    body = _body(subscription, {"n": 1})

    missing = _post(subscription, body, {"TTL": "0", "Content-Encoding": "aes128gcm"})
    bearer = _post(subscription, body, {"TTL": "0", "Content-Encoding": "aes128gcm", "Authorization": "Bearer x"})

    assert (missing.status_code, missing.text) == (403, "missing Authorization header")
    assert (bearer.status_code, bearer.text) == (403, "Authorization scheme is not vapid")


@pytest.mark.parametrize(
    ("change", "reason"),
    [
        ({"TTL": None}, "missing TTL header (RFC 8030 §5.2)"),
        ({"TTL": "-1"}, "TTL must be a non-negative integer"),
        ({"TTL": "1.5"}, "TTL must be a non-negative integer"),
        ({"Content-Encoding": "aesgcm"}, "Content-Encoding must be aes128gcm (RFC 8291 §4)"),
        ({"Content-Encoding": None}, "Content-Encoding must be aes128gcm (RFC 8291 §4)"),
        ({"Urgency": "urgent"}, "Urgency must be very-low, low, normal or high"),
        ({"Topic": "a" * 33}, "Topic must be 1-32 characters of the base64url alphabet"),
        ({"Topic": "not/base64url"}, "Topic must be 1-32 characters of the base64url alphabet"),
    ],
)
def test_bad_headers_are_refused(
    receiver: PushReceiver, vapid_key: ec.EllipticCurvePrivateKey, change: dict[str, str | None], reason: str
) -> None:
    subscription = receiver.subscribe()
    headers = {**_valid_headers(receiver, vapid_key), "Urgency": "low", "Topic": "t" * 32}
    for name, value in change.items():
        if value is None:
            del headers[name]
        else:
            headers[name] = value

    response = _post(subscription, _body(subscription, {"n": 1}), headers)

    assert (response.status_code, response.text) == (400, reason)
    [request] = receiver.requests()
    assert (request.status, request.error) == (400, reason)


def test_valid_urgency_and_topic_are_accepted(receiver: PushReceiver, vapid_key: ec.EllipticCurvePrivateKey) -> None:
    receiver.subscribe("carol")

    statuses = [
        _push(receiver, "carol", vapid_key, Urgency=u, Topic="A-_z9" * 6).status_code for u in ["very-low", "high"]
    ]

    assert statuses == [201, 201]
    assert receiver.count("carol") == 2


def test_unknown_subscription_is_404_and_payloads_over_4096_bytes_are_413(
    receiver: PushReceiver, vapid_key: ec.EllipticCurvePrivateKey
) -> None:
    subscription = receiver.subscribe("dave")
    headers = _valid_headers(receiver, vapid_key)

    unknown = requests.post(f"{receiver.origin}/push/nobody", data=b"x", headers=headers, timeout=5)
    too_large = _post(subscription, b"\0" * 4097, headers)
    receiver.unsubscribe("dave")
    gone = _post(subscription, _body(subscription, {"n": 1}), headers)

    assert (unknown.status_code, too_large.status_code, gone.status_code) == (404, 413, 404)
    assert [r.status for r in receiver.requests()] == [404, 413, 404]


def test_a_restricted_subscription_refuses_other_vapid_keys(
    receiver: PushReceiver, vapid_key: ec.EllipticCurvePrivateKey
) -> None:
    receiver.subscribe("eve", application_server_key=b64url_encode(_raw_public(vapid_key)))

    with_its_key = _push(receiver, "eve", vapid_key)
    with_another = _push(receiver, "eve", ec.generate_private_key(ec.SECP256R1()))

    assert with_its_key.status_code == 201
    assert with_another.status_code == 403
    assert "applicationServerKey" in with_another.text


def test_scripted_replies_are_used_in_order_then_201(
    receiver: PushReceiver, vapid_key: ec.EllipticCurvePrivateKey
) -> None:
    receiver.subscribe("frank")
    receiver.script(
        "frank",
        [
            Reply(status=429, headers={"Retry-After": "2"}, body=b"slow down"),
            Reply(status=307, headers={"Location": "http://127.0.0.1:9/elsewhere"}),
            Reply(410),
        ],
    )

    responses = [_push(receiver, "frank", vapid_key) for _ in range(4)]

    assert [r.status_code for r in responses] == [429, 307, 410, 201]
    assert responses[0].headers["Retry-After"] == "2" and responses[0].text == "slow down"
    assert responses[1].headers["Location"] == "http://127.0.0.1:9/elsewhere"
    assert "Location" not in responses[2].headers
    # Scripted answers still come after full verification: the payload was decrypted each time.
    assert [r.payload for r in receiver.requests("frank")] == [{"n": 1}] * 4
    assert receiver.count("frank") == 1


def test_delays_hold_the_answer(receiver: PushReceiver, vapid_key: ec.EllipticCurvePrivateKey) -> None:
    receiver.subscribe("gina")
    receiver.script("gina", [Reply(delay=0.5)])
    receiver.delay = 0.1

    started = time.monotonic()
    _push(receiver, "gina", vapid_key)
    scripted = time.monotonic() - started
    started = time.monotonic()
    _push(receiver, "gina", vapid_key)
    global_only = time.monotonic() - started

    assert scripted >= 0.6
    assert 0.1 <= global_only < 0.6


def test_a_hanging_reply_never_answers_until_stop(vapid_key: ec.EllipticCurvePrivateKey) -> None:
    receiver = PushReceiver().start()
    receiver.subscribe("hank")
    receiver.script("hank", [Reply(hang=True)])
    outcome: list[Any] = []

    def send() -> None:
        try:
            outcome.append(_push(receiver, "hank", vapid_key).status_code)
        except requests.RequestException as exc:
            outcome.append(exc)

    thread = threading.Thread(target=send)
    thread.start()
    thread.join(0.5)
    assert thread.is_alive() and outcome == []
    [request] = receiver.requests("hank")
    assert request.status is None and request.payload == {"n": 1}

    receiver.stop()
    thread.join(5)

    assert outcome == [503]


def test_a_dropped_reply_closes_the_connection(receiver: PushReceiver, vapid_key: ec.EllipticCurvePrivateKey) -> None:
    receiver.subscribe("ivan")
    receiver.script("ivan", [Reply(drop=True)])

    with pytest.raises(requests.ConnectionError):
        _push(receiver, "ivan", vapid_key)

    [request] = receiver.requests("ivan")
    assert (request.status, request.error) == (None, "dropped")
    assert _push(receiver, "ivan", vapid_key).status_code == 201


def test_connections_count_reuse(receiver: PushReceiver, vapid_key: ec.EllipticCurvePrivateKey) -> None:
    receiver.subscribe("judy")
    subscription = receiver.subscription_json("judy")
    headers = _valid_headers(receiver, vapid_key)

    with requests.Session() as session:
        for _ in range(5):
            assert (
                session.post(subscription["endpoint"], data=_body(subscription, {}), headers=headers).status_code == 201
            )
    _push(receiver, "judy", vapid_key)  # a new connection

    assert receiver.count() == 6
    assert receiver.connections() == 2
    assert {r.connection_id for r in receiver.messages()} == {1, 2}


def test_max_in_flight_counts_concurrent_requests(
    receiver: PushReceiver, vapid_key: ec.EllipticCurvePrivateKey
) -> None:
    receiver.subscribe("kate")
    receiver.delay = 0.5
    threads = [threading.Thread(target=_push, args=(receiver, "kate", vapid_key)) for _ in range(5)]

    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()

    assert receiver.count() == 5
    assert receiver.max_in_flight == 5
    assert receiver.counters()["statuses"] == {"201": 5}


def test_wait_for_times_out_saying_what_arrived(receiver: PushReceiver, vapid_key: ec.EllipticCurvePrivateKey) -> None:
    receiver.subscribe("liam")
    _push(receiver, "liam", vapid_key)

    with pytest.raises(TimeoutError, match=r"1 of 2 push messages accepted after 0.2 s"):
        receiver.wait_for(2, timeout=0.2)
    assert [m.payload for m in receiver.wait_for(1, timeout=0.2, token="liam")] == [{"n": 1}]


def _encrypt_with_delimiter(subscription: dict[str, Any], plaintext: bytes) -> bytes:
    """RFC 8291 by hand, to craft bodies pywebpush would never produce."""
    receiver_raw = b64url_decode(subscription["keys"]["p256dh"])
    auth = b64url_decode(subscription["keys"]["auth"])
    ephemeral = ec.generate_private_key(ec.SECP256R1())
    sender_raw = _raw_public(ephemeral)
    shared = ephemeral.exchange(ec.ECDH(), ec.EllipticCurvePublicKey.from_encoded_point(ec.SECP256R1(), receiver_raw))
    ikm = HKDF(hashes.SHA256(), 32, auth, b"WebPush: info\0" + receiver_raw + sender_raw).derive(shared)
    salt = os.urandom(16)
    cek = HKDF(hashes.SHA256(), 16, salt, b"Content-Encoding: aes128gcm\0").derive(ikm)
    nonce = HKDF(hashes.SHA256(), 12, salt, b"Content-Encoding: nonce\0").derive(ikm)
    return salt + (4096).to_bytes(4, "big") + b"\x41" + sender_raw + AESGCM(cek).encrypt(nonce, plaintext, None)


def test_decrypt_accepts_only_a_single_final_record(receiver: PushReceiver) -> None:
    import http_ece

    subscription = receiver.subscribe("mia")
    private_key = receiver.private_key("mia")
    auth = b64url_decode(subscription["keys"]["auth"])
    receiver_public = private_key.public_key()

    assert decrypt(_encrypt_with_delimiter(subscription, b"hi\x02\0\0"), private_key, auth) == b"hi"
    with pytest.raises(Rejected, match="0x02 last-record padding delimiter"):
        decrypt(_encrypt_with_delimiter(subscription, b"hi\x01"), private_key, auth)
    multi = http_ece.encrypt(
        b"x" * 100,
        private_key=ec.generate_private_key(ec.SECP256R1()),
        dh=_raw_public_of(receiver_public),
        auth_secret=auth,
        version="aes128gcm",
        rs=40,
    )
    with pytest.raises(Rejected, match="more than one record"):
        decrypt(multi, private_key, auth)
    with pytest.raises(Rejected, match="shorter than the aes128gcm header"):
        decrypt(b"\0" * 20, private_key, auth)


def _raw_public_of(key: ec.EllipticCurvePublicKey) -> bytes:
    return key.public_bytes(serialization.Encoding.X962, serialization.PublicFormat.UncompressedPoint)


@pytest.mark.slow
def test_runs_as_a_subprocess_and_reports_counters(vapid_key: ec.EllipticCurvePrivateKey) -> None:
    process = subprocess.Popen(
        [sys.executable, "-m", "tests.push.receiver", "--subscriptions", "2", "--delay", "0.01"],
        cwd=ROOT,
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert process.stdout is not None
        started = json.loads(process.stdout.readline())
        assert started["origin"].startswith("http://127.0.0.1:")
        assert len(started["subscriptions"]) == 2
        first = started["subscriptions"][0]
        subscription = {"endpoint": first["endpoint"], "keys": first["keys"]}
        private_b64 = b64url_encode(vapid_key.private_numbers().private_value.to_bytes(32, "big"))
        for _ in range(3):
            response = webpush(
                subscription, b'{"a": 1}', vapid_private_key=private_b64, vapid_claims={"sub": SUBJECT}, ttl=5
            )
            assert response.status_code == 201
        # The printed private key lets the parent decrypt on its own.
        body = _body(subscription, {"b": 2})
        secret = int.from_bytes(b64url_decode(first["private_key"]), "big")
        assert decrypt(body, ec.derive_private_key(secret, ec.SECP256R1()), b64url_decode(first["keys"]["auth"])) == (
            b'{"b": 2}'
        )

        process.send_signal(signal.SIGTERM)
        output, _ = process.communicate(timeout=10)
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()

    counters = json.loads(output)
    assert process.returncode == 0
    assert counters["requests"] == counters["accepted"] == 3
    assert counters["statuses"] == {"201": 3}
    assert counters["cpu_seconds"] > 0


def test_received_records_are_immutable(receiver: PushReceiver, vapid_key: ec.EllipticCurvePrivateKey) -> None:
    receiver.subscribe("noah")
    _push(receiver, "noah", vapid_key)
    [message] = receiver.messages()

    with pytest.raises(AttributeError):
        message.status = 500  # type: ignore[misc]
    assert isinstance(message, Received) and message.at <= time.time()


def test_a_busy_port_fails_start_loudly(receiver: PushReceiver) -> None:
    second = PushReceiver(port=receiver.port)

    with pytest.raises(OSError, match="address already in use"):
        second.start()

    second.stop()  # nothing left running: a no-op
    assert second.origin == ""

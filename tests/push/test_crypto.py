"""RFC 8291 encryption and subscription key checks, cross-checked with http_ece and the test push service."""

from __future__ import annotations

import base64
import os

import http_ece
import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec

from django_notify.push import crypto
from tests.push import receiver

P256 = ec.SECP256R1()


@pytest.fixture(scope="module")
def browser_key() -> ec.EllipticCurvePrivateKey:
    return ec.generate_private_key(P256)


@pytest.fixture(scope="module")
def p256dh(browser_key: ec.EllipticCurvePrivateKey) -> bytes:
    return browser_key.public_key().public_bytes(
        serialization.Encoding.X962, serialization.PublicFormat.UncompressedPoint
    )


@pytest.fixture(scope="module")
def auth() -> bytes:
    return os.urandom(16)


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def test_http_ece_decrypts_what_encrypt_produces(
    browser_key: ec.EllipticCurvePrivateKey, p256dh: bytes, auth: bytes
) -> None:
    plaintext = '{"title": "Stock bas: café", "id": 42}'.encode()

    body = crypto.encrypt(plaintext, p256dh, auth)

    assert http_ece.decrypt(body, private_key=browser_key, auth_secret=auth, version="aes128gcm") == plaintext


def test_the_test_push_service_decrypts_what_encrypt_produces(
    browser_key: ec.EllipticCurvePrivateKey, p256dh: bytes, auth: bytes
) -> None:
    body = crypto.encrypt(b'{"a": 1}', browser_key.public_key(), auth)  # a loaded key object works too

    assert receiver.decrypt(body, browser_key, auth) == b'{"a": 1}'


def test_header_layout(p256dh: bytes, auth: bytes) -> None:
    plaintext = b"x" * 100

    body = crypto.encrypt(plaintext, p256dh, auth)

    rs, idlen, keyid = int.from_bytes(body[16:20], "big"), body[20], body[21:86]
    assert (rs, idlen) == (4096, 65)
    assert keyid[0] == 0x04
    ec.EllipticCurvePublicKey.from_encoded_point(P256, keyid)  # a point on the curve, or ValueError
    # One record: the plaintext, the 0x02 delimiter, no padding, a 16-byte tag.
    assert len(body) == 86 + len(plaintext) + 1 + 16


def test_every_call_uses_a_fresh_ephemeral_key_and_salt(p256dh: bytes, auth: bytes) -> None:
    bodies = [crypto.encrypt(b"same", p256dh, auth) for _ in range(20)]

    assert len({body[21:86] for body in bodies}) == 20
    assert len({body[:16] for body in bodies}) == 20
    assert all(keyid != p256dh for keyid in (body[21:86] for body in bodies))


def test_max_plaintext_boundary(browser_key: ec.EllipticCurvePrivateKey, p256dh: bytes, auth: bytes) -> None:
    largest = os.urandom(crypto.MAX_PLAINTEXT)

    body = crypto.encrypt(largest, p256dh, auth)

    assert crypto.MAX_PLAINTEXT == 3993
    assert len(body) == 4096
    assert http_ece.decrypt(body, private_key=browser_key, auth_secret=auth, version="aes128gcm") == largest
    with pytest.raises(ValueError, match=r"3994 bytes; Web Push allows at most 3993 bytes"):
        crypto.encrypt(largest + b"!", p256dh, auth)


def test_encrypt_refuses_a_wrong_auth_length(p256dh: bytes) -> None:
    with pytest.raises(ValueError, match="auth secret must be 16 bytes; got 15"):
        crypto.encrypt(b"x", p256dh, os.urandom(15))


def test_validate_p256dh_returns_the_raw_point(p256dh: bytes) -> None:
    assert crypto.validate_p256dh(_b64(p256dh)) == p256dh
    assert crypto.validate_p256dh(_b64(p256dh) + "=") == p256dh  # padding is tolerated


def _off_curve_point() -> bytes:
    # x = y = 1 does not satisfy y^2 = x^3 - 3x + b on P-256.
    return b"\x04" + (1).to_bytes(32, "big") * 2


def _compressed(p256dh: bytes) -> bytes:
    return bytes([2 + (p256dh[-1] & 1)]) + p256dh[1:33]


@pytest.mark.parametrize(
    ("make", "message"),
    [
        (lambda raw: _b64(raw[:64]), "65 bytes; got 64 bytes"),
        (lambda raw: _b64(raw + b"\0"), "65 bytes; got 66 bytes"),
        (lambda raw: _b64(_compressed(raw)), "65 bytes; got 33 bytes"),
        (lambda raw: _b64(b"\x03" + raw[1:]), r"first byte 0x04"),
        (lambda raw: _b64(_off_curve_point()), "not a point on the P-256 curve"),
        (lambda raw: "+" + _b64(raw)[1:], "not valid base64url"),  # "+" is base64, not base64url
        (lambda raw: _b64(raw) + "!", "not valid base64url"),
        (lambda raw: "B", "not valid base64url"),
        (lambda raw: "", "65 bytes; got 0 bytes"),
    ],
)
def test_validate_p256dh_rejects(p256dh: bytes, make: object, message: str) -> None:
    value = make(p256dh)  # type: ignore[operator]

    with pytest.raises(ValueError, match=message) as caught:
        crypto.validate_p256dh(value)

    assert str(caught.value).startswith("p256dh ")
    if len(value) > 4:
        assert value not in str(caught.value)


def test_the_compressed_form_is_itself_a_valid_point(p256dh: bytes) -> None:
    # So the refusal above is about the encoding, not a broken fixture.
    assert (
        ec.EllipticCurvePublicKey.from_encoded_point(P256, _compressed(p256dh)).public_bytes(
            serialization.Encoding.X962, serialization.PublicFormat.UncompressedPoint
        )
        == p256dh
    )


@pytest.mark.parametrize("value", [None, 123, b"BAAA", ["x"]])
def test_validators_reject_non_strings(value: object) -> None:
    with pytest.raises(ValueError, match="must be a base64url string"):
        crypto.validate_p256dh(value)
    with pytest.raises(ValueError, match="must be a base64url string"):
        crypto.validate_auth(value)


def test_validate_auth(auth: bytes) -> None:
    assert crypto.validate_auth(_b64(auth)) == auth
    for size in (15, 17, 0):
        with pytest.raises(ValueError, match=f"16-byte secret; got {size} bytes"):
            crypto.validate_auth(_b64(os.urandom(size)))
    with pytest.raises(ValueError, match="auth is not valid base64url") as caught:
        crypto.validate_auth("abc/def+ghijklmnopqrstu")
    assert "abc/def" not in str(caught.value)


def test_b64url_round_trip_and_strictness() -> None:
    data = bytes(range(256))

    encoded = crypto.b64url_encode(data)

    assert "=" not in encoded and "+" not in encoded and "/" not in encoded
    assert crypto.b64url_decode(encoded) == data
    assert crypto.b64url_decode(base64.urlsafe_b64encode(data).decode()) == data
    for bad in ("a+b/", "ab cd", "abcde", "ab=c"):
        with pytest.raises(ValueError, match="not valid base64url"):
            crypto.b64url_decode(bad)
    with pytest.raises(ValueError, match="expected a base64url string"):
        crypto.b64url_decode(b"abcd")  # type: ignore[arg-type]

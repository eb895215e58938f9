"""VAPID keys and headers (RFC 8292), verified with ``cryptography``, py_vapid and the test push service."""

from __future__ import annotations

import base64
import hashlib
import json
import threading
from typing import Any

import pytest
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from cryptography.hazmat.primitives.asymmetric.utils import encode_dss_signature
from py_vapid import Vapid02

from django_notify.push import vapid
from tests.push import receiver

AUDIENCE = "https://fcm.googleapis.com"
SUBJECT = "mailto:ops@example.com"
NOW = 1_800_000_000.0


@pytest.fixture(scope="module")
def key() -> ec.EllipticCurvePrivateKey:
    return vapid.generate_private_key()


@pytest.fixture
def signer(key: ec.EllipticCurvePrivateKey) -> vapid.VapidSigner:
    return vapid.VapidSigner(key, SUBJECT)


def _b64decode(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


def _split(header: str) -> tuple[str, str]:
    assert header.startswith("vapid t=")
    token, _, public = header[len("vapid t=") :].partition(", k=")
    return token, public


def _claims(header: str) -> dict[str, Any]:
    return dict(json.loads(_b64decode(_split(header)[0].split(".")[1])))


def test_the_jwt_verifies_with_cryptography(signer: vapid.VapidSigner, key: ec.EllipticCurvePrivateKey) -> None:
    token, public = _split(signer.authorization(AUDIENCE, now=NOW))
    header_b64, claims_b64, signature_b64 = token.split(".")
    signature = _b64decode(signature_b64)

    assert json.loads(_b64decode(header_b64)) == {"typ": "JWT", "alg": "ES256"}
    assert len(signature) == 64
    der = encode_dss_signature(int.from_bytes(signature[:32], "big"), int.from_bytes(signature[32:], "big"))
    public_key = ec.EllipticCurvePublicKey.from_encoded_point(ec.SECP256R1(), _b64decode(public))
    public_key.verify(der, f"{header_b64}.{claims_b64}".encode(), ec.ECDSA(hashes.SHA256()))
    assert public == signer.public_key == vapid.public_key_b64(key)
    assert json.loads(_b64decode(claims_b64)) == {"aud": AUDIENCE, "exp": int(NOW) + 12 * 3600, "sub": SUBJECT}


def test_independent_verifiers_accept_the_header(signer: vapid.VapidSigner) -> None:
    header = signer.authorization("http://127.0.0.1:8080")

    claims, public_raw = receiver.verify_vapid(header, "http://127.0.0.1:8080")
    assert claims["sub"] == SUBJECT and receiver.b64url_encode(public_raw) == signer.public_key
    # py_vapid's verifier wants the ",k=" spelling pywebpush sends; the RFC 8292 §3 example has ", k=".
    assert Vapid02.verify(header.replace(", k=", ",k=")) is True


def test_one_header_is_cached_per_audience(signer: vapid.VapidSigner) -> None:
    first = signer.authorization(AUDIENCE, now=NOW)

    assert signer.authorization(AUDIENCE, now=NOW + 60) is first
    other = signer.authorization("https://updates.push.services.mozilla.com", now=NOW + 60)
    assert other is not first
    assert _claims(other)["aud"] == "https://updates.push.services.mozilla.com"
    assert signer.authorization("https://updates.push.services.mozilla.com", now=NOW + 120) is other


def test_the_header_is_re_signed_when_less_than_renew_before_remains(key: ec.EllipticCurvePrivateKey) -> None:
    signer = vapid.VapidSigner(key, SUBJECT, lifetime=7200, renew_before=600)
    first = signer.authorization(AUDIENCE, now=NOW)

    assert signer.authorization(AUDIENCE, now=NOW + 6600) is first  # exactly 600 s left: still good
    renewed = signer.authorization(AUDIENCE, now=NOW + 6601)

    assert renewed != first
    assert _claims(renewed)["exp"] == int(NOW + 6601) + 7200
    assert signer.authorization(AUDIENCE, now=NOW + 6700) is renewed


def test_exp_stays_within_the_lifetime_when_the_clock_steps_back(key: ec.EllipticCurvePrivateKey) -> None:
    signer = vapid.VapidSigner(key, SUBJECT, lifetime=24 * 3600)
    signer.authorization(AUDIENCE, now=NOW)

    earlier = NOW - 3600
    header = signer.authorization(AUDIENCE, now=earlier)

    assert _claims(header)["exp"] - earlier <= 24 * 3600


@pytest.mark.parametrize("lifetime", [24 * 3600 + 1, 0, -5])
def test_lifetime_is_bounded_by_24_hours(key: ec.EllipticCurvePrivateKey, lifetime: int) -> None:
    with pytest.raises(ValueError, match="between 1 and 86400 seconds"):
        vapid.VapidSigner(key, SUBJECT, lifetime=lifetime)


def test_the_longest_lifetime_gives_exp_exactly_24_hours_ahead(key: ec.EllipticCurvePrivateKey) -> None:
    signer = vapid.VapidSigner(key, SUBJECT, lifetime=24 * 3600)

    assert _claims(signer.authorization(AUDIENCE, now=NOW))["exp"] == int(NOW) + 24 * 3600


def test_renew_before_must_be_shorter_than_the_lifetime(key: ec.EllipticCurvePrivateKey) -> None:
    with pytest.raises(ValueError, match="renew_before"):
        vapid.VapidSigner(key, SUBJECT, lifetime=3600, renew_before=3600)


def test_the_signer_refuses_a_bad_subject_or_key(key: ec.EllipticCurvePrivateKey) -> None:
    with pytest.raises(ValueError, match="reserved name"):
        vapid.VapidSigner(key, "mailto:admin@localhost")
    with pytest.raises(ValueError, match="P-256"):
        vapid.VapidSigner(ec.generate_private_key(ec.SECP384R1()), SUBJECT)


def test_the_audience_must_be_an_origin_and_is_not_echoed(signer: vapid.VapidSigner) -> None:
    with pytest.raises(ValueError, match="must be the push endpoint's origin") as caught:
        signer.authorization("https://fcm.googleapis.com/fcm/send/secret-token")

    assert "secret-token" not in str(caught.value)


def test_concurrent_callers_share_one_signature(signer: vapid.VapidSigner) -> None:
    results: list[str] = []
    barrier = threading.Barrier(8)

    def call() -> None:
        barrier.wait()
        results.append(signer.authorization("https://web.push.apple.com"))

    threads = [threading.Thread(target=call) for _ in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()

    assert len(results) == 8 and len(set(results)) == 1


def test_key_id_and_repr(signer: vapid.VapidSigner, key: ec.EllipticCurvePrivateKey) -> None:
    public_raw = _b64decode(signer.public_key)

    assert signer.key_id == vapid.key_id(public_raw) == hashlib.sha256(public_raw).hexdigest()[:16]
    assert vapid.key_id(_b64decode(vapid.public_key_b64(vapid.generate_private_key()))) != signer.key_id
    assert vapid.private_key_b64(key) not in repr(signer)
    assert signer.key_id in repr(signer)


def _der_b64(key: ec.EllipticCurvePrivateKey, fmt: serialization.PrivateFormat, *, urlsafe: bool) -> str:
    der = key.private_bytes(serialization.Encoding.DER, fmt, serialization.NoEncryption())
    return (base64.urlsafe_b64encode(der).rstrip(b"=") if urlsafe else base64.b64encode(der)).decode()


def _sec1_pem(key: ec.EllipticCurvePrivateKey) -> str:
    return key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.TraditionalOpenSSL, serialization.NoEncryption()
    ).decode()


def test_every_accepted_private_key_form_parses_to_the_same_key(key: ec.EllipticCurvePrivateKey) -> None:
    forms = {
        "raw base64url": vapid.private_key_b64(key),
        "raw base64 padded": base64.b64encode(key.private_numbers().private_value.to_bytes(32, "big")).decode(),
        "PKCS#8 PEM": vapid.private_key_pem(key),
        "SEC1 PEM": _sec1_pem(key),
        "PEM with literal \\n": vapid.private_key_pem(key).replace("\n", "\\n"),
        "PEM with surrounding blanks": "\n  " + vapid.private_key_pem(key) + "\n",
        "PKCS#8 DER base64": _der_b64(key, serialization.PrivateFormat.PKCS8, urlsafe=False),
        "PKCS#8 DER base64url": _der_b64(key, serialization.PrivateFormat.PKCS8, urlsafe=True),
        "SEC1 DER base64url": _der_b64(key, serialization.PrivateFormat.TraditionalOpenSSL, urlsafe=True),
    }

    values = {name: vapid.parse_private_key(text).private_numbers().private_value for name, text in forms.items()}

    assert set(values.values()) == {key.private_numbers().private_value}, values
    assert vapid.parse_private_key(key) is key
    assert vapid.private_key_pem(key).startswith("-----BEGIN PRIVATE KEY-----\n")


def _encrypted_pem(key: ec.EllipticCurvePrivateKey) -> str:
    return key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.BestAvailableEncryption(b"passphrase"),
    ).decode()


def _rsa_pem() -> str:
    rsa_key = rsa.generate_private_key(public_exponent=65537, key_size=1024)
    return rsa_key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    ).decode()


@pytest.mark.parametrize(
    ("make", "message"),
    [
        (lambda key: None, "missing or not a string"),
        (lambda key: "", "missing or not a string"),
        (lambda key: 12345, "missing or not a string"),
        (lambda key: "not-a-key-at-all!", "could not be read"),
        (lambda key: vapid.private_key_b64(key)[:-3], "could not be read"),
        (lambda key: base64.urlsafe_b64encode(b"\0" * 32).decode(), "could not be read"),
        (lambda key: vapid.private_key_pem(key)[:120], "could not be read"),
        (lambda key: _encrypted_pem(key), "is encrypted"),
        (lambda key: _sec1_pem(ec.generate_private_key(ec.SECP384R1())), "P-256 curve, not secp384r1"),
        (lambda key: _rsa_pem(), "not an elliptic-curve key"),
    ],
)
def test_bad_private_keys_are_refused_without_echoing_them(
    key: ec.EllipticCurvePrivateKey, make: Any, message: str
) -> None:
    value = make(key)

    with pytest.raises(ValueError, match=message) as caught:
        vapid.parse_private_key(value)

    text = str(caught.value)
    assert "generate_vapid_keys" in text or "P-256" in text
    # Nothing chained either: a parser's own exception could quote the input.
    assert caught.value.__cause__ is None
    assert caught.value.__context__ is None or caught.value.__suppress_context__
    if isinstance(value, str) and len(value) > 8:
        assert value.strip()[-20:] not in text


def test_parse_public_key(key: ec.EllipticCurvePrivateKey) -> None:
    public = vapid.public_key_b64(key)

    raw = vapid.parse_public_key(public)

    assert len(raw) == 65 and vapid.key_id(raw) == vapid.VapidSigner(key, SUBJECT).key_id
    for bad in (None, "", vapid.private_key_b64(key), public[:-2], "@@@"):
        with pytest.raises(ValueError, match="The VAPID public key"):
            vapid.parse_public_key(bad)


@pytest.mark.parametrize(
    "subject",
    [
        "mailto:ops@example.com",
        "mailto:first.last+push@mail.example.co.uk",
        "mailto:ops@bücher.de",
        "https://example.com",
        "https://example.com/contact?from=push",
        "https://www.example.org:8443/about",
    ],
)
def test_good_subjects(subject: str) -> None:
    assert vapid.subject_problem(subject) is None


@pytest.mark.parametrize(
    ("subject", "problem"),
    [
        (None, "non-empty string"),
        ("", "non-empty string"),
        (42, "non-empty string"),
        ("ops@example.com", "must start with 'mailto:' or 'https://'"),
        ("http://example.com", "must start with 'mailto:' or 'https://'"),
        ("MAILTO:ops@example.com", "must start with 'mailto:' or 'https://'"),
        ("mailto: <ops@example.com>", "spaces or angle brackets"),
        ("mailto:<ops@example.com>", "spaces or angle brackets"),
        ("mailto:ops@example.com ", "spaces or angle brackets"),
        ("mailto:admin@localhost", "reserved name"),
        ("mailto:admin@server.local", "reserved name"),
        ("mailto:admin@app.localhost", "reserved name"),
        ("mailto:admin@shop.test", "reserved name"),
        ("mailto:admin@x.invalid", "reserved name"),
        ("mailto:admin@site.example", "reserved name"),
        ("mailto:admin@intranet", "needs a dot"),
        ("mailto:admin@127.0.0.1", "IP address"),
        ("mailto:admin@exa_mple.com", "needs a dot"),
        ("mailto:@example.com", "one plain address"),
        ("mailto:ops", "one plain address"),
        ("mailto:a@b@example.com", "one plain address"),
        ("mailto:ops@example.com?subject=hi", "one plain address"),
        ("https://localhost/contact", "reserved name"),
        ("https://192.168.1.10/", "IP address"),
        ("https://[::1]/", "IP address"),
        ("https://", "is empty"),
        ("https://user:pw@example.com", "user name or password"),
        ("https://example.com:99999", "not a valid https URL"),
    ],
)
def test_bad_subjects(subject: object, problem: str) -> None:
    message = vapid.subject_problem(subject)

    assert message is not None and problem in message
    assert "mailto:ops@yourdomain.com" in message  # says how to fix it

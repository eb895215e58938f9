"""Web Push payload encryption (RFC 8291, ``aes128gcm`` from RFC 8188) and subscription key checks.

Only the sender's side is here: one record per message, a fresh ephemeral P-256 key per call.
The two HKDF steps each need a single 32-byte block, so they are written as plain HMAC-SHA-256
calls (extract, then one expand round), which is what HKDF computes and several times faster
than building HKDF objects for every message.
"""

from __future__ import annotations

import base64
import binascii
import hmac
import os
import re
import struct
from functools import lru_cache

from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat

#: RFC 8291 §4: 4096 octets of body - 86 header - 1 padding delimiter - 16 AEAD tag.
MAX_PLAINTEXT = 3993
RECORD_SIZE = 4096
AUTH_SECRET_LENGTH = 16
POINT_LENGTH = 65

_B64URL = re.compile(r"[A-Za-z0-9_-]*={0,2}")
_CURVE = ec.SECP256R1()
_ECDH = ec.ECDH()
_WEBPUSH_INFO = b"WebPush: info\x00"
_CEK_INFO = b"Content-Encoding: aes128gcm\x00\x01"
_NONCE_INFO = b"Content-Encoding: nonce\x00\x01"
_RS_IDLEN = struct.pack("!IB", RECORD_SIZE, POINT_LENGTH)
_LAST_RECORD = b"\x02"


def b64url_encode(data: bytes) -> str:
    """Base64url without padding (the form browsers and RFC 8292 use)."""
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")


def b64url_decode(value: str) -> bytes:
    """Decode base64url, padded or not; ``ValueError`` for anything else (including non-strings)."""
    if not isinstance(value, str):
        raise ValueError("expected a base64url string")
    if not _B64URL.fullmatch(value) or len(value.rstrip("=")) % 4 == 1:
        raise ValueError("not valid base64url (allowed: A-Z a-z 0-9 - _ and optional = padding)")
    stripped = value.rstrip("=")
    try:
        return base64.urlsafe_b64decode(stripped + "=" * (-len(stripped) % 4))
    except binascii.Error:
        raise ValueError("not valid base64url") from None


def validate_p256_point(value: object, *, name: str) -> bytes:
    """The raw 65-byte uncompressed P-256 point encoded in ``value`` (base64url); ``ValueError`` otherwise.

    ``name`` is how messages refer to the value; the value itself is never echoed.
    """
    if not isinstance(value, str):
        raise ValueError(f"{name} must be a base64url string, not {type(value).__name__}.")
    try:
        raw = b64url_decode(value)
    except ValueError:
        raise ValueError(f"{name} is not valid base64url; send the key exactly as the browser encoded it.") from None
    if len(raw) != POINT_LENGTH:
        raise ValueError(f"{name} must be an uncompressed P-256 point of {POINT_LENGTH} bytes; got {len(raw)} bytes.")
    if raw[0] != 0x04:
        raise ValueError(f"{name} must be an uncompressed P-256 point (first byte 0x04); other encodings are refused.")
    try:
        _load_point(raw)
    except ValueError:
        raise ValueError(f"{name} is not a point on the P-256 curve.") from None
    return raw


def validate_p256dh(value: object) -> bytes:
    """A subscription's ``keys.p256dh`` as raw bytes, checked to be a point on P-256 (RFC 8291 §7)."""
    return validate_p256_point(value, name="p256dh")


def validate_auth(value: object) -> bytes:
    """A subscription's ``keys.auth`` as raw bytes: exactly 16 octets (RFC 8291 §3.2)."""
    if not isinstance(value, str):
        raise ValueError(f"auth must be a base64url string, not {type(value).__name__}.")
    try:
        raw = b64url_decode(value)
    except ValueError:
        raise ValueError("auth is not valid base64url; send the secret exactly as the browser encoded it.") from None
    if len(raw) != AUTH_SECRET_LENGTH:
        raise ValueError(f"auth must be a {AUTH_SECRET_LENGTH}-byte secret; got {len(raw)} bytes.")
    return raw


@lru_cache(maxsize=4096)
def _load_point(raw: bytes) -> ec.EllipticCurvePublicKey:
    # Parsing checks the point is on the curve; a batch often targets the same few keys.
    return ec.EllipticCurvePublicKey.from_encoded_point(_CURVE, raw)


def encrypt(plaintext: bytes, p256dh: bytes | ec.EllipticCurvePublicKey, auth: bytes) -> bytes:
    """Encrypt ``plaintext`` for one subscription as a single ``aes128gcm`` record (RFC 8291 §3-4).

    ``p256dh`` is the subscription's raw 65-byte public key or an already loaded key object;
    ``auth`` its 16-byte secret. The body is ``salt | rs=4096 | idlen=65 | keyid | ciphertext``,
    where ``keyid`` is the ephemeral public key made for this call.
    """
    if len(plaintext) > MAX_PLAINTEXT:
        raise ValueError(
            f"The push payload is {len(plaintext)} bytes; Web Push allows at most {MAX_PLAINTEXT} bytes "
            "of plaintext (RFC 8291 §4). Send less and let the service worker fetch the rest."
        )
    if len(auth) != AUTH_SECRET_LENGTH:
        raise ValueError(f"The auth secret must be {AUTH_SECRET_LENGTH} bytes; got {len(auth)}.")
    if isinstance(p256dh, ec.EllipticCurvePublicKey):
        receiver_key = p256dh
        receiver_raw = p256dh.public_bytes(Encoding.X962, PublicFormat.UncompressedPoint)
    else:
        receiver_raw = bytes(p256dh)
        receiver_key = _load_point(receiver_raw)

    ephemeral = ec.generate_private_key(_CURVE)
    sender_raw = ephemeral.public_key().public_bytes(Encoding.X962, PublicFormat.UncompressedPoint)
    shared = ephemeral.exchange(_ECDH, receiver_key)

    # RFC 8291 §3.4: IKM = HKDF(salt=auth, ikm=ECDH, info="WebPush: info" 0x00 ua_public as_public, 32).
    prk_key = hmac.digest(auth, shared, "sha256")
    ikm = hmac.digest(prk_key, _WEBPUSH_INFO + receiver_raw + sender_raw + b"\x01", "sha256")
    # RFC 8188 §2.2-2.3: CEK and NONCE from HKDF(salt, IKM).
    salt = os.urandom(16)
    prk = hmac.digest(salt, ikm, "sha256")
    cek = hmac.digest(prk, _CEK_INFO, "sha256")[:16]
    nonce = hmac.digest(prk, _NONCE_INFO, "sha256")[:12]

    ciphertext = AESGCM(cek).encrypt(nonce, plaintext + _LAST_RECORD, None)
    return salt + _RS_IDLEN + sender_raw + ciphertext

"""VAPID (RFC 8292): application server keys and the ``Authorization: vapid t=…, k=…`` header.

A :class:`VapidSigner` signs one ES256 JWT per push service origin and reuses it until it is
close to expiring: push services can then cache the signature check (RFC 8292 §5), and the
sender saves an ECDSA signature per message.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import ipaddress
import json
import re
import threading
import time
from urllib.parse import urlsplit

from cryptography.exceptions import UnsupportedAlgorithm
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.asymmetric.utils import decode_dss_signature

from django_notify.push.crypto import b64url_encode, validate_p256_point

#: RFC 8292 §2: ``exp`` must not be more than 24 hours after the request.
MAX_LIFETIME = 24 * 3600

_ACCEPTED_PRIVATE_FORMS = (
    "expected a base64url raw 32-byte P-256 private key (what `manage.py generate_vapid_keys` prints), "
    "a PEM private key (PKCS#8 'PRIVATE KEY' or SEC1 'EC PRIVATE KEY', unencrypted), "
    "or the base64/base64url encoding of the same key in DER."
)
_JWT_HEADER = b64url_encode(b'{"typ":"JWT","alg":"ES256"}')
_ECDSA_SHA256 = ec.ECDSA(hashes.SHA256())
_ORIGIN = re.compile(r"https?://[^/?#@\s]+")
_LABEL = re.compile(r"(?!-)[a-z0-9-]{1,63}(?<!-)")
_RESERVED_NAMES = ("localhost",)
_RESERVED_SUFFIXES = (".local", ".localhost", ".test", ".invalid", ".example", ".internal", ".home.arpa")
_MAX_CACHED_AUDIENCES = 256


def generate_private_key() -> ec.EllipticCurvePrivateKey:
    """A new P-256 VAPID key."""
    return ec.generate_private_key(ec.SECP256R1())


def private_key_b64(key: ec.EllipticCurvePrivateKey) -> str:
    """The raw 32-byte private scalar, base64url: the compact form for settings and environment variables."""
    return b64url_encode(key.private_numbers().private_value.to_bytes(32, "big"))


def private_key_pem(key: ec.EllipticCurvePrivateKey) -> str:
    """The key as an unencrypted PKCS#8 PEM block."""
    return key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    ).decode("ascii")


def public_key_b64(private_key: ec.EllipticCurvePrivateKey) -> str:
    """The ``applicationServerKey`` for ``pushManager.subscribe()``: base64url of the 65-byte public point."""
    return b64url_encode(_public_raw(private_key))


def key_id(public_raw: bytes) -> str:
    """A short, stable fingerprint of a public key, stored on each subscription (RFC 8292 §4.2)."""
    return hashlib.sha256(public_raw).hexdigest()[:16]


def parse_public_key(value: object) -> bytes:
    """The raw 65-byte point from a base64url VAPID public key; ``ValueError`` if it is not a P-256 point."""
    return validate_p256_point(value, name="The VAPID public key")


def parse_private_key(value: object) -> ec.EllipticCurvePrivateKey:
    """Load a P-256 VAPID private key from any accepted form; ``ValueError`` naming the accepted forms otherwise."""
    if isinstance(value, ec.EllipticCurvePrivateKey):
        key = value
    elif isinstance(value, str) and value.strip():
        key = _load_private_key(value.strip())
    else:
        raise ValueError(f"The VAPID private key is missing or not a string: {_ACCEPTED_PRIVATE_FORMS}")
    if not isinstance(key.curve, ec.SECP256R1):
        raise ValueError(f"The VAPID private key must be on the P-256 curve, not {key.curve.name}.")
    return key


def _load_private_key(text: str) -> ec.EllipticCurvePrivateKey:
    try:
        if text.startswith("-----BEGIN"):
            # Environment variables often carry a PEM with literal backslash-n sequences instead of line breaks.
            pem = text.replace("\\n", "\n").encode("ascii")
            loaded: object = serialization.load_pem_private_key(pem, password=None)
        else:
            raw = _decode_any_base64(text)
            if len(raw) == 32:
                loaded = ec.derive_private_key(int.from_bytes(raw, "big"), ec.SECP256R1())
            else:
                loaded = serialization.load_der_private_key(raw, password=None)
    except TypeError:
        # cryptography raises TypeError for an encrypted key given without a password.
        raise ValueError(
            f"The VAPID private key is encrypted; store it unencrypted: {_ACCEPTED_PRIVATE_FORMS}"
        ) from None
    except (ValueError, UnsupportedAlgorithm, UnicodeEncodeError):
        raise ValueError(f"The VAPID private key could not be read: {_ACCEPTED_PRIVATE_FORMS}") from None
    if not isinstance(loaded, ec.EllipticCurvePrivateKey):
        raise ValueError(f"The VAPID private key is not an elliptic-curve key: {_ACCEPTED_PRIVATE_FORMS}")
    return loaded


def _decode_any_base64(text: str) -> bytes:
    compact = "".join(text.split()).rstrip("=").replace("-", "+").replace("_", "/")
    try:
        return base64.b64decode(compact + "=" * (-len(compact) % 4), validate=True)
    except (binascii.Error, ValueError):
        raise ValueError("not base64") from None


def subject_problem(subject: object) -> str | None:
    """What is wrong with a VAPID ``sub`` claim, or ``None`` if push services will accept it.

    Accepted: ``mailto:`` with a plain address on a public domain, or an ``https://`` URL on a
    public host name. Apple rejects ``mailto: <x@y>`` and addresses at ``localhost``.
    """
    fix = "Use a contact push services can reach, e.g. 'mailto:ops@yourdomain.com' or 'https://yourdomain.com/contact'."
    if not isinstance(subject, str) or not subject:
        return f"The VAPID subject must be a non-empty string. {fix}"
    if any(char.isspace() for char in subject) or "<" in subject or ">" in subject:
        return f"The VAPID subject must not contain spaces or angle brackets (Apple rejects them). {fix}"
    if subject.startswith("mailto:"):
        local, at, domain = subject[len("mailto:") :].rpartition("@")
        if not at or not local or "@" in local or "?" in domain:
            return f"The VAPID subject 'mailto:' must be followed by one plain address, local@domain. {fix}"
        problem = _host_problem(domain)
        return f"The VAPID subject's mail domain {problem} {fix}" if problem else None
    if subject.startswith("https://"):
        try:
            parts = urlsplit(subject)
            parts.port  # noqa: B018 - raises ValueError for a malformed port
        except ValueError:
            return f"The VAPID subject is not a valid https URL. {fix}"
        if parts.username is not None or parts.password is not None:
            return f"The VAPID subject URL must not contain a user name or password. {fix}"
        problem = _host_problem(parts.hostname or "")
        return f"The VAPID subject URL's host {problem} {fix}" if problem else None
    return f"The VAPID subject must start with 'mailto:' or 'https://' (RFC 8292 §2.1). {fix}"


def _host_problem(host: str) -> str | None:
    host = host.lower().rstrip(".")
    if not host:
        return "is empty."
    try:
        ipaddress.ip_address(host.strip("[]"))
    except ValueError:
        pass
    else:
        return "is an IP address; use a domain name."
    if host in _RESERVED_NAMES or host.endswith(_RESERVED_SUFFIXES):
        return "is a local or reserved name that push services reject."
    try:
        ascii_host = host.encode("idna").decode("ascii")
    except UnicodeError:
        return "is not a valid domain name."
    labels = ascii_host.split(".")
    if len(labels) < 2 or not all(_LABEL.fullmatch(label) for label in labels):
        return "is not a public domain name (it needs a dot, e.g. yourdomain.com)."
    return None


def _public_raw(private_key: ec.EllipticCurvePrivateKey) -> bytes:
    return private_key.public_key().public_bytes(
        serialization.Encoding.X962, serialization.PublicFormat.UncompressedPoint
    )


class VapidSigner:
    """Builds ``Authorization`` headers for push requests, one cached JWT per audience.

    Thread-safe. ``lifetime`` is how long each JWT is valid (at most 24 h); a cached one is
    re-signed when fewer than ``renew_before`` seconds of it remain.
    """

    def __init__(
        self,
        private_key: ec.EllipticCurvePrivateKey,
        subject: str,
        *,
        lifetime: int = 12 * 3600,
        renew_before: int = 3600,
    ) -> None:
        if not isinstance(private_key, ec.EllipticCurvePrivateKey) or not isinstance(private_key.curve, ec.SECP256R1):
            raise ValueError("The VAPID private key must be a P-256 key; load it with parse_private_key().")
        problem = subject_problem(subject)
        if problem:
            raise ValueError(problem)
        if not 0 < lifetime <= MAX_LIFETIME:
            raise ValueError(f"The VAPID token lifetime must be between 1 and {MAX_LIFETIME} seconds (RFC 8292 §2).")
        if not 0 <= renew_before < lifetime:
            raise ValueError("renew_before must be at least 0 and shorter than the token lifetime.")
        self._private_key = private_key
        self.subject = subject
        self.lifetime = lifetime
        self.renew_before = renew_before
        public_raw = _public_raw(private_key)
        self.public_key = b64url_encode(public_raw)
        self.key_id = key_id(public_raw)
        self._cache: dict[str, tuple[str, int]] = {}
        self._lock = threading.Lock()

    def __repr__(self) -> str:
        return f"<VapidSigner key_id={self.key_id} subject={self.subject!r}>"

    def authorization(self, audience: str, now: float | None = None) -> str:
        """The ``Authorization`` header value for a push service origin (``scheme://host[:port]``)."""
        if now is None:
            now = time.time()
        cached = self._cache.get(audience)
        if cached is not None and self._still_good(cached[1], now):
            return cached[0]
        with self._lock:
            cached = self._cache.get(audience)
            if cached is not None and self._still_good(cached[1], now):
                return cached[0]
            if not isinstance(audience, str) or not _ORIGIN.fullmatch(audience):
                raise ValueError(
                    "The VAPID audience must be the push endpoint's origin, 'https://host' or 'https://host:port', "
                    "with no path; compute it from the endpoint URL."
                )
            exp = int(now) + self.lifetime
            header = f"vapid t={self._sign(audience, exp)}, k={self.public_key}"
            if len(self._cache) >= _MAX_CACHED_AUDIENCES:
                self._cache.clear()
            self._cache[audience] = (header, exp)
            return header

    def _still_good(self, exp: int, now: float) -> bool:
        # The upper bound matters when the clock steps back: exp must stay within the lifetime of "now".
        return self.renew_before <= exp - now <= self.lifetime

    def _sign(self, audience: str, exp: int) -> str:
        claims = json.dumps({"aud": audience, "exp": exp, "sub": self.subject}, separators=(",", ":"))
        signing_input = f"{_JWT_HEADER}.{b64url_encode(claims.encode())}"
        r, s = decode_dss_signature(self._private_key.sign(signing_input.encode("ascii"), _ECDSA_SHA256))
        return f"{signing_input}.{b64url_encode(r.to_bytes(32, 'big') + s.to_bytes(32, 'big'))}"

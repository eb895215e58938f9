"""Which push endpoints the server may POST to: the SSRF rules for Web Push.

A push subscription's endpoint is a URL chosen by the browser, but it reaches the
server through our API, so any logged-in user can hand us any URL and have our
server POST to it on every notification: a blind SSRF that could probe the
internal network (``https://10.0.0.5:9200/``), read a cloud metadata service
(``http://169.254.169.254/``) or make us flood a third party. The rules, after
reliability.md §1.4:

* https on port 443, no user info, no fragment, at most 2,048 characters, no
  whitespace, control or invisible characters, no backslash (which browsers read
  as a slash and Python does not: one URL, two hosts);
* the host, lowercased and IDNA-encoded (the ASCII form is what is compared, so a
  Cyrillic look-alike of ``fcm.googleapis.com`` never matches), must equal an
  allowlist entry or, for an entry ``*.suffix``, end with ``.suffix``; a host
  ending in a dot (``fcm.googleapis.com.``) is rejected, here and in the allowlist;
* IP literals are refused, in every spelling (``127.1``, ``0x7f000001``,
  ``2130706433``, ``[::ffff:127.0.0.1]``) — except a loopback address listed
  explicitly, for local development and tests: a loopback entry (``localhost``,
  ``127.x.x.x``, ``::1``, optionally with a port) allows that host over plain http
  or https, on any port or only the one listed. Nothing else allows http, another
  port or a loopback host.

The rules run at two checkpoints: :func:`validate_endpoint` when a browser
subscribes (and again before every send, so a row stored before the rules
tightened cannot drive a delivery), and :func:`check_addresses`, which the sender
calls with the DNS answer just before connecting, because a host that passed at
subscribe time can later resolve to a private address (DNS rebinding).

Endpoints are bearer secrets (RFC 8030 §8.3): an :class:`EndpointRejected`
message may name the host, never the path or the query.
"""

from __future__ import annotations

import ipaddress
import re
import unicodedata
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from urllib.parse import SplitResult, quote, urlsplit

DEFAULT_ALLOWED_HOSTS: tuple[str, ...] = (
    "fcm.googleapis.com",
    "*.push.services.mozilla.com",
    "*.notify.windows.com",
    "*.push.apple.com",
)
MAX_ENDPOINT_LENGTH = 2048

_DEFAULT_PORTS = {"http": 80, "https": 443}
# Builds the ValueError for an allowlist entry from a problem such as "names a port".
_Invalid = Callable[[str], ValueError]
# Letters, digits and inner hyphens, 1-63 per label, as a DNS host name (RFC 1123).
_LABEL = r"[a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?"
_HOST_NAME_RE = re.compile(rf"^{_LABEL}(?:\.{_LABEL})*$")
# WHATWG URL: a host whose last label is a number is an IPv4 address, in any base.
_NUMERIC_LABEL_RE = re.compile(r"^(?:[0-9]+|0x[0-9a-f]*)$")
# ASCII characters never valid in an endpoint: controls, space, DEL, and the backslash.
_BAD_ASCII_RE = re.compile(r"[\x00-\x20\x7f\\]")
_PORT_RE = re.compile(r"^[0-9]{1,5}$")
_LOOPBACK_NAMES = frozenset({"localhost"})
# Kept in the URL we rebuild: every printable ASCII character; anything else is percent-encoded.
_PRINTABLE_ASCII = "".join(chr(code) for code in range(0x21, 0x7F))


class EndpointRejected(ValueError):
    """A push endpoint breaks a rule; ``code`` says which, ``str()`` says how, without the path.

    Codes: ``type``, ``length``, ``characters``, ``scheme``, ``userinfo``, ``fragment``,
    ``host``, ``ip_literal``, ``port`` (from :func:`validate_endpoint`) and ``address``
    (from :func:`check_addresses`).
    """

    def __init__(self, message: str, code: str) -> None:
        super().__init__(message)
        self.code = code

    def __reduce__(self) -> tuple[type[EndpointRejected], tuple[str, str]]:
        return (type(self), (str(self), self.code))


@dataclass(frozen=True)
class AllowedHost:
    """One parsed entry of the endpoint host allowlist."""

    #: The entry as written, e.g. ``"*.push.apple.com"`` or ``"127.0.0.1:8443"``.
    pattern: str
    #: ASCII and lowercase; the part after ``*.`` for a wildcard; IPv6 without brackets.
    host: str
    wildcard: bool = False
    loopback: bool = False
    #: Only loopback entries name a port; ``None`` allows any.
    port: int | None = None

    def __str__(self) -> str:
        return self.pattern

    def matches(self, host: str) -> bool:
        """Whether an ASCII, lowercase host (IPv6 without brackets) is allowed by this entry."""
        if self.wildcard:
            return host.endswith("." + self.host)
        return host == self.host


@dataclass(frozen=True)
class Endpoint:
    """A validated push endpoint."""

    #: The normalised URL to POST to (ASCII host, default port dropped).
    url: str
    scheme: str
    #: ASCII and lowercase; IPv6 without brackets.
    host: str
    #: The effective port (443 when the URL names none over https).
    port: int
    #: ``scheme://host[:port]`` with the port only when not the default: the VAPID ``aud``.
    origin: str
    #: Allowed through an explicit loopback entry (local development and tests).
    loopback: bool

    def __repr__(self) -> str:
        # The URL is a bearer secret: the default dataclass repr would print it.
        return f"Endpoint(origin={self.origin!r}, loopback={self.loopback})"


def parse_allowed_hosts(entries: object) -> tuple[AllowedHost, ...]:
    """Parse an allowlist such as :data:`DEFAULT_ALLOWED_HOSTS`; ``ValueError`` names the bad entry."""
    if isinstance(entries, str) or not isinstance(entries, (list, tuple)):
        hint = " (a single string: wrap it in a list)" if isinstance(entries, str) else ""
        raise ValueError(
            f"The allowed endpoint hosts must be a list of host names such as 'fcm.googleapis.com' or "
            f"'*.push.apple.com', not {type(entries).__name__}{hint}."
        )
    if not entries:
        raise ValueError(
            "The allowed endpoint hosts list is empty, so no push endpoint could ever be accepted; "
            f"list the push services to allow, e.g. {list(DEFAULT_ALLOWED_HOSTS)}."
        )
    return tuple(_parse_entry(entry) for entry in entries)


def _parse_entry(entry: object) -> AllowedHost:
    if not isinstance(entry, str):
        raise ValueError(f"Allowed endpoint host entries must be strings, not {type(entry).__name__}.")

    def invalid(problem: str) -> ValueError:
        return ValueError(f"Allowed endpoint host {entry!r} {problem}.")

    if not entry or _BAD_ASCII_RE.search(entry) or not entry.isprintable():
        raise invalid("is empty or contains spaces or control characters")
    if any(char in entry for char in "/?#@") or "://" in entry:
        raise invalid("must be a host name only, without a scheme, a path or user info, e.g. 'fcm.googleapis.com'")
    if entry == "*":
        raise invalid("would allow every host; name the push service's domain, e.g. '*.push.apple.com'")
    host, port = _split_entry_port(entry, invalid)
    if host.startswith("*."):
        return _parse_wildcard(entry, host[2:], port, invalid)
    if "*" in host:
        raise invalid("may use '*' only as a whole first label, as in '*.push.apple.com'")
    ascii_host = _entry_ascii_host(host, invalid)
    address = _entry_ip_address(ascii_host, invalid)
    loopback = ascii_host in _LOOPBACK_NAMES or (address is not None and address.is_loopback)
    if address is not None and not loopback:
        raise invalid(
            "is an IP address; only loopback addresses (127.0.0.1, ::1, or [::1]:8443 with a port) "
            "may be listed, for development"
        )
    if port is not None and not loopback:
        raise invalid("names a port; push services are reached on port 443, and only loopback entries take a port")
    return AllowedHost(
        pattern=entry, host=str(address) if address is not None else ascii_host, loopback=loopback, port=port
    )


def _split_entry_port(entry: str, invalid: _Invalid) -> tuple[str, int | None]:
    if entry.startswith("["):
        host, bracket, rest = entry[1:].partition("]")
        if not bracket or (rest and not rest.startswith(":")):
            raise invalid("is not a valid bracketed IPv6 address; write it as '[::1]' or '[::1]:8443'")
        return host, _entry_port(rest[1:], invalid) if rest else None
    if entry.count(":") == 1:
        host, _, port = entry.partition(":")
        return host, _entry_port(port, invalid)
    return entry, None  # no port, or a bare IPv6 address such as "::1"


def _entry_port(text: str, invalid: _Invalid) -> int:
    if not _PORT_RE.match(text) or not 0 < int(text) < 65536:
        raise invalid("has a port that is not a number from 1 to 65535")
    return int(text)


def _parse_wildcard(entry: str, suffix: str, port: int | None, invalid: _Invalid) -> AllowedHost:
    if not suffix or "*" in suffix:
        raise invalid("would allow every host; name the push service's domain, e.g. '*.push.apple.com'")
    ascii_suffix = _entry_ascii_host(suffix, invalid)
    if ascii_suffix in _LOOPBACK_NAMES or _NUMERIC_LABEL_RE.match(ascii_suffix.rpartition(".")[2]):
        raise invalid("cannot be a wildcard: list the loopback host or address itself")
    if "." not in ascii_suffix:
        raise invalid("is too broad (a single label matches a whole top-level domain); use e.g. '*.push.apple.com'")
    if port is not None:
        raise invalid("names a port; push services are reached on port 443, and only loopback entries take a port")
    return AllowedHost(pattern=entry, host=ascii_suffix, wildcard=True)


def _entry_ascii_host(host: str, invalid: _Invalid) -> str:
    if ":" in host:  # a bare IPv6 address: checked by _entry_ip_address
        return host.lower()
    try:
        ascii_host = _ascii_host(host.lower())
    except ValueError as exc:
        raise invalid(str(exc)) from None
    return ascii_host


def _entry_ip_address(host: str, invalid: _Invalid) -> ipaddress.IPv4Address | ipaddress.IPv6Address | None:
    if ":" not in host and not _NUMERIC_LABEL_RE.match(host.rpartition(".")[2]):
        return None
    try:
        return ipaddress.ip_address(host)
    except ValueError:
        raise invalid("is not an IP address in standard form; write loopback addresses as 127.0.0.1 or ::1") from None


def validate_endpoint(url: object, allowed: Sequence[AllowedHost]) -> Endpoint:
    """Check a push endpoint against the rules and the allowlist; raise :class:`EndpointRejected`."""
    parts = _split(url)
    host, address = _endpoint_host(parts)
    entries = [entry for entry in allowed if entry.matches(host)]
    if not entries:
        if address is not None:
            raise EndpointRejected(
                "The push endpoint's host is an IP address; push services are reached by their host name.",
                "ip_literal",
            )
        listing = ", ".join(str(entry) for entry in allowed if not entry.loopback) or "none"
        raise EndpointRejected(
            f"The push endpoint's host {host} is not an allowed push service (allowed: {listing}); if it is a "
            "push service you trust, add it to the Web Push channel's allowed_endpoint_hosts option.",
            "host",
        )
    scheme = parts.scheme
    port = _port(parts)
    effective_port = port if port is not None else _DEFAULT_PORTS[scheme]
    loopback = entries[0].loopback
    if loopback:
        if not any(entry.port in (None, effective_port) for entry in entries):
            ports = ", ".join(str(entry.port) for entry in entries)
            raise EndpointRejected(
                f"The push endpoint uses port {effective_port} on {host}, but only "
                f"{'ports ' + ports + ' are' if len(entries) > 1 else 'port ' + ports + ' is'} allowed there.",
                "port",
            )
    else:
        if scheme != "https":
            raise EndpointRejected(
                f"The push endpoint for {host} uses plain http; push services are reached over https.", "scheme"
            )
        if effective_port != 443:
            raise EndpointRejected(
                f"The push endpoint for {host} uses port {effective_port}; push services are reached on port 443.",
                "port",
            )
    return _endpoint(parts, host, scheme, effective_port, loopback=loopback)


def _split(url: object) -> SplitResult:
    if not isinstance(url, str):
        raise EndpointRejected(f"The push endpoint must be a URL string, not {type(url).__name__}.", "type")
    if not url:
        raise EndpointRejected("The push endpoint is empty; send the subscription's endpoint URL.", "length")
    if len(url) > MAX_ENDPOINT_LENGTH:
        raise EndpointRejected(
            f"The push endpoint is {len(url)} characters long; at most {MAX_ENDPOINT_LENGTH} are accepted.", "length"
        )
    if _BAD_ASCII_RE.search(url) or (not url.isascii() and any(_is_invisible(char) for char in url)):
        raise EndpointRejected(
            "The push endpoint contains whitespace, a control or invisible character, or a backslash; "
            "send the URL exactly as the browser gave it.",
            "characters",
        )
    try:
        parts = urlsplit(url)
    except ValueError:
        raise EndpointRejected(
            "The push endpoint is not a valid URL (check the brackets around its host).", "host"
        ) from None
    if parts.scheme not in _DEFAULT_PORTS:
        given = f"{parts.scheme}:" if parts.scheme else "one without a scheme"
        raise EndpointRejected(f"The push endpoint must be an https URL, not {given}.", "scheme")
    if "@" in parts.netloc:
        raise EndpointRejected("The push endpoint must not contain user info (user:password@).", "userinfo")
    if "#" in url:
        raise EndpointRejected("The push endpoint must not contain a fragment (#...).", "fragment")
    return parts


def _is_invisible(char: str) -> bool:
    # Categories C (controls, format characters such as zero-width joiners, surrogates,
    # private use, unassigned) and Z (every kind of space and line separator).
    return unicodedata.category(char)[0] in "CZ"


def _endpoint_host(parts: SplitResult) -> tuple[str, ipaddress.IPv4Address | ipaddress.IPv6Address | None]:
    """The ASCII host of an endpoint, and its IP address when it is an IP literal."""
    hostname = parts.hostname
    if not hostname:
        raise EndpointRejected("The push endpoint has no host.", "host")
    if parts.netloc.startswith("["):
        try:
            address = ipaddress.IPv6Address(hostname)
        except ValueError:
            address = None
        if address is None or address.scope_id:
            raise EndpointRejected("The push endpoint's bracketed host is not a plain IPv6 address.", "ip_literal")
        return str(address), address
    try:
        host = _ascii_host(hostname)
    except ValueError as exc:
        raise EndpointRejected(f"The push endpoint's host {hostname!a} {exc}.", "host") from None
    if _NUMERIC_LABEL_RE.match(host.rpartition(".")[2]):
        try:
            address4 = ipaddress.IPv4Address(host)
        except ValueError:
            # 127.1, 0x7f.1, 2130706433: browsers read each as an IPv4 address; never a host name.
            raise EndpointRejected(
                "The push endpoint's host is an IP address; push services are reached by their host name.",
                "ip_literal",
            ) from None
        return str(address4), address4
    return host, None


def _ascii_host(host: str) -> str:
    """The lowercase ASCII (IDNA) form of a host name; ``ValueError`` completes "The host …"."""
    if host.endswith("."):
        raise ValueError("ends with a dot; write it without the final dot")
    if host.isascii():
        ascii_host = host.lower()
    else:
        try:
            ascii_host = host.lower().encode("idna").decode("ascii")
        except UnicodeError:
            raise ValueError("is not a valid international domain name") from None
        # The codec maps full-width letters and dots onto ASCII ones; a host that does not come
        # back unchanged was written with look-alikes of another host's characters.
        if ascii_host.encode("ascii").decode("idna") != host.lower():
            raise ValueError(
                "is written with look-alike or invisible characters that IDNA changes into others "
                "(full-width letters or dots, variation selectors); write the host as the browser gave it"
            )
    if len(ascii_host) > 253 or not _HOST_NAME_RE.match(ascii_host):
        raise ValueError("is not a valid host name (letters, digits, hyphens and dots)")
    return ascii_host


def _port(parts: SplitResult) -> int | None:
    netloc = parts.netloc
    if netloc.endswith("]") or ":" not in netloc:
        return None
    text = netloc.rpartition(":")[2]
    if not text:
        return None  # "host:" means the default port, as in browsers
    if not _PORT_RE.match(text) or not 0 < int(text) < 65536:
        raise EndpointRejected("The push endpoint's port is not a number from 1 to 65535.", "port")
    return int(text)


def _endpoint(parts: SplitResult, host: str, scheme: str, port: int, *, loopback: bool) -> Endpoint:
    url_host = f"[{host}]" if ":" in host else host
    origin = f"{scheme}://{url_host}" if port == _DEFAULT_PORTS[scheme] else f"{scheme}://{url_host}:{port}"
    rest = quote(parts.path, safe=_PRINTABLE_ASCII)
    if parts.query:
        rest += "?" + quote(parts.query, safe=_PRINTABLE_ASCII)
    url = origin + rest
    if len(url) > MAX_ENDPOINT_LENGTH:
        raise EndpointRejected(
            f"The push endpoint is {len(url)} characters long once encoded; "
            f"at most {MAX_ENDPOINT_LENGTH} are accepted.",
            "length",
        )
    return Endpoint(url=url, scheme=scheme, host=host, port=port, origin=origin, loopback=loopback)


def check_addresses(endpoint: Endpoint, addresses: Iterable[str]) -> None:
    """Check the DNS answer for an endpoint's host just before connecting; raise :class:`EndpointRejected`.

    A loopback endpoint must resolve to loopback addresses only; any other endpoint to
    globally routable addresses only. One bad address rejects the whole answer.
    """
    seen = False
    for text in addresses:
        seen = True
        try:
            address = ipaddress.ip_address(text)
        except ValueError:
            raise EndpointRejected(
                f"The push endpoint's host {endpoint.host} resolved to something that is not an IP address.", "address"
            ) from None
        if endpoint.loopback:
            if not _is_loopback(address):
                raise EndpointRejected(
                    f"The push endpoint's host {endpoint.host} is allowed as a loopback host but resolved to "
                    f"{address}, which is not a loopback address.",
                    "address",
                )
            continue
        kind = non_public_kind(address)
        if kind is not None:
            raise EndpointRejected(
                f"The push endpoint's host {endpoint.host} resolved to {address}, which is not a public address "
                f"({kind}); push endpoints must resolve to public addresses only.",
                "address",
            )
    if not seen:
        raise EndpointRejected(f"The push endpoint's host {endpoint.host} resolved to no address.", "address")


def _is_loopback(address: ipaddress.IPv4Address | ipaddress.IPv6Address) -> bool:
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
        return address.ipv4_mapped.is_loopback
    return address.is_loopback


_IPv4 = ipaddress.IPv4Network
_IPv6 = ipaddress.IPv6Network
# Named so a rejection says what the address is; checked in order, before ``is_global``
# (which covers the rest and whose details vary between Python versions).
_NON_PUBLIC_NETWORKS: tuple[tuple[ipaddress.IPv4Network | ipaddress.IPv6Network, str], ...] = (
    (_IPv4("0.0.0.0/8"), "unspecified"),
    (_IPv4("127.0.0.0/8"), "loopback"),
    (_IPv4("10.0.0.0/8"), "private"),
    (_IPv4("172.16.0.0/12"), "private"),
    (_IPv4("192.168.0.0/16"), "private"),
    (_IPv4("169.254.0.0/16"), "link-local (cloud metadata)"),
    (_IPv4("100.64.0.0/10"), "shared (carrier-grade NAT)"),
    (_IPv4("192.0.0.0/24"), "reserved (protocol assignments)"),
    (_IPv4("192.0.2.0/24"), "documentation"),
    (_IPv4("198.51.100.0/24"), "documentation"),
    (_IPv4("203.0.113.0/24"), "documentation"),
    (_IPv4("192.88.99.0/24"), "reserved (6to4 relay)"),
    (_IPv4("198.18.0.0/15"), "reserved (benchmarking)"),
    (_IPv4("224.0.0.0/4"), "multicast"),
    (_IPv4("240.0.0.0/4"), "reserved"),
    (_IPv6("::/128"), "unspecified"),
    (_IPv6("::1/128"), "loopback"),
    (_IPv6("::/96"), "reserved (IPv4-compatible)"),
    (_IPv6("64:ff9b:1::/48"), "private (local NAT64)"),
    (_IPv6("100::/64"), "reserved (discard)"),
    (_IPv6("2001::/32"), "reserved (Teredo)"),
    (_IPv6("2001:db8::/32"), "documentation"),
    (_IPv6("3fff::/20"), "documentation"),
    (_IPv6("fc00::/7"), "private (unique local)"),
    (_IPv6("fe80::/10"), "link-local"),
    (_IPv6("fec0::/10"), "reserved (site-local)"),
    (_IPv6("ff00::/8"), "multicast"),
)


def non_public_kind(address: ipaddress.IPv4Address | ipaddress.IPv6Address) -> str | None:
    """What kind of non-public address this is (``"private"``, ``"loopback"``, …), or ``None`` if public.

    IPv6 addresses that wrap an IPv4 address (IPv4-mapped, 6to4, NAT64) are judged by it.
    """
    if isinstance(address, ipaddress.IPv6Address):
        wrapped = address.ipv4_mapped or address.sixtofour or _nat64(address)
        if wrapped is not None:
            kind = non_public_kind(wrapped)
            return None if kind is None else f"{kind} (wrapped in IPv6)"
    for network, kind in _NON_PUBLIC_NETWORKS:
        if address.version == network.version and address in network:
            return kind
    return None if address.is_global else "reserved"


_NAT64 = _IPv6("64:ff9b::/96")


def _nat64(address: ipaddress.IPv6Address) -> ipaddress.IPv4Address | None:
    if address in _NAT64:
        return ipaddress.IPv4Address(int(address) & 0xFFFFFFFF)
    return None


def origin_of(url: str) -> str:
    """``scheme://host[:port]`` of a URL, safe to log; never raises, never shows the path or user info.

    The port is shown only when it is not the scheme's default. A URL that cannot be
    read gives ``"(invalid URL)"``.
    """
    try:
        parts = urlsplit(url)
        hostname, port = parts.hostname, parts.port
        scheme = parts.scheme
        if not hostname or not scheme.isalnum():
            return "(invalid URL)"
        host = str(ipaddress.IPv6Address(hostname)) if parts.netloc.rpartition("@")[2].startswith("[") else hostname
        if ":" not in host:
            host = host.rstrip(".").encode("idna").decode("ascii")
            if not _HOST_NAME_RE.match(host):
                return "(invalid URL)"
    except (ValueError, UnicodeError):
        return "(invalid URL)"
    url_host = f"[{host}]" if ":" in host else host
    if port is None or port == _DEFAULT_PORTS.get(scheme):
        return f"{scheme}://{url_host}"
    return f"{scheme}://{url_host}:{port}"

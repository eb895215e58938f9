"""The SSRF rules for push endpoints: what a subscriber may make the server POST to."""

from __future__ import annotations

import pickle

import pytest

from django_notify.push.endpoints import (
    DEFAULT_ALLOWED_HOSTS,
    MAX_ENDPOINT_LENGTH,
    Endpoint,
    EndpointRejected,
    check_addresses,
    origin_of,
    parse_allowed_hosts,
    validate_endpoint,
)

DEFAULT = parse_allowed_hosts(DEFAULT_ALLOWED_HOSTS)
FCM = "https://fcm.googleapis.com/fcm/send/dGhpcyBpcyBhIHNlY3JldA:APA91bSecretToken"
SECRET_PATH = "dGhpcyBpcyBhIHNlY3JldA"


def rejected(url: object, allowed=DEFAULT) -> EndpointRejected:
    with pytest.raises(EndpointRejected) as info:
        validate_endpoint(url, allowed)
    return info.value


# --- hostile endpoints -----------------------------------------------------------------

HOSTILE = [
    # Cloud metadata, private ranges and loopback, as IP literals in every spelling.
    ("metadata-ip", "https://169.254.169.254/latest/meta-data", "ip_literal"),
    ("metadata-ip-http", "http://169.254.169.254/latest/meta-data", "ip_literal"),
    ("private-10", "https://10.0.0.5/", "ip_literal"),
    ("private-172-16", "https://172.16.3.4/", "ip_literal"),
    ("private-172-31", "https://172.31.255.255:443/", "ip_literal"),
    ("private-192-168", "https://192.168.1.1/admin", "ip_literal"),
    ("loopback-127-0-0-1", "https://127.0.0.1/", "ip_literal"),
    ("loopback-127-1", "https://127.1/", "ip_literal"),
    ("loopback-hex-whole", "https://0x7f000001/", "ip_literal"),
    ("loopback-hex-dotted", "https://0x7f.1/", "ip_literal"),
    ("loopback-octal", "https://0177.0.0.1/", "ip_literal"),
    ("loopback-decimal", "https://2130706433/", "ip_literal"),
    ("loopback-ipv6", "https://[::1]/", "ip_literal"),
    ("loopback-ipv6-long", "https://[0:0:0:0:0:0:0:1]/", "ip_literal"),
    ("loopback-ipv4-mapped", "https://[::ffff:127.0.0.1]/", "ip_literal"),
    ("link-local-ipv6-zone", "https://[fe80::1%25eth0]/", "ip_literal"),
    ("public-ip", "https://142.250.74.138/fcm/send/x", "ip_literal"),
    ("localhost-not-listed", "https://localhost/", "host"),
    ("localhost-http-not-listed", "http://localhost:8080/", "host"),
    # Scheme and port.
    ("http-to-fcm", "http://fcm.googleapis.com/fcm/send/x", "scheme"),
    ("javascript", "javascript:alert(document.cookie)", "scheme"),
    ("data", "data:text/html,<script>alert(1)</script>", "scheme"),
    ("file", "file:///etc/passwd", "scheme"),
    ("gopher", "gopher://fcm.googleapis.com/", "scheme"),
    ("no-scheme", "fcm.googleapis.com/fcm/send/x", "scheme"),
    ("scheme-relative", "//fcm.googleapis.com/fcm/send/x", "scheme"),
    ("port-8443", "https://fcm.googleapis.com:8443/fcm/send/x", "port"),
    ("port-80", "https://fcm.googleapis.com:80/fcm/send/x", "port"),
    ("port-0", "https://fcm.googleapis.com:0/fcm/send/x", "port"),
    ("port-65536", "https://fcm.googleapis.com:65536/fcm/send/x", "port"),
    ("port-signed", "https://fcm.googleapis.com:+443/x", "port"),
    ("port-arabic-digits", "https://fcm.googleapis.com:\u0664\u0664\u0663/x", "port"),
    # User info, including the host-in-username trick.
    ("userinfo", "https://user:pw@fcm.googleapis.com/fcm/send/x", "userinfo"),
    ("userinfo-host-trick", "https://fcm.googleapis.com@evil.com/fcm/send/x", "userinfo"),
    ("userinfo-empty", "https://@fcm.googleapis.com/x", "userinfo"),
    # Look-alike and suffix hosts.
    ("suffix-appended", "https://fcm.googleapis.com.evil.com/x", "host"),
    ("prefix-glued", "https://evilfcm.googleapis.com/x", "host"),
    ("sibling-google", "https://storage.googleapis.com/x", "host"),
    ("wildcard-bare-apple", "https://push.apple.com/x", "host"),
    ("apple-with-tld", "https://web.push.apple.com.evil/x", "host"),
    ("mozilla-glued", "https://evilpush.services.mozilla.com/x", "host"),
    ("windows-bare", "https://notify.windows.com/x", "host"),
    ("trailing-dot", "https://fcm.googleapis.com./fcm/send/x", "host"),
    ("empty-label", "https://fcm..googleapis.com/x", "host"),
    ("percent-encoded-host", "https://fcm%2egoogleapis.com/x", "host"),
    ("underscore-host", "https://fcm_googleapis.com/x", "host"),
    ("no-host", "https:///fcm/send/x", "host"),
    ("unbalanced-bracket", "https://[::1/x", "host"),
    # IDN look-alikes: compared in ASCII, so they never match.
    ("cyrillic-a", "https://fcm.google\u0430pis.com/x", "host"),
    ("cyrillic-o-in-suffix", "https://web.push.apple.c\u043em/x", "host"),
    ("ideographic-dots", "https://fcm\u3002googleapis\u3002com/x", "host"),
    ("fullwidth-dots", "https://fcm\uff0egoogleapis\uff0ecom/x", "host"),
    ("fullwidth-letters", "https://\uff46\uff43\uff4d.googleapis.com/x", "host"),
    ("punycode-lookalike", "https://fcm.xn--googlepis-5yh.com/x", "host"),
    ("emoji-host", "https://\u2764\ufe0f.googleapis.com/x", "host"),
    ("idna-label-too-long", "https://" + "\u00fc" * 70 + ".push.apple.com/x", "host"),
    # Length, whitespace, control and invisible characters, the backslash.
    ("too-long", "https://fcm.googleapis.com/" + "a" * MAX_ENDPOINT_LENGTH, "length"),
    ("empty", "", "length"),
    ("leading-space", " https://fcm.googleapis.com/x", "characters"),
    ("trailing-newline", "https://fcm.googleapis.com/x\n", "characters"),
    ("crlf-injection", "https://fcm.googleapis.com/x\r\nHost: evil.com", "characters"),
    ("tab-in-host", "https://fcm.google\tapis.com/x", "characters"),
    ("nul", "https://fcm.googleapis.com/x\x00", "characters"),
    ("space-in-path", "https://fcm.googleapis.com/a b", "characters"),
    ("nbsp", "https://fcm.googleapis.com/a\u00a0b", "characters"),
    ("ideographic-space", "https://fcm.googleapis.com/a\u3000b", "characters"),
    ("zero-width-space-in-host", "https://fcm\u200b.googleapis.com/x", "characters"),
    ("soft-hyphen-in-host", "https://fcm.google\u00adapis.com/x", "characters"),
    ("bidi-override", "https://fcm.googleapis.com/\u202ex", "characters"),
    ("backslash-host-split", "https://evil.com\\.web.push.apple.com/x", "characters"),
    ("backslash-path", "https://fcm.googleapis.com\\@evil.com/x", "characters"),
    ("fragment", "https://fcm.googleapis.com/fcm/send/x#frag", "fragment"),
    ("empty-fragment", "https://fcm.googleapis.com/fcm/send/x#", "fragment"),
]


@pytest.mark.parametrize(("url", "code"), [case[1:] for case in HOSTILE], ids=[case[0] for case in HOSTILE])
def test_hostile_endpoints_are_rejected(url, code):
    error = rejected(url)
    assert error.code == code
    assert isinstance(error, ValueError)
    assert str(error).startswith("The push endpoint")


@pytest.mark.parametrize("value", [None, 42, b"https://fcm.googleapis.com/x", ["https://fcm.googleapis.com/x"], {}])
def test_non_strings_are_rejected(value):
    error = rejected(value)
    assert error.code == "type"
    assert type(value).__name__ in str(error)


def test_a_url_of_exactly_the_maximum_length_is_accepted():
    prefix = "https://fcm.googleapis.com/fcm/send/"
    url = prefix + "a" * (MAX_ENDPOINT_LENGTH - len(prefix))
    assert validate_endpoint(url, DEFAULT).url == url
    assert rejected(url + "a").code == "length"


def test_messages_never_show_the_path_or_query():
    for url in (
        f"http://fcm.googleapis.com/fcm/send/{SECRET_PATH}?auth={SECRET_PATH}",
        f"https://fcm.googleapis.com:8443/{SECRET_PATH}",
        f"https://evil.example/{SECRET_PATH}",
        f"https://user:{SECRET_PATH}@fcm.googleapis.com/x",
        f"https://fcm.googleapis.com/{SECRET_PATH}#x",
        f"https://fcm.googleapis.com/{SECRET_PATH}\n",
    ):
        error = rejected(url)
        assert SECRET_PATH not in str(error)
        assert SECRET_PATH not in repr(error)


def test_a_rejected_host_is_named_and_the_fix_is_said():
    message = str(rejected("https://push.example.net/x"))
    assert "push.example.net" in message
    assert "allowed_endpoint_hosts" in message
    assert "fcm.googleapis.com" in message


def test_the_error_survives_pickling_with_its_code():
    error = rejected("http://fcm.googleapis.com/x")
    copy = pickle.loads(pickle.dumps(error))
    assert (type(copy), copy.code, str(copy)) == (EndpointRejected, "scheme", str(error))


# --- genuine endpoints -------------------------------------------------------------------

GENUINE = [
    ("fcm", FCM, "https://fcm.googleapis.com", "fcm.googleapis.com"),
    (
        "mozilla",
        "https://updates.push.services.mozilla.com/wpush/v2/gAAAAABk-secret",
        "https://updates.push.services.mozilla.com",
        "updates.push.services.mozilla.com",
    ),
    (
        "apple",
        "https://web.push.apple.com/QOq7Sxn2secret",
        "https://web.push.apple.com",
        "web.push.apple.com",
    ),
    (
        "wns",
        "https://wns2-by3p.notify.windows.com/w/?token=BQYAAADsecret",
        "https://wns2-by3p.notify.windows.com",
        "wns2-by3p.notify.windows.com",
    ),
]


@pytest.mark.parametrize(("url", "origin", "host"), [case[1:] for case in GENUINE], ids=[case[0] for case in GENUINE])
def test_genuine_endpoints_are_accepted(url, origin, host):
    endpoint = validate_endpoint(url, DEFAULT)
    assert endpoint == Endpoint(url=url, scheme="https", host=host, port=443, origin=origin, loopback=False)
    assert origin_of(url) == origin


def test_an_endpoint_is_normalised():
    endpoint = validate_endpoint("HTTPS://FCM.GoogleAPIs.com:443/fcm/send/AbC?x=Y", DEFAULT)
    assert endpoint.url == "https://fcm.googleapis.com/fcm/send/AbC?x=Y"
    assert (endpoint.host, endpoint.port, endpoint.origin) == ("fcm.googleapis.com", 443, "https://fcm.googleapis.com")


def test_non_ascii_in_the_path_is_percent_encoded():
    assert (
        validate_endpoint("https://fcm.googleapis.com/caf\u00e9", DEFAULT).url == "https://fcm.googleapis.com/caf%C3%A9"
    )


def test_the_length_limit_also_holds_once_encoded():
    url = "https://fcm.googleapis.com/" + "\u00e9" * 500  # 527 characters, 3,027 once percent-encoded
    error = rejected(url)
    assert error.code == "length"
    assert "once encoded" in str(error)


def test_a_normalised_endpoint_validates_to_itself():
    allowed = parse_allowed_hosts([*DEFAULT_ALLOWED_HOSTS, "push.b\u00fccher.example"])
    for url in ("HTTPS://FCM.googleapis.com:443/x/\u00e9?q=1", "https://push.b\u00fccher.example/x"):
        endpoint = validate_endpoint(url, allowed)
        assert validate_endpoint(endpoint.url, allowed) == endpoint


def test_an_international_host_is_compared_and_sent_in_ascii():
    allowed = parse_allowed_hosts(["push.b\u00fccher.example"])
    assert allowed[0].host == "push.xn--bcher-kva.example"
    for url in ("https://push.b\u00fccher.example/x", "https://push.xn--bcher-kva.example/x"):
        endpoint = validate_endpoint(url, allowed)
        assert endpoint.url == "https://push.xn--bcher-kva.example/x"
        assert endpoint.origin == "https://push.xn--bcher-kva.example"


def test_the_repr_of_an_endpoint_shows_only_its_origin():
    endpoint = validate_endpoint(FCM, DEFAULT)
    assert SECRET_PATH not in repr(endpoint)
    assert "https://fcm.googleapis.com" in repr(endpoint)


# --- loopback entries --------------------------------------------------------------------


def test_a_listed_loopback_address_allows_http_on_any_port():
    allowed = parse_allowed_hosts([*DEFAULT_ALLOWED_HOSTS, "127.0.0.1"])
    endpoint = validate_endpoint("http://127.0.0.1:8765/push/tok", allowed)
    assert endpoint == Endpoint(
        url="http://127.0.0.1:8765/push/tok",
        scheme="http",
        host="127.0.0.1",
        port=8765,
        origin="http://127.0.0.1:8765",
        loopback=True,
    )
    assert validate_endpoint("https://127.0.0.1:9/x", allowed).origin == "https://127.0.0.1:9"
    assert validate_endpoint("http://127.0.0.1/x", allowed).port == 80
    # Only that address, in its standard spelling; and never by a wildcard.
    assert rejected("http://127.0.0.2:8765/x", allowed).code == "ip_literal"
    assert rejected("http://127.1:8765/x", allowed).code == "ip_literal"
    assert rejected("http://2130706433:8765/x", allowed).code == "ip_literal"
    assert rejected("http://[::1]:8765/x", allowed).code == "ip_literal"
    assert rejected("http://localhost:8765/x", allowed).code == "host"
    # The loopback entry does not open http or other ports to anyone else.
    assert rejected("http://fcm.googleapis.com/x", allowed).code == "scheme"
    assert rejected("https://fcm.googleapis.com:8765/x", allowed).code == "port"
    assert rejected("https://10.0.0.1/x", allowed).code == "ip_literal"


def test_a_loopback_entry_with_a_port_allows_only_that_port():
    allowed = parse_allowed_hosts(["127.0.0.1:8443"])
    assert validate_endpoint("http://127.0.0.1:8443/x", allowed).port == 8443
    for url in ("http://127.0.0.1:8444/x", "http://127.0.0.1/x", "https://127.0.0.1/x"):
        error = rejected(url, allowed)
        assert error.code == "port"
        assert "8443" in str(error)


def test_several_ports_for_one_loopback_host():
    allowed = parse_allowed_hosts(["127.0.0.1:8001", "127.0.0.1:8002"])
    assert validate_endpoint("http://127.0.0.1:8002/x", allowed).port == 8002
    assert rejected("http://127.0.0.1:8003/x", allowed).code == "port"


@pytest.mark.parametrize(
    ("entry", "url", "origin"),
    [
        ("localhost", "http://localhost:8000/push/x", "http://localhost:8000"),
        ("LOCALHOST:8000", "http://localhost:8000/push/x", "http://localhost:8000"),
        ("::1", "http://[::1]:8000/push/x", "http://[::1]:8000"),
        ("[::1]", "http://[0:0:0:0:0:0:0:1]:8000/x", "http://[::1]:8000"),
        ("[::1]:8000", "http://[::1]:8000/x", "http://[::1]:8000"),
        ("127.8.9.10", "http://127.8.9.10:8000/x", "http://127.8.9.10:8000"),
    ],
    ids=["localhost", "localhost-port-uppercase", "ipv6-bare", "ipv6-bracketed", "ipv6-port", "other-127"],
)
def test_loopback_entry_forms(entry, url, origin):
    endpoint = validate_endpoint(url, parse_allowed_hosts([entry]))
    assert endpoint.loopback
    assert endpoint.origin == origin


# --- the allowlist itself ----------------------------------------------------------------


def test_the_default_allowlist_parses():
    assert [(entry.host, entry.wildcard, entry.loopback) for entry in DEFAULT] == [
        ("fcm.googleapis.com", False, False),
        ("push.services.mozilla.com", True, False),
        ("notify.windows.com", True, False),
        ("push.apple.com", True, False),
    ]
    assert [str(entry) for entry in DEFAULT] == list(DEFAULT_ALLOWED_HOSTS)


BAD_ALLOWLISTS = [
    ("a-string", "fcm.googleapis.com", "wrap it in a list"),
    ("a-dict", {"fcm.googleapis.com": True}, "list of host names"),
    ("none", None, "list of host names"),
    ("empty", [], "empty"),
    ("not-a-string", ["fcm.googleapis.com", 443], "must be strings"),
    ("empty-entry", [""], "empty"),
    ("space", ["fcm.googleapis.com "], "spaces"),
    ("star", ["*"], "every host"),
    ("star-dot", ["*."], "every host"),
    ("star-tld", ["*.com"], "too broad"),
    ("star-inside", ["fcm.*.com"], "whole first label"),
    ("star-glued", ["*fcm.googleapis.com"], "whole first label"),
    ("scheme", ["https://fcm.googleapis.com"], "without a scheme"),
    ("path", ["fcm.googleapis.com/fcm"], "without a scheme"),
    ("userinfo", ["user@fcm.googleapis.com"], "without a scheme"),
    ("port-on-push-service", ["fcm.googleapis.com:443"], "only loopback entries take a port"),
    ("port-on-wildcard", ["*.push.apple.com:443"], "only loopback entries take a port"),
    ("private-ip", ["10.0.0.1"], "only loopback addresses"),
    ("public-ipv6", ["[2001:4860::1]"], "only loopback addresses"),
    ("short-ipv4", ["127.1"], "standard form"),
    ("bad-port", ["127.0.0.1:0"], "1 to 65535"),
    ("port-text", ["localhost:http"], "1 to 65535"),
    ("unbalanced-bracket", ["[::1"], "bracketed"),
    ("wildcard-localhost", ["*.localhost"], "loopback"),
    ("trailing-dot", ["fcm.googleapis.com."], "final dot"),
    ("lookalike-dots", ["fcm\u3002googleapis\u3002com"], "look-alike"),
    ("invalid-name", ["fcm_googleapis.com"], "not a valid host name"),
]


@pytest.mark.parametrize(
    ("entries", "fragment"), [case[1:] for case in BAD_ALLOWLISTS], ids=[case[0] for case in BAD_ALLOWLISTS]
)
def test_bad_allowlists_are_refused_with_a_clear_message(entries, fragment):
    with pytest.raises(ValueError, match=fragment) as info:
        parse_allowed_hosts(entries)
    assert not isinstance(info.value, EndpointRejected)


def test_a_wildcard_entry_matches_subdomains_only():
    allowed = parse_allowed_hosts(["*.push.example.org"])
    assert validate_endpoint("https://a.b.push.example.org/x", allowed).host == "a.b.push.example.org"
    assert rejected("https://push.example.org/x", allowed).code == "host"
    assert rejected("https://evilpush.example.org/x", allowed).code == "host"


# --- send time: the DNS answer ------------------------------------------------------------

ENDPOINT = validate_endpoint(FCM, DEFAULT)
LOOPBACK = validate_endpoint("http://127.0.0.1:8443/x", parse_allowed_hosts(["127.0.0.1"]))

PUBLIC_ANSWERS = [
    ("ipv4", ["142.250.74.138"]),
    ("ipv6", ["2a00:1450:4001:82b::200a"]),
    ("both", ["142.250.74.138", "2a00:1450:4001:82b::200a"]),
    ("ipv4-mapped-public", ["::ffff:8.8.8.8"]),
    ("nat64-public", ["64:ff9b::808:808"]),
]


@pytest.mark.parametrize("addresses", [case[1] for case in PUBLIC_ANSWERS], ids=[case[0] for case in PUBLIC_ANSWERS])
def test_public_addresses_pass(addresses):
    assert check_addresses(ENDPOINT, addresses) is None
    assert check_addresses(ENDPOINT, iter(addresses)) is None


NON_PUBLIC = [
    ("metadata", "169.254.169.254", "link-local"),
    ("link-local-v4", "169.254.1.1", "link-local"),
    ("private-10", "10.1.2.3", "private"),
    ("private-172-16", "172.16.0.1", "private"),
    ("private-172-31", "172.31.255.254", "private"),
    ("private-192-168", "192.168.0.10", "private"),
    ("loopback-v4", "127.0.0.1", "loopback"),
    ("loopback-v4-other", "127.53.0.1", "loopback"),
    ("loopback-v6", "::1", "loopback"),
    ("cgnat", "100.64.0.1", "carrier-grade NAT"),
    ("cgnat-top", "100.127.255.254", "carrier-grade NAT"),
    ("multicast-v4", "224.0.0.251", "multicast"),
    ("multicast-v6", "ff02::1", "multicast"),
    ("reserved-v4", "240.0.0.1", "reserved"),
    ("broadcast", "255.255.255.255", "reserved"),
    ("unspecified-v4", "0.0.0.0", "unspecified"),
    ("this-network", "0.1.2.3", "unspecified"),
    ("unspecified-v6", "::", "unspecified"),
    ("documentation-v4", "192.0.2.1", "documentation"),
    ("documentation-v6", "2001:db8::1", "documentation"),
    ("benchmarking", "198.18.0.1", "benchmarking"),
    ("unique-local-v6", "fd12:3456::1", "unique local"),
    ("link-local-v6", "fe80::1", "link-local"),
    ("link-local-v6-zone", "fe80::1%eth0", "link-local"),
    ("site-local-v6", "fec0::1", "site-local"),
    ("ipv4-mapped-loopback", "::ffff:127.0.0.1", "loopback (wrapped in IPv6)"),
    ("ipv4-mapped-metadata", "::ffff:169.254.169.254", "link-local"),
    ("ipv4-mapped-private", "::ffff:10.0.0.1", "private (wrapped in IPv6)"),
    ("ipv4-compatible", "::127.0.0.1", "IPv4-compatible"),
    ("6to4-private", "2002:a00:1::1", "private (wrapped in IPv6)"),
    ("6to4-loopback", "2002:7f00:1::1", "loopback (wrapped in IPv6)"),
    ("nat64-metadata", "64:ff9b::a9fe:a9fe", "link-local"),
    ("nat64-local-use", "64:ff9b:1::a00:1", "local NAT64"),
    ("teredo", "2001:0:4136:e378:8000:63bf:3fff:fdd2", "Teredo"),
]


@pytest.mark.parametrize(("address", "kind"), [case[1:] for case in NON_PUBLIC], ids=[case[0] for case in NON_PUBLIC])
def test_non_public_addresses_are_rejected(address, kind):
    with pytest.raises(EndpointRejected) as info:
        check_addresses(ENDPOINT, [address])
    assert info.value.code == "address"
    assert kind in str(info.value)
    assert "fcm.googleapis.com" in str(info.value)
    assert SECRET_PATH not in str(info.value)


@pytest.mark.parametrize(
    "addresses",
    [["142.250.74.138", "10.0.0.1"], ["127.0.0.1", "142.250.74.138"], ["2a00:1450::1", "fd00::1"]],
    ids=["public-then-private", "loopback-then-public", "ipv6-public-then-ula"],
)
def test_one_bad_address_rejects_a_mixed_answer(addresses):
    with pytest.raises(EndpointRejected) as info:
        check_addresses(ENDPOINT, addresses)
    assert info.value.code == "address"


@pytest.mark.parametrize(
    ("addresses", "message"),
    [([], "no address"), (["fcm.googleapis.com"], "not an IP address"), ([""], "not an IP address")],
    ids=["empty-answer", "a-name", "blank"],
)
def test_answers_that_are_not_addresses_are_rejected(addresses, message):
    with pytest.raises(EndpointRejected, match=message) as info:
        check_addresses(ENDPOINT, addresses)
    assert info.value.code == "address"


@pytest.mark.parametrize("addresses", [["127.0.0.1"], ["::1"], ["127.0.0.1", "::1"], ["::ffff:127.0.0.1"]])
def test_a_loopback_endpoint_accepts_loopback_addresses(addresses):
    assert check_addresses(LOOPBACK, addresses) is None


@pytest.mark.parametrize(
    "addresses",
    [["142.250.74.138"], ["10.0.0.1"], ["127.0.0.1", "169.254.169.254"], ["::1", "2a00:1450::1"], []],
    ids=["public", "private", "loopback-then-metadata", "loopback-then-public-v6", "empty"],
)
def test_a_loopback_endpoint_rejects_anything_else(addresses):
    with pytest.raises(EndpointRejected) as info:
        check_addresses(LOOPBACK, addresses)
    assert info.value.code == "address"


def test_a_host_allowed_by_name_cannot_resolve_to_loopback():
    endpoint = validate_endpoint("http://localhost:8000/x", parse_allowed_hosts(["localhost"]))
    assert check_addresses(endpoint, ["127.0.0.1", "::1"]) is None
    with pytest.raises(EndpointRejected, match="not a loopback address"):
        check_addresses(endpoint, ["192.168.1.20"])


# --- origin_of -----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("url", "origin"),
    [
        (FCM, "https://fcm.googleapis.com"),
        ("https://user:pw@FCM.googleapis.com:443/x?y#z", "https://fcm.googleapis.com"),
        ("http://127.0.0.1:80/x", "http://127.0.0.1"),
        ("http://127.0.0.1:8443/x", "http://127.0.0.1:8443"),
        ("https://example.org:8443/x", "https://example.org:8443"),
        ("http://[::1]:8000/x", "http://[::1]:8000"),
        ("https://push.b\u00fccher.example/x", "https://push.xn--bcher-kva.example"),
        ("not a url", "(invalid URL)"),
        ("", "(invalid URL)"),
        ("https://fcm.googleapis.com:99999/x", "(invalid URL)"),
        ("https://[::1/x", "(invalid URL)"),
        ("https://evil.com\r\nX: y/", "(invalid URL)"),
    ],
    ids=[
        "fcm",
        "userinfo-and-default-port",
        "http-default-port",
        "http-other-port",
        "https-other-port",
        "ipv6",
        "idn",
        "text",
        "empty",
        "port-out-of-range",
        "bad-bracket",
        "crlf",
    ],
)
def test_origin_of(url, origin):
    assert origin_of(url) == origin

"""Origins and Host headers: normalisation at load, parsing and matching on the request path."""

from __future__ import annotations

import pytest

from corsproxy.policy.origins import (
    MAX_HOST_LENGTH,
    host_allowed,
    normalise_origin,
    own_origin,
    parse_host,
    referer_origin,
)

DEFAULT_HOSTS = (("localhost", None), ("127.0.0.1", None), ("::1", None))


def row(id_: str, *values: object) -> object:
    return pytest.param(*values, id=id_)


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        row("already-serialised", "http://localhost:3000", "http://localhost:3000"),
        row("scheme-and-host-lower-cased", "HTTP://LOCALHOST:3000", "http://localhost:3000"),
        row("https-default-port-dropped", "https://app.example.com:443", "https://app.example.com"),
        row("http-default-port-dropped", "http://app.example.com:80", "http://app.example.com"),
        row("other-scheme-default-port-kept",
            "http://app.example.com:443", "http://app.example.com:443"),
        row("leading-zero-port", "http://localhost:03000", "http://localhost:3000"),
        row("ipv4", "http://127.0.0.1:5173", "http://127.0.0.1:5173"),
        row("ipv6-bracketed", "http://[::1]:3000", "http://[::1]:3000"),
        row("ipv6-compressed-like-browsers", "http://[0:0:0:0:0:0:0:1]", "http://[::1]"),
        row("ipv6-upper-case", "https://[2001:DB8::1]:443", "https://[2001:db8::1]"),
    ],
)
def test_normalise_origin(text: str, expected: str) -> None:
    """A configured origin becomes the exact string a browser sends in Origin."""
    assert normalise_origin(text) == expected


@pytest.mark.parametrize(
    ("text", "message"),
    [
        row("wildcard-hints-regex", "https://*.example.com",
            r"wildcards are not allowed inside an origin; use allow_origin_regex: "
            r"'^https://[a-z0-9-]+\.example\.com$'"),
        row("wildcard-with-port", "https://*.example.com:8443",
            r"'^https://[a-z0-9-]+\.example\.com:8443$'"),
        row("trailing-slash", "https://app.example.com/", "remove the trailing slash"),
        row("path", "https://app.example.com/app", "no path; remove '/app'"),
        row("query", "https://app.example.com?x=1", "no query; remove '?x=1'"),
        row("fragment", "https://app.example.com#top", "no fragment; remove '#top'"),
        row("userinfo", "https://user:pw@app.example.com", "no user info; remove 'user:pw@'"),
        row("null", "null", "sandboxed iframes and file:// pages of every site"),
        row("null-upper", "NULL", "lets any site in"),
        row("star-alone", "*", "only entry"),
        row("no-scheme", "localhost:3000", "scheme://host[:port]"),
        row("ftp-scheme", "ftp://files.example.com", "scheme 'ftp' is not http or https"),
        row("ws-scheme", "ws://localhost:3000", "not http or https"),
        row("empty-host", "http://", "needs a host"),
        row("port-without-host", "http://:3000", "needs a host"),
        row("port-too-big", "http://localhost:99999", "port"),
        row("port-zero", "http://localhost:0", "port 0"),
        row("port-not-a-number", "http://localhost:abc", "port 'abc'"),
        row("port-empty", "http://localhost:", "port ''"),
        row("space-in-host", "http://local host", "bad host"),
        row("ipv6-without-brackets", "http://::1", "needs brackets"),
        row("ipv6-not-an-address", "http://[1:2:3:4:5:6:7:8:9]", "not an IPv6 address"),
        row("unclosed-bracket", "http://[::1", "unclosed"),
        row("non-ascii-host", "https://bücher.example", "bad host"),
        row("over-long", "http://" + "a" * 2000, "at most"),
    ],
)
def test_normalise_origin_refuses(text: str, message: str) -> None:
    """What is not scheme://host[:port] is refused with a message that says how to fix it."""
    with pytest.raises(ValueError) as caught:
        normalise_origin(text)
    assert message in str(caught.value)


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        row("name-and-port", "localhost:8080", ("localhost", 8080)),
        row("name-only", "example.com", ("example.com", None)),
        row("upper-case-lowered", "LOCALHOST:80", ("localhost", 80)),
        row("ipv4-and-port", "127.0.0.1:3000", ("127.0.0.1", 3000)),
        row("ipv6-bracketed-with-port", "[::1]:8080", ("::1", 8080)),
        row("ipv6-bracketed", "[::1]", ("::1", None)),
        row("ipv6-bare", "::1", ("::1", None)),
        row("ipv6-bare-full", "2001:DB8::1", ("2001:db8::1", None)),
        row("underscore-name", "my_host.local:1", ("my_host.local", 1)),
    ],
)
def test_parse_host(value: str, expected: tuple[str, int | None]) -> None:
    """Host values split into (lower-case host without brackets, port or None)."""
    assert parse_host(value) == expected


@pytest.mark.parametrize(
    "value",
    [
        row("empty", ""),
        row("space", " "),
        row("inner-space", "local host"),
        row("crlf", "localhost\r\nX-Evil: 1"),
        row("nul", "localhost\x00"),
        row("empty-port", "localhost:"),
        row("port-not-a-number", "localhost:abc"),
        row("port-too-big", "localhost:99999"),
        row("port-zero", "localhost:0"),
        row("port-signed", "localhost:+80"),
        row("port-unicode-digits", "localhost:８０"),
        row("empty-host-with-port", ":8080"),
        row("unclosed-bracket", "[::1"),
        row("stray-close-bracket", "::1]"),
        row("text-after-bracket", "[::1]x"),
        row("empty-port-after-bracket", "[::1]:"),
        row("empty-brackets", "[]"),
        row("name-in-brackets", "[localhost]"),
        row("two-colons-not-ipv6", "host:80:90"),
        row("userinfo", "user@localhost"),
        row("path", "localhost/admin"),
        row("non-ascii", "bücher.example"),
        row("over-long", "a" * (MAX_HOST_LENGTH + 1)),
    ],
)
def test_parse_host_refuses_junk(value: str) -> None:
    """Anything malformed raises ValueError, checked after a length bound."""
    with pytest.raises(ValueError):
        parse_host(value)


@pytest.mark.parametrize(
    ("allowed", "allow_any", "host", "expected"),
    [
        row("listed-name-any-port", DEFAULT_HOSTS, False, "localhost:8080", True),
        row("listed-name-no-port", DEFAULT_HOSTS, False, "localhost", True),
        row("listed-case-insensitive", DEFAULT_HOSTS, False, "LOCALHOST:8080", True),
        row("listed-ipv4", DEFAULT_HOSTS, False, "127.0.0.1:8080", True),
        row("listed-ipv6-bracketed", DEFAULT_HOSTS, False, "[::1]:8080", True),
        row("ipv6-bare-host-header", DEFAULT_HOSTS, False, "::1", False),
        row("rebinding-name", DEFAULT_HOSTS, False, "evil.example.com:8080", False),
        row("suffix-attack", DEFAULT_HOSTS, False, "localhost.evil.com", False),
        row("trailing-dot-is-other-name", DEFAULT_HOSTS, False, "localhost.:8080", False),
        row("missing-host", DEFAULT_HOSTS, False, None, False),
        row("missing-host-even-with-any", (), True, None, False),
        row("malformed-even-with-any", (), True, "local host", False),
        row("empty-even-with-any", (), True, "", False),
        row("any-host", (), True, "evil.example.com", True),
        row("entry-port-matches", (("localhost", 8080),), False, "localhost:8080", True),
        row("entry-port-differs", (("localhost", 8080),), False, "localhost:9090", False),
        row("entry-port-needs-port", (("localhost", 8080),), False, "localhost", False),
    ],
)
def test_host_allowed(
    allowed: tuple[tuple[str, int | None], ...], allow_any: bool, host: str | None, expected: bool
) -> None:
    """The DNS-rebinding guard: only listed hosts; missing or malformed Host never passes."""
    assert host_allowed(allowed, allow_any, host) is expected


@pytest.mark.parametrize(
    ("scheme", "host", "expected"),
    [
        row("http-with-port", "http", "localhost:8080", "http://localhost:8080"),
        row("http-default-port", "http", "localhost:80", "http://localhost"),
        row("https-default-port", "https", "proxy.test:443", "https://proxy.test"),
        row("https-other-port", "https", "proxy.test:8443", "https://proxy.test:8443"),
        row("no-port", "http", "localhost", "http://localhost"),
        row("lower-cased", "HTTP", "LOCALHOST:3000", "http://localhost:3000"),
        row("ipv6", "http", "[::1]:8080", "http://[::1]:8080"),
        row("websocket-scheme", "ws", "localhost:8080", "http://localhost:8080"),
        row("malformed", "http", "local host", None),
        row("bare-ipv6", "http", "::1", None),
    ],
)
def test_own_origin(scheme: str, host: str, expected: str | None) -> None:
    """The proxy's own origin is what a browser would send for a page it served."""
    assert own_origin(scheme, host) == expected


@pytest.mark.parametrize(("referer", "expected"), [
    pytest.param("http://localhost:3000/page?q=1", "http://localhost:3000", id="path-and-query-dropped"),
    pytest.param("HTTPS://App.Example.com:443/", "https://app.example.com", id="serialised-like-origin"),
    pytest.param("http://[::1]:8080/x", "http://[::1]:8080", id="ipv6"),
    pytest.param("http://localhost:3000", "http://localhost:3000", id="origin-only"),
    pytest.param(None, None, id="absent"),
    pytest.param("about:client", None, id="not-http"),
    pytest.param("/relative", None, id="relative"),
    pytest.param("http://user@evil.test/", None, id="user-info"),
    pytest.param("http://ex ample/", None, id="bad-host"),
    pytest.param("http://" + "a" * 9000, None, id="over-long"),
])
def test_referer_origin(referer, expected) -> None:
    """A Referer's origin is serialised as an Origin header is; anything unusable is None."""
    assert referer_origin(referer) == expected

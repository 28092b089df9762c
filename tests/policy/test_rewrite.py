"""Header rewriting: request headers on the way up, response headers on the way back."""

from __future__ import annotations

import pytest

from corsproxy.policy.rewrite import (
    HOP_BY_HOP,
    ISOLATION,
    client_response_headers,
    domain_matches,
    foreign_cookie_domains,
    response_problem,
    rewrite_location,
    strip_cookie_domain,
    upstream_request_headers,
)
from tests.routes_factory import make_route

API = make_route("/api", "https://api.example.com/v1")
PROXY = "http://localhost:8080"
CORS = (("Access-Control-Allow-Origin", "http://localhost:3000"), ("Vary", "Origin"))


def row(id_: str, *values: object) -> object:
    return pytest.param(*values, id=id_)


def up(headers, route=API, *, client_ip="127.0.0.1", proxy_host="localhost:8080", scheme="http"):
    return upstream_request_headers(
        headers, route, client_ip=client_ip, proxy_host=proxy_host, scheme=scheme,
    )


def down(headers, route=API, *, cors_headers=CORS, proxy_origin=PROXY):
    return client_response_headers(headers, route, cors_headers=cors_headers, proxy_origin=proxy_origin)


NOSNIFF = ("X-Content-Type-Options", "nosniff")


def values(headers, name: str) -> list[str]:
    return [value for key, value in headers if key.lower() == name.lower()]


# --- on the way up ----------------------------------------------------------------------


@pytest.mark.parametrize("name", sorted(HOP_BY_HOP))
def test_request_hop_by_hop_dropped(name: str) -> None:
    """Every hop-by-hop header is dropped from the upstream request, whatever its case."""
    out = up([(name.title(), "x"), ("Accept", "*/*")])
    assert values(out, name) == []
    assert values(out, "Accept") == ["*/*"]


@pytest.mark.parametrize(
    ("headers", "dropped", "kept"),
    [
        row("connection-listed", [("Connection", "X-Secret"), ("X-Secret", "1"), ("X-Kept", "2")],
            ["X-Secret", "Connection"], ["X-Kept"]),
        row("connection-list-case-and-spaces", [("connection", " keep-alive ,  X-A,x-b"), ("X-A", "1"),
            ("X-B", "2"), ("X-C", "3")], ["X-A", "X-B"], ["X-C"]),
        row("several-connection-headers", [("Connection", "X-A"), ("Connection", "X-B"), ("X-A", "1"),
            ("X-B", "2")], ["X-A", "X-B"], []),
        row("passed-as-sent", [("Origin", "http://localhost:3000"), ("Cookie", "a=1"),
            ("Authorization", "Bearer t"), ("Accept-Encoding", "gzip, br"), ("Content-Length", "12")],
            [], ["Origin", "Cookie", "Authorization", "Accept-Encoding", "Content-Length"]),
        row("transfer-encoding-dropped-content-length-kept", [("Transfer-Encoding", "chunked"),
            ("Content-Length", "5")], ["Transfer-Encoding"], ["Content-Length"]),
    ],
)
def test_request_connection_rules(headers, dropped: list[str], kept: list[str]) -> None:
    """Names listed in Connection are dropped too; end-to-end headers pass untouched."""
    out = up(headers)
    for name in dropped:
        assert values(out, name) == [], name
    for name in kept:
        assert values(out, name) == values(headers, name), name


@pytest.mark.parametrize(
    ("headers", "client_ip", "expected"),
    [
        row("new-chain", [], "10.0.0.7", "10.0.0.7"),
        row("chain-appended", [("X-Forwarded-For", "203.0.113.9")], "10.0.0.7", "203.0.113.9, 10.0.0.7"),
        row("multiple-headers-joined", [("X-Forwarded-For", "1.1.1.1, 2.2.2.2"), ("x-forwarded-for", "3.3.3.3")],
            "::1", "1.1.1.1, 2.2.2.2, 3.3.3.3, ::1"),
        row("no-client-ip-keeps-chain", [("X-Forwarded-For", "1.1.1.1")], "", "1.1.1.1"),
        row("unsafe-chain-entry-skipped", [("X-Forwarded-For", "1.1.1.1\r\nX-Evil: 1")], "10.0.0.7", "10.0.0.7"),
    ],
)
def test_request_x_forwarded_for(headers, client_ip: str, expected: str) -> None:
    """X-Forwarded-For keeps the client's chain and appends the client address, as one header."""
    assert values(up(headers, client_ip=client_ip), "X-Forwarded-For") == [expected]


def test_request_x_forwarded_proto_and_host_replaced() -> None:
    """X-Forwarded-Proto and -Host are the proxy's own, replacing what the client sent."""
    out = up([("X-Forwarded-Proto", "https"), ("X-Forwarded-Host", "evil"), ("X-Forwarded-Host", "x")],
             proxy_host="localhost:8080", scheme="http")
    assert values(out, "X-Forwarded-Proto") == ["http"]
    assert values(out, "X-Forwarded-Host") == ["localhost:8080"]


@pytest.mark.parametrize(
    ("upstream", "change_origin", "expected"),
    [
        row("change-origin-default-port", "https://api.example.com/v1", True, ["api.example.com"]),
        row("change-origin-with-port", "http://api.internal:9000", True, ["api.internal:9000"]),
        row("change-origin-ipv6", "http://[::1]:9000", True, ["[::1]:9000"]),
        row("change-origin-ipv6-default-port", "https://[2001:db8::1]", True, ["[2001:db8::1]"]),
        row("keep-client-host", "https://api.example.com/v1", False, ["localhost:8080"]),
    ],
)
def test_request_host(upstream: str, change_origin: bool, expected: list[str]) -> None:
    """Host is the upstream's (brackets for IPv6) with change_origin, else the client's."""
    route = make_route("/api", upstream, change_origin=change_origin)
    out = up([("Host", "localhost:8080"), ("Accept", "*/*")], route)
    assert values(out, "Host") == expected


def test_request_host_without_client_host() -> None:
    """Without change_origin and without a client Host, no Host is invented."""
    route = make_route("/api", "https://api.example.com", change_origin=False)
    assert values(up([("Accept", "*/*")], route), "Host") == []


@pytest.mark.parametrize(
    ("options", "headers", "expected"),
    [
        row("remove", {"remove_headers": frozenset({"cookie"})}, [("Cookie", "a=1")], {"Cookie": []}),
        row("set-replaces-any-case", {"set_headers": (("Authorization", "Bearer server"),)},
            [("authorization", "Bearer client"), ("AUTHORIZATION", "x")], {"Authorization": ["Bearer server"]}),
        row("set-adds", {"set_headers": (("X-Api-Key", "k"),)}, [], {"X-Api-Key": ["k"]}),
        row("remove-then-set", {"remove_headers": frozenset({"x-api-key"}), "set_headers": (("X-Api-Key", "k"),)},
            [("X-Api-Key", "client")], {"X-Api-Key": ["k"]}),
        row("remove-forwarded-header", {"remove_headers": frozenset({"x-forwarded-for"})},
            [("X-Forwarded-For", "1.1.1.1")], {"X-Forwarded-For": []}),
        row("set-overrides-forwarded-header", {"set_headers": (("X-Forwarded-Proto", "https"),)},
            [], {"X-Forwarded-Proto": ["https"]}),
        row("set-overrides-host", {"set_headers": (("Host", "vhost.internal"),)},
            [("Host", "localhost:8080")], {"Host": ["vhost.internal"]}),
        row("set-value-with-newline-dropped", {"set_headers": (("X-Token", "a\r\nX-Evil: 1"),)},
            [], {"X-Token": []}),
    ],
)
def test_request_route_headers(options: dict, headers, expected: dict) -> None:
    """Route request_headers apply last: remove first, then set (replacing same-name headers)."""
    out = up(headers, make_route("/api", "https://api.example.com", **options))
    for name, want in expected.items():
        assert values(out, name) == want, name


@pytest.mark.parametrize("bad", ["a\rb", "a\nb", "a\x00b", "a\r\nX-Evil: 1"])
def test_request_unsafe_value_dropped(bad: str) -> None:
    """A value containing CR, LF or NUL is dropped, never forwarded."""
    out = up([("X-Note", bad), ("X-Fine", "ok")], proxy_host="localhost:8080")
    assert values(out, "X-Note") == []
    assert values(out, "X-Fine") == ["ok"]


def test_request_input_not_mutated_and_order_kept() -> None:
    """The input is left alone; kept headers keep their order and duplicates."""
    headers = [("Accept", "a"), ("X-Dup", "1"), ("X-Dup", "2"), ("Host", "localhost:8080")]
    snapshot = list(headers)
    out = up(headers)
    assert headers == snapshot
    assert [pair for pair in out if pair[0] in ("Accept", "X-Dup")] == headers[:3]


# --- on the way back --------------------------------------------------------------------


@pytest.mark.parametrize(
    ("headers", "dropped"),
    [
        row("hop-by-hop", [("Connection", "close"), ("Keep-Alive", "timeout=5"), ("Transfer-Encoding", "chunked"),
            ("Upgrade", "h2c"), ("Trailer", "X-Sum"), ("Proxy-Authenticate", "Basic")],
            ["Connection", "Keep-Alive", "Transfer-Encoding", "Upgrade", "Trailer", "Proxy-Authenticate"]),
        row("connection-listed", [("Connection", "X-Internal"), ("X-Internal", "1")], ["X-Internal"]),
        row("listed-before-connection-with-keep-alive", [("X-Internal", "1"), ("Connection", "Keep-Alive, X-Internal")],
            ["X-Internal", "Connection"]),
        row("upstream-aca-headers", [("Access-Control-Allow-Origin", "*"), ("access-control-allow-credentials", "true"),
            ("ACCESS-CONTROL-EXPOSE-HEADERS", "X-Secret"), ("Access-Control-Max-Age", "99999")],
            ["Access-Control-Allow-Credentials", "Access-Control-Expose-Headers", "Access-Control-Max-Age"]),
    ],
)
def test_response_headers_dropped(headers, dropped: list[str]) -> None:
    """Hop-by-hop, Connection-listed and every upstream Access-Control-* header are dropped."""
    out = down(headers + [("Content-Type", "application/json")])
    for name in dropped:
        assert values(out, name) == [], name
    assert values(out, "Access-Control-Allow-Origin") == ["http://localhost:3000"]


def test_response_aca_dropped_without_cors() -> None:
    """Upstream Access-Control-* headers go also when the proxy adds none (no Origin)."""
    out = down([("Access-Control-Allow-Origin", "*"), ("Content-Type", "text/plain")], cors_headers=())
    assert out == [("Content-Type", "text/plain"), NOSNIFF]


def test_response_entity_headers_untouched() -> None:
    """Content-Length, Content-Type and Content-Encoding pass as sent; no Content-Type is added."""
    headers = [("Content-Encoding", "br"), ("Content-Length", "42"), ("Content-Type", "text/html; charset=utf-8")]
    assert down(headers, cors_headers=())[:3] == headers
    assert values(down([("Content-Length", "0")]), "Content-Type") == []


def test_response_cors_headers_appended() -> None:
    """The proxy's CORS headers come after the upstream's, in the order given."""
    cors = (("Access-Control-Allow-Origin", "http://localhost:3000"), ("Access-Control-Allow-Credentials", "true"),
            ("Access-Control-Expose-Headers", "X-Total"))
    out = down([("Content-Type", "text/plain")], cors_headers=cors)
    assert out == [("Content-Type", "text/plain"), *cors, NOSNIFF]


@pytest.mark.parametrize(
    ("upstream", "cors", "expected"),
    [
        row("no-vary-anywhere", [], (), []),
        row("cors-vary-only", [], (("Vary", "Origin"),), [("Vary", "Origin")]),
        row("upstream-vary-only", [("Vary", "Accept-Encoding")], (), [("Vary", "Accept-Encoding")]),
        row("merged-upstream-first", [("Vary", "Accept-Encoding")], (("Vary", "Origin"),),
            [("Vary", "Accept-Encoding, Origin")]),
        row("duplicate-case-insensitive", [("Vary", "origin, Accept")], (("Vary", "Origin"),),
            [("Vary", "origin, Accept")]),
        row("several-upstream-varies-one-header", [("Vary", "Accept"), ("vary", "Accept-Language, accept")],
            (("Vary", "Origin"),), [("Vary", "Accept, Accept-Language, Origin")]),
        row("preflight-tokens", [("Vary", "Accept-Encoding")],
            (("Vary", "Origin, Access-Control-Request-Method, Access-Control-Request-Headers"),),
            [("Vary", "Accept-Encoding, Origin, Access-Control-Request-Method, Access-Control-Request-Headers")]),
        row("star-wins", [("Vary", "Accept, *")], (("Vary", "Origin"),), [("Vary", "*")]),
        row("empty-tokens-ignored", [("Vary", " , Accept,,")], (("Vary", "Origin"),), [("Vary", "Accept, Origin")]),
        row("empty-upstream-vary-dropped", [("Vary", "")], (), []),
        row("connection-listed-vary-dropped", [("Vary", "Cookie"), ("Connection", "keep-alive, Vary")],
            (("Vary", "Origin"),), [("Vary", "Origin")]),
    ],
)
def test_response_vary_merge(upstream, cors, expected) -> None:
    """Upstream and CORS Vary tokens become ONE Vary header: upstream first, deduplicated, `*` wins."""
    out = down(upstream, cors_headers=cors)
    assert [pair for pair in out if pair[0].lower() == "vary"] == expected


def test_response_vary_placed_at_first_upstream_vary() -> None:
    """The merged Vary sits where the first upstream Vary was; else it is appended before CORS headers."""
    out = down([("Content-Type", "text/plain"), ("Vary", "Accept"), ("ETag", "1"), ("Vary", "Cookie")])
    assert out == [("Content-Type", "text/plain"), ("Vary", "Accept, Cookie, Origin"), ("ETag", "1"),
                   ("Access-Control-Allow-Origin", "http://localhost:3000"), NOSNIFF]
    out = down([("Content-Type", "text/plain")])
    assert out == [("Content-Type", "text/plain"), ("Vary", "Origin"),
                   ("Access-Control-Allow-Origin", "http://localhost:3000"), NOSNIFF]


def test_response_location_and_cookie_rewritten() -> None:
    """client_response_headers rewrites Location and strips Set-Cookie Domain, keeping both cookies."""
    out = down([("Location", "https://api.example.com/v1/orders/7"),
                ("Set-Cookie", "a=1; Domain=api.example.com; Path=/"), ("Set-Cookie", "b=2")], cors_headers=())
    assert out == [("Location", "http://localhost:8080/api/orders/7"), ("Set-Cookie", "a=1; Path=/"),
                   ("Set-Cookie", "b=2"), NOSNIFF, ISOLATION]   # no Content-Type: sandboxed


@pytest.mark.parametrize("sent", ["nosniff", "NoSniff"])
def test_response_nosniff_added_unless_upstream_set_it(sent: str) -> None:
    """X-Content-Type-Options: nosniff is added once, and an upstream's own value is kept as sent."""
    assert values(down([("Content-Type", "application/json")]), "X-Content-Type-Options") == ["nosniff"]
    out = down([("x-content-type-options", sent)], cors_headers=())
    assert [pair for pair in out if pair[0].lower() == "x-content-type-options"] == [("x-content-type-options", sent)]


# --- Location ---------------------------------------------------------------------------

NO_STRIP = make_route("/api", "https://api.example.com/v1", strip_prefix=False)
ROOT_BASE = make_route("/api", "http://127.0.0.1:9000")
CATCH_ALL = make_route("/", "https://api.example.com/v1")
WS = make_route("/ws", "wss://api.example.com/v1")
IPV6 = make_route("/api", "http://[::1]:9000/v1")


@pytest.mark.parametrize(
    ("route", "value", "expected"),
    [
        row("absolute-strip", API, "https://api.example.com/v1/orders/7", "http://localhost:8080/api/orders/7"),
        row("absolute-base-alone", API, "https://api.example.com/v1", "http://localhost:8080/api"),
        row("absolute-base-slash", API, "https://api.example.com/v1/", "http://localhost:8080/api/"),
        row("query-and-fragment-kept", API, "https://api.example.com/v1/x?next=/v1/y&a=%2F#top",
            "http://localhost:8080/api/x?next=/v1/y&a=%2F#top"),
        row("explicit-default-port", API, "https://api.example.com:443/v1/x", "http://localhost:8080/api/x"),
        row("host-case-insensitive", API, "HTTPS://API.Example.COM/v1/x", "http://localhost:8080/api/x"),
        row("no-strip", NO_STRIP, "https://api.example.com/v1/api/orders", "http://localhost:8080/api/orders"),
        row("no-strip-base-alone", NO_STRIP, "https://api.example.com/v1", "http://localhost:8080/"),
        row("empty-base", ROOT_BASE, "http://127.0.0.1:9000/login?x=1", "http://localhost:8080/api/login?x=1"),
        row("empty-base-no-path", ROOT_BASE, "http://127.0.0.1:9000", "http://localhost:8080/api/"),
        row("catch-all-prefix", CATCH_ALL, "https://api.example.com/v1/x", "http://localhost:8080/x"),
        row("ws-upstream-http-location", WS, "https://api.example.com/v1/x", "http://localhost:8080/ws/x"),
        row("ipv6-upstream", IPV6, "http://[::1]:9000/v1/x", "http://localhost:8080/api/x"),
        row("scheme-relative", API, "//api.example.com/v1/x", "http://localhost:8080/api/x"),
        row("path-absolute-stays-relative", API, "/v1/orders?page=2", "/api/orders?page=2"),
        row("path-absolute-empty-base", ROOT_BASE, "/login#f", "/api/login#f"),
        row("path-absolute-no-strip", NO_STRIP, "/v1/api/x", "/api/x"),
        row("prefix-re-encoded", make_route("/café", "https://api.example.com"), "/x", "/caf%C3%A9/x"),
        row("other-host", API, "https://login.example.com/v1/x", "https://login.example.com/v1/x"),
        row("other-port", API, "https://api.example.com:8443/v1/x", "https://api.example.com:8443/v1/x"),
        row("other-scheme", API, "http://api.example.com/v1/x", "http://api.example.com/v1/x"),
        row("not-under-base", API, "https://api.example.com/v10/x", "https://api.example.com/v10/x"),
        row("path-absolute-not-under-base", API, "/static/x", "/static/x"),
        row("relative-reference", API, "orders/7", "orders/7"),
        row("dot-relative-reference", API, "../x", "../x"),
        row("query-only", API, "?page=2", "?page=2"),
        row("userinfo-left-alone", API, "https://u@api.example.com/v1/x", "https://u@api.example.com/v1/x"),
        row("bad-port-left-alone", API, "https://api.example.com:99999/v1/x", "https://api.example.com:99999/v1/x"),
        row("other-url-scheme", API, "mailto://api.example.com/v1", "mailto://api.example.com/v1"),
        row("not-a-url", API, "hello world", "hello world"),
    ],
)
def test_rewrite_location(route, value: str, expected: str) -> None:
    """A Location on the upstream under its base path points back through the proxy; others are kept."""
    assert rewrite_location(value, route, PROXY) == expected


@pytest.mark.parametrize(("value", "expected"), [
    row("double-slash", "/v1//evil.test/x", "/%2Fevil.test/x"),
    row("backslash", "/v1/\\evil.test/x", "/%5Cevil.test/x"),
    row("tab-between-slashes", "/v1/\t/evil.test/x", "/%09/evil.test/x"),
    row("absolute-double-slash-is-a-path", "https://api.example.com/v1//evil.test",
        "http://localhost:8080//evil.test"),
])
def test_rewritten_location_never_names_another_host(value: str, expected: str) -> None:
    """With a route / to base /v1, the rewrite never turns a path into //host or /\\host (an open
    redirect); the encoded form routes back to the same upstream path."""
    assert rewrite_location(value, CATCH_ALL, PROXY) == expected


@pytest.mark.parametrize(("status", "headers", "expected"), [
    row("plain-ok", 200, [("X-A", "a\tb")], None),
    row("control-in-value", 200, [("X-Bad", "a\x01b")], "X-Bad"),
    row("cr-in-value", 200, [("X-Bad", "a\rb")], "X-Bad"),
    row("escape-in-value", 200, [("X-Bad", "\x1b]0;title\x07")], "X-Bad"),
    row("delete-in-value", 200, [("X-Ok", "caf\u00e9"), ("X-Bad", "a\x7fb")], "X-Bad"),
    row("obs-text-ok", 200, [("X-A", "caf\udce9"), ("X-B", "\u00e9t\u00e9")], None),
    row("unasked-101", 101, [], "101"),
])
def test_response_problem(status, headers, expected) -> None:
    """An upstream answer with a control character in a header, or a 101 nobody asked for, is refused."""
    problem = response_problem(status, headers)
    assert (problem is None) if expected is None else (expected in problem)


# --- Set-Cookie -------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        row("middle", "sid=abc; Domain=api.example.com; Path=/; HttpOnly", "sid=abc; Path=/; HttpOnly"),
        row("last", "sid=abc; Path=/; Domain=.example.com", "sid=abc; Path=/"),
        row("lower-case-no-space", "sid=abc;domain=example.com;Secure", "sid=abc;Secure"),
        row("spaces-around", "sid=abc; DOMAIN = Example.COM ; Secure", "sid=abc; Secure"),
        row("expires-with-comma-kept", "sid=abc; Expires=Wed, 21 Oct 2037 07:28:00 GMT; Domain=example.com; SameSite=Lax",
            "sid=abc; Expires=Wed, 21 Oct 2037 07:28:00 GMT; SameSite=Lax"),
        row("no-domain-unchanged", "sid=abc; Path=/; Max-Age=60", "sid=abc; Path=/; Max-Age=60"),
        row("domain-in-value-kept", "domain=example.com; Path=/", "domain=example.com; Path=/"),
        row("domain-text-in-path-kept", "a=1; Path=/domain; Secure", "a=1; Path=/domain; Secure"),
        row("two-domains", "a=1; Domain=api.example.com; Domain=example.com", "a=1"),
        row("empty-domain-is-host-only", "a=1; Domain=; Path=/", "a=1; Path=/"),
        # RFC 6265 §5.3 step 6: a browser rejects these, so they must not land on localhost.
        row("other-site-dropped", "toss=1; Domain=other.example.org; Path=/", None),
        row("sibling-dropped", "toss=1; Domain=www.example.com", None),
        row("suffix-not-on-a-dot-dropped", "toss=1; Domain=i.example.com", None),
        row("one-of-two-domains-foreign-dropped", "a=1; Domain=example.com; Domain=evil.test", None),
    ],
)
def test_strip_cookie_domain(value: str, expected: str | None) -> None:
    """A Domain that domain-matches the upstream's host goes (the rest stays byte for byte); a
    cookie whose Domain the browser would reject is dropped."""
    assert strip_cookie_domain(value, "api.example.com") == expected


@pytest.mark.parametrize(("host", "domain", "expected"), [
    row("ip-matches-itself", "127.0.0.1", "127.0.0.1", True),
    row("ip-never-a-suffix", "127.0.0.1", "0.0.1", False),
    row("leading-dot", "api.example.com", ".EXAMPLE.com", True),
    row("parent-of-host-only", "example.com", "api.example.com", False),
])
def test_domain_matches(host: str, domain: str, expected: bool) -> None:
    """RFC 6265 §5.1.3 domain-match, for the Domain attribute."""
    assert domain_matches(host, domain) is expected


def test_foreign_cookie_dropped_from_the_response_and_named() -> None:
    """A tossed cookie is removed from the response; foreign_cookie_domains names its Domain."""
    headers = [("Set-Cookie", "ok=1; Domain=api.example.com"), ("Set-Cookie", "toss=1; Domain=evil.test")]
    assert values(down(headers, cors_headers=()), "Set-Cookie") == ["ok=1"]
    assert foreign_cookie_domains(headers, "api.example.com") == ["evil.test"]


@pytest.mark.parametrize(("content_type", "sandboxed"), [
    row("html", "text/html; charset=utf-8", True),
    row("html-upper-case", "TEXT/HTML", True),
    row("xhtml", "application/xhtml+xml", True),
    row("svg", "image/svg+xml", True),
    row("any-xml-type", "application/atom+xml", True),
    row("missing", None, True),
    row("no-subtype", "text/", True),
    row("not-a-mime-type", "html", True),
    row("empty", "", True),
    row("json", "application/json", False),
    row("javascript", "text/javascript", False),
    row("image", "image/png", False),
    row("plain-text", "text/plain", False),
])
def test_response_a_document_or_an_unknown_type_is_sandboxed(content_type: str | None, sandboxed: bool) -> None:
    """The route-isolation sandbox covers every type a browser may render as a document,
    including a missing or unparseable Content-Type the browser would sniff."""
    sent = [] if content_type is None else [("Content-Type", content_type)]
    assert (ISOLATION in down(sent)) is sandboxed
    assert ISOLATION not in down(sent, make_route("/api", "https://api.example.com/v1", isolate=False))

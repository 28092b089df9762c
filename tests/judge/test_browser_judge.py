"""The browser judge (corsproxy.judge.fetch_request, corsproxy.judge.browser, corsproxy.judge.remedies): the Fetch
Standard's CORS rules as tables, no I/O."""

from __future__ import annotations

import pytest

from corsproxy.judge import browser, fetch_request, remedies
from corsproxy.judge.remedies import Fix

O = "http://localhost:3000"


def row(id_: str, *values: object):
    return pytest.param(*values, id=id_)


# --- when does a browser preflight? --------------------------------------------------------------

PREFLIGHT = [
    row("get-no-headers", "GET", [], None),
    row("head", "HEAD", [], None),
    row("post-form", "POST", [("Content-Type", "application/x-www-form-urlencoded")], None),
    row("post-multipart", "POST", [("Content-Type", "multipart/form-data; boundary=abc")], None),
    row("post-text-plain-charset", "POST", [("Content-Type", "text/plain;charset=UTF-8")], None),
    row("content-type-case-and-space", "POST", [("content-type", "Text/Plain ; charset=x")], None),
    row("lower-case-get-normalised", "get", [], None),
    row("put", "PUT", [], "method 'PUT'"),
    row("patch-lower-stays-lower", "patch", [], "method 'patch'"),
    row("delete", "DELETE", [], "method 'DELETE'"),
    row("json", "POST", [("Content-Type", "application/json")], "'application/json'"),
    row("content-type-not-a-mime", "POST", [("Content-Type", "text")], "not a MIME type"),
    row("content-type-quote-byte", "POST", [("Content-Type", 'multipart/form-data; boundary="x"')], "CORS-unsafe"),
    row("authorization", "GET", [("Authorization", "Bearer x")], "'Authorization'"),
    row("custom-header", "GET", [("X-Requested-With", "XMLHttpRequest")], "'X-Requested-With'"),
    row("accept-ok", "GET", [("Accept", "application/json, text/*;q=0.5")], None),
    row("accept-unsafe-brace", "GET", [("Accept", "{json}")], "CORS-unsafe request-header byte"),
    row("accept-unsafe-colon", "GET", [("Accept", "a:b")], "CORS-unsafe"),
    row("accept-language-ok", "GET", [("Accept-Language", "en-US,en;q=0.9")], None),
    row("accept-language-underscore", "GET", [("Accept-Language", "en_US")], "'_'"),
    row("content-language-slash", "GET", [("Content-Language", "en/us")], "'/'"),
    row("range-start-end", "GET", [("Range", "bytes=0-99")], None),
    row("range-open-end", "GET", [("Range", "bytes=100-")], None),
    row("range-unit-case", "GET", [("Range", "Bytes=1-2")], None),
    row("range-suffix", "GET", [("Range", "bytes=-500")], "single range"),
    row("range-two", "GET", [("Range", "bytes=0-1,5-6")], "single range"),
    row("range-space", "GET", [("Range", "bytes= 0-1")], "single range"),
    row("range-backwards", "GET", [("Range", "bytes=9-1")], "single range"),
    row("value-over-128", "GET", [("Accept", "a" * 129)], "128 bytes"),
    row("value-exactly-128", "GET", [("Accept", "a" * 128)], None),
    row("total-over-1024", "GET", [("Accept", "a" * 128)] * 8 + [("Accept-Language", "en")], "1024-byte"),
    row("total-exactly-1024", "GET", [("Accept", "a" * 128)] * 8, None),
    row("forbidden-cookie-ignored", "GET", [("Cookie", "a=b")], None),
    row("forbidden-sec-ignored", "GET", [("Sec-Fetch-Mode", "cors")], None),
]


@pytest.mark.parametrize(("method", "headers", "expect"), PREFLIGHT)
def test_needs_preflight(method: str, headers: list, expect: str | None) -> None:
    """A preflight happens exactly when the Fetch Standard says, and the reason names the cause."""
    reasons = fetch_request.needs_preflight(method, headers)
    if expect is None:
        assert reasons == []
    else:
        assert any(expect in reason for reason in reasons), reasons


ACRH = [
    row("sorted-lower-unique", [("X-B", "1"), ("x-a", "2"), ("X-B", "3")], "x-a,x-b"),
    row("safelisted-left-out", [("Accept", "*/*"), ("X-Key", "k")], "x-key"),
    row("unsafe-content-type-listed", [("Content-Type", "application/json"), ("Authorization", "x")],
        "authorization,content-type"),
    row("over-total-lists-safelisted", [("Accept", "a" * 128)] * 9, "accept"),
    row("forbidden-never-listed", [("Cookie", "a"), ("X-A", "1")], "x-a"),
    row("none", [("Accept", "*/*")], ""),
]


@pytest.mark.parametrize(("headers", "expect"), ACRH)
def test_acrh_value(headers: list, expect: str) -> None:
    """Access-Control-Request-Headers is the sorted, lower-cased, unique unsafe names joined by ','."""
    assert fetch_request.acrh_value(headers) == expect


@pytest.mark.parametrize(("method", "expect"), [
    row("get", "get", "GET"), row("put", "put", "PUT"), row("delete", "Delete", "DELETE"),
    row("patch-kept", "patch", "patch"), row("custom-kept", "Purge", "Purge"),
])
def test_normalize_method(method: str, expect: str) -> None:
    """fetch() upper-cases only DELETE, GET, HEAD, OPTIONS, POST, PUT."""
    assert fetch_request.normalize_method(method) == expect


@pytest.mark.parametrize(("name", "value", "forbidden"), [
    row("cookie", "Cookie", "a", True), row("host", "host", "x", True), row("sec-prefix", "Sec-X", "1", True),
    row("proxy-prefix", "Proxy-Foo", "1", True), row("override-trace", "X-HTTP-Method-Override", "TRACE", True),
    row("override-put", "X-HTTP-Method-Override", "PUT", False), row("custom", "X-Key", "1", False),
])
def test_forbidden_header(name: str, value: str, forbidden: bool) -> None:
    """Forbidden request-header names are ones a page cannot set."""
    assert fetch_request.is_forbidden_header(name, value) is forbidden
    assert bool(fetch_request.forbidden_header_notes([(name, value)])) is forbidden


@pytest.mark.parametrize(("method", "expect"), [
    row("trace", "TRACE", "forbidden method"), row("connect", "connect", "forbidden method"),
    row("not-token", "GE T", "not a valid"), row("ok", "PATCH", None),
])
def test_method_problem(method: str, expect: str | None) -> None:
    """fetch() refuses forbidden methods and non-tokens."""
    problem = fetch_request.method_problem(method)
    assert (problem is None) if expect is None else (expect in problem)


# --- the CORS check ------------------------------------------------------------------------------

ACAO = "Access-Control-Allow-Origin"
ACAC = "Access-Control-Allow-Credentials"

CORS_CHECK = [
    row("exact-origin", [(ACAO, O)], False, True, None),
    row("star", [(ACAO, "*")], False, True, None),
    row("exact-with-credentials", [(ACAO, O), (ACAC, "true")], True, True, None),
    row("missing", [], False, False, "no Access-Control-Allow-Origin"),
    row("wrong-origin", [(ACAO, "http://localhost:5173")], False, False, "not the page's origin"),
    row("case-differs", [(ACAO, "http://LOCALHOST:3000")], False, False, "letter case"),
    row("trailing-slash", [(ACAO, O + "/")], False, False, "trailing slash"),
    row("star-with-credentials", [(ACAO, "*"), (ACAC, "true")], True, False, "'*', which a browser never accepts"),
    row("two-headers", [(ACAO, O), (ACAO, O)], False, False, "2 Access-Control-Allow-Origin headers"),
    row("two-headers-star", [(ACAO, "*"), (ACAO, "*")], False, False, "accepts exactly one"),
    row("comma-joined", [(ACAO, f"{O}, https://app.example")], False, False, "a list"),
    row("credentials-missing-acac", [(ACAO, O)], True, False, "Access-Control-Allow-Credentials is missing"),
    row("credentials-acac-True", [(ACAO, O), (ACAC, "True")], True, False, "exactly"),
    row("no-credentials-acac-ignored", [(ACAO, O), (ACAC, "nope")], False, True, None),
    row("header-name-case", [("access-control-allow-origin", O)], False, True, None),
]


@pytest.mark.parametrize(("headers", "credentials", "allowed", "expect"), CORS_CHECK)
def test_judge_cors(headers: list, credentials: bool, allowed: bool, expect: str | None) -> None:
    """The Fetch "CORS check": one exact ACAO (or * without credentials), ACAC exactly true."""
    verdict = browser.judge_cors(200, headers, O, credentials)
    assert verdict.allowed is allowed
    if expect is None:
        assert verdict.reasons == () and verdict.fixes == ()
    else:
        assert any(expect in reason for reason in verdict.reasons), verdict.reasons
        assert Fix(ACAO, O) in verdict.fixes or Fix(ACAC, "true") in verdict.fixes
        assert verdict.remedy is not None and verdict.remedy.origin == O


def test_judge_cors_fix_for_credentials_names_both_headers() -> None:
    """`*` with credentials: the fix is the exact origin plus ACAC: true, and the remedy allows
    that origin with credentials."""
    verdict = browser.judge_cors(200, [(ACAO, "*")], O, True)
    assert verdict.fixes == (Fix(ACAO, O), Fix(ACAC, "true"))
    assert verdict.remedy == remedies.Remedy(O, True, "GET", ())


# --- the preflight -------------------------------------------------------------------------------

ACAM, ACAH = "Access-Control-Allow-Methods", "Access-Control-Allow-Headers"
OK = [(ACAO, O)]

PREFLIGHT_RESPONSES = [
    row("ok-put", 204, OK + [(ACAM, "GET, PUT")], "PUT", [], False, True, None),
    row("ok-200", 200, OK + [(ACAM, "PUT")], "PUT", [], False, True, None),
    row("status-404", 404, OK + [(ACAM, "PUT")], "PUT", [], False, False, "answered 404"),
    row("status-405", 405, [], "PUT", [], False, False, "answered 405"),
    row("redirect", 302, OK + [("Location", "/elsewhere")], "PUT", [], False, False, "redirect"),
    row("no-acao", 204, [(ACAM, "PUT")], "PUT", [], False, False, "no Access-Control-Allow-Origin"),
    row("method-missing", 204, OK + [(ACAM, "GET, POST")], "PUT", [], False, False, "does not include 'PUT'"),
    row("no-acam", 204, OK, "DELETE", [], False, False, "no Access-Control-Allow-Methods"),
    row("method-case-sensitive", 204, OK + [(ACAM, "patch")], "PATCH", [], False, False, "byte for byte"),
    row("safelisted-method-needs-no-listing", 204, OK + [(ACAH, "x-a")], "GET", ["x-a"], False, True, None),
    row("method-star", 204, OK + [(ACAM, "*")], "PATCH", [], False, True, None),
    row("method-star-credentials", 204, OK + [(ACAC, "true"), (ACAM, "*")], "PATCH", [], True, False,
        "no wildcard for a request with credentials"),
    row("acam-not-a-list", 204, OK + [(ACAM, "GET PUT")], "PUT", [], False, False, "not a comma-separated list"),
    row("header-listed-case-insensitive", 204, OK + [(ACAH, "X-Api-Key")], "GET", ["x-api-key"], False, True, None),
    row("header-missing", 204, OK + [(ACAH, "content-type")], "GET", ["x-api-key"], False, False,
        "does not include 'x-api-key'"),
    row("no-acah", 204, OK, "GET", ["content-type"], False, False, "no Access-Control-Allow-Headers"),
    row("authorization-missing", 204, OK + [(ACAH, "content-type")], "GET", ["authorization", "content-type"],
        False, False, "does not include 'authorization'"),
    row("header-star", 204, OK + [(ACAH, "*")], "GET", ["x-a", "content-type"], False, True, None),
    row("header-star-not-authorization", 204, OK + [(ACAH, "*")], "GET", ["authorization"], False, False,
        "Chromium is laxer"),
    row("header-star-plus-authorization", 204, OK + [(ACAH, "*, Authorization")], "GET", ["authorization"],
        False, True, None),
    row("header-star-credentials", 204, OK + [(ACAC, "true"), (ACAH, "*")], "GET", ["x-a"], True, False,
        "no wildcard for a request with credentials"),
    row("star-origin-credentials", 204, [(ACAO, "*"), (ACAC, "true")], "GET", ["x-a"], True, False, "never accepts"),
    row("empty-list-elements", 204, OK + [(ACAH, ", x-a,,")], "GET", ["x-a"], False, True, None),
    row("acah-split-over-two-headers", 204, OK + [(ACAH, "x-a"), (ACAH, "x-b")], "GET", ["x-a", "x-b"],
        False, True, None),
]


@pytest.mark.parametrize(("status", "headers", "method", "names", "credentials", "allowed", "expect"),
                         PREFLIGHT_RESPONSES)
def test_judge_preflight(status: int, headers: list, method: str, names: list, credentials: bool,
                         allowed: bool, expect: str | None) -> None:
    """Fetch "CORS-preflight fetch": ok status, CORS check, allowed methods and headers."""
    verdict = browser.judge_preflight(status, headers, O, method, names, credentials)
    assert verdict.allowed is allowed, verdict.reasons
    if expect is None:
        assert verdict.reasons == ()
    else:
        assert any(expect in reason for reason in verdict.reasons), verdict.reasons
        assert verdict.fixes and verdict.remedy is not None


@pytest.mark.parametrize(("status", "headers", "method", "names", "fix"), [
    row("status", 404, OK + [(ACAM, "PUT")], "PUT", [], Fix(None, "204")),
    row("method", 204, OK, "PUT", [], Fix(ACAM, "PUT")),
    row("headers", 204, OK + [(ACAM, "PUT")], "PUT", ["authorization", "x-a"], Fix(ACAH, "authorization, x-a")),
    row("origin", 204, [(ACAM, "PUT")], "PUT", [], Fix(ACAO, O)),
])
def test_judge_preflight_fix(status: int, headers: list, method: str, names: list, fix: Fix) -> None:
    """A failed preflight names the exact header and value the server must send."""
    verdict = browser.judge_preflight(status, headers, O, method, names, False)
    assert fix in verdict.fixes


def test_wildcard_authorization_is_a_named_departure() -> None:
    """`*` not covering Authorization is judged by the standard and named as Chromium's departure."""
    verdict = browser.judge_preflight(204, OK + [(ACAH, "*")], O, "GET", ["authorization"], False)
    assert verdict.departures == (browser.CHROMIUM_WILDCARD_AUTHORIZATION,)
    assert browser.judge_preflight(204, OK + [(ACAH, "x")], O, "GET", ["x"], False).departures == ()


def test_the_remedy_names_method_headers_and_upstream() -> None:
    """The remedy holds what the snippets must allow: the method (normalised), the asked header
    names (lower-case, sorted, once each) and the upstream."""
    assert remedies.remedy(O, True, "purge", ["X-B", "authorization", "x-b"], upstream="http://127.0.0.1:9000") == \
        remedies.Remedy(O, True, "purge", ("authorization", "x-b"), "http://127.0.0.1:9000")
    assert remedies.remedy(O, False, "put", []).method == "PUT"


# --- redirects -----------------------------------------------------------------------------------

REDIRECTS = [
    row("same-origin-hop", 302, "http://api.test/b", "GET", "http://api.test/b", "GET", O),
    row("relative", 307, "/b?x=1", "PUT", "http://api.test/b?x=1", "PUT", O),
    row("cross-origin-taints", 302, "http://other.test/b", "GET", "http://other.test/b", "GET", "null"),
    row("post-302-becomes-get", 302, "/b", "POST", "http://api.test/b", "GET", O),
    row("post-307-stays-post", 307, "/b", "POST", "http://api.test/b", "POST", O),
    row("put-303-becomes-get", 303, "/b", "PUT", "http://api.test/b", "GET", O),
]


@pytest.mark.parametrize(("status", "location", "method", "target", "next_method", "next_origin"), REDIRECTS)
def test_redirect(status: int, location: str, method: str, target: str, next_method: str,
                  next_origin: str) -> None:
    """A redirect that passes the CORS check is followed (§4.4): where, with which method and Origin."""
    verdict = browser.judge_cors(status, [(ACAO, "*"), ("Location", location)], O, False,
                                 url="http://api.test/a", method=method)
    assert verdict.allowed
    assert verdict.redirect == browser.Redirect(status, target, next_method, next_origin)
    assert target in verdict.notes[0] and f"--origin {next_origin}" in verdict.notes[0]


@pytest.mark.parametrize(("headers", "expect"), [
    row("no-acao-on-redirect", [("Location", "/b")], "no Access-Control-Allow-Origin"),
    row("location-with-credentials", [(ACAO, "*"), ("Location", "http://u:p@api.test/b")], "user:password"),
    row("location-not-http", [(ACAO, "*"), ("Location", "ftp://api.test/b")], "not http(s)"),
    # Regression: a bad port (or two Locations joined by ", ") raised ValueError out of probe.
    row("location-bad-port", [(ACAO, "*"), ("Location", "http://api.test:abc/b")], "not a valid URL"),
    row("location-bad-ipv6", [(ACAO, "*"), ("Location", "http://[::1/b")], "not a valid URL"),
])
def test_redirect_blocked(headers: list, expect: str) -> None:
    """A redirect is blocked when it fails the CORS check or goes somewhere a browser will not."""
    verdict = browser.judge_cors(302, headers, O, False, url="http://api.test/a")
    assert not verdict.allowed
    assert any(expect in reason for reason in verdict.reasons), verdict.reasons


@pytest.mark.parametrize(("headers", "credentials", "hidden"), [
    row("custom-hidden", [(ACAO, O), ("X-Total", "3"), ("Content-Type", "x")], False, "x-total"),
    row("exposed", [(ACAO, O), ("X-Total", "3"), ("Access-Control-Expose-Headers", "X-Total")], False, None),
    row("star-exposes", [(ACAO, O), ("X-Total", "3"), ("Access-Control-Expose-Headers", "*")], False, None),
    row("star-not-with-credentials", [(ACAO, O), (ACAC, "true"), ("X-Total", "3"),
                                      ("Access-Control-Expose-Headers", "*")], True, "x-total"),
])
def test_hidden_response_headers_note(headers: list, credentials: bool, hidden: str | None) -> None:
    """An allowed response notes which headers JavaScript still cannot read."""
    notes = browser.judge_cors(200, headers, O, credentials).notes
    assert (notes == ()) if hidden is None else (hidden in notes[0])


@pytest.mark.parametrize(("url", "origin"), [
    row("default-port", "http://Example.COM:80/x", "http://example.com"),
    row("https-port", "https://a.test:8443/", "https://a.test:8443"),
    row("ipv6", "http://[::1]:8080/", "http://[::1]:8080"),
])
def test_url_origin(url: str, origin: str) -> None:
    """The origin of a URL is serialised as browsers send it."""
    assert browser.url_origin(url) == origin

"""Routing: path normalisation, traversal refusal, longest-prefix match and the upstream path."""

from __future__ import annotations

import pytest

from corsproxy.errors import PathEscape
from corsproxy.policy import routing
from corsproxy.policy.routing import (
    MAX_PATH_LENGTH,
    RouteTable,
    encode_path,
    remove_dot_segments,
    resolve,
)
from tests.routes_factory import make_route

API = make_route("/api", "https://api.example.com/v1")
API_V2 = make_route("/api/v2", "https://v2.example.com")
ADMIN = make_route("/admin", "http://admin.internal:8081/root")
ROOT = make_route("/", "http://web.internal:5173")
ROOTED = make_route("/root-up", "https://api.example.com")                   # base_path ""
NO_STRIP = make_route("/api", "https://api.example.com/v1", strip_prefix=False)
ROOT_BASE = make_route("/", "https://api.example.com/v1")

TABLE = RouteTable([API, API_V2, ADMIN, ROOTED])
WITH_ROOT = RouteTable([API, API_V2, ADMIN, ROOT])
ONLY_API = RouteTable([API])


def row(id_: str, *values: object) -> object:
    return pytest.param(*values, id=id_)


@pytest.mark.parametrize(
    ("table", "path", "expected"),
    [
        row("exact-prefix", TABLE, "/api", API),
        row("below-prefix", TABLE, "/api/orders/1", API),
        row("trailing-slash", TABLE, "/api/", API),
        row("segment-boundary-not-apix", TABLE, "/apix", None),
        row("segment-boundary-not-apix-below", TABLE, "/apix/orders", None),
        row("longest-prefix-wins", TABLE, "/api/v2/orders", API_V2),
        row("longest-prefix-exact", TABLE, "/api/v2", API_V2),
        row("shorter-prefix-for-v20", TABLE, "/api/v20", API),
        row("no-route", TABLE, "/other", None),
        row("root-no-route", TABLE, "/", None),
        row("catch-all-root", WITH_ROOT, "/", ROOT),
        row("catch-all-anything", WITH_ROOT, "/other/deep/path", ROOT),
        row("catch-all-apix", WITH_ROOT, "/apix", ROOT),
        row("catch-all-loses-to-prefix", WITH_ROOT, "/admin/x", ADMIN),
        row("deep-path-beyond-longest-prefix", TABLE, "/api/v2/" + "a/" * 500, API_V2),
        row("empty-segments", TABLE, "/api//x", API),
        row("not-absolute", TABLE, "api/x", None),
    ],
)
def test_match(table: RouteTable, path: str, expected: object) -> None:
    """match() picks the longest prefix on a segment boundary, `/` matching everything."""
    assert table.match(path) is expected


@pytest.mark.parametrize(
    ("table", "raw", "route", "path", "upstream"),
    [
        row("strip-prefix", TABLE, "/api/orders", API, "/api/orders", "/v1/orders"),
        row("prefix-alone", TABLE, "/api", API, "/api", "/v1"),
        row("prefix-trailing-slash", TABLE, "/api/", API, "/api/", "/v1/"),
        row("trailing-slash-kept", TABLE, "/api/orders/", API, "/api/orders/", "/v1/orders/"),
        row("empty-base-prefix-alone", TABLE, "/root-up", ROOTED, "/root-up", "/"),
        row("empty-base-below", TABLE, "/root-up/x", ROOTED, "/root-up/x", "/x"),
        row("no-strip", RouteTable([NO_STRIP]), "/api/orders", NO_STRIP, "/api/orders", "/v1/api/orders"),
        row("no-strip-prefix-alone", RouteTable([NO_STRIP]), "/api", NO_STRIP, "/api", "/v1/api"),
        row("root-prefix-whole-path", RouteTable([ROOT_BASE]), "/x/y", ROOT_BASE, "/x/y", "/v1/x/y"),
        row("root-prefix-root-path", RouteTable([ROOT_BASE]), "/", ROOT_BASE, "/", "/v1/"),
        row("root-prefix-empty-base", WITH_ROOT, "/x", ROOT, "/x", "/x"),
        row("longest-prefix-wins", TABLE, "/api/v2/orders", API_V2, "/api/v2/orders", "/orders"),
        row("dot-dot-inside-prefix", TABLE, "/api/a/../b", API, "/api/b", "/v1/b"),
        row("dot-dot-back-to-prefix", TABLE, "/api/a/..", API, "/api/", "/v1/"),
        row("single-dot-removed", TABLE, "/api/./b/.", API, "/api/b/", "/v1/b/"),
        row("dot-dot-at-root-route", WITH_ROOT, "/a/../b", ROOT, "/b", "/b"),
        row("triple-dot-is-a-name", TABLE, "/api/.../x", API, "/api/.../x", "/v1/.../x"),
        row("dotted-names-kept", TABLE, "/api/..a/b..", API, "/api/..a/b..", "/v1/..a/b.."),
        row("empty-segments-kept", TABLE, "/api//x", API, "/api//x", "/v1//x"),
        row("double-encoded-dots-literal", TABLE, "/api/%252e%252e/x", API, "/api/%2e%2e/x",
            "/v1/%252e%252e/x"),
        row("encoded-slash-matched-decoded-forwarded-as-sent", TABLE, "/api/a%2fb", API, "/api/a/b", "/v1/a%2fb"),
        row("gitlab-style-id-stays-one-segment", TABLE, "/api/projects/group%2Fproject%2Frepo", API,
            "/api/projects/group/project/repo", "/v1/projects/group%2Fproject%2Frepo"),
        row("backslash-as-slash-forwarded-as-sent", TABLE, "/api/a\\b", API, "/api/a/b", "/v1/a\\b"),
        row("encoded-backslash-as-slash-forwarded-as-sent", TABLE, "/api/a%5Cb", API, "/api/a/b", "/v1/a%5Cb"),
        row("reserved-escapes-forwarded-as-sent", TABLE, "/api/a%3Bb%2Cc%3Dd%26e%2Bf%40g%3Ah%2A", API,
            "/api/a;b,c=d&e+f@g:h*", "/v1/a%3Bb%2Cc%3Dd%26e%2Bf%40g%3Ah%2A"),
        row("escaped-prefix-forwarded-minus-prefix", TABLE, "/%61pi/x%2Fy", API, "/api/x/y", "/v1/x%2Fy"),
        row("prefix-across-an-escape-normalised", TABLE, "/api%2Fx", API, "/api/x", "/v1/x"),
        row("dots-mean-normalised-re-encoded", TABLE, "/api/a%2Fb/../c%2Fd", API, "/api/a/c/d", "/v1/a/c/d"),
        row("space-re-encoded", TABLE, "/api/a%20b", API, "/api/a b", "/v1/a%20b"),
        row("percent-re-encoded", TABLE, "/api/100%25", API, "/api/100%", "/v1/100%25"),
        row("utf8-escapes-as-sent", TABLE, "/api/caf%c3%a9", API, "/api/café", "/v1/caf%c3%a9"),
        row("raw-non-ascii-encoded", TABLE, "/api/café", API, "/api/café", "/v1/caf%C3%A9"),
        row("pchar-kept-literal", TABLE, "/api/a:b@c!$&'()*+,;=-._~", API,
            "/api/a:b@c!$&'()*+,;=-._~", "/v1/a:b@c!$&'()*+,;=-._~"),
        row("unreserved-escape-as-sent", TABLE, "/api/%7Euser", API, "/api/~user", "/v1/%7Euser"),
        row("encoded-question-mark-stays-path", TABLE, "/api/a%3Fb", API, "/api/a?b", "/v1/a%3Fb"),
        row("encoded-hash-stays-path", TABLE, "/api/a%23b", API, "/api/a#b", "/v1/a%23b"),
        row("query-not-part-of-path", TABLE, "/api/x?next=../../admin", API, "/api/x", "/v1/x"),
        row("query-with-encoded-dots-ignored", TABLE, "/api/x?a=%2e%2e%00", API, "/api/x", "/v1/x"),
        row("upstream-with-port-and-base", TABLE, "/admin/users", ADMIN, "/admin/users", "/root/users"),
    ],
)
def test_resolve(table: RouteTable, raw: str, route: object, path: str, upstream: str) -> None:
    """resolve() returns the route, the normalised decoded path, and the upstream path: the
    path as sent minus the prefix, or the normalised one re-encoded when it had dot-segments."""
    match = resolve(table, raw)
    assert match is not None
    assert (match.route, match.path, match.upstream_path) == (route, path, upstream)


@pytest.mark.parametrize(
    ("table", "raw"),
    [
        row("no-route", TABLE, "/other/x"),
        row("apix-is-not-api", TABLE, "/apix"),
        row("root-without-catch-all", TABLE, "/"),
        row("dots-within-unrouted-space", TABLE, "/other/a/../b"),
    ],
)
def test_resolve_no_route(table: RouteTable, raw: str) -> None:
    """A well-formed path that no route matches resolves to None (the app answers 404)."""
    assert resolve(table, raw) is None


@pytest.mark.parametrize(
    ("table", "raw", "reason"),
    [
        row("dot-dot-leaves-prefix", TABLE, "/api/../admin",
            "path '/api/../admin' leaves its route prefix /api"),
        row("dot-dot-leaves-prefix-only-route", ONLY_API, "/api/../admin", "leaves its route prefix /api"),
        row("dot-dot-leaves-prefix-to-catch-all", WITH_ROOT, "/api/../admin", "leaves its route prefix /api"),
        row("encoded-dots-lower", TABLE, "/api/%2e%2e/admin", "leaves its route prefix /api"),
        row("encoded-dots-upper", TABLE, "/api/%2E%2E/admin", "leaves its route prefix /api"),
        row("half-encoded-dots", TABLE, "/api/.%2e/admin", "leaves its route prefix /api"),
        row("encoded-slash-before-dots", TABLE, "/api/..%2fadmin", "leaves its route prefix /api"),
        row("encoded-backslash-after-dots", TABLE, "/api/..%5cadmin", "leaves its route prefix /api"),
        row("raw-backslash-traversal", TABLE, "/api\\..\\admin", "leaves its route prefix /api"),
        row("trailing-dot-dot", TABLE, "/api/..", "leaves its route prefix /api"),
        row("climb-out-after-descending", TABLE, "/api/a/../../admin", "leaves its route prefix /api"),
        row("nested-route-left-for-parent", TABLE, "/api/v2/../x", "leaves its route prefix /api/v2"),
        row("into-another-route", TABLE, "/admin/../api/x", "leaves its route prefix /admin"),
        row("into-route-from-unrouted", TABLE, "/other/../api/x", "reaches route /api through '..'"),
        row("into-route-via-single-dot", TABLE, "/./api/x", "reaches route /api through '..'"),
        row("into-nested-route", TABLE, "/api/x/../v2/y", "reaches route /api/v2 through '..'"),
        row("dot-dot-at-root", WITH_ROOT, "/..", "climbs above the root"),
        row("dot-dot-above-root-deep", WITH_ROOT, "/a/../../etc/passwd", "climbs above the root"),
        row("encoded-dot-dot-at-root", WITH_ROOT, "/%2e%2e/x", "climbs above the root"),
        row("overlong-utf8-dots", TABLE, "/api/%c0%ae%c0%ae/admin", "does not decode to valid UTF-8"),
        row("overlong-utf8-slash", TABLE, "/api/..%c0%afadmin", "does not decode to valid UTF-8"),
        row("truncated-utf8", TABLE, "/api/%c3", "does not decode to valid UTF-8"),
        row("lone-surrogate-raw", TABLE, "/api/\udcff", "does not decode to valid UTF-8"),
        row("invalid-escape-letters", TABLE, "/api/%zz", "invalid percent-escape '%zz'"),
        row("invalid-escape-short", TABLE, "/api/%4", "invalid percent-escape '%4'"),
        row("invalid-escape-bare", TABLE, "/api/100%", "invalid percent-escape '%'"),
        row("encoded-nul", TABLE, "/api/a%00b", "contains a control character"),
        row("raw-nul", TABLE, "/api/a\x00b", "contains a control character"),
        row("encoded-newline", TABLE, "/api/a%0d%0aSet-Cookie:x", "contains a control character"),
        row("raw-tab", TABLE, "/api/a\tb", "contains a control character"),
        row("encoded-del", TABLE, "/api/%7f", "contains a control character"),
        row("absolute-form", TABLE, "http://evil/", "does not start with '/'"),
        row("relative", TABLE, "api/x", "does not start with '/'"),
        row("empty", TABLE, "", "does not start with '/'"),
        row("too-long", TABLE, "/api/" + "a" * MAX_PATH_LENGTH, f"longer than {MAX_PATH_LENGTH}"),
    ],
)
def test_resolve_refuses(table: RouteTable, raw: str, reason: str) -> None:
    """Malformed or escaping paths raise PathEscape (400) with a sentence naming the problem."""
    with pytest.raises(PathEscape) as caught:
        resolve(table, raw)
    assert reason in caught.value.reason
    assert caught.value.status == 400


def test_max_length_is_inclusive() -> None:
    """A path of exactly MAX_PATH_LENGTH characters is still routed."""
    raw = "/api/" + "a" * (MAX_PATH_LENGTH - 5)
    match = resolve(TABLE, raw)
    assert match is not None and match.route is API


def test_resolve_keeps_its_answers_bounded_and_never_a_refusal(monkeypatch) -> None:
    """A path seen before gets the same answer without re-routing; the kept paths are bounded
    (oldest out, over-long ones not kept) and a refusal raises every time."""
    monkeypatch.setattr(routing, "RESOLVED_SIZE", 2)
    table = RouteTable([API, ADMIN])
    first = resolve(table, "/api/x?a=1")
    assert resolve(table, "/api/x?b=2") is first and resolve(table, "/other") is None
    for _ in range(2):
        with pytest.raises(PathEscape):
            resolve(table, "/api/../admin")
    resolve(table, "/admin/y")
    resolve(table, "/api/" + "a" * routing.RESOLVED_PATH_CHARS)
    assert list(table._resolved) == ["/other", "/admin/y"]
    assert resolve(table, "/api/x") == first and resolve(table, "/api/x") is not first   # routed again


def test_long_reason_is_cut_short() -> None:
    """A refusal sentence never repeats a huge path in full."""
    with pytest.raises(PathEscape) as caught:
        resolve(TABLE, "/api/" + "a" * 4000 + "/../../x")
    assert len(caught.value.reason) < 200


@pytest.mark.parametrize(
    ("path", "expected"),
    [
        row("no-dots-same-object", "/a/b", "/a/b"),
        row("single-dot", "/a/./b", "/a/b"),
        row("dot-dot", "/a/b/../c", "/a/c"),
        row("trailing-dot", "/a/b/.", "/a/b/"),
        row("trailing-dot-dot", "/a/b/c/..", "/a/b/"),
        row("rfc-example", "/a/b/c/./../../g", "/a/g"),
        row("empty-segment-popped", "/a//..", "/a/"),
        row("dots-in-names", "/a.b/..c/d..", "/a.b/..c/d.."),
    ],
)
def test_remove_dot_segments(path: str, expected: str) -> None:
    """remove_dot_segments follows RFC 3986 §5.2.4 for absolute paths."""
    assert remove_dot_segments(path)[0] == expected


def test_encode_path_upper_case_utf8() -> None:
    """encode_path keeps pchar and '/', encodes the rest as upper-case UTF-8 escapes."""
    assert encode_path("/a b/%/é/?#[]") == "/a%20b/%25/%C3%A9/%3F%23%5B%5D"


"""Properties of resolve() over arbitrary paths: it never routes outside a prefix, never crashes."""

from __future__ import annotations

from hypothesis import example, given, settings
from hypothesis import strategies as st

from corsproxy.errors import PathEscape
from corsproxy.policy.routing import RouteTable, resolve
from tests.routes_factory import make_route

ROUTES = (
    make_route("/api", "https://api.example.com/v1"),
    make_route("/api/v2", "https://v2.example.com"),
    make_route("/admin", "http://admin.internal/root", strip_prefix=False),
    make_route("/", "http://web.internal"),
)
TABLE = RouteTable(ROUTES)
NO_ROOT = RouteTable(ROUTES[:3])

# Paths built from the pieces traversal attacks are made of, plus arbitrary text.
PIECES = st.sampled_from([
    "/", "api", "v2", "admin", "apix", ".", "..", "%2e", "%2E", "%2f", "%2F", "%5c", "\\", "%25",
    "%c0%ae", "%c0%af", "%00", "%", "%4", "%zz", "a", "é", "%c3%a9", "?", "#", " ", "//",
])
PATHS = st.one_of(
    st.lists(PIECES, max_size=12).map(lambda parts: "/" + "".join(parts)),
    st.text(max_size=40).map(lambda text: "/" + text),
    st.text(max_size=40),
)


def _outcome(table: RouteTable, path: str):
    try:
        return resolve(table, path)
    except PathEscape:
        return None


@settings(max_examples=300, deadline=None)
@given(PATHS)
@example("/api/%2e%2e/admin")
@example("/admin/../api/x")
@example("/api/%252e%252e/x")
def test_match_stays_under_its_prefix(path: str) -> None:
    """A routed path starts with its route's prefix on a segment boundary; so does its upstream path."""
    for table in (TABLE, NO_ROOT):
        match = _outcome(table, path)
        if match is None:
            continue
        prefix, base = match.route.prefix, match.route.upstream.base_path
        assert prefix == "/" or match.path == prefix or match.path.startswith(prefix + "/")
        assert "/../" not in match.path + "/" and "/./" not in match.path + "/"
        assert match.upstream_path.startswith("/")
        assert not base or match.upstream_path == base or match.upstream_path.startswith(base + "/")
        assert table.match(match.path) is match.route


@settings(max_examples=300, deadline=None)
@given(PATHS)
def test_resolve_raises_only_path_escape(path: str) -> None:
    """resolve() either returns (a Match or None) or raises PathEscape, never anything else."""
    for table in (TABLE, NO_ROOT):
        try:
            resolve(table, path)
        except PathEscape as refused:
            assert refused.status == 400 and refused.reason

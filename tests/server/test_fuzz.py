"""Property tests (hypothesis) for the pure parsers that hostile input reaches.

- origins: no Origin string other than the listed ones (or the regex's shape) is allowed;
- Host: parse_host raises nothing but ValueError; host_allowed is never True for an unlisted host;
- paths: a normalised path that matches route R never decodes to a path outside R's prefix,
  and what is forwarded decodes (once) to exactly base_path + that path;
- config: any YAML-ish text loads or raises ConfigError, never anything else.

Each group is bounded (max_examples, no deadline) so the whole module stays well under 60 s.
"""

from __future__ import annotations

import re
import tempfile
from pathlib import Path
from urllib.parse import unquote

from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from corsproxy import config as config_module
from corsproxy.errors import ConfigError, PathEscape
from corsproxy.model import RequestFacts
from corsproxy.policy import cors, origins
from corsproxy.policy.routing import RouteTable, remove_dot_segments, resolve
from tests.policy.test_routing_props import NO_ROOT, PATHS, TABLE

FUZZ = settings(max_examples=1000, deadline=None, suppress_health_check=[HealthCheck.too_slow])

# --- origins --------------------------------------------------------------------------------

LISTED = ("http://localhost:3000", "https://app.example.com", "http://[::1]:8080", "https://api.example.com:8443")
POLICY = config_module.from_flags("http://127.0.0.1:9/v1", origins=LISTED).routes[0].cors
PREVIEW = re.compile(r"^https://[a-z0-9-]+\.preview\.example\.com$")
REGEX_POLICY = type(POLICY)(allow_origin_regex=PREVIEW, scope="route /preview")
PROXY_ORIGIN = "http://localhost:8080"

# Characters that near-miss attacks are made of: separators, look-alikes, case, controls.
TRICKY = st.sampled_from(list(":/.@[]%#?\\ \t\r\n\x00-_*") + ["K", "\u212a", "\u0130", "\uff0e", "\u3002", "A", "0"])


@st.composite
def near_misses(draw, listed: tuple[str, ...]) -> str:
    """A listed origin changed a little: a character inserted, deleted, replaced or re-cased,
    text added before or after (app.example.com.evil.com, evilapp.example.com)."""
    origin = draw(st.sampled_from(listed))
    at = draw(st.integers(0, len(origin)))
    piece = draw(st.one_of(TRICKY, st.text(min_size=1, max_size=6)))
    return draw(st.sampled_from([
        origin[:at] + piece + origin[at:],
        origin[:at] + origin[at + 1:],
        origin[:at] + piece + origin[at + 1:],
        origin[:at] + origin[at:].swapcase(),
        origin + piece,
        piece + origin,
        origin.replace("://", "://" + piece),
        origin.replace("https://", "http://") if origin.startswith("https") else origin.replace("http://", "https://"),
    ]))


ORIGINS = st.one_of(st.text(max_size=60), near_misses(LISTED), st.sampled_from(LISTED))


@FUZZ
@given(ORIGINS)
@example("https://app.example.com.evil.com")
@example("https://evilapp.example.com")
@example("null")
@example("http://127.0.0.1:3000")
@example("HTTP://localhost:3000")
@example("http://[0:0:0:0:0:0:0:1]:8080")
def test_no_origin_but_the_listed_ones_is_allowed(origin: str) -> None:
    """origin_allowed and the actual-request decision say yes exactly for the listed strings."""
    assert cors.origin_allowed(POLICY, origin) is (origin in LISTED)
    decision = cors.actual(POLICY, RequestFacts(method="POST", origin=origin, proxy_origin=PROXY_ORIGIN))
    assert decision.allowed is (origin in LISTED or origin == PROXY_ORIGIN)
    if not decision.allowed:
        assert decision.status == 403
        assert not any(name.lower().startswith("access-control-allow") for name, _ in decision.headers)


@FUZZ
@given(st.one_of(st.text(max_size=60), near_misses(("https://pr-7.preview.example.com",))))
@example("https://x.preview.example.com.evil.com")
@example("https://x.preview.example.com\n")
@example("https://a.b.preview.example.com")
def test_a_regex_allows_only_its_own_shape(origin: str) -> None:
    """allow_origin_regex is a full match: nothing before, after or between its labels."""
    allowed = cors.origin_allowed(REGEX_POLICY, origin)
    label = origin.removeprefix("https://").removesuffix(".preview.example.com")
    assert allowed is (origin.startswith("https://") and origin.endswith(".preview.example.com")
                       and label != "" and all(c in "abcdefghijklmnopqrstuvwxyz0123456789-" for c in label))


@FUZZ
@given(st.one_of(st.text(max_size=60), near_misses(LISTED)))
def test_normalise_origin_raises_only_value_error_and_is_idempotent(text: str) -> None:
    """A configured origin either normalises (to a fixed point) or is refused with ValueError."""
    try:
        normalised = origins.normalise_origin(text)
    except ValueError as refused:
        assert str(refused)
        return
    assert origins.normalise_origin(normalised) == normalised
    assert normalised.isascii() and normalised == normalised.strip()


# --- Host -----------------------------------------------------------------------------------

ALLOWED_HOSTS = (("localhost", None), ("127.0.0.1", None), ("::1", None), ("kube.local", 8080))
HOST_SHAPE = re.compile(r"(localhost|127\.0\.0\.1|\[::1\])(:\d{1,5})?|kube\.local:0{0,4}8080", re.IGNORECASE)


@st.composite
def host_near_misses(draw) -> str:
    host = draw(st.sampled_from(["localhost", "localhost:8080", "127.0.0.1", "[::1]:3000", "kube.local:8080"]))
    at = draw(st.integers(0, len(host)))
    piece = draw(st.one_of(TRICKY, st.text(min_size=1, max_size=4)))
    return draw(st.sampled_from([host[:at] + piece + host[at:], host[:at] + piece + host[at + 1:],
                                 host + piece, piece + host, host.upper()]))


HOSTS = st.one_of(st.text(max_size=40), host_near_misses())


@FUZZ
@given(HOSTS)
@example("\u212aube.local:8080")      # KELVIN SIGN lower-cases to "k"
@example("localhost.")
@example("::1")
@example("[::1]")
@example("localhost:0")
@example("127.0.0.1:65536")
def test_host_allowed_is_never_true_for_an_unlisted_host(host: str) -> None:
    """parse_host raises only ValueError; host_allowed says yes only to a listed host (and port)."""
    try:
        origins.parse_host(host)
    except ValueError:
        pass
    allowed = origins.host_allowed(ALLOWED_HOSTS, False, host)
    if allowed:
        assert host.isascii() and HOST_SHAPE.fullmatch(host), host
    assert origins.host_allowed(ALLOWED_HOSTS, True, host) is (origins.own_origin("http", host) is not None)


# --- paths ----------------------------------------------------------------------------------

HOSTILE_PATHS = st.one_of(PATHS, st.lists(st.sampled_from([
    "/", "api", "v2", "admin", "..", ".", "%2e%2e", "%2e", "%252e", "%252f", "%2f", "%5c", "%255c", "\\",
    "%c0%ae", "%e0%80%ae", "%ef%bc%8f", "%e2%80%a8", "%0a", "%00", ";", "%3b", "?", "#",
]), max_size=14).map(lambda parts: "/" + "/".join(parts)))


@FUZZ
@given(HOSTILE_PATHS)
@example("/api/%252e%252e/admin")
@example("/api/a/%2e%2e/%2e%2e/admin")
@example("/admin/..%5capi")
def test_a_routed_path_decodes_to_exactly_its_place_under_the_base_path(path: str) -> None:
    """What goes upstream, decoded once and read with `\\` as `/` (as the proxy matched it), is
    base_path + the normalised path (minus the prefix): no dot-segment left, nothing above the
    base path, the same route when read back."""
    for table in (TABLE, NO_ROOT):
        try:
            match = resolve(table, path)
        except PathEscape:
            continue
        if match is None:
            continue
        route = match.route
        rest = match.path[len(route.prefix):] if route.strip_prefix and route.prefix != "/" else match.path
        # Escapes are forwarded as sent (%2F stays %2F): a server that decodes them and reads `\\`
        # as `/` still finds no dot-segment and nothing outside the base path.
        decoded = unquote(match.upstream_path, errors="strict").replace("\\", "/")
        assert decoded == (unquote(route.upstream.base_path) + rest or "/")
        assert remove_dot_segments(decoded)[0] == decoded
        assert not {".", ".."} & set(decoded.split("/"))
        assert not any(ord(c) < 0x20 or c == "\x7f" for c in decoded)
        # Read back through the table, the path lands on the same route.
        assert table.match(match.path) is route


# --- config loader --------------------------------------------------------------------------

KEYS = ["server", "host", "port", "allowed_hosts", "cors", "allow_origins", "allow_origin_regex", "allow_methods",
        "allow_headers", "expose_headers", "allow_credentials", "max_age", "allow_private_network", "routes",
        "prefix", "upstream", "strip_prefix", "change_origin", "timeout", "verify_tls", "request_headers", "set",
        "remove", "- prefix", "alow_origins", "", "<<", "? x", "-"]
VALUES = ["", "[]", "{}", "[", "{", "]", "'", '"', "~", "null", "true", "yes", "0", "-1", "1e999", ".nan", "0x10",
          "65536", "/api", "/", "/api/", "/__corsproxy", "http://127.0.0.1:9/v1", "ws://x", "ftp://x", "http://",
          "http://[::1", "https://*.example.com", "http://localhost:3000/", '["*"]', "[http://localhost:3000]",
          "${X}", "${X:-d}", "${", "${UNSET}", "&a [1, 2]", "*a", "*missing", "!!python/object/apply:os.system [id]",
          "!!binary aGk=", "!custom x", "'(unclosed'", "'^.*$'", "'[a-'", "|\n  block", ">-", "\t", "%YAML 1.1",
          "---", "...", "{a: 1, a: 2}", "{Authorization: 'Bearer ${X}'}", "{X-A: \"a\\r\\nb\"}", "\u212a", "\x00"]


@st.composite
def yaml_ish(draw) -> str:
    lines = []
    for _ in range(draw(st.integers(0, 12))):
        indent = " " * draw(st.sampled_from([0, 0, 2, 4, 6, 1, 3]))
        key = draw(st.one_of(st.sampled_from(KEYS), st.text(max_size=8)))
        value = draw(st.one_of(st.sampled_from(VALUES), st.text(max_size=12)))
        lines.append(draw(st.sampled_from([f"{indent}{key}: {value}", f"{indent}- {value}", f"{indent}{key}:",
                                           f"{indent}- {key}: {value}"])))
    return "\n".join(lines)


CONFIG_DIR = Path(tempfile.mkdtemp(prefix="corsproxy-fuzz-"))


@settings(max_examples=500, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.one_of(yaml_ish(), st.text(max_size=200)))
@example("routes:\n  - prefix: /api\n    upstream: http://127.0.0.1:9/v1\n")
@example("a: &a [*a]\n")
@example("routes: !!python/object/apply:os.system [id]\n")
@example("\ufeffroutes: []\n")
@example("routes: []\n\x1f\n")      # a control character: yaml's reader refuses it on construction
def test_config_loader_raises_only_config_error(text: str) -> None:
    """Arbitrary YAML-ish text loads into a Config or raises ConfigError, never anything else."""
    path = CONFIG_DIR / "corsproxy.yaml"
    try:
        path.write_text(text, encoding="utf-8", errors="surrogatepass")
    except UnicodeEncodeError:
        return
    try:
        loaded = config_module.load(path, env={"X": "x"})
    except ConfigError as refused:
        assert str(refused)
        return
    RouteTable(loaded.routes)

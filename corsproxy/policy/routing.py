"""Path normalisation, longest-prefix routing and the upstream path.

Pure: no aiohttp, no asyncio. Everything that can be is computed when the RouteTable is
built; a request costs one percent-decode, at most one dot-segment pass and
O(number of segments) dict look-ups.

How a request path is judged (``resolve``):

1. refuse over-long input and anything not starting with ``/``;
2. percent-decode ONCE to bytes and decode them as strict UTF-8 (``%zz``, ``%4``, overlong
   ``%c0%ae`` and lone surrogates are refused), then refuse control characters and turn
   ``\\`` into ``/`` (servers on Windows treat it as a separator), and refuse ``..;`` and
   ``.;`` segments (servlet containers strip ``;params`` and then read ``..``);
3. remove dot-segments (RFC 3986 §5.2.4), where a ``..`` above the root is an escape;
4. the route is the one matching the normalised path; the route matching the decoded path
   literally (before removing dot-segments) must be the same route, and no ``..`` may climb
   above its prefix. So ``/api/../admin`` leaves /api and ``/admin/../api/x`` sneaks into
   /api: both are refused (400), never forwarded, whatever other routes exist.

Decoding is only for matching and checking. What goes upstream is the path as the client sent
it, minus the prefix: ``group%2Fproject`` stays one segment, ``%3B`` stays data, as they would
be on a direct call. Only a path that had dot-segments (or whose prefix the client spelled
across an escape, ``/api%2Fx``) is forwarded in its normalised form, re-encoded, so the
upstream never sees a ``..`` to resolve on its own.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass
from string import hexdigits
from urllib.parse import quote

from corsproxy.errors import PathEscape
from corsproxy.model import Route
from corsproxy.policy.memo import UNSEEN, keep

MAX_PATH_LENGTH = 8192

# RFC 3986 §3.3: pchar = unreserved / pct-encoded / sub-delims / ":" / "@". quote() always
# keeps the unreserved characters (ALPHA DIGIT - . _ ~); these are the rest, plus "/".
_PCHAR_SAFE = "!$&'()*+,;=:@/"
# Every printable ASCII character: a sent path keeps them as they are, escapes included.
_ASCII_SAFE = "".join(chr(c) for c in range(0x21, 0x7f))
_CONTROL = re.compile("[\x00-\x1f\x7f]")
# "2f" / "2F" / ... -> b"/": every two-hex-digit spelling, both cases, looked up not parsed.
_HEX_BYTE = {a + b: bytes.fromhex(a + b) for a in hexdigits for b in hexdigits}


@dataclass(frozen=True, slots=True)
class Match:
    route: Route
    path: str            # decoded, dot-segments removed: what the route was chosen on
    upstream_path: str   # base_path + the path as sent minus the prefix: what goes upstream


class RouteTable:
    """Routes by prefix; ``match`` is the longest prefix on a segment boundary."""

    __slots__ = ("_routes", "_depth", "_resolved")

    def __init__(self, routes: Iterable[Route]) -> None:
        self._routes: dict[str, Route] = {route.prefix: route for route in routes}
        # No prefix has more segments than this, so longer paths are cut before looking up.
        self._depth = max((_segments(prefix) for prefix in self._routes), default=0)
        # resolve()'s answers for paths seen before (see RESOLVED_SIZE); made with the table.
        self._resolved: dict[str, Match | None] = {}

    def match(self, path: str) -> Route | None:
        """The route whose prefix is the longest segment-prefix of ``path`` (which starts with /).

        ``/a/b/c`` looks up ``/a/b/c``, ``/a/b``, ``/a`` and then ``/``.
        """
        if not path.startswith("/"):
            return None
        routes = self._routes
        candidate = _first_segments(path, self._depth)
        while candidate:
            route = routes.get(candidate)
            if route is not None:
                return route
            candidate = candidate[: candidate.rfind("/")]
        return routes.get("/")


# A page asks for the same few paths over and over, and routing one is a pure function of the
# table and the path: the answers for up to RESOLVED_SIZE paths of at most RESOLVED_PATH_CHARS
# are kept with the table (the oldest goes first; a refusal is never kept, it raises again).
RESOLVED_SIZE = 1024
RESOLVED_PATH_CHARS = 1024


def resolve(table: RouteTable, raw_path: str) -> Match | None:
    """Route a request path as received (percent-encoded); None when no route matches.

    Raises PathEscape (400) for malformed paths and paths that leave their route's prefix.
    A literal ``?`` starts the query (RFC 3986 §3.4): it and what follows are not path.
    """
    raw_path = raw_path.partition("?")[0]
    resolved = table._resolved
    if (match := resolved.get(raw_path, UNSEEN)) is not UNSEEN:
        return match  # type: ignore[return-value]
    match = _resolve(table, raw_path)
    if len(raw_path) <= RESOLVED_PATH_CHARS:
        keep(resolved, raw_path, match, RESOLVED_SIZE)
    return match


def _resolve(table: RouteTable, raw_path: str) -> Match | None:
    if len(raw_path) > MAX_PATH_LENGTH:
        raise PathEscape(f"path is longer than {MAX_PATH_LENGTH} characters")
    if not raw_path.startswith("/"):
        raise PathEscape(f"path {_show(raw_path)} does not start with '/'")
    decoded = _percent_decode(raw_path)
    if _CONTROL.search(decoded):
        raise PathEscape(f"path {_show(raw_path)} contains a control character")
    decoded = decoded.replace("\\", "/")
    if ".;" in decoded and _has_parameter_dot_segment(decoded):
        raise PathEscape(f"path {_show(raw_path)} has a '..;' or '.;' segment, which Tomcat and Jetty "
                         "read as '..' or '.' (a path parameter): it could climb out of the prefix "
                         "on the upstream")
    path, low_water = remove_dot_segments(decoded, raw_path)
    route = table.match(path)
    # The route the path names literally; the same look-up when there were no dot-segments.
    literal = route if path is decoded else table.match(decoded)
    if literal is not None and low_water < _segments(literal.prefix):
        raise PathEscape(f"path {_show(raw_path)} leaves its route prefix {literal.prefix}")
    if literal is not route:       # route is set here: a path kept under `literal` is routed
        raise PathEscape(f"path {_show(raw_path)} reaches route {route.prefix} through '..'; "
                         "a path may not climb into another route")
    if route is None:
        return None
    sent = _sent_rest(route, raw_path) if path is decoded else None
    rest = encode_path(_without_prefix(route, path)) if sent is None else sent
    return Match(route, path, (route.upstream.base_path + rest) or "/")


def remove_dot_segments(path: str, raw_path: str = "") -> tuple[str, int]:
    """RFC 3986 §5.2.4 on an absolute path, and the fewest segments left after any ``..``.

    Returns ``(normalised, low_water)``; ``low_water`` is large when no ``..`` occurred.
    ``path`` itself (the same object) comes back when it has no dot-segments. Unlike §5.2.4,
    a ``..`` at the root is not silently dropped: it raises PathEscape (``raw_path`` is only
    for the message). Empty segments (``//``) are kept, as the RFC does.
    """
    if "." not in path:
        return path, MAX_PATH_LENGTH
    segments = path.split("/")
    kept: list[str] = []
    low_water = MAX_PATH_LENGTH
    for segment in segments[1:]:
        if segment == "..":
            if not kept:
                raise PathEscape(f"path {_show(raw_path or path)} climbs above the root")
            kept.pop()
            low_water = min(low_water, len(kept))
        elif segment != ".":
            kept.append(segment)
    if segments[-1] in (".", ".."):
        kept.append("")          # "/a/b/." and "/a/b/c/.." are "/a/b/" (§5.2.4 step 2.B/C)
    normalised = "/" + "/".join(kept)
    return (path, low_water) if normalised == path else (normalised, low_water)


def _has_parameter_dot_segment(path: str) -> bool:
    """Whether a segment is '.' or '..' followed by ';params' (servlet path parameters)."""
    return any(segment.partition(";")[0] in (".", "..") for segment in path.split("/") if ";" in segment)


def _without_prefix(route: Route, path: str) -> str:
    """The part of a path that follows the prefix (all of it without strip_prefix)."""
    if route.strip_prefix and route.prefix != "/":
        return path[len(route.prefix):]
    return path


def _sent_rest(route: Route, raw_path: str) -> str | None:
    """The raw path minus the prefix, as the client sent it (non-ASCII %-encoded); None when
    the prefix does not end on a raw segment boundary (``/api%2Fx`` for /api)."""
    if not (route.strip_prefix and route.prefix != "/"):
        return _as_sent(raw_path)
    cut = _first_segments_end(raw_path, route.prefix.count("/"))
    if _percent_decode(raw_path[:cut]) != route.prefix:
        return None
    return _as_sent(raw_path[cut:])


def _as_sent(raw: str) -> str:
    """Raw path bytes for the upstream URL: ASCII as sent, anything else as UTF-8 %XX."""
    return raw if raw.isascii() else quote(raw.encode("utf-8", "surrogateescape"), safe=_ASCII_SAFE)


def encode_path(path: str) -> str:
    """Percent-encode a decoded path: RFC 3986 pchar and ``/`` stay, the rest is UTF-8 %XX."""
    return quote(path, safe=_PCHAR_SAFE)


def _percent_decode(raw_path: str) -> str:
    """Decode %XX escapes once, then the bytes as strict UTF-8; PathEscape when either fails."""
    if "%" not in raw_path and raw_path.isascii():
        return raw_path
    head, *escaped = raw_path.split("%")
    try:
        chunks = [head.encode()]
        for part in escaped:
            byte = _HEX_BYTE.get(part[:2])
            if byte is None:
                raise PathEscape(f"path {_show(raw_path)} has an invalid percent-escape "
                                 f"'%{part[:2]}'")
            chunks += (byte, part[2:].encode())
        return b"".join(chunks).decode()
    except UnicodeError:
        raise PathEscape(f"path {_show(raw_path)} does not decode to valid UTF-8") from None


def _segments(prefix: str) -> int:
    """How many segments a route prefix has: "/" 0, "/api" 1, "/api/v2" 2."""
    return 0 if prefix == "/" else prefix.count("/")


def _first_segments(path: str, count: int) -> str:
    """``path`` cut to its first ``count`` segments ("/a/b/c", 2 -> "/a/b")."""
    return path[:_first_segments_end(path, count)]


def _first_segments_end(path: str, count: int) -> int:
    """Where the first ``count`` segments of ``path`` end ("/a/b/c", 2 -> 4)."""
    end = 0
    for _ in range(count):
        end = path.find("/", end + 1)
        if end < 0:
            return len(path)
    return end


def _show(path: str) -> str:
    """A path for a message: quoted, escaped, and cut short."""
    return repr(path if len(path) <= 120 else path[:117] + "...")

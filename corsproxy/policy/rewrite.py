"""Header transforms on the way up (request) and on the way back (response).

Pure: headers are sequences of ``(name, value)`` str pairs, order and duplicates kept; every
function returns a new list and never touches its input.
"""

from __future__ import annotations

import ipaddress
import re
from collections.abc import Iterable, Sequence
from itertools import chain
from urllib.parse import urlsplit

from corsproxy.model import Route, Upstream
from corsproxy.policy.routing import encode_path

Headers = Sequence[tuple[str, str]]

# RFC 9110 §7.6.1 (Connection) plus the de-facto ones every proxy drops (Keep-Alive,
# Proxy-Connection) and RFC 9110 §11.7's proxy credentials, which are meant for us.
HOP_BY_HOP: frozenset[str] = frozenset({
    "connection", "keep-alive", "proxy-authenticate", "proxy-authorization",
    "proxy-connection", "te", "trailer", "transfer-encoding", "upgrade",
})
_FORWARDED = frozenset({"x-forwarded-for", "x-forwarded-proto", "x-forwarded-host", "x-forwarded-prefix"})
# Never forwarded as the client sent them: hop-by-hop, the X-Forwarded-* the proxy writes
# itself, Expect (the proxy's server answers 100-continue itself and sends the whole body up)
# and Host, when the route sends the upstream's own. Built once, not per request.
_REQUEST_DROPPED = HOP_BY_HOP | _FORWARDED | {"expect"}
_REQUEST_DROPPED_WITH_HOST = _REQUEST_DROPPED | {"host"}
# Connection values that name no header (RFC 9112 §9.6, the HTTP/1.0 keep-alive option).
_CONNECTION_OPTIONS = frozenset({"keep-alive", "close"})
# An intercepted request keeps every end-to-end header but Expect (answered by the proxy).
_TRANSPARENT_DROPPED = HOP_BY_HOP | {"expect"}
# Control characters other than tab (RFC 9110 §5.5 field-vchar / SP / HTAB).
_CONTROL = re.compile("[\x00-\x08\x0a-\x1f\x7f]")
_DEFAULT_PORTS = {"http": 80, "ws": 80, "https": 443, "wss": 443}


def upstream_request_headers(
    headers: Headers, route: Route, *, client_ip: str, proxy_host: str, scheme: str,
) -> list[tuple[str, str]]:
    """The headers to send upstream for a client request.

    Content-Length, Origin, Cookie, Authorization and Accept-Encoding pass as sent; the
    route's ``request_headers`` are applied last (remove, then set), also to the headers the
    proxy writes itself. One pass over the client's headers, no helper calls in it (this runs
    on every request: issue #15).
    """
    if route.transparent:  # an intercepted request goes on as the browser made it
        listed = _connection_names(headers)
        return [(n, v) for n, v in _without(headers, _TRANSPARENT_DROPPED | listed) if _safe(v)]
    replaced = route.replaced_headers
    dropped = _REQUEST_DROPPED_WITH_HOST if route.change_origin else _REQUEST_DROPPED
    out: list[tuple[str, str]] = []
    chain: list[str] = []
    listed: list[str] = []
    for name, value in headers:
        lower = name.lower()
        if lower in dropped or lower in replaced:
            if lower == "x-forwarded-for" and value.strip() and _safe(value):
                chain.append(value)
            elif lower == "connection":
                listed.append(value)
        elif "\r" not in value and "\n" not in value and "\0" not in value:   # _safe, inline
            out.append((name, value))
    if listed:  # RFC 9110 §7.6.1: the names a Connection header lists are hop-by-hop too
        names = _connection_names([("connection", value) for value in listed])
        out = [(name, value) for name, value in out if name.lower() not in names]
    if route.change_origin and "host" not in replaced:
        out.insert(0, ("Host", route.upstream.host_header))
    if client_ip:
        chain.append(client_ip)
    # What the proxy writes: the chain's values were checked as they came, the scheme is its own.
    forwarded = [("X-Forwarded-For", ", ".join(chain))] if chain else []
    forwarded.append(("X-Forwarded-Proto", scheme))
    if proxy_host and _safe(proxy_host):
        forwarded.append(("X-Forwarded-Host", proxy_host))
    if route.strip_prefix and route.prefix != "/" and _safe(route.prefix):
        # The path the upstream sees lacks the prefix; this lets an app build its own URLs.
        forwarded.append(("X-Forwarded-Prefix", route.prefix))
    out += [pair for pair in forwarded if pair[0].lower() not in replaced] if replaced else forwarded
    if route.set_headers:
        out += [pair for pair in route.set_headers if _safe(pair[1])]
    return out


def client_response_headers(
    headers: Headers, route: Route, *, cors_headers: Headers, proxy_origin: str,
) -> list[tuple[str, str]]:
    """The upstream's response headers as the client gets them, with the proxy's CORS headers.

    Upstream ``Access-Control-*`` headers are removed (the proxy's own replace them); all
    ``Vary`` headers become one, where the first upstream ``Vary`` was. ``nosniff`` is added
    unless the upstream sent X-Content-Type-Options: a JSON answer must never run as the
    script or style a foreign page loads with <script src> (Fetch §3.5 "should response to
    request be blocked due to nosniff"). An intercepted host's unlisted path (``applies_cors``
    off) keeps every header but the hop-by-hop ones; its listed paths lose ``Alt-Svc``, which
    would send the browser to HTTP/3 past the proxy.
    """
    if not route.applies_cors:
        return _without(headers, HOP_BY_HOP | _connection_names(headers))
    out, listed = _rewritten(headers, route, cors_headers, proxy_origin, frozenset())
    if listed:  # a Connection header naming end-to-end headers (RFC 9110 §7.6.1): rare, so again
        out, _ = _rewritten(headers, route, cors_headers, proxy_origin, listed)
    return out


def _rewritten(headers: Headers, route: Route, cors_headers: Headers, proxy_origin: str,
               listed: frozenset[str]) -> tuple[list[tuple[str, str]], frozenset[str]]:
    """client_response_headers without `listed` (lower-case names), and the names the
    upstream's Connection headers list beyond the hop-by-hop ones. One pass, no helper calls
    for a plain header (this runs on every response: issue #15)."""
    out: list[tuple[str, str]] = []
    vary_at: int | None = None
    vary: list[str] = []
    connection: list[str] = []
    sniff_guard = False
    content_type = None
    for name, value in headers:
        lower = name.lower()
        if lower == "x-content-type-options":
            sniff_guard = True
        elif lower == "content-type":
            content_type = value
        if lower in HOP_BY_HOP or lower in listed or lower.startswith("access-control-"):
            if lower == "connection" and value.lower() not in _CONNECTION_OPTIONS:
                connection.append(value)
            continue
        if lower == "vary":
            if vary_at is None:
                vary_at = len(out)
            vary.append(value)
            continue
        if route.transparent:
            # The browser talks to the real host: its URLs and cookies are right as sent.
            if lower == "alt-svc":
                continue
        elif lower == "location":
            value = rewrite_location(value, route, proxy_origin)
        elif lower == "set-cookie":
            value = strip_cookie_domain(value, route.upstream.host)
            if value is None:
                continue
            value = map_cookie_path(value, route)
        out.append((name, value))
    own: list[str] = []
    for pair in cors_headers:
        if pair[0].lower() == "vary":
            own.append(pair[1])
    # The proxy's own Vary is already one header of unique tokens: merge only with upstream ones.
    merged = own[0] if not vary and len(own) == 1 else _merge_vary(vary + own)
    if merged:
        out.insert(len(out) if vary_at is None else vary_at, ("Vary", merged))
    out += [pair for pair in cors_headers if pair[0].lower() != "vary"] if own else cors_headers
    if not sniff_guard:
        out.append(("X-Content-Type-Options", "nosniff"))
    # An intercepted host is its own origin in the browser: there is no shared one to guard.
    if route.isolate and not route.transparent and _is_document(content_type):
        out.append(ISOLATION)
    extra = _connection_names([("connection", value) for value in connection]) - HOP_BY_HOP - listed
    return out, extra


# Every route's upstream documents would run on the proxy's one origin, so a page of route A
# (a compromised upstream, a reflected XSS) could fetch('/b/...') as same-origin, with B's
# token. A sandbox without allow-same-origin gives the document an opaque origin: its requests
# carry Origin: null (never allowed) or a cross-site Sec-Fetch-Site, and the gates refuse them.
ISOLATION = ("Content-Security-Policy",
             "sandbox allow-scripts allow-forms allow-popups allow-modals allow-downloads")
# Types a browser renders as a document that can run script (HTML Standard §7.1, SVG, and every
# XML type: an XML document runs the <html:script> elements in it).
_DOCUMENT_TYPES = frozenset({"text/html", "application/xhtml+xml", "image/svg+xml", "text/xml",
                             "application/xml"})


def _is_document(content_type: str | None) -> bool:
    """Whether the browser may render the response as a document. A missing or unparseable
    Content-Type leaves the type to the browser: nosniff keeps Chromium from sniffing HTML, but
    the sandbox must not depend on one browser's reading of the MIME Sniffing Standard."""
    if content_type is None:
        return True
    essence = content_type.partition(";")[0].strip().lower()
    kind, slash, subtype = essence.partition("/")
    return not (kind and slash and subtype) or essence in _DOCUMENT_TYPES or subtype.endswith("+xml")


def response_problem(status: int, headers: Headers) -> str | None:
    """Why an upstream answer cannot be relayed as it is, else None.

    A control character in a header (RFC 9110 §5.5: field values are visible characters, space
    and tab) would split or smuggle a header on the way to the browser; a 101 answers an
    upgrade nobody asked for (WebSocket upgrades take another path) and would hand the client
    connection to the upstream's protocol.
    """
    if status == 101:
        return "the upstream answered 101 Switching Protocols to a request that asked for no upgrade"
    # One C pass over every name and value; only a head with a tab or a byte beyond ASCII
    # printables (legal, but isprintable says no) is searched, and then for the culprit.
    joined = "".join(chain.from_iterable(headers))
    if joined.isprintable() or not _CONTROL.search(joined):
        return None
    for name, value in headers:
        if _CONTROL.search(name) or _CONTROL.search(value):
            return (f"the upstream sent response header {name[:100]!r} with a control character "
                    "in it, which no browser may receive")
    return None


def _merge_vary(values: Iterable[str]) -> str:
    """Comma-separated Vary values as one: first spelling of each token, in order; ``*`` wins."""
    tokens: dict[str, str] = {}
    for value in values:
        for token in value.split(","):
            token = token.strip()
            if token:
                tokens.setdefault(token.lower(), token)
    return "*" if "*" in tokens else ", ".join(tokens.values())


def rewrite_location(value: str, route: Route, proxy_origin: str) -> str:
    """Point a ``Location`` at the upstream back through the proxy and its prefix.

    An absolute URL (or a ``//host`` reference) on the upstream's origin, with a path under
    the upstream's base path, becomes ``proxy_origin`` + the proxy path. So does one on the
    proxy's own origin whose path lacks the prefix: an upstream that built it from ``Host``
    (change_origin: false) or ``X-Forwarded-Host`` without honouring ``X-Forwarded-Prefix``.
    A path-absolute reference (``/v1/x``) under the base path becomes the proxy path alone: it
    stays relative, as the upstream wrote it, and the browser resolves it against the proxy.
    The proxy path is the prefix + the rest (strip_prefix) or the path minus the base path.
    Query and fragment are kept byte for byte; anything else is returned unchanged.
    """
    if value.startswith("/") and not value.startswith("//"):
        origin, rest = "", value
    else:
        origin, rest = _split_origin(value, route.upstream)
        if not origin:
            return value
        if origin != route.upstream.origin.lower():
            if origin != proxy_origin.lower() or _under(rest, route.prefix):
                return value
        origin = proxy_origin
    end = min((i for i in (rest.find("?"), rest.find("#")) if i >= 0), default=len(rest))
    path = _proxy_path(rest[:end] or "/", route)
    if path is None:
        return value
    return origin + (path if origin else _same_host(path)) + rest[end:]


def _same_host(path: str) -> str:
    """A path-absolute reference that stays one: browsers read ``//evil.test/x`` and ``/\\evil``
    as another host (WHATWG URL: a backslash is a slash, tab and newlines are removed), so the
    second slash and any tab, CR or LF are percent-encoded; the proxy decodes them back."""
    path = path.replace("\t", "%09").replace("\n", "%0A").replace("\r", "%0D")
    if path[1:2] in ("/", "\\"):
        path = "/" + ("%2F" if path[1] == "/" else "%5C") + path[2:]
    return path


def strip_cookie_domain(value: str, upstream_host: str) -> str | None:
    """A ``Set-Cookie`` value without its ``Domain`` attribute (the rest byte for byte), so the
    cookie lands on the proxy's host; None when the browser would have rejected the cookie.

    A browser stores a cookie only when its Domain domain-matches the host that sent it
    (RFC 6265 §5.3 step 6). Stripping any other Domain would turn a cookie the upstream could
    not set into one on localhost, for every route and port (cookie tossing).
    """
    if "domain" not in value.lower():
        return value
    pair, *attributes = value.split(";")
    kept = []
    for attribute in attributes:
        name, _, domain = attribute.partition("=")
        if name.strip().lower() != "domain":
            kept.append(attribute)
        elif not domain_matches(upstream_host, domain):
            return None
    return ";".join([pair, *kept])


def map_cookie_path(value: str, route: Route) -> str:
    """A ``Set-Cookie`` value whose ``Path`` under the upstream's base path is mapped into the
    route, as ``Location`` is (``Path=/v1/cookies`` -> ``Path=/api/cookies``), so the browser
    sends the cookie back on the proxy's path. Everything else byte for byte."""
    if "path" not in value.lower():
        return value
    pair, *attributes = value.split(";")
    for i, attribute in enumerate(attributes):
        name, eq, path = attribute.partition("=")
        if eq and name.strip().lower() == "path" and (mapped := _proxy_path(path.strip(), route)) is not None:
            # "/api/" would not cover "/api" itself (RFC 6265 §5.1.4): the route's root is the prefix.
            attributes[i] = f"{name}={route.prefix if mapped == route.prefix + '/' else mapped}"
    return ";".join([pair, *attributes])


def _under(path: str, prefix: str) -> bool:
    """Whether a path (possibly with ?query or #fragment) is the prefix or below it."""
    if prefix == "/":
        return True
    return path == prefix or path.startswith(prefix) and path[len(prefix)] in "/?#"


def domain_matches(host: str, domain: str) -> bool:
    """RFC 6265 §5.1.3 for a Domain attribute value (§5.2.3: a leading dot is ignored, an
    empty value means no Domain at all); an IP address matches only itself."""
    domain = domain.strip().removeprefix(".").lower()
    host = host.lower()
    if not domain or host == domain:
        return True
    return host.endswith("." + domain) and not _is_ip(host)


def foreign_cookie_domains(headers: Headers, upstream_host: str) -> list[str]:
    """The Domain values of the Set-Cookie headers that strip_cookie_domain drops."""
    return [domain.strip()[:200]
            for name, value in headers if name.lower() == "set-cookie"
            for attribute in value.split(";")[1:]
            for key, _, domain in [attribute.partition("=")]
            if key.strip().lower() == "domain" and not domain_matches(upstream_host, domain)]


def _is_ip(host: str) -> bool:
    try:
        ipaddress.ip_address(host.strip("[]"))
    except ValueError:
        return False
    return True


def _proxy_path(path: str, route: Route) -> str | None:
    """The proxy path for an upstream path (encoded), None when not under the base path."""
    base = route.upstream.base_path
    if base and not (path == base or path.startswith(base + "/")):
        return None
    rest = path[len(base):]
    if route.strip_prefix and route.prefix != "/":
        return encode_path(route.prefix) + rest
    return rest or "/"


def _split_origin(value: str, upstream: Upstream) -> tuple[str, str]:
    """``scheme://host:port/p?q`` -> (serialised origin, "/p?q"); ("", value) if not a URL.

    A ``//host`` reference takes the upstream's scheme. The origin is serialised by the same
    rule as ``Upstream.origin`` (ws/wss as http/https, default ports dropped), lower-case.
    """
    head, sep, rest = value.partition("//")
    if not sep or (head and not head.endswith(":")):
        return "", value
    scheme = head[:-1].lower() if head else upstream.scheme
    if scheme not in _DEFAULT_PORTS:
        return "", value
    end = min((i for i in (rest.find(c) for c in "/?#") if i >= 0), default=len(rest))
    authority, rest = rest[:end], rest[end:]
    try:
        parts = urlsplit("//" + authority)
        host, port = parts.hostname, parts.port
    except ValueError:
        return "", value
    if not host or "@" in authority:
        return "", value
    port = _DEFAULT_PORTS[scheme] if port is None else port
    return Upstream("", scheme, host, port, "").origin, rest or "/"


def _connection_names(headers: Headers) -> frozenset[str]:
    """Header names listed in ``Connection`` values (RFC 9110 §7.6.1), lower-case."""
    return frozenset(
        token.strip().lower()
        for name, value in headers if name.lower() == "connection"
        for token in value.split(",") if token.strip()
    )


def _without(headers: Headers, names: frozenset[str]) -> list[tuple[str, str]]:
    return [(name, value) for name, value in headers if name.lower() not in names]


def _safe(value: str) -> bool:
    """CR, LF or NUL in a value could split or smuggle a header: such values are dropped."""
    return "\r" not in value and "\n" not in value and "\0" not in value

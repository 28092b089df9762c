"""What a browser would allow: the Fetch Standard's CORS rules as values (the judge behind `probe`).

`corsproxy.cors` decides what the *proxy* answers; this module judges *any* server's answer
the way a browser does, so that `probe` can say "is it the API or the browser?". One small
function per Fetch step, each citing its section of https://fetch.spec.whatwg.org/:

- `needs_preflight` / `unsafe_header_names` / `acrh_value`: §2.2.2 "CORS-safelisted
  request-header", "CORS-unsafe request-header names", §4.1 "main fetch" (when to preflight).
- `judge_preflight`: "CORS-preflight fetch" (ok status, CORS check, methods, headers).
- `judge_cors`: "CORS check", plus §4.4 "HTTP-redirect fetch" for a redirect.

Headers are sequences of ``(name, value)`` pairs as received (order and duplicates kept);
values are compared byte for byte where the standard says so. Judging is by the standard;
where Chromium decides differently, the `Verdict` names the departure (see DEPARTURES).
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from urllib.parse import urljoin, urlsplit

from corsproxy.cors import NON_WILDCARD_HEADER, SAFELISTED_METHODS

Headers = Sequence[tuple[str, str]]

ACAO = "Access-Control-Allow-Origin"
ACAC = "Access-Control-Allow-Credentials"
ACAM = "Access-Control-Allow-Methods"
ACAH = "Access-Control-Allow-Headers"
ACEH = "Access-Control-Expose-Headers"

# §2.2.1 "normalize a method": fetch() upper-cases only these; any other method is sent as written.
_NORMALIZED_METHODS = frozenset({"DELETE", "GET", "HEAD", "OPTIONS", "POST", "PUT"})
# §2.2.1 "forbidden method": fetch() throws for these.
FORBIDDEN_METHODS = frozenset({"CONNECT", "TRACE", "TRACK"})
# §2.2.2 "forbidden request-header": a page cannot set these; the browser owns them.
FORBIDDEN_HEADER_NAMES = frozenset({
    "accept-charset", "accept-encoding", "access-control-request-headers",
    "access-control-request-method", "connection", "content-length", "cookie", "cookie2",
    "date", "dnt", "expect", "host", "keep-alive", "origin", "referer", "set-cookie", "te",
    "trailer", "transfer-encoding", "upgrade", "via",
})
_FORBIDDEN_PREFIXES = ("proxy-", "sec-")
_METHOD_OVERRIDES = frozenset({"x-http-method", "x-http-method-override", "x-method-override"})
# §2.2.2 CORS-safelisted request-header: the three Content-Type essences.
SAFELISTED_CONTENT_TYPES = ("application/x-www-form-urlencoded", "multipart/form-data", "text/plain")
MAX_SAFELISTED_VALUE = 128      # bytes, per value
MAX_SAFELISTED_TOTAL = 1024     # bytes, all safelisted values together
# §2.2.2 "CORS-safelisted response-header name": readable without Access-Control-Expose-Headers.
SAFELISTED_RESPONSE_HEADERS = frozenset({
    "cache-control", "content-language", "content-length", "content-type", "expires",
    "last-modified", "pragma",
})
REDIRECT_STATUSES = frozenset({301, 302, 303, 307, 308})   # §2.2.3 "redirect status"

# Where Chromium departs from the standard, by name (the differential test flips these).
CHROMIUM_WILDCARD_AUTHORIZATION = "chromium-wildcard-covers-authorization"
DEPARTURES = {
    CHROMIUM_WILDCARD_AUTHORIZATION:
        "Chromium still lets Access-Control-Allow-Headers: * cover Authorization (Firefox and "
        "the Fetch Standard do not)",
}

# RFC 9110 §5.6.2 token: a method, a header name.
_TOKEN = re.compile(r"[!#$%&'*+\-.^_`|~0-9A-Za-z]+")
# §2.2.2 "CORS-unsafe request-header byte".
_UNSAFE_BYTES = frozenset(chr(b) for b in range(0x20) if b != 0x09) | frozenset('"():<>?@[\\]{}\x7f')
# §2.2.2 Accept-Language / Content-Language: only these bytes are safelisted.
_LANGUAGE_BYTES = frozenset("0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz *,-.;=")
_HTTP_WHITESPACE = "\t\n\r "


# --- values -------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Fix:
    """One thing the server must send: a header and its exact value, or (header None) a status."""

    header: str | None
    value: str

    def __str__(self) -> str:
        return f"{self.header}: {self.value}" if self.header else f"status {self.value}"


@dataclass(frozen=True, slots=True)
class Snippets:
    """Configuration that would make a server send the fixes."""

    corsproxy_yaml: str
    express: str
    nginx: str


@dataclass(frozen=True, slots=True)
class Redirect:
    """What a browser does with a redirect of a CORS request (§4.4 HTTP-redirect fetch)."""

    status: int
    location: str          # absolute URL the browser goes to next
    method: str            # the method of the next request (POST may become GET)
    origin: str            # the Origin of the next request: 'null' after a cross-origin hop


@dataclass(frozen=True, slots=True)
class Verdict:
    """Would a browser let the page go on? ``reasons`` say why not, each naming the header."""

    allowed: bool
    reasons: tuple[str, ...] = ()
    fixes: tuple[Fix, ...] = ()
    snippets: Snippets | None = None
    notes: tuple[str, ...] = ()
    departures: tuple[str, ...] = ()   # keys of DEPARTURES that apply to this verdict
    redirect: Redirect | None = None


# --- the request side: would the browser preflight? ---------------------------------------------


def normalize_method(method: str) -> str:
    """§2.2.1 "normalize a method": what fetch() sends for `method`."""
    upper = method.upper()
    return upper if upper in _NORMALIZED_METHODS else method


def is_token(text: str) -> bool:
    """RFC 9110 §5.6.2 token: what a method or a header name must be."""
    return _TOKEN.fullmatch(text) is not None


def method_problem(method: str) -> str | None:
    """Why fetch() would refuse `method` outright (not a token, or a forbidden method)."""
    if not is_token(method):
        return f"method {method!r} is not a valid HTTP method token"
    if method.upper() in FORBIDDEN_METHODS:
        return f"fetch() refuses method {method.upper()}: it is a forbidden method (Fetch Standard §2.2.1)"
    return None


def is_forbidden_header(name: str, value: str = "") -> bool:
    """§2.2.2 "forbidden request-header": a page's fetch() silently drops it."""
    lower = name.lower()
    if lower in FORBIDDEN_HEADER_NAMES or lower.startswith(_FORBIDDEN_PREFIXES):
        return True
    # X-HTTP-Method(-Override) / X-Method-Override naming a forbidden method.
    return lower in _METHOD_OVERRIDES and any(
        part.strip(" \t").upper() in FORBIDDEN_METHODS for part in value.split(","))


def forbidden_header_notes(headers: Headers) -> list[str]:
    """One sentence per header a page could not set itself."""
    return [
        f"'{name}' is a forbidden request-header name (Fetch Standard §2.2.2): a page's fetch() "
        "cannot set it (the browser drops it silently and sets its own), so it never causes a preflight"
        for name, value in headers if is_forbidden_header(name, value)
    ]


def page_headers(headers: Headers) -> list[tuple[str, str]]:
    """The headers a page can actually set: forbidden ones removed."""
    return [(name, value) for name, value in headers if not is_forbidden_header(name, value)]


def mime_essence(value: str) -> str | None:
    """MIME Sniffing §4.4 "parse a MIME type", up to the essence (parameters never fail it)."""
    text = value.strip(_HTTP_WHITESPACE)
    kind, slash, rest = text.partition("/")
    if not slash or not _TOKEN.fullmatch(kind):
        return None
    subtype = rest.partition(";")[0].rstrip(_HTTP_WHITESPACE)
    if not _TOKEN.fullmatch(subtype):
        return None
    return f"{kind}/{subtype}".lower()


def parse_single_range(value: str) -> tuple[int | None, int | None] | None:
    """§2.2.2 "parse a single range header value" with allowWhitespace false: `bytes=N-[M]`,
    `bytes=-M`; None for anything else (several ranges, spaces, another unit)."""
    match = re.fullmatch(r"([A-Za-z]*)=([0-9]*)-([0-9]*)", value)
    if match is None or match.group(1).lower() != "bytes":
        return None
    start = int(match.group(2)) if match.group(2) else None
    end = int(match.group(3)) if match.group(3) else None
    if start is None and end is None:
        return None
    if start is not None and end is not None and start > end:
        return None
    return start, end


def safelist_problem(name: str, value: str) -> str | None:
    """§2.2.2 "CORS-safelisted request-header": None when (name, value) is safelisted,
    else the sentence saying why it is not."""
    if len(value) > MAX_SAFELISTED_VALUE:
        return (f"header '{name}' has a {len(value)}-byte value; a safelisted value is at most "
                f"{MAX_SAFELISTED_VALUE} bytes")
    lower = name.lower()
    if lower in ("accept", "content-type"):
        bad = _first_unsafe_byte(value)
        if bad is not None:
            return (f"header '{name}' contains {bad!r}, a CORS-unsafe request-header byte "
                    '(control characters and " ( ) : < > ? @ [ \\ ] { } DEL)')
        if lower == "accept":
            return None
        essence = mime_essence(value)
        if essence not in SAFELISTED_CONTENT_TYPES:
            shown = f"'{essence}'" if essence else "not a MIME type"
            return (f"header '{name}: {value}' is {shown}, not one of the three safelisted types "
                    f"({', '.join(SAFELISTED_CONTENT_TYPES)})")
        return None
    if lower in ("accept-language", "content-language"):
        bad = next((char for char in value if char not in _LANGUAGE_BYTES), None)
        if bad is not None:
            return (f"header '{name}' contains {bad!r}; only 0-9 A-Z a-z space * , - . ; = are "
                    "safelisted in it")
        return None
    if lower == "range":
        parsed = parse_single_range(value)
        if parsed is None or parsed[0] is None:
            return (f"header 'Range: {value}' is not a single range of the form bytes=N- or "
                    "bytes=N-M (the only safelisted Range)")
        return None
    return f"header '{name}' is not a CORS-safelisted request-header"


def _unsafe(headers: Headers) -> list[tuple[str, str]]:
    """§2.2.2 "CORS-unsafe request-header names", with the reason for each (lower-case name, why)."""
    unsafe: list[tuple[str, str]] = []
    safelisted: list[str] = []
    total = 0
    for name, value in page_headers(headers):
        problem = safelist_problem(name, value)
        if problem is None:
            safelisted.append(name.lower())
            total += len(value)
        else:
            unsafe.append((name.lower(), problem))
    if total > MAX_SAFELISTED_TOTAL:
        why = (f"the safelisted headers' values total {total} bytes, over the {MAX_SAFELISTED_TOTAL}-byte "
               "limit, so each of them counts as unsafe")
        unsafe += [(name, f"header '{name}': {why}") for name in safelisted]
    return unsafe


def unsafe_header_names(headers: Headers) -> list[str]:
    """The sorted, lower-cased, unique names a preflight must ask for (§2.2.2 "convert header
    names to a sorted-lowercase set")."""
    return sorted({name for name, _ in _unsafe(headers)})


def acrh_value(headers: Headers) -> str:
    """The Access-Control-Request-Headers value a browser sends: names joined by ','
    ("CORS-preflight fetch")."""
    return ",".join(unsafe_header_names(headers))


def needs_preflight(method: str, headers: Headers) -> list[str]:
    """Why a browser sends a preflight first (§4.1 main fetch): empty when it does not."""
    method = normalize_method(method)
    reasons = []
    if method not in SAFELISTED_METHODS:
        reasons.append(f"method '{method}' is not a CORS-safelisted method (GET, HEAD, POST)")
    seen = set()
    for name, why in _unsafe(headers):
        if (name, why) not in seen:
            seen.add((name, why))
            reasons.append(why)
    return reasons


# --- the response side --------------------------------------------------------------------------


def judge_cors(status: int | None, headers: Headers, origin: str, credentials: bool, *,
               url: str | None = None, method: str = "GET", unsafe_names: Sequence[str] = (),
               upstream: str | None = None) -> Verdict:
    """The "CORS check" of a response to a CORS request, and for a redirect what the
    browser does next (§4.4 "HTTP-redirect fetch"). `method`/`unsafe_names`/`upstream` only shape the fix snippets."""
    reasons, fixes = _cors_check(headers, origin, credentials)
    redirect = None
    notes: list[str] = []
    if not reasons and status in REDIRECT_STATUSES and url is not None:
        redirect, problem, notes = _follow(status, headers, url, origin, normalize_method(method), credentials)
        if problem:
            reasons.append(problem)
    elif not reasons:
        notes = _hidden_headers_note(headers, credentials)
    return _verdict(reasons, fixes, origin, credentials, method, unsafe_names, upstream,
                    notes=notes, redirect=redirect)


def judge_preflight(status: int, headers: Headers, origin: str, method: str,
                    unsafe_names: Sequence[str], credentials: bool, *,
                    upstream: str | None = None) -> Verdict:
    """Fetch "CORS-preflight fetch": the preflight response passes the CORS check, has
    an ok status, and its allowed methods and headers cover the request."""
    method = normalize_method(method)
    names = sorted({name.lower() for name in unsafe_names})
    reasons: list[str] = []
    fixes: list[Fix] = []
    departures: list[str] = []
    if 300 <= status <= 399:
        where = _get(headers, "location")
        reasons.append(
            f"the preflight (OPTIONS) was answered with a redirect ({status}"
            f"{f' to {where}' if where else ''}); a browser never follows a redirect for a "
            "preflight: answer OPTIONS itself with 204, or point the page at the final URL")
        fixes.append(Fix(None, "204"))
    elif not 200 <= status <= 299:
        reasons.append(
            f"the preflight (OPTIONS) was answered {status}; a browser needs an ok status "
            "(200-299): answer OPTIONS with 204 and the Access-Control-Allow-* headers")
        fixes.append(Fix(None, "204"))
    cors_reasons, cors_fixes = _cors_check(headers, origin, credentials)
    reasons += cors_reasons
    fixes += cors_fixes

    methods, problem = _extract_list(headers, ACAM, "methods")
    if problem:
        reasons.append(problem)
    elif (problem := _method_problem(method, methods, credentials)) is not None:
        reasons.append(problem)
    if problem:
        fixes.append(Fix(ACAM, method))

    allowed, problem = _extract_list(headers, ACAH, "header names")
    if problem:
        reasons.append(problem)
        missing = names
    else:
        missing = []
        for name in names:
            why, departure = _header_problem(name, allowed, credentials)
            if why is not None:
                reasons.append(why)
                missing.append(name)
            if departure is not None:
                departures.append(departure)
    if missing:
        fixes.append(Fix(ACAH, ", ".join(missing)))
    return _verdict(reasons, fixes, origin, credentials, method, names, upstream,
                    departures=departures)


# --- one check each ------------------------------------------------------------------------------


def _cors_check(headers: Headers, origin: str, credentials: bool) -> tuple[list[str], list[Fix]]:
    """Fetch "CORS check": exactly one Access-Control-Allow-Origin equal to the origin (byte for
    byte) or `*` without credentials; with credentials Access-Control-Allow-Credentials: true."""
    reasons: list[str] = []
    fixes: list[Fix] = []
    values = _values(headers, ACAO)
    if not values:
        reasons.append(f"the response has no {ACAO} header, so the page may not read it; the server "
                       f"must send {ACAO}: {origin}")
    elif len(values) > 1:
        # "CORS check" gets the header: "get" joins repeated headers with ", ", which never equals one origin.
        shown = ", ".join(repr(v) for v in values)
        reasons.append(f"the response has {len(values)} {ACAO} headers ({shown}) and a browser "
                       f"accepts exactly one (it sees '{', '.join(values)}'); often both the "
                       "application and a proxy in front of it add one: remove one of them")
    elif "," in values[0]:
        reasons.append(f"{ACAO} is '{values[0]}', a list; it must hold exactly one origin: send "
                       f"'{origin}' (pick it on the server from the request's Origin)")
    elif values[0] == "*":
        if credentials:
            reasons.append(f"{ACAO} is '*', which a browser never accepts for a request with "
                           f"credentials (cookies, HTTP auth); send the exact origin '{origin}' "
                           f"and {ACAC}: true")
    elif values[0] != origin:
        hint = ""
        if values[0].lower().rstrip("/") == origin.lower():
            hint = " (it differs only in letter case or a trailing slash; browsers compare byte for byte)"
        reasons.append(f"{ACAO} is '{values[0]}', not the page's origin '{origin}'{hint}")
    if reasons:
        fixes.append(Fix(ACAO, origin))
    if credentials:
        # "CORS check", last steps: the value must be exactly `true` (case-sensitive).
        acac = _get(headers, ACAC)
        if acac != "true":
            shown = "is missing" if acac is None else f"is '{acac}'"
            reasons.append(f"{ACAC} {shown}; for a request with credentials a browser needs exactly "
                           f"'{ACAC}: true'")
            fixes.append(Fix(ACAC, "true"))
    return reasons, fixes


def _method_problem(method: str, methods: list[str] | None, credentials: bool) -> str | None:
    """Fetch "CORS-preflight fetch": the method is listed (byte for byte), safelisted, or covered by `*`
    (only without credentials)."""
    listed = methods or []
    if method in SAFELISTED_METHODS or method in listed or ("*" in listed and not credentials):
        return None
    if "*" in listed:
        return (f"{ACAM} is '*', which is no wildcard for a request with credentials; list "
                f"'{method}' explicitly")
    if any(item.upper() == method.upper() for item in listed):
        return (f"{ACAM} lists '{next(i for i in listed if i.upper() == method.upper())}' but "
                f"methods compare byte for byte: list '{method}'")
    if methods is None:
        return f"the preflight response has no {ACAM} header; it must list '{method}'"
    return f"{ACAM} ('{', '.join(listed)}') does not include '{method}'"


def _header_problem(name: str, allowed: list[str] | None,
                    credentials: bool) -> tuple[str | None, str | None]:
    """Fetch "CORS-preflight fetch": (reason or None, departure or None) for one requested name.
    Names compare case-insensitively; `*` covers every name but Authorization, and only
    without credentials."""
    listed = {item.lower() for item in allowed or []}
    if name in listed:
        return None, None
    wildcard = "*" in listed
    if wildcard and not credentials:
        if name != NON_WILDCARD_HEADER:
            return None, None
        return (f"{ACAH} is '*', which does not cover 'authorization' (Fetch Standard: Authorization "
                "is a CORS non-wildcard request-header name; Firefox blocks it too, Chromium is "
                "laxer and still lets it through): list Authorization explicitly"),\
            CHROMIUM_WILDCARD_AUTHORIZATION
    if wildcard:
        return (f"{ACAH} is '*', which is no wildcard for a request with credentials; "
                f"list '{name}' explicitly"), None
    if allowed is None:
        return f"the preflight response has no {ACAH} header; it must list '{name}'", None
    return f"{ACAH} ('{', '.join(allowed)}') does not include '{name}'", None


def _follow(status: int, headers: Headers, url: str, origin: str, method: str,
            credentials: bool) -> tuple[Redirect | None, str | None, list[str]]:
    """§4.4 HTTP-redirect fetch: where the browser goes next, with which method and Origin."""
    location = _get(headers, "location")
    if location is None:
        return None, None, [f"status {status} without a Location header: the page gets this response as it is"]
    target = urljoin(url, location)
    parts = urlsplit(target)
    if parts.scheme not in ("http", "https"):
        return None, (f"the redirect goes to '{target}', which is not http(s); a browser fails the "
                      "request (network error)"), []
    if parts.username is not None or parts.password is not None:
        return None, (f"the redirect Location '{location}' contains user:password; a browser fails a "
                      "CORS request redirected to a URL with credentials"), []
    # §4.4: 301/302 turn POST into GET, 303 turns everything but GET/HEAD into GET.
    if (status in (301, 302) and method == "POST") or (status == 303 and method not in ("GET", "HEAD")):
        method = "GET"
    # §4.4 (tainted origin flag): a hop to another origin, from a URL not of the page's origin, taints the
    # request's origin, which is then serialised as "null".
    cross = url_origin(url) != url_origin(target)
    next_origin = "null" if cross and origin != url_origin(url) else origin
    redirect = Redirect(status, target, method, next_origin)
    note = (f"the response is a redirect ({status}); a browser follows it to {target} "
            f"({method}, Origin: {next_origin})")
    if cross:
        note += ", dropping any Authorization header (§4.4)"
    if next_origin == "null":
        note += (f"; the redirect leaves this server's origin, so that response needs {ACAO}: null "
                 "(or * without credentials)")
    note += (f"; whether the page can read the final response depends on that server: "
             f"corsproxy probe {target} --origin {next_origin} --method {method}")
    return redirect, None, [note]


def _hidden_headers_note(headers: Headers, credentials: bool) -> list[str]:
    """§2.2.2 / §4.1: response headers JavaScript cannot read (neither safelisted nor exposed;
    `*` exposes all only without credentials)."""
    exposed, _ = _extract_list(headers, ACEH, "header names")
    readable = {item.lower() for item in exposed or []}
    if "*" in readable and not credentials:
        return []
    present = {name.lower() for name, _ in headers}
    hidden = sorted(name for name in present - SAFELISTED_RESPONSE_HEADERS - readable
                    if not name.startswith("access-control-") and name not in ("set-cookie", "set-cookie2"))
    if not hidden:
        return []
    return [f"the page's JavaScript cannot read these response headers (not CORS-safelisted and not "
            f"in {ACEH}): {', '.join(hidden)}"]


# --- helpers ------------------------------------------------------------------------------------


def _values(headers: Headers, name: str) -> list[str]:
    lower = name.lower()
    return [value.strip(" \t") for key, value in headers if key.lower() == lower]


def _get(headers: Headers, name: str) -> str | None:
    """§2.2.2 "get": every value of `name` joined by ", ", None when absent."""
    values = _values(headers, name)
    return ", ".join(values) if values else None


def _extract_list(headers: Headers, name: str, what: str) -> tuple[list[str] | None, str | None]:
    """§2.2.2 "extract header list values" for a `#token` header: (values or None when
    absent, problem sentence when a value does not parse)."""
    values = _values(headers, name)
    if not values:
        return None, None
    items: list[str] = []
    for value in values:
        for item in (part.strip(" \t") for part in value.split(",")):
            if not item:
                continue  # RFC 9110 §5.6.1: empty list elements are ignored
            if not _TOKEN.fullmatch(item):
                return None, (f"{name} '{value}' is not a comma-separated list of {what} "
                              f"('{item}' is not a token); a browser fails the preflight")
            items.append(item)
    return items, None


def _first_unsafe_byte(value: str) -> str | None:
    return next((char for char in value if char in _UNSAFE_BYTES), None)


def url_origin(url: str) -> str:
    """The origin of an http(s) URL as a browser serialises it (lower case, default port dropped)."""
    parts = urlsplit(url)
    scheme = parts.scheme.lower()
    host = (parts.hostname or "").lower()
    if ":" in host:
        host = f"[{host}]"
    port = parts.port
    if port is None or port == {"http": 80, "https": 443}.get(scheme):
        return f"{scheme}://{host}"
    return f"{scheme}://{host}:{port}"


def _verdict(reasons: list[str], fixes: list[Fix], origin: str, credentials: bool, method: str,
             unsafe_names: Sequence[str], upstream: str | None, *, notes: Iterable[str] = (),
             departures: Iterable[str] = (), redirect: Redirect | None = None) -> Verdict:
    if not reasons:
        return Verdict(True, notes=tuple(notes), departures=tuple(departures), redirect=redirect)
    return Verdict(False, tuple(reasons), tuple(dict.fromkeys(fixes)),
                   snippets(origin, credentials, method, unsafe_names, upstream),
                   tuple(notes), tuple(departures), redirect)


# --- fix snippets -------------------------------------------------------------------------------


def snippets(origin: str, credentials: bool, method: str, unsafe_names: Sequence[str],
             upstream: str | None = None) -> Snippets:
    """corsproxy YAML, Express `cors()` and nginx `add_header` lines that answer this request
    (preflight and actual response) the way a browser accepts."""
    method = normalize_method(method)
    names = sorted({name.lower() for name in unsafe_names})
    extra_method = method not in SAFELISTED_METHODS
    return Snippets(_yaml(origin, credentials, method, names, upstream),
                    _express(origin, credentials, method, names, extra_method),
                    _nginx(origin, credentials, method, names, extra_method))


_DEFAULT_YAML_METHODS = ("GET", "HEAD", "POST", "PUT", "PATCH", "DELETE")


def _yaml(origin: str, credentials: bool, method: str, names: list[str], upstream: str | None) -> str:
    if origin == "null":
        return ("# corsproxy refuses the origin 'null' (sandboxed iframes and file:// pages of every\n"
                "# site share it): serve the page from an http(s) origin and allow that origin.")
    lines = ["cors:", f"  allow_origins: [{origin}]"]
    if method not in _DEFAULT_YAML_METHODS and method not in SAFELISTED_METHODS:
        lines.append(f"  allow_methods: [{', '.join((*_DEFAULT_YAML_METHODS, method))}]")
    if names:
        lines.append(f"  allow_headers: [{', '.join(names)}]")
    if credentials:
        lines.append("  allow_credentials: true")
    lines += ["routes:", "  - prefix: /", f"    upstream: {upstream or 'http://127.0.0.1:9000'}",
              "# then point the page at the proxy (http://127.0.0.1:8080) instead of the server"]
    return "\n".join(lines)


def _express(origin: str, credentials: bool, method: str, names: list[str], extra_method: bool) -> str:
    options = [f"  origin: {json.dumps(origin)},"]
    if extra_method:
        options.append(f"  methods: {json.dumps(['GET', 'HEAD', 'POST', method])},")
    if names:
        options.append(f"  allowedHeaders: {json.dumps(names)},")
    if credentials:
        options.append("  credentials: true,")
    return "\n".join(['const cors = require("cors");', "app.use(cors({", *options, "}));"])


def _nginx(origin: str, credentials: bool, method: str, names: list[str], extra_method: bool) -> str:
    common = [f'add_header {ACAO} "{origin}" always;']
    if credentials:
        common.append(f'add_header {ACAC} "true" always;')
    common.append('add_header Vary "Origin" always;')
    preflight = list(common)
    methods = ("GET", "HEAD", "POST", method) if extra_method else ("GET", "HEAD", "POST")
    preflight.append(f'add_header {ACAM} "{", ".join(methods)}" always;')
    if names:
        preflight.append(f'add_header {ACAH} "{", ".join(names)}" always;')
    preflight.append('add_header Access-Control-Max-Age "600" always;')
    return "\n".join([
        "location / {",
        "    if ($request_method = OPTIONS) {",
        *(f"        {line}" for line in preflight),
        "        return 204;",
        "    }",
        *(f"    {line}" for line in common),
        "    # proxy_pass ... as before",
        "}",
    ])

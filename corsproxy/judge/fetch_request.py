"""What a page's fetch() sends, and whether a browser preflights it (Fetch Standard,
https://fetch.spec.whatwg.org/): §2.2.1 methods, §2.2.2 "forbidden request-header" and
"CORS-safelisted request-header", §4.1 "main fetch" (when to preflight).

- `needs_preflight` says why a browser sends a preflight first (empty: it does not);
- `unsafe_header_names` / `acrh_value`: what that preflight asks for;
- `method_problem` / `forbidden_header_notes` / `page_headers`: what fetch() refuses or drops.

Values are checked byte for byte where the standard says so; the judge of the server's answers
is `corsproxy.judge.browser`.
"""

from __future__ import annotations

import re

from corsproxy.judge.fetch_headers import Headers, is_token
from corsproxy.policy.cors import NORMALIZED_METHODS, SAFELISTED_METHODS

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
# §2.2.2 "CORS-unsafe request-header byte".
_UNSAFE_BYTES = frozenset(chr(b) for b in range(0x20) if b != 0x09) | frozenset('"():<>?@[\\]{}\x7f')
# §2.2.2 Accept-Language / Content-Language: only these bytes are safelisted.
_LANGUAGE_BYTES = frozenset("0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz *,-.;=")
_HTTP_WHITESPACE = "\t\n\r "


def normalize_method(method: str) -> str:
    """§2.2.1 "normalize a method": what fetch() sends for `method`."""
    upper = method.upper()
    return upper if upper in NORMALIZED_METHODS else method


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
    if not slash or not is_token(kind):
        return None
    subtype = rest.partition(";")[0].rstrip(_HTTP_WHITESPACE)
    if not is_token(subtype):
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


def _first_unsafe_byte(value: str) -> str | None:
    return next((char for char in value if char in _UNSAFE_BYTES), None)


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


"""What a browser would allow: the Fetch Standard's CORS check of a server's answers, as values
(the judge behind `probe`).

`corsproxy.policy.cors` decides what the *proxy* answers; this module judges *any* server's answer
the way a browser does, so that `probe` can say "is it the API or the browser?". One small
function per Fetch step, each citing its section of https://fetch.spec.whatwg.org/:

- `judge_preflight`: "CORS-preflight fetch" (ok status, CORS check, methods, headers).
- `judge_cors`: "CORS check", plus §4.4 "HTTP-redirect fetch" for a redirect.

Whether a request is preflighted, and what it asks for, is `corsproxy.judge.fetch_request`'s; the
fixes in a blocking verdict (`Fix`, `Remedy`) are `corsproxy.judge.remedies`'. Judging is by the
standard; where Chromium decides differently, the `Verdict` names the departure (see DEPARTURES).
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from urllib.parse import urljoin, urlsplit

from corsproxy.judge.fetch_headers import (
    ACAC,
    ACAH,
    ACAM,
    ACAO,
    ACEH,
    Headers,
    extract_header_list,
    get_header,
    header_values,
)
from corsproxy.judge.fetch_request import normalize_method
from corsproxy.judge.remedies import Fix, Remedy, remedy
from corsproxy.policy.cors import NON_WILDCARD_HEADER, SAFELISTED_METHODS

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


# --- values -------------------------------------------------------------------------------------


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
    remedy: Remedy | None = None       # the policy that would fix it (None when allowed)
    notes: tuple[str, ...] = ()
    departures: tuple[str, ...] = ()   # keys of DEPARTURES that apply to this verdict
    redirect: Redirect | None = None


# --- the response side --------------------------------------------------------------------------


def judge_cors(status: int | None, headers: Headers, origin: str, credentials: bool, *,
               url: str | None = None, method: str = "GET", unsafe_names: Sequence[str] = (),
               upstream: str | None = None) -> Verdict:
    """The "CORS check" of a response to a CORS request, and for a redirect what the
    browser does next (§4.4 "HTTP-redirect fetch"). `method`/`unsafe_names`/`upstream` only shape the remedy."""
    reasons, fixes = _cors_check(headers, origin, credentials)
    redirect = None
    notes: list[str] = []
    if reasons and status in REDIRECT_STATUSES:
        # Fetch §4.4 "HTTP-redirect fetch" runs after the CORS check of the redirect response
        # itself: a user looking at the final URL's headers would look in the wrong place.
        where = get_header(headers, "location")
        reasons[0] = (f"the browser judged the redirect response ({status}"
                      f"{f' to {where}' if where else ''}) itself, before following it: {reasons[0]}")
    elif status in REDIRECT_STATUSES and url is not None:
        redirect, problem, notes = _follow(status, headers, url, origin, normalize_method(method))
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
        where = get_header(headers, "location")
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

    methods, problem = extract_header_list(headers, ACAM, "methods")
    if problem:
        reasons.append(problem)
    elif (problem := _method_problem(method, methods, credentials)) is not None:
        reasons.append(problem)
    if problem:
        fixes.append(Fix(ACAM, method))

    allowed, problem = extract_header_list(headers, ACAH, "header names")
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
    values = header_values(headers, ACAO)
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
        acac = get_header(headers, ACAC)
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


def _follow(status: int, headers: Headers, url: str, origin: str,
            method: str) -> tuple[Redirect | None, str | None, list[str]]:
    """§4.4 HTTP-redirect fetch: where the browser goes next, with which method and Origin."""
    location = get_header(headers, "location")
    if location is None:
        return None, None, [f"status {status} without a Location header: the page gets this response as it is"]
    try:
        target = urljoin(url, location)
        parts = urlsplit(target)
        parts.port  # urllib checks the port only when it is read
    except ValueError:
        return None, (f"the redirect Location '{location}' is not a valid URL; a browser fails the "
                      "request (network error)"), []
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
    exposed, _ = extract_header_list(headers, ACEH, "header names")
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
                   remedy(origin, credentials, method, unsafe_names, upstream),
                   tuple(notes), tuple(departures), redirect)



"""The CORS decision (Fetch Standard §3.2 "CORS protocol"), as values.

`preflight()` answers a CORS-preflight request and `actual()` judges any other request; each
returns a `Decision` whose headers the aiohttp layer copies onto the response. One small
function per check, in the order the Fetch Standard's "CORS-preflight fetch" and "CORS check"
make them. Response headers are built in a fresh list per call.

Two kinds of refusal, answered differently on purpose:
- a refused *origin* gets 403 and no Access-Control-Allow-* header at all: a page of another
  site learns nothing, and the browser shows a plain CORS failure;
- an *allowed* origin asking for a method, header or private-network access the route does not
  allow gets an ok preflight that passes the CORS check but lists only what IS allowed, with
  Access-Control-Max-Age: 0. The browser then fails the preflight at the method or header
  step, and its console names the missing method or header instead of blaming the origin.
Every refusal carries `X-Corsproxy-Refused` (the reason sentences) and `X-Corsproxy-Change` (the
file:line of each key to change), for the network tab and `probe`.

Policies are compiled at load (model.CorsPolicy): origins serialised, methods upper-case,
header names lower-case; the request path only compares strings.
"""

from __future__ import annotations

from functools import lru_cache
from typing import NamedTuple

from corsproxy.model import CorsPolicy, Decision, RequestFacts
from corsproxy.policy.memo import keep

# Fetch Standard "CORS-safelisted method": a browser never waits for these in
# Access-Control-Allow-Methods, so listing them is never required.
SAFELISTED_METHODS = frozenset({"GET", "HEAD", "POST"})
# Fetch Standard "CORS non-wildcard request-header name": `*` in Access-Control-Allow-Headers
# never covers it, and with credentials `*` is no wildcard at all (§3.2.3), so the proxy echoes
# the asked names instead of sending `*`.
NON_WILDCARD_HEADER = "authorization"
# Fetch "CORS-safelisted request-header" names. A browser lists one in
# Access-Control-Request-Headers only when its value is not safelisted (Content-Type:
# application/json); they are always allowed, as Starlette and rack-cors do, so a JSON fetch()
# needs no allow_headers entry.
SAFELISTED_HEADERS = frozenset({"accept", "accept-language", "content-language", "content-type"})
REFUSED_HEADER = "X-Corsproxy-Refused"
CHANGE_HEADER = "X-Corsproxy-Change"

# Fetch "normalize a method": the only methods a browser upper-cases before sending.
NORMALIZED_METHODS = frozenset({"DELETE", "GET", "HEAD", "OPTIONS", "POST", "PUT"})
METHOD_ORDER = ("GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS")
_PREFLIGHT_VARY = ("Origin", "Access-Control-Request-Method", "Access-Control-Request-Headers")
_ACTUAL_VARY = ("Origin",)


def origin_allowed(policy: CorsPolicy, origin: str) -> bool:
    """Exact string match against the serialised allow_origins, `*`, or a full regex match.

    The request's Origin is not normalised: browsers send it serialised (Fetch §3.2.2
    `Origin` header), so anything else (upper case, a path, a trailing slash) is foreign.
    """
    if policy.allow_any_origin or origin in policy.allow_origins:
        return True
    regex = policy.allow_origin_regex
    return regex is not None and len(origin) <= 1024 and regex.fullmatch(origin) is not None


def vary_tokens(policy: CorsPolicy, preflight: bool) -> tuple[str, ...]:
    """The Vary tokens for a response of this policy.

    A preflight's answer depends on all three request headers. Another response depends on
    Origin whenever Access-Control-Allow-Origin echoes it, i.e. unless it is `*`.
    """
    if preflight:
        return _PREFLIGHT_VARY
    return () if _wildcard_origin(policy) else _ACTUAL_VARY


def preflight(policy: CorsPolicy, facts: RequestFacts) -> Decision:
    """Answer a CORS-preflight request (Fetch §3.2.2 HTTP requests, "CORS-preflight fetch").

    204 when every check passes; 403 for a refused origin; for an allowed origin asking for
    more than the route allows, a 204 that lets the browser name what is missing (see above).
    """
    vary = _vary_header(vary_tokens(policy, preflight=True))
    origin = facts.origin or ""
    if not origin_allowed(policy, origin):
        # Nothing else is worth telling a page whose origin is refused.
        return _refusal(vary, [_origin_refusal(policy, origin)], 403)
    asked = facts.request_method or ""
    requested = asked.upper()
    refusals = [
        refusal
        for refusal in (
            _method_case_problem(asked) or _method_problem(policy, requested),
            *(_header_problem(policy, name) for name in facts.request_headers),
            _private_network_problem(policy, facts.request_private_network),
        )
        if refusal is not None
    ]
    # Fetch §3.2.3 HTTP responses: what a preflight response carries.
    headers = _allow_origin_headers(policy, origin)
    methods = requested if policy.allow_any_method else allowed_methods_value(policy)
    if methods:
        headers.append(("Access-Control-Allow-Methods", methods))
    names = _allowed_names(policy, facts.request_headers)
    if names:
        headers.append(("Access-Control-Allow-Headers", ", ".join(names)))
    if facts.request_private_network and policy.allow_private_network:
        # WICG Private Network Access: the answer to Access-Control-Request-Private-Network.
        headers.append(("Access-Control-Allow-Private-Network", "true"))
    if refusals:
        # Max-Age 0: the browser must not cache this answer, so the fix works on the next try.
        headers.append(("Access-Control-Max-Age", "0"))
        return _refusal(tuple(headers) + vary, refusals, 204)
    headers.append(("Access-Control-Max-Age", str(int(policy.max_age))))
    return Decision(True, "preflight", tuple(headers) + vary, (), 204)


def actual(policy: CorsPolicy, facts: RequestFacts) -> Decision:
    """Judge a request that is not a preflight (Fetch §3.2.3 and its "CORS check")."""
    vary = _vary_header(vary_tokens(policy, preflight=False))
    origin = facts.origin
    if origin is None:
        return _without_origin(policy, facts, vary)
    if facts.proxy_origin is not None and origin == facts.proxy_origin:
        # Same-origin: the browser runs no CORS check, so no CORS headers are needed.
        return Decision(True, "same-origin", vary)
    if not origin_allowed(policy, origin):
        return _refusal(vary, [_origin_refusal(policy, origin)], 403)
    headers = _allow_origin_headers(policy, origin)
    if policy.expose_headers:
        headers.append(("Access-Control-Expose-Headers", ", ".join(policy.expose_headers)))
    return Decision(True, "cors", tuple(headers) + vary)


# Fetch Metadata (W3C "Fetch Metadata Request Headers" §2.1): a request the user started
# ("none", typed or bookmarked) or the proxy's own origin made. Any other value, or one we do
# not know, is another site's (same-site is another port of localhost: still another origin).
_OWN_FETCH_SITES = {"same-origin": "same-origin", "none": "no-origin"}


def _without_origin(policy: CorsPolicy, facts: RequestFacts, vary) -> Decision:
    """A request without Origin: curl and servers send no Sec-Fetch-Site and pass as before.

    A browser sends no Origin on <img>, <script>, no-cors fetch GET/HEAD and navigations, but
    always Sec-Fetch-Site: such a request from another site would spend the headers the proxy
    injects (and a <script> reads the answer), so it passes only when its initiator, the
    Referer's origin, is allowed by the policy (Fetch Metadata resource isolation).
    """
    if facts.fetch_site is None:
        # Not a browser (curl, a server); Vary still keeps caches honest.
        return Decision(True, "no-origin", vary)
    own = _OWN_FETCH_SITES.get(facts.fetch_site)
    if own is not None:
        return Decision(True, own, vary)
    initiator = facts.referer_origin
    if initiator is not None and origin_allowed(policy, initiator):
        return Decision(True, "no-origin", vary)
    return _refusal(vary, [_initiator_refusal(policy, facts)], 403)


class DecisionCache:
    """Finished decisions, so a repeated request re-runs no check.

    A preflight's Decision is a pure function of the policy and of the request's Origin and
    Access-Control-Request-Method, -Headers and -Private-Network, and a page sends the same few
    of those over and over. Any other request's is a pure function of the policy and its
    facts, which the server keeps one object per distinct request for (app._facts): those are
    keyed by the facts object itself. Bounded: when full, the oldest entry goes; a preflight key
    longer than MAX_KEY_CHARS is answered but not kept. One cache belongs to one loaded config
    (the server's State): a reload makes a new one, so no answer outlives the policy it was made for.
    """

    MAX_KEY_CHARS = 2048

    def __init__(self, size: int = 1024) -> None:
        self._size = size
        # id() keys cheaply (a CorsPolicy hashes all its fields); the entry keeps the objects
        # themselves, so an id reused by another object never matches.
        self._entries: dict[tuple, tuple[CorsPolicy, Decision]] = {}
        self._actual: dict[tuple[int, int], tuple[CorsPolicy, RequestFacts, Decision]] = {}

    def __len__(self) -> int:
        return len(self._entries) + len(self._actual)

    def preflight(self, policy: CorsPolicy, facts: RequestFacts) -> Decision:
        """`preflight(policy, facts)`, from the cache when it was answered before."""
        key = (id(policy), facts.origin, facts.request_method, facts.request_headers, facts.request_private_network)
        entry = self._entries.get(key)
        if entry is not None and entry[0] is policy:
            return entry[1]
        decision = preflight(policy, facts)
        size = len(facts.origin or "") + len(facts.request_method or "") + sum(map(len, facts.request_headers))
        if size <= self.MAX_KEY_CHARS:
            keep(self._entries, key, (policy, decision), self._size)
        return decision

    def actual(self, policy: CorsPolicy, facts: RequestFacts) -> Decision:
        """`actual(policy, facts)`, from the cache when these very facts were judged before."""
        key = (id(policy), id(facts))
        entry = self._actual.get(key)
        if entry is not None and entry[0] is policy and entry[1] is facts:
            return entry[2]
        return keep(self._actual, key, (policy, facts, actual(policy, facts)), self._size)[2]


# --- one check each: None when it passes, else the refusal --------------------------------------


class _Refusal(NamedTuple):
    reason: str          # one sentence: what, where (file:line) and the fix
    change: str = ""     # the file:line of the key to change ("" when the fix is in the page)


def _method_case_problem(asked: str) -> _Refusal | None:
    # Fetch "normalize a method" upper-cases only these six; any other method is sent as the
    # page wrote it and compared byte for byte, so 'patch' can never match 'PATCH' (and the
    # proxy's HTTP parser refuses a lower-case request line anyway).
    if asked == asked.upper() or asked.upper() in NORMALIZED_METHODS:
        return None
    return _Refusal(f"method '{asked}' is not upper-case: browsers upper-case only DELETE, GET, "
                    "HEAD, OPTIONS, POST and PUT, and methods are case-sensitive; write "
                    f"'{asked.upper()}' in the page's fetch() call")


def _method_problem(policy: CorsPolicy, method: str) -> _Refusal | None:
    # Fetch "CORS-preflight fetch": a CORS-safelisted method needs no listing.
    if policy.allow_any_method or method in policy.allow_methods or method in SAFELISTED_METHODS:
        return None
    where = policy.source_of("allow_methods")
    return _Refusal(f"method '{method}' is not in allow_methods of {policy.scope} ({where}); "
                    f"{_add(where, 'allow_methods', method)} to allow it", where)


def _header_allowed(policy: CorsPolicy, name: str) -> bool:
    # Names arrive lower-case in RequestFacts, so the comparison is case-insensitive (Fetch
    # "CORS-preflight fetch"). `*` in the config echoes every name, Authorization included and
    # with credentials too: it is the config's wildcard, not the response header's.
    return policy.allow_any_header or name in policy.allow_headers or name in SAFELISTED_HEADERS


def _header_problem(policy: CorsPolicy, name: str) -> _Refusal | None:
    if _header_allowed(policy, name):
        return None
    where = policy.source_of("allow_headers")
    return _Refusal(f"header '{name}' is not in allow_headers of {policy.scope} ({where}); "
                    f"{_add(where, 'allow_headers', name)} to allow it", where)


def _private_network_problem(policy: CorsPolicy, asked: bool) -> _Refusal | None:
    if not asked or policy.allow_private_network:
        return None
    where = policy.source_of("allow_private_network")
    return _Refusal(
        "private network access was asked (Access-Control-Request-Private-Network: true) but "
        f"allow_private_network is off for {policy.scope} ({where}); "
        "set allow_private_network: true to allow it", where)


def _origin_refusal(policy: CorsPolicy, origin: str) -> _Refusal:
    where = policy.source_of("allow_origins")
    if origin == "null":
        return _Refusal(
            "origin 'null' (a sandboxed iframe or a file:// page) is not allowed by "
            f"{policy.scope} ({where}); serve the page from an http(s) origin and add "
            "that origin to allow_origins", where)
    if policy.allow_origin_regex is not None:
        return _Refusal(
            f"origin '{origin}' is not in allow_origins and does not fully match "
            f"allow_origin_regex '{policy.allow_origin_regex.pattern}' of {policy.scope} "
            f"({where}, {policy.source_of('allow_origin_regex')}); "
            f"{_add(where, 'allow_origins', origin)} to allow it", where)
    return _Refusal(f"origin '{origin}' is not in allow_origins of {policy.scope} ({where}); "
                    f"{_add(where, 'allow_origins', origin)} to allow it", where)


def _add(where: str, key: str, value: str) -> str:
    """The fix: a config key to extend, or, for `serve --upstream`, the flag to pass."""
    return f"pass {where} {value}" if where.startswith("--") else f"add it to {key}"


def _refusal(headers: tuple[tuple[str, str], ...], refusals: list[_Refusal], status: int) -> Decision:
    reasons = tuple(refusal.reason for refusal in refusals)
    change = tuple(dict.fromkeys(refusal.change for refusal in refusals if refusal.change))
    told = [(REFUSED_HEADER, header_safe(join_reasons(reasons)))]
    if change:
        told.append((CHANGE_HEADER, ", ".join(change)))
    return Decision(False, "refused", headers + tuple(told), reasons, status, change)


def join_reasons(reasons: tuple[str, ...] | list[str]) -> str:
    """Several reasons on one line (a log field, a header), numbered so they never run together."""
    if len(reasons) == 1:
        return reasons[0]
    return "; ".join(f"({n}) {reason}" for n, reason in enumerate(reasons, 1))


def header_safe(text: str) -> str:
    """`text` as a header value: printable ASCII, anything else escaped (a refused origin or
    header name comes from the request and may hold any byte)."""
    escaped = text.encode("ascii", "backslashreplace").decode("ascii")
    return "".join(c if " " <= c <= "~" else f"\\x{ord(c):02x}" for c in escaped)


def _initiator_refusal(policy: CorsPolicy, facts: RequestFacts) -> _Refusal:
    why = ("an <img>, <script>, no-cors fetch() or navigation from another site must not spend "
           "the headers the proxy injects")
    site = f"Sec-Fetch-Site: {facts.fetch_site[:40]}"
    if facts.referer_origin is None:
        return _Refusal(
            f"a browser request without Origin ({site}) names no page it came from (no usable "
            f"Referer), so {policy.scope} cannot tell it from another site's; {why}; call it with "
            "fetch() in cors mode, or keep the page's referrerpolicy at its default")
    where = policy.source_of("allow_origins")
    return _Refusal(
        f"a browser request without Origin ({site}) came from page origin "
        f"'{facts.referer_origin}' (its Referer), which is not allowed by {policy.scope} "
        f"({where}); {why}; add that origin to allow_origins if the page is yours", where)


# --- response pieces ----------------------------------------------------------------------------


def _wildcard_origin(policy: CorsPolicy) -> bool:
    # Fetch §3.2.3: `*` is only a wildcard for requests without credentials.
    return policy.allow_any_origin and not policy.allow_credentials


def _allow_origin_headers(policy: CorsPolicy, origin: str) -> list[tuple[str, str]]:
    """A fresh list, so no decision ever sees another request's origin (cf. Starlette's leak)."""
    headers = [("Access-Control-Allow-Origin", "*" if _wildcard_origin(policy) else origin)]
    if policy.allow_credentials:
        # Fetch "CORS check": for a credentialed request the value must be exactly `true`.
        headers.append(("Access-Control-Allow-Credentials", "true"))
    return headers


def _allowed_names(policy: CorsPolicy, asked: tuple[str, ...]) -> tuple[str, ...]:
    """Access-Control-Allow-Headers: the asked names that are allowed, as asked (never a literal
    `*`, which a credentialed request would not accept, §3.2.3), then the other listed names."""
    granted = [name for name in asked if _header_allowed(policy, name)]
    if len(granted) < len(asked):
        # A refusal: list what the route allows, so the console names only the refused header.
        granted += sorted(policy.allow_headers.difference(granted))
    return tuple(dict.fromkeys(granted))


def _vary_header(tokens: tuple[str, ...]) -> tuple[tuple[str, str], ...]:
    return (("Vary", ", ".join(tokens)),) if tokens else ()


@lru_cache(maxsize=256)
def ordered_methods(methods: frozenset[str]) -> tuple[str, ...]:
    """The methods in canonical order, then the others alphabetically."""
    known = [m for m in METHOD_ORDER if m in methods]
    return tuple(known + sorted(methods.difference(METHOD_ORDER)))


@lru_cache(maxsize=256)
def _methods_value(methods: frozenset[str]) -> str:
    """The configured methods as a header value (a str: safe to share between requests)."""
    return ", ".join(ordered_methods(methods))


def allowed_methods_value(policy: CorsPolicy) -> str:
    """Access-Control-Allow-Methods for a policy that lists its methods (exporters write it)."""
    return _methods_value(policy.allow_methods)

"""The CORS decision (Fetch Standard §3.2 "CORS protocol"), as values.

`preflight()` answers a CORS-preflight request and `actual()` judges any other request; each
returns a `Decision` whose headers the aiohttp layer copies onto the response. One small
function per check, in the order the Fetch Standard's "CORS-preflight fetch" and "CORS check"
make them. Response headers are built in a fresh list only once every check has passed, so a
refusal carries no Access-Control-Allow-* header (a browser must see a plain CORS failure).

Policies are compiled at load (model.CorsPolicy): origins serialised, methods upper-case,
header names lower-case; the request path only compares strings.
"""

from __future__ import annotations

from functools import lru_cache

from corsproxy.model import CorsPolicy, Decision, RequestFacts

# Fetch Standard "CORS-safelisted method": a browser never waits for these in
# Access-Control-Allow-Methods, so listing them is never required.
SAFELISTED_METHODS = frozenset({"GET", "HEAD", "POST"})
# Fetch Standard "CORS non-wildcard request-header name": `*` in Access-Control-Allow-Headers
# never covers it, and with credentials `*` is no wildcard at all (§3.2.3), so we echo names.
NON_WILDCARD_HEADER = "authorization"

# Fetch "normalize a method": the only methods a browser upper-cases before sending.
NORMALIZED_METHODS = frozenset({"DELETE", "GET", "HEAD", "OPTIONS", "POST", "PUT"})
_METHOD_ORDER = ("GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS")
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

    204 when every check passes, else 403 with one reason per problem.
    """
    vary = _vary_header(vary_tokens(policy, preflight=True))
    origin = facts.origin or ""
    if not origin_allowed(policy, origin):
        # Nothing else is worth telling a page whose origin is refused.
        return Decision(False, "refused", vary, (_origin_reason(policy, origin),), 403)
    asked = facts.request_method or ""
    requested = asked.upper()
    reasons = [
        reason
        for reason in (
            _method_case_problem(asked) or _method_problem(policy, requested),
            *(_header_problem(policy, name) for name in facts.request_headers),
            _private_network_problem(policy, facts.request_private_network),
        )
        if reason is not None
    ]
    if reasons:
        return Decision(False, "refused", vary, tuple(reasons), 403)

    # Fetch §3.2.3 HTTP responses: what a successful preflight response carries.
    headers = _allow_origin_headers(policy, origin)
    methods = requested if policy.allow_any_method else _methods_value(policy.allow_methods)
    if methods:
        headers.append(("Access-Control-Allow-Methods", methods))
    if facts.request_headers:
        # Echo the names as asked: covers `*` (never a literal `*`, which a credentialed
        # request would not accept, §3.2.3) and every listed or safelisted name.
        headers.append(("Access-Control-Allow-Headers", ", ".join(facts.request_headers)))
    if facts.request_private_network:
        # WICG Private Network Access: the answer to Access-Control-Request-Private-Network.
        headers.append(("Access-Control-Allow-Private-Network", "true"))
    headers.append(("Access-Control-Max-Age", str(int(policy.max_age))))
    return Decision(True, "preflight", tuple(headers) + vary, (), 204)


def actual(policy: CorsPolicy, facts: RequestFacts) -> Decision:
    """Judge a request that is not a preflight (Fetch §3.2.3 and its "CORS check")."""
    vary = _vary_header(vary_tokens(policy, preflight=False))
    origin = facts.origin
    if origin is None:
        # No Origin: not a CORS request (curl, a server); Vary still keeps caches honest.
        return Decision(True, "no-origin", vary)
    if facts.proxy_origin is not None and origin == facts.proxy_origin:
        # Same-origin: the browser runs no CORS check, so no CORS headers are needed.
        return Decision(True, "same-origin", vary)
    if not origin_allowed(policy, origin):
        return Decision(False, "refused", vary, (_origin_reason(policy, origin),), 403)
    headers = _allow_origin_headers(policy, origin)
    if policy.expose_headers:
        headers.append(("Access-Control-Expose-Headers", ", ".join(policy.expose_headers)))
    return Decision(True, "cors", tuple(headers) + vary)


# --- one check each: None when it passes, else the refusal sentence -------------------------


def _method_case_problem(asked: str) -> str | None:
    # Fetch "normalize a method" upper-cases only these six; any other method is sent as the
    # page wrote it and compared byte for byte, so 'patch' can never match 'PATCH' (and the
    # proxy's HTTP parser refuses a lower-case request line anyway).
    if asked == asked.upper() or asked.upper() in NORMALIZED_METHODS:
        return None
    return (f"method '{asked}' is not upper-case: browsers upper-case only DELETE, GET, HEAD, "
            f"OPTIONS, POST and PUT, and methods are case-sensitive; write '{asked.upper()}' in "
            "the page's fetch() call")


def _method_problem(policy: CorsPolicy, method: str) -> str | None:
    # Fetch "CORS-preflight fetch": a CORS-safelisted method needs no listing.
    if policy.allow_any_method or method in policy.allow_methods or method in SAFELISTED_METHODS:
        return None
    return (
        f"method '{method}' is not in allow_methods of {policy.scope} "
        f"({policy.source_of('allow_methods')}); add it to allow_methods to allow it"
    )


def _header_problem(policy: CorsPolicy, name: str) -> str | None:
    # Fetch "CORS-preflight fetch": every requested name must be allowed, compared
    # case-insensitively (names arrive lower-case in RequestFacts). A browser lists a
    # safelisted name such as content-type only when its value is NOT safelisted
    # (application/json), so it needs allow_headers like any other name.
    if name in policy.allow_headers:
        return None
    where = f"{policy.scope} ({policy.source_of('allow_headers')})"
    if policy.allow_any_header:
        if name != NON_WILDCARD_HEADER or not policy.allow_credentials:
            return None
        return (
            f"header '{name}' is not covered by allow_headers: ['*'] of {where}: '*' does not "
            "cover Authorization when credentials are on (Fetch Standard, CORS non-wildcard "
            "request-header name); list Authorization explicitly in allow_headers"
        )
    return (
        f"header '{name}' is not in allow_headers of {where}; "
        "add it to allow_headers to allow it"
    )


def _private_network_problem(policy: CorsPolicy, asked: bool) -> str | None:
    if not asked or policy.allow_private_network:
        return None
    return (
        "private network access was asked (Access-Control-Request-Private-Network: true) but "
        f"allow_private_network is off for {policy.scope} "
        f"({policy.source_of('allow_private_network')}); "
        "set allow_private_network: true to allow it"
    )


def _origin_reason(policy: CorsPolicy, origin: str) -> str:
    if origin == "null":
        return (
            "origin 'null' (a sandboxed iframe or a file:// page) is not allowed by "
            f"{policy.scope} "
            f"({policy.source_of('allow_origins')}); serve the page from an http(s) origin and add "
            "that origin to allow_origins"
        )
    if policy.allow_origin_regex is not None:
        return (
            f"origin '{origin}' is not in allow_origins and does not fully match "
            f"allow_origin_regex '{policy.allow_origin_regex.pattern}' of {policy.scope} "
            f"({policy.source_of('allow_origins')}, {policy.source_of('allow_origin_regex')}); "
            "add it to allow_origins to allow it"
        )
    return (
        f"origin '{origin}' is not in allow_origins of {policy.scope} "
        f"({policy.source_of('allow_origins')}); add it to allow_origins to allow it"
    )


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


def _vary_header(tokens: tuple[str, ...]) -> tuple[tuple[str, str], ...]:
    return (("Vary", ", ".join(tokens)),) if tokens else ()


@lru_cache(maxsize=256)
def _methods_value(methods: frozenset[str]) -> str:
    """The configured methods in canonical order (a str: safe to share between requests)."""
    known = [m for m in _METHOD_ORDER if m in methods]
    return ", ".join(known + sorted(methods.difference(_METHOD_ORDER)))

"""Plan -> a Python module with `install(app)` for a Starlette or FastAPI app.

Starlette's `CORSMiddleware` as-is would differ from the policy: it answers a refused preflight
400 *with* Access-Control-Allow-* headers, forwards a foreign origin's request to the app, and
sits inside `ServerErrorMiddleware`, so a 500 from an unhandled exception has no CORS headers.
So the module carries its own small ASGI middleware and `install()` puts it OUTSIDE the whole
middleware stack: every response passes through it, the 500 included. One builder per block:
a constant per route (its policy as data, under a comment naming the route and `file:line`),
the route tuple in match order, and the middleware (constant code).
"""

from __future__ import annotations

from corsproxy.export.plan import PREFLIGHT_VARY, Deviation, Plan, RoutePlan, app_fields, app_paths, route_blocks

TARGET = "starlette"
TESTED_ON = "Starlette 1.10.0 under uvicorn 0.54.0"
DEVIATIONS: tuple[Deviation, ...] = ()


def render(plan: Plan) -> str:
    doc = "\n".join(plan.header_comment(TESTED_ON))
    blocks = [f'"""{doc}\n\nUse: `from <this module> import install; install(app)`. It needs nothing beyond Starlette.\n"""',
              "from __future__ import annotations\n\nimport re\nfrom dataclasses import dataclass",
              POLICY_CLASS.strip()]
    names, routes = route_blocks(plan, route_block)
    blocks += routes
    blocks.append("# Longest path first: the first that matches is the route.\n"
                  f"ROUTES = ({', '.join(names)}{',' if len(names) == 1 else ''})")
    blocks.append(RUNTIME.strip())
    return "\n\n\n".join(blocks) + "\n"


def route_block(name: str, route: RoutePlan) -> str:
    r = route.route
    regex = route.cors.origin_regex
    fields = [(key, _literal(key, value)) for key, value in app_fields(route)]
    fields.insert(2, ("origin_regex", f"re.compile({regex!r})" if regex else "None"))
    lines = [f"# route {r.prefix} ({r.source}): the API's paths {app_paths(route.path)}", f"{name} = Policy("]
    lines += [f"    {key}={value}," for key, value in fields]
    return "\n".join([*lines, ")"])


def _literal(key: str, value: object) -> str:
    # Frozen like corsproxy's policies: origins a frozenset, other lists tuples; the exposed
    # names as the header value the middleware sends.
    if key == "origins":
        return _frozenset(value)
    if key == "expose":
        return repr(", ".join(value))
    return repr(tuple(value)) if isinstance(value, list) else repr(value)


def _frozenset(items) -> str:
    return f"frozenset({{{', '.join(repr(i) for i in items)}}})" if items else "frozenset()"


POLICY_CLASS = '''
@dataclass(frozen=True)
class Policy:
    """One route's CORS policy, as corsproxy applied it."""

    path: str
    origins: frozenset
    origin_regex: re.Pattern | None
    any_origin: bool
    credentials: bool
    methods: tuple
    any_method: bool
    headers: tuple
    any_header: bool
    expose: str
    max_age: int
    private_network: bool
    vary: str
    refusal: str
'''

RUNTIME = '''
SAFELISTED_METHODS = frozenset({"GET", "HEAD", "POST"})
NORMALIZED_METHODS = frozenset({"DELETE", "GET", "HEAD", "OPTIONS", "POST", "PUT"})
SAFELISTED_HEADERS = frozenset({"accept", "accept-language", "content-language", "content-type"})
PREFLIGHT_VARY = %(vary)r


def install(app):
    """Wrap `app` (Starlette or FastAPI) so that the policy answers first and every response,
    a 500 from an unhandled exception included, carries its headers."""
    build = app.build_middleware_stack

    def build_with_policy():
        return CorsPolicyMiddleware(build())

    app.build_middleware_stack = build_with_policy
    app.middleware_stack = None
    return app


def route_for(path):
    for route in ROUTES:
        if route.path == "/" or path == route.path or path.startswith(route.path + "/"):
            return route
    return None


def origin_allowed(route, origin):
    return route.any_origin or origin in route.origins or (
        route.origin_regex is not None and len(origin) <= 1024 and route.origin_regex.fullmatch(origin) is not None)


def header_allowed(route, name):
    return route.any_header or name in route.headers or name in SAFELISTED_HEADERS


def refused_ask(route, asked, names, private_network):
    """What corsproxy's preflight() refuses for an allowed origin (Fetch "CORS-preflight fetch")."""
    method = asked.upper()
    bad_case = asked != method and method not in NORMALIZED_METHODS
    method_ok = route.any_method or method in route.methods or method in SAFELISTED_METHODS
    return (bad_case or not method_ok or not all(header_allowed(route, n) for n in names)
            or (private_network and not route.private_network))


def allow_origin(route, origin):
    headers = [("access-control-allow-origin", "*" if route.any_origin and not route.credentials else origin)]
    if route.credentials:
        headers.append(("access-control-allow-credentials", "true"))
    return headers


def preflight_headers(route, request, origin):
    asked = request.get("access-control-request-method", "")
    names = [n.strip().lower() for n in request.get("access-control-request-headers", "").split(",") if n.strip()]
    private_network = request.get("access-control-request-private-network", "").lower() == "true"
    refused = refused_ask(route, asked, names, private_network)
    headers = allow_origin(route, origin)
    methods = asked.upper() if route.any_method else ", ".join(route.methods)
    if methods:
        headers.append(("access-control-allow-methods", methods))
    granted = list(dict.fromkeys(n for n in names if header_allowed(route, n)))
    if len(granted) < len(names):
        # A refused ask: list what the route allows, so the browser's console names what is missing.
        granted += sorted(set(route.headers).difference(granted))
    if granted:
        headers.append(("access-control-allow-headers", ", ".join(granted)))
    if private_network and route.private_network:
        headers.append(("access-control-allow-private-network", "true"))
    headers.append(("access-control-max-age", "0" if refused else str(route.max_age)))
    return headers + [("vary", PREFLIGHT_VARY)]


class CorsPolicyMiddleware:
    """The policy in front of the app: preflights and foreign origins are answered here; every
    other response gets the policy's headers instead of the app's own Access-Control-*."""

    def __init__(self, app):
        self.app = app

    async def __call__(self, scope, receive, send):
        route = route_for(scope["path"]) if scope["type"] == "http" else None
        if route is None:
            return await self.app(scope, receive, send)   # the API's other paths are left alone
        request = {}
        for raw_name, raw_value in scope["headers"]:
            request.setdefault(raw_name.decode("latin-1").lower(), raw_value.decode("latin-1"))
        origin = request.get("origin")
        preflight = scope["method"] == "OPTIONS" and origin is not None and "access-control-request-method" in request
        if preflight and origin_allowed(route, origin):
            return await respond(send, 204, preflight_headers(route, request, origin), b"")
        if origin is not None and not preflight and origin == f"{scope['scheme']}://{request.get('host', '')}":
            added = []                                     # same-origin: no CORS check, no CORS headers
        elif origin is None:
            added = []
        elif origin_allowed(route, origin):
            added = allow_origin(route, origin) + ([("access-control-expose-headers", route.expose)]
                                                   if route.expose else [])
        else:
            # Refused before the app runs, and without any Access-Control-Allow-* header.
            vary = PREFLIGHT_VARY if preflight else "Origin"
            return await respond(send, 403, [("vary", vary), ("content-type", "text/plain; charset=utf-8")],
                                 route.refusal.encode() + b"\\n")
        await self.app(scope, receive, with_headers(send, added, route.vary))


def with_headers(send, added, vary):
    async def send_with_policy(message):
        if message["type"] == "http.response.start":
            headers = [(n, v) for n, v in message.get("headers", [])
                       if not n.lower().startswith(b"access-control-") and n.lower() != b"vary"]
            tokens = [t.strip() for n, v in message.get("headers", []) if n.lower() == b"vary"
                      for t in v.decode("latin-1").split(",") if t.strip()]
            tokens += [t for t in vary.split(", ") if t]
            if tokens:
                headers.append((b"vary", ", ".join(dict.fromkeys(tokens)).encode("latin-1")))
            headers += [(n.encode("latin-1"), v.encode("latin-1")) for n, v in added]
            message = {**message, "headers": headers}
        await send(message)
    return send_with_policy


async def respond(send, status, headers, body):
    encoded = [(n.encode("latin-1"), v.encode("latin-1")) for n, v in headers]
    encoded.append((b"content-length", str(len(body)).encode()))
    await send({"type": "http.response.start", "status": status, "headers": encoded})
    await send({"type": "http.response.body", "body": body})
''' % {"vary": PREFLIGHT_VARY}

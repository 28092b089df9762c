"""The aiohttp layer: one pipeline that puts a request through the gates in order.

Framing (what llhttp lets through but a proxy must not re-send) -> Host guard -> request-target
checks -> built-ins -> route match (path escape = 400) -> CORS decision (preflights answered
here, foreign origins refused) -> forward. Nothing reaches the upstream before every gate has
said yes.

The gates ask a `Targets` where a request may go: on the main port that is the route table
(`State`); inside an intercept tunnel it is the intercepted host's paths (server/intercept.py).
Both run `respond`, so there is one copy of every gate, of the CORS engine and of the log line.
"""

from __future__ import annotations

import json
import ssl
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from functools import partial
from typing import NamedTuple, Protocol

from aiohttp import HttpVersion10, HttpVersion11, web

from corsproxy import config as config_module
from corsproxy.errors import RequestRejected, UpstreamError
from corsproxy.judge.cookies import CookieContext, CookieFinding, judge_set_cookie
from corsproxy.model import BUILTIN_PREFIX, Config, CorsPolicy, Decision, RequestFacts, Route
from corsproxy.policy import cors, origins, routing
from corsproxy.policy.memo import UNSEEN, keep
from corsproxy.server import heads, inline, inspector, logs, upstream, websocket
from corsproxy.server.intercept import InterceptState

JSON = "application/json"
# llhttp parses an HTTP/0.9-style line ("GET /x") and any "HTTP/d.d"; the proxy would re-send
# such a request as HTTP/1.1, so it speaks only the versions it forwards (RFC 9112 §2.3).
HTTP_VERSIONS = frozenset({HttpVersion10, HttpVersion11})
# An intercepted host's unlisted path: forwarded as it is, the CORS engine not asked.
PASS_THROUGH = Decision(allowed=True, kind="pass-through")
# llhttp's own limits, as aiohttp's RequestHandler arguments: longer header or request lines
# are refused (4xx) by the parser before any gate runs.
PARSER_LIMITS = {"max_field_size": 16 * 1024, "max_line_size": 16 * 1024}
# How many Host values a State keeps host_refusal's answer for (a browser sends one or two).
HOSTS_KEPT = 64


class Targets(Protocol):
    """Where the gates may send a request: what differs between the main port and a tunnel."""

    builtins: bool  # whether /__corsproxy/ is answered here
    intercepted: str | None  # the intercepted host's origin in a tunnel; None on the main port
    foreign_target_status: int  # for CONNECT or an absolute-form target: never dialled

    def host_refusal(self, host: str | None) -> str | None:
        """Why a request with this Host is refused (403), None when it is let through."""

    def resolve(self, path: str) -> routing.Match | None:
        """The route for a raw path (PathEscape for an escaping one), None when none matches."""

    def policy_for_unmatched(self, origin: str | None) -> CorsPolicy:
        """The policy that answers a path no route matches."""

    def no_route(self, path: str) -> dict:
        """The JSON body of the 404 for a path no route matches."""

    def trust(self, route: Route) -> ssl.SSLContext | None:
        """Extra CA certificates for the route's upstream; None: the system's."""


@dataclass(frozen=True, slots=True)
class State:
    """Everything the handler reads, derived once from a Config (and swapped whole on reload).
    It is the main port's `Targets`: the route table."""

    config: Config
    table: routing.RouteTable
    routes_body: bytes
    unmatched_policies: tuple[CorsPolicy, ...]
    # Made with the State, so a reload replaces them whole (no answer outlives its policy).
    decisions: cors.DecisionCache
    preflight_heads: heads.HeadCache
    request_facts: dict[tuple, RequestFacts]   # _facts' memo
    host_refusals: dict[str | None, str | None]   # host_refusal's memo
    intercept: InterceptState | None = None

    @classmethod
    def of(cls, config: Config, previous: State | None = None) -> State:
        """`previous` (on reload) lends its intercept CA when the host names are unchanged.
        Raises StoreError when the config wants a persistent CA that cannot be used."""
        rows = config_module.route_rows(config)
        policies = tuple(d.cors for d in config.defaults) or (CorsPolicy(scope="no config file"),)
        intercept = None
        if config.intercept is not None:
            intercept = InterceptState.of(config.intercept, previous.intercept if previous else None)
        return cls(config, routing.RouteTable(config.routes), json.dumps({"routes": rows}, indent=2).encode(),
                   policies, cors.DecisionCache(), heads.HeadCache(), {}, {}, intercept)

    builtins = True
    intercepted = None
    foreign_target_status = 400

    def host_refusal(self, host: str | None) -> str | None:
        # A browser sends the same Host over and over; the answer is kept for a usable one.
        if (refusal := self.host_refusals.get(host, UNSEEN)) is not UNSEEN:
            return refusal  # type: ignore[return-value]
        server = self.config.server
        refusal = None if origins.host_allowed(server.allowed_hosts, server.allow_any_host, host) \
            else _host_refusal(host, self.config)
        if host is None or len(host) <= origins.MAX_HOST_LENGTH:
            keep(self.host_refusals, host, refusal, HOSTS_KEPT)
        return refusal

    def resolve(self, path: str) -> routing.Match | None:
        return routing.resolve(self.table, path)

    def no_route(self, path: str) -> dict:
        return {"error": "no route", "path": path, "routes": [r.prefix for r in self.config.routes]}

    def trust(self, route: Route) -> None:
        return None

    def policy_for_unmatched(self, origin: str | None) -> CorsPolicy:
        """The first file (name order) whose defaults allow the origin, else the first file's."""
        if origin is not None:
            for policy in self.unmatched_policies:
                if cors.origin_allowed(policy, origin):
                    return policy
        return self.unmatched_policies[0]


class StateHolder:
    """The one mutable cell: a reload replaces `current` in a single assignment."""

    __slots__ = ("current",)

    def __init__(self, state: State) -> None:
        self.current = state


STATE = web.AppKey("state", StateHolder)
SESSION = web.AppKey("session", upstream.Upstreams)
# (cookie name, reasons) already reported by the cookie doctor; bounded, as names come from upstreams.
COOKIES_SEEN = web.AppKey("cookies_seen", set)
COOKIES_SEEN_LIMIT = 1000


@dataclass(slots=True)
class Trace:
    """What the request's log line and its inspector record report, filled in as the request
    passes the gates."""

    route: str | None = None
    source: str | None = None
    decision: str | None = None
    reasons: tuple[str, ...] = ()
    upstream_status: int | None = None
    match: routing.Match | None = None
    facts: RequestFacts | None = None
    policy: CorsPolicy | None = None
    cors_headers: tuple[tuple[str, str], ...] = ()   # what the CORS decision added to the response
    upstream_headers: Iterable[tuple[str, str]] | None = None   # None: nothing was forwarded
    upstream_url: str | None = None
    intercepted: str | None = None
    cookies: tuple[CookieFinding, ...] = ()            # the cookie doctor's findings on Set-Cookie

    def decided(self, decision: Decision) -> None:
        self.decision, self.reasons, self.cors_headers = decision.kind, decision.reasons, decision.headers


def build_app(config: Config) -> web.Application:
    """What the main port's handler reads (the State, the inspector's buffer, the session) and
    the session's lifecycle (cleanup_ctx). It routes nothing: `ProxyRunner` serves it."""
    app = web.Application()
    app[STATE] = StateHolder(State.of(config))
    app[COOKIES_SEEN] = set()
    app[inspector.INSPECTOR] = inspector.new_buffer(config)
    app.cleanup_ctx.append(_client_session)
    return app


async def _client_session(app: web.Application):
    app[SESSION] = upstream.Upstreams()
    yield
    await app[SESSION].close()


def low_level_server(app: web.Application) -> web.Server:
    """aiohttp's low-level server with corsproxy's own dispatch: every request goes to `respond`,
    but a preflight `answer_inline` answers from the protocol (server/inline.py).

    The gates do all the routing, so the application layer (router, middleware chain, signals,
    match info) would only add cost, about a third of a preflight's (issue #15). llhttp and its
    framing checks are the same: they live in the RequestHandler both layers use.
    handler_cancellation: a client that goes away cancels its handler, which closes the
    upstream request too (an idle SSE stream must not keep its upstream open forever).
    """
    async def dispatch(request: web.BaseRequest) -> web.StreamResponse:
        state = app[STATE].current
        return await respond(request, app, state, state)

    return inline.InlineServer(dispatch, answer_inline(app), handler_cancellation=True, access_log=None,
                               **PARSER_LIMITS)


class ProxyRunner(web.ServerRunner):
    """The runner of the main port, for TCPSite (serve) and for tests alike: the app's start-up
    and clean-up (its session) around the low-level server's, in that order."""

    def __init__(self, app: web.Application, **kwargs) -> None:
        super().__init__(low_level_server(app), **kwargs)
        self.app = app

    async def setup(self) -> None:
        # As AppRunner does: the start-up hooks may still store what they make (the session).
        self.app.on_startup.freeze()
        await self.app.startup()
        self.app.freeze()
        await super().setup()

    async def cleanup(self) -> None:
        try:
            await super().cleanup()
        finally:
            await self.app.cleanup()


async def respond(request: web.BaseRequest, app: web.Application, state: State,
                  targets: Targets) -> web.StreamResponse:
    """The one request path: gates, CORS decision, forward, log line. `app` is the main
    port's application (its session and state), also for a request that came in a tunnel."""
    started = time.perf_counter_ns()
    trace = Trace(intercepted=targets.intercepted)
    try:
        answer = _gates(request, app, state, targets, trace)
        if type(answer) is Onward:
            response = await _forward(request, app, state, targets, trace, answer)
        else:
            response = answer.response() if type(answer) is heads.Head else answer
    except RequestRejected as exc:
        trace.decision, trace.reasons = "rejected", (exc.reason,)
        response = _text(exc.status, exc.reason)
    _report(request, app, state, response, trace, started)
    return response


def answer_inline(app: web.Application) -> Callable[[inline.MessageView], bytes | None]:
    """The main port's answers that need no task: a preflight whose 204 is serialised already
    (server/inline.py writes it from the protocol). The same gates, log line and inspector
    record as `respond`; anything else is None and goes to `respond`, which then runs the
    gates again: a refusal, an error, a 403 or a builtin is answered there."""
    def answer(request: inline.MessageView) -> bytes | None:
        state = app[STATE].current
        started = time.perf_counter_ns()
        trace = Trace()
        try:
            response = _gates(request, app, state, state, trace)
            if type(response) is not heads.Head:
                return None
            _report(request, app, state, response, trace, started)
        except Exception:   # RequestRejected, or a fault: `respond` answers it (a 500) and logs it
            return None
        return response.head(request.version, request.keep_alive)

    return answer


def _report(request: web.BaseRequest | inline.MessageView, app: web.Application, state: State,
            response: web.StreamResponse | heads.Head, trace: Trace, started: int) -> None:
    """The log line, the cookie doctor and the inspector record of an answered request."""
    elapsed = time.perf_counter_ns() - started   # one duration for the line and the record
    _log_request(request, response.status, trace, elapsed)
    if trace.match is not None and "Set-Cookie" in response.headers:
        trace.cookies = _doctor_cookies(app, response, trace)
    inspector.record(request, app, response, trace, state.config, elapsed)


def _doctor_cookies(app: web.Application, response: web.StreamResponse,
                    trace: Trace) -> tuple[CookieFinding, ...]:
    """Every Set-Cookie the browser will drop, and why (for the inspector); each is logged
    once per cookie and reasons."""
    policy, facts = trace.policy, trace.facts
    if policy is None or facts is None or facts.proxy_origin is None:
        return ()
    context = CookieContext(facts.proxy_origin, facts.origin, policy.allow_credentials,
                            policy.source_of("allow_credentials"), policy.scope)
    seen = app[COOKIES_SEEN]
    findings = tuple(finding for value in response.headers.getall("Set-Cookie")
                     if (finding := judge_set_cookie(value, context)) is not None)
    for finding in findings:
        if (key := (finding.name, finding.reasons)) in seen:
            continue
        if len(seen) < COOKIES_SEEN_LIMIT:
            seen.add(key)
        logs.get_logger().warning("cookie dropped", cookie=finding.name, route=trace.route, source=trace.source,
                             origin=facts.origin, why=cors.join_reasons(finding.reasons))
    return findings


class Onward(NamedTuple):
    """What the gates hand on when every one of them let the request through to an upstream."""

    match: routing.Match
    query: str
    decision: Decision


def _gates(request: web.BaseRequest | inline.MessageView, app: web.Application, state: State,
           targets: Targets, trace: Trace) -> web.StreamResponse | heads.Head | Onward:
    """Every gate, in order, without I/O: the answer when a gate gives it (rejections raise
    RequestRejected), else where the request goes on to."""
    if (problem := _framing_problem(request)) is not None:
        raise RequestRejected(problem, 400)
    host = request.headers.get("Host")
    if (refusal := targets.host_refusal(host)) is not None:
        raise RequestRejected(refusal, 403)
    target = request.raw_path
    if (problem := _target_problem(request.method, target)) is not None:
        raise RequestRejected(problem, targets.foreign_target_status)
    path, _, query = target.partition("?")
    if targets.builtins and (path == BUILTIN_PREFIX or path.startswith(BUILTIN_PREFIX + "/")):
        trace.decision = "builtin"
        return _builtin(request, app, state, path)
    match = targets.resolve(path)
    facts = _facts(request, host, state.request_facts)
    policy = match.route.cors if match else targets.policy_for_unmatched(facts.origin)
    trace.match, trace.facts, trace.policy = match, facts, policy
    if match:
        trace.route, trace.source = match.route.prefix, str(match.route.source)
    else:
        trace.source = policy.source_of("allow_origins")
    if match is not None and not match.route.applies_cors:
        decision = PASS_THROUGH
    elif facts.is_preflight:
        return _preflight_response(state.decisions.preflight(policy, facts), state, trace)
    else:
        decision = state.decisions.actual(policy, facts)
    trace.decided(decision)
    if match is None:
        return _json(404, targets.no_route(path), decision.headers)
    if not decision.allowed:
        return _text(403, "\n".join(decision.reasons), decision.headers)
    return Onward(match, query, decision)


async def _forward(request: web.BaseRequest, app: web.Application, state: State, targets: Targets,
                   trace: Trace, onward: Onward) -> web.StreamResponse:
    match, decision, facts = onward.match, onward.decision, trace.facts
    if "Expect" in request.headers and (refusal := await _expectation(request)) is not None:
        trace.decision, trace.reasons = "rejected", (refusal,)
        return _text(417, refusal, decision.headers)
    leg = upstream.Leg(match, onward.query, decision.headers, facts.proxy_origin or "", state.config.server,
                       targets.trust(match.route))
    session = app[SESSION]
    try:
        if websocket.is_upgrade(request):
            outcome = await websocket.relay(request, session, leg)
        else:
            outcome = await upstream.forward(request, session, leg)
    except UpstreamError as exc:
        trace.decision, trace.reasons = "upstream-error", (exc.detail,)
        return _json(exc.status, {"error": exc.error, "route": match.route.prefix,
                                  "upstream": match.route.upstream.shown, "detail": exc.detail},
                     decision.headers)
    trace.upstream_status, trace.upstream_headers = outcome.upstream_status, outcome.upstream_headers
    trace.upstream_url = match.route.upstream.mask(upstream.upstream_url(match.route, match, ""))
    if not outcome.complete:
        trace.reasons = ("the upstream closed the connection before the body was complete",)
    return outcome.response


def _framing_problem(request: web.BaseRequest) -> str | None:
    """What makes a request ambiguous after llhttp accepted it (it refuses CL+TE, duplicate
    Host and Content-Length, obs-fold, bare CR itself); None when it is clear."""
    if request.version not in HTTP_VERSIONS:
        return (f"HTTP/{request.version.major}.{request.version.minor} is not served; "
                "corsproxy speaks HTTP/1.0 and HTTP/1.1")
    # Two Origins would let the CORS decision read one while the upstream reads the other.
    if len(request.headers.getall("Origin", ())) > 1:
        return "the request has more than one Origin header"
    return None


def _target_problem(method: str, target: str) -> str | None:
    """Why a request target is not served (RFC 9112 §3.2: only origin-form is), else None."""
    if target == "*" and method != "CONNECT":
        return f"{method} * (asterisk-form) is not served: ask for a path under one of the routes"
    if method == "CONNECT" or not target.startswith("/"):
        return (f"request target {target[:200]!r} is not served: corsproxy forwards only to the "
                "upstreams of its config, never to an address named in the request"
                + (" (CONNECT: this port is not an HTTP proxy)" if method == "CONNECT" else ""))
    return None


async def _expectation(request: web.BaseRequest) -> str | None:
    """Answer `Expect: 100-continue` once every gate has said yes, so the client sends the body
    only for a request that will be forwarded (RFC 9110 §10.1.1; aiohttp's router did this
    before any gate). Another expectation is refused (417): the reason, else None."""
    expect = request.headers["Expect"]
    if request.version != HttpVersion11:
        return None  # HTTP/1.0 has no Expect: the field is ignored (RFC 9110 §10.1.1)
    if expect.lower() != "100-continue":
        return f"Expect: {expect[:100]!r} is not an expectation corsproxy meets; only 100-continue is"
    await request.writer.write(b"HTTP/1.1 100 Continue\r\n\r\n")
    request.writer.output_size = 0  # the response itself has not started
    return None


# A request's facts are a pure function of these fields, and a page sends the same few sets of
# them over and over: up to FACTS_KEPT sets, of at most FACTS_KEY_CHARS, are kept with the State.
FACTS_KEPT = 1024
FACTS_KEY_CHARS = 2048


def _facts(request: web.BaseRequest | inline.MessageView, host: str | None,
           known: dict[tuple, RequestFacts]) -> RequestFacts:
    headers = request.headers
    origin, site = headers.get("Origin"), headers.get("Sec-Fetch-Site")
    # Only a browser request without Origin is judged by its Referer.
    key = (request.method, origin, headers.get("Access-Control-Request-Method"),
           headers.get("Access-Control-Request-Headers"), headers.get("Access-Control-Request-Private-Network"),
           request.scheme, host, site, headers.get("Referer") if origin is None and site else None)
    if (facts := known.get(key)) is not None:
        return facts
    facts = _facts_of(*key)
    if sum(len(part) for part in key if part is not None) <= FACTS_KEY_CHARS:
        keep(known, key, facts, FACTS_KEPT)
    return facts


def _facts_of(method: str, origin: str | None, request_method: str | None, asked: str | None,
              private_network: str | None, scheme: str, host: str | None, site: str | None,
              referer: str | None) -> RequestFacts:
    return RequestFacts(
        method=method,
        origin=origin,
        request_method=request_method,
        request_headers=tuple(h.strip().lower() for h in asked.split(",") if h.strip()) if asked else (),
        request_private_network=(private_network or "").lower() == "true",
        proxy_origin=origins.own_origin(scheme, host) if host else None,
        fetch_site=None if site is None else site.lower(),
        referer_origin=origins.referer_origin(referer),
    )


def _preflight_response(decision: Decision, state: State, trace: Trace) -> web.StreamResponse | heads.Head:
    trace.decided(decision)
    if decision.status == 204:  # allowed, or a refusal the browser's console will name
        return state.preflight_heads.head(decision)
    return _text(decision.status or 403, "\n".join(decision.reasons), decision.headers)


def _builtin(request: web.BaseRequest, app: web.Application, state: State, path: str) -> web.Response:
    if path in inspector.PAGE_PATHS or path == inspector.EVENTS_PATH:
        return inspector.answer(request, app, state.config, path)
    if request.method not in ("GET", "HEAD"):
        return _text(405, f"{path} answers GET only", (("Allow", "GET, HEAD"),))
    if path == f"{BUILTIN_PREFIX}/health":
        return _json(200, {"status": "ok"})
    if path == f"{BUILTIN_PREFIX}/routes":
        return web.Response(status=200, body=state.routes_body, content_type=JSON)
    return _json(404, {"error": "no such built-in endpoint", "path": path,
                       "endpoints": [f"{BUILTIN_PREFIX}/", inspector.EVENTS_PATH,
                                     f"{BUILTIN_PREFIX}/health", f"{BUILTIN_PREFIX}/routes"]})


def _host_refusal(host: str | None, config: Config) -> str:
    where = f" ({config.server.source})" if config.server.source else ""
    if host is None:
        return "the request has no Host header; corsproxy refuses it (DNS-rebinding guard)"
    return (f"Host {host[:200]!r} is not in server.allowed_hosts{where}; add it there if you reach the "
            "proxy under that name (this guard stops DNS-rebinding pages from driving the proxy)")


def _text(status: int, body: str, headers=()) -> web.Response:
    return web.Response(status=status, text=body + "\n", headers=headers)


def _json(status: int, payload: dict, headers=()) -> web.Response:
    return web.Response(status=status, body=json.dumps(payload).encode(), content_type=JSON, headers=headers)


def _log_request(request: web.BaseRequest, status: int, trace: Trace, elapsed: int) -> None:
    if trace.reasons and (status >= 400 or trace.decision == "refused"):
        line = partial(logs.request_line, "warning", "refused" if status in (204, 400, 403) else "request",
                       why=cors.join_reasons(trace.reasons))
    elif (line := logs.info_line) is None:
        return  # info lines are filtered out: build nothing (this runs on every request)
    # request.path_qs, the target as the line has always shown it, without making it: yarl's URL
    # of an origin-form target written back is the target itself unless it starts with //, has
    # a fragment or ends in an empty query.
    target = request.raw_path
    if target[:1] != "/" or target[1:2] == "/" or target[-1:] == "?" or "#" in target:
        target = request.path_qs
    facts = trace.facts
    line(request.method, target[:300], trace.route, trace.source,
         request.headers.get("Origin") if facts is None else facts.origin, status, trace.upstream_status,
         elapsed, trace.decision, trace.intercepted)

"""The round trip to the upstream: one pooled ClientSession, bodies streamed both ways.

Forwarding is four named steps (Caddy's reverseproxy shape): prepare headers, build the
upstream URL, round trip, finalize the response. I/O exceptions become 502/504 in ONE place,
`upstream_errors`.
"""

from __future__ import annotations

import asyncio
import contextlib
import ssl
from collections.abc import Awaitable, Callable, Iterable, Iterator
from dataclasses import dataclass
from typing import Any

import aiohttp
from aiohttp import web
from aiohttp.http_exceptions import HttpProcessingError, LineTooLong
from multidict import CIMultiDict

from corsproxy.errors import (
    UpstreamError,
    UpstreamHeadTooLarge,
    UpstreamMisbehaved,
    UpstreamTimeout,
    UpstreamUnreachable,
)
from corsproxy.model import Route, ServerSettings
from corsproxy.policy import rewrite
from corsproxy.policy.routing import Match
from corsproxy.server import headerbytes, roundtrip
from corsproxy.server.logs import get_logger

# Big enough that a 1 GiB download is a few thousand writes, small enough to keep RSS flat.
CHUNK_SIZE = 256 * 1024
# Headers aiohttp's server adds when a response lacks them; a transparent proxy must not.
INVENTED = ("Content-Type", "Server", "Date")


@dataclass(frozen=True, slots=True)
class Leg:
    """One request on its way to a route's upstream, and what its answer must carry."""

    match: Match
    raw_query: str
    cors_headers: tuple[tuple[str, str], ...]
    proxy_origin: str
    server: ServerSettings
    trust: ssl.SSLContext | None = None   # extra CA certificates for the upstream (ca_file)

    @property
    def route(self) -> Route:
        return self.match.route


class _ForwardedRequest(aiohttp.ClientRequest):
    """A request that goes up with the client's headers and none of aiohttp's own.

    aiohttp adds User-Agent, Accept and Accept-Encoding when a request has none, and a
    Content-Type for a body, unless each name is skipped; skipping them through
    `skip_auto_headers` copies the headers and builds a sorted multidict on every request
    (~14 µs of a GET, issue #15). A forwarded request never wants them, so nothing is added,
    and the names are marked skipped once for what reads them later (the body's Content-Type).
    """

    _NEVER_ADDED = CIMultiDict((name, None) for name in ("Accept", "Accept-Encoding", "Content-Type",
                                                          "User-Agent"))

    def update_auto_headers(self, skip_auto_headers: Iterable[str] | None) -> None:
        self._skip_auto_headers = self._NEVER_ADDED


def _session_options() -> dict[str, Any]:
    return {
        # A dev proxy must not keep a cookie jar: cookies belong to the browser.
        "cookie_jar": aiohttp.DummyCookieJar(),
        # Bytes pass through as the upstream sent them: no decompression, no added headers.
        "auto_decompress": False,
        "request_class": _ForwardedRequest,
        "timeout": aiohttp.ClientTimeout(total=None),
        "read_bufsize": CHUNK_SIZE,
    }


class Upstreams:
    """The ways to the upstreams: the keep-alive pool every plain request goes through, and
    aiohttp's session, whose ws_connect opens WebSockets. Nothing is added or decoded."""

    def __init__(self) -> None:
        headerbytes.install()
        self.pool = roundtrip.Pool()
        connector = aiohttp.TCPConnector(limit=0, ttl_dns_cache=60, enable_cleanup_closed=True)
        self.session = aiohttp.ClientSession(connector=connector, **_session_options())

    async def close(self) -> None:
        self.pool.close()
        await self.session.close()


def handshake_session(session: aiohttp.ClientSession,
                      refused: Callable[[aiohttp.ClientResponse], Awaitable[None]]) -> aiohttp.ClientSession:
    """A session for one WebSocket handshake, on the pooled session's connector.

    aiohttp's ws_connect drops the body of an upstream's refusal, so a trace hook hands any
    answer but 101 to `refused` first. A trace config makes every request of its session build
    trace objects: only handshakes pay for it, not the plain requests of the pooled session.
    Closing it leaves the connector (and the WebSocket it opened) alone.
    """
    async def on_response_head(_session: Any, _context: Any, params: Any) -> None:
        if params.response.status != 101:
            await refused(params.response)

    trace = aiohttp.TraceConfig()
    trace.on_request_end.append(on_response_head)
    trace.on_request_redirect.append(on_response_head)
    return aiohttp.ClientSession(connector=session.connector, connector_owner=False, trace_configs=[trace],
                                 **_session_options())


@contextlib.contextmanager
def upstream_errors(route: Route, server: ServerSettings) -> Iterator[None]:
    """Map every way a round trip can fail to UpstreamTimeout (504) or another UpstreamError (502)."""
    try:
        yield
    # Timeouts first: aiohttp's ServerTimeoutError is also a ClientConnectionError.
    except (TimeoutError, aiohttp.ServerTimeoutError) as exc:
        raise UpstreamTimeout(f"no response from {route.upstream.shown} within {route.timeout:g}s") from exc
    except (aiohttp.ClientError, HttpProcessingError, OSError, ssl.SSLError) as exc:
        failure = _failure(exc, server)
        # An I/O error may quote the URL it dialled, ${VAR} values and all.
        failure.detail = route.upstream.mask(failure.detail)
        raise failure from exc


def _failure(exc: BaseException, server: ServerSettings) -> UpstreamError:
    """The 502 for an I/O failure; a response head over a limit names the key to raise."""
    where = f" ({server.source})" if server.source else ""
    too_long = _cause(exc, LineTooLong)
    if too_long is not None:
        start = too_long.args[0][:60]
        start = start.decode("latin-1") if isinstance(start, bytes) else str(start)
        return UpstreamHeadTooLarge(
            f"an upstream response header line is over {server.upstream_max_header_size} bytes "
            f"(it starts {start!r}); raise server.upstream_max_header_size{where} to accept it")
    if isinstance(exc, (aiohttp.ClientResponseError, HttpProcessingError)) and "Too many headers" in exc.message:
        return UpstreamHeadTooLarge(
            f"the upstream response has more than {server.upstream_max_headers} header lines; "
            f"raise server.upstream_max_headers{where} to accept it")
    if isinstance(exc, HttpProcessingError):   # its str is a multi-line report: one line, quoted
        return UpstreamUnreachable(f"the upstream's answer is not valid HTTP: {exc.message!r}")
    return UpstreamUnreachable(f"{type(exc).__name__}: {exc}" if str(exc) else type(exc).__name__)


def _cause(exc: BaseException | None, kind: type[BaseException]) -> BaseException | None:
    """The first exception of `kind` in the chain that led to `exc` (bounded: chains are short)."""
    for _ in range(8):
        if exc is None or isinstance(exc, kind):
            return exc
        exc = exc.__cause__ or exc.__context__
    return None


@dataclass(frozen=True, slots=True)
class Outcome:
    """A response already sent to the client, and what the log line says of it."""

    response: web.StreamResponse
    upstream_status: int | None
    complete: bool = True
    # The upstream's response headers as it sent them (the inspector judges its CORS answer).
    upstream_headers: Iterable[tuple[str, str]] = ()


class ProxyResponse(web.StreamResponse):
    """A StreamResponse that sends the upstream's header set as it is.

    aiohttp adds Content-Type, Server and Date when they are missing; a transparent proxy
    must not invent them (CONTRACT: the proxy adds only what the contract names).

    aiohttp sends a streamed response's head at once, which a stream needs (an SSE client or a
    long poll sees the head while the body is still to come). When the whole body has already
    arrived (`body_here`), the head goes out with it instead: one write to the client, not two.
    """

    def __init__(self, *, status: int, reason: str | None, headers: list[tuple[str, str]],
                 body_here: bool = False) -> None:
        super().__init__(status=status, reason=reason, headers=headers)
        self._invented = tuple(name for name in INVENTED if name not in self.headers)
        self._send_headers_immediately = not body_here

    async def _prepare_headers(self) -> None:
        await super()._prepare_headers()
        for name in self._invented:
            self.headers.popall(name, None)


def upstream_url(route: Route, match: Match, raw_query: str) -> str:
    query = f"?{raw_query}" if raw_query else ""
    base = route.upstream.base_url if route.connect_to is None else _dial_url(route)
    return f"{base}{match.upstream_path}{query}"


def _dial_url(route: Route) -> str:
    """scheme://host:port of a route's `connect_to` (the upstream's scheme, another address)."""
    scheme = route.upstream.base_url.partition(":")[0]
    host, port = route.connect_to
    return f"{scheme}://[{host}]:{port}" if ":" in host else f"{scheme}://{host}:{port}"


def tls_options(route: Route, trust: ssl.SSLContext | None) -> dict:
    """How the round trip checks the upstream's certificate: `trust` (a route's ca_file) or
    the system store, for the upstream's own name even when it dials a `connect_to`."""
    verify: bool | ssl.SSLContext = (trust or True) if route.verify_tls else False
    return {"ssl": verify, "server_hostname": route.upstream.host if route.connect_to else None}


def request_headers(request: web.Request, route: Route) -> list[tuple[str, str]]:
    """The client's headers as the upstream gets them (policy.rewrite on the wire's values)."""
    return rewrite.upstream_request_headers(
        request.headers.items(),  # Expect is in rewrite's constant drop set
        route, client_ip=request.remote or "", proxy_host=request.host, scheme=request.scheme,
    )


async def forward(request: web.Request, upstreams: Upstreams, leg: Leg) -> Outcome:
    with upstream_errors(leg.route, leg.server):
        answer = await _round_trip(request, upstreams.pool, leg)
    return await send_response(request, answer, leg)


async def _round_trip(request: web.Request, pool: roundtrip.Pool, leg: Leg) -> roundtrip.Answer:
    """Send the request and wait for the response head, within the route's timeout."""
    route = leg.route
    deadline = roundtrip.Deadline(asyncio.get_running_loop(), route.timeout)
    body = _MovingBody(request.content, deadline) if request.body_exists else None
    query = f"?{leg.raw_query}" if leg.raw_query else ""
    return await roundtrip.exchange(
        pool, _dial(pool, route, leg.trust), request.method, f"{leg.match.upstream_path}{query}",
        CIMultiDict(request_headers(request, route)), body, deadline, _limits(leg.server))


def _dial(pool: roundtrip.Pool, route: Route, trust: ssl.SSLContext | None) -> roundtrip.Dial:
    """Where a route's requests go: its `connect_to` or the upstream's own address, over TLS
    checked by `trust` (a route's ca_file) or the system store, for the upstream's own name."""
    host, port = route.connect_to or (route.upstream.host, route.upstream.port)
    if route.upstream.scheme not in ("https", "wss"):
        return roundtrip.Dial(host, port)
    tls = (trust or pool.tls(verify=True)) if route.verify_tls else pool.tls(verify=False)
    return roundtrip.Dial(host, port, tls, route.upstream.host if route.connect_to else None)


def _limits(server: ServerSettings) -> roundtrip.Limits:
    size = server.upstream_max_header_size
    return roundtrip.Limits(size, size, server.upstream_max_headers, CHUNK_SIZE)


class _MovingBody:
    """The request body as it arrives. Each chunk moves the deadline on: ``timeout`` bounds
    connecting and waiting for the response head after the last byte, never an upload that
    keeps moving. (An iterator object, not a generator: a generator's frame would keep the
    last chunk alive in the exception cycle of an aborted upload.)"""

    __slots__ = ("_chunks", "_deadline")

    def __init__(self, content: aiohttp.StreamReader, deadline: roundtrip.Deadline) -> None:
        self._chunks, self._deadline = content.iter_any(), deadline

    def __aiter__(self) -> _MovingBody:
        return self

    async def __anext__(self) -> bytes:
        try:
            return await self._chunks.__anext__()
        finally:
            # Once the upstream's head is in, the deadline is over and the rest is not timed.
            self._deadline.postpone()


async def send_response(request: web.Request, upstream: roundtrip.Answer | aiohttp.ClientResponse,
                        leg: Leg) -> Outcome:
    """Send the upstream's response to the client: its head rewritten, its body streamed."""
    try:
        problem = rewrite.response_problem(upstream.status, upstream.headers.items())
        if problem is not None:
            raise UpstreamMisbehaved(problem)
        if "Set-Cookie" in upstream.headers:
            _warn_dropped_cookies(leg.route, upstream.headers.items())
        response = ProxyResponse(
            status=upstream.status,
            reason=upstream.reason,
            headers=rewrite.client_response_headers(
                upstream.headers.items(), leg.route, cors_headers=leg.cors_headers,
                proxy_origin=leg.proxy_origin,
            ),
            body_here=(body_here := upstream.content.is_eof()),
        )
        await response.prepare(request)
        if body_here:   # all of it is buffered: taken at once, sent with the head
            await response.write_eof(upstream.content.read_nowait())
            complete = True
        else:
            complete = await _stream_body(upstream, response)
        if not complete:
            # The head is sent, so the status cannot change: cutting the connection is the
            # only way to tell the client that the body is truncated.
            if request.transport is not None:
                request.transport.close()
        return Outcome(response, upstream.status, complete, upstream.headers.items())
    finally:
        if upstream.content.at_eof():
            upstream.release()
        else:
            # Never hand a half-read connection back to the pool.
            upstream.close()


# (route prefix, Domain) pairs already warned about: a login endpoint called a hundred times
# says it once. Only the log reads it, and it is bounded.
_DROPPED_COOKIES_WARNED: set[tuple[str, str]] = set()
_WARNED_LIMIT = 1024


def _warn_dropped_cookies(route: Route, headers: Iterable[tuple[str, str]]) -> None:
    for domain in rewrite.foreign_cookie_domains(headers, route.upstream.host):
        key = (route.prefix, domain.lower())
        if key in _DROPPED_COOKIES_WARNED or len(_DROPPED_COOKIES_WARNED) >= _WARNED_LIMIT:
            continue
        _DROPPED_COOKIES_WARNED.add(key)
        get_logger().warning(
            "cookie dropped", route=route.prefix, domain=domain, upstream_host=route.upstream.host,
            why=(f"the upstream set a cookie with Domain={domain}, which does not match its host "
                 f"{route.upstream.host}: a browser would reject it, so the proxy drops it rather "
                 "than let it land on the proxy's host for every route"))


async def _stream_body(upstream: roundtrip.Answer | aiohttp.ClientResponse, response: ProxyResponse) -> bool:
    """Copy the body as it arrives (SSE events are flushed one by one); False if it broke off."""
    try:
        async for chunk in upstream.content.iter_any():
            await response.write(chunk)
    except aiohttp.ClientPayloadError:
        return False
    await response.write_eof()
    return True

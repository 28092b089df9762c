"""The round trip to the upstream: one pooled ClientSession, bodies streamed both ways.

Forwarding is four named steps (Caddy's reverseproxy shape): prepare headers, build the
upstream URL, round trip, finalize the response. I/O exceptions become 502/504 in ONE place,
`upstream_errors`.
"""

from __future__ import annotations

import asyncio
import contextlib
import ssl
from collections.abc import Iterable, Iterator
from dataclasses import dataclass

import aiohttp
from aiohttp import web
from multidict import CIMultiDict

from corsproxy.errors import UpstreamTimeout, UpstreamUnreachable
from corsproxy.model import Route
from corsproxy.policy import rewrite
from corsproxy.policy.routing import Match

# Big enough that a 1 GiB download is a few thousand writes, small enough to keep RSS flat.
CHUNK_SIZE = 256 * 1024
# The proxy answers 100-continue itself; the upstream request carries the whole body anyway.
NOT_FORWARDED = frozenset({"expect"})


def new_session() -> aiohttp.ClientSession:
    """The one pooled session: keep-alive to every upstream, nothing added or decoded."""
    connector = aiohttp.TCPConnector(limit=0, ttl_dns_cache=60, enable_cleanup_closed=True)
    return aiohttp.ClientSession(
        connector=connector,
        # A dev proxy must not keep a cookie jar: cookies belong to the browser.
        cookie_jar=aiohttp.DummyCookieJar(),
        # Bytes pass through as the upstream sent them: no decompression, no added headers.
        auto_decompress=False,
        skip_auto_headers=("User-Agent", "Accept", "Accept-Encoding", "Content-Type"),
        timeout=aiohttp.ClientTimeout(total=None),
        read_bufsize=CHUNK_SIZE,
    )


@contextlib.contextmanager
def upstream_errors(route: Route) -> Iterator[None]:
    """Map every way a round trip can fail to UpstreamTimeout (504) or UpstreamUnreachable (502)."""
    try:
        yield
    # Timeouts first: aiohttp's ServerTimeoutError is also a ClientConnectionError.
    except (TimeoutError, aiohttp.ServerTimeoutError) as exc:
        raise UpstreamTimeout(f"no response from {route.upstream.url} within {route.timeout:g}s") from exc
    except (aiohttp.ClientError, OSError, ssl.SSLError) as exc:
        raise UpstreamUnreachable(f"{type(exc).__name__}: {exc}" if str(exc) else type(exc).__name__) from exc


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
    """

    def __init__(self, *, status: int, reason: str | None, headers: CIMultiDict[str]) -> None:
        super().__init__(status=status, reason=reason, headers=headers)
        self._sent_by_upstream = frozenset(k.lower() for k in headers)

    async def _prepare_headers(self) -> None:
        await super()._prepare_headers()
        for name in ("Content-Type", "Server", "Date"):
            if name.lower() not in self._sent_by_upstream:
                self.headers.popall(name, None)


def upstream_url(route: Route, match: Match, raw_query: str) -> str:
    upstream = route.upstream
    scheme = {"ws": "http", "wss": "https"}.get(upstream.scheme, upstream.scheme)
    host = f"[{upstream.host}]" if ":" in upstream.host else upstream.host
    query = f"?{raw_query}" if raw_query else ""
    return f"{scheme}://{host}:{upstream.port}{match.upstream_path}{query}"


async def forward(
    request: web.Request,
    session: aiohttp.ClientSession,
    match: Match,
    raw_query: str,
    cors_headers: tuple[tuple[str, str], ...],
    proxy_origin: str,
) -> Outcome:
    route = match.route
    headers = rewrite.upstream_request_headers(
        [(k, v) for k, v in request.headers.items() if k.lower() not in NOT_FORWARDED],
        route,
        client_ip=request.remote or "",
        proxy_host=request.host,
        scheme=request.scheme,
    )
    url = aiohttp.client.URL(upstream_url(route, match, raw_query), encoded=True)
    body = request.content if request.body_exists else None
    with upstream_errors(route):
        async with asyncio.timeout(route.timeout):
            upstream = await session.request(
                request.method,
                url,
                headers=CIMultiDict(headers),
                data=body,
                allow_redirects=False,
                ssl=route.verify_tls,
            )
    try:
        response = ProxyResponse(
            status=upstream.status,
            reason=upstream.reason,
            headers=CIMultiDict(
                rewrite.client_response_headers(
                    upstream.headers.items(), route, cors_headers=cors_headers, proxy_origin=proxy_origin
                )
            ),
        )
        await response.prepare(request)
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


async def _stream_body(upstream: aiohttp.ClientResponse, response: ProxyResponse) -> bool:
    """Copy the body as it arrives (SSE events are flushed one by one); False if it broke off."""
    try:
        async for chunk in upstream.content.iter_any():
            await response.write(chunk)
    except aiohttp.ClientPayloadError:
        return False
    await response.write_eof()
    return True

"""WebSocket upgrades on a route, relayed frame by frame.

WebSockets have no CORS of their own, so the app lets an upgrade through only after the same
Host and Origin gates as any request (a foreign page must not open a socket to the upstream).
"""

from __future__ import annotations

import asyncio

import aiohttp
from aiohttp import web
from multidict import CIMultiDict

from corsproxy.policy import rewrite
from corsproxy.policy.routing import Match
from corsproxy.server.upstream import Outcome, upstream_errors, upstream_url

# aiohttp's client writes its own handshake headers; the client's would clash with them.
HANDSHAKE = frozenset({"sec-websocket-key", "sec-websocket-version", "sec-websocket-extensions",
                       "sec-websocket-protocol"})


def is_upgrade(request: web.Request) -> bool:
    return request.headers.get("Upgrade", "").lower() == "websocket"


async def relay(request: web.Request, session: aiohttp.ClientSession, match: Match, raw_query: str) -> Outcome:
    route = match.route
    headers = [
        (k, v)
        for k, v in rewrite.upstream_request_headers(
            request.headers.items(), route,
            client_ip=request.remote or "", proxy_host=request.host, scheme=request.scheme,
        )
        if k.lower() not in HANDSHAKE
    ]
    protocols = tuple(p.strip() for p in request.headers.get("Sec-WebSocket-Protocol", "").split(",") if p.strip())
    url = upstream_url(route, match, raw_query).replace("http", "ws", 1)
    with upstream_errors(route):
        async with asyncio.timeout(route.timeout):
            upstream = await session.ws_connect(
                aiohttp.client.URL(url, encoded=True),
                headers=CIMultiDict(headers),
                protocols=protocols,
                ssl=route.verify_tls,
                autoping=True,
            )
    async with upstream:
        client = web.WebSocketResponse(protocols=(upstream.protocol,) if upstream.protocol else ())
        await client.prepare(request)
        await _pump_both_ways(client, upstream)
    return Outcome(client, 101)


async def _pump_both_ways(client: web.WebSocketResponse, upstream: aiohttp.ClientWebSocketResponse) -> None:
    tasks = [asyncio.create_task(_pump(client, upstream)), asyncio.create_task(_pump(upstream, client))]
    try:
        # Whichever side closes first ends the session for both.
        await asyncio.wait(tasks, return_when=asyncio.FIRST_COMPLETED)
    finally:
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        await upstream.close()
        await client.close()


async def _pump(source, sink) -> None:
    async for message in source:
        if message.type is aiohttp.WSMsgType.TEXT:
            await sink.send_str(message.data)
        elif message.type is aiohttp.WSMsgType.BINARY:
            await sink.send_bytes(message.data)
        else:
            break

"""WebSocket upgrades on a route, relayed frame by frame, close codes and pings included.

WebSockets have no CORS of their own, so the app lets an upgrade through only after the same
Host and Origin gates as any request (a foreign page must not open a socket to the upstream).
The relay is transparent: each end's close code and reason reach the other end, pings and
pongs travel end to end, an upstream that refuses the handshake is answered as it answered, and
a message over `server.websocket_max_message_size` closes both ends with 1009, never a clean
1000 that would hide the lost message.
"""

from __future__ import annotations

import asyncio
import contextlib

import aiohttp
from aiohttp import WSCloseCode, WSMsgType, web
from multidict import CIMultiDict

from corsproxy.server.upstream import (
    Leg,
    handshake_session,
    Outcome,
    Upstreams,
    request_headers,
    send_response,
    tls_options,
    upstream_errors,
    upstream_url,
)

# aiohttp's client writes its own handshake headers; the client's would clash with them.
HANDSHAKE = frozenset({"sec-websocket-key", "sec-websocket-version", "sec-websocket-extensions",
                       "sec-websocket-protocol"})
# How long the second direction may take to finish once the first has closed.
CLOSE_TIMEOUT = 10.0
# 1005 ("no status") may not be sent in a close frame (RFC 6455 §7.4.1): a bare close goes on as 1000.
_UNSENDABLE = frozenset({0, 1005, 1006, 1015})


def is_upgrade(request: web.Request) -> bool:
    return request.headers.get("Upgrade", "").lower() == "websocket"


class _Refused(Exception):
    """The upstream answered the handshake with something other than 101; already sent on."""

    def __init__(self, outcome: Outcome) -> None:
        super().__init__(outcome.upstream_status)
        self.outcome = outcome


async def relay(request: web.Request, upstreams: Upstreams, leg: Leg) -> Outcome:
    route = leg.route
    headers = [(k, v) for k, v in request_headers(request, route) if k.lower() not in HANDSHAKE]
    protocols = tuple(p.strip() for p in request.headers.get("Sec-WebSocket-Protocol", "").split(",") if p.strip())
    url = upstream_url(route, leg.match, leg.raw_query).replace("http", "ws", 1)
    limit = leg.server.websocket_max_message_size
    try:
        with upstream_errors(route, leg.server):
            async with asyncio.timeout(route.timeout) as deadline:
                async def refused(response: aiohttp.ClientResponse) -> None:
                    deadline.reschedule(None)   # the refusal's body streams as long as it streams
                    raise _Refused(await send_response(request, response, leg))

                async with handshake_session(upstreams.session, refused) as handshake:
                    upstream = await handshake.ws_connect(
                        aiohttp.client.URL(url, encoded=True),
                        headers=CIMultiDict(headers), protocols=protocols, **tls_options(route, leg.trust),
                        autoclose=False, autoping=False, max_msg_size=limit,
                    )
    except _Refused as refusal:
        return refusal.outcome
    async with upstream:
        client = web.WebSocketResponse(protocols=(upstream.protocol,) if upstream.protocol else (),
                                       autoclose=False, autoping=False, max_msg_size=limit)
        await client.prepare(request)
        await _pump_both_ways(client, upstream)
    return Outcome(client, 101)


async def _pump_both_ways(client: web.WebSocketResponse, upstream: aiohttp.ClientWebSocketResponse) -> None:
    relay = asyncio.ensure_future(_relay(client, upstream))
    try:
        await asyncio.shield(relay)
    except asyncio.CancelledError:
        # aiohttp cancels the handler once the client's connection is gone, which may be while
        # the relay is passing the client's close (a 1009, say) on: let it finish, bounded.
        with contextlib.suppress(Exception):
            await asyncio.wait_for(relay, CLOSE_TIMEOUT)
        raise


async def _relay(client: web.WebSocketResponse, upstream: aiohttp.ClientWebSocketResponse) -> None:
    pumps = {asyncio.create_task(_pump(client, upstream)): (client, upstream),
             asyncio.create_task(_pump(upstream, client)): (upstream, client)}
    try:
        done, _ = await asyncio.wait(pumps, return_when=asyncio.FIRST_COMPLETED)
        # The other direction stops reading before the close is passed on: a close() while
        # another task reads the same socket ends without waiting for the peer's reply, and
        # the browser then sees an unclean close.
        for task in pumps:
            task.cancel()
        await asyncio.gather(*pumps, return_exceptions=True)
        first = next(iter(done))
        source, sink = pumps[first]
        await _end(source, sink, first.result())
    finally:
        await upstream.close()
        await client.close()


async def _pump(source, sink) -> aiohttp.WSMessage | None:
    """Relay ``source``'s messages to ``sink`` until ``source`` ends; return how it ended
    (None: ``sink`` could not take a message)."""
    while True:
        message = await source.receive()
        kind = message.type
        try:
            if kind is WSMsgType.TEXT:
                await sink.send_str(message.data)
            elif kind is WSMsgType.BINARY:
                await sink.send_bytes(message.data)
            elif kind is WSMsgType.PING:
                await sink.ping(message.data)
            elif kind is WSMsgType.PONG:
                await sink.pong(message.data)
            else:
                return message
        except (ConnectionError, aiohttp.ClientConnectionError, RuntimeError):
            return None


GONE = b"the other end of the relay went away"


async def _end(source, sink, message: aiohttp.WSMessage | None) -> None:
    """Close ``sink`` as ``source`` ended: its close code and reason, or an error close."""
    if message is None:
        # `sink` failed: the end still there learns it with an error close, not a clean one.
        await source.close(code=WSCloseCode.INTERNAL_ERROR, message=GONE)
    elif message.type is WSMsgType.CLOSE:
        code = WSCloseCode.OK if message.data in _UNSENDABLE else message.data
        reason = (message.extra or "").encode()
        await sink.close(code=code, message=reason)
        await source.close(code=code, message=reason)     # the closing handshake's echo
    elif message.type is WSMsgType.ERROR:
        error = message.data
        # aiohttp has already closed `source` with the error's code (1009 for a message over
        # the limit): the other end learns the same code, so no message is lost silently.
        code = getattr(error, "code", WSCloseCode.INTERNAL_ERROR)
        await sink.close(code=code, message=str(error)[:120].encode())
    else:
        # Gone without a close frame: the other end sees an error close, not a clean one.
        await sink.close(code=WSCloseCode.INTERNAL_ERROR, message=GONE)

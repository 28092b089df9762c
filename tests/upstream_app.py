"""A real upstream API for the integration tests, recording what it received.

It sends no CORS headers unless an endpoint is about them, so every Access-Control-* header
a test sees was put there by the proxy.
"""

from __future__ import annotations

import asyncio
import json

from aiohttp import web

RECEIVED = web.AppKey("received", list)
RELEASE = web.AppKey("release", asyncio.Event)
ARRIVED = web.AppKey("arrived", asyncio.Event)


async def echo(request: web.Request) -> web.Response:
    body = await request.read()
    record = {
        "method": request.method,
        "raw_path": request.raw_path,
        "headers": [[k, v] for k, v in request.headers.items()],
        "body_length": len(body),
        "body": body[:1000].decode("latin-1"),
    }
    request.app[RECEIVED].append(record)
    return web.json_response(record)


async def with_cors_headers(request: web.Request) -> web.Response:
    request.app[RECEIVED].append({"raw_path": request.raw_path})
    return web.Response(text="upstream cors", headers={
        "Access-Control-Allow-Origin": "*", "Access-Control-Allow-Credentials": "true",
        "Access-Control-Expose-Headers": "X-Secret", "Vary": "Accept-Encoding", "X-Secret": "s",
    })


async def redirect(request: web.Request) -> web.Response:
    target = request.query.get("to", f"http://{request.host}/v1/target")
    raise web.HTTPFound(target)


async def cookie(request: web.Request) -> web.Response:
    response = web.json_response({"logged_in": True})
    response.headers.add("Set-Cookie", f"session=abc123; Domain={request.url.host}; Path=/; HttpOnly")
    response.headers.add("Set-Cookie", "theme=dark; Path=/; Expires=Wed, 21 Oct 2037 07:28:00 GMT")
    return response


async def status(request: web.Request) -> web.Response:
    return web.Response(status=int(request.match_info["code"]), text="status body")


async def sse(request: web.Request) -> web.StreamResponse:
    """Sends one event, then one more each time the test sets RELEASE."""
    response = web.StreamResponse(headers={"Content-Type": "text/event-stream", "Cache-Control": "no-cache"})
    await response.prepare(request)
    release = request.app[RELEASE]
    for n in range(3):
        await response.write(f"data: event {n}\n\n".encode())
        if n < 2:
            await release.wait()
            release.clear()
    await response.write_eof()
    return response


async def hang(request: web.Request) -> web.Response:
    request.app[RECEIVED].append({"raw_path": request.raw_path})
    await asyncio.Event().wait()  # never answers; the proxy's timeout must fire
    return web.Response()


async def gate(request: web.Request) -> web.Response:
    """Answers only after the test sets RELEASE; sets ARRIVED when the request is in."""
    request.app[ARRIVED].set()
    await request.app[RELEASE].wait()
    return web.Response(text="released")


async def download(request: web.Request) -> web.StreamResponse:
    size = int(request.query.get("size", "1048576"))
    response = web.StreamResponse(headers={"Content-Type": "application/octet-stream"})
    response.content_length = size
    await response.prepare(request)
    chunk = b"\0" * 65536
    sent = 0
    while sent < size:
        piece = chunk[: min(len(chunk), size - sent)]
        await response.write(piece)
        sent += len(piece)
    return response


async def truncated(request: web.Request) -> web.StreamResponse:
    response = web.StreamResponse(headers={"Content-Type": "application/octet-stream"})
    response.content_length = 100_000
    await response.prepare(request)
    await response.write(b"x" * 1000)
    request.transport.close()  # dies mid-body
    return response


async def upload(request: web.Request) -> web.Response:
    total = 0
    async for chunk in request.content.iter_any():
        total += len(chunk)
    return web.json_response({"received": total})


async def ws_echo(request: web.Request) -> web.WebSocketResponse:
    ws = web.WebSocketResponse(protocols=("chat",))
    await ws.prepare(request)
    request.app[RECEIVED].append({"raw_path": request.raw_path, "headers": [[k, v] for k, v in request.headers.items()]})
    async for message in ws:
        if message.type == web.WSMsgType.TEXT:
            await ws.send_str(f"echo: {message.data}")
        elif message.type == web.WSMsgType.BINARY:
            await ws.send_bytes(message.data)
    return ws


def make_upstream() -> web.Application:
    app = web.Application()
    app[RECEIVED] = []
    app[RELEASE] = asyncio.Event()
    app[ARRIVED] = asyncio.Event()
    app.router.add_get("/v1/cors-headers", with_cors_headers)
    app.router.add_get("/v1/redirect", redirect)
    app.router.add_get("/v1/cookie", cookie)
    app.router.add_get("/v1/status/{code}", status)
    app.router.add_get("/v1/sse", sse)
    app.router.add_get("/v1/hang", hang)
    app.router.add_get("/v1/gate", gate)
    app.router.add_get("/v1/download", download)
    app.router.add_get("/v1/truncated", truncated)
    app.router.add_post("/v1/upload", upload)
    app.router.add_get("/v1/ws", ws_echo)
    app.router.add_route("*", "/{tail:.*}", echo)
    return app


def received_json(text: str) -> dict:
    return json.loads(text)

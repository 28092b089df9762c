"""The loopback servers of the browser suite: the upstream API (no CORS headers at all) and the
page that carries the scenario runner, served on the allowed and the foreign origin."""

from __future__ import annotations

import asyncio
from dataclasses import dataclass
from pathlib import Path

from aiohttp import web

from tests.browser.scenarios import SESSION_COOKIE, SSE_EVENTS

PAGE_HTML = Path(__file__).with_name("page.html")
RECEIVED = web.AppKey("received", list)
SSE_SENT = web.AppKey("sse_sent", list)
SSE_GO = web.AppKey("sse_go", asyncio.Queue)
# Upper bound for anything the upstream waits on (a release, a client that never leaves).
WAIT_LIMIT = 30.0


def _record(request: web.Request) -> None:
    request.app[RECEIVED].append({
        "method": request.method,
        "path": request.path,
        "origin": request.headers.get("Origin"),
        "cookie": request.headers.get("Cookie"),
    })


@web.middleware
async def record_everything(request: web.Request, handler):
    _record(request)
    return await handler(request)


async def items(request: web.Request) -> web.Response:
    return web.json_response({"count": 3, "items": ["apple", "pear", "plum"]},
                             headers={"X-Total-Count": "3", "X-Internal": "hidden", "Cache-Control": "no-store"})


async def echo(request: web.Request) -> web.Response:
    return web.json_response({
        "method": request.method,
        "authorization": request.headers.get("Authorization"),
        "content_type": request.headers.get("Content-Type"),
        "cookie": request.headers.get("Cookie"),
        "body": (await request.read()).decode("utf-8", "replace"),
    })


async def login(request: web.Request) -> web.Response:
    response = web.json_response({"logged_in": True})
    name, _, value = SESSION_COOKIE.partition("=")
    # Domain names the upstream's own host, as a real API does; the proxy must strip it,
    # or Chromium drops the cookie (the response comes from localhost, not from that host).
    response.headers.add("Set-Cookie", f"{name}={value}; Domain={request.url.host}; Path=/; HttpOnly")
    return response


async def me(request: web.Request) -> web.Response:
    name, _, value = SESSION_COOKIE.partition("=")
    if request.cookies.get(name) != value:
        return web.json_response({"error": "no session cookie"}, status=401)
    return web.json_response({"user": "ada"})


async def redirect(request: web.Request) -> web.Response:
    # An absolute Location on the upstream's own origin, which the proxy rewrites.
    raise web.HTTPFound(f"http://{request.host}/v1/items")


async def status(request: web.Request) -> web.Response:
    code = int(request.match_info["code"])
    return web.Response(status=code, text=f"upstream says {code}")


async def sse(request: web.Request) -> web.StreamResponse:
    """Sends SSE_EVENTS one by one: the first at once, each next one only when the test puts a
    token in SSE_GO (after it saw the previous event in the page)."""
    response = web.StreamResponse(headers={"Content-Type": "text/event-stream", "Cache-Control": "no-store"})
    await response.prepare(request)
    for n, event in enumerate(SSE_EVENTS):
        if n:
            await asyncio.wait_for(request.app[SSE_GO].get(), WAIT_LIMIT)
        await response.write(f"data: {event}\n\n".encode())
        request.app[SSE_SENT].append(event)
    # Stay open (as a live stream does) until the page closes it; ending would make the
    # EventSource reconnect.
    try:
        await asyncio.wait_for(asyncio.Event().wait(), WAIT_LIMIT)
    except TimeoutError:
        pass
    return response


async def ws_echo(request: web.Request) -> web.WebSocketResponse:
    ws = web.WebSocketResponse()
    await ws.prepare(request)
    async for message in ws:
        if message.type == web.WSMsgType.TEXT:
            await ws.send_str(f"echo: {message.data}")
    return ws


async def slow(request: web.Request) -> web.Response:
    """Never answers in time: the proxy's route timeout must fire first."""
    await asyncio.sleep(WAIT_LIMIT)  # a stand-in for a hung backend, not synchronisation
    return web.Response(text="too late")


def make_upstream() -> web.Application:
    app = web.Application(middlewares=[record_everything])
    app[RECEIVED] = []
    app[SSE_SENT] = []
    app[SSE_GO] = asyncio.Queue()
    app.router.add_get("/v1/items", items)
    app.router.add_route("*", "/v1/echo", echo)
    app.router.add_post("/v1/login", login)
    app.router.add_get("/v1/me", me)
    app.router.add_get("/v1/redirect", redirect)
    app.router.add_get("/v1/status/{code}", status)
    app.router.add_get("/v1/sse", sse)
    app.router.add_get("/v1/ws", ws_echo)
    app.router.add_get("/v1/slow", slow)
    return app


async def page(request: web.Request) -> web.Response:
    return web.Response(text=PAGE_HTML.read_text(), content_type="text/html")


async def set_cookie(request: web.Request) -> web.Response:
    """Same-origin Set-Cookie with the attributes asked for (the Chromium cookie-rule tests)."""
    return web.Response(status=204, headers={"Set-Cookie": request.query["c"]})


def make_page() -> web.Application:
    app = web.Application()
    app.router.add_get("/", page)
    app.router.add_get("/set-cookie", set_cookie)
    return app


@dataclass
class Site:
    """An aiohttp app listening on 127.0.0.1; `url` names it as the browser does (localhost)."""

    runner: web.AppRunner
    port: int

    @property
    def url(self) -> str:
        return f"http://localhost:{self.port}"

    @property
    def app(self) -> web.Application:
        return self.runner.app

    async def stop(self) -> None:
        await self.runner.cleanup()


async def start_site(app: web.Application) -> Site:
    runner = web.AppRunner(app, handler_cancellation=True, shutdown_timeout=1, access_log=None)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    return Site(runner, site._server.sockets[0].getsockname()[1])  # type: ignore[union-attr]

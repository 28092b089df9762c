"""The `demo` command: the CORS problem and its fix, in one command and offline.

Three servers on one event loop (uvloop when available):
- a demo API on 127.0.0.1 that sends no CORS headers at all, like most backends in development;
- corsproxy in front of it (the real app and serve code, with corsproxy/commands/demo_assets/demo.yaml);
- a page on another port, opened as http://localhost:<port>/, with one button that calls the
  API directly (the browser blocks it) and one that calls it through corsproxy (it works).
The proxy allows exactly the page's origin, under the ports really bound (port 0 works).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
import time
from dataclasses import dataclass, field
from importlib import resources

from aiohttp import web

from corsproxy import config as config_module
from corsproxy.model import Config
from corsproxy.server import logs, serve

ASSETS = resources.files("corsproxy.commands") / "demo_assets"
HOST = "127.0.0.1"
PAGE_NAME = "localhost"  # the name the page is opened with; the page calls the proxy by the same name
ORDERS = (
    {"id": 1042, "item": "Espresso beans, 1 kg", "qty": 2, "status": "shipped"},
    {"id": 1043, "item": "Milk frother", "qty": 1, "status": "packing"},
    {"id": 1044, "item": "Ceramic cups (set of 4)", "qty": 3, "status": "ordered"},
)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--port", type=int, default=8080, help="the proxy's port; 0 picks a free one (default 8080)")
    parser.add_argument("--api-port", type=int, default=9000,
                        help="the demo API's port; 0 picks a free one (default 9000)")
    parser.add_argument("--page-port", type=int, default=3000,
                        help="the demo page's port; 0 picks a free one (default 3000)")
    parser.add_argument("--log-level", choices=logs.LEVELS, default="info", help="the proxy's log level (default info)")
    parser.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    ports = {"--port": args.port, "--api-port": args.api_port, "--page-port": args.page_port}
    for flag, port in ports.items():
        if not 0 <= port <= 65535:
            print(f"corsproxy demo: {flag} {port} is out of range (0-65535)", file=sys.stderr)
            return 2
    logs.configure("console", args.log_level)
    try:
        with asyncio.Runner(loop_factory=serve.new_event_loop) as runner:
            return runner.run(_demo(args.port, args.api_port, args.page_port))
    except KeyboardInterrupt:  # Ctrl-C before the proxy installed its own handlers
        return 0


# ------------------------------------------------------------------ the demo API (no CORS headers)

@dataclass
class ApiLog:
    """What the demo API has answered, so the page can show that a blocked call did arrive."""

    count: int = 0
    last: dict = field(default_factory=dict)


API_LOG = web.AppKey("api_log", ApiLog)


async def _orders(request: web.Request) -> web.Response:
    log = request.app[API_LOG]
    log.count += 1
    log.last = {"method": request.method, "path": request.path, "origin": request.headers.get("Origin"),
                "via_proxy": "X-Forwarded-For" in request.headers, "status": 200,
                "at": time.strftime("%H:%M:%S")}
    return web.json_response({"orders": ORDERS}, headers={"X-Request-Id": f"demo-{log.count}"})


async def _requests(request: web.Request) -> web.Response:
    log = request.app[API_LOG]
    return web.json_response({"orders_answered": log.count, "last": log.last})


async def _api_index(request: web.Request) -> web.Response:
    return web.json_response({"endpoints": ["/orders", "/requests"],
                              "note": "the corsproxy demo API; it sends no CORS headers"})


def make_api() -> web.Application:
    app = web.Application()
    app[API_LOG] = ApiLog()
    app.router.add_get("/", _api_index)
    app.router.add_get("/orders", _orders)
    app.router.add_get("/requests", _requests)
    return app


# ------------------------------------------------------------------ the page

@dataclass
class PageSettings:
    api_port: int
    proxy_port: int | None = None  # known once the proxy listens


PAGE = web.AppKey("page", PageSettings)


async def _page(request: web.Request) -> web.Response:
    settings = request.app[PAGE]
    if settings.proxy_port is None:
        return web.Response(status=503, text="corsproxy demo is still starting; reload in a moment\n")
    # The page builds its URLs from location.hostname, so it works opened as localhost or 127.0.0.1.
    data = json.dumps({"apiPort": settings.api_port, "proxyPort": settings.proxy_port, "prefix": "/api"})
    html = (ASSETS / "index.html").read_text(encoding="utf-8").replace("__DEMO_SETTINGS__", data)
    return web.Response(text=html, content_type="text/html", headers={"Cache-Control": "no-store"})


async def _favicon(request: web.Request) -> web.Response:
    # Browsers ask for /favicon.ico whatever the page links; a 404 there would sit in the
    # console next to the CORS messages the demo is about.
    return web.Response(body=(ASSETS / "favicon.svg").read_bytes(), content_type="image/svg+xml",
                        headers={"Cache-Control": "max-age=86400"})


def make_page(settings: PageSettings) -> web.Application:
    app = web.Application()
    app[PAGE] = settings
    app.router.add_get("/", _page)
    app.router.add_get("/favicon.ico", _favicon)
    app.router.add_get("/favicon.svg", _favicon)
    return app


# ------------------------------------------------------------------ wiring

async def _start(app: web.Application, port: int, what: str, flag: str) -> tuple[web.AppRunner, int]:
    runner = web.AppRunner(app, access_log=None, shutdown_timeout=1)
    await runner.setup()
    try:
        site = web.TCPSite(runner, HOST, port)
        await site.start()
    except OSError as exc:
        await runner.cleanup()
        raise _CannotListen(f"corsproxy demo: cannot start the {what} on {serve.display_url(HOST, port)}: "
                            f"{exc.strerror or exc} (choose another with {flag}, or {flag} 0)") from exc
    return runner, site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]


class _CannotListen(Exception):
    pass


def demo_config(*, page_port: int, api_port: int, proxy_port: int) -> Config:
    """The bundled demo.yaml with the ports really bound."""
    env = {
        "DEMO_PROXY_PORT": str(proxy_port),
        "DEMO_PAGE_ORIGIN": f"http://{PAGE_NAME}:{page_port}",
        "DEMO_PAGE_ORIGIN_IP": f"http://{HOST}:{page_port}",
        "DEMO_API_URL": f"http://{HOST}:{api_port}",
    }
    with resources.as_file(ASSETS / "demo.yaml") as path:
        return config_module.load(path, env=env)


async def _demo(proxy_port: int, api_port: int, page_port: int) -> int:
    runners: list[web.AppRunner] = []
    try:
        api_runner, api_port = await _start(make_api(), api_port, "demo API", "--api-port")
        runners.append(api_runner)
        settings = PageSettings(api_port)
        page_runner, page_port = await _start(make_page(settings), page_port, "demo page", "--page-port")
        runners.append(page_runner)
        config = demo_config(page_port=page_port, api_port=api_port, proxy_port=proxy_port)

        def ready(url: str, _bound: str) -> None:
            settings.proxy_port = int(url.rsplit(":", 1)[1])
            page_url = f"http://{PAGE_NAME}:{page_port}/"
            print(f"corsproxy demo ready: page {page_url}  api http://{HOST}:{api_port}/  "
                  f"proxy http://{PAGE_NAME}:{settings.proxy_port}/api/", flush=True)
            print(f"Open {page_url} in a browser and press both buttons. "
                  "The API sends no CORS headers; corsproxy adds them for this page only. Ctrl-C stops.",
                  flush=True)

        return await serve.serve(config, grace=1.0, source=None, ready=ready)
    except _CannotListen as exc:
        print(exc, file=sys.stderr)
        return 1
    finally:
        for runner in reversed(runners):
            await runner.cleanup()

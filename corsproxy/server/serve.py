"""Running the proxy: event loop choice, listening socket, ready line, graceful stop."""

from __future__ import annotations

import asyncio
import signal
import socket
import sys
from collections.abc import Callable

from aiohttp import web

from corsproxy.config.loader import policy_values
from corsproxy.model import Config, CorsPolicy
from corsproxy.policy.origins import same_host_advice
from corsproxy.server.app import STATE, build_app
from corsproxy.server.logs import get_logger
from corsproxy.server.reload import ConfigSource, Reloader

DEFAULT_GRACE = 10.0
STOP_SIGNALS = (signal.SIGINT, signal.SIGTERM)


def new_event_loop() -> asyncio.AbstractEventLoop:
    """uvloop whenever it imports (it does not on Windows), the stdlib loop otherwise."""
    try:
        import uvloop
    except ImportError:
        return asyncio.new_event_loop()
    return uvloop.new_event_loop()


def run(config: Config, *, grace: float = DEFAULT_GRACE, source: ConfigSource | None = None,
        ready: Callable[[str], None] | None = None, reuse_port: bool = False) -> int:
    with asyncio.Runner(loop_factory=new_event_loop) as runner:
        return runner.run(serve(config, grace=grace, source=source, ready=ready or _print_ready,
                                reuse_port=reuse_port))


def display_url(host: str, port: int) -> str:
    return f"http://[{host}]:{port}" if ":" in host else f"http://{host}:{port}"


async def serve(config: Config, *, grace: float, source: ConfigSource | None,
                ready: Callable[[str], None], reuse_port: bool = False) -> int:
    app = build_app(config)
    # handler_cancellation: a client that goes away cancels its handler, which closes the
    # upstream request too (an idle SSE stream must not keep its upstream open forever).
    runner = web.AppRunner(app, shutdown_timeout=grace, handler_cancellation=True, access_log=None)
    await runner.setup()
    server = config.server
    try:
        site = web.TCPSite(runner, server.host, server.port, backlog=1024, reuse_port=reuse_port or None)
        await site.start()
    except OSError as exc:
        await runner.cleanup()
        print(f"corsproxy: cannot listen on {display_url(server.host, server.port)}: {exc.strerror or exc}",
              file=sys.stderr)
        return 1
    host, port = _bound_address(site)
    url = display_url(host, port)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    # The handlers stay installed until cleanup ends, so a second signal during the grace
    # period does not kill the process mid-drain. All are in place before the ready line: a
    # SIGHUP or a config edit that follows it at once must not be lost (or kill the process).
    for sig in STOP_SIGNALS:
        loop.add_signal_handler(sig, stop.set)
    background = _start_reloading(app, source, loop) if source else []
    _log_banner(config, url, port)
    ready(url)
    try:
        await stop.wait()
        get_logger().info("stopping", grace_seconds=grace)
        for task in background:
            task.cancel()
        await runner.cleanup()
    finally:
        for sig in (*STOP_SIGNALS, signal.SIGHUP):
            loop.remove_signal_handler(sig)
    get_logger().info("stopped")
    return 0


def _start_reloading(app: web.Application, source: ConfigSource,
                     loop: asyncio.AbstractEventLoop) -> list[asyncio.Task]:
    reloader = Reloader(app[STATE], source)
    tasks = [asyncio.create_task(reloader.watch())]

    def on_sighup() -> None:
        tasks.append(asyncio.create_task(reloader.reload("SIGHUP")))

    loop.add_signal_handler(signal.SIGHUP, on_sighup)
    return tasks


def _bound_address(site: web.TCPSite) -> tuple[str, int]:
    """The address the socket really has (port 0 becomes the port the kernel chose)."""
    sock: socket.socket = site._server.sockets[0]  # type: ignore[union-attr]
    host, port = sock.getsockname()[:2]
    return host, port


def _print_ready(url: str) -> None:
    print(f"corsproxy listening on {url}", flush=True)


def _log_banner(config: Config, url: str, port: int) -> None:
    log = get_logger()
    log.info("listening", url=url, files=list(config.files))
    log.info("tip", why=same_host_advice(port))
    if config.server.inspector_size:
        log.info("inspector", url=f"{url}/__corsproxy/", keeps=config.server.inspector_size)
    else:
        log.info("inspector off", why="server.inspector_size is 0")
    for route in config.routes:
        log.info("route", prefix=route.prefix, upstream=route.upstream.url, source=str(route.source),
                 **allows(route.cors))
    for warning in config.warnings:
        log.warning("config warning", why=warning)


def allows(policy: CorsPolicy) -> dict[str, str | bool]:
    """What a route lets a page do, in words, for the banner."""
    shown = policy_values(policy)
    headers = ("any (allow_headers: ['*'])" if policy.allow_any_header
               else ", ".join(shown["allow_headers"] + ["the CORS-safelisted ones"]))
    return {
        "origins": ", ".join(shown["allow_origins"]) or "(none)",
        "methods": "any" if policy.allow_any_method else ", ".join(shown["allow_methods"]),
        "headers": headers,
        "expose": ", ".join(shown["expose_headers"]) or "(none)",
        "credentials": policy.allow_credentials,
    }

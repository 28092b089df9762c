"""Running the proxy: event loop choice, listening socket, ready line, graceful stop."""

from __future__ import annotations

import asyncio
import signal
import socket
import sys
from collections.abc import Callable

from aiohttp import web

from corsproxy.config.loader import policy_values
from corsproxy.errors import StoreError
from corsproxy.model import Config, CorsPolicy, ServerSettings
from corsproxy.policy.origins import loopback_host, page_host, same_host_advice
from corsproxy.server import logs, memory
from corsproxy.server.app import STATE, ProxyRunner, build_app
from corsproxy.server.logs import cannot_listen, display_url
from corsproxy.server.listener import Listener
from corsproxy.server.logs import get_logger
from corsproxy.server.reload import ConfigSource, Relisten, Reloader

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
        ready: Callable[[str, str], None] | None = None, reuse_port: bool = False) -> int:
    memory.keep_stream_buffers()
    with asyncio.Runner(loop_factory=new_event_loop) as runner:
        return runner.run(serve(config, grace=grace, source=source, ready=ready or _print_ready,
                                reuse_port=reuse_port))


def page_url(server: ServerSettings, host: str, port: int) -> str:
    """The proxy's URL as a page should call it (see origins.page_host)."""
    return f"http://{page_host(host, port, server.allowed_hosts, server.allow_any_host)}:{port}"


async def serve(config: Config, *, grace: float, source: ConfigSource | None,
                ready: Callable[[str, str], None], reuse_port: bool = False) -> int:
    try:
        app = build_app(config)
    except StoreError as exc:
        print(logs.error_line(str(exc)), file=sys.stderr)
        return 2
    runner = ProxyRunner(app, shutdown_timeout=grace)
    await runner.setup()
    server = config.server
    try:
        site = web.TCPSite(runner, server.host, server.port, backlog=1024, reuse_port=reuse_port or None)
        await site.start()
    except OSError as exc:
        await runner.cleanup()
        print(logs.error_line(cannot_listen(server.host, server.port, exc)), file=sys.stderr)
        return 1
    host, port = _bound_address(site)
    bound = display_url(host, port)
    url = page_url(server, host, port)
    listener = await _start_intercept(app, config) if config.intercept else None
    if listener is False:
        await runner.cleanup()
        return 1
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    # The handlers stay installed until cleanup ends, so a second signal during the grace
    # period does not kill the process mid-drain. All are in place before the ready line: a
    # SIGHUP or a config edit that follows it at once must not be lost (or kill the process).
    for sig in STOP_SIGNALS:
        loop.add_signal_handler(sig, stop.set)
    sites = [site]

    async def relisten(new_host: str, new_port: int) -> str:
        """Move the listener: the new socket first (an error keeps the old one), then close the
        old one; open connections finish where they are."""
        moved = web.TCPSite(runner, new_host, new_port, backlog=1024, reuse_port=reuse_port or None)
        await moved.start()
        old, sites[0] = sites[0], moved
        await old.stop()
        bound_host, bound_port = _bound_address(moved)
        return page_url(runner.app[STATE].current.config.server, bound_host, bound_port)

    background = _start_reloading(app, source, loop, relisten) if source else []
    _log_banner(config, url, bound, port)
    memory.settle()
    ready(url, bound)
    if not reuse_port:  # one worker of many would only repeat it
        background.append(asyncio.create_task(_warn_unreachable(config)))
    if listener:
        _announce_intercept(app, listener)
    logs.batch_lines(loop)
    try:
        await stop.wait()
        get_logger().info("stopping", grace_seconds=grace)
        for task in background:
            task.cancel()
        if listener:
            await listener.stop(grace)  # before the app's cleanup closes the upstream session
        await runner.cleanup()
    finally:
        for sig in (*STOP_SIGNALS, signal.SIGHUP):
            loop.remove_signal_handler(sig)
        logs.batch_lines(None)
    get_logger().info("stopped")
    return 0


UPSTREAM_CHECK_SECONDS = 3.0
DEMO_API = ("127.0.0.1", 9000)


def local_upstreams(config: Config) -> dict[tuple[str, int, str], list[str]]:
    """(host, port, origin) -> prefixes, for the upstreams on this machine only: the start-up
    check must never dial the network (a remote API that is down shows as a 502 when used)."""
    targets: dict[tuple[str, int, str], list[str]] = {}
    for route in config.routes:
        upstream = route.upstream
        if loopback_host(upstream.host):
            targets.setdefault((upstream.host, upstream.port, upstream.origin), []).append(str(route.shown("prefix")))
    return targets


async def _warn_unreachable(config: Config) -> None:
    """Once at start, say which local upstreams do not accept a connection yet: the routes to
    them answer 502 until they do (the bundled config/ expects `corsproxy demo`'s API, say)."""
    targets = local_upstreams(config)

    async def check(host: str, port: int, origin: str, prefixes: list[str]) -> None:
        try:
            async with asyncio.timeout(UPSTREAM_CHECK_SECONDS):
                _, writer = await asyncio.open_connection(host, port)
            writer.close()
        except (OSError, TimeoutError) as exc:
            fix = "requests to these routes answer 502 until it listens: start it, or change the route's upstream"
            if (host, port) == DEMO_API:
                fix += " (the bundled config/ expects the API of `corsproxy demo` there)"
            get_logger().warning("upstream not reachable", upstream=origin, routes=prefixes, fix=fix,
                                 why=f"{type(exc).__name__}: {exc}" if str(exc) else type(exc).__name__)

    await asyncio.gather(*(check(*target, prefixes) for target, prefixes in targets.items()))


def _start_reloading(app: web.Application, source: ConfigSource,
                     loop: asyncio.AbstractEventLoop, relisten: Relisten) -> list[asyncio.Task]:
    reloader = Reloader(app[STATE], source, relisten)
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


async def _start_intercept(app: web.Application, config: Config) -> Listener | bool:
    """The intercept listener, up before the ready line (a browser started on that line must
    find its PAC, or it goes direct silently); False when it cannot listen."""
    listener = Listener(app)
    settings = config.intercept
    try:
        host, port = await listener.start(settings.listen_host, settings.listen_port)
    except OSError as exc:
        why = cannot_listen(settings.listen_host, settings.listen_port, exc).split("; ")[0]
        print(logs.error_line(f"{why} ({settings.source}: intercept.listen; change it there)"), file=sys.stderr)
        return False
    listener.url = display_url(host, port)
    return listener


def _announce_intercept(app: web.Application, listener: Listener) -> None:
    """The contract's intercept line, after the ready line (one JSON object in JSON mode)."""
    intercept = app[STATE].current.intercept
    hosts, spki = list(intercept.settings.names), intercept.authority.spki
    get_logger().info("intercepting", url=listener.url, hosts=hosts, spki=spki, ca=intercept.authority.origin)
    print(logs.intercept_line(listener.url, hosts, spki), flush=True)


def _print_ready(url: str, bound: str) -> None:
    print(logs.ready_line(url, bound), flush=True)


def _log_banner(config: Config, url: str, bound: str, port: int) -> None:
    log = get_logger()
    log.info("listening", url=url, bound=bound, files=list(config.files))
    log.info("tip", why=same_host_advice(port))
    if config.server.inspector_size:
        log.info("inspector", url=f"{url}/__corsproxy/", keeps=config.server.inspector_size)
    else:
        log.info("inspector off", why="server.inspector_size is 0")
    for route in config.routes:
        log.info("route", prefix=route.shown("prefix"), upstream=route.upstream.shown, source=str(route.source),
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
        "credentials": shown["allow_credentials"],
    }

"""Real Chromium on loopback: the browser, the servers, and corsproxy started from its real CLI.

Every test module of this package runs on one event loop per module
(`pytest.mark.asyncio(loop_scope="module")`), so the browser and the servers are started once
per module; each test gets a fresh browser context (its own cookies and caches).
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import socket
import sys
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path

import pytest
import pytest_asyncio

from tests.browser.apps import (
    RECEIVED,
    SSE_GO,
    SSE_SENT,
    Site,
    make_page,
    make_upstream,
    start_site,
)
from tests.processes import stop_process

ROOT = Path(__file__).resolve().parents[2]
CHROMIUM_ARGS = (
    "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
    "--disable-background-networking", "--disable-component-update", "--disable-sync",
)
READY = "corsproxy listening on "
START_TIMEOUT = 30.0


def chromium_executable() -> str:
    """Debian's chromium (or $CHROMIUM). A missing browser FAILS the suite: skipping would let
    a CI without chromium pass without ever asking a browser."""
    path = os.environ.get("CHROMIUM", "/usr/bin/chromium")
    if not (os.path.isfile(path) and os.access(path, os.X_OK)):
        pytest.fail(f"chromium not found at {path!r}: the browser suite needs Debian's chromium "
                    "(`apt-get install -y chromium`, which .ci/run does) or $CHROMIUM naming a "
                    "Chromium binary; Playwright's own browser download is not used", pytrace=False)
    return path


@contextlib.asynccontextmanager
async def launched_chromium(tmp_path_factory, *extra_args: str) -> AsyncIterator:
    """Debian's Chromium through Playwright, with the suite's flags (plus `extra_args`)."""
    executable = chromium_executable()
    from playwright.async_api import async_playwright

    async with async_playwright() as playwright:
        # Playwright's launch() starts Chromium on a new temporary --user-data-dir: a brand-new
        # profile every run. Each test then opens its own incognito-like context in it.
        browser = await playwright.chromium.launch(
            executable_path=executable, headless=True, args=[*CHROMIUM_ARGS, *extra_args],
            env={**os.environ, "HOME": str(tmp_path_factory.mktemp("chromium-home"))},
        )
        try:
            yield browser
        finally:
            await browser.close()


@contextlib.asynccontextmanager
async def fresh_context(browser) -> AsyncIterator:
    """A fresh browser context: no cookies, no preflight or HTTP cache from another test."""
    context = await browser.new_context()
    context.set_default_timeout(15_000)
    try:
        yield context
    finally:
        await context.close()


@pytest_asyncio.fixture(scope="module", loop_scope="module")
async def browser(tmp_path_factory) -> AsyncIterator:
    async with launched_chromium(tmp_path_factory) as launched:
        yield launched


@pytest_asyncio.fixture(loop_scope="module")
async def context(browser) -> AsyncIterator:
    """A fresh browser context per test: no cookies, no preflight or HTTP cache from another test."""
    async with fresh_context(browser) as fresh:
        yield fresh


@dataclass
class ProxyProcess:
    """A `python -m corsproxy serve` process, stopped by its pid."""

    process: asyncio.subprocess.Process
    port: int
    log: Path

    @property
    def url(self) -> str:
        # The page must call the same host name it is served on (localhost, as the ready line
        # says), or Chromium treats the proxy as another site and withholds cookies.
        return f"http://localhost:{self.port}"

    async def stop(self) -> int:
        return await stop_process(self.process, f"corsproxy (log: {self.log})")


async def start_proxy(config: Path, log: Path) -> ProxyProcess:
    """Start the real CLI on `config` with --port 0 and read the port from its ready line."""
    return await start_cli(["serve", "-c", str(config), "--port", "0"], log)


async def start_cli(args: list[str], log: Path) -> ProxyProcess:
    """Start `python -m corsproxy ARGS --grace 1` (ARGS ending in --port 0) and read the port
    from its ready line."""
    with log.open("wb") as stderr:  # a file, not a pipe: a chatty log must never block the proxy
        process = await asyncio.create_subprocess_exec(
            sys.executable, "-m", "corsproxy", *args, "--grace", "1",
            cwd=ROOT, stdout=asyncio.subprocess.PIPE, stderr=stderr)
    try:
        line = (await asyncio.wait_for(process.stdout.readline(), START_TIMEOUT)).decode().strip()
    except BaseException:
        await stop_process(process, "corsproxy serve", signal.SIGKILL)
        raise
    if not line.startswith(READY):
        await stop_process(process, "corsproxy serve", signal.SIGKILL)
        raise AssertionError(f"corsproxy did not start: {line!r}\n{log.read_text()}")
    return ProxyProcess(process, int(line.rsplit(":", 1)[1]), log)


PROXY_CONFIG = """\
# The browser suite's proxy. {comment}
cors:
  allow_origins: [{origins}]
  allow_headers: [Content-Type, Authorization]
  expose_headers: [X-Total-Count]
  allow_credentials: true
routes:
  - prefix: /api
    upstream: http://127.0.0.1:{upstream}/v1
  - prefix: /down                 # its upstream was started, then stopped
    upstream: http://127.0.0.1:{dead}/v1
  - prefix: /slow
    upstream: http://127.0.0.1:{upstream}/v1
    timeout: 1
"""


@dataclass
class World:
    upstream: Site
    allowed_page: Site
    foreign_page: Site
    proxy: ProxyProcess          # allows only allowed_page's origin
    proxy_none: ProxyProcess     # the same routes, no origin allowed

    @property
    def received(self) -> list[dict]:
        return self.upstream.app[RECEIVED]

    def reset(self) -> None:
        self.received.clear()
        self.upstream.app[SSE_SENT].clear()
        queue = self.upstream.app[SSE_GO]
        while not queue.empty():
            queue.get_nowait()


async def _stopped_upstream_port() -> tuple[int, socket.socket]:
    """The port of an upstream that was started and then stopped, kept reserved by a bound but
    not listening socket so nothing else takes it (connecting is refused)."""
    site = await start_site(make_upstream())
    port = site.port
    await site.stop()
    holder = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    holder.bind(("127.0.0.1", port))
    return port, holder


@pytest_asyncio.fixture(scope="module", loop_scope="module")
async def world(tmp_path_factory) -> AsyncIterator[World]:
    tmp = tmp_path_factory.mktemp("browser-world")
    sites: list[Site] = []
    proxies: list[ProxyProcess] = []
    dead_port, holder = await _stopped_upstream_port()
    try:
        for app in (make_upstream(), make_page(), make_page()):
            sites.append(await start_site(app))
        upstream, allowed_page, foreign_page = sites
        for name, origins, comment in (
            ("allowed", allowed_page.url, "Only the allowed page's origin may read."),
            ("none", "", "No origin at all may read: every cross-origin call must fail."),
        ):
            config = tmp / f"{name}.yaml"
            config.write_text(PROXY_CONFIG.format(origins=origins, upstream=upstream.port, dead=dead_port,
                                                  comment=comment))
            proxies.append(await start_proxy(config, tmp / f"{name}.log"))
        yield World(upstream, allowed_page, foreign_page, *proxies)
    finally:
        codes = []
        try:
            for proxy in proxies:
                codes.append(await proxy.stop())
        finally:
            for site in sites:
                await site.stop()
            holder.close()
    assert codes == [0] * len(proxies), f"corsproxy exit codes on SIGTERM: {codes}"

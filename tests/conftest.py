"""Fixtures: real loopback upstreams and real proxies on free ports, built from YAML."""

from __future__ import annotations

import asyncio
import faulthandler
import json
import os
import signal
import sys
import textwrap
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import TextIO

import pytest
import structlog
from aiohttp import web
from aiohttp.test_utils import BaseTestServer, TestClient, TestServer

from corsproxy import config as config_module
from corsproxy.server.app import ProxyRunner, build_app
from tests.processes import Output, stop_process
from tests.real_upstreams import httpbin, sse_upstream, stdlib_upstream, ws_upstream  # noqa: F401 (fixtures)
from tests.upstream_app import RECEIVED, make_upstream

ROOT = Path(__file__).resolve().parent.parent


# pytest-timeout's alarm fires once per test; a hang after it (a fixture's teardown, a child
# that never exits) would hold CI until its own limit. This ends the run instead, with every
# thread's stack, far above the suite's normal two minutes.
SESSION_LIMIT_SECONDS = 900
WATCHDOG_FILE = pytest.StashKey[TextIO]()


def pytest_configure(config: pytest.Config) -> None:
    # In-process proxies log to stderr, as `corsproxy serve` does: a request line must never land
    # in the stdout of a command a test captures beside it (an in-process probe, say). The file
    # is looked up per line, so each test's capture gets its own.
    structlog.configure(logger_factory=lambda *_: structlog.PrintLogger(sys.stderr))
    # A copy of the real stderr: by the time the limit passes, fd 2 may be pytest's capture file.
    config.stash[WATCHDOG_FILE] = os.fdopen(os.dup(sys.__stderr__.fileno()), "w")
    faulthandler.dump_traceback_later(SESSION_LIMIT_SECONDS, exit=True, file=config.stash[WATCHDOG_FILE])


def pytest_unconfigure(config: pytest.Config) -> None:
    faulthandler.cancel_dump_traceback_later()
    config.stash[WATCHDOG_FILE].close()


ALLOWED = "http://localhost:3000"
FOREIGN = "https://evil.example"


@pytest.fixture
async def bystander():
    """A listening socket on 127.0.0.1 that must never be dialled: (its port, one entry per
    connection it accepted)."""
    connections: list[int] = []

    async def accept(_reader, writer):
        connections.append(1)
        writer.close()

    server = await asyncio.start_server(accept, "127.0.0.1", 0)
    yield server.sockets[0].getsockname()[1], connections
    server.close()
    await server.wait_closed()


@pytest.fixture
async def upstream(aiohttp_server) -> TestServer:
    """The test API on 127.0.0.1, mounted at /v1, sending no CORS headers of its own."""
    return await aiohttp_server(make_upstream())


@pytest.fixture
def received(upstream) -> list[dict]:
    """Every request the upstream has seen, in order."""
    return upstream.app[RECEIVED]


class ProxyServer(BaseTestServer):
    """The main port as `corsproxy serve` runs it (ProxyRunner: corsproxy's own dispatch on
    aiohttp's low-level server, llhttp's limits, handler cancellation, the app's session), on a
    free port of 127.0.0.1, for aiohttp_client. `app` is what the handler reads."""

    def __init__(self, app: web.Application, **kwargs) -> None:
        self.app = app
        super().__init__(**kwargs)

    async def _make_runner(self, **kwargs) -> ProxyRunner:
        return ProxyRunner(self.app, **kwargs)


ProxyFactory = Callable[..., Awaitable[TestClient]]


@pytest.fixture
def make_proxy(aiohttp_client, tmp_path: Path, upstream) -> ProxyFactory:
    """Start a real proxy from YAML text; `{upstream}` is replaced by the test API's URL."""

    async def start(yaml_text: str, **format_args: object) -> TestClient:
        path = tmp_path / "corsproxy.yaml"
        path.write_text(textwrap.dedent(yaml_text).format(upstream=f"http://127.0.0.1:{upstream.port}", **format_args))
        return await aiohttp_client(ProxyServer(build_app(config_module.load(path, env={"TOKEN": "s3cret"}))))

    return start


BASIC = """
    cors:
      allow_origins: [http://localhost:3000]
      allow_headers: [Content-Type, Authorization]
      expose_headers: [X-Total-Count]
    routes:
      - prefix: /api
        upstream: {upstream}/v1
"""


@pytest.fixture
async def proxy(make_proxy) -> TestClient:
    """A proxy with /api -> the test API's /v1, allowing http://localhost:3000."""
    return await make_proxy(BASIC)


@pytest.fixture
async def raw_upstream() -> Callable[[bytes], Awaitable[int]]:
    """A bare TCP server answering every connection with canned bytes (for responses aiohttp
    would not produce, such as one without Content-Type). Returns its port."""
    servers: list[asyncio.Server] = []

    async def start(response: bytes) -> int:
        async def answer(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
            await reader.readuntil(b"\r\n\r\n")
            writer.write(response)
            await writer.drain()
            writer.close()

        server = await asyncio.start_server(answer, "127.0.0.1", 0)
        servers.append(server)
        return server.sockets[0].getsockname()[1]

    yield start
    for server in servers:
        server.close()
        await server.wait_closed()


async def raw_http(port: int, request: bytes, *, host: str = "127.0.0.1", timeout: float = 5.0) -> bytes:
    """Send bytes exactly as given (no client-side normalisation) and read until the server closes."""
    reader, writer = await asyncio.open_connection(host, port)
    try:
        writer.write(request)
        await writer.drain()
        return await asyncio.wait_for(reader.read(1 << 20), timeout)
    finally:
        writer.close()


def status_of(response: bytes) -> int:
    return int(response.split(b" ", 2)[1])


# --- a real `corsproxy serve` process -------------------------------------------------------

class Proxy:
    """A `corsproxy serve` process, its stdout and stderr read as they arrive; stopped by its
    pid at the end of the test whatever happens."""

    def __init__(self, process: asyncio.subprocess.Process) -> None:
        self.process, self.url, self.ready = process, "", ""
        self.stdout, self.stderr = Output(process.stdout), Output(process.stderr)

    async def stop(self, sig: int = signal.SIGTERM, timeout: float = 20) -> int:
        return await stop_process(self.process, "corsproxy serve", sig, timeout)


@pytest.fixture
async def spawn():
    started: list[Proxy] = []

    async def start(*args: str, env: dict | None = None, cwd: Path | None = None) -> Proxy:
        process = await asyncio.create_subprocess_exec(
            sys.executable, "-m", "corsproxy", *args, cwd=cwd or ROOT, env={**os.environ, **(env or {})},
            stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE)
        proxy = Proxy(process)
        started.append(proxy)
        try:
            line = (await proxy.stdout.until(b"\n", 30)).decode().strip()
        except AssertionError:  # it exited or stayed silent: its stderr says why
            line = "(no ready line)"
        proxy.ready = line
        if line.startswith("{") and '"listening"' in line:  # --log-format json
            proxy.url = json.loads(line)["url"]
            return proxy
        if not line.startswith("corsproxy listening on "):
            await stop_process(process, "corsproxy serve", signal.SIGKILL)
            raise AssertionError(f"corsproxy did not start: {line}\n{(await proxy.stderr.finished()).decode()}")
        proxy.url = line.removeprefix("corsproxy listening on ").split()[0]
        return proxy

    yield start
    for proxy in started:
        if proxy.process.returncode is None:
            await stop_process(proxy.process, "corsproxy serve", signal.SIGKILL)

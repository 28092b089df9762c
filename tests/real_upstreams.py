"""Real upstreams that nobody here wrote, for the transparency tests (issue #11).

- httpbin on gunicorn, in a venv of its own: httpbin 0.10 pins greenlet<3, which would
  downgrade Playwright in the main venv. The venv is built once under `.venv-httpbin/` (pip as
  configured on the machine) and reused while its requirements are unchanged.
- a `websockets` server (the library's own asyncio server), echoing and closing on request;
- a starlette app with sse-starlette, served by uvicorn, whose events the test releases;
- Python's http.server, which shows the exact bytes of the request line and headers it got.
"""

from __future__ import annotations

import asyncio
import contextlib
import http.server
import json
import os
import shutil
import socket
import subprocess
import sys
import threading
import time
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass, field
from http import HTTPStatus
from pathlib import Path

import pytest
import pytest_asyncio

ROOT = Path(__file__).resolve().parent.parent
HTTPBIN_VENV = ROOT / ".venv-httpbin"
# gunicorn 24+ opens a control socket in ~/.gunicorn shared by every gunicorn of the user.
HTTPBIN_REQUIREMENTS = ("httpbin==0.10.4", "gunicorn==23.0.0")
BUILD_TIMEOUT = 300.0
START_TIMEOUT = 30.0
WAIT_LIMIT = 30.0


def proxy_config(origin: str, httpbin: str, ws: str, sse: str, std: str = "http://127.0.0.1:9",
                 server: str = "") -> str:
    """The transparency suites' corsproxy.yaml: one route per real upstream (`server` is a
    block of server keys, indented, or nothing)."""
    return f"""\
{server}cors:
  allow_origins: [{origin}]
  allow_credentials: true
routes:
  - {{prefix: /api, upstream: "{httpbin}"}}
  - {{prefix: /host-kept, upstream: "{httpbin}", change_origin: false}}
  - {{prefix: /quick, upstream: "{httpbin}", timeout: 1}}
  - {{prefix: /ws, upstream: "{ws}"}}
  - {{prefix: /sse, upstream: "{sse}"}}
  - {{prefix: /std, upstream: "{std}/base"}}
"""


def httpbin_venv() -> Path:
    """The httpbin venv, built when missing or when its requirements changed (bounded in time)."""
    marker = HTTPBIN_VENV / "corsproxy-requirements.txt"
    wanted = "\n".join(HTTPBIN_REQUIREMENTS) + "\n"
    if marker.is_file() and marker.read_text() == wanted and (HTTPBIN_VENV / "bin" / "gunicorn").is_file():
        return HTTPBIN_VENV
    shutil.rmtree(HTTPBIN_VENV, ignore_errors=True)
    steps = ([sys.executable, "-m", "venv", str(HTTPBIN_VENV)],
             [str(HTTPBIN_VENV / "bin" / "python"), "-m", "pip", "install", "-q", *HTTPBIN_REQUIREMENTS])
    for step in steps:
        try:
            done = subprocess.run(step, capture_output=True, text=True, timeout=BUILD_TIMEOUT)
        except subprocess.TimeoutExpired:
            pytest.fail(f"building the httpbin venv took over {BUILD_TIMEOUT:g}s: {' '.join(step)}", pytrace=False)
        if done.returncode:
            pytest.fail(f"building the httpbin venv failed: {' '.join(step)}\n{done.stderr[-3000:]}", pytrace=False)
    marker.write_text(wanted)
    return HTTPBIN_VENV


def stop_popen(process: subprocess.Popen, what: str, timeout: float = 15.0) -> None:
    """SIGTERM, then SIGKILL after `timeout`; by pid, always bounded."""
    if process.poll() is None:
        process.terminate()
    try:
        process.wait(timeout)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait(timeout)
        raise AssertionError(f"{what} (pid {process.pid}) did not stop on SIGTERM") from None


@pytest.fixture(scope="session")
def httpbin(tmp_path_factory) -> Iterator[str]:
    """httpbin on gunicorn (threads, so drips and keep-alive do not block each other); its URL."""
    venv = httpbin_venv()
    log = tmp_path_factory.mktemp("httpbin") / "gunicorn.log"
    with log.open("wb") as out:
        # --limit-request-line 0: gunicorn's own 4 KiB request-line cap would hide the 9 KiB
        # response headers that /response-headers is asked for.
        process = subprocess.Popen(
            [str(venv / "bin" / "gunicorn"), "-b", "127.0.0.1:0", "-k", "gthread", "--threads", "16",
             "--limit-request-line", "0", "--limit-request-field_size", "0", "httpbin:app"],
            stdout=out, stderr=subprocess.STDOUT, cwd=log.parent, env={**os.environ, "PYTHONUNBUFFERED": "1"})
    try:
        url = _gunicorn_url(process, log)
        _wait_until_answers(url, process, log)
        yield url
    finally:
        stop_popen(process, "gunicorn httpbin")


def _gunicorn_url(process: subprocess.Popen, log: Path) -> str:
    deadline = time.monotonic() + START_TIMEOUT
    while time.monotonic() < deadline and process.poll() is None:
        for line in log.read_text(errors="replace").splitlines():
            if "Listening at: " in line:
                return line.split("Listening at: ", 1)[1].split()[0]
        time.sleep(0.05)     # polling gunicorn's log for its ready line, bounded above
    pytest.fail(f"gunicorn did not start:\n{log.read_text(errors='replace')}", pytrace=False)


def _wait_until_answers(url: str, process: subprocess.Popen, log: Path) -> None:
    """gunicorn listens before its worker has imported httpbin: wait for a first answer."""
    host, port = url.removeprefix("http://").rsplit(":", 1)
    with socket.create_connection((host, int(port)), timeout=START_TIMEOUT) as sock:
        sock.settimeout(START_TIMEOUT)
        sock.sendall(b"GET /status/204 HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
        if not sock.recv(64).startswith(b"HTTP/1.1 204"):
            pytest.fail(f"httpbin did not answer:\n{log.read_text(errors='replace')}", pytrace=False)


# --- websockets ------------------------------------------------------------------------------

@dataclass
class WsServer:
    url: str
    closes: list[tuple[int, str]] = field(default_factory=list)   # how each client closed
    closed: asyncio.Event = field(default_factory=asyncio.Event)


BIG_MESSAGE = 6 * 1024 * 1024


async def start_websockets_server() -> tuple[WsServer, object]:
    """A `websockets` server: /echo, /close (4001 "bye"), /big (6 MiB), /ping (a ping from the
    server, then "pong received"), /order (n numbered messages); /refuse answers 401 with a
    body, /plain 200 (an HTTP page). It accepts any message size, as two agreeing ends would."""
    from websockets.asyncio.server import serve

    async def handler(ws) -> None:
        path = ws.request.path
        try:
            if path == "/close":
                await ws.close(4001, "bye")
            elif path == "/big":
                await ws.send(b"\x01" * BIG_MESSAGE)
                await ws.wait_closed()
            elif path == "/ping":
                pong = await ws.ping(b"from-upstream")
                await asyncio.wait_for(pong, WAIT_LIMIT)
                await ws.send("pong received")
                await ws.wait_closed()
            elif path.startswith("/order"):
                for n in range(int(path.rsplit("/", 1)[1])):
                    await ws.send(str(n))
                await ws.wait_closed()
            else:
                async for message in ws:
                    await ws.send(message)
        finally:
            await ws.wait_closed()
            server.closes.append((ws.close_code, ws.close_reason))
            server.closed.set()

    def refuse(connection, request):
        if request.path == "/refuse":
            response = connection.respond(HTTPStatus.UNAUTHORIZED, "no token, no socket\n")
            response.headers["WWW-Authenticate"] = 'Bearer realm="ws"'
            return response
        if request.path == "/plain":
            return connection.respond(HTTPStatus.OK, "a plain page\n")
        return None

    ws_server = await serve(handler, "127.0.0.1", 0, process_request=refuse, max_size=None,
                            select_subprotocol=_prefer_chat_v2)
    port = ws_server.sockets[0].getsockname()[1]
    server = WsServer(f"ws://127.0.0.1:{port}")
    return server, ws_server


def _prefer_chat_v2(connection, offered):
    """The server's preference, whatever order the client offered them in; none is fine too."""
    return next((protocol for protocol in ("chat.v2", "chat") if protocol in offered), None)


@pytest_asyncio.fixture
async def ws_upstream() -> AsyncIterator[WsServer]:
    server, running = await start_websockets_server()
    try:
        yield server
    finally:
        running.close()
        await asyncio.wait_for(running.wait_closed(), 15)


# --- starlette + sse-starlette on uvicorn ----------------------------------------------------

@dataclass
class SseServer:
    url: str
    go: asyncio.Queue          # one token per event after the first
    sent: list[str]


def make_sse_app(go: asyncio.Queue, sent: list[str]):
    from sse_starlette.sse import EventSourceResponse
    from starlette.applications import Starlette
    from starlette.routing import Route

    async def events(request):
        async def stream():
            for n in range(3):
                if n:
                    await asyncio.wait_for(go.get(), WAIT_LIMIT)
                sent.append(f"event {n}")
                yield {"event": "message", "data": f"event {n}", "id": str(n)}
            await asyncio.wait_for(asyncio.Event().wait(), WAIT_LIMIT)   # stays open, as live streams do
        return EventSourceResponse(stream())

    return Starlette(routes=[Route("/events", events)])


@contextlib.asynccontextmanager
async def running_sse() -> AsyncIterator[SseServer]:
    import uvicorn

    go: asyncio.Queue = asyncio.Queue()
    sent: list[str] = []
    config = uvicorn.Config(make_sse_app(go, sent), host="127.0.0.1", port=0, log_level="warning",
                            lifespan="off")
    config.load()
    server = uvicorn.Server(config)
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    # startup() (not serve()) so that uvicorn leaves the test runner's signal handlers alone.
    server.lifespan = config.lifespan_class(config)
    await server.startup(sockets=[sock])
    try:
        yield SseServer(f"http://127.0.0.1:{sock.getsockname()[1]}", go, sent)
    finally:
        server.should_exit = True
        await asyncio.wait_for(server.shutdown(sockets=[sock]), 15)
        sock.close()


@pytest_asyncio.fixture
async def sse_upstream() -> AsyncIterator[SseServer]:
    async with running_sse() as server:
        yield server


# --- Python's http.server: the exact bytes it got ------------------------------------------

class _Echo(http.server.BaseHTTPRequestHandler):
    """GET /disposition sends a Latin-1 filename; anything else answers with the request line
    and the raw bytes of every header value it got (hex, so nothing is re-decoded)."""

    protocol_version = "HTTP/1.1"

    def do_GET(self) -> None:
        if self.path.endswith("/disposition"):
            body = b"file"
            self.send_response(200)
            # http.server writes header values as Latin-1: this is the byte 0xE9 on the wire.
            self.send_header("Content-Disposition", 'attachment; filename="caf\xe9.txt"')
        else:
            body = json.dumps({
                "request_line": self.requestline,
                "headers": [[name, value.encode("latin-1", "replace").hex()] for name, value in self.headers.items()],
            }).encode()
            self.send_response(200)
            self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def do_POST(self) -> None:
        """The same echo, after reading the body (its length as the client framed it)."""
        self.rfile.read(int(self.headers.get("Content-Length", "0")))
        self.do_GET()

    def log_message(self, *args) -> None:
        pass


@pytest.fixture
def stdlib_upstream() -> Iterator[str]:
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _Echo)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()
        thread.join(15)

"""An allowed preflight's head is serialised once per decision (server/heads.py), and its bytes
stay those aiohttp's own Response writes for the same headers, connection handling included."""

from __future__ import annotations

import asyncio
import re

import pytest
from aiohttp import web

from corsproxy.model import Decision
from corsproxy.server.heads import HeadCache
from tests.conftest import ALLOWED

DATE = re.compile(rb"\r\nDate: [^\r]+\r\n")
PREFLIGHT = ("OPTIONS /api/items HTTP/{version}\r\nHost: 127.0.0.1\r\nOrigin: " + ALLOWED + "\r\n"
             "Access-Control-Request-Method: PUT\r\nAccess-Control-Request-Headers: authorization, content-type\r\n"
             "{connection}\r\n")
CASES = {
    "HTTP/1.1 keep-alive": ("1.1", ""),
    "HTTP/1.1 Connection: close": ("1.1", "Connection: close\r\n"),
    "HTTP/1.0": ("1.0", ""),
    "HTTP/1.0 Connection: keep-alive": ("1.0", "Connection: keep-alive\r\n"),
}


async def heads(port: int, request: bytes, keeps_alive: bool) -> list[bytes]:
    """The answers to `request` on one connection (a 204 has no body: each ends at its blank
    line): sent twice when the connection should stay open (the second answer shows it did),
    else once, and then the server must close it with nothing after the head."""
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    try:
        answers = []
        for _ in range(2 if keeps_alive else 1):
            writer.write(request)
            answers.append(await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), 5))
        if not keeps_alive:
            assert await asyncio.wait_for(reader.read(), 5) == b""
    finally:
        writer.close()
    return answers


@pytest.fixture
async def aiohttp_204():
    """aiohttp's low-level server answering every request with Response(204, headers=the
    headers the handler is given), the reference for the bytes."""
    wanted: list[tuple[str, str]] = []
    server = web.Server(lambda request: _respond(wanted))
    runner = web.ServerRunner(server)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    yield wanted, site._server.sockets[0].getsockname()[1]
    await runner.cleanup()


async def _respond(wanted):
    return web.Response(status=204, headers=wanted)


@pytest.mark.parametrize("case", CASES.values(), ids=CASES.keys())
async def test_a_preflights_bytes_are_aiohttps_for_the_same_headers(proxy, aiohttp_204, case):
    """Status line, fields in order, Date, Server and Connection as aiohttp writes them; keep-alive kept."""
    version, connection = case
    request = PREFLIGHT.format(version=version, connection=connection).encode()
    keeps_alive = (version, connection) in (("1.1", ""), ("1.0", "Connection: keep-alive\r\n"))
    ours = await heads(proxy.port, request, keeps_alive)
    assert ours[0].startswith(f"HTTP/{version} 204 No Content\r\n".encode()) and ours[0] == ours[-1]
    fields = [tuple(line.split(": ", 1)) for line in ours[0].decode().split("\r\n")[1:-2]]
    cors = [(name, value) for name, value in fields if name not in ("Date", "Server", "Connection")]
    assert ("Access-Control-Allow-Headers", "authorization, content-type") in cors
    wanted, port = aiohttp_204
    wanted.extend(cors)
    theirs = await heads(port, request, keeps_alive)
    assert [DATE.sub(b"\r\nDate: -\r\n", head) for head in ours] == \
           [DATE.sub(b"\r\nDate: -\r\n", head) for head in theirs]


def test_the_head_cache_is_bounded_and_keyed_by_the_decision_itself() -> None:
    """A decision's fields are made once; the cache keeps at most its size, dropping the oldest."""
    cache = HeadCache(size=2)
    first = Decision(allowed=True, kind="preflight", headers=(("Access-Control-Allow-Origin", ALLOWED),))
    assert cache.head(first).fields == f"Access-Control-Allow-Origin: {ALLOWED}\r\n".encode()
    assert cache.head(first) is cache.head(first)
    others = [Decision(allowed=True, kind="preflight", headers=(("Vary", str(n)),)) for n in range(3)]
    for decision in others:
        assert cache.head(decision).fields == f"Vary: {decision.headers[0][1]}\r\n".encode()
    assert len(cache._entries) == 2 and id(first) not in cache._entries

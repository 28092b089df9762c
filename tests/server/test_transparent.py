"""Transparent forwarding (issue #11): through corsproxy, real software nobody here wrote
answers as it does to the same call made directly.

The upstreams come from PyPI (httpbin on gunicorn, a `websockets` server, starlette with
sse-starlette on uvicorn) or the standard library (http.server, which shows the exact bytes it
got); see tests/real_upstreams.py. Each test makes the call directly and through the proxy and
compares what the client gets.
"""

from __future__ import annotations

import asyncio
import json
import zlib

import aiohttp
import pytest
from aiohttp import WSMsgType, web

from tests.conftest import ALLOWED, status_of
from tests.real_upstreams import BIG_MESSAGE, proxy_config

DEFAULT_LIMITS = {"ws_limit": 1 << 30, "head_size": 256 * 1024, "head_count": 4096}
WAIT = 10.0


@pytest.fixture
def through(make_proxy, httpbin, ws_upstream, sse_upstream, stdlib_upstream):
    """Start a proxy in front of every real upstream (limits overridable); returns its client."""

    async def start(**limits):
        limits = {**DEFAULT_LIMITS, **limits}
        server = ("server:\n"
                  f"  websocket_max_message_size: {limits['ws_limit']}\n"
                  f"  upstream_max_header_size: {limits['head_size']}\n"
                  f"  upstream_max_headers: {limits['head_count']}\n")
        return await make_proxy(proxy_config(ALLOWED, httpbin, ws_upstream.url, sse_upstream.url,
                                             stdlib_upstream, server).replace("{", "{{").replace("}", "}}"))

    return start


@pytest.fixture
async def direct():
    """A plain client, decompressing nothing, taking response heads as big as Chromium does."""
    async with aiohttp.ClientSession(auto_decompress=False, max_line_size=256 * 1024,
                                     max_field_size=256 * 1024, max_headers=4096) as session:
        yield session


def proxy_url(client, path: str) -> str:
    return str(client.make_url(path))


# --- 1. WebSocket messages of any size the two ends agree on -------------------------------

async def test_large_websocket_messages_pass_both_ways_as_direct(through, direct, ws_upstream):
    """A 6 MiB message from the upstream and a 5 MiB one from the client arrive whole, as direct."""
    client = await through()
    outgoing = b"\x02" * (5 * 1024 * 1024)
    for url in (f"{ws_upstream.url}/big", proxy_url(client, "/ws/big")):
        async with direct.ws_connect(url, max_msg_size=0) as ws:
            message = await ws.receive(WAIT)
            assert (message.type, len(message.data)) == (WSMsgType.BINARY, BIG_MESSAGE), url
    for url in (f"{ws_upstream.url}/echo", proxy_url(client, "/ws/echo")):
        async with direct.ws_connect(url, max_msg_size=0) as ws:
            await ws.send_bytes(outgoing)
            message = await ws.receive(WAIT)
            assert (message.type, message.data == outgoing) == (WSMsgType.BINARY, True), url


@pytest.mark.parametrize("direction", ["from-upstream", "from-client"])
async def test_a_message_over_the_limit_closes_both_ends_with_1009(through, direct, ws_upstream, direction):
    """Over server.websocket_max_message_size, both ends get close 1009, never a clean 1000."""
    client = await through(ws_limit=1024 * 1024)
    path = "/ws/big" if direction == "from-upstream" else "/ws/echo"
    async with direct.ws_connect(proxy_url(client, path), max_msg_size=0) as ws:
        if direction == "from-client":
            await ws.send_bytes(b"\x03" * (2 * 1024 * 1024))
        message = await ws.receive(WAIT)
        assert message.type is WSMsgType.CLOSE, message
        assert message.data == 1009, message
    await asyncio.wait_for(ws_upstream.closed.wait(), WAIT)
    assert ws_upstream.closes[0][0] == 1009, ws_upstream.closes


# --- 2. close codes, reasons, pings ---------------------------------------------------------

async def test_upstream_close_code_and_reason_reach_the_client(through, direct, ws_upstream):
    """The upstream's close 4001 "bye" reaches the client as 4001 "bye", as direct."""
    client = await through()
    for url in (f"{ws_upstream.url}/close", proxy_url(client, "/ws/close")):
        async with direct.ws_connect(url) as ws:
            message = await ws.receive(WAIT)
            assert (message.type, message.data, message.extra) == (WSMsgType.CLOSE, 4001, "bye"), url


async def test_client_close_code_and_reason_reach_the_upstream(through, direct, ws_upstream):
    """The client's close 4002 "later" reaches the upstream as 4002 "later", as direct."""
    client = await through()
    for n, url in enumerate((f"{ws_upstream.url}/echo", proxy_url(client, "/ws/echo"))):
        ws_upstream.closed.clear()
        async with direct.ws_connect(url) as ws:
            await ws.send_str("hello")
            assert (await ws.receive(WAIT)).data == "hello"
            await ws.close(code=4002, message=b"later")
        await asyncio.wait_for(ws_upstream.closed.wait(), WAIT)
        assert ws_upstream.closes[n] == (4002, "later"), url


async def test_upstream_ping_reaches_the_client_and_its_pong_the_upstream(through, direct, ws_upstream):
    """A ping the upstream sends reaches the client, and the client's pong answers it (end to end)."""
    client = await through()
    for url in (f"{ws_upstream.url}/ping", proxy_url(client, "/ws/ping")):
        async with direct.ws_connect(url, autoping=False) as ws:
            ping = await ws.receive(WAIT)
            assert (ping.type, ping.data) == (WSMsgType.PING, b"from-upstream"), url
            await ws.pong(ping.data)
            assert (await ws.receive(WAIT)).data == "pong received", url


async def test_client_ping_reaches_the_upstream(make_proxy, aiohttp_server, direct):
    """A ping the client sends reaches the upstream itself (an aiohttp server that records it)."""
    pings: list[bytes] = []

    async def recorder(request: web.Request) -> web.WebSocketResponse:
        ws = web.WebSocketResponse(autoping=False)
        await ws.prepare(request)
        async for message in ws:
            if message.type is WSMsgType.PING:
                pings.append(message.data)
                await ws.pong(message.data)
        return ws

    app = web.Application()
    app.router.add_get("/pings", recorder)
    upstream = await aiohttp_server(app)
    client = await make_proxy("routes: [{{prefix: /ws, upstream: 'ws://127.0.0.1:{port}'}}]", port=upstream.port)
    async with direct.ws_connect(proxy_url(client, "/ws/pings"), autoping=False) as ws:
        await ws.ping(b"from-client")
        pong = await ws.receive(WAIT)
        assert (pong.type, pong.data) == (WSMsgType.PONG, b"from-client")
    assert pings == [b"from-client"]


# --- 3. a refused handshake is answered as the upstream answered ----------------------------

UPGRADE = {"Upgrade": "websocket", "Connection": "Upgrade", "Sec-WebSocket-Version": "13",
           "Sec-WebSocket-Key": "dGhlIHNhbXBsZSBub25jZQ=="}


@pytest.mark.parametrize(("path", "status", "body"), [
    ("/refuse", 401, "no token, no socket\n"),
    ("/plain", 200, "a plain page\n"),
], ids=["401-with-body", "200-plain-page"])
async def test_a_refused_handshake_gets_the_upstreams_status_and_body(through, direct, ws_upstream, path, status, body):
    """An upstream that answers the upgrade with 401 (or a plain 200) is answered so, with CORS headers."""
    client = await through()
    seen = []
    for url in (ws_upstream.url.replace("ws:", "http:") + path, proxy_url(client, "/ws" + path)):
        async with direct.get(url, headers={**UPGRADE, "Origin": ALLOWED}) as r:
            seen.append((r.status, await r.text(), r.headers.get("WWW-Authenticate")))
            if url.startswith(proxy_url(client, "/")):
                assert r.headers["Access-Control-Allow-Origin"] == ALLOWED
    assert seen[0] == seen[1] and seen[0][:2] == (status, body)


# --- 4. the route timeout does not count an upload that keeps moving ------------------------

async def test_a_slow_upload_longer_than_the_timeout_is_not_cut(through, direct, httpbin):
    """A 600 KB upload taking ~2.5 s reaches httpbin through a route with timeout: 1, as direct."""
    client = await through()
    chunk, count = b"u" * 30_000, 20

    async def slowly():
        for _ in range(count):
            yield chunk
            await asyncio.sleep(0.125)   # pacing the upload (what is tested), not synchronisation

    answers = []
    for url in (f"{httpbin}/post", proxy_url(client, "/quick/post")):
        async with direct.post(url, data=slowly(), headers={"Content-Type": "text/plain"}) as r:
            answers.append((r.status, len((await r.json())["data"])))
    assert answers == [(200, len(chunk) * count)] * 2


async def test_the_timeout_still_bounds_the_wait_for_the_head(through):
    """After the body is sent, no response head within the route's timeout is still 504."""
    client = await through()
    r = await client.get("/quick/delay/3")
    assert r.status == 504
    assert (await r.json())["error"] == "upstream timeout"


# --- 5. big response heads -------------------------------------------------------------------

async def test_a_9_kib_response_header_passes_as_direct(through, direct, httpbin):
    """A 9,000-byte header line from httpbin reaches the client whole, as direct."""
    client = await through()
    big = "b" * 9000
    for url in (f"{httpbin}/response-headers?X-Big={big}", proxy_url(client, f"/api/response-headers?X-Big={big}")):
        async with direct.get(url) as r:
            assert (r.status, r.headers.get("X-Big")) == (200, big), url


async def test_130_cookies_pass_as_direct(through, direct, httpbin):
    """httpbin /cookies/set with 130 cookies (over aiohttp's default 128 headers): all pass, as direct."""
    client = await through()
    query = "&".join(f"c{n}=v{n}" for n in range(130))
    counts = []
    for url in (f"{httpbin}/cookies/set?{query}", proxy_url(client, f"/api/cookies/set?{query}")):
        async with direct.get(url, allow_redirects=False) as r:
            counts.append((r.status, len(r.headers.getall("Set-Cookie"))))
    assert counts == [(302, 130)] * 2


@pytest.mark.parametrize(("limits", "path", "key"), [
    ({"head_size": 4096}, "/api/response-headers?X-Big=" + "b" * 5000, "server.upstream_max_header_size"),
    ({"head_count": 50}, "/api/cookies/set?" + "&".join(f"c{n}=v" for n in range(60)), "server.upstream_max_headers"),
], ids=["header-size", "header-count"])
async def test_a_head_over_a_limit_is_502_naming_the_key(through, limits, path, key):
    """A response head over a configured limit is a 502 whose detail names the key to raise."""
    client = await through(**limits)
    r = await client.get(path, allow_redirects=False, headers={"Origin": ALLOWED})
    assert r.status == 502
    assert r.headers["Access-Control-Allow-Origin"] == ALLOWED
    payload = await r.json()
    assert payload["error"] == "upstream response head too large"
    assert f"raise {key}" in payload["detail"], payload


# --- 6. header bytes pass as bytes ----------------------------------------------------------

async def exchange(port: int, request: bytes) -> bytes:
    """Send raw bytes; everything the server sends until it closes (Connection: close)."""
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    try:
        writer.write(request)
        return await asyncio.wait_for(reader.read(), WAIT)
    finally:
        writer.close()


def body_json(answer: bytes):
    return json.loads(answer.partition(b"\r\n\r\n")[2])


def _request(path: str, *headers: bytes) -> bytes:
    return b"\r\n".join([f"GET {path} HTTP/1.1".encode(), b"Host: 127.0.0.1", b"Connection: close",
                         *headers, b"", b""])


async def test_non_utf8_response_header_bytes_pass_as_bytes(through, stdlib_upstream):
    """Content-Disposition: filename="caf\\xe9.txt" (Latin-1 byte) arrives byte for byte, as direct."""
    client = await through()
    port = int(stdlib_upstream.rsplit(":", 1)[1])
    direct_answer = await exchange(port, _request("/disposition"))
    proxied = await exchange(client.port, _request("/std/disposition"))
    wanted = b'Content-Disposition: attachment; filename="caf\xe9.txt"\r\n'
    assert wanted in direct_answer
    assert wanted in proxied, proxied[:500]


async def test_non_utf8_request_header_bytes_reach_the_upstream(through, stdlib_upstream):
    """X-Custom: caf\\xe9 (Latin-1) and X-Utf8: café (UTF-8) reach the upstream byte for byte."""
    client = await through()
    port = int(stdlib_upstream.rsplit(":", 1)[1])
    sent = (b"X-Custom: caf\xe9", "X-Utf8: café".encode())

    def got(answer: bytes) -> dict[str, str]:
        return dict(body_json(answer)["headers"])

    direct_headers = got(await exchange(port, _request("/base/h", *sent)))
    proxied_headers = got(await exchange(client.port, _request("/std/h", *sent)))
    for name, value in (("X-Custom", b"caf\xe9"), ("X-Utf8", "café".encode())):
        assert direct_headers[name] == value.hex()
        assert proxied_headers[name] == value.hex(), proxied_headers


@pytest.mark.parametrize("method", ["GET", "POST"])
async def test_the_upstream_gets_no_header_the_client_did_not_send(through, stdlib_upstream, method):
    """No User-Agent, Accept, Accept-Encoding or (for a body) Content-Type is added on the way up."""
    client = await through()
    body = b"x=1" if method == "POST" else b""
    request = _request("/std/h", *([b"Content-Length: 3"] if body else [])).replace(b"GET", method.encode(), 1)
    names = {name.lower() for name, _ in body_json(await exchange(client.port, request + body))["headers"]}
    assert not names & {"user-agent", "accept", "accept-encoding", "content-type"}, names


# --- 7. the path as the client sent it ------------------------------------------------------

RESERVED = "/group%2Fproject%2Frepo/a%3Bb%5Cc%2Cd%3De%26f%2Bg%40h%3Ai%2Aj"


async def test_percent_encoded_reserved_characters_reach_the_upstream_as_sent(through, stdlib_upstream):
    """%2F %3B %5C %2C %3D %26 %2B %40 %3A %2A reach the upstream as sent, as direct (base path kept)."""
    client = await through()
    port = int(stdlib_upstream.rsplit(":", 1)[1])
    direct_line = body_json(await exchange(port, _request("/base" + RESERVED)))
    proxied_line = body_json(await exchange(client.port, _request("/std" + RESERVED)))
    assert direct_line["request_line"] == f"GET /base{RESERVED} HTTP/1.1"
    assert proxied_line["request_line"] == direct_line["request_line"]


async def test_odd_query_strings_pass_byte_for_byte(through, stdlib_upstream):
    """A query with odd escapes, empty pairs and '+' reaches the upstream byte for byte, as direct."""
    client = await through()
    port = int(stdlib_upstream.rsplit(":", 1)[1])
    query = "?a=%2F&b=+&c=%zz&&d==&e&f=%E9&g=a%20b#"[:-1]
    lines = []
    for target_port, path in ((port, "/base/q" + query), (client.port, "/std/q" + query)):
        answer = await exchange(target_port, _request(path))
        lines.append(body_json(answer)["request_line"])
    assert lines[0] == lines[1] == f"GET /base/q{query} HTTP/1.1"


# --- 8, 9. cookies and redirects land inside the route --------------------------------------

async def test_a_cookie_path_is_mapped_into_the_route(through, direct, httpbin):
    """A cookie with Path=/cookies comes back on /api/cookies through the proxy, as on /cookies direct."""
    client = await through()
    cookie = "flavour=choc; Path=/cookies"
    seen = []
    for base in (httpbin, proxy_url(client, "/api")):
        async with aiohttp.ClientSession(cookie_jar=aiohttp.CookieJar(unsafe=True)) as session:
            async with session.get(f"{base}/response-headers", params={"Set-Cookie": cookie}) as r:
                assert r.status == 200
            async with session.get(f"{base}/cookies") as r:
                seen.append((await r.json())["cookies"])
    assert seen == [{"flavour": "choc"}] * 2


async def test_x_forwarded_prefix_is_sent(through):
    """The upstream learns the stripped prefix from X-Forwarded-Prefix."""
    client = await through()
    r = await client.get("/api/headers")
    assert (await r.json())["headers"]["X-Forwarded-Prefix"] == "/api"


async def test_an_absolute_redirect_built_from_host_keeps_the_prefix(through, direct, httpbin):
    """change_origin: false: httpbin's absolute redirect built from Host lands on the route, as direct."""
    client = await through()
    finals = []
    for url in (f"{httpbin}/absolute-redirect/2", proxy_url(client, "/host-kept/absolute-redirect/2")):
        async with direct.get(url) as r:
            finals.append((r.status, r.url.path, len(r.history)))
    assert finals == [(200, "/get", 2), (200, "/host-kept/get", 2)]


# --- also keep -----------------------------------------------------------------------------

@pytest.mark.parametrize("method", ["GET", "POST", "PUT", "PATCH", "DELETE"])
async def test_bodies_are_byte_identical_for_every_method(through, direct, httpbin, method):
    """httpbin's seeded random bytes arrive byte-identical through the proxy, for every method."""
    client = await through()
    bodies = []
    for base in (httpbin, proxy_url(client, "/api")):
        async with direct.request(method, f"{base}/anything", data=b"\x00\xff" * 5000) as r:
            bodies.append((await r.json())["data"])
        async with direct.get(f"{base}/stream-bytes/100000?seed=7&chunk_size=7000") as r:
            bodies.append(await r.read())
    assert bodies[0] == bodies[2] and bodies[1] == bodies[3] and len(bodies[1]) == 100000


@pytest.mark.parametrize(("path", "encoding", "decode"), [
    ("/gzip", "gzip", lambda body: zlib.decompress(body, 16 + zlib.MAX_WBITS)),
    ("/deflate", "deflate", zlib.decompress),
    ("/brotli", "br", None),
], ids=["gzip", "deflate", "br"])
async def test_compressed_bodies_pass_untouched(through, direct, httpbin, path, encoding, decode):
    """gzip, deflate and br bodies pass through still compressed, with their Content-Encoding
    and Content-Length, as direct (httpbin's JSON names the request headers, so the bytes differ)."""
    client = await through()
    for base in (httpbin, proxy_url(client, "/api")):
        async with direct.get(base + path, headers={"Accept-Encoding": "gzip, deflate, br"}) as r:
            body = await r.read()
            assert (r.headers["Content-Encoding"], int(r.headers["Content-Length"])) == (encoding, len(body))
            if decode is not None:
                assert json.loads(decode(body))["method"] == "GET"


async def test_chunked_and_expect_100_continue_uploads(through, direct, httpbin):
    """A chunked upload and an Expect: 100-continue upload reach httpbin whole, as direct."""
    client = await through()

    async def chunks():
        for n in range(10):
            yield f"part {n};".encode()

    results = []
    for base in (httpbin, proxy_url(client, "/api")):
        async with direct.post(f"{base}/post", data=chunks(), headers={"Content-Type": "text/plain"}) as r:
            results.append((await r.json())["data"])
        async with direct.post(f"{base}/post", data=b"x" * 100_000, expect100=True,
                               headers={"Content-Type": "text/plain"}) as r:
            results.append(len((await r.json())["data"]))
    assert results == ["".join(f"part {n};" for n in range(10)), 100_000] * 2


async def test_redirects_are_rewritten_with_the_prefix(through, direct, httpbin):
    """httpbin's relative and absolute redirects end on the same resource, inside the route."""
    client = await through()
    for path in ("/redirect/3", "/absolute-redirect/2", "/redirect-to?url=/get"):
        finals = []
        for base in (httpbin, proxy_url(client, "/api")):
            async with direct.get(base + path) as r:
                finals.append((r.status, r.url.path))
        assert finals == [(200, "/get"), (200, "/api/get")], path


async def test_ranges_304_and_head_are_as_direct(through, direct, httpbin):
    """A byte range, a conditional GET (304) and a HEAD answer as they do direct."""
    client = await through()
    seen = []
    for base in (httpbin, proxy_url(client, "/api")):
        async with direct.get(f"{base}/range/1000", headers={"Range": "bytes=10-19"}) as r:
            seen.append((r.status, r.headers["Content-Range"], await r.read()))
        async with direct.get(f"{base}/etag/abc", headers={"If-None-Match": '"abc"'}) as r:
            seen.append((r.status, await r.read()))
        async with direct.head(f"{base}/bytes/512") as r:
            seen.append((r.status, r.headers["Content-Length"], await r.read()))
    assert seen[:3] == seen[3:]
    assert [s[0] for s in seen[:3]] == [206, 304, 200]


async def test_http_1_0_client(through, httpbin):
    """An HTTP/1.0 client gets httpbin's whole answer through the proxy."""
    client = await through()
    answer = await exchange(client.port, b"GET /api/get?x=1 HTTP/1.0\r\nHost: 127.0.0.1\r\n\r\n")
    assert status_of(answer) == 200
    assert body_json(answer)["args"] == {"x": "1"}


async def test_sse_events_arrive_one_by_one(through, direct, sse_upstream):
    """sse-starlette's events reach the client as they are sent, not when the stream ends."""
    client = await through()
    async with direct.get(proxy_url(client, "/sse/events"), headers={"Accept": "text/event-stream"}) as r:
        assert r.headers["Content-Type"].startswith("text/event-stream")
        buffer = b""
        for n in range(3):
            if n:
                sse_upstream.go.put_nowait(n)
            while f"data: event {n}".encode() not in buffer:
                buffer += await asyncio.wait_for(r.content.readany(), WAIT)
            assert sse_upstream.sent == [f"event {i}" for i in range(n + 1)]


async def test_drip_arrives_incrementally(through, direct, httpbin):
    """httpbin /drip's bytes arrive through the proxy as they are dripped (4 reads, not 1)."""
    client = await through()
    async with direct.get(proxy_url(client, "/api/drip?duration=1.5&numbytes=4&delay=0&code=200")) as r:
        reads = []
        while chunk := await asyncio.wait_for(r.content.readany(), WAIT):
            reads.append(chunk)
    assert b"".join(reads) == b"****"
    assert len(reads) >= 3, reads


async def test_websocket_subprotocol_and_ordering(through, direct, ws_upstream):
    """The subprotocol chosen and the order of 300 messages are as direct."""
    client = await through()
    seen = []
    for base in (ws_upstream.url, proxy_url(client, "/ws")):
        async with direct.ws_connect(f"{base}/order/300", protocols=("chat", "chat.v2")) as ws:
            seen.append((ws.protocol, [(await ws.receive(WAIT)).data for _ in range(300)]))
    assert seen[0] == seen[1]
    assert seen[0][0] == "chat.v2" and seen[0][1] == [str(n) for n in range(300)]

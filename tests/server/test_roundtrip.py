"""The round trip to the upstream on the wire: pooled keep-alive connections, the retry of a
request whose pooled connection the upstream had dropped, framing both ways, 1xx, TLS trust."""

from __future__ import annotations

import asyncio
import inspect
import ssl
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field

import pytest
from aiohttp.client_proto import ResponseHandler
from aiohttp.http import StreamWriter
from multidict import CIMultiDict

from corsproxy.server import roundtrip
from tests.conftest import ALLOWED, raw_http, status_of
from tests.intercept_env import write_test_pki

OK = b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok"
SILENT = b"silent"   # read the request, answer nothing, keep the connection open
DROP = b""           # read the request, close the connection without a word

ROUTE = """
    cors: {{allow_origins: [http://localhost:3000]}}
    routes: [{{prefix: /api, upstream: "{scheme}://{host}:{port}", timeout: 1, verify_tls: {verify}}}]
"""


@dataclass
class Seen:
    connection: int
    head: bytes
    body: bytes

    @property
    def method(self) -> str:
        return self.head.split(b" ", 1)[0].decode()

    def header(self, name: bytes) -> bytes | None:
        for line in self.head.split(b"\r\n")[1:]:
            key, _, value = line.partition(b":")
            if key.strip().lower() == name:
                return value.strip()
        return None


@dataclass
class Scripted:
    """A loopback upstream that reads each request whole (Content-Length or chunked) and sends
    `answers[(connection, request)]`, or OK when there is none."""

    answers: dict[tuple[int, int], bytes]
    seen: list[Seen] = field(default_factory=list)
    connections: int = 0
    ended: asyncio.Event = field(default_factory=asyncio.Event)   # a connection was closed

    async def serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        number, self.connections = self.connections, self.connections + 1
        try:
            for index in range(50):
                head = await reader.readuntil(b"\r\n\r\n")
                seen = Seen(number, head, b"")
                seen.body = await read_body(reader, seen)
                self.seen.append(seen)
                answer = self.answers.get((number, index), OK if seen.method != "HEAD" else OK[:-2])
                if answer == DROP:
                    return
                if answer == SILENT:
                    await reader.read()   # until the proxy goes
                    return
                writer.write(answer)
                await writer.drain()
                if b"Connection: close" in answer:
                    return
        except (asyncio.IncompleteReadError, ConnectionError):
            return
        finally:
            writer.close()
            self.ended.set()


async def read_body(reader: asyncio.StreamReader, seen: Seen) -> bytes:
    if (length := seen.header(b"content-length")) is not None:
        return await reader.readexactly(int(length))
    if seen.header(b"transfer-encoding") != b"chunked":
        return b""
    body = b""
    for _ in range(1000):
        size = int((await reader.readuntil(b"\r\n")).strip(), 16)
        body += (await reader.readexactly(size + 2))[:size]
        if size == 0:
            return body
    raise AssertionError("too many chunks")


@pytest.fixture
async def scripted() -> Callable[..., Awaitable[tuple[Scripted, int]]]:
    servers: list[asyncio.Server] = []

    async def start(answers: dict[tuple[int, int], bytes] | None = None,
                    tls: ssl.SSLContext | None = None, host: str = "127.0.0.1") -> tuple[Scripted, int]:
        upstream = Scripted(answers or {})
        server = await asyncio.start_server(upstream.serve, host, 0, ssl=tls)
        servers.append(server)
        return upstream, server.sockets[0].getsockname()[1]

    yield start
    for server in servers:
        server.close()
        await server.wait_closed()


async def proxied(make_proxy, port: int, scheme: str = "http", verify: str = "true", host: str = "127.0.0.1"):
    return await make_proxy(ROUTE, scheme=scheme, port=port, verify=verify, host=host)


async def test_requests_in_turn_share_one_upstream_connection(make_proxy, scripted) -> None:
    """Keep-alive: three requests one after another go up on one pooled connection."""
    upstream, port = await scripted()
    client = await proxied(make_proxy, port)
    for _ in range(3):
        r = await client.get("/api/x", headers={"Origin": ALLOWED})
        assert r.status == 200 and await r.read() == b"ok"
    assert [seen.connection for seen in upstream.seen] == [0, 0, 0]


@pytest.mark.parametrize(("listen", "named"), [("127.0.0.1", "localhost"), ("::1", "[::1]")])
async def test_an_upstream_by_name_or_ipv6_address_is_dialled(make_proxy, scripted, listen, named) -> None:
    """A host name is resolved and dialled (Happy Eyeballs over its addresses); an IPv6 literal too."""
    upstream, port = await scripted(host=listen)
    client = await proxied(make_proxy, port, host=named)
    r = await client.get("/api/x", headers={"Origin": ALLOWED})
    assert r.status == 200 and await r.read() == b"ok"
    assert len(upstream.seen) == 1


@pytest.mark.parametrize("method", ["GET", "HEAD", "PUT", "DELETE"])
async def test_an_idempotent_request_on_a_dropped_pooled_connection_is_sent_once_more(
        make_proxy, scripted, method) -> None:
    """The upstream closes a kept-alive connection as the next request reaches it: a bodiless
    idempotent request goes again on a new connection (RFC 9112 §9.3.1), and is answered."""
    upstream, port = await scripted({(0, 1): DROP})
    client = await proxied(make_proxy, port)
    assert (await client.get("/api/first")).status == 200
    r = await client.request(method, "/api/again", headers={"Origin": ALLOWED})
    assert r.status == 200
    assert [(seen.connection, seen.method) for seen in upstream.seen] == [(0, "GET"), (0, method), (1, method)]


@pytest.mark.parametrize("method", ["POST", "PATCH"])
async def test_a_request_that_may_not_be_repeated_is_a_502_when_its_connection_drops(
        make_proxy, scripted, method) -> None:
    """POST and PATCH are never sent twice: the dropped connection is a 502 with CORS headers."""
    upstream, port = await scripted({(0, 1): DROP})
    client = await proxied(make_proxy, port)
    assert (await client.get("/api/first")).status == 200
    r = await client.request(method, "/api/once", headers={"Origin": ALLOWED})
    assert r.status == 502 and r.headers["Access-Control-Allow-Origin"] == ALLOWED
    assert [seen.method for seen in upstream.seen] == ["GET", method]


async def test_a_fresh_connection_that_drops_is_a_502_and_not_repeated(make_proxy, scripted) -> None:
    """Only a reused connection is retried: a new one closing unanswered is the upstream's failure."""
    upstream, port = await scripted({(0, 0): DROP})
    client = await proxied(make_proxy, port)
    r = await client.get("/api/x", headers={"Origin": ALLOWED})
    assert r.status == 502 and len(upstream.seen) == 1


async def test_an_upstream_connection_close_is_never_reused(make_proxy, scripted) -> None:
    """An answer with Connection: close ends its connection: the next request dials anew."""
    close = b"HTTP/1.1 200 OK\r\nContent-Length: 5\r\nConnection: close\r\n\r\nfirst"
    upstream, port = await scripted({(0, 0): close})
    client = await proxied(make_proxy, port)
    first = await client.get("/api/x")
    assert first.status == 200 and await first.read() == b"first"
    second = await client.get("/api/x")
    assert second.status == 200 and await second.read() == b"ok"
    assert [seen.connection for seen in upstream.seen] == [0, 1]


async def test_a_head_answer_and_bodiless_statuses_leave_the_connection_in_step(make_proxy, scripted) -> None:
    """HEAD (a Content-Length and no body), 204 and 304 carry no body: the next answer on the same
    connection is read from its own first byte."""
    upstream, port = await scripted({
        (0, 0): b"HTTP/1.1 200 OK\r\nContent-Length: 1000\r\n\r\n",
        (0, 1): b"HTTP/1.1 204 No Content\r\n\r\n",
        (0, 2): b"HTTP/1.1 304 Not Modified\r\nETag: \"x\"\r\n\r\n",
    })
    client = await proxied(make_proxy, port)
    head = await client.head("/api/x")
    assert head.status == 200 and head.headers["Content-Length"] == "1000"
    assert (await client.get("/api/x")).status == 204
    assert (await client.get("/api/x")).status == 304
    last = await client.get("/api/x")
    assert last.status == 200 and await last.read() == b"ok"
    assert [seen.connection for seen in upstream.seen] == [0, 0, 0, 0]


async def test_informational_answers_before_the_final_one_are_passed_over(make_proxy, scripted) -> None:
    """A 103 Early Hints and an unasked 100 Continue before the answer: the client gets the answer."""
    early = (b"HTTP/1.1 103 Early Hints\r\nLink: </a.css>; rel=preload\r\n\r\n"
             b"HTTP/1.1 100 Continue\r\n\r\n" + OK)
    upstream, port = await scripted({(0, 0): early})
    client = await proxied(make_proxy, port)
    r = await client.get("/api/x", headers={"Origin": ALLOWED})
    assert r.status == 200 and await r.read() == b"ok"
    assert (await client.get("/api/x")).status == 200
    assert [seen.connection for seen in upstream.seen] == [0, 0]


HEAD_OF = b"%s /api/x HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n"


@pytest.mark.parametrize(("request_bytes", "length", "chunked", "body"), [
    pytest.param(HEAD_OF % b"GET" + b"\r\n", None, None, b"", id="get"),
    pytest.param(HEAD_OF % b"POST" + b"\r\n", b"0", None, b"", id="post-without-body"),
    pytest.param(HEAD_OF % b"POST" + b"Content-Length: 5\r\n\r\nhello", b"5", None, b"hello", id="content-length"),
    pytest.param(HEAD_OF % b"POST" + b"Transfer-Encoding: chunked\r\n\r\n3\r\nhel\r\n2\r\nlo\r\n0\r\n\r\n",
                 None, b"chunked", b"hello", id="chunked"),
])
async def test_a_request_body_goes_up_framed_as_it_came(make_proxy, scripted, request_bytes, length,
                                                      chunked, body) -> None:
    """Content-Length stays Content-Length, chunked goes up chunked, a bodiless POST says 0."""
    upstream, port = await scripted()
    client = await proxied(make_proxy, port)
    assert status_of(await raw_http(client.port, request_bytes)) == 200
    [seen] = upstream.seen
    assert (seen.header(b"content-length"), seen.header(b"transfer-encoding"), seen.body) == (length, chunked, body)


async def test_a_pooled_connection_that_never_answers_is_a_504(make_proxy, scripted) -> None:
    """The route's timeout also bounds a reused connection's wait for the response head."""
    upstream, port = await scripted({(0, 1): SILENT})
    client = await proxied(make_proxy, port)
    assert (await client.get("/api/x")).status == 200
    r = await client.get("/api/x", headers={"Origin": ALLOWED})
    assert r.status == 504 and r.headers["Access-Control-Allow-Origin"] == ALLOWED
    assert (await client.get("/api/x")).status == 200   # on a new connection
    assert [seen.connection for seen in upstream.seen] == [0, 0, 1]


@pytest.mark.parametrize(("verify", "status"), [("true", 502), ("false", 200)])
async def test_an_upstream_certificate_nobody_vouches_for_is_refused_unless_verify_tls_is_off(
        make_proxy, scripted, tmp_path, verify, status) -> None:
    """A TLS upstream whose certificate the system store does not trust (nor names 127.0.0.1):
    502 with verify_tls on, answered with it off."""
    _, cert_file, key_file = write_test_pki(tmp_path)
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    context.load_cert_chain(cert_file, key_file)
    upstream, port = await scripted(tls=context)
    client = await proxied(make_proxy, port, scheme="https", verify=verify)
    r = await client.get("/api/x", headers={"Origin": ALLOWED})
    assert r.status == status and r.headers["Access-Control-Allow-Origin"] == ALLOWED
    if status == 200:
        assert await r.read() == b"ok"
        assert (await client.get("/api/x")).status == 200
        assert [seen.connection for seen in upstream.seen] == [0, 0]


async def test_a_connection_left_idle_is_closed_by_the_pool_after_its_idle_time(scripted) -> None:
    """With no later request to notice it, an idle upstream connection is closed all the same
    (an upstream that keeps idle connections open forever would hold the proxy's fds)."""
    upstream, port = await scripted()
    pool, loop = roundtrip.Pool(idle_seconds=0.2), asyncio.get_running_loop()
    dial = roundtrip.Dial("127.0.0.1", port)
    answer = await roundtrip.exchange(pool, dial, "GET", "/x", CIMultiDict(Host="upstream"), None,
                                      roundtrip.Deadline(loop, 5), roundtrip.Limits(8190, 8190, 128, 1 << 16))
    assert await answer.content.read() == b"ok"
    answer.release()
    try:
        # The scripted upstream ends its connection's task when the pool closes its side.
        await asyncio.wait_for(upstream.ended.wait(), 5)
    finally:
        pool.close()
    assert [seen.connection for seen in upstream.seen] == [0]


def test_aiohttp_client_protocol_has_the_shape_roundtrip_uses() -> None:
    """roundtrip drives aiohttp's ResponseHandler and StreamWriter directly (not public API):
    an aiohttp release that changes what it calls fails here first."""
    params = set(inspect.signature(ResponseHandler.set_response_params).parameters)
    assert {"skip_payload", "read_until_eof", "auto_decompress", "read_bufsize", "max_line_size",
            "max_field_size", "max_headers"} <= params
    assert list(inspect.signature(ResponseHandler.__init__).parameters) == ["self", "loop"]
    for name in ("read", "is_connected", "close", "set_exception", "connection_lost"):
        assert callable(getattr(ResponseHandler, name)), name
    assert isinstance(ResponseHandler.should_close, property)
    assert list(inspect.signature(StreamWriter.__init__).parameters)[:3] == ["self", "protocol", "loop"]
    for name in ("write_headers", "write", "write_eof", "set_eof", "enable_chunking"):
        assert callable(getattr(StreamWriter, name)), name

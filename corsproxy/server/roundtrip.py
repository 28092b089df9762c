"""HTTP/1.1 round trips to the upstreams over pooled keep-alive connections.

`ClientSession.request` cost about 280k instructions of a small GET's 812k (issue #15): URL
objects, header merging, the cookie jar, timer contexts, ClientRequest's chain of updates and
the connector's bookkeeping, none of which a proxy needs. The exchange itself stays aiohttp's:
`ResponseHandler` (its client protocol: the C response parser, head-size limits, payload flow
control, 1xx, `Connection: close`, a truncated body as ClientPayloadError) and `StreamWriter`
(the request head, Content-Length or chunked framing, drain). This module adds what the
session added that a proxy needs: a pool per (address, TLS context, server name), one retry of
a bodiless idempotent request whose reused connection the upstream had already closed (RFC 9112
§9.3.1), and one deadline for connecting and for the response head.
"""

from __future__ import annotations

import asyncio
import socket
import ssl
from collections import deque
from collections.abc import AsyncIterator
from typing import NamedTuple

import aiohappyeyeballs
from aiohttp import ClientConnectionError, ClientOSError, ServerDisconnectedError
from aiohttp.client_proto import ResponseHandler
from aiohttp.http import StreamWriter
from multidict import CIMultiDict, CIMultiDictProxy

from corsproxy.server import coalesce

# An idle connection is closed this long after its last use (aiohttp's keepalive_timeout).
IDLE_SECONDS = 15.0
# How long one address may take to connect before the next is tried too (aiohttp's default).
HAPPY_EYEBALLS_DELAY = 0.25
# Methods whose request may be sent again on a fresh connection (RFC 9110 §9.2.2).
IDEMPOTENT = frozenset({"GET", "HEAD", "OPTIONS", "TRACE", "PUT", "DELETE"})
# Methods that go up without Content-Length when they carry no body (others say 0, as aiohttp did).
BODYLESS = frozenset({"GET", "HEAD", "OPTIONS", "TRACE"})


class Dial(NamedTuple):
    """Where a connection goes: the pool's key (a tuple: hashed and compared in C)."""

    host: str
    port: int
    tls: ssl.SSLContext | None = None     # None: plain TCP
    server_hostname: str | None = None    # SNI and the certificate's name, when not `host`


class Limits(NamedTuple):
    """How much of a response head the parser accepts, and how much body it buffers."""

    max_line_size: int
    max_field_size: int
    max_headers: int
    read_bufsize: int


class _Connection(ResponseHandler):
    """aiohttp's client protocol, which leaves the pool when the upstream closes it."""

    def __init__(self, loop: asyncio.AbstractEventLoop, turn: coalesce.Turn) -> None:
        super().__init__(loop)
        self._turn = turn
        self.idle_since = 0.0
        self.idle_in: deque[_Connection] | None = None
        # What its response parser was made for: llhttp reads message after message, so a
        # new one is needed only when these change (a HEAD answer has no body; a reload's limits).
        self.parsing: tuple[bool, Limits] | None = None

    def connection_made(self, transport) -> None:
        # Requests sent in one turn of the loop leave together at its end (server/coalesce.py).
        super().connection_made(coalesce.HeldWrites(transport, self._turn))

    def connection_lost(self, exc: BaseException | None) -> None:
        super().connection_lost(exc)
        if self.idle_in is not None:
            self.idle_in.remove(self)
            self.idle_in = None


class Pool:
    """Idle keep-alive connections per Dial, most recently used first."""

    def __init__(self, idle_seconds: float = IDLE_SECONDS) -> None:
        self._idle: dict[Dial, deque[_Connection]] = {}
        self._contexts: dict[bool, ssl.SSLContext] = {}
        self._closed = False
        self._idle_seconds = idle_seconds
        self._sweep: asyncio.TimerHandle | None = None
        self._turn: coalesce.Turn | None = None   # made on the first connection, in its loop

    def tls(self, verify: bool) -> ssl.SSLContext:
        """The system store's context (verify) or one that checks nothing, made on first use."""
        context = self._contexts.get(verify)
        if context is None:
            context = ssl.create_default_context()
            if not verify:
                context.check_hostname, context.verify_mode = False, ssl.CERT_NONE
            context.set_alpn_protocols(("http/1.1",))
            self._contexts[verify] = context
        return context

    async def take(self, dial: Dial, deadline: Deadline, reuse: bool = True) -> tuple[_Connection, bool]:
        """A connection to `dial` and whether it was reused; a new one within the deadline."""
        idle = self._idle.get(dial) if reuse else None
        while idle:
            connection = idle.pop()
            connection.idle_in = None
            if connection.is_connected():
                return connection, True
        loop = asyncio.get_running_loop()
        turn = self._turn = self._turn or coalesce.Turn(loop)
        async with asyncio.timeout_at(deadline.when):
            # Happy Eyeballs (RFC 8305), as aiohttp's connector dials: a name with an IPv6
            # address that does not answer still connects over IPv4 (uvloop's own
            # create_connection tries one address after the other).
            addresses = await loop.getaddrinfo(dial.host, dial.port, type=socket.SOCK_STREAM)
            sock = await aiohappyeyeballs.start_connection(addresses, happy_eyeballs_delay=HAPPY_EYEBALLS_DELAY)
            _, connection = await loop.create_connection(
                lambda: _Connection(loop, turn), sock=sock, ssl=dial.tls,
                server_hostname=(dial.server_hostname or dial.host) if dial.tls else None)
        return connection, False

    def give_back(self, dial: Dial, connection: _Connection) -> None:
        if self._closed or connection.should_close or not connection.is_connected():
            connection.close()
            return
        idle = self._idle.get(dial)
        if idle is None:
            idle = self._idle[dial] = deque()
        now = connection._loop.time()
        connection.idle_since, connection.idle_in = now, idle
        idle.append(connection)
        if self._sweep is None:
            self._sweep = connection._loop.call_at(now + self._idle_seconds, self._close_idle)

    def _close_idle(self) -> None:
        """Close every connection idle for `idle_seconds`, then wait for the next to be: an
        upstream that never closes an idle connection must not hold the proxy's descriptors
        after a burst (aiohttp's connector swept its pool the same way)."""
        self._sweep = None
        loop = asyncio.get_running_loop()
        expired, oldest = loop.time() - self._idle_seconds, None
        for idle in self._idle.values():
            while idle and idle[0].idle_since <= expired:   # the oldest sit at the left
                connection = idle.popleft()
                connection.idle_in = None
                connection.close()
            if idle and (oldest is None or idle[0].idle_since < oldest):
                oldest = idle[0].idle_since
        if oldest is not None:
            self._sweep = loop.call_at(oldest + self._idle_seconds, self._close_idle)

    def close(self) -> None:
        """Close every idle connection; one still in use closes when it is given back."""
        self._closed = True
        if self._sweep is not None:
            self._sweep.cancel()
            self._sweep = None
        for idle in list(self._idle.values()):
            for connection in list(idle):
                connection.close()
        self._idle.clear()


class Deadline:
    """One point in time for connecting and for the response head, moved on by a moving upload.

    The connection's read fails with TimeoutError when it passes: a timer handle, not a
    task-cancelling timeout context (issue #15: that was ~25k instructions per request)."""

    __slots__ = ("when", "_seconds", "_loop", "_handle", "_connection")

    def __init__(self, loop: asyncio.AbstractEventLoop, seconds: float) -> None:
        self._loop, self._seconds = loop, seconds
        self.when = loop.time() + seconds
        self._handle: asyncio.TimerHandle | None = None
        self._connection: _Connection | None = None

    def watch(self, connection: _Connection) -> None:
        self._connection = connection
        self._handle = self._loop.call_at(self.when, self._expire)

    def postpone(self) -> None:
        """A body chunk went up: the deadline is `seconds` from now (while it is watched)."""
        if self._handle is not None:
            self._handle.cancel()
            self.when = self._loop.time() + self._seconds
            self._handle = self._loop.call_at(self.when, self._expire)

    def done(self) -> None:
        if self._handle is not None:
            self._handle.cancel()
        self._handle = self._connection = None

    def _expire(self) -> None:
        connection, self._handle, self._connection = self._connection, None, None
        if connection is not None:
            connection.set_exception(TimeoutError(f"no response head within {self._seconds:g}s"))
            connection.close()


class Answer:
    """The upstream's response: its head, and its body as aiohttp's StreamReader.

    `release` hands the connection back once the body is read and the request fully sent;
    `close` cuts it (a half-read body, a request still uploading)."""

    __slots__ = ("status", "reason", "headers", "content", "_pool", "_dial", "_connection", "_sender")

    def __init__(self, message, content, pool: Pool, dial: Dial, connection: _Connection,
                 sender: asyncio.Task | None) -> None:
        self.status, self.reason = message.code, message.reason
        self.headers: CIMultiDictProxy[str] = message.headers
        self.content = content
        self._pool, self._dial, self._connection, self._sender = pool, dial, connection, sender

    def release(self) -> None:
        connection, self._connection = self._connection, None
        if connection is None:
            return
        if self._sender is not None and not self._sender.done():
            # The upstream answered before it had the whole request: the connection is mid-message.
            self._sender.cancel()
            connection.close()
        else:
            self._pool.give_back(self._dial, connection)
        self._sender = None

    def close(self) -> None:
        connection, self._connection = self._connection, None
        if self._sender is not None:
            self._sender.cancel()
            self._sender = None
        if connection is not None:
            connection.close()


async def exchange(pool: Pool, dial: Dial, method: str, target: str, headers: CIMultiDict[str],
                   body: AsyncIterator[bytes] | None, deadline: Deadline, limits: Limits) -> Answer:
    """Send one request and wait for the final response head (1xx skipped)."""
    if body is None and method not in BODYLESS and "Content-Length" not in headers:
        headers["Content-Length"] = "0"
    chunked = body is not None and "Content-Length" not in headers
    if chunked:
        headers["Transfer-Encoding"] = "chunked"
    head = f"{method} {target} HTTP/1.1"
    connection, reused = await pool.take(dial, deadline)
    try:
        return await _exchange_on(connection, pool, dial, method, head, headers, body, chunked, deadline, limits)
    except (ServerDisconnectedError, ClientOSError):
        # Closed by the upstream while it sat in the pool: the request never got there.
        if not (reused and body is None and method in IDEMPOTENT):
            raise
    connection, _ = await pool.take(dial, deadline, reuse=False)
    return await _exchange_on(connection, pool, dial, method, head, headers, body, chunked, deadline, limits)


async def _exchange_on(connection: _Connection, pool: Pool, dial: Dial, method: str, head: str,
                       headers: CIMultiDict[str], body: AsyncIterator[bytes] | None, chunked: bool,
                       deadline: Deadline, limits: Limits) -> Answer:
    loop = connection._loop
    parsing = (method == "HEAD", limits)
    if connection.parsing != parsing:
        connection.set_response_params(
            skip_payload=parsing[0], read_until_eof=True, auto_decompress=False,
            read_bufsize=limits.read_bufsize, max_line_size=limits.max_line_size,
            max_field_size=limits.max_field_size, max_headers=limits.max_headers)
        connection.parsing = parsing
    writer = StreamWriter(connection, loop)
    if chunked:
        writer.enable_chunking()
    sender = None
    try:
        await writer.write_headers(head, headers)
        deadline.watch(connection)
        if body is None:
            writer.set_eof()
        else:
            sender = loop.create_task(_send(writer, body, connection))
        while True:
            message, content = await connection.read()
            if not 100 <= message.code < 200 or message.code == 101:
                break
    except BaseException:
        if sender is not None:
            sender.cancel()
        connection.close()
        raise
    finally:
        deadline.done()
    return Answer(message, content, pool, dial, connection, sender)


async def _send(writer: StreamWriter, body: AsyncIterator[bytes], connection: _Connection) -> None:
    """Stream the request body up (StreamWriter drains when the upstream reads slowly)."""
    try:
        while True:
            try:
                # No local names the chunk: see the cancellation below.
                await writer.write(await body.__anext__())
            except StopAsyncIteration:
                break
        await writer.write_eof()
    except asyncio.CancelledError as stop:
        # A cancelled task and its exception are a reference cycle (the task keeps the
        # exception, whose traceback reaches the task's step); without the traceback of the
        # frames below, the cycle holds no body chunk until the collector runs.
        raise stop.with_traceback(None)
    except Exception as exc:
        # The client's body broke off, or the upstream went away: the exchange fails as a 502.
        connection.set_exception(ClientConnectionError(f"the request body could not be sent: {exc!r}"))
        connection.close()

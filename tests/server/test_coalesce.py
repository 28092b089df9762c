"""Writes held to the end of the loop's turn (server/coalesce.py), over real loopback sockets:
nothing reaches the peer before the turn ends, then everything, in order; what must follow the
held bytes (a large write, close) sends them first; abort drops them."""

from __future__ import annotations

import asyncio
import contextlib
import socket
import time

import pytest

from corsproxy.server.coalesce import HELD_LIMIT, HeldWrites, Turn

READ_SECONDS = 10


@contextlib.asynccontextmanager
async def connection():
    """A client transport of the running loop, wrapped, and the accepted peer socket."""
    with socket.create_server(("127.0.0.1", 0)) as listener:
        transport, _ = await asyncio.get_running_loop().create_connection(
            asyncio.Protocol, *listener.getsockname())
        peer, _ = listener.accept()
    with peer:
        peer.settimeout(READ_SECONDS)
        yield HeldWrites(transport, Turn(asyncio.get_running_loop())), peer
        transport.abort()


@contextlib.asynccontextmanager
async def two_on_one_turn():
    """Two connections whose writes one Turn sends: (writes, peer) for each."""
    async with connection() as (first, first_peer), connection() as (second, second_peer):
        turn = Turn(asyncio.get_running_loop())
        yield (HeldWrites(first.transport, turn), first_peer), (HeldWrites(second.transport, turn), second_peer)


def nothing_arrived(peer: socket.socket) -> bool:
    peer.setblocking(False)
    try:
        peer.recv(1)
    except BlockingIOError:
        return True
    finally:
        peer.settimeout(READ_SECONDS)
    return False


async def read_to_end(peer: socket.socket, size: int | None = None) -> bytes:
    """What the peer receives, up to `size` bytes or the end of the stream, read in a thread
    while the loop runs on (a transport's close completes in a later turn)."""
    return await asyncio.to_thread(_read, peer, size)


def _read(peer: socket.socket, size: int | None) -> bytes:
    got, until = b"", time.monotonic() + READ_SECONDS
    while (size is None or len(got) < size) and time.monotonic() < until:
        try:
            chunk = peer.recv(1 << 16)
        except ConnectionResetError:
            break
        if not chunk:
            break
        got += chunk
    return got


async def test_writes_of_a_turn_reach_the_peer_at_its_end_in_order() -> None:
    async with connection() as (writes, peer):
        reused = bytearray(b"three")
        writes.write(b"one")
        writes.writelines([b"two", reused])
        reused[:] = b"XXXXX"   # a caller may reuse its buffer once write returns
        assert nothing_arrived(peer) and writes.get_write_buffer_size() == 11
        await asyncio.sleep(0)   # the rest of this turn
        assert await read_to_end(peer, 11) == b"onetwothree"


async def test_one_turn_sends_every_connection_s_writes() -> None:
    async with two_on_one_turn() as ((first, first_peer), (second, second_peer)):
        first.write(b"a")
        second.write(b"b")
        first.write(b"c")
        await asyncio.sleep(0)
        assert await read_to_end(first_peer, 2) == b"ac" and await read_to_end(second_peer, 1) == b"b"


async def test_a_large_write_sends_what_is_held_first() -> None:
    async with connection() as (writes, peer):
        writes.write(b"head")
        writes.write(b"x" * HELD_LIMIT)
        assert await read_to_end(peer, 4 + HELD_LIMIT) == b"head" + b"x" * HELD_LIMIT


async def test_close_sends_what_is_held_and_abort_drops_it() -> None:
    async with connection() as (writes, peer):
        writes.write(b"last words")
        writes.close()
        assert await read_to_end(peer) == b"last words"
    async with connection() as (writes, peer):
        writes.write(b"lost")
        writes.abort()
        assert await read_to_end(peer) == b""


@pytest.mark.parametrize("end", ["write_eof", "close"])
async def test_what_ends_the_stream_comes_after_the_held_bytes(end: str) -> None:
    async with connection() as (writes, peer):
        writes.writelines([b"body", b" end"])
        getattr(writes, end)()
        assert await read_to_end(peer) == b"body end"


async def test_a_connection_closed_before_the_turn_ends_loses_only_its_own_bytes() -> None:
    async with two_on_one_turn() as ((gone, _), (kept, kept_peer)):
        gone.write(b"never")
        kept.write(b"sent")
        gone.transport.abort()
        await asyncio.sleep(0)   # no error from the closed one; the other's bytes go
        assert await read_to_end(kept_peer, 4) == b"sent"

"""Small writes held to the end of the event loop's turn and sent together (issue #15).

uvloop sends every transport.write at once. On a busy proxy one turn of the loop reads a
request from each connection that has one and answers them one after the other, so the
answers leave spread over the whole turn and each send(2) finds its peer (the browser, the
upstream) asleep again and wakes it: on the bench's machine that wake-up cost more than
anything the proxy does for a preflight. Held to the end of the turn, the answers leave in a
burst while the peer is still awake: preflights went from ~27k to ~37k per CPU-second.

`HeldWrites` is a connection's transport as its protocol sees it: a small write is kept, in
order, and the loop's `Turn` sends each connection's in one writelines once the turn's
callbacks have run. Whatever must reach the wire after them (a write that would take the held
bytes past `HELD_LIMIT`, write_eof, close) sends them first; abort drops them, as it drops the
transport's own buffer. The rest is the transport's own (what aiohttp calls on every request
is delegated by name; anything else through __getattr__).
"""

from __future__ import annotations

import asyncio
from typing import Any

# Beyond this a connection's writes go straight on: a stream's chunks, a large body.
HELD_LIMIT = 64 * 1024


class Turn:
    """The connections of one loop with writes held in this turn."""

    __slots__ = ("_loop", "_held")

    def __init__(self, loop: asyncio.AbstractEventLoop) -> None:
        self._loop = loop
        self._held: list[HeldWrites] = []

    def hold(self, writes: HeldWrites) -> None:
        if not self._held:
            self._loop.call_soon(self.send)
        self._held.append(writes)

    def send(self) -> None:
        held, self._held = self._held, []
        for writes in held:
            writes.send()


class HeldWrites:
    """A transport whose small writes wait for the end of the turn (see the module's doc)."""

    __slots__ = ("transport", "_turn", "_chunks", "_size")

    def __init__(self, transport: asyncio.Transport, turn: Turn) -> None:
        self.transport, self._turn = transport, turn
        self._chunks: list[bytes] = []
        self._size = 0

    def write(self, data: bytes | bytearray | memoryview) -> None:
        size = self._size + len(data)
        if size > HELD_LIMIT:
            self.send()
            self.transport.write(data)
        elif data:
            if not self._chunks:
                self._turn.hold(self)
            # The caller may reuse a buffer it handed over; bytes cannot change.
            self._chunks.append(data if type(data) is bytes else bytes(data))
            self._size = size

    def writelines(self, chunks) -> None:
        chunks = list(chunks)
        if self._size + sum(map(len, chunks)) > HELD_LIMIT:
            self.send()
            self.transport.writelines(chunks)
        else:
            for data in chunks:
                self.write(data)   # all of them held: they fit

    def send(self) -> None:
        """Write what is held (a transport that is closing already has lost its peer)."""
        if self._chunks:
            chunks, self._chunks, self._size = self._chunks, [], 0
            if not self.transport.is_closing():
                if len(chunks) == 1:   # nearly always: one answer a turn
                    self.transport.write(chunks[0])
                else:
                    self.transport.writelines(chunks)

    def write_eof(self) -> None:
        self.send()
        self.transport.write_eof()

    def close(self) -> None:
        self.send()
        self.transport.close()

    def abort(self) -> None:
        self._chunks, self._size = [], 0
        self.transport.abort()

    def is_closing(self) -> bool:
        return self.transport.is_closing()

    def get_extra_info(self, name: str, default: Any = None) -> Any:
        return self.transport.get_extra_info(name, default)

    def get_write_buffer_size(self) -> int:
        return self._size + self.transport.get_write_buffer_size()

    def pause_reading(self) -> None:
        self.transport.pause_reading()

    def resume_reading(self) -> None:
        self.transport.resume_reading()

    def __getattr__(self, name: str) -> Any:
        return getattr(self.transport, name)

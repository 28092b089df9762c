"""Processes the tests start: their output read as it arrives, stopped by pid, bounded in time."""

from __future__ import annotations

import asyncio
import signal

STOP_TIMEOUT = 15.0
READ_CHUNK = 1 << 16


class Output:
    """Everything a child writes to one pipe, read as it arrives.

    A pipe nobody reads fills up and stalls the child on its next log line; on Python 3.11 it
    also keeps `Process.wait()` from returning even after a kill, since the paused pipe never
    sees its EOF. So every pipe a test opens is drained here, and tests wait on the text.
    """

    def __init__(self, stream: asyncio.StreamReader) -> None:
        self.data = bytearray()
        self.closed = False
        self._consumed = 0
        self._grew = asyncio.Event()
        self._reading = asyncio.create_task(self._read(stream))

    async def _read(self, stream: asyncio.StreamReader) -> None:
        while chunk := await stream.read(READ_CHUNK):
            self.data += chunk
            self._grew.set()
        self.closed = True
        self._grew.set()

    async def until(self, needle: bytes, timeout: float = 10.0) -> bytes:
        """Wait until `needle` is written after what earlier calls consumed; return the text up
        to and including it. Fails with what was written if it never comes."""
        try:
            async with asyncio.timeout(timeout):
                while (found := self.data.find(needle, self._consumed)) < 0:
                    if self.closed:
                        break
                    self._grew.clear()
                    await self._grew.wait()
        except TimeoutError:
            found = -1
        if found < 0:
            state = "the pipe closed" if self.closed else f"{timeout:g} s passed"
            raise AssertionError(f"{needle!r} never written ({state}); the output was:\n{self.text()}")
        start, self._consumed = self._consumed, found + len(needle)
        return bytes(self.data[start:self._consumed])

    async def finished(self, timeout: float = STOP_TIMEOUT) -> bytes:
        """Everything written, once the child has closed the pipe."""
        await asyncio.wait_for(asyncio.shield(self._reading), timeout)
        return bytes(self.data)

    def text(self) -> str:
        return self.data.decode(errors="replace")


async def stop_process(process: asyncio.subprocess.Process, what: str, sig: int = signal.SIGTERM,
                       timeout: float = STOP_TIMEOUT) -> int:
    """Send `sig` and return the exit code; a process that does not exit in time is killed and
    the test fails."""
    if process.returncode is None:
        process.send_signal(sig)
    try:
        return await asyncio.wait_for(process.wait(), timeout)
    except TimeoutError:
        process.kill()
        await asyncio.wait_for(process.wait(), timeout)
        raise AssertionError(f"{what} (pid {process.pid}) did not stop on {signal.Signals(sig).name}") from None

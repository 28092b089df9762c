"""Stopping a process the tests started: by its pid, bounded in time, never left behind."""

from __future__ import annotations

import asyncio
import signal

STOP_TIMEOUT = 15.0


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
        await process.wait()
        raise AssertionError(f"{what} (pid {process.pid}) did not stop on {signal.Signals(sig).name}") from None

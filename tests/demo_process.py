"""`corsproxy demo` as a user runs it: a real process, its ready line, stopped by its pid."""

from __future__ import annotations

import asyncio
import os
import re
import signal
import sys
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
READY = re.compile(r"^corsproxy demo ready: page (?P<page>http://\S+)  api (?P<api>http://\S+)  proxy (?P<proxy>http://\S+)$")
START_TIMEOUT = 30.0
STOP_TIMEOUT = 15.0


@dataclass
class Demo:
    process: asyncio.subprocess.Process
    page: str = ""
    api: str = ""
    proxy: str = ""

    async def stop(self, sig: int = signal.SIGTERM) -> int:
        """Signal the demo and wait for it to exit; killed (and the test failed) if it hangs."""
        if self.process.returncode is None:
            self.process.send_signal(sig)
        try:
            return await asyncio.wait_for(self.process.wait(), STOP_TIMEOUT)
        except TimeoutError:
            self.process.kill()
            await self.process.wait()
            raise AssertionError(f"corsproxy demo (pid {self.process.pid}) did not stop on {sig!r}") from None


async def start_demo(*args: str, log: Path) -> Demo:
    """Start `python -m corsproxy demo ARGS` (stderr to `log`) and parse its ready line."""
    with log.open("wb") as stderr:
        process = await asyncio.create_subprocess_exec(
            sys.executable, "-m", "corsproxy", "demo", *args, cwd=ROOT, env=dict(os.environ),
            stdout=asyncio.subprocess.PIPE, stderr=stderr)
    demo = Demo(process)
    try:
        line = (await asyncio.wait_for(process.stdout.readline(), START_TIMEOUT)).decode().rstrip("\n")
    except BaseException:
        await demo.stop(signal.SIGKILL)
        raise
    match = READY.match(line)
    if match is None:
        await demo.stop(signal.SIGKILL)
        raise AssertionError(f"no ready line from corsproxy demo: {line!r}\n{log.read_text()}")
    demo.page, demo.api, demo.proxy = match["page"], match["api"], match["proxy"]
    return demo

"""`corsproxy demo` as a user runs it: a real process, its ready line, stopped by its pid."""

from __future__ import annotations

import asyncio
import os
import re
import signal
import sys
from dataclasses import dataclass
from pathlib import Path

from tests.processes import stop_process

ROOT = Path(__file__).resolve().parent.parent
READY = re.compile(r"^corsproxy demo ready: page (?P<page>http://\S+)  api (?P<api>http://\S+)  proxy (?P<proxy>http://\S+)$")
START_TIMEOUT = 30.0


@dataclass
class Demo:
    process: asyncio.subprocess.Process
    page: str = ""
    api: str = ""
    proxy: str = ""

    async def stop(self, sig: int = signal.SIGTERM) -> int:
        """Signal the demo and wait for it to exit; killed (and the test failed) if it hangs."""
        return await stop_process(self.process, "corsproxy demo", sig)


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

"""Streams a large download and a large upload through a real corsproxy process and prints
throughput and the proxy's peak RSS (VmHWM): bodies must stream, never be read whole.

    python bench/stream.py            # 1 GiB each way (issue #2's acceptance: peak RSS < 100 MiB)
    python bench/stream.py --mib 64   # a quick smoke

Everything runs on 127.0.0.1; the proxy is started with the real CLI and stopped by its pid.
"""

from __future__ import annotations

import argparse
import asyncio
import signal
import sys
import time

import aiohttp
from aiohttp import web

CHUNK = b"\0" * (256 * 1024)


def peak_rss_mib(pid: int) -> float:
    with open(f"/proc/{pid}/status") as status:
        for line in status:
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024
    raise RuntimeError("no VmHWM in /proc status")


def rss_mib(pid: int) -> float:
    with open(f"/proc/{pid}/status") as status:
        for line in status:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    raise RuntimeError("no VmRSS in /proc status")


def upstream_app(size: int) -> web.Application:
    async def download(request: web.Request) -> web.StreamResponse:
        response = web.StreamResponse(headers={"Content-Type": "application/octet-stream"})
        response.content_length = size
        await response.prepare(request)
        for _ in range(size // len(CHUNK)):
            await response.write(CHUNK)
        return response

    async def upload(request: web.Request) -> web.Response:
        total = 0
        async for chunk in request.content.iter_any():
            total += len(chunk)
        return web.json_response({"received": total})

    app = web.Application()
    app.router.add_get("/download", download)
    app.router.add_post("/upload", upload)
    return app


async def start_proxy(upstream_port: int) -> tuple[asyncio.subprocess.Process, str]:
    process = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "corsproxy", "serve", "--upstream", f"http://127.0.0.1:{upstream_port}",
        "--prefix", "/api", "--port", "0", "--log-level", "warning",
        stdout=asyncio.subprocess.PIPE)
    line = (await asyncio.wait_for(process.stdout.readline(), 30)).decode().strip()
    if not line.startswith("corsproxy listening on "):
        process.kill()
        await asyncio.wait_for(process.wait(), 30)
        raise RuntimeError(f"proxy did not start: {line!r}")
    return process, line.removeprefix("corsproxy listening on ")


async def download(session: aiohttp.ClientSession, url: str) -> int:
    total = 0
    async with session.get(f"{url}/api/download") as response:
        async for chunk in response.content.iter_any():
            total += len(chunk)
    return total


async def upload(session: aiohttp.ClientSession, url: str, size: int) -> int:
    async def body():
        for _ in range(size // len(CHUNK)):
            yield CHUNK

    headers = {"Content-Length": str(size), "Content-Type": "application/octet-stream"}
    async with session.post(f"{url}/api/upload", data=body(), headers=headers) as response:
        return (await response.json())["received"]


async def measure(label: str, pid: int, size: int, transfer) -> dict:
    started = time.perf_counter()
    moved = await asyncio.wait_for(transfer, 600)
    seconds = time.perf_counter() - started
    if moved != size:
        raise RuntimeError(f"{label}: moved {moved} bytes, expected {size}")
    return {"transfer": label, "MiB": size >> 20, "seconds": round(seconds, 2),
            "MiB/s": round(size / seconds / (1 << 20), 1), "proxy_peak_rss_MiB": round(peak_rss_mib(pid), 1)}


async def main(mib: int, limit_mib: float) -> int:
    size = mib << 20
    runner = web.AppRunner(upstream_app(size))
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    upstream_port = site._server.sockets[0].getsockname()[1]
    process, url = await start_proxy(upstream_port)
    try:
        idle = rss_mib(process.pid)
        async with aiohttp.ClientSession(auto_decompress=False) as session:
            rows = [await measure("download", process.pid, size, download(session, url)),
                    await measure("upload", process.pid, size, upload(session, url, size))]
    finally:
        process.send_signal(signal.SIGTERM)
        await asyncio.wait_for(process.wait(), 30)
        await runner.cleanup()
    print(f"proxy idle RSS: {idle:.1f} MiB")
    print(f"{'transfer':<10}{'MiB':>7}{'seconds':>9}{'MiB/s':>9}{'peak RSS MiB':>14}")
    for row in rows:
        print(f"{row['transfer']:<10}{row['MiB']:>7}{row['seconds']:>9}{row['MiB/s']:>9}{row['proxy_peak_rss_MiB']:>14}")
    peak = max(row["proxy_peak_rss_MiB"] for row in rows)
    verdict = "ok" if peak < limit_mib else "OVER"
    print(f"{verdict}: proxy peak RSS {peak:.1f} MiB (limit {limit_mib:g} MiB)")
    return 0 if peak < limit_mib else 1


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--mib", type=int, default=1024, help="size of each transfer in MiB (default 1024)")
    parser.add_argument("--limit-mib", type=float, default=100, help="peak RSS limit in MiB (default 100)")
    args = parser.parse_args()
    raise SystemExit(asyncio.run(main(args.mib, args.limit_mib)))

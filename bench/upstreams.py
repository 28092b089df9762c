"""The bench's upstreams: nginx for static bodies, and a small aiohttp "aux" server for what
nginx cannot do (an upload sink that reads every byte; SSE events stamped with their send time).

    python bench/upstreams.py aux PORT              # the aux upstream (bench/run.py starts it)
    python bench/upstreams.py naive PORT UPSTREAM   # a naive aiohttp proxy, for reference
"""

from __future__ import annotations

import asyncio
import resource
import statistics
import sys
import time
from pathlib import Path

SMALL = b'{"data":"' + b"x" * 1000 + b'"}'   # ~1 KiB of JSON
SSE_SAMPLES = 15


def write_static(workdir: Path, transfer_mib: int) -> dict[str, Path]:
    (workdir / "small.json").write_bytes(SMALL)
    big = workdir / "big.bin"
    with open(big, "wb") as f:
        f.truncate(transfer_mib << 20)    # sparse: instant to make, reads as zeros
    return {"small": workdir / "small.json", "big": big}


def _nginx_head(workdir: Path, name: str) -> str:
    temp = " ".join(f"{kind}_temp_path {workdir}/{name}-{kind};"
                    for kind in ("client_body", "proxy", "fastcgi", "uwsgi", "scgi"))
    return f"""daemon off; master_process off; worker_processes 1;
pid {workdir}/{name}.pid; error_log {workdir}/{name}.err warn;
events {{ worker_connections 8192; }}
http {{ access_log off; {temp}
"""


def nginx_upstream_conf(workdir: Path, data: dict[str, Path], port: int) -> str:
    return _nginx_head(workdir, "upstream") + f"""
  server {{
    listen 127.0.0.1:{port} backlog=4096;
    keepalive_requests 1000000;
    location = /small {{ default_type application/json; alias {data['small']}; }}
    location = /big {{ default_type application/octet-stream; alias {data['big']}; }}
  }}
}}
"""


def nginx_cors_proxy_conf(workdir: Path, upstream_port: int, aux_port: int, port: int, origin: str) -> str:
    """nginx as people configure it for CORS: map the allowed origin, answer OPTIONS, proxy the rest."""
    proxy = ('proxy_http_version 1.1; proxy_set_header Connection ""; proxy_buffering off; '
             "proxy_request_buffering off; proxy_hide_header Access-Control-Allow-Origin; "
             "add_header Access-Control-Allow-Origin $cors_origin always; add_header Vary Origin always;")
    return _nginx_head(workdir, "nginx-proxy") + f"""
  upstream api {{ server 127.0.0.1:{upstream_port}; keepalive 64; }}
  upstream aux {{ server 127.0.0.1:{aux_port}; keepalive 16; }}
  map $http_origin $cors_origin {{ default ""; "{origin}" $http_origin; }}
  server {{
    listen 127.0.0.1:{port} backlog=4096;
    keepalive_requests 1000000;
    client_max_body_size 0;
    location /api/aux/ {{ proxy_pass http://aux/; {proxy} }}
    location /api/ {{
      if ($request_method = OPTIONS) {{
        add_header Access-Control-Allow-Origin $cors_origin;
        add_header Access-Control-Allow-Methods "GET, HEAD, POST, PUT, PATCH, DELETE";
        add_header Access-Control-Allow-Headers "Content-Type, Authorization";
        add_header Access-Control-Max-Age 600;
        add_header Vary "Origin, Access-Control-Request-Method, Access-Control-Request-Headers";
        return 204;
      }}
      proxy_pass http://api/; {proxy}
    }}
  }}
}}
"""


def run_aux(port: int) -> None:
    from aiohttp import web

    async def upload(request: web.Request) -> web.Response:
        total = 0
        async for chunk in request.content.iter_any():
            total += len(chunk)
        return web.json_response({"received": total})

    async def sse(request: web.Request) -> web.StreamResponse:
        response = web.StreamResponse(headers={"Content-Type": "text/event-stream", "Cache-Control": "no-cache"})
        await response.prepare(request)
        await asyncio.sleep(0.02)  # the head travels first; the event is what is timed
        await response.write(f"data: {time.monotonic_ns()}\n\n".encode())
        await asyncio.sleep(2)     # then idle, as an SSE stream is between events
        return response

    app = web.Application()
    app.router.add_post("/upload", upload)
    app.router.add_put("/upload", upload)
    app.router.add_get("/sse", sse)
    web.run_app(app, host="127.0.0.1", port=port, print=None, access_log=None)


def run_naive_proxy(port: int, upstream: str) -> None:
    """The least an aiohttp proxy does: one pooled session, stream the body, add a fixed ACAO.
    No config, no origin check, no header rewriting: the reference corsproxy's features are
    measured against (issue #15's "naive aiohttp proxy")."""
    import aiohttp
    from aiohttp import web

    async def session_ctx(app):
        app["session"] = aiohttp.ClientSession(auto_decompress=False)
        yield
        await app["session"].close()

    async def handle(request: web.Request) -> web.StreamResponse:
        if request.method == "OPTIONS":
            return web.Response(status=204, headers={"Access-Control-Allow-Origin": request.headers.get("Origin", "*")})
        path = request.raw_path.removeprefix("/api")
        async with request.app["session"].request(request.method, upstream + path, headers=request.headers,
                                                  data=request.content if request.body_exists else None) as up:
            response = web.StreamResponse(status=up.status, headers=up.headers)
            response.headers["Access-Control-Allow-Origin"] = request.headers.get("Origin", "*")
            await response.prepare(request)
            async for chunk in up.content.iter_any():
                await response.write(chunk)
            await response.write_eof()
            return response

    app = web.Application()
    app.cleanup_ctx.append(session_ctx)
    app.router.add_route("*", "/{tail:.*}", handle)
    import uvloop
    web.run_app(app, host="127.0.0.1", port=port, print=None, access_log=None, loop=uvloop.new_event_loop())


async def sse_first_event_ms(url: str, origin: str) -> float:
    """Median, over SSE_SAMPLES streams, of (event received - event sent) in ms (one clock)."""
    import aiohttp

    delays = []
    async with aiohttp.ClientSession() as session:
        for _ in range(SSE_SAMPLES):
            async with session.get(url, headers={"Origin": origin}) as response:
                line = await asyncio.wait_for(response.content.readuntil(b"\n\n"), 10)
                received = time.monotonic_ns()
                sent = int(line.split(b":", 1)[1])
                delays.append((received - sent) / 1e6)
    return round(statistics.median(delays), 3)


async def hold_connections(port: int, count: int, origin: str, measure) -> tuple[int, float]:
    """Open `count` keep-alive connections, one small GET on each, and call `measure()` while
    they are all open and idle. Returns (connections held, what measure returned)."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (min(hard, max(soft, count + 256)), hard))
    request = (f"GET /api/small HTTP/1.1\r\nHost: localhost\r\nOrigin: {origin}\r\n\r\n").encode()
    writers = []

    async def one() -> None:
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        writers.append(writer)
        writer.write(request)
        head = await reader.readuntil(b"\r\n\r\n")
        length = int(next(line.split(b":")[1] for line in head.split(b"\r\n")
                          if line.lower().startswith(b"content-length")))
        await reader.readexactly(length)

    try:
        for start in range(0, count, 100):   # in batches, so the listen backlog never overflows
            await asyncio.wait_for(asyncio.gather(*(one() for _ in range(min(100, count - start)))), 30)
        return len(writers), measure()
    finally:
        for writer in writers:
            writer.close()


if __name__ == "__main__":
    if len(sys.argv) == 3 and sys.argv[1] == "aux":
        run_aux(int(sys.argv[2]))
    elif len(sys.argv) == 4 and sys.argv[1] == "naive":
        run_naive_proxy(int(sys.argv[2]), sys.argv[3])
    else:
        raise SystemExit(__doc__)

"""`corsproxy demo` without a browser: its flags, its config, its servers and how it stops.
(The browser half is tests/browser/test_demo.py.)"""

from __future__ import annotations

import argparse
import signal
import socket
import subprocess
import sys

import aiohttp
import pytest

from corsproxy.commands import demo
from tests.demo_process import ROOT, start_demo


def test_flags_default_to_8080_9000_3000():
    """--port, --api-port and --page-port default to 8080, 9000 and 3000."""
    parser = argparse.ArgumentParser()
    demo.add_arguments(parser)
    args = parser.parse_args([])
    assert (args.port, args.api_port, args.page_port) == (8080, 9000, 3000)


def test_bundled_config_allows_exactly_the_page_origins():
    """The bundled demo.yaml loads as package data; the proxy allows the page under both loopback
    names and nothing else, and forwards /api to the demo API."""
    config = demo.demo_config(page_port=3001, api_port=9001, proxy_port=8081)
    (route,) = config.routes
    assert route.prefix == "/api" and route.upstream.url == "http://127.0.0.1:9001"
    assert route.cors.allow_origins == {"http://localhost:3001", "http://127.0.0.1:3001"}
    assert not route.cors.allow_any_origin and not route.cors.allow_credentials
    assert config.server.port == 8081 and config.server.host == "127.0.0.1"


def test_out_of_range_port_exits_2():
    """A port above 65535 is a usage error: exit 2, a message, no traceback."""
    result = subprocess.run([sys.executable, "-m", "corsproxy", "demo", "--page-port", "70000"],
                            capture_output=True, text=True, timeout=60, cwd=ROOT)
    assert result.returncode == 2 and "--page-port 70000" in result.stderr and "Traceback" not in result.stderr


@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGINT], ids=["SIGTERM", "SIGINT"])
async def test_serves_api_proxy_and_page_then_stops_cleanly(tmp_path, sig):
    """The three servers answer (the API with no CORS headers, the proxy with them for the
    page's origin); a signal stops all three and exits 0."""
    started = await start_demo("--port", "0", "--api-port", "0", "--page-port", "0", log=tmp_path / "demo.log")
    try:
        origin = started.page.rstrip("/")
        assert started.page.startswith("http://localhost:") and started.proxy.endswith("/api/")
        async with aiohttp.ClientSession() as session:
            async with session.get(started.page) as r:
                assert r.status == 200 and "Call it through corsproxy" in await r.text()
            for icon in ("favicon.ico", "favicon.svg"):  # no 404 beside the CORS messages
                async with session.get(started.page + icon) as r:
                    assert r.status == 200 and r.content_type == "image/svg+xml"
                    assert (await r.read()).startswith(b"<svg")
            async with session.get(started.api + "orders", headers={"Origin": origin}) as r:
                assert r.status == 200
                assert not [h for h in r.headers if h.lower().startswith("access-control-")]
            async with session.get(started.proxy + "orders", headers={"Origin": origin}) as r:
                assert r.status == 200 and r.headers["Access-Control-Allow-Origin"] == origin
            async with session.get(started.proxy + "orders", headers={"Origin": "http://localhost:1"}) as r:
                assert r.status == 403
    finally:
        code = await started.stop(sig)
    assert code == 0
    for url in (started.page, started.api, started.proxy):
        port = int(url.split(":")[2].split("/")[0])
        with socket.socket() as probe, pytest.raises(ConnectionRefusedError):
            probe.connect(("127.0.0.1", port))


async def test_a_taken_page_port_exits_1_naming_the_flag(tmp_path):
    """When the page's port is taken: exit 1 with a message naming --page-port, nothing left running."""
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        result = subprocess.run(
            [sys.executable, "-m", "corsproxy", "demo", "--port", "0", "--api-port", "0", "--page-port", str(port)],
            capture_output=True, text=True, timeout=60, cwd=ROOT)
    assert result.returncode == 1
    assert "cannot start the demo page" in result.stderr and "--page-port" in result.stderr
    assert "Traceback" not in result.stderr

"""The command line as a user runs it: a real `corsproxy` process, its output and exit codes."""

from __future__ import annotations

import asyncio
import os
import signal
import socket
import subprocess
import sys
from pathlib import Path

import aiohttp
import pytest

from corsproxy.cli import resolve_listen
from corsproxy.model import ServerSettings
from tests.upstream_app import ARRIVED, RELEASE

ROOT = Path(__file__).resolve().parent.parent


def run_cli(*args: str, cwd: Path | None = None, env: dict | None = None) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "corsproxy", *args], capture_output=True, text=True,
                          timeout=60, cwd=cwd or ROOT, env={**os.environ, **(env or {})})


def write_config(tmp_path: Path, upstream_port: int) -> Path:
    path = tmp_path / "corsproxy.yaml"
    path.write_text(f"""\
cors:
  allow_origins: [http://localhost:3000]
routes:
  - prefix: /api
    upstream: http://127.0.0.1:{upstream_port}/v1
""")
    return path


async def test_ready_line_names_the_real_port_and_sigterm_exits_0(spawn, upstream, tmp_path):
    """With --port 0 the ready line names the port the kernel chose; SIGTERM exits 0."""
    proxy = await spawn("serve", "-c", str(write_config(tmp_path, upstream.port)), "--port", "0")
    assert proxy.url.startswith("http://127.0.0.1:") and not proxy.url.endswith(":0")
    async with aiohttp.ClientSession() as session:
        async with session.get(f"{proxy.url}/api/x", headers={"Origin": "http://localhost:3000"}) as r:
            assert r.status == 200
            assert r.headers["Access-Control-Allow-Origin"] == "http://localhost:3000"
    assert await proxy.stop() == 0


async def test_ipv6_ready_line_is_bracketed(spawn, upstream, tmp_path):
    """Bound to ::1 the ready line brackets the address."""
    proxy = await spawn("-c", str(write_config(tmp_path, upstream.port)), "--host", "::1", "--port", "0")
    assert proxy.url.startswith("http://[::1]:")
    async with aiohttp.ClientSession() as session:
        async with session.get(f"{proxy.url}/__corsproxy/health") as r:
            assert r.status == 200
    assert await proxy.stop(signal.SIGINT) == 0


async def test_env_port_and_flag_precedence(spawn, upstream, tmp_path, unused_tcp_port):
    """$CORSPROXY_PORT overrides the file; --port overrides the environment."""
    config = str(write_config(tmp_path, upstream.port))
    proxy = await spawn("-c", config, env={"CORSPROXY_PORT": str(unused_tcp_port)})
    assert proxy.url == f"http://127.0.0.1:{unused_tcp_port}"
    await proxy.stop()
    proxy = await spawn("-c", config, "--port", "0", env={"CORSPROXY_PORT": str(unused_tcp_port)})
    assert proxy.url != f"http://127.0.0.1:{unused_tcp_port}"
    await proxy.stop()


async def test_config_from_environment_variable(spawn, upstream, tmp_path):
    """Without -c, $CORSPROXY_CONFIG names the config."""
    config = write_config(tmp_path, upstream.port)
    proxy = await spawn("--port", "0", env={"CORSPROXY_CONFIG": str(config)}, cwd=tmp_path.parent)
    async with aiohttp.ClientSession() as session:
        async with session.get(f"{proxy.url}/__corsproxy/routes") as r:
            assert (await r.json())["routes"][0]["prefix"] == "/api"
    await proxy.stop()


async def test_sigterm_lets_in_flight_requests_finish(spawn, upstream, tmp_path):
    """On SIGTERM new connections are refused, an in-flight request completes within the grace
    period, then exit 0."""
    proxy = await spawn("-c", str(write_config(tmp_path, upstream.port)), "--port", "0", "--grace", "10")
    async with aiohttp.ClientSession() as session:
        in_flight = asyncio.create_task(session.get(f"{proxy.url}/api/gate"))
        await asyncio.wait_for(upstream.app[ARRIVED].wait(), 10)
        proxy.process.send_signal(signal.SIGTERM)
        # The listening socket closes first: a new connection is refused while the old one drains.
        await proxy.stderr.until(b"stopping")
        for _ in range(100):               # bounded poll: the listener closes right after "stopping"
            if await asyncio.to_thread(_refused, proxy.url):
                break
            await asyncio.sleep(0.05)
        else:
            raise AssertionError("the proxy still accepts new connections after SIGTERM")
        upstream.app[RELEASE].set()
        response = await asyncio.wait_for(in_flight, 10)
        assert response.status == 200 and await response.text() == "released"
    assert await asyncio.wait_for(proxy.process.wait(), 10) == 0


def _refused(url: str) -> bool:
    host, port = url.removeprefix("http://").rsplit(":", 1)
    try:
        socket.create_connection((host, int(port)), timeout=1).close()
    except ConnectionRefusedError:
        return True
    return False


async def test_grace_period_bounds_shutdown(spawn, upstream, tmp_path):
    """A request that never ends does not hold shutdown past the grace period."""
    proxy = await spawn("-c", str(write_config(tmp_path, upstream.port)), "--port", "0", "--grace", "1")
    async with aiohttp.ClientSession() as session:
        in_flight = asyncio.create_task(session.get(f"{proxy.url}/api/hang"))
        await asyncio.wait_for(_wait_until_received(upstream), 10)
        assert await proxy.stop(timeout=15) == 0
        in_flight.cancel()


async def _wait_until_received(upstream) -> None:
    from tests.upstream_app import RECEIVED
    for _ in range(500):
        if upstream.app[RECEIVED]:
            return
        await asyncio.sleep(0.01)
    raise AssertionError("the upstream never received the request")


def test_check_prints_the_route_table_with_sources():
    """`check` on the bundled config exits 0 and names each route's file:line."""
    result = run_cli("check", "-c", "config/")
    assert result.returncode == 0, result.stderr
    assert "/api" in result.stdout and "config/corsproxy.yaml:" in result.stdout
    assert "http://localhost:8080, not http://127.0.0.1:8080" in result.stdout


def test_check_refuses_wildcard_with_credentials(tmp_path):
    """`check` exits 2 naming file and line for ["*"] with credentials, without a traceback."""
    bad = tmp_path / "team.yaml"
    bad.write_text("routes:\n  - prefix: /api\n    upstream: http://127.0.0.1:9/v1\n"
                   "    cors:\n      allow_origins: ['*']\n      allow_credentials: true\n")
    result = run_cli("check", "-c", str(bad))
    assert result.returncode == 2
    assert f"{bad}:5" in result.stderr and "credentials" in result.stderr
    assert "Traceback" not in result.stderr


def test_check_suggests_the_nearest_key_for_a_misspelling(tmp_path):
    """A misspelt key exits 2 with file:line, the key path and the suggestion."""
    bad = tmp_path / "team.yaml"
    bad.write_text("cors:\n  alow_origins: [http://localhost:3000]\n")
    result = run_cli("check", "-c", str(bad))
    assert result.returncode == 2
    assert f"{bad}:2: cors.alow_origins" in result.stderr and "'allow_origins'" in result.stderr


def test_serve_with_a_bad_config_exits_2_without_traceback(tmp_path):
    """`serve` refuses a bad config the same way: exit 2, message, no traceback."""
    bad = tmp_path / "team.yaml"
    bad.write_text("routes:\n  - prefix: /api\n    upstream: not-a-url\n")
    result = run_cli("serve", "-c", str(bad), "--port", "0")
    assert result.returncode == 2
    assert f"{bad}:3" in result.stderr and "Traceback" not in result.stderr


@pytest.mark.parametrize("args", [("--port", "abc"), ("check", "--nope"), ("-c", "/does/not/exist")],
                         ids=["bad-port", "unknown-flag", "missing-config"])
def test_bad_arguments_exit_2(args):
    """Bad arguments exit 2 with a message and no traceback."""
    result = run_cli(*args)
    assert result.returncode == 2 and result.stderr and "Traceback" not in result.stderr


def test_bad_env_port_exits_2(tmp_path):
    """A non-numeric $CORSPROXY_PORT is a usage error (exit 2)."""
    result = run_cli("-c", "config/", env={"CORSPROXY_PORT": "eighty"})
    assert result.returncode == 2 and "CORSPROXY_PORT" in result.stderr


def test_port_in_use_exits_1(tmp_path):
    """A port that cannot be bound is a runtime failure (exit 1) with a message."""
    import socket
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        result = run_cli("-c", "config/", "--port", str(port))
    assert result.returncode == 1 and "cannot listen" in result.stderr


async def test_quick_start_without_yaml(spawn, upstream):
    """`serve --upstream URL --allow-origin O` proxies /api without any config file."""
    proxy = await spawn("serve", "--upstream", f"http://127.0.0.1:{upstream.port}/v1", "--port", "0",
                        "--allow-origin", "http://localhost:4200", "--credentials", cwd=Path("/"))
    async with aiohttp.ClientSession() as session:
        async with session.get(f"{proxy.url}/api/x", headers={"Origin": "http://localhost:4200"}) as r:
            assert r.status == 200
            assert r.headers["Access-Control-Allow-Credentials"] == "true"
        async with session.get(f"{proxy.url}/api/x", headers={"Origin": "http://localhost:3000"}) as r:
            assert r.status == 403
    await proxy.stop()


async def test_workers_share_one_port_and_stop_together(spawn, upstream, tmp_path):
    """--workers 2 forks two workers on one SO_REUSEPORT port; SIGTERM stops all of them, exit 0."""
    proxy = await spawn("-c", str(write_config(tmp_path, upstream.port)), "--port", "0", "--workers", "2")
    pid = proxy.process.pid
    workers = [int(p) for p in Path(f"/proc/{pid}/task/{pid}/children").read_text().split()]
    assert len(workers) == 2
    connector = aiohttp.TCPConnector(force_close=True)  # a new connection per request
    async with aiohttp.ClientSession(connector=connector) as session:
        for _ in range(20):
            async with session.get(f"{proxy.url}/api/x", headers={"Origin": "http://localhost:3000"}) as r:
                assert r.status == 200
    assert await proxy.stop() == 0
    assert not any(Path(f"/proc/{worker}").exists() for worker in workers)


async def test_json_logs_one_line_per_request(spawn, upstream, tmp_path):
    """--log-format json writes one JSON line per request with route, origin, status and decision."""
    import json
    proxy = await spawn("-c", str(write_config(tmp_path, upstream.port)), "--port", "0", "--log-format", "json")
    async with aiohttp.ClientSession() as session:
        async with session.get(f"{proxy.url}/api/x", headers={"Origin": "https://evil.example"}) as r:
            assert r.status == 403
    await proxy.stop()
    lines = [json.loads(line) for line in (await proxy.stderr.finished()).decode().splitlines() if line.startswith("{")]
    refused = [line for line in lines if line.get("path") == "/api/x"]
    assert len(refused) == 1
    entry = refused[0]
    assert entry["route"] == "/api" and entry["origin"] == "https://evil.example" and entry["status"] == 403
    assert "allow_origins" in entry["why"] and "corsproxy.yaml:" in entry["why"]


FILE_SERVER = ServerSettings(host="127.0.0.1", port=8080)


@pytest.mark.parametrize(("flag_host", "flag_port", "env", "host", "port"), [
    pytest.param(None, None, {}, "127.0.0.1", 8080, id="file"),
    pytest.param(None, None, {"CORSPROXY_HOST": "0.0.0.0", "CORSPROXY_PORT": "9000"}, "0.0.0.0", 9000, id="env"),
    pytest.param("::1", 0, {"CORSPROXY_HOST": "0.0.0.0", "CORSPROXY_PORT": "9000"}, "::1", 0, id="flags-win"),
    pytest.param("[::1]", None, {}, "::1", 8080, id="bracketed-ipv6"),
])
def test_resolve_listen_precedence_and_bind_host(flag_host, flag_port, env, host, port):
    """Flags beat $CORSPROXY_HOST/PORT, which beat the file; the host bound is always an allowed Host."""
    settings = resolve_listen(flag_host, flag_port, env, FILE_SERVER)
    assert (settings.host, settings.port) == (host, port)
    assert (host.lower(), None) in settings.allowed_hosts
    assert settings.allowed_hosts[:3] == FILE_SERVER.allowed_hosts


def test_resolve_listen_leaves_any_host_alone():
    """With allowed_hosts ["*"] the bind host is not added to an allowlist that is off."""
    settings = resolve_listen("0.0.0.0", None, {}, ServerSettings(allowed_hosts=(), allow_any_host=True))
    assert settings.allowed_hosts == () and settings.allow_any_host


PREFLIGHT_JSON_POST = {"Origin": "http://localhost:5173", "Access-Control-Request-Method": "POST",
                       "Access-Control-Request-Headers": "authorization,content-type"}


async def test_quick_start_lets_a_dev_page_send_any_header_and_says_so(spawn, upstream):
    """`serve --upstream URL` alone: a JSON POST with Authorization from localhost:5173 passes its
    preflight and is forwarded; a foreign origin is still refused; the banner says what it allows."""
    proxy = await spawn("serve", "--upstream", f"http://127.0.0.1:{upstream.port}/v1", "--port", "0",
                        cwd=Path("/"))
    async with aiohttp.ClientSession() as session:
        async with session.options(f"{proxy.url}/api/x", headers=PREFLIGHT_JSON_POST) as r:
            assert r.status == 204 and "X-Corsproxy-Refused" not in r.headers
            assert r.headers["Access-Control-Allow-Headers"] == "authorization, content-type"
        async with session.post(f"{proxy.url}/api/x", json={"qty": 2}, headers={
                "Origin": "http://localhost:5173", "Authorization": "Bearer t"}) as r:
            assert r.status == 200 and r.headers["Access-Control-Allow-Origin"] == "http://localhost:5173"
        async with session.options(f"{proxy.url}/api/x", headers={**PREFLIGHT_JSON_POST,
                                                                   "Origin": "http://localhost:8000"}) as r:
            assert r.status == 403 and "Access-Control-Allow-Origin" not in r.headers
    await proxy.stop()
    banner = (await proxy.stderr.finished()).decode()
    assert "headers=\"any (allow_headers: ['*'])\"" in banner
    assert "origins='http://localhost:3000, http://localhost:5173'" in banner
    assert "methods='GET, HEAD, POST, PUT, PATCH, DELETE'" in banner


async def test_quick_start_flags_set_headers_methods_and_expose(spawn, upstream):
    """--allow-header, --allow-method and --expose-header (repeatable) shape the route; a refusal
    names the flag to change."""
    proxy = await spawn("serve", "--upstream", f"http://127.0.0.1:{upstream.port}/v1", "--port", "0",
                        "--allow-header", "Content-Type", "--allow-header", "X-Api-Key",
                        "--allow-method", "GET", "--allow-method", "PURGE",
                        "--expose-header", "X-Total-Count", "--expose-header", "ETag", cwd=Path("/"))
    async with aiohttp.ClientSession() as session:
        async with session.options(f"{proxy.url}/api/x", headers=PREFLIGHT_JSON_POST) as r:
            assert r.status == 204
            assert r.headers["Access-Control-Allow-Headers"] == "content-type, x-api-key"
            assert r.headers["X-Corsproxy-Refused"] == (
                "header 'authorization' is not in allow_headers of route /api (--allow-header); "
                "add it to allow_headers to allow it")
            assert r.headers["X-Corsproxy-Change"] == "--allow-header"
        async with session.options(f"{proxy.url}/api/x", headers={
                "Origin": "http://localhost:3000", "Access-Control-Request-Method": "PURGE"}) as r:
            assert r.status == 204 and r.headers["Access-Control-Allow-Methods"] == "GET, PURGE"
            assert "X-Corsproxy-Refused" not in r.headers
        async with session.get(f"{proxy.url}/api/x", headers={"Origin": "http://localhost:3000"}) as r:
            assert r.headers["Access-Control-Expose-Headers"] == "X-Total-Count, ETag"
    await proxy.stop()
    banner = (await proxy.stderr.finished()).decode()
    assert "headers='content-type, x-api-key, the CORS-safelisted ones'" in banner
    assert "methods='GET, PURGE'" in banner and "expose='X-Total-Count, ETag'" in banner

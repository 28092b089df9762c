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

from corsproxy import cli
from corsproxy import config as config_module
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
    """With --port 0 the ready line names the port the kernel chose, under the host name a page
    on localhost must call (not 127.0.0.1, another site); SIGTERM exits 0."""
    proxy = await spawn("serve", "-c", str(write_config(tmp_path, upstream.port)), "--port", "0")
    assert proxy.url.startswith("http://localhost:") and not proxy.url.endswith(":0")
    async with aiohttp.ClientSession() as session:
        async with session.get(f"{proxy.url}/api/x", headers={"Origin": "http://localhost:3000"}) as r:
            assert r.status == 200
            assert r.headers["Access-Control-Allow-Origin"] == "http://localhost:3000"
    assert await proxy.stop() == 0
    port = proxy.url.rsplit(":", 1)[1]
    assert f"bound=http://127.0.0.1:{port}" in (await proxy.stderr.finished()).decode()


async def test_ready_line_keeps_the_bind_host_when_localhost_is_not_allowed(spawn, upstream, tmp_path):
    """With localhost outside server.allowed_hosts the ready line names the bind address, which
    the proxy does answer."""
    config = tmp_path / "c.yaml"
    config.write_text(f"server: {{allowed_hosts: [127.0.0.1]}}\n"
                      f"routes: [{{prefix: /api, upstream: 'http://127.0.0.1:{upstream.port}/v1'}}]\n")
    proxy = await spawn("-c", str(config), "--port", "0")
    assert proxy.url.startswith("http://127.0.0.1:")
    async with aiohttp.ClientSession() as session:
        async with session.get(f"{proxy.url}/__corsproxy/health") as r:
            assert r.status == 200
    await proxy.stop()


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
    assert proxy.url == f"http://localhost:{unused_tcp_port}"
    await proxy.stop()
    proxy = await spawn("-c", config, "--port", "0", env={"CORSPROXY_PORT": str(unused_tcp_port)})
    assert proxy.url != f"http://localhost:{unused_tcp_port}"
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


def test_check_shows_each_route_s_whole_policy_with_sources(tmp_path):
    """`check` prints every cors key of each route, its effective value and the file:line that
    sets it (the route's line for a built-in default)."""
    path = tmp_path / "c.yaml"
    path.write_text("cors:\n  allow_origins: [http://localhost:5173]\n"
                    "routes:\n  - prefix: /api\n    upstream: http://127.0.0.1:9\n"
                    "    cors: {allow_headers: [X-Api-Key], max_age: 5}\n")
    result = run_cli("check", "-c", str(path))
    assert result.returncode == 0, result.stderr
    block = result.stdout.split(f"route /api -> http://127.0.0.1:9 ({path}:4):\n", 1)[1]
    rows = [line.split() for line in block.splitlines()[:8]]
    assert rows == [
        ["allow_origins", "http://localhost:5173", f"{path}:2"],
        ["allow_origin_regex", "-", f"{path}:4"],
        ["allow_methods", "GET,", "HEAD,", "POST,", "PUT,", "PATCH,", "DELETE", f"{path}:4"],
        ["allow_headers", "x-api-key", f"{path}:6"],
        ["expose_headers", "-", f"{path}:4"],
        ["allow_credentials", "false", f"{path}:4"],
        ["max_age", "5", f"{path}:6"],
        ["allow_private_network", "false", f"{path}:4"],
    ]


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


@pytest.mark.parametrize("workers", ["1", "2"])
def test_port_in_use_exits_1_and_suggests_another_port(tmp_path, workers):
    """A port in use is a runtime failure (exit 1) whose message says how to get past it."""
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        result = run_cli("-c", "config/", "--port", str(port), "--workers", workers)
    assert result.returncode == 1
    assert result.stderr.strip() == (
        f"corsproxy: cannot listen on http://127.0.0.1:{port}: Address already in use; another program "
        f"(perhaps another corsproxy) uses port {port}: stop it, or choose another port with --port N "
        "(--port 0 picks a free one)")


async def test_json_log_format_makes_every_line_json(spawn, upstream, tmp_path):
    """With --log-format json every line on stdout and stderr is a JSON object, the ready line
    included (event `listening`, with `url`), and so is a start-up failure."""
    import json
    proxy = await spawn("-c", str(write_config(tmp_path, upstream.port)), "--port", "0", "--log-format", "json")
    ready = json.loads(proxy.ready)
    assert ready["event"] == "listening" and ready["url"] == proxy.url
    assert proxy.url.startswith("http://localhost:")
    async with aiohttp.ClientSession() as session:
        async with session.get(f"{proxy.url}/api/x", headers={"Origin": "http://localhost:3000"}) as r:
            assert r.status == 200
    await proxy.stop()
    stdout = (await proxy.stdout.finished()).decode().splitlines()
    stderr = (await proxy.stderr.finished()).decode().splitlines()
    assert stdout == [proxy.ready] and len(stderr) >= 5
    assert all(isinstance(json.loads(line), dict) for line in stdout + stderr), stderr
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        failed = run_cli("-c", str(tmp_path / "corsproxy.yaml"), "--port", str(taken.getsockname()[1]),
                         env={"CORSPROXY_LOG_FORMAT": "json"})
    (line,) = failed.stderr.splitlines()
    assert json.loads(line)["event"] == "error" and "--port 0" in json.loads(line)["message"]
    bad = tmp_path / "bad.yaml"
    bad.write_text("routes:\n  - prefix: api\n    upstream: nope\n")
    failed = run_cli("-c", str(bad), "--log-format", "json")
    assert failed.returncode == 2 and failed.stdout == ""
    messages = [json.loads(line)["message"] for line in failed.stderr.splitlines()]
    assert len(messages) == 2 and all(m.startswith(f"{bad}:") for m in messages)


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


async def test_workers_auto_starts_one_worker_per_core(spawn, upstream, tmp_path):
    """--workers auto forks one worker per core this process may run on (capped), all answering."""
    proxy = await spawn("-c", str(write_config(tmp_path, upstream.port)), "--port", "0", "--workers", "auto")
    pid = proxy.process.pid
    expected = min(len(os.sched_getaffinity(0)), cli.MAX_AUTO_WORKERS)
    workers = [int(p) for p in Path(f"/proc/{pid}/task/{pid}/children").read_text().split()]
    assert len(workers) == (expected if expected > 1 else 0)   # one worker is the process itself
    async with aiohttp.ClientSession() as session:
        async with session.get(f"{proxy.url}/api/x", headers={"Origin": "http://localhost:3000"}) as r:
            assert r.status == 200
    assert await proxy.stop() == 0


@pytest.mark.parametrize(("text", "cores", "count"), [
    ("1", 4, 1), ("3", 1, 3), ("auto", 1, 1), ("auto", 2, 2), ("auto", 64, 8)],
    ids=["one", "more than cores", "auto, one core", "auto, two cores", "auto, capped"])
def test_worker_count(text, cores, count):
    """--workers takes a number from 1, or auto: one per core, at most MAX_AUTO_WORKERS."""
    assert cli.worker_count(text, cores) == count


@pytest.mark.parametrize("text", ["0", "-1", "two", "1.5", ""])
def test_worker_count_refuses_anything_else(text):
    """--workers 0, negative or non-numbers are refused with the values it takes."""
    with pytest.raises(cli.UsageError, match="whole number from 1, or auto"):
        cli.worker_count(text, 2)


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
                "pass --allow-header authorization to allow it")
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


async def test_health_finds_the_port_as_serve_does(spawn, upstream, tmp_path, unused_tcp_port):
    """`corsproxy health` reads the address from the config serve would use (./corsproxy.yaml here,
    with server.port set and no $CORSPROXY_PORT), so the check hits the running proxy."""
    (tmp_path / "corsproxy.yaml").write_text(
        f"server: {{port: {unused_tcp_port}}}\n"
        f"routes: [{{prefix: /api, upstream: 'http://127.0.0.1:{upstream.port}/v1'}}]\n")
    env = {"CORSPROXY_PORT": "", "CORSPROXY_CONFIG": ""}
    proxy = await spawn(env=env, cwd=tmp_path)
    assert proxy.url == f"http://localhost:{unused_tcp_port}"
    health = await asyncio.to_thread(run_cli, "health", cwd=tmp_path, env=env)
    assert health.returncode == 0, health.stderr
    assert health.stdout.strip() == f"corsproxy health: http://127.0.0.1:{unused_tcp_port}/__corsproxy/health: ok"
    other = await asyncio.to_thread(run_cli, "health", "--port", "1", cwd=tmp_path, env=env)
    assert other.returncode == 1   # --port overrides the file, as for serve
    await proxy.stop()


async def test_start_up_names_an_upstream_that_does_not_listen(spawn, upstream, tmp_path):
    """At start the log names each upstream that refuses connections (its routes will answer
    502), and only those: the bundled config/ without the demo API is not a silent trap."""
    with socket.socket() as holder:     # bound, never listening: connections are refused
        holder.bind(("127.0.0.1", 0))
        dead = holder.getsockname()[1]
        config = tmp_path / "c.yaml"
        config.write_text(f"routes:\n  - {{prefix: /api, upstream: 'http://127.0.0.1:{upstream.port}/v1'}}\n"
                          f"  - {{prefix: /down, upstream: 'http://127.0.0.1:{dead}'}}\n")
        proxy = await spawn("-c", str(config), "--port", "0")
        line = (await proxy.stderr.until(b"upstream not reachable", 10)).decode()
        await proxy.stop()
    rest = (await proxy.stderr.finished()).decode()
    warned = [text for text in rest.splitlines() if "upstream not reachable" in text]
    assert len(warned) == 1 and "routes=['/down']" in warned[0] and f":{dead}" in warned[0], line


def test_the_start_up_check_dials_only_upstreams_on_this_machine():
    """The reachability check at start picks loopback upstreams only: it never dials the network."""
    from corsproxy.server.serve import local_upstreams
    config = config_module.from_flags("https://api.example.com/v1")
    assert local_upstreams(config) == {}
    bundled = config_module.load(ROOT / "config", env={})
    assert local_upstreams(bundled) == {("127.0.0.1", 9000, "http://127.0.0.1:9000"): ["/api"]}

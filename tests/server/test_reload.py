"""Hot reload: edits, rename-over saves, deletes and broken edits, applied without a restart."""

from __future__ import annotations

import asyncio
import os
import signal
from pathlib import Path

import aiohttp
import pytest
import structlog
from aiohttp.test_utils import TestClient

from corsproxy import config as config_module
from corsproxy.server.app import STATE, build_app
from corsproxy.server.reload import ConfigSource, Reloader, changes
from tests.conftest import ProxyServer
from tests.upstream_app import ARRIVED, RELEASE

ORIGIN = "http://localhost:3000"


def team_file(upstream_port: int, prefix: str = "/api", origin: str = ORIGIN) -> str:
    return (f"cors:\n  allow_origins: [{origin}]\n"
            f"routes:\n  - prefix: {prefix}\n    upstream: http://127.0.0.1:{upstream_port}/v1\n")


async def eventually(check, *, timeout: float = 10.0) -> None:
    """Wait, bounded in time and count, until `check()` is true (a reload has been applied)."""
    try:
        async with asyncio.timeout(timeout):  # bounds a check that hangs, too
            for _ in range(int(timeout / 0.02)):
                if await check():
                    return
                await asyncio.sleep(0.02)
    except TimeoutError:
        pass
    raise AssertionError(f"condition not reached within {timeout:g} s")


async def watch(directory: Path, aiohttp_client, *, after_first_load=lambda: None):
    """Serve the config in `directory` with a watcher polling every 50 ms, as serve does: the
    source's baseline is taken before the first load, the watcher starts after it."""
    source = ConfigSource.at(directory, lambda: config_module.load(directory))
    app = build_app(source.load())
    after_first_load()
    client: TestClient = await aiohttp_client(ProxyServer(app))
    reloader = Reloader(app[STATE], source)
    return client, reloader, asyncio.create_task(reloader.watch(interval=0.05))


@pytest.fixture
async def live(aiohttp_client, tmp_path, upstream):
    """A proxy on config dir tmp_path/config, watched."""
    directory = tmp_path / "config"
    directory.mkdir()
    (directory / "orders.yaml").write_text(team_file(upstream.port))
    client, reloader, watcher = await watch(directory, aiohttp_client)
    yield client, directory, reloader
    watcher.cancel()


async def status(client: TestClient, path: str, origin: str = ORIGIN) -> int:
    async with client.get(path, headers={"Origin": origin}) as r:
        return r.status


async def test_adding_a_team_file_adds_its_routes(live, upstream):
    """A new file in the config directory is picked up without a restart."""
    client, directory, _ = live
    assert await status(client, "/billing/x") == 404
    (directory / "billing.yml").write_text(team_file(upstream.port, "/billing"))
    await eventually(lambda: _is(client, "/billing/x", 200))


async def test_a_file_written_while_starting_is_not_missed(aiohttp_client, tmp_path, upstream):
    """A file written after the first load, before the watcher's first look (a script that
    edits the config as soon as the ready line appears), is still reloaded."""
    directory = tmp_path / "config"
    directory.mkdir()
    (directory / "orders.yaml").write_text(team_file(upstream.port))
    client, _, watcher = await watch(
        directory, aiohttp_client,
        after_first_load=lambda: (directory / "billing.yaml").write_text(team_file(upstream.port, "/billing")))
    try:
        await eventually(lambda: _is(client, "/billing/x", 200))
    finally:
        watcher.cancel()


async def test_editing_a_file_changes_the_policy(live, upstream):
    """An edited allow_origins applies to the next request."""
    client, directory, _ = live
    (directory / "orders.yaml").write_text(team_file(upstream.port, origin="http://localhost:5173"))
    await eventually(lambda: _is(client, "/api/x", 200, "http://localhost:5173"))
    assert await status(client, "/api/x") == 403


async def test_rename_over_save_is_noticed(live, upstream):
    """Editors that write a temp file and rename it over the original (vim, JetBrains) reload too."""
    client, directory, _ = live
    temp = directory / ".orders.yaml.tmp"
    temp.write_text(team_file(upstream.port, "/orders"))
    os.replace(temp, directory / "orders.yaml")
    await eventually(lambda: _is(client, "/orders/x", 200))
    assert await status(client, "/api/x") == 404


async def test_symlink_swap_is_noticed(live, upstream, tmp_path):
    """A Kubernetes-style ..data symlink swap under the watched file reloads."""
    client, directory, _ = live
    first, second = tmp_path / "v1", tmp_path / "v2"
    first.mkdir(), second.mkdir()
    (first / "orders.yaml").write_text(team_file(upstream.port, "/one"))
    (second / "orders.yaml").write_text(team_file(upstream.port, "/two"))
    (directory / "orders.yaml").unlink()
    (directory / "orders.yaml").symlink_to(first / "orders.yaml")
    await eventually(lambda: _is(client, "/one/x", 200))
    link = directory / "next"
    link.symlink_to(second / "orders.yaml")
    os.replace(link, directory / "orders.yaml")
    await eventually(lambda: _is(client, "/two/x", 200))


async def test_deleting_a_file_removes_its_routes(live, upstream):
    """Removing a team's file removes its routes."""
    client, directory, _ = live
    (directory / "billing.yaml").write_text(team_file(upstream.port, "/billing"))
    await eventually(lambda: _is(client, "/billing/x", 200))
    (directory / "billing.yaml").unlink()
    await eventually(lambda: _is(client, "/billing/x", 404))
    assert await status(client, "/api/x") == 200


async def test_invalid_edit_keeps_the_last_good_config(live, upstream):
    """A broken edit is logged with file:line and the last good config keeps serving; the next valid edit applies."""
    client, directory, reloader = live
    (directory / "orders.yaml").write_text("routes:\n  - prefix: /api\n    upstrem: http://127.0.0.1:1/\n")
    with structlog.testing.capture_logs() as logs:
        assert await reloader.reload("test") is False
    refused = [entry["why"] for entry in logs if entry["event"] == "reload refused"]
    assert any("orders.yaml:3: routes[0].upstrem: unknown key" in why for why in refused)
    assert await status(client, "/api/x") == 200
    (directory / "orders.yaml").write_text(team_file(upstream.port, "/fixed"))
    await eventually(lambda: _is(client, "/fixed/x", 200))


async def test_in_flight_request_survives_a_reload(live, upstream):
    """A request in flight when its route is removed still completes."""
    client, directory, reloader = live
    in_flight = asyncio.create_task(client.get("/api/gate"))
    await asyncio.wait_for(upstream.app[ARRIVED].wait(), 10)
    (directory / "orders.yaml").write_text(team_file(upstream.port, "/other"))
    assert await reloader.reload("test") is True
    assert await status(client, "/api/x") == 404
    upstream.app[RELEASE].set()
    response = await asyncio.wait_for(in_flight, 10)
    assert response.status == 200 and await response.text() == "released"


async def test_open_websocket_survives_a_reload(live, upstream):
    """An open WebSocket keeps working across a reload."""
    client, directory, reloader = live
    async with client.ws_connect("/api/ws", headers={"Origin": ORIGIN}) as ws:
        await ws.send_str("before")
        assert (await ws.receive(timeout=5)).data == "echo: before"
        (directory / "orders.yaml").write_text(team_file(upstream.port, "/other"))
        assert await reloader.reload("test") is True
        await ws.send_str("after")
        assert (await ws.receive(timeout=5)).data == "echo: after"


async def test_reload_under_load_loses_no_request(live, upstream):
    """Requests in a loop while the config is rewritten repeatedly: every one is answered 200."""
    client, directory, reloader = live
    statuses: list[int] = []

    async def worker() -> None:
        for _ in range(60):
            statuses.append(await status(client, "/api/x"))

    workers = [asyncio.create_task(worker()) for _ in range(8)]
    for n in range(10):
        origin_list = f"{ORIGIN}, http://localhost:{4000 + n}"
        (directory / "orders.yaml").write_text(team_file(upstream.port, origin=origin_list))
        assert await reloader.reload(f"edit {n}") is True
    await asyncio.wait_for(asyncio.gather(*workers), 60)
    assert len(statuses) == 480 and set(statuses) == {200}


def test_changes_reports_added_removed_changed(tmp_path):
    """The reload log's diff names the added, removed and changed prefixes."""
    a = tmp_path / "a.yaml"
    a.write_text(team_file(1, "/api") + "  - prefix: /old\n    upstream: http://127.0.0.1:1/\n")
    before = config_module.load(a)
    a.write_text(team_file(2, "/api") + "  - prefix: /new\n    upstream: http://127.0.0.1:1/\n")
    diff = changes(before, config_module.load(a))
    assert (diff.added, diff.removed, diff.changed) == (("/new",), ("/old",), ("/api",))


async def test_sighup_and_file_watch_reload_the_real_process(spawn, upstream, tmp_path):  # noqa: F811
    """The real `corsproxy serve` reloads on a file change and on SIGHUP, logging what changed."""
    directory = tmp_path / "config"
    directory.mkdir()
    (directory / "orders.yaml").write_text(team_file(upstream.port))
    proxy = await spawn("-c", str(directory), "--port", "0", "--log-format", "json")
    async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=5)) as session:
        async def answers(path: str, expected: int) -> bool:
            async with session.get(f"{proxy.url}{path}", headers={"Origin": ORIGIN}) as r:
                return r.status == expected

        (directory / "billing.yaml").write_text(team_file(upstream.port, "/billing"))
        await eventually(lambda: answers("/billing/x", 200))
        await proxy.stderr.until(b'"added": ["/billing"]')
        proxy.process.send_signal(signal.SIGHUP)
        await proxy.stderr.until(b'"trigger": "SIGHUP"')
    assert await proxy.stop() == 0


async def _is(client: TestClient, path: str, expected: int, origin: str = ORIGIN) -> bool:
    return await status(client, path, origin) == expected


def test_server_changed_only_when_the_server_block_does(tmp_path):
    """server_changed is about server: alone. A new team file (new defaults) or a route edit that
    moves the server block down the file does not set it; a real allowed_hosts edit does."""
    directory = tmp_path / "config"
    directory.mkdir()
    (directory / "00-server.yaml").write_text("server: {port: 8080}\n")
    (directory / "orders.yaml").write_text(team_file(1))
    before = config_module.load(directory)
    (directory / "billing.yaml").write_text(team_file(2, "/billing"))
    (directory / "00-server.yaml").write_text("# the proxy\nserver: {port: 8080}\n")
    diff = changes(before, config_module.load(directory))
    assert (diff.added, diff.server_changed, diff.defaults_changed, diff.listen) == (("/billing",), False, True, ())
    (directory / "00-server.yaml").write_text("server: {port: 8080, allowed_hosts: [localhost, devbox]}\n")
    diff = changes(before, config_module.load(directory))
    assert (diff.server_changed, diff.listen) == (True, ())
    (directory / "00-server.yaml").write_text("server: {port: 9090}\n")
    assert changes(before, config_module.load(directory)).listen == ("port",)


def server_file(port: int, upstream_port: int) -> str:
    return f"server: {{port: {port}}}\n" + team_file(upstream_port)


async def test_a_server_port_edit_moves_the_listener(spawn, upstream, tmp_path, unused_tcp_port_factory):
    """The real process: server.port edited in the file (no flag or variable overrides it) is
    applied, the listener moves to the new port, and the log says so; the old port is closed."""
    first, second = unused_tcp_port_factory(), unused_tcp_port_factory()
    path = tmp_path / "corsproxy.yaml"
    path.write_text(server_file(first, upstream.port))
    proxy = await spawn("-c", str(path), "--log-format", "json", env={"CORSPROXY_PORT": "", "CORSPROXY_HOST": ""})
    assert proxy.url == f"http://localhost:{first}"
    path.write_text(server_file(second, upstream.port))
    await proxy.stderr.until(f'"url": "http://localhost:{second}", "trigger": "reload"'.encode())
    async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=5)) as session:
        async with session.get(f"http://127.0.0.1:{second}/api/x", headers={"Origin": ORIGIN}) as r:
            assert r.status == 200
        with pytest.raises(aiohttp.ClientConnectorError):
            await session.get(f"http://127.0.0.1:{first}/api/x")
    assert await proxy.stop() == 0
    assert b"restart corsproxy" not in await proxy.stderr.finished()


async def test_a_port_overridden_by_the_environment_is_said_so(spawn, upstream, tmp_path, unused_tcp_port):
    """With $CORSPROXY_PORT set (as the Docker image sets its host), a server.port edit is logged as
    overridden, with what overrides it, and the proxy stays where it is; server_changed is true."""
    path = tmp_path / "corsproxy.yaml"
    path.write_text(server_file(8080, upstream.port))
    proxy = await spawn("-c", str(path), "--log-format", "json", env={"CORSPROXY_PORT": str(unused_tcp_port)})
    path.write_text(server_file(9999, upstream.port))
    reloaded = await proxy.stderr.until(b'"event": "config reloaded"')
    assert b'"server_changed": true' in reloaded.splitlines()[-1]
    line = await proxy.stderr.until(b"overrides it")
    assert f"server.port changed in the file, but $CORSPROXY_PORT={unused_tcp_port} overrides it".encode() in line
    async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=5)) as session:
        async with session.get(f"{proxy.url}/api/x", headers={"Origin": ORIGIN}) as r:
            assert r.status == 200
    assert await proxy.stop() == 0


async def test_a_reload_replaces_the_cached_preflight_answers(live, upstream):
    """A preflight answered before a reload is judged again by the new policy, not from the old cache."""
    client, directory, _ = live
    asked = {"Origin": ORIGIN, "Access-Control-Request-Method": "PUT"}

    async def put_allowed() -> bool:
        async with client.options("/api/x", headers=asked) as r:
            return "PUT" in r.headers.get("Access-Control-Allow-Methods", "")

    assert await put_allowed() and await put_allowed()   # the second one from the cache
    (directory / "orders.yaml").write_text(team_file(upstream.port).replace(
        "cors:\n", "cors:\n  allow_methods: [GET]\n"))
    await eventually(lambda: _not(put_allowed))


async def _not(check) -> bool:
    return not await check()

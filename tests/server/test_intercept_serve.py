"""Intercept in the running proxy: the banner line, JSON mode, and hot reload of the block."""

from __future__ import annotations

import asyncio
import json
import re

import pytest

from corsproxy import config as config_module
from corsproxy.server.app import STATE
from corsproxy.server.reload import ConfigSource, Reloader
from tests.intercept_env import (
    LISTED_PATH,
    PAGE_ORIGIN,
    THIRD_PARTY,
    intercept_yaml,
    open_tls_tunnel,
    proxied_session,
    raw_exchange,
    start_proxy,
    start_third_party,
    tunnel_request,
)

URL = f"https://{THIRD_PARTY}{LISTED_PATH}"
LINE = re.compile(r"^corsproxy intercepting api\.thirdparty\.test on http://127\.0\.0\.1:(\d+) "
                  r"\(CA SPKI sha256: ([A-Za-z0-9+/]{43}=)\)$")


@pytest.fixture
async def party(tmp_path, aiohttp_server):
    return await start_third_party(tmp_path, aiohttp_server)


async def test_serve_prints_the_intercept_line_after_the_ready_line(spawn, tmp_path, party) -> None:
    """The line names the hosts, the listener's real port and the SPKI of the CA /ca.pem serves."""
    (tmp_path / "c.yaml").write_text(intercept_yaml(party))
    proxy = await spawn("serve", "-c", str(tmp_path / "c.yaml"), "--port", "0")
    line = (await proxy.stdout.until(b"\n", 15)).decode().strip()
    match = LINE.match(line)
    assert match, line
    from corsproxy.commands.browser import fetch_spki
    assert fetch_spki(f"http://127.0.0.1:{match[1]}") == match[2]


async def test_json_mode_prints_an_intercepting_event(spawn, tmp_path, party) -> None:
    """With --log-format json the intercept line is a JSON `intercepting` event with url, hosts, spki."""
    (tmp_path / "c.yaml").write_text(intercept_yaml(party))
    proxy = await spawn("serve", "-c", str(tmp_path / "c.yaml"), "--port", "0", "--log-format", "json")
    event = json.loads((await proxy.stdout.until(b"\n", 15)).decode())
    assert event["event"] == "intercepting"
    assert event["hosts"] == [THIRD_PARTY]
    assert event["url"].startswith("http://127.0.0.1:") and len(event["spki"]) == 44


async def reload_with(proxy, config_file, text: str) -> None:
    config_file.write_text(text)
    source = ConfigSource.at(config_file, lambda: config_module.load(config_file))
    assert await Reloader(proxy.app[STATE], source).reload("test")


async def get(proxy, session, origin=PAGE_ORIGIN):
    async with session.get(URL, proxy=proxy.url, ssl=proxy.client_context(),
                           headers={"Origin": origin}) as response:
        await response.read()
        return response.status


async def test_reload_applies_a_policy_change_to_an_open_tunnel(tmp_path, party) -> None:
    """A new allow_origins applies to the next request, even on a keep-alive tunnel."""
    config_file = tmp_path / "c.yaml"
    config_file.write_text(intercept_yaml(party))
    proxy = await start_proxy(config_file)
    try:
        reader, writer = await open_tls_tunnel(proxy)
        assert (await tunnel_request(reader, writer)).startswith(b"HTTP/1.1 200 ")
        spki = proxy.app[STATE].current.intercept.authority.spki
        await reload_with(proxy, config_file, intercept_yaml(party).replace(PAGE_ORIGIN, "http://localhost:5173"))
        assert (await tunnel_request(reader, writer)).startswith(b"HTTP/1.1 403 ")
        writer.close()
        assert proxy.app[STATE].current.intercept.authority.spki == spki  # same hosts: same CA
    finally:
        await proxy.stop()


async def test_reload_that_changes_the_hosts_makes_a_new_ephemeral_ca(tmp_path, party) -> None:
    """Adding a host changes the name constraints, so the ephemeral CA is made anew for both."""
    config_file = tmp_path / "c.yaml"
    config_file.write_text(intercept_yaml(party))
    proxy = await start_proxy(config_file)
    try:
        before = proxy.app[STATE].current.intercept.authority
        await reload_with(proxy, config_file, intercept_yaml(party, "    - host: second.thirdparty.test\n"))
        after = proxy.app[STATE].current.intercept.authority
        assert after.spki != before.spki
        from corsproxy.server.ca import permitted_names
        assert permitted_names(after.cert) == ("api.thirdparty.test", "second.thirdparty.test")
        async with proxied_session() as session:
            assert await get(proxy, session) == 200  # the new CA signs the leaves from now on
    finally:
        await proxy.stop()


async def test_a_host_removed_by_reload_is_no_longer_tunnelled(tmp_path, party) -> None:
    """After a reload drops a host, its open tunnel answers 403 and closes; a new CONNECT is 403."""
    config_file = tmp_path / "c.yaml"
    config_file.write_text(intercept_yaml(party, "    - host: second.thirdparty.test\n"))
    proxy = await start_proxy(config_file)
    try:
        reader, writer = await open_tls_tunnel(proxy)
        assert (await tunnel_request(reader, writer)).startswith(b"HTTP/1.1 200 ")
        text = intercept_yaml(party).replace(f"host: {THIRD_PARTY}", "host: second.thirdparty.test")
        await reload_with(proxy, config_file, text)
        head = await tunnel_request(reader, writer)
        assert head.startswith(b"HTTP/1.1 403 ") and b"Connection: close" in head
        assert await asyncio.wait_for(reader.read(), 5) == b""
        writer.close()
        answer = await raw_exchange(proxy.listen_port, f"CONNECT {THIRD_PARTY}:443 HTTP/1.1\r\n\r\n".encode())
        assert answer.startswith(b"HTTP/1.1 403 ")
    finally:
        await proxy.stop()

"""Transparent forwarding as real Chromium sees it (issue #11): cookies, redirects, WebSocket
messages and close codes, and streams, from real upstreams nobody here wrote (httpbin on
gunicorn, a `websockets` server, sse-starlette on uvicorn), through the real `corsproxy serve`,
side by side with the same call made directly where a browser can make it.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator
from dataclasses import dataclass
from urllib.parse import quote

import pytest
import pytest_asyncio

from tests.browser.apps import Site, make_page, start_site
from tests.browser.conftest import ProxyProcess, start_proxy
from tests.real_upstreams import (
    BIG_MESSAGE,
    SseServer,
    WsServer,
    proxy_config,
    running_sse,
    start_websockets_server,
)

pytestmark = [pytest.mark.browser, pytest.mark.asyncio(loop_scope="module")]

WAIT_MS = 10_000
@dataclass
class Stage:
    page: Site
    proxy: ProxyProcess
    httpbin: str
    ws: WsServer
    sse: SseServer


@pytest_asyncio.fixture(scope="module", loop_scope="module")
async def stage(httpbin, tmp_path_factory) -> AsyncIterator[Stage]:
    tmp = tmp_path_factory.mktemp("transparent")
    ws, ws_running = await start_websockets_server()
    page = await start_site(make_page())
    try:
        async with running_sse() as sse:
            config = tmp / "corsproxy.yaml"
            config.write_text(proxy_config(page.url, httpbin, ws.url, sse.url))
            proxy = await start_proxy(config, tmp / "proxy.log")
            try:
                yield Stage(page, proxy, httpbin, ws, sse)
            finally:
                assert await proxy.stop() == 0
    finally:
        await page.stop()
        ws_running.close()
        await ws_running.wait_closed()


async def open_page(context, stage: Stage):
    page = await context.new_page()
    await page.goto(stage.page.url + "/")
    return page


async def body_json(page) -> dict:
    return json.loads(await page.inner_text("body"))


# --- cookies (items 8 and "cookies stored by Chromium") -------------------------------------

async def test_a_cookie_with_a_path_comes_back_inside_the_route(stage, context):
    """Set-Cookie Path=/cookies from httpbin: Chromium sends it back on /api/cookies, as on /cookies direct."""
    cookie = quote("flavour=choc; Path=/cookies")
    seen = {}
    for name, base in (("direct", stage.httpbin), ("proxy", stage.proxy.url + "/api")):
        page = await context.new_page()
        await page.goto(f"{base}/response-headers?Set-Cookie={cookie}")
        await page.goto(f"{base}/cookies")
        seen[name] = (await body_json(page))["cookies"]
    assert seen == {"direct": {"flavour": "choc"}, "proxy": {"flavour": "choc"}}


FETCH_JSON = """async ([url, init]) => {
  const res = await fetch(url, {credentials: "include", cache: "no-store", ...init});
  return {status: res.status, url: res.url, redirected: res.redirected, body: await res.text()};
}"""


async def test_cookies_set_by_httpbin_are_sent_by_a_page_through_the_proxy(stage, context):
    """A page's credentialed fetch stores httpbin's cookies (/cookies/set) and sends them back."""
    page = await open_page(context, stage)
    base = stage.proxy.url + "/api"
    await page.evaluate(FETCH_JSON, [f"{base}/cookies/set?team=blue", {}])
    await page.evaluate(FETCH_JSON, [f"{base}/response-headers?Set-Cookie={quote('scoped=1; Path=/cookies')}", {}])
    answer = await page.evaluate(FETCH_JSON, [f"{base}/cookies", {}])
    assert answer["status"] == 200
    assert json.loads(answer["body"])["cookies"] == {"team": "blue", "scoped": "1"}


# --- redirects (item 9 and "redirects rewritten with the prefix") ---------------------------

@pytest.mark.parametrize(("route", "path"), [
    ("/host-kept", "/absolute-redirect/2"),        # built from the Host the page sent (item 9)
    ("/api", "/absolute-redirect/2"),
    ("/api", "/redirect/3"),
    ("/api", "/redirect-to?url=/get"),
])
async def test_a_page_follows_httpbins_redirects_to_the_same_resource(stage, context, route, path):
    """fetch() follows httpbin's redirects through the proxy to /get inside the route, as direct to /get."""
    page = await open_page(context, stage)
    direct = await page.evaluate(FETCH_JSON, [stage.httpbin + path, {}])
    proxied = await page.evaluate(FETCH_JSON, [stage.proxy.url + route + path, {}])
    assert (direct["status"], direct["url"], direct["redirected"]) == (200, stage.httpbin + "/get", True)
    assert (proxied["status"], proxied["url"], proxied["redirected"]) == (200, stage.proxy.url + route + "/get", True)


# --- WebSockets (items 1 and 2, "subprotocols and ordering") --------------------------------

WS_CLOSE = """(url) => new Promise((resolve) => {
  const ws = new WebSocket(url);
  const timer = setTimeout(() => resolve({error: "timeout"}), 10000);
  ws.onclose = (e) => { clearTimeout(timer); resolve({code: e.code, reason: e.reason, clean: e.wasClean}); };
})"""

WS_CLIENT_CLOSE = """(url) => new Promise((resolve) => {
  const ws = new WebSocket(url);
  const timer = setTimeout(() => resolve({error: "timeout"}), 10000);
  ws.onopen = () => ws.send("hello");
  ws.onmessage = () => ws.close(4002, "later");
  ws.onclose = (e) => { clearTimeout(timer); resolve({code: e.code, reason: e.reason}); };
})"""

WS_SIZES = """([url, send]) => new Promise((resolve) => {
  const ws = new WebSocket(url);
  ws.binaryType = "arraybuffer";
  const timer = setTimeout(() => resolve({error: "timeout"}), 10000);
  ws.onopen = () => { if (send) ws.send(new Uint8Array(send).fill(7)); };
  ws.onmessage = (e) => { clearTimeout(timer); resolve({size: e.data.byteLength, protocol: ws.protocol}); ws.close(); };
  ws.onclose = (e) => { clearTimeout(timer); resolve({closed: e.code}); };
})"""

WS_ORDER = """(url) => new Promise((resolve) => {
  const ws = new WebSocket(url, ["chat", "chat.v2"]);
  const got = [];
  const timer = setTimeout(() => resolve({error: "timeout", got}), 10000);
  ws.onmessage = (e) => { got.push(e.data); if (got.length === 300) { clearTimeout(timer); ws.close(); resolve({got, protocol: ws.protocol}); } };
})"""


def ws_bases(stage: Stage) -> dict[str, str]:
    return {"direct": stage.ws.url, "proxy": stage.proxy.url.replace("http", "ws", 1) + "/ws"}


async def test_the_page_sees_the_upstreams_close_code_and_reason(stage, context):
    """The upstream's close 4001 "bye" reaches the page as 4001 "bye", as direct."""
    page = await open_page(context, stage)
    seen = {name: await page.evaluate(WS_CLOSE, base + "/close") for name, base in ws_bases(stage).items()}
    assert seen["direct"] == seen["proxy"] == {"code": 4001, "reason": "bye", "clean": True}


async def test_the_upstream_sees_the_pages_close_code_and_reason(stage, context):
    """The page's close 4002 "later" reaches the upstream as 4002 "later", as direct."""
    page = await open_page(context, stage)
    for name, base in ws_bases(stage).items():
        stage.ws.closes.clear()
        stage.ws.closed.clear()
        assert await page.evaluate(WS_CLIENT_CLOSE, base + "/echo") == {"code": 4002, "reason": "later"}
        await asyncio.wait_for(stage.ws.closed.wait(), WAIT_MS / 1000)
        assert stage.ws.closes == [(4002, "later")], name


async def test_the_page_exchanges_messages_of_several_mib(stage, context):
    """A 6 MiB message from the upstream and a 5 MiB echo of the page's reach the page, as direct."""
    page = await open_page(context, stage)
    for name, base in ws_bases(stage).items():
        assert await page.evaluate(WS_SIZES, [base + "/big", 0]) == {"size": BIG_MESSAGE, "protocol": ""}, name
        assert await page.evaluate(WS_SIZES, [base + "/echo", 5 * 1024 * 1024]) == \
            {"size": 5 * 1024 * 1024, "protocol": ""}, name


async def test_subprotocol_and_order_as_direct(stage, context):
    """The page gets the subprotocol the upstream chose and 300 messages in order, as direct."""
    page = await open_page(context, stage)
    seen = {name: await page.evaluate(WS_ORDER, base + "/order/300") for name, base in ws_bases(stage).items()}
    assert seen["direct"] == seen["proxy"] == {"got": [str(n) for n in range(300)], "protocol": "chat.v2"}


# --- streaming ------------------------------------------------------------------------------

async def test_sse_starlette_events_reach_the_page_one_by_one(stage, context):
    """EventSource through the proxy: each sse-starlette event is shown before the next is sent."""
    page = await open_page(context, stage)
    stage.sse.sent.clear()
    await page.evaluate("url => sseStart(url)", stage.proxy.url + "/sse/events")
    try:
        for n in range(3):
            if n:
                stage.sse.go.put_nowait(n)
            await page.wait_for_function(f"window.sse.events.length >= {n + 1} || window.sse.errors > 0",
                                         timeout=WAIT_MS)
            assert await page.evaluate("window.sse.events") == [f"event {i}" for i in range(n + 1)]
            assert stage.sse.sent == [f"event {i}" for i in range(n + 1)]
    finally:
        await page.evaluate("sse.close()")


async def test_a_drip_reaches_the_page_as_it_drips(stage, context):
    """httpbin /drip read by the page's stream reader arrives in several reads, as direct."""
    page = await open_page(context, stage)
    reads = await page.evaluate("""async (url) => {
      const res = await fetch(url, {cache: "no-store"});
      const reader = res.body.getReader();
      const reads = [];
      for (;;) { const {done, value} = await reader.read(); if (done) break; reads.push(value.length); }
      return reads;
    }""", stage.proxy.url + "/api/drip?duration=1.5&numbytes=4&delay=0&code=200")
    assert sum(reads) == 4 and len(reads) >= 3, reads

"""The inspector in real Chromium: an app page makes five kinds of request through the proxy, and a
second tab on /__corsproxy/ shows each within a second with its decision, reason, fix and the
upstream's own verdict. Another origin cannot read the events.

Set SCREENSHOTS_DIR to save the inspector's screenshot (docs/inspector.png is made so:
`SCREENSHOTS_DIR=docs python -m pytest tests/browser/test_inspector.py`).
"""

from __future__ import annotations

import os
from pathlib import Path

import aiohttp
import pytest

from tests.browser.conftest import start_proxy

pytestmark = [pytest.mark.browser, pytest.mark.asyncio(loop_scope="module")]

SHOWN_WITHIN_MS = 1_000      # the issue: each request shows in the inspector within a second
VIEWPORT = {"width": 1400, "height": 1000}


def step(path: str, method: str = "GET", headers: dict | None = None, body: str | None = None) -> dict:
    return {"path": path, "method": method, "headers": headers or {}, "credentials": "include",
            "body": body, "read_header": None}


async def call(page, base: str, request: dict) -> dict:
    return await page.evaluate("([base, step]) => corsFetch(base, step)", [base, request])


async def shown(inspector, decision: str, path: str, method: str):
    """The inspector row for this request, waited for (bounded) by its DOM state."""
    selector = f'#rows tr[data-decision="{decision}"]:not(.preflight):has(td.path:text-is("{path}"))'
    row = inspector.locator(selector).filter(has=inspector.locator(f'td:text-is("{method}")')).first
    await row.wait_for(state="visible", timeout=SHOWN_WITHIN_MS)
    return row


async def detail_of(inspector, row) -> str:
    await row.click()
    await inspector.locator("#detail:not([hidden]) #detail-upstream").wait_for(timeout=SHOWN_WITHIN_MS)
    return await inspector.inner_text("#detail")


async def test_inspector_shows_each_request_with_its_decision_and_fix(world, context):
    """Allowed GET, preflighted POST, refused origin, unlisted header, stopped upstream: each
    appears in the inspector tab within a second, with decision, reason, fix and the
    upstream's verdict."""
    proxy = world.proxy.url
    inspector = await context.new_page()
    await inspector.set_viewport_size(VIEWPORT)
    await inspector.goto(proxy + "/__corsproxy/")
    await inspector.wait_for_selector('#status[data-state="live"]', timeout=5_000)
    app = await context.new_page()
    await app.goto(world.allowed_page.url + "/")
    foreign = await context.new_page()
    await foreign.goto(world.foreign_page.url + "/")

    # 1. An allowed GET: forwarded; the upstream itself sends no CORS headers.
    assert (await call(app, proxy, step("/api/items")))["readable"]
    row = await shown(inspector, "cors", "/api/items", "GET")
    assert await row.locator("td.status").inner_text() == "200"
    text = await detail_of(inspector, row)
    assert "Without corsproxy a browser would block this page from reading the response" in text
    assert "the response has no Access-Control-Allow-Origin header" in text
    assert f"Access-Control-Allow-Origin: {world.allowed_page.url}" in text   # the server-side fix
    assert "cookies sent: no" in text

    # 2. A preflighted POST: the preflight shows right under its actual request.
    result = await call(app, proxy, step("/api/echo", "POST", {"Content-Type": "application/json"}, '{"a": 1}'))
    assert result["readable"] and result["status"] == 200
    row = await shown(inspector, "cors", "/api/echo", "POST")
    following = row.locator("xpath=following-sibling::tr[1]")
    assert await following.get_attribute("class") == "preflight preflight"
    assert await following.locator("td").nth(1).inner_text() == "OPTIONS"
    text = await detail_of(inspector, row)
    assert "corsproxy answered it itself" in text

    # 3. A page on a refused origin: 403, the reason and the allow_origins line to change.
    assert not (await call(foreign, proxy, step("/api/items")))["readable"]
    row = await shown(inspector, "refused", "/api/items", "GET")
    text = await detail_of(inspector, row)
    assert f"origin '{world.foreign_page.url}' is not in allow_origins" in text
    assert "cors.allow_origins at " in text
    assert f"allow_origins: [{world.allowed_page.url}, {world.foreign_page.url}]" in text
    assert "nothing was forwarded" in text

    # 4. A header the route does not allow: the preflight is refused, naming it and allow_headers.
    assert not (await call(app, proxy, step("/api/items", headers={"X-Trace": "1"})))["readable"]
    row = inspector.locator('#rows tr[data-decision="refused"]:has(td:text-is("OPTIONS"))').first
    await row.wait_for(state="visible", timeout=SHOWN_WITHIN_MS)
    text = await detail_of(inspector, row)
    assert "header 'x-trace' is not in allow_headers" in text
    assert "allow_headers: [authorization, content-type, x-trace]" in text
    assert "Access-Control-Request-Headers" in text

    # 5. An upstream that was stopped: 502, and the fix names the route's upstream.
    result = await call(app, proxy, step("/down/items"))
    assert result["readable"] and result["status"] == 502
    row = await shown(inspector, "upstream-error", "/down/items", "GET")
    text = await detail_of(inspector, row)
    assert "nothing answers at http://127.0.0.1:" in text and "upstream at " in text

    # 6. A login through the proxy reached as 127.0.0.1 from a localhost page: two sites, so the
    #    browser drops the session cookie, and the detail view says so.
    by_ip = proxy.replace("localhost", "127.0.0.1")
    assert (await call(app, by_ip, step("/api/login", "POST")))["readable"]
    row = await shown(inspector, "cors", "/api/login", "POST")
    text = await detail_of(inspector, row)
    assert "the browser will drop the cookie 'session': the page" in text and "are different sites" in text

    # The filters: only refusals hides the allowed ones; the path search narrows to one path.
    await inspector.check("#only-refusals")
    decisions = await inspector.locator("#rows tr:not(.preflight)").evaluate_all(
        "rows => rows.map(r => r.dataset.decision)")
    assert decisions and set(decisions) <= {"refused", "rejected", "upstream-error"}
    await inspector.uncheck("#only-refusals")
    await inspector.fill("#path-filter", "/down")
    paths = await inspector.locator("#rows td.path").all_inner_texts()
    assert paths == ["/down/items"]
    await inspector.fill("#path-filter", "")

    if os.environ.get("SCREENSHOTS_DIR"):
        row = await shown(inspector, "cors", "/api/items", "GET")
        await detail_of(inspector, row)
        target = Path(os.environ["SCREENSHOTS_DIR"])
        target.mkdir(parents=True, exist_ok=True)
        await inspector.screenshot(path=str(target / "inspector.png"))

    # Clear empties the list, and new requests appear again.
    await inspector.click("#clear")
    await inspector.locator("#rows tr").first.wait_for(state="detached", timeout=SHOWN_WITHIN_MS)
    await call(app, proxy, step("/api/items"))
    await shown(inspector, "cors", "/api/items", "GET")


async def test_another_origin_cannot_read_the_events(world, context):
    """A page on another origin (even one the routes allow) cannot read /__corsproxy/events or
    the page: the fetch fails in Chromium. A foreign Host is refused."""
    for site in (world.foreign_page, world.allowed_page):
        page = await context.new_page()
        await page.goto(site.url + "/")
        for path in ("/__corsproxy/events", "/__corsproxy/"):
            result = await call(page, world.proxy.url, step(path))
            assert result["readable"] is False and result["error"] == "TypeError", (site.url, path, result)
        await page.close()
    async with aiohttp.ClientSession() as session:
        async with session.get(world.proxy.url + "/__corsproxy/events",
                               headers={"Host": "evil.example"}) as response:
            assert response.status == 403


async def test_the_page_says_when_the_inspector_is_off(context, tmp_path):
    """With server.inspector_size: 0 the page says the inspector is off and names the line."""
    config = tmp_path / "off.yaml"
    config.write_text("server:\n  inspector_size: 0\nroutes:\n  - prefix: /api\n    upstream: http://127.0.0.1:9\n")
    proxy = await start_proxy(config, tmp_path / "off.log")
    try:
        page = await context.new_page()
        await page.goto(proxy.url + "/__corsproxy/")
        notice = page.locator("#off:not([hidden])")
        await notice.wait_for(timeout=5_000)
        assert "The inspector is off: server.inspector_size is 0" in await notice.inner_text()
        assert f"{config}:1" in await notice.inner_text()
    finally:
        assert await proxy.stop() == 0

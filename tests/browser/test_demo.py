"""`corsproxy demo` in real Chromium: the direct call is blocked, the call through the proxy works."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from tests.demo_process import start_demo

pytestmark = [pytest.mark.browser, pytest.mark.asyncio(loop_scope="module")]

VIEWPORT = {"width": 1180, "height": 740}


async def test_demo_page_shows_the_problem_and_the_fix(browser, tmp_path):
    """Both buttons: the direct call is explained as a CORS block, the proxied call shows the
    data and the headers corsproxy added; a screenshot goes to $SCREENSHOTS_DIR when set."""
    demo = await start_demo("--port", "0", "--api-port", "0", "--page-port", "0", log=tmp_path / "demo.log")
    context = await browser.new_context(viewport=VIEWPORT)
    try:
        assert demo.page.startswith("http://localhost:")
        page_origin = demo.page.rstrip("/")
        page = await context.new_page()
        console: list[str] = []
        page.on("console", lambda message: console.append(message.text))
        await page.goto(demo.page)

        await page.click("#direct")
        await page.wait_for_selector('#direct-result[data-state="blocked"]', timeout=15_000)
        direct = await page.inner_text("#direct-result")
        assert "Blocked by the browser (CORS)" in direct
        assert "The API did receive the request and answered 200" in direct
        assert f"no Access-Control-Allow-Origin header naming this page's origin ({page_origin})" in direct
        assert "TypeError: Failed to fetch" in direct

        await page.click("#via-proxy")
        await page.wait_for_selector('#proxy-result[data-state="ok"]', timeout=15_000)
        proxied = await page.inner_text("#proxy-result")
        assert "It works: 200" in proxied
        assert "Espresso beans, 1 kg" in proxied
        assert f"access-control-allow-origin: {page_origin}" in proxied
        assert "x-request-id: demo-" in proxied
        assert "vary: Origin" in proxied
        # Only the CORS error the demo is about, no 404 (a favicon) beside it.
        assert not [text for text in console if "status of 404" in text], console

        if os.environ.get("SCREENSHOTS_DIR"):
            target = Path(os.environ["SCREENSHOTS_DIR"])
            target.mkdir(parents=True, exist_ok=True)
            await page.screenshot(path=str(target / "demo.png"), full_page=True)
    finally:
        await context.close()
        assert await demo.stop() == 0


async def test_demo_page_opened_as_127_0_0_1_works_too(browser, tmp_path):
    """Opened under the other loopback name, the page calls the proxy under that name, which
    the demo's config also allows: the proxied call still works."""
    demo = await start_demo("--port", "0", "--api-port", "0", "--page-port", "0", log=tmp_path / "demo.log")
    context = await browser.new_context()
    try:
        page = await context.new_page()
        await page.goto(demo.page.replace("localhost", "127.0.0.1"))
        await page.click("#via-proxy")
        await page.wait_for_selector('#proxy-result[data-state="ok"]', timeout=15_000)
        assert "access-control-allow-origin: http://127.0.0.1:" in await page.inner_text("#proxy-result")
    finally:
        await context.close()
        assert await demo.stop() == 0

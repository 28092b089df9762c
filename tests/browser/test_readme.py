"""README's first-hour examples, exactly as written, in real Chromium: the Vite example's YAML,
its fetch() snippet, the one-liner and the quick start, for a JSON POST with Authorization (and
credentials: "include") from a page on http://localhost:5173.

The blocks are read from README.md between their markers, so README and this test cannot drift.
Only what a reader must replace anyway is swapped: the placeholder upstream
(https://api.example.com/v1) for a loopback API, and the proxy's port 8080 for a free one. The
page's origin is the README's own: Chromium serves http://localhost:5173 from the test (a
Playwright route), so no real server has to own that port.
"""

from __future__ import annotations

import re
import shlex
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
import pytest_asyncio
from aiohttp import web

from tests.browser.apps import start_site
from tests.browser.conftest import start_cli

pytestmark = [pytest.mark.browser, pytest.mark.asyncio(loop_scope="module")]

README = Path(__file__).resolve().parents[2] / "README.md"
PAGE_ORIGIN = "http://localhost:5173"
PLACEHOLDER_UPSTREAM = "https://api.example.com/v1"
PLACEHOLDER_PROXY = "http://localhost:8080"
TOKEN = "t0ken-from-the-page"
SEEN = web.AppKey("seen", list)


def readme_block(name: str) -> str:
    """The fenced code between <!-- name --> and <!-- /name --> in README.md."""
    text = README.read_text()
    match = re.search(rf"<!-- {name} -->\n```\w*\n(.*?)```\n<!-- /{name} -->", text, re.S)
    assert match, f"README.md has no ```block``` between <!-- {name} --> markers"
    return match.group(1)


async def api(request: web.Request) -> web.Response:
    """The user's API: no CORS headers at all; it echoes what it got and sets a session cookie."""
    request.app[SEEN].append({"method": request.method, "path": request.path,
                              "authorization": request.headers.get("Authorization"),
                              "content_type": request.headers.get("Content-Type"),
                              "body": await request.text()})
    response = web.json_response({"ok": True})
    response.set_cookie("session", "s1", path="/", httponly=True)
    return response


@pytest_asyncio.fixture(scope="module", loop_scope="module")
async def upstream() -> AsyncIterator:
    app = web.Application()
    app[SEEN] = []
    app.router.add_route("*", "/{tail:.*}", api)
    site = await start_site(app)
    yield site
    await site.stop()


def command(block: str, upstream_url: str) -> list[str]:
    """A README command line as argv for `python -m corsproxy`, on the test's upstream and a free port."""
    argv = shlex.split(block.strip())
    assert Path(argv[0]).name == "corsproxy", argv
    return [arg.replace(PLACEHOLDER_UPSTREAM, upstream_url) for arg in argv[1:]] + ["--port", "0"]


async def run_snippet(context, proxy_url: str, snippet: str) -> dict:
    """Open http://localhost:5173 (served by the test) and run the README's fetch() there."""
    async def page_document(route) -> None:
        await route.fulfill(status=200, content_type="text/html", body="<!doctype html><title>app</title>")

    await context.route(f"{PAGE_ORIGIN}/**", page_document)
    # A document Playwright serves has no IP address, so Chromium counts it as public and its
    # Local Network Access check would block the call to the loopback proxy; a real dev server
    # on localhost is in the loopback address space and needs no such permission.
    await context.grant_permissions(["local-network-access"], origin=PAGE_ORIGIN)
    page = await context.new_page()
    await page.goto(PAGE_ORIGIN + "/")
    code = snippet.replace(PLACEHOLDER_PROXY, proxy_url)
    return await page.evaluate(f"""async () => {{
      const token = {TOKEN!r};
      try {{
        {code}
        return {{readable: true, status: res.status, body: await res.text()}};
      }} catch (e) {{ return {{readable: false, error: String(e)}}; }}
    }}""")


async def judge(context, upstream, proxy, snippet: str, credentials: bool) -> None:
    upstream.app[SEEN].clear()
    try:
        result = await run_snippet(context, proxy.url, snippet)
    finally:
        assert await proxy.stop() == 0
    assert result == {"readable": True, "status": 200, "body": '{"ok": true}'}, \
        f"{result}\n{proxy.log.read_text()}"
    assert upstream.app[SEEN] == [{"method": "POST", "path": "/v1/orders", "authorization": f"Bearer {TOKEN}",
                                   "content_type": "application/json",
                                   "body": '{"item":"espresso","qty":2}'}]
    cookies = {cookie["name"] for cookie in await context.cookies(proxy.url)}
    assert ("session" in cookies) is credentials, cookies


async def test_vite_example_yaml_and_snippet(browser, context, upstream, tmp_path):
    """README's corsproxy.yaml and fetch() snippet: the JSON POST with Authorization and
    credentials: 'include' is read by the page, and the session cookie is kept."""
    config = tmp_path / "corsproxy.yaml"
    config.write_text(readme_block("vite-yaml").replace(PLACEHOLDER_UPSTREAM, upstream.url + "/v1"))
    proxy = await start_cli(["serve", "-c", str(config), "--port", "0"], tmp_path / "proxy.log")
    await judge(context, upstream, proxy, readme_block("vite-fetch"), credentials=True)


async def test_one_liner(browser, context, upstream, tmp_path):
    """README's `serve --upstream` one-liner with the same snippet."""
    argv = command(readme_block("one-liner"), upstream.url + "/v1")
    proxy = await start_cli(argv, tmp_path / "proxy.log")
    await judge(context, upstream, proxy, readme_block("vite-fetch"), credentials=True)


async def test_quick_start(browser, context, upstream, tmp_path):
    """README's quick start (no flags but the upstream): the same JSON POST with Authorization,
    without credentials as the quick start says (it needs --credentials for those)."""
    snippet = readme_block("vite-fetch")
    assert '  credentials: "include",\n' in snippet
    argv = command(readme_block("quick-start"), upstream.url + "/v1")
    proxy = await start_cli(argv, tmp_path / "proxy.log")
    await judge(context, upstream, proxy, snippet.replace('  credentials: "include",\n', ""), credentials=False)

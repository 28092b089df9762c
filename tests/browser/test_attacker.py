"""Real Chromium as the attacker (issue #16): pages on other origins try to spend the headers the
proxy injects, read another route's answers, or toss cookies onto the proxy's host.

The attacker's page is served on `http://attacker.test:<port>`, which Chromium's
`--host-resolver-rules` maps to loopback, so to the browser it is another site entirely; a
second page on another localhost port (same site, other origin) is not allowed either. Each
test asserts on what the upstream RECEIVED and on what the page's script could read.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import dataclass

import pytest
import pytest_asyncio
from aiohttp import web

from tests.browser.apps import Site, start_site
from tests.browser.conftest import (
    ProxyProcess,
    fresh_context,
    launched_chromium,
    start_proxy,
)

pytestmark = [pytest.mark.browser, pytest.mark.asyncio(loop_scope="module")]

ATTACKER_HOST = "attacker.test"
TOKEN = "Bearer s3cret-token"
RECEIVED = web.AppKey("received", list)
# 1x1 transparent GIF: an <img> fires `load` only for a real image.
GIF = bytes.fromhex("47494638396101000100800000000000ffffff21f90401000000002c00000000010001000002024401003b")

PROXY_CONFIG = """\
cors:
  allow_origins: [{allowed}]
routes:
  - prefix: /api
    upstream: http://127.0.0.1:{upstream}/v1
    request_headers: {{set: {{Authorization: "{token}"}}}}
  - prefix: /a                    # an upstream whose page turned hostile
    upstream: http://127.0.0.1:{upstream}/v1/a
  - prefix: /whole-app            # the same page, with the isolation opted out
    upstream: http://127.0.0.1:{upstream}/v1/a
    isolate: false
  - prefix: /b
    upstream: http://127.0.0.1:{upstream}/v1/b
    request_headers: {{set: {{Authorization: "{token}"}}}}
"""
# Served through /a: tries to read route B's answer (sent with B's token) as same-origin.
READ_ROUTE_B = """<!doctype html><title>loading</title><script>
fetch('/b/secret').then((r) => r.text()).then((t) => { document.title = 'read:' + t; },
                                              () => { document.title = 'blocked'; });
</script>"""


async def _record(request: web.Request, handler):
    request.app[RECEIVED].append((request.path, request.headers.get("Authorization")))
    return await handler(request)


async def jsonp(request: web.Request) -> web.Response:
    """A JSONP endpoint that answers with what it was sent: a <script> that loads it reads it."""
    body = f'{request.query.get("callback", "cb")}({{"authorization": "{request.headers.get("Authorization")}"}})'
    return web.Response(text=body, content_type="application/javascript")


async def pixel(request: web.Request) -> web.Response:
    return web.Response(body=GIF, content_type="image/gif")


async def blank(request: web.Request) -> web.Response:
    return web.Response(text="<!doctype html><title>page</title><body></body>", content_type="text/html")


async def hostile_page(request: web.Request) -> web.Response:
    return web.Response(text=READ_ROUTE_B, content_type="text/html")


async def secret(request: web.Request) -> web.Response:
    return web.json_response({"authorization": request.headers.get("Authorization")})


async def toss(request: web.Request) -> web.Response:
    """Sets one cookie for its own host and one for a domain it does not own."""
    response = web.Response(text="<!doctype html><title>tossed</title>", content_type="text/html")
    response.headers.add("Set-Cookie", "own=1; Domain=127.0.0.1; Path=/")
    response.headers.add("Set-Cookie", "tossed=1; Domain=other.example.com; Path=/")
    return response


def make_upstream() -> web.Application:
    app = web.Application(middlewares=[web.middleware(_record)])
    app[RECEIVED] = []
    app.router.add_get("/v1/jsonp", jsonp)
    app.router.add_get("/v1/pixel.gif", pixel)
    app.router.add_get("/v1/frame", blank)
    app.router.add_get("/v1/a/page.html", hostile_page)
    app.router.add_get("/v1/a/toss", toss)
    app.router.add_get("/v1/b/secret", secret)
    return app


def make_page() -> web.Application:
    app = web.Application()
    app.router.add_get("/", blank)
    return app


@dataclass
class Stage:
    upstream: Site
    allowed: Site       # http://localhost:<port>, in allow_origins
    other: Site         # http://localhost:<port>: same site, another origin, not allowed
    attacker: Site      # http://attacker.test:<port>
    proxy: ProxyProcess

    @property
    def received(self) -> list[tuple[str, str | None]]:
        return self.upstream.app[RECEIVED]


@pytest_asyncio.fixture(scope="module", loop_scope="module")
async def stage(tmp_path_factory) -> AsyncIterator[Stage]:
    tmp = tmp_path_factory.mktemp("attacker")
    sites = [await start_site(app) for app in (make_upstream(), make_page(), make_page(), make_page())]
    upstream, allowed, other, attacker = sites
    config = tmp / "corsproxy.yaml"
    config.write_text(PROXY_CONFIG.format(allowed=allowed.url, upstream=upstream.port, token=TOKEN))
    proxy = await start_proxy(config, tmp / "proxy.log")
    try:
        yield Stage(upstream, allowed, other, attacker, proxy)
    finally:
        code = await proxy.stop()
        for site in sites:
            await site.stop()
    assert code == 0


@pytest_asyncio.fixture(scope="module", loop_scope="module")
async def attacker_browser(tmp_path_factory) -> AsyncIterator:
    """Chromium that resolves attacker.test to loopback (and nothing else differently)."""
    async with launched_chromium(tmp_path_factory, f"--host-resolver-rules=MAP {ATTACKER_HOST} 127.0.0.1") as browser:
        yield browser


@pytest_asyncio.fixture(loop_scope="module")
async def context(attacker_browser) -> AsyncIterator:
    async with fresh_context(attacker_browser) as fresh:
        yield fresh


def page_url(stage: Stage, site: Site) -> str:
    return f"http://{ATTACKER_HOST}:{site.port}/" if site is stage.attacker else site.url + "/"


# Loads through the proxy that need no CORS: <script>, <img>, no-cors fetch and an <iframe>.
NO_CORS_LOADS = """async (base) => {
  const attach = (tag, src) => new Promise((done) => {
    const el = document.createElement(tag);
    el.onload = () => done('load'); el.onerror = () => done('error');
    el.src = src; document.body.appendChild(el);
  });
  window.steal = (data) => { window.stolen = data; };
  const loads = [attach('script', base + '/api/jsonp?callback=steal'),
                 attach('img', base + '/api/pixel.gif'), attach('iframe', base + '/api/frame')];
  let noCors;
  try { await fetch(base + '/api/pixel.gif?no-cors', {mode: 'no-cors'}); noCors = 'sent'; }
  catch (e) { noCors = 'error'; }
  const [script, img, frame] = await Promise.all(loads);
  return {script, img, frame, noCors, stolen: window.stolen === undefined ? null : window.stolen};
}"""


@pytest.mark.parametrize("who", ["attacker", "other"])
async def test_foreign_page_loads_never_reach_the_upstream(stage, context, who) -> None:
    """<script>, <img>, no-cors fetch and <iframe> from a page that is not allowed are refused by
    the proxy: the upstream sees none of them and the JSONP answer is never read."""
    stage.received.clear()
    page = await context.new_page()
    await page.goto(page_url(stage, getattr(stage, who)))
    result = await page.evaluate(NO_CORS_LOADS, stage.proxy.url)
    assert result["stolen"] is None
    assert result["img"] == "error"
    assert stage.received == []


async def test_allowed_page_no_cors_loads_still_work(stage, context) -> None:
    """The allowed page's <img> and <script> loads are forwarded (its Referer is allowed)."""
    stage.received.clear()
    page = await context.new_page()
    await page.goto(page_url(stage, stage.allowed))
    result = await page.evaluate(NO_CORS_LOADS, stage.proxy.url)
    assert result["img"] == "load"
    assert result["stolen"] == {"authorization": TOKEN}
    assert ("/v1/pixel.gif", TOKEN) in stage.received


# --- 2. a document served through one route cannot act as the proxy against another ----------


async def _title_after_script(context, url: str) -> str:
    page = await context.new_page()
    await page.goto(url)
    await page.wait_for_function("document.title !== 'loading'")
    return await page.title()


async def test_page_of_one_route_cannot_read_another_route(stage, context) -> None:
    """A hostile page served through /a cannot fetch('/b/secret'): its document is sandboxed to
    an opaque origin, the proxy refuses the request, and B's upstream never sees it."""
    stage.received.clear()
    assert await _title_after_script(context, stage.proxy.url + "/a/page.html") == "blocked"
    assert [path for path, _ in stage.received] == ["/v1/a/page.html"]


async def test_isolate_false_lets_a_whole_app_call_its_routes(stage, context) -> None:
    """With `isolate: false` the route's pages run on the proxy's origin and can call /b."""
    stage.received.clear()
    title = await _title_after_script(context, stage.proxy.url + "/whole-app/page.html")
    assert title == 'read:{"authorization": "%s"}' % TOKEN
    assert ("/v1/b/secret", TOKEN) in stage.received


# --- 3. an upstream cannot toss cookies onto localhost -------------------------------------


async def test_cookie_for_a_foreign_domain_never_lands_on_localhost(stage, context) -> None:
    """Chromium keeps the upstream's cookie for its own host (Domain stripped) and never gets
    the one it set for another domain, which would otherwise land on localhost for every port."""
    page = await context.new_page()
    await page.goto(stage.proxy.url + "/a/toss")
    assert await page.title() == "tossed"
    cookies = {cookie["name"]: cookie["domain"] for cookie in await context.cookies()}
    assert cookies == {"own": "localhost"}

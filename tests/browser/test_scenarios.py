"""Real Chromium is the judge: every scenario of scenarios.py, played from a page's JavaScript.

A response counts as readable only when the page's script could read it. Each through-proxy
scenario runs twice: against a proxy that allows the page (it must work) and against the same
routes with no origin allowed (it must fail, and nothing may reach the upstream).
"""

from __future__ import annotations

import json

import pytest

from corsproxy.judge.cookies import CookieContext, judge_set_cookie

from tests.browser.apps import SSE_GO, SSE_SENT
from tests.browser.scenarios import (
    ALLOWED,
    CHROMIUM_RULES,
    CONTROL,
    EVENTSOURCE,
    FETCH,
    FOREIGN,
    FROM_FOREIGN_PAGE,
    PROXY,
    PROXY_BY_IP,
    SESSION_COOKIE,
    THROUGH_PROXY,
    UPSTREAM,
    WEBSOCKET,
    WS_MESSAGE,
    Expect,
    Scenario,
    blocked,
)

pytestmark = [pytest.mark.browser, pytest.mark.asyncio(loop_scope="module")]

EVENT_WAIT_MS = 10_000


async def open_page(context, site):
    page = await context.new_page()
    await page.goto(site.url + "/")
    return page


async def play(world, context, scenario: Scenario, proxy) -> list[dict]:
    """Run the scenario in the browser; return what the page could read, one result per step."""
    if scenario.setup:
        page = await open_page(context, world.allowed_page)
        await page.evaluate("([base, steps]) => corsSteps(base, steps)",
                            [world.proxy.url, [step.as_js() for step in scenario.setup]])
    world.reset()  # the judged steps start from an empty upstream record
    page = await open_page(context, world.allowed_page if scenario.page == ALLOWED else world.foreign_page)
    base = {PROXY: proxy.url, PROXY_BY_IP: proxy.url.replace("localhost", "127.0.0.1"),
            UPSTREAM: world.upstream.url}[scenario.target]
    if scenario.kind == FETCH:
        return await page.evaluate("([base, steps]) => corsSteps(base, steps)",
                                   [base, [step.as_js() for step in scenario.steps]])
    url = base + scenario.steps[0].path
    if scenario.kind == WEBSOCKET:
        return [await page.evaluate("([url, message]) => wsEcho(url, message)",
                                    [url.replace("http", "ws", 1), WS_MESSAGE])]
    assert scenario.kind == EVENTSOURCE
    return [await play_eventsource(world, page, url)]


async def play_eventsource(world, page, url: str) -> dict:
    """Open an EventSource and let the upstream send each next event only after the page has
    seen the previous one: the events must arrive as they are sent, not all at the end."""
    await page.evaluate("url => sseStart(url)", url)
    sent = world.upstream.app[SSE_SENT]
    seen: list[str] = []
    for n in range(1, 4):
        await page.wait_for_function(f"window.sse.events.length >= {n} || window.sse.errors > 0",
                                     timeout=EVENT_WAIT_MS)
        seen = await page.evaluate("window.sse.events")
        if len(seen) < n:
            break
        # The page holds event n while the upstream has not yet written event n + 1.
        assert seen == sent, f"page saw {seen}, upstream has sent {sent}"
        if n < 3:
            world.upstream.app[SSE_GO].put_nowait("next")
    state = await page.evaluate("({errors: sse.errors, readyState: sse.readyState, opened: sse.opened})")
    await page.evaluate("sse.close()")
    if not seen:
        return {"readable": False, "error": "EventSource error", **state}
    return {"readable": True, "body": "\n".join(seen), **state}


def judge(world, scenario: Scenario, results: list[dict]) -> None:
    expect: Expect = scenario.expect
    last = results[-1]
    where = f"{scenario.name}: page read {last}"
    assert last["readable"] is expect.readable, where
    if not expect.readable:
        if scenario.kind == FETCH:
            assert last["error"] == expect.error, where
        if scenario.kind == WEBSOCKET:
            assert not last["opened"], where
        if scenario.kind == EVENTSOURCE:
            assert last["readyState"] == 2, where  # CLOSED: a CORS failure is final, no reconnect
    if expect.status is not None:
        assert last["status"] == expect.status, where
    for text in expect.body_contains:
        assert text in last["body"], where
    if expect.json_subset is not None:
        body = json.loads(last["body"])
        assert {k: body.get(k) for k in expect.json_subset} == expect.json_subset, where
    if expect.header is not None:
        assert last["read_header"] == expect.header[1], where
    if expect.redirected is not None:
        assert last["redirected"] is expect.redirected, where
    received = world.received
    if expect.upstream is not None:
        assert [f"{r['method']} {r['path']}" for r in received] == list(expect.upstream), \
            f"{scenario.name}: the upstream received {received}"
    if expect.upstream_saw_cookie is not None:
        assert (SESSION_COOKIE in (received[-1]["cookie"] or "")) is expect.upstream_saw_cookie, received


def ids(scenarios) -> list[str]:
    return [s.name for s in scenarios]


@pytest.mark.parametrize("scenario", CONTROL, ids=ids(CONTROL))
async def test_control_direct_call_is_blocked_by_the_browser(world, context, scenario):
    """Without the proxy the page cannot read the upstream (which received the request)."""
    judge(world, scenario, await play(world, context, scenario, world.proxy))


@pytest.mark.parametrize("scenario", THROUGH_PROXY, ids=ids(THROUGH_PROXY))
async def test_through_the_proxy_the_page_reads_the_response(world, context, scenario):
    """From the allowed origin, through corsproxy, the page's script reads the response."""
    judge(world, scenario, await play(world, context, scenario, world.proxy))


@pytest.mark.parametrize("scenario", THROUGH_PROXY, ids=ids(THROUGH_PROXY))
async def test_the_same_call_fails_when_no_origin_is_allowed(world, context, scenario):
    """The same page action against a proxy that allows no origin: every step is unreadable
    and nothing reaches the upstream, so the success above is the proxy's doing."""
    refused = blocked(scenario)
    results = await play(world, context, refused, world.proxy_none)
    assert all(not r["readable"] for r in results), results
    judge(world, refused, results)


@pytest.mark.parametrize("scenario", FROM_FOREIGN_PAGE, ids=ids(FROM_FOREIGN_PAGE))
async def test_a_page_on_another_origin_is_refused(world, context, scenario):
    """A page on a not-allowed origin can neither read through the proxy nor drive the upstream."""
    assert scenario.page == FOREIGN
    judge(world, scenario, await play(world, context, scenario, world.proxy))


@pytest.mark.parametrize("scenario", CHROMIUM_RULES, ids=ids(CHROMIUM_RULES))
async def test_chromium_rule(world, context, scenario):
    """What Chromium does on loopback that shapes how corsproxy must be used."""
    judge(world, scenario, await play(world, context, scenario, world.proxy))


@pytest.mark.parametrize(("set_cookie", "kept"), [
    ("plain=1; Path=/", True),
    ("foreign_domain=1; Domain=127.0.0.1; Path=/", False),
    ("secure=1; Secure; Path=/", True),
    ("samesite_none_insecure=1; SameSite=None; Path=/", False),
    ("__Secure-prefixed=1; Secure; Path=/", True),
    ("__Secure-unsecured=1; Path=/", False),
    ("__Host-rooted=1; Secure; Path=/", True),
    ("__Host-pathed=1; Secure; Path=/app", False),
], ids=["plain", "domain-127.0.0.1-dropped", "secure-kept-on-http-localhost", "samesite-none-without-secure-dropped",
        "secure-prefix-kept-on-http-localhost", "secure-prefix-without-secure-dropped",
        "host-prefix-kept-on-http-localhost", "host-prefix-with-path-dropped"])
async def test_chromium_cookie_rule_on_localhost(world, context, set_cookie, kept):
    """Chromium's cookie rules for a response from http://localhost (same-origin, no CORS involved):
    why the proxy strips Domain, which attributes survive on plain-http localhost, and that the
    cookie doctor (corsproxy.judge.cookies) agrees with Chromium on every cookie the proxy can
    hand on (it never passes a Domain, so that row is Chromium's alone)."""
    page = await open_page(context, world.allowed_page)
    status = await page.evaluate("c => fetch('/set-cookie?c=' + encodeURIComponent(c)).then(r => r.status)", set_cookie)
    assert status == 204
    names = {cookie["name"] for cookie in await context.cookies(world.allowed_page.url)}
    assert (set_cookie.split("=", 1)[0] in names) is kept, names
    if "Domain=" not in set_cookie:
        judged = judge_set_cookie(set_cookie, CookieContext(world.allowed_page.url, None, False))
        assert (judged is None) is kept, judged

"""Differential test: `corsproxy probe` decides as real Chromium does, scenario by scenario.

Every fetch/EventSource scenario of tests/browser/scenarios.py is played in Chromium (as
test_scenarios.py does) and then replayed by `probe` from the same page origin against the same
URL; the two verdicts must agree. Where Chromium departs from the Fetch Standard, probe judges
by the standard and names the departure (browser.DEPARTURES); DEPARTURE_CASES below proves in
CI that each named departure is real, so the list cannot go stale silently.

Out of scope: WebSocket scenarios (WebSockets have no CORS, so probe has nothing to judge).
"""

from __future__ import annotations

import argparse

import pytest
from aiohttp import web

from corsproxy.commands import probe
from corsproxy.judge import browser
from tests.browser.apps import start_site
from tests.browser.scenarios import (
    ALLOWED,
    CHROMIUM_RULES,
    CONTROL,
    EVENTSOURCE,
    FETCH,
    FROM_FOREIGN_PAGE,
    PROXY,
    PROXY_BY_IP,
    THROUGH_PROXY,
    UPSTREAM,
    Request,
    Scenario,
    blocked,
)
from tests.browser.test_scenarios import open_page, play

pytestmark = [pytest.mark.browser, pytest.mark.asyncio(loop_scope="module")]

PROBED_KINDS = (FETCH, EVENTSOURCE)
# (scenario, which proxy: "allowing" or "none")
CASES = (
    [(s, "allowing") for s in CONTROL + THROUGH_PROXY + FROM_FOREIGN_PAGE + CHROMIUM_RULES
     if s.kind in PROBED_KINDS]
    + [(blocked(s), "none") for s in THROUGH_PROXY if s.kind in PROBED_KINDS]
)


def probe_args(url: str, origin: str, step: Request, kind: str) -> list[str]:
    """The command line that asks probe about the same request the page made."""
    args = [url + step.path, "--origin", origin, "--method", step.method, "--follow"]
    for name, value in step.headers:
        args += ["-H", f"{name}: {value}"]
    if kind == EVENTSOURCE:
        args += ["-H", "Accept: text/event-stream"]   # what EventSource sends
    if step.body is not None:
        args += ["--data", step.body]
    if step.credentials == "include":
        args.append("--credentials")
    return args


async def run_probe(args: list[str]) -> probe.Report:
    parser = argparse.ArgumentParser()
    probe.add_arguments(parser)
    return await probe.probe(probe.make_plan(parser.parse_args(args)))


def chromium_would(report: probe.Report) -> bool:
    """probe's verdict, flipped for each named departure where Chromium is laxer."""
    allowed = report.verdict.allowed
    for departure in report.verdict.departures:
        assert departure in browser.DEPARTURES, departure
        allowed = True   # every departure named so far is Chromium allowing what Fetch blocks
    return allowed


@pytest.mark.parametrize(("scenario", "which"), CASES, ids=[f"{s.name}" for s, _ in CASES])
async def test_probe_agrees_with_chromium(world, context, scenario: Scenario, which: str) -> None:
    """For the last step of each scenario, probe's verdict equals what Chromium let the page read."""
    proxy = world.proxy if which == "allowing" else world.proxy_none
    results = await play(world, context, scenario, proxy)
    chromium_readable = results[-1]["readable"]
    assert chromium_readable is scenario.expect.readable, (scenario.name, results[-1])

    page = world.allowed_page if scenario.page == ALLOWED else world.foreign_page
    base = {PROXY: proxy.url, PROXY_BY_IP: proxy.url.replace("localhost", "127.0.0.1"),
            UPSTREAM: world.upstream.url}[scenario.target]
    report = await run_probe(probe_args(base, page.url, scenario.steps[-1], scenario.kind))
    assert chromium_would(report) is chromium_readable, (
        f"{scenario.name}: Chromium {'read' if chromium_readable else 'blocked'} it, probe said "
        f"{report.summary!r}")


# --- the named departures, proven against Chromium -----------------------------------------------

WILDCARD_HEADERS = web.AppKey("origin", str)


def wildcard_headers_app(origin: str) -> web.Application:
    """Answers preflights with Access-Control-Allow-Headers: * (no credentials), and GET with
    the page's origin: the case where Chromium lets `*` cover Authorization."""

    async def handle(request: web.Request) -> web.Response:
        headers = {"Access-Control-Allow-Origin": request.app[WILDCARD_HEADERS], "Cache-Control": "no-store"}
        if request.method == "OPTIONS":
            headers.update({"Access-Control-Allow-Headers": "*", "Access-Control-Allow-Methods": "GET"})
            return web.Response(status=204, headers=headers)
        return web.Response(text="secret", headers=headers)

    app = web.Application()
    app[WILDCARD_HEADERS] = origin
    app.router.add_route("*", "/{tail:.*}", handle)
    return app


DEPARTURE_CASES = [
    pytest.param(browser.CHROMIUM_WILDCARD_AUTHORIZATION,
                 Request("GET", "/wild", (("Authorization", "Bearer t0ken"),)), id="wildcard-covers-authorization"),
]


@pytest.mark.parametrize(("departure", "step"), DEPARTURE_CASES)
async def test_named_departure_is_real(world, context, departure: str, step: Request) -> None:
    """Chromium allows what probe (by the Fetch Standard) blocks, and probe names exactly that departure."""
    site = await start_site(wildcard_headers_app(world.allowed_page.url))
    try:
        page = await open_page(context, world.allowed_page)
        results = await page.evaluate("([base, steps]) => corsSteps(base, steps)", [site.url, [step.as_js()]])
        report = await run_probe(probe_args(site.url, world.allowed_page.url, step, FETCH))
    finally:
        await site.stop()
    assert results[-1]["readable"] is True, results
    assert report.verdict.allowed is False
    assert report.verdict.departures == (departure,)
    assert chromium_would(report) is True

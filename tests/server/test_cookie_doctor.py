"""The cookie doctor in the log: a real upstream's Set-Cookie that the browser will drop is named,
with why, once per cookie; cookies the browser keeps are not mentioned."""

from __future__ import annotations

import structlog

from tests.conftest import ALLOWED

NO_CREDENTIALS = """
    cors: {{allow_origins: [http://localhost:3000]}}
    routes: [{{prefix: /api, upstream: "{upstream}/v1"}}]
"""
WITH_CREDENTIALS = """
    cors: {{allow_origins: [http://localhost:3000], allow_credentials: true}}
    routes: [{{prefix: /api, upstream: "{upstream}/v1"}}]
"""


def dropped(logged: list[dict]) -> list[dict]:
    return [entry for entry in logged if entry["event"] == "cookie dropped"]


async def test_cookies_of_a_route_without_credentials_are_reported_once(make_proxy):
    """Through a route without credentials both upstream cookies are named with the reason and the
    allow_credentials line, once each however often they are set; the line named is the route's, where the key goes."""
    client = await make_proxy(NO_CREDENTIALS)
    with structlog.testing.capture_logs() as logged:
        for _ in range(3):
            r = await client.get("/api/cookie", headers={"Origin": ALLOWED, "Host": "localhost:8080"})
            assert r.status == 200
    entries = dropped(logged)
    assert [entry["cookie"] for entry in entries] == ["session", "theme"]
    for entry in entries:
        assert entry["route"] == "/api" and entry["origin"] == ALLOWED
        assert entry["why"].startswith("route /api does not allow credentials (")
        assert "corsproxy.yaml:3)" in entry["why"]  # the route, where allow_credentials goes and "credentials: 'include'" in entry["why"]


async def test_a_proxy_reached_as_127_0_0_1_from_a_localhost_page_is_another_site(make_proxy):
    """A credentialed route, but the page is on localhost and the proxy is called as 127.0.0.1:
    the reason names both sites and the URL to call instead."""
    client = await make_proxy(WITH_CREDENTIALS)
    with structlog.testing.capture_logs() as logged:
        await client.get("/api/cookie", headers={"Origin": ALLOWED, "Host": "127.0.0.1:8080"})
    (first, second) = dropped(logged)
    assert first["why"] == (
        "the page (http://localhost:3000) and the proxy (http://127.0.0.1:8080) are different sites, and a "
        "browser refuses a SameSite=Lax (the default) cookie from a cross-site response; call the proxy "
        "with the page's host name, http://localhost:8080")


async def test_cookies_the_browser_keeps_are_not_mentioned(make_proxy):
    """Same site, credentials on: nothing to say."""
    client = await make_proxy(WITH_CREDENTIALS)
    with structlog.testing.capture_logs() as logged:
        r = await client.get("/api/cookie", headers={"Origin": ALLOWED, "Host": "localhost:8080"})
        assert r.status == 200
    assert dropped(logged) == []

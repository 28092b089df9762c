"""Hardening, round two (issue #16) on the wire: real proxies in front of a real loopback upstream.

Each test asserts on what the upstream RECEIVED: a refusal that still reached the upstream is
no refusal.
"""

from __future__ import annotations

import asyncio

import aiohttp
import pytest

from tests.conftest import ALLOWED

TOKEN_ROUTE = """
    cors:
      allow_origins: [http://localhost:3000]
    routes:
      - prefix: /api
        upstream: {upstream}/v1
        request_headers: {{set: {{Authorization: "Bearer ${{TOKEN}}"}}}}
"""


@pytest.fixture
async def token_proxy(make_proxy):
    """/api -> upstream /v1, injecting Authorization: Bearer s3cret."""
    return await make_proxy(TOKEN_ROUTE)


# --- 1. Fetch Metadata: a foreign page's <img>/<script> does not spend the token ----------------


@pytest.mark.parametrize(("headers", "status", "reached"), [
    pytest.param({"Sec-Fetch-Site": "cross-site", "Referer": "http://attacker.test:8000/x.html"}, 403, False,
                 id="foreign-script-refused"),
    pytest.param({"Sec-Fetch-Site": "same-site", "Referer": "http://localhost:5173/"}, 403, False,
                 id="other-localhost-port-refused"),
    pytest.param({"Sec-Fetch-Site": "cross-site"}, 403, False, id="no-referer-refused"),
    pytest.param({"Sec-Fetch-Site": "same-site", "Referer": ALLOWED + "/page"}, 200, True,
                 id="allowed-page-img-forwarded"),
    pytest.param({"Sec-Fetch-Site": "none"}, 200, True, id="typed-url-forwarded"),
    pytest.param({}, 200, True, id="curl-forwarded"),
])
async def test_foreign_page_cannot_spend_injected_token(token_proxy, received, headers, status, reached) -> None:
    """A browser request without Origin reaches the upstream only from the user or an allowed page."""
    response = await token_proxy.get("/api/jsonp?callback=steal", headers=headers)
    assert response.status == status
    assert bool(received) is reached
    if not reached:
        assert "Sec-Fetch-Site" in await response.text()
        assert "access-control-allow-origin" not in {k.lower() for k in response.headers}


async def test_proxied_response_carries_nosniff(token_proxy) -> None:
    """A JSON answer cannot run as a foreign page's script: nosniff is on every proxied response."""
    response = await token_proxy.get("/api/items", headers={"Origin": ALLOWED})
    assert response.headers.getall("X-Content-Type-Options") == ["nosniff"]


# --- 5. a catastrophic allow_origin_regex does not stall the proxy ------------------------------

REDOS_CONFIG = r"""
cors:
  allow_origins: [http://localhost:3000]
  allow_origin_regex: '^https://([a-z0-9]+-?)*\.preview\.example\.com$'
routes:
  - prefix: /api
    upstream: http://127.0.0.1:9/v1
"""


async def test_backtracking_regex_and_hostile_origin_do_not_stall_the_proxy(spawn, tmp_path) -> None:
    """An Origin chosen to make a backtracking regex run for hours is refused at once, and the
    proxy keeps answering everyone else (RE2 matches in linear time)."""
    path = tmp_path / "redos.yaml"
    path.write_text(REDOS_CONFIG)
    proxy = await spawn("serve", "-c", str(path), "--port", "0")
    hostile = "https://" + "a" * 60 + "!.preview.example.com"
    async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=10)) as session:
        async def get(path: str, **headers: str) -> int:
            async with session.get(proxy.url + path, headers=headers) as response:
                return response.status
        statuses = await asyncio.gather(get("/api/x", Origin=hostile), get("/__corsproxy/health"))
    assert statuses == [403, 200]
    await proxy.stop()

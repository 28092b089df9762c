"""The inspector through a real proxy: /__corsproxy/events, the page, redaction, the Host guard,
and the upstream verdict agreeing with `probe` on the same upstream answers."""

from __future__ import annotations

import pytest
from aiohttp import web

from corsproxy.commands import probe
from tests.conftest import ALLOWED, FOREIGN

SECRET = "planted-s3cret-value-7f3a"
CONFIG = """
    server:
      inspector_size: {size}
    cors:
      allow_origins: [http://localhost:3000]
      allow_headers: [Content-Type]
      allow_credentials: true
    routes:
      - prefix: /api
        upstream: {upstream}/v1
        request_headers:
          set: {{X-Api-Key: "${{TOKEN}}", Authorization: "Bearer ${{TOKEN}}"}}
      - prefix: /judge
        upstream: http://127.0.0.1:{judge}
      - prefix: /down
        upstream: http://127.0.0.1:{dead}
"""


async def events(client, after: int = 0) -> list[dict]:
    response = await client.get(f"/__corsproxy/events?after={after}")
    assert response.status == 200
    return (await response.json())["events"]


@pytest.fixture
async def judge_upstream(aiohttp_server):
    """An upstream that answers with the Access-Control-* headers the query names (a=ACAO,
    c=ACAC), and a Set-Cookie carrying the planted secret."""

    async def answer(request: web.Request) -> web.Response:
        headers = {"Set-Cookie": f"session={SECRET}; Path=/"}
        if "a" in request.query:
            headers["Access-Control-Allow-Origin"] = request.query["a"]
        if "c" in request.query:
            headers["Access-Control-Allow-Credentials"] = request.query["c"]
        return web.json_response({"secret": SECRET}, headers=headers)

    app = web.Application()
    app.router.add_get("/{tail:.*}", answer)
    return await aiohttp_server(app)


@pytest.fixture
def dead_port(unused_tcp_port_factory) -> int:
    return unused_tcp_port_factory()


@pytest.fixture
async def inspected(make_proxy, judge_upstream, dead_port):
    return await make_proxy(CONFIG, size=500, judge=judge_upstream.port, dead=dead_port)


async def test_events_hold_the_contract_fields_oldest_first(inspected):
    """Each finished request becomes one event with every field the contract names, oldest first."""
    await inspected.get("/api/items", headers={"Origin": ALLOWED})
    await inspected.get("/api/items", headers={"Origin": FOREIGN})
    first, second = await events(inspected)
    assert set(first) >= {"id", "time", "method", "path", "origin", "route", "source", "status",
                          "upstream_status", "decision", "reasons", "duration_ms", "upstream_cors"}
    assert first["id"] < second["id"]
    assert (first["decision"], first["status"], first["upstream_status"]) == ("cors", 200, 200)
    assert first["route"] == "/api" and first["source"].endswith("corsproxy.yaml:9")
    assert first["time"].endswith("+00:00") and first["time"][:2] == "20"
    assert (second["decision"], second["status"], second["upstream_cors"]) == ("refused", 403, None)
    assert FOREIGN in second["reasons"][0]
    assert second["fix"][0]["key"] == "cors.allow_origins"
    assert FOREIGN in second["fix"][0]["yaml"] and second["fix"][0]["source"].endswith(":5")


async def test_after_returns_only_newer_events(inspected):
    """?after=ID returns only the events with a higher id."""
    for _ in range(3):
        await inspected.get("/api/items")
    ids = [e["id"] for e in await events(inspected)]
    assert [e["id"] for e in await events(inspected, ids[0])] == ids[1:]
    assert await events(inspected, ids[-1]) == []
    bad = await inspected.get("/__corsproxy/events?after=x")
    assert bad.status == 400


async def test_each_decision_is_named(inspected):
    """Preflights, no-origin, same-origin, refusals, rejections and upstream errors each carry
    their contract decision; an upstream error has no upstream_cors and a fix naming the route."""
    host = inspected.server.host, inspected.server.port
    own = f"http://{host[0]}:{host[1]}"
    await inspected.options("/api/x", headers={"Origin": ALLOWED, "Access-Control-Request-Method": "PUT"})
    await inspected.get("/api/x")
    await inspected.get("/api/x", headers={"Origin": own})
    await inspected.get("/api/x", headers={"Host": "evil.example"})
    await inspected.get("/down/x", headers={"Origin": ALLOWED})
    got = [(e["decision"], e["status"]) for e in await events(inspected)]
    assert got == [("preflight", 204), ("no-origin", 200), ("same-origin", 200), ("rejected", 403),
                   ("upstream-error", 502)]
    *_, rejected, down = await events(inspected)
    assert rejected["fix"][0]["key"] == "server.allowed_hosts" and "evil.example" in rejected["fix"][0]["yaml"]
    assert down["upstream_cors"] is None and down["fix"][0]["key"] == "upstream"


async def test_preflight_fix_names_the_refused_header(inspected):
    """A refused preflight's fix adds exactly the refused header to allow_headers."""
    await inspected.options("/api/x", headers={"Origin": ALLOWED, "Access-Control-Request-Method": "GET",
                                               "Access-Control-Request-Headers": "content-type,x-trace"})
    (event,) = await events(inspected)
    assert event["decision"] == "refused" and event["preflight"] is True
    assert [f["key"] for f in event["fix"]] == ["cors.allow_headers"]
    assert "x-trace" in event["fix"][0]["yaml"] and "content-type" in event["fix"][0]["yaml"]


async def test_an_actual_request_is_linked_to_its_preflight(inspected):
    """The actual request that follows a preflight names it (preflight_id), so the page groups them."""
    await inspected.options("/api/x", headers={"Origin": ALLOWED, "Access-Control-Request-Method": "PUT"})
    await inspected.put("/api/x", headers={"Origin": ALLOWED})
    preflight, actual = await events(inspected)
    assert actual["preflight_id"] == preflight["id"]
    assert "preflight (OPTIONS)" in " ".join(actual["upstream_cors"]["notes"])


async def test_each_event_carries_the_cookie_doctors_findings(inspected):
    """A Set-Cookie the browser will drop is named, with why, in every event that carried it
    (the log says it once; the inspector says it for each request)."""
    for _ in range(2):
        await inspected.get("/api/cookie", headers={"Origin": ALLOWED, "Host": "127.0.0.1:8080"})
    first, second = await events(inspected)
    assert first["cookies"] == second["cookies"] and len(first["cookies"]) == 2
    assert first["cookies"][0].startswith("the browser will drop the cookie 'session': the page "
                                          "(http://localhost:3000) and the proxy (http://127.0.0.1:8080) are different sites")


async def test_builtin_requests_are_not_recorded(inspected):
    """Requests to /__corsproxy/* never become events."""
    for path in ("/__corsproxy/health", "/__corsproxy/routes", "/__corsproxy/", "/__corsproxy/nope"):
        await inspected.get(path)
    assert await events(inspected) == []


async def test_a_planted_secret_never_reaches_the_json_or_the_page(inspected):
    """The values of Authorization, Cookie, Proxy-Authorization, Set-Cookie, injected headers,
    the query and bodies are never in the events or the page; the request's secret names are."""
    await inspected.post("/judge/x?token=" + SECRET, data=SECRET, headers={
        "Origin": ALLOWED, "Authorization": f"Bearer {SECRET}", "Cookie": f"s={SECRET}",
        "Proxy-Authorization": SECRET})
    await inspected.get("/api/x", headers={"Origin": ALLOWED, "X-Api-Key": SECRET})
    await inspected.get("/judge/x", headers={"Origin": ALLOWED, "Cookie": f"s={SECRET}"})
    body = await (await inspected.get("/__corsproxy/events")).text()
    page = await (await inspected.get("/__corsproxy/")).text()
    assert SECRET not in body and SECRET not in page
    assert "s3cret" not in body  # the injected ${TOKEN}
    assert "Authorization" in body and "Cookie" in body and "Proxy-Authorization" in body
    assert "X-Api-Key" in body


async def test_builtins_keep_the_host_guard_and_send_no_allow_headers(inspected):
    """The page and the events refuse a foreign Host and never carry Access-Control-Allow-*."""
    for path in ("/__corsproxy/", "/__corsproxy/events"):
        foreign = await inspected.get(path, headers={"Host": "evil.example"})
        assert foreign.status == 403
        response = await inspected.get(path, headers={"Origin": FOREIGN})
        assert response.status == 200
        assert not [n for n in response.headers if n.lower().startswith("access-control-")]
        preflight = await inspected.options(path, headers={"Origin": FOREIGN,
                                                           "Access-Control-Request-Method": "DELETE"})
        assert not [n for n in preflight.headers if n.lower().startswith("access-control-")]


async def test_clearing_is_same_origin_only(inspected):
    """DELETE /__corsproxy/events empties the buffer, but not when another site asks."""
    await inspected.get("/api/x")
    refused = await inspected.delete("/__corsproxy/events", headers={"Origin": FOREIGN})
    assert refused.status == 403 and len(await events(inspected)) == 1
    cleared = await inspected.delete("/__corsproxy/events")
    assert cleared.status == 204 and await events(inspected) == []


async def test_size_zero_turns_the_inspector_off(make_proxy, judge_upstream, dead_port):
    """inspector_size: 0 records nothing, and the events say it is off (the page shows that)."""
    client = await make_proxy(CONFIG, size=0, judge=judge_upstream.port, dead=dead_port)
    await client.get("/api/x")
    payload = await (await client.get("/__corsproxy/events")).json()
    assert payload["events"] == [] and payload["enabled"] is False
    assert (await client.get("/__corsproxy/")).status == 200


async def test_the_page_pins_its_script_and_style(inspected):
    """The page is self-contained HTML whose CSP allows only its own inline script and style."""
    response = await inspected.get("/__corsproxy/")
    csp = response.headers["Content-Security-Policy"]
    assert "default-src 'none'" in csp and "script-src 'sha256-" in csp and "connect-src 'self'" in csp
    text = await response.text()
    assert "<script>" in text and "http://" not in text and "https://" not in text


ANSWERS = [
    pytest.param({}, False, id="no-acao"),
    pytest.param({"a": ALLOWED}, False, id="exact-origin"),
    pytest.param({"a": "*"}, False, id="star"),
    pytest.param({"a": "*"}, True, id="star-with-cookies"),
    pytest.param({"a": ALLOWED}, True, id="exact-without-acac-with-cookies"),
    pytest.param({"a": ALLOWED, "c": "true"}, True, id="exact-with-acac-with-cookies"),
    pytest.param({"a": "http://localhost:3000/"}, False, id="trailing-slash"),
]


@pytest.mark.parametrize("answer, cookies", ANSWERS)
async def test_upstream_verdict_agrees_with_probe(inspected, judge_upstream, answer, cookies):
    """For the same upstream answer, the inspector's upstream verdict is probe's verdict."""
    query = "&".join(f"{k}={v}" for k, v in answer.items())
    headers = {"Origin": ALLOWED, **({"Cookie": "s=1"} if cookies else {})}
    await inspected.get(f"/judge/x?{query}", headers=headers)
    (event,) = await events(inspected)
    plan = probe.Plan(f"http://127.0.0.1:{judge_upstream.port}/x?{query}", ALLOWED, "GET", (), None,
                      cookies, 5.0, False)
    report = await probe.probe(plan)
    upstream = event["upstream_cors"]
    assert upstream["browser_would_allow"] is report.verdict.allowed
    assert upstream["why"] == list(report.verdict.reasons)
    assert upstream["fix"] == [str(fix) for fix in report.verdict.fixes]
    assert dict(map(tuple, upstream["headers"])) == {k: v for k, v in
                                                     report.exchanges[-1].response_headers
                                                     if k.lower().startswith("access-control-")}

"""A request's facts (app._facts) and its Host's verdict (State.host_refusal) come from bounded memos:
the same answers as made afresh, one entry per distinct input."""

from __future__ import annotations

import pytest
from aiohttp.test_utils import make_mocked_request

from corsproxy import config as config_module
from corsproxy.server import app

PREFLIGHT = {"Host": "localhost:8080", "Origin": "http://localhost:3000", "Access-Control-Request-Method": "PUT",
             "Access-Control-Request-Headers": "X-A, content-type", "Access-Control-Request-Private-Network": "true"}
NAVIGATION = {"Host": "localhost:8080", "Sec-Fetch-Site": "Same-Origin", "Referer": "http://localhost:8080/page"}
ROWS = {
    "preflight": ("OPTIONS", PREFLIGHT),
    "same preflight, other Host": ("OPTIONS", {**PREFLIGHT, "Host": "127.0.0.1:8080"}),
    "same headers, GET": ("GET", PREFLIGHT),
    "no Origin: judged by Referer": ("GET", NAVIGATION),
    "other Referer": ("GET", {**NAVIGATION, "Referer": "http://evil.example/x"}),
    "no Host": ("GET", {"Origin": "http://localhost:3000"}),
}


def facts(known: dict, method: str, headers: dict):
    request = make_mocked_request(method, "/api/x", headers=headers)
    return app._facts(request, headers.get("Host"), known)


def test_each_distinct_request_has_its_own_facts_and_the_same_ones_as_made_afresh() -> None:
    """Every row's facts equal the memo-less ones, are kept once, and come back on a repeat."""
    known: dict = {}
    made = {name: facts(known, *row) for name, row in ROWS.items()}
    assert made == {name: facts({}, *row) for name, row in ROWS.items()}
    assert len(known) == len(ROWS) == len(set(made.values()))
    assert all(facts(known, *row) is made[name] for name, row in ROWS.items())
    assert made["preflight"].request_headers == ("x-a", "content-type")
    assert made["other Referer"].referer_origin == "http://evil.example"


def test_the_memo_is_bounded_and_keeps_no_long_request(monkeypatch: pytest.MonkeyPatch) -> None:
    """At most FACTS_KEPT entries (oldest out); a request whose fields exceed FACTS_KEY_CHARS is not kept."""
    monkeypatch.setattr(app, "FACTS_KEPT", 2)
    known: dict = {}
    for name in ("preflight", "same headers, GET", "no Host"):
        facts(known, *ROWS[name])
    assert [key[0] for key in known] == ["GET", "GET"]
    long = {**PREFLIGHT, "Access-Control-Request-Headers": "x-" + "a" * app.FACTS_KEY_CHARS}
    assert facts(known, "OPTIONS", long).request_headers == ("x-" + "a" * app.FACTS_KEY_CHARS,)
    assert len(known) == 2 and all(key[0] == "GET" for key in known)


def test_host_refusal_keeps_its_answer_per_host_bounded(tmp_path, monkeypatch: pytest.MonkeyPatch) -> None:
    """The Host guard answers a Host as it did before, allowed or refused; at most HOSTS_KEPT are kept, no over-long one."""
    monkeypatch.setattr(app, "HOSTS_KEPT", 3)
    path = tmp_path / "c.yaml"
    path.write_text("server:\n  allowed_hosts: [localhost]\nroutes:\n  - prefix: /api\n    upstream: http://127.0.0.1:9\n")
    state = app.State.of(config_module.load(path, env={}))
    long = "a" * 300 + ".example"
    asked = ["localhost:8080", "evil.example", None, long, "localhost:8080", "evil.example"]
    answers = [state.host_refusal(host) for host in asked]
    assert answers[0] is None and answers[4] is None and answers[5] == answers[1]
    assert "'evil.example' is not in server.allowed_hosts" in answers[1] and "no Host header" in answers[2]
    assert "is not in server.allowed_hosts" in answers[3]
    assert list(state.host_refusals) == ["localhost:8080", "evil.example", None]
    assert state.host_refusal("devbox") is not None and list(state.host_refusals) == ["evil.example", None, "devbox"]

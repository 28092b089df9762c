"""The inspector's pure core: the bounded event buffer, redaction, and the config fixes."""

from __future__ import annotations

import dataclasses
import json

import pytest

from corsproxy.judge.inspection import (
    PREFLIGHTS_REMEMBERED,
    REDACTED,
    EventBuffer,
    Record,
    config_fixes,
    cors_response_headers,
    event_json,
    redact_request,
)
from corsproxy.model import CorsPolicy, RequestFacts, ServerSettings
from tests.routes_factory import make_route

SECRET = "planted-s3cret-value-7f3a"


def record(buffer: EventBuffer, **fields) -> Record:
    values = dict(id=buffer.next_id(), time=1_700_000_000.0, method="GET", path="/api/x",
                  origin=None, status=200, duration_ms=1.0, decision="no-origin", reasons=(),
                  request_headers=(), response_headers=(), server=ServerSettings())
    values.update(fields)
    return Record(**values)


def test_buffer_is_bounded_and_keeps_the_newest_in_order() -> None:
    """A buffer of N keeps the last N records, oldest first, with increasing ids."""
    buffer = EventBuffer(3)
    for _ in range(5):
        buffer.add(record(buffer))
    assert [r.id for r in buffer] == [3, 4, 5]
    assert buffer.latest_id == 5


def test_after_returns_only_newer_records_oldest_first() -> None:
    """after(ID) is every record with a higher id, oldest first; empty past the newest."""
    buffer = EventBuffer(10)
    for _ in range(4):
        buffer.add(record(buffer))
    assert [r.id for r in buffer.after(2)] == [3, 4]
    assert [r.id for r in buffer.after(0)] == [1, 2, 3, 4]
    assert buffer.after(4) == []


def test_resize_keeps_the_newest_records_that_fit() -> None:
    """A reload that shrinks the buffer keeps its newest records; size 0 keeps none."""
    buffer = EventBuffer(5)
    for _ in range(5):
        buffer.add(record(buffer))
    buffer.resize(2)
    assert [r.id for r in buffer] == [4, 5]
    buffer.resize(0)
    assert list(buffer) == []


def test_waiting_preflights_are_bounded() -> None:
    """Preflights that no actual request follows (refused ones) do not pile up."""
    buffer = EventBuffer(1000)
    for n in range(PREFLIGHTS_REMEMBERED + 10):
        facts = RequestFacts("OPTIONS", "http://a", request_method="PUT")
        buffer.add(record(buffer, method="OPTIONS", path=f"/p{n}", origin="http://a", facts=facts,
                          request_headers=(("Access-Control-Request-Method", "PUT"),)))
    assert buffer.link("http://a", "/p0", "PUT") is None
    last = f"/p{PREFLIGHTS_REMEMBERED + 9}"
    assert buffer.link("http://a", last, "PUT") == PREFLIGHTS_REMEMBERED + 10
    assert buffer.link("http://a", last, "PUT") is None  # linked once


@pytest.mark.parametrize("name", ["Authorization", "cookie", "Proxy-Authorization", "Set-Cookie",
                                  "X-Api-Key"])
def test_redaction_keeps_secret_names_never_their_values(name: str) -> None:
    """Secret headers and injected ones keep their name, never their value."""
    kept = redact_request([(name, SECRET), ("Origin", "http://a")], frozenset({"x-api-key"}))
    assert kept == ((name, REDACTED), ("Origin", "http://a"))


def test_headers_cors_does_not_read_are_not_kept() -> None:
    """A request keeps only the headers CORS reads; a response only its CORS headers."""
    assert redact_request([("X-Custom", SECRET), ("Accept", "*/*")], frozenset()) == (("Accept", "*/*"),)
    kept = cors_response_headers([("Set-Cookie", SECRET), ("Access-Control-Allow-Origin", "*"), ("Vary", "Origin"),
                                  ("ETag", SECRET)])
    assert kept == (("Access-Control-Allow-Origin", "*"), ("Vary", "Origin"))


def test_a_planted_secret_never_reaches_the_event_json() -> None:
    """Built from a request full of secrets, the event's JSON holds none of them."""
    buffer = EventBuffer(5)
    headers = redact_request([("Authorization", SECRET), ("Cookie", SECRET), ("X-Key", SECRET)],
                             frozenset({"x-key"}))
    upstream = cors_response_headers([("Set-Cookie", SECRET), ("Access-Control-Allow-Origin", "http://a")])
    buffer.add(record(buffer, origin="http://a", decision="cors", request_headers=headers,
                      upstream_status=200, upstream_headers=upstream, upstream_url="http://u/x"))
    text = json.dumps([event_json(r, buffer) for r in buffer])
    assert SECRET not in text and "X-Key" in text and "Authorization" in text


POLICY = CorsPolicy(allow_origins=frozenset({"http://a"}), allow_headers=frozenset({"content-type"}),
                    scope="route /api", key_sources=(("allow_origins", "c.yaml:5"), ("allow_headers", "c.yaml:6"),
                                                     ("allow_methods", "c.yaml:2")))


@pytest.mark.parametrize("facts, keys", [
    pytest.param(RequestFacts("GET", "http://b"), ["cors.allow_origins"], id="origin"),
    pytest.param(RequestFacts("OPTIONS", "http://a", "PURGE"), ["cors.allow_methods"], id="method"),
    pytest.param(RequestFacts("OPTIONS", "http://a", "GET", ("content-type", "x-b")), ["cors.allow_headers"],
                 id="header"),
    pytest.param(RequestFacts("OPTIONS", "http://a", "GET", (), True), ["cors.allow_private_network"],
                 id="private-network"),
])
def test_a_refusal_names_the_key_to_change(facts: RequestFacts, keys: list[str]) -> None:
    """The fix names the one key the CORS engine refused, with its line and the YAML to write."""
    buffer = EventBuffer(5)
    route = make_route()
    fixes = config_fixes(record(buffer, decision="refused", facts=facts, policy=POLICY, route=route,
                                origin=facts.origin))
    assert [f.key for f in fixes] == keys
    if keys == ["cors.allow_headers"]:
        assert fixes[0].yaml == "allow_headers: [content-type, x-b]" and fixes[0].source == "c.yaml:6"


def test_a_fix_shows_a_listed_value_read_through_a_variable_as_the_variable() -> None:
    """The YAML a fix suggests keeps ${PAGE} where the config read an origin through it."""
    policy = dataclasses.replace(POLICY, written=(("allow_origins", "http://a", "${PAGE}"),))
    facts = RequestFacts("GET", "http://b")
    fixes = config_fixes(record(EventBuffer(5), decision="refused", facts=facts, policy=policy,
                                route=make_route(), origin=facts.origin))
    assert fixes[0].yaml == "allow_origins: [${PAGE}, http://b]"

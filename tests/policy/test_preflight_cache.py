"""The preflight answer cache: the same Decision as cors.preflight(), bounded, never shared between policies."""

from __future__ import annotations

import pytest

from corsproxy.model import RequestFacts
from corsproxy.policy.cors import PreflightCache, preflight
from tests.policy.test_cors import LOCAL, make_policy

ASKED = {
    "allowed": RequestFacts("OPTIONS", LOCAL, "PUT"),
    "allowed, with headers": RequestFacts("OPTIONS", LOCAL, "PATCH", ("content-type", "authorization")),
    "foreign origin": RequestFacts("OPTIONS", "https://evil.example", "PUT"),
    "method not allowed": RequestFacts("OPTIONS", LOCAL, "PURGE"),
    "header not allowed": RequestFacts("OPTIONS", LOCAL, "PUT", ("x-secret",)),
    "private network asked": RequestFacts("OPTIONS", LOCAL, "GET", (), True),
    "lower-case method": RequestFacts("OPTIONS", LOCAL, "patch"),
}


@pytest.mark.parametrize("facts", ASKED.values(), ids=ASKED.keys())
def test_a_cached_answer_is_the_decision_preflight_makes(facts: RequestFacts) -> None:
    """First and repeated answers equal cors.preflight()'s, allowed or refused."""
    policy, cache = make_policy(), PreflightCache()
    expected = preflight(policy, facts)
    assert cache.preflight(policy, facts) == expected
    assert cache.preflight(policy, facts) == expected
    assert len(cache) == 1


def test_a_repeated_preflight_is_answered_from_the_cache() -> None:
    """The same (policy, origin, method, headers) is answered with the stored Decision itself."""
    policy, cache = make_policy(), PreflightCache()
    first = cache.preflight(policy, ASKED["allowed, with headers"])
    again = RequestFacts("OPTIONS", LOCAL, "PATCH", ("content-type", "authorization"), proxy_origin="http://x")
    assert cache.preflight(policy, again) is first


def test_each_policy_gets_its_own_answer() -> None:
    """Two routes' policies asked the same thing each get their own decision (no leak between routes)."""
    open_route, closed_route = make_policy(), make_policy(allow_methods=frozenset({"GET"}))
    cache = PreflightCache()
    facts = ASKED["allowed"]
    assert cache.preflight(open_route, facts).allowed
    assert cache.preflight(closed_route, facts) == preflight(closed_route, facts)
    assert cache.preflight(closed_route, facts) != preflight(open_route, facts)


def test_the_cache_is_bounded() -> None:
    """Past its size the oldest answers go; a key over MAX_KEY_CHARS is answered, not kept."""
    policy, cache = make_policy(allow_headers=frozenset(), allow_any_header=True), PreflightCache(size=8)
    for n in range(50):
        assert cache.preflight(policy, RequestFacts("OPTIONS", LOCAL, "PUT", (f"x-{n}",))).allowed
    assert len(cache) == 8
    huge = RequestFacts("OPTIONS", LOCAL, "PUT", ("x-" + "a" * PreflightCache.MAX_KEY_CHARS,))
    assert cache.preflight(policy, huge) == preflight(policy, huge)
    assert cache.preflight(policy, RequestFacts("OPTIONS", LOCAL, "PUT", ("x-49",))).allowed
    assert len(cache) == 8 and cache.preflight(policy, huge) is not cache.preflight(policy, huge)

"""The decision cache: the same Decision as cors.preflight() and cors.actual(), bounded, never shared between policies."""

from __future__ import annotations

import pytest

from corsproxy.model import RequestFacts
from corsproxy.policy.cors import DecisionCache, actual, preflight
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
    policy, cache = make_policy(), DecisionCache()
    expected = preflight(policy, facts)
    assert cache.preflight(policy, facts) == expected
    assert cache.preflight(policy, facts) == expected
    assert len(cache) == 1


def test_a_repeated_preflight_is_answered_from_the_cache() -> None:
    """The same (policy, origin, method, headers) is answered with the stored Decision itself."""
    policy, cache = make_policy(), DecisionCache()
    first = cache.preflight(policy, ASKED["allowed, with headers"])
    again = RequestFacts("OPTIONS", LOCAL, "PATCH", ("content-type", "authorization"), proxy_origin="http://x")
    assert cache.preflight(policy, again) is first


def test_each_policy_gets_its_own_answer() -> None:
    """Two routes' policies asked the same thing each get their own decision (no leak between routes)."""
    open_route, closed_route = make_policy(), make_policy(allow_methods=frozenset({"GET"}))
    cache = DecisionCache()
    facts = ASKED["allowed"]
    assert cache.preflight(open_route, facts).allowed
    assert cache.preflight(closed_route, facts) == preflight(closed_route, facts)
    assert cache.preflight(closed_route, facts) != preflight(open_route, facts)


def test_the_cache_is_bounded() -> None:
    """Past its size the oldest answers go; a key over MAX_KEY_CHARS is answered, not kept."""
    policy, cache = make_policy(allow_headers=frozenset(), allow_any_header=True), DecisionCache(size=8)
    for n in range(50):
        assert cache.preflight(policy, RequestFacts("OPTIONS", LOCAL, "PUT", (f"x-{n}",))).allowed
    assert len(cache) == 8
    huge = RequestFacts("OPTIONS", LOCAL, "PUT", ("x-" + "a" * DecisionCache.MAX_KEY_CHARS,))
    assert cache.preflight(policy, huge) == preflight(policy, huge)
    assert cache.preflight(policy, RequestFacts("OPTIONS", LOCAL, "PUT", ("x-49",))).allowed
    assert len(cache) == 8 and cache.preflight(policy, huge) is not cache.preflight(policy, huge)


JUDGED = {
    "allowed origin": RequestFacts("GET", LOCAL),
    "foreign origin": RequestFacts("GET", "https://evil.example"),
    "same origin": RequestFacts("POST", "http://proxy:8080", proxy_origin="http://proxy:8080"),
    "no origin, not a browser": RequestFacts("GET", None),
    "no origin, another site's page": RequestFacts("GET", None, fetch_site="cross-site",
                                                   referer_origin="https://evil.example"),
}


@pytest.mark.parametrize("facts", JUDGED.values(), ids=JUDGED.keys())
def test_a_cached_actual_decision_is_the_one_actual_makes(facts: RequestFacts) -> None:
    """For the same facts object, the first and repeated answers are cors.actual()'s, per policy."""
    policy, other, cache = make_policy(), make_policy(allow_origins=frozenset()), DecisionCache()
    first = cache.actual(policy, facts)
    assert first == actual(policy, facts) and cache.actual(policy, facts) is first
    assert cache.actual(other, facts) == actual(other, facts)
    equal = RequestFacts(*(getattr(facts, name) for name in facts.__slots__))
    assert cache.actual(policy, equal) == first and len(cache) == 3   # another object: judged again


def test_the_actual_decisions_are_bounded() -> None:
    """Past its size the oldest actual decisions go."""
    policy, cache = make_policy(), DecisionCache(size=4)
    kept = [RequestFacts("GET", LOCAL) for _ in range(10)]
    for facts in kept:
        assert cache.actual(policy, facts).allowed
    assert len(cache) == 4

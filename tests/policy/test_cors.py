"""The CORS decision as values: preflight() and actual() against the contract, one row per rule."""

from __future__ import annotations

import re
from typing import Any

import pytest

from corsproxy.model import CorsPolicy, Decision, RequestFacts
from corsproxy.policy.cors import actual, origin_allowed, preflight, vary_tokens

APP = "https://app.example.com"
LOCAL = "http://localhost:3000"
PREVIEW_REGEX = r"^https://[a-z0-9-]+\.preview\.example\.com$"
PREFLIGHT_VARY = "Origin, Access-Control-Request-Method, Access-Control-Request-Headers"

KEY_SOURCES = (
    ("allow_origins", "config/orders.yaml:7"),
    ("allow_origin_regex", "config/orders.yaml:8"),
    ("allow_methods", "config/orders.yaml:9"),
    ("allow_headers", "config/orders.yaml:10"),
    ("allow_credentials", "config/orders.yaml:11"),
    ("allow_private_network", "config/orders.yaml:12"),
)


def make_policy(**overrides: Any) -> CorsPolicy:
    """The policy config.py would compile for route /api of config/orders.yaml."""
    values: dict[str, Any] = {
        "allow_origins": frozenset({LOCAL, APP}),
        "allow_headers": frozenset({"content-type", "authorization"}),
        "scope": "route /api",
        "key_sources": KEY_SOURCES,
    }
    values.update(overrides)
    if isinstance(values.get("allow_origin_regex"), str):
        values["allow_origin_regex"] = re.compile(values["allow_origin_regex"])
    return CorsPolicy(**values)


def preflight_facts(origin: str = LOCAL, method: str = "PUT", headers: tuple[str, ...] = (),
                    private_network: bool = False) -> RequestFacts:
    return RequestFacts(method="OPTIONS", origin=origin, request_method=method,
                        request_headers=headers, request_private_network=private_network,
                        proxy_origin="http://localhost:8080")


def actual_facts(origin: str | None = LOCAL, method: str = "GET") -> RequestFacts:
    return RequestFacts(method=method, origin=origin, proxy_origin="http://localhost:8080")


def header_map(decision: Decision) -> dict[str, str]:
    names = [name.lower() for name, _ in decision.headers]
    assert len(names) == len(set(names)), f"duplicate headers in {decision.headers}"
    return {name.lower(): value for name, value in decision.headers}


def as_set(value: str) -> set[str]:
    """A list-valued header as a normalised set."""
    return {item.strip().lower() for item in value.split(",") if item.strip()}


def allow_headers_sent(decision: Decision) -> list[str]:
    return [name for name, _ in decision.headers
            if name.lower().startswith("access-control-allow-")]


def row(id_: str, *values: object) -> object:
    return pytest.param(*values, id=id_)


# --- origin matching ----------------------------------------------------------------------------

@pytest.mark.parametrize(
    ("policy_kw", "origin", "expected"),
    [
        row("listed-exact", {}, LOCAL, True),
        row("listed-https", {}, APP, True),
        row("upper-case-not-normalised", {}, "HTTP://LOCALHOST:3000", False),
        row("suffix-attack", {}, "https://app.example.com.evil.com", False),
        row("prefix-attack", {}, "https://evilapp.example.com", False),
        row("null", {}, "null", False),
        row("scheme-mismatch", {}, "http://app.example.com", False),
        row("port-mismatch", {}, "https://app.example.com:8443", False),
        row("trailing-slash", {}, "https://app.example.com/", False),
        row("empty", {}, "", False),
        row("regex-full-match", {"allow_origin_regex": PREVIEW_REGEX},
            "https://pr-12.preview.example.com", True),
        row("regex-partial-match-refused", {"allow_origin_regex": PREVIEW_REGEX},
            "https://x.preview.example.com.evil.com", False),
        row("regex-without-anchors-still-full",
            {"allow_origin_regex": r"https://[a-z]+\.example\.com"},
            "https://a.example.com.evil.com", False),
        row("any-origin", {"allow_any_origin": True, "allow_origins": frozenset()},
            "https://anything.test", True),
    ],
)
def test_origin_allowed(policy_kw: dict[str, Any], origin: str, expected: bool) -> None:
    """Origins match exactly, or fully against allow_origin_regex, or anything under ["*"]."""
    assert origin_allowed(make_policy(**policy_kw), origin) is expected


# --- preflight ----------------------------------------------------------------------------------

ALLOWED_PREFLIGHTS = [
    row("exact-origin-echoed",
        {}, {"method": "PUT"},
        {"access-control-allow-origin": LOCAL,
         "access-control-allow-methods": "GET, HEAD, POST, PUT, PATCH, DELETE",
         "access-control-max-age": "600", "vary": PREFLIGHT_VARY}),
    row("wildcard-origin-without-credentials",
        {"allow_any_origin": True, "allow_origins": frozenset()}, {"origin": "https://any.test"},
        {"access-control-allow-origin": "*"}),
    row("credentials-echo-origin-and-acac",
        {"allow_credentials": True}, {"origin": APP},
        {"access-control-allow-origin": APP, "access-control-allow-credentials": "true"}),
    row("no-acac-without-credentials",
        {}, {}, {"access-control-allow-credentials": None}),
    row("regex-origin-echoed",
        {"allow_origin_regex": PREVIEW_REGEX}, {"origin": "https://pr-1.preview.example.com"},
        {"access-control-allow-origin": "https://pr-1.preview.example.com"}),
    row("no-acah-when-no-headers-asked",
        {}, {"headers": ()}, {"access-control-allow-headers": None}),
    row("listed-headers-echoed-as-asked",
        {}, {"headers": ("content-type", "authorization")},
        {"access-control-allow-headers": "content-type, authorization"}),
    row("star-headers-echo-what-was-asked",
        {"allow_any_header": True, "allow_headers": frozenset()},
        {"headers": ("x-api-key", "x-trace")},
        {"access-control-allow-headers": "x-api-key, x-trace"}),
    row("star-headers-cover-authorization-without-credentials",
        {"allow_any_header": True, "allow_headers": frozenset()}, {"headers": ("authorization",)},
        {"access-control-allow-headers": "authorization"}),
    row("star-headers-cover-authorization-with-credentials",
        {"allow_any_header": True, "allow_headers": frozenset(), "allow_credentials": True},
        {"headers": ("x-api-key", "authorization")},
        {"access-control-allow-headers": "x-api-key, authorization",
         "access-control-allow-credentials": "true"}),
    row("safelisted-names-need-no-listing",
        {"allow_headers": frozenset()},
        {"headers": ("accept", "accept-language", "content-language", "content-type")},
        {"access-control-allow-headers": "accept, accept-language, content-language, content-type"}),
    row("json-post-needs-no-allow-headers",
        {"allow_headers": frozenset()}, {"method": "POST", "headers": ("content-type",)},
        {"access-control-allow-headers": "content-type"}),
    row("explicit-authorization-with-star-and-credentials",
        {"allow_any_header": True, "allow_headers": frozenset({"authorization"}),
         "allow_credentials": True},
        {"headers": ("authorization", "x-api-key")},
        {"access-control-allow-headers": "authorization, x-api-key"}),
    row("method-normalised-by-browsers-compared-upper",
        {}, {"method": "delete"}, {"access-control-allow-origin": LOCAL}),
    row("safelisted-method-needs-no-listing",
        {"allow_methods": frozenset({"PUT"})}, {"method": "POST"},
        {"access-control-allow-methods": "PUT"}),
    row("any-method-echoes-requested",
        {"allow_any_method": True}, {"method": "PROPFIND"},
        {"access-control-allow-methods": "PROPFIND"}),
    row("methods-in-canonical-order",
        {"allow_methods": frozenset({"PROPFIND", "OPTIONS", "DELETE", "GET", "MKCOL", "PATCH"})},
        {"method": "GET"},
        {"access-control-allow-methods": "GET, PATCH, DELETE, OPTIONS, MKCOL, PROPFIND"}),
    row("max-age-as-integer",
        {"max_age": 86400}, {}, {"access-control-max-age": "86400"}),
    row("private-network-asked-and-on",
        {"allow_private_network": True}, {"private_network": True},
        {"access-control-allow-private-network": "true"}),
    row("private-network-on-but-not-asked",
        {"allow_private_network": True}, {},
        {"access-control-allow-private-network": None}),
    row("vary-on-wildcard-preflight-too",
        {"allow_any_origin": True, "allow_origins": frozenset()}, {},
        {"vary": PREFLIGHT_VARY}),
]


@pytest.mark.parametrize(("policy_kw", "facts_kw", "expected"), ALLOWED_PREFLIGHTS)
def test_preflight_allowed(policy_kw: dict[str, Any], facts_kw: dict[str, Any],
                           expected: dict[str, str | None]) -> None:
    """An allowed preflight is 204 with the contract's headers (None: header absent)."""
    decision = preflight(make_policy(**policy_kw), preflight_facts(**facts_kw))
    assert (decision.allowed, decision.kind, decision.status, decision.reasons) == (
        True, "preflight", 204, ())
    headers = header_map(decision)
    for name, value in expected.items():
        assert headers.get(name) == value, name


REFUSED_ORIGINS = [
    row("foreign-origin", {}, {"origin": "http://localhost:5173"},
        ["origin 'http://localhost:5173' is not in allow_origins of route /api "
         "(config/orders.yaml:7); add it to allow_origins to allow it"]),
    row("attack-origin-suffix", {}, {"origin": "https://app.example.com.evil.com"},
        ["origin 'https://app.example.com.evil.com' is not in allow_origins"]),
    row("attack-origin-null", {}, {"origin": "null"},
        ["origin 'null' (a sandboxed iframe or a file:// page) is not allowed by route /api "
         "(config/orders.yaml:7)"]),
    row("regex-partial-match",
        {"allow_origin_regex": PREVIEW_REGEX}, {"origin": "https://x.preview.example.com.evil.com"},
        ["does not fully match allow_origin_regex",
         "(config/orders.yaml:7, config/orders.yaml:8)"]),
    row("origin-refusal-alone-is-enough",
        {"allow_methods": frozenset({"GET"})},
        {"origin": "https://evil.test", "method": "PATCH", "headers": ("x-api-key",)},
        ["origin 'https://evil.test' is not in allow_origins"]),
]


@pytest.mark.parametrize(("policy_kw", "facts_kw", "fragments"), REFUSED_ORIGINS)
def test_preflight_from_a_refused_origin_is_403_without_allow_headers(
        policy_kw: dict[str, Any], facts_kw: dict[str, Any], fragments: list[str]) -> None:
    """A refused origin: 403, one reason, no Access-Control-Allow-* header, the reason and the
    allow_origins line in X-Corsproxy-Refused / X-Corsproxy-Change."""
    decision = preflight(make_policy(**policy_kw), preflight_facts(**facts_kw))
    assert (decision.allowed, decision.kind, decision.status) == (False, "refused", 403)
    assert len(decision.reasons) == 1
    for fragment in fragments:
        assert fragment in decision.reasons[0]
    assert allow_headers_sent(decision) == []
    assert header_map(decision) == {"vary": PREFLIGHT_VARY,
                                    "x-corsproxy-refused": decision.reasons[0],
                                    "x-corsproxy-change": "config/orders.yaml:7"}
    assert decision.change == ("config/orders.yaml:7",)


# (count, policy, facts, reason fragments, ACAM, ACAH, the file:lines to change)
REFUSED_REQUESTS = [
    row("method-not-listed", 1,
        {"allow_methods": frozenset({"GET", "PUT"})}, {"method": "PURGE"},
        ["method 'PURGE' is not in allow_methods of route /api (config/orders.yaml:9); "
         "add it to allow_methods"], "GET, PUT", None, ("config/orders.yaml:9",)),
    row("header-not-listed", 1,
        {}, {"headers": ("content-type", "x-foo")},
        ["header 'x-foo' is not in allow_headers of route /api (config/orders.yaml:10); "
         "add it to allow_headers"], "GET, HEAD, POST, PUT, PATCH, DELETE",
        "content-type, authorization", ("config/orders.yaml:10",)),
    row("authorization-not-listed", 1,
        {"allow_headers": frozenset()}, {"method": "POST", "headers": ("authorization", "content-type")},
        ["header 'authorization' is not in allow_headers"], "GET, HEAD, POST, PUT, PATCH, DELETE",
        "content-type", ("config/orders.yaml:10",)),
    row("header-refused-nothing-else-allowed", 1,
        {"allow_headers": frozenset()}, {"headers": ("x-foo",)},
        ["header 'x-foo'"], "GET, HEAD, POST, PUT, PATCH, DELETE", None, ("config/orders.yaml:10",)),
    row("private-network-asked-but-off", 1,
        {}, {"private_network": True},
        ["Access-Control-Request-Private-Network: true", "allow_private_network is off for "
         "route /api (config/orders.yaml:12); set allow_private_network: true"],
        "GET, HEAD, POST, PUT, PATCH, DELETE", None, ("config/orders.yaml:12",)),
    row("lower-case-method-fixed-in-the-page", 1,
        {"allow_any_method": True}, {"method": "patch"},
        ["method 'patch' is not upper-case"], "PATCH", None, ()),
    row("every-problem-listed", 4,
        {"allow_methods": frozenset({"GET"})},
        {"method": "DELETE", "headers": ("x-a", "accept", "x-b"), "private_network": True},
        ["method 'DELETE'", "header 'x-a'", "header 'x-b'", "allow_private_network is off"],
        "GET", "accept, authorization, content-type",
        ("config/orders.yaml:9", "config/orders.yaml:10", "config/orders.yaml:12")),
]


@pytest.mark.parametrize(("count", "policy_kw", "facts_kw", "fragments", "methods", "names", "change"),
                         REFUSED_REQUESTS)
def test_preflight_asking_too_much_lets_the_browser_name_what_is_missing(
        count: int, policy_kw: dict[str, Any], facts_kw: dict[str, Any], fragments: list[str],
        methods: str, names: str | None, change: tuple[str, ...]) -> None:
    """An allowed origin asking for a method, header or private network the route does not allow:
    204 with the origin echoed and only what IS allowed, Max-Age 0, the reasons in a header."""
    decision = preflight(make_policy(**policy_kw), preflight_facts(**facts_kw))
    assert (decision.allowed, decision.kind, decision.status) == (False, "refused", 204)
    assert len(decision.reasons) == count
    text = "\n".join(decision.reasons)
    for fragment in fragments:
        assert fragment in text
    headers = header_map(decision)
    assert headers["access-control-allow-origin"] == facts_kw.get("origin", LOCAL)
    assert headers["access-control-allow-methods"] == methods
    assert headers.get("access-control-allow-headers") == names
    assert "*" not in (names or "")
    for name in facts_kw.get("headers", ()):
        if f"header '{name}'" in text:
            assert name not in as_set(names or "")
    assert "access-control-allow-private-network" not in headers
    assert headers["access-control-max-age"] == "0"
    assert headers["vary"] == PREFLIGHT_VARY
    assert headers["x-corsproxy-refused"] == (
        decision.reasons[0] if count == 1
        else "; ".join(f"({n}) {r}" for n, r in enumerate(decision.reasons, 1)))
    assert decision.change == change
    assert headers.get("x-corsproxy-change") == (", ".join(change) or None)


def test_credentialed_refusal_keeps_the_credentials_header() -> None:
    """With credentials on, the refusal's preflight carries ACAC too, so the browser's CORS check
    passes and the console names the missing header."""
    decision = preflight(make_policy(allow_credentials=True), preflight_facts(headers=("x-foo",)))
    assert decision.status == 204
    assert header_map(decision)["access-control-allow-credentials"] == "true"


@pytest.mark.parametrize(("count", "policy_kw", "facts_kw", "fragments", "methods", "names", "change"),
                         REFUSED_REQUESTS)
def test_refusal_reasons_name_key_and_file_line(count: int, policy_kw: dict[str, Any],
                                                facts_kw: dict[str, Any], fragments: list[str],
                                                methods: str, names: str | None,
                                                change: tuple[str, ...]) -> None:
    """Every config reason names a cors key, the scope and the file:line to change."""
    decision = preflight(make_policy(**policy_kw), preflight_facts(**facts_kw))
    for reason in decision.reasons:
        if "fetch() call" in reason:
            continue    # the fix is in the page, not in the config
        assert "route /api" in reason
        assert re.search(r"\(config/orders\.yaml:\d+", reason)
        assert re.search(r"allow_(origins|methods|headers|private_network)", reason)


def test_refusal_header_escapes_what_the_request_sent() -> None:
    """A refused origin's bytes are escaped in X-Corsproxy-Refused: the value stays printable ASCII."""
    decision = preflight(make_policy(), preflight_facts(origin="http://\u00e9vil.test\x01"))
    value = header_map(decision)["x-corsproxy-refused"]
    assert value.isascii() and value.isprintable()
    assert "\\xe9vil.test\\x01" in value


def test_lower_case_method_is_refused_with_the_page_fix() -> None:
    """fetch() sends 'patch' as written and methods compare byte for byte: refuse, say to write PATCH."""
    decision = preflight(make_policy(), preflight_facts(method="patch"))
    assert (decision.allowed, decision.status) == (False, 204)
    assert decision.reasons == (
        "method 'patch' is not upper-case: browsers upper-case only DELETE, GET, HEAD, OPTIONS, "
        "POST and PUT, and methods are case-sensitive; write 'PATCH' in the page's fetch() call",)


def test_preflight_requested_headers_compared_as_set() -> None:
    """Access-Control-Allow-Headers covers exactly the names asked, whatever their order."""
    facts = preflight_facts(headers=("authorization", "content-type"))
    decision = preflight(make_policy(), facts)
    assert as_set(header_map(decision)["access-control-allow-headers"]) == {
        "authorization", "content-type"}


# --- actual requests ----------------------------------------------------------------------------

ACTUAL_ROWS = [
    row("allowed-origin-echoed",
        {}, {"origin": LOCAL}, (True, "cors", None),
        {"access-control-allow-origin": LOCAL, "vary": "Origin",
         "access-control-allow-credentials": None, "access-control-expose-headers": None}),
    row("wildcard-without-credentials-no-vary",
        {"allow_any_origin": True, "allow_origins": frozenset()}, {"origin": "https://x.test"},
        (True, "cors", None), {"access-control-allow-origin": "*", "vary": None}),
    row("credentials-exact-echo-and-acac",
        {"allow_credentials": True}, {"origin": APP}, (True, "cors", None),
        {"access-control-allow-origin": APP, "access-control-allow-credentials": "true",
         "vary": "Origin"}),
    row("expose-headers",
        {"expose_headers": ("X-Total-Count", "ETag")}, {}, (True, "cors", None),
        {"access-control-expose-headers": "X-Total-Count, ETag"}),
    row("regex-origin",
        {"allow_origin_regex": PREVIEW_REGEX}, {"origin": "https://pr-9.preview.example.com"},
        (True, "cors", None), {"access-control-allow-origin": "https://pr-9.preview.example.com"}),
    row("no-origin-only-vary",
        {}, {"origin": None}, (True, "no-origin", None), {"vary": "Origin"}),
    row("no-origin-wildcard-no-headers",
        {"allow_any_origin": True, "allow_origins": frozenset()}, {"origin": None},
        (True, "no-origin", None), {}),
    row("same-origin-only-vary",
        {}, {"origin": "http://localhost:8080"}, (True, "same-origin", None), {"vary": "Origin"}),
    row("foreign-origin-refused",
        {}, {"origin": "http://localhost:5173"}, (False, "refused", 403), {"vary": "Origin"}),
    row("attack-origin-prefix-refused",
        {}, {"origin": "https://evilapp.example.com"}, (False, "refused", 403), {"vary": "Origin"}),
    row("scheme-mismatch-refused",
        {}, {"origin": "http://app.example.com"}, (False, "refused", 403), {"vary": "Origin"}),
    row("port-mismatch-refused",
        {}, {"origin": "https://app.example.com:8443"}, (False, "refused", 403),
        {"vary": "Origin"}),
]


@pytest.mark.parametrize(("policy_kw", "facts_kw", "outcome", "expected"), ACTUAL_ROWS)
def test_actual(policy_kw: dict[str, Any], facts_kw: dict[str, Any],
                outcome: tuple[bool, str, int | None], expected: dict[str, str | None]) -> None:
    """Actual requests: CORS headers for allowed origins, none otherwise, 403 for foreign ones."""
    decision = actual(make_policy(**policy_kw), actual_facts(**facts_kw))
    assert (decision.allowed, decision.kind, decision.status) == outcome
    headers = header_map(decision)
    if expected == {}:
        assert headers == {}
    for name, value in expected.items():
        assert headers.get(name) == value, name
    if decision.kind != "cors":
        assert allow_headers_sent(decision) == []


def test_actual_refusal_reason() -> None:
    """A refused actual request says which origin, which key and where."""
    decision = actual(make_policy(), actual_facts(origin="http://localhost:5173"))
    assert decision.reasons == (
        "origin 'http://localhost:5173' is not in allow_origins of route /api "
        "(config/orders.yaml:7); add it to allow_origins to allow it",
    )


NO_ORIGIN_ROWS = [
    row("curl-no-fetch-metadata-forwarded", None, None, (True, "no-origin")),
    row("same-origin-fetch-metadata", "same-origin", None, (True, "same-origin")),
    row("typed-by-the-user", "none", None, (True, "no-origin")),
    row("cross-site-from-allowed-page", "cross-site", LOCAL, (True, "no-origin")),
    row("same-site-from-allowed-page", "same-site", APP, (True, "no-origin")),
    row("cross-site-img-script-refused", "cross-site", "http://attacker.test:8000", (False, "refused")),
    row("same-site-other-port-refused", "same-site", "http://localhost:5173", (False, "refused")),
    row("cross-site-without-referer-refused", "cross-site", None, (False, "refused")),
    row("proxy-own-origin-in-referer-is-not-same-origin", "cross-site", "http://localhost:8080",
        (False, "refused")),
    row("unknown-fetch-site-value-refused", "weird", None, (False, "refused")),
]


@pytest.mark.parametrize(("fetch_site", "referer_origin", "outcome"), NO_ORIGIN_ROWS)
def test_browser_request_without_origin(fetch_site, referer_origin, outcome) -> None:
    """Without Origin, Sec-Fetch-Site marks a browser's request: forwarded only when it is the
    user's or same-origin, or its Referer's origin is allowed; never a CORS header."""
    facts = RequestFacts(method="GET", origin=None, proxy_origin="http://localhost:8080",
                         fetch_site=fetch_site, referer_origin=referer_origin)
    decision = actual(make_policy(), facts)
    assert (decision.allowed, decision.kind) == outcome
    assert allow_headers_sent(decision) == []
    assert decision.status == (None if decision.allowed else 403)


def test_foreign_initiator_refusal_names_origin_and_line() -> None:
    """The refusal of a foreign <img>/<script> names the page's origin and the allow_origins line."""
    facts = RequestFacts(method="GET", origin=None, fetch_site="cross-site",
                         referer_origin="http://attacker.test:8000")
    (reason,) = actual(make_policy(), facts).reasons
    assert "'http://attacker.test:8000'" in reason and "config/orders.yaml:7" in reason
    assert "Sec-Fetch-Site: cross-site" in reason


def test_same_origin_needs_a_proxy_origin() -> None:
    """Without a proxy origin nothing is same-origin, so the policy judges."""
    facts = RequestFacts(method="GET", origin="http://localhost:8080", proxy_origin=None)
    assert actual(make_policy(), facts).kind == "refused"


def test_allowed_origin_does_not_leak_between_credentialed_requests() -> None:
    """Each decision carries its own request's origin (Starlette once shared a header dict)."""
    policy = make_policy(allow_credentials=True)
    first = actual(policy, actual_facts(origin=LOCAL))
    second = actual(policy, actual_facts(origin=APP))
    foreign = actual(policy, actual_facts(origin="https://evil.test"))
    assert header_map(first)["access-control-allow-origin"] == LOCAL
    assert header_map(second)["access-control-allow-origin"] == APP
    assert allow_headers_sent(foreign) == []
    first_preflight = preflight(policy, preflight_facts(origin=LOCAL, headers=("x-a",)))
    second_preflight = preflight(policy, preflight_facts(origin=APP, headers=("content-type",)))
    assert "access-control-allow-origin" not in header_map(
        preflight(policy, preflight_facts(origin="https://evil.test")))
    assert header_map(first_preflight)["access-control-allow-origin"] == LOCAL
    assert header_map(second_preflight)["access-control-allow-origin"] == APP
    assert header_map(second_preflight)["access-control-allow-headers"] == "content-type"


@pytest.mark.parametrize(
    ("policy_kw", "is_preflight", "expected"),
    [
        row("preflight-always-three", {}, True,
            ("Origin", "Access-Control-Request-Method", "Access-Control-Request-Headers")),
        row("preflight-wildcard-three", {"allow_any_origin": True}, True,
            ("Origin", "Access-Control-Request-Method", "Access-Control-Request-Headers")),
        row("actual-listed-origins", {}, False, ("Origin",)),
        row("actual-regex", {"allow_origins": frozenset(), "allow_origin_regex": PREVIEW_REGEX},
            False, ("Origin",)),
        row("actual-wildcard-none", {"allow_any_origin": True}, False, ()),
    ],
)
def test_vary_tokens(policy_kw: dict[str, Any], is_preflight: bool,
                     expected: tuple[str, ...]) -> None:
    """Vary names what the answer depends on; nothing for `*` on actual requests."""
    assert vary_tokens(make_policy(**policy_kw), preflight=is_preflight) == expected


@pytest.mark.parametrize(("facts_kw", "expected"), [
    row("origin", {"origin": "http://localhost:4200"},
        "origin 'http://localhost:4200' is not in allow_origins of route /api (--allow-origin); "
        "pass --allow-origin http://localhost:4200 to allow it"),
    row("header", {"headers": ("x-foo",)},
        "header 'x-foo' is not in allow_headers of route /api (--allow-header); "
        "pass --allow-header x-foo to allow it"),
    row("method", {"method": "PURGE"},
        "method 'PURGE' is not in allow_methods of route /api (--allow-method); "
        "pass --allow-method PURGE to allow it"),
])
def test_serve_upstream_refusals_name_the_flag_to_pass(facts_kw: dict[str, Any], expected: str) -> None:
    """A policy from `serve --upstream` flags: the fix is the flag to pass, with the value."""
    flags = (("allow_origins", "--allow-origin"), ("allow_methods", "--allow-method"),
             ("allow_headers", "--allow-header"))
    decision = preflight(make_policy(key_sources=flags), preflight_facts(**facts_kw))
    assert decision.reasons == (expected,)

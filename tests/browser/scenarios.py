"""What a page does and what its JavaScript may read, as data.

The browser suite (tests/browser/test_scenarios.py) plays every scenario in real Chromium; a
differential test of `corsproxy probe` can iterate the same rows and compare its verdict with
the browser's. This module imports nothing but the standard library, so importing it never
starts Playwright or a server.

Vocabulary:
- `page`:   "allowed" = http://localhost:<port> listed in the proxy's allow_origins;
            "foreign" = another localhost port, listed nowhere (same SITE, different ORIGIN).
- `target`: "proxy" = http://localhost:<proxy port> (paths under /api, /down, /slow);
            "proxy-by-ip" = the same proxy as http://127.0.0.1:<proxy port> (another SITE);
            "upstream" = http://localhost:<upstream port> directly (paths under /v1).
- `kind`:   "fetch" (each step is one fetch()), "eventsource", "websocket".
- `setup`:  fetches made first from the ALLOWED page through the proxy (e.g. a login that
            leaves a cookie), whose outcome is not judged; the upstream's record is then cleared.
- `expect.upstream`: exactly the requests ("METHOD /path") the upstream API must have received
            during the judged steps; None = not checked. A preflight is never forwarded, so
            a preflighted call shows up once, as the actual method.

The upstream API (tests/browser/apps.py) sends no CORS headers at all. Its endpoints:
/v1/items (JSON, X-Total-Count: 3, X-Internal), /v1/echo (echoes method, headers, body),
/v1/login (Set-Cookie with Domain=<upstream host>), /v1/me (200 only with that cookie),
/v1/redirect (302 to /v1/items), /v1/status/<code>, /v1/sse (one event per release),
/v1/ws (echo), /v1/slow (never answers).
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass

ALLOWED, FOREIGN = "allowed", "foreign"
PROXY, PROXY_BY_IP, UPSTREAM = "proxy", "proxy-by-ip", "upstream"
FETCH, EVENTSOURCE, WEBSOCKET = "fetch", "eventsource", "websocket"

# The session cookie /v1/login sets and /v1/me wants.
SESSION_COOKIE = "session=s3cret-session"
SSE_EVENTS = ("event 0", "event 1", "event 2")
WS_MESSAGE = "hello through the proxy"


@dataclass(frozen=True)
class Request:
    """One fetch() as the page makes it: fetch(base + path, {method, headers, body, credentials})."""

    method: str = "GET"
    path: str = "/api/items"
    headers: tuple[tuple[str, str], ...] = ()
    body: str | None = None
    credentials: str = "same-origin"   # fetch's mode: "omit" | "same-origin" | "include"
    read_header: str | None = None      # a response header the page tries to read

    def as_js(self) -> dict:
        """The argument the page's runner takes (tests/browser/page.html: corsRun)."""
        return {"method": self.method, "path": self.path, "headers": dict(self.headers),
                "body": self.body, "credentials": self.credentials, "read_header": self.read_header}


@dataclass(frozen=True)
class Expect:
    """What the page's JavaScript can read after the last step.

    readable=False means the browser hid the response: fetch() rejected with `error`
    ("TypeError"), the EventSource failed before any event, or the WebSocket never opened.
    """

    readable: bool
    status: int | None = None
    body_contains: tuple[str, ...] = ()
    json_subset: dict | None = None          # keys/values the JSON body must contain
    header: tuple[str, str | None] | None = None   # (read_header's name, the value the page reads; None = hidden)
    redirected: bool | None = None
    error: str = "TypeError"
    upstream: tuple[str, ...] | None = None  # "METHOD /path" the upstream received, in order
    upstream_saw_cookie: bool | None = None  # the last upstream request carried SESSION_COOKIE


@dataclass(frozen=True)
class Scenario:
    name: str
    does: str                      # what the page does, in words
    expect: Expect
    steps: tuple[Request, ...] = ()
    page: str = ALLOWED
    target: str = PROXY
    kind: str = FETCH
    setup: tuple[Request, ...] = ()
    proves: str = ""

    @property
    def through_proxy_from_allowed_page(self) -> bool:
        return self.page == ALLOWED and self.target == PROXY


JSON_HEADERS = (("Content-Type", "application/json"),)
LOGIN = Request("POST", "/api/login", JSON_HEADERS, '{"user": "ada"}', credentials="include")

CONTROL = (
    Scenario(
        "direct-get-is-blocked",
        "fetch(upstream + '/v1/items') straight from the allowed page, no proxy",
        Expect(readable=False, upstream=("GET /v1/items",)),
        steps=(Request("GET", "/v1/items"),),
        target=UPSTREAM,
        proves="the browser enforces CORS: the upstream answered, yet the page gets a TypeError",
    ),
)

THROUGH_PROXY = (
    Scenario(
        "simple-get",
        "fetch(proxy + '/api/items')",
        Expect(readable=True, status=200, json_subset={"count": 3}, upstream=("GET /v1/items",)),
        steps=(Request("GET", "/api/items"),),
    ),
    Scenario(
        "preflighted-json-post-with-authorization",
        "fetch POST application/json with Authorization: Bearer t0ken",
        Expect(readable=True, status=200,
               json_subset={"method": "POST", "authorization": "Bearer t0ken", "body": '{"qty": 2}'},
               upstream=("POST /v1/echo",)),
        steps=(Request("POST", "/api/echo", (*JSON_HEADERS, ("Authorization", "Bearer t0ken")), '{"qty": 2}'),),
        proves="the preflight is answered by the proxy (never forwarded) and the actual POST is readable",
    ),
    Scenario(
        "put",
        "fetch PUT application/json",
        Expect(readable=True, status=200, json_subset={"method": "PUT", "body": '{"qty": 3}'},
               upstream=("PUT /v1/echo",)),
        steps=(Request("PUT", "/api/echo", JSON_HEADERS, '{"qty": 3}'),),
    ),
    Scenario(
        "delete",
        "fetch DELETE",
        Expect(readable=True, status=200, json_subset={"method": "DELETE"}, upstream=("DELETE /v1/echo",)),
        steps=(Request("DELETE", "/api/echo"),),
    ),
    Scenario(
        "credentials-cookie-login",
        "POST /api/login with credentials:'include' (Set-Cookie with Domain=<upstream host>), "
        "then GET /api/me with credentials:'include'",
        Expect(readable=True, status=200, json_subset={"user": "ada"},
               upstream=("POST /v1/login", "GET /v1/me"), upstream_saw_cookie=True),
        steps=(LOGIN, Request("GET", "/api/me", credentials="include")),
        proves="the proxy strips Domain so the cookie lands on localhost, and the browser sends it back",
    ),
    Scenario(
        "exposed-header-readable",
        "fetch(proxy + '/api/items'), then response.headers.get('X-Total-Count')",
        Expect(readable=True, status=200, header=("X-Total-Count", "3")),
        steps=(Request("GET", "/api/items", read_header="X-Total-Count"),),
    ),
    Scenario(
        "unexposed-header-hidden",
        "fetch(proxy + '/api/items'), then response.headers.get('X-Internal')",
        Expect(readable=True, status=200, header=("X-Internal", None)),
        steps=(Request("GET", "/api/items", read_header="X-Internal"),),
        proves="only headers in expose_headers (and the safelisted ones) are readable",
    ),
    Scenario(
        "eventsource-streams",
        "new EventSource(proxy + '/api/sse'); the upstream sends each event only after the page saw the previous one",
        Expect(readable=True, body_contains=SSE_EVENTS, upstream=("GET /v1/sse",)),
        steps=(Request("GET", "/api/sse", (("Accept", "text/event-stream"),)),),
        kind=EVENTSOURCE,
    ),
    Scenario(
        "websocket-echo",
        f"new WebSocket('ws://localhost:<proxy>/api/ws'), send {WS_MESSAGE!r}",
        Expect(readable=True, body_contains=(f"echo: {WS_MESSAGE}",), upstream=("GET /v1/ws",)),
        steps=(Request("GET", "/api/ws"),),
        kind=WEBSOCKET,
    ),
    Scenario(
        "redirect-followed",
        "fetch(proxy + '/api/redirect'); the upstream answers 302 to its own /v1/items",
        Expect(readable=True, status=200, json_subset={"count": 3}, redirected=True,
               upstream=("GET /v1/redirect", "GET /v1/items")),
        steps=(Request("GET", "/api/redirect"),),
        proves="the Location is rewritten back through the proxy, so the followed request is CORS-allowed too",
    ),
    Scenario(
        "upstream-500-readable",
        "fetch(proxy + '/api/status/500')",
        Expect(readable=True, status=500, body_contains=("upstream says 500",), upstream=("GET /v1/status/500",)),
        steps=(Request("GET", "/api/status/500"),),
    ),
    Scenario(
        "upstream-down-502-readable",
        "fetch(proxy + '/down/items'); that route's upstream has been stopped",
        Expect(readable=True, status=502, json_subset={"error": "upstream unreachable", "route": "/down"}),
        steps=(Request("GET", "/down/items"),),
        proves="a dead upstream is a readable 502 with a JSON body, not a CORS TypeError",
    ),
    Scenario(
        "slow-upstream-504-readable",
        "fetch(proxy + '/slow/slow'); the upstream never answers, the route's timeout is 1s",
        Expect(readable=True, status=504, json_subset={"error": "upstream timeout", "route": "/slow"},
               upstream=("GET /v1/slow",)),
        steps=(Request("GET", "/slow/slow"),),
    ),
)

FROM_FOREIGN_PAGE = (
    Scenario(
        "foreign-get-refused",
        "fetch(proxy + '/api/items') from the not-allowed origin",
        Expect(readable=False, upstream=()),
        steps=(Request("GET", "/api/items"),),
        page=FOREIGN,
    ),
    Scenario(
        "foreign-simple-post-with-cookie-not-forwarded",
        "after a login on the allowed page, the not-allowed page sends a simple text/plain POST "
        "with credentials:'include' through the proxy",
        Expect(readable=False, upstream=()),
        steps=(Request("POST", "/api/echo", (("Content-Type", "text/plain"),), "transfer=all",
                       credentials="include"),),
        page=FOREIGN,
        setup=(LOGIN,),
        proves="the browser SENDS a simple request (with the cookie); the proxy's 403 keeps it from the upstream",
    ),
    Scenario(
        "foreign-simple-post-direct-reaches-upstream",
        "the same text/plain POST with credentials:'include', sent by the not-allowed page straight "
        "to the upstream (the control for the row above)",
        Expect(readable=False, upstream=("POST /v1/echo",), upstream_saw_cookie=True),
        steps=(Request("POST", "/v1/echo", (("Content-Type", "text/plain"),), "transfer=all",
                       credentials="include"),),
        page=FOREIGN,
        target=UPSTREAM,
        setup=(LOGIN,),
        proves="Chromium sends a cross-origin simple request with localhost cookies (all localhost "
               "ports are one site); only reading is blocked",
    ),
    Scenario(
        "foreign-websocket-refused",
        "new WebSocket('ws://localhost:<proxy>/api/ws') from the not-allowed origin",
        Expect(readable=False, upstream=()),
        steps=(Request("GET", "/api/ws"),),
        page=FOREIGN,
        kind=WEBSOCKET,
    ),
)

# What Chromium does that a proxy user must design for (see docs/BROWSER.md).
CHROMIUM_RULES = (
    Scenario(
        "cookie-lost-when-proxy-is-called-as-127.0.0.1",
        "the allowed page (on localhost) logs in through http://127.0.0.1:<proxy>, then calls "
        "/api/me there with credentials:'include'",
        Expect(readable=True, status=401, upstream=("POST /v1/login", "GET /v1/me"), upstream_saw_cookie=False),
        steps=(LOGIN, Request("GET", "/api/me", credentials="include")),
        target=PROXY_BY_IP,
        proves="localhost and 127.0.0.1 are different sites: CORS passes, but the cookie is neither "
               "kept nor sent; page and proxy must use the same host name",
    ),
)

ALL = CONTROL + THROUGH_PROXY + FROM_FOREIGN_PAGE + CHROMIUM_RULES


def blocked(scenario: Scenario) -> Scenario:
    """The same page actions against a proxy that allows no origin: nothing is readable and
    nothing reaches the upstream (preflights are refused, actual requests get 403 unforwarded)."""
    return dataclasses.replace(scenario, name=f"{scenario.name}-no-origin-allowed",
                               expect=Expect(readable=False, upstream=()))


def by_name(name: str) -> Scenario:
    for scenario in ALL:
        if scenario.name == name:
            return scenario
    raise KeyError(name)

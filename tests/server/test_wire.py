"""The contract's wire rules, through a real proxy to a real loopback upstream."""

from __future__ import annotations

import asyncio
import json

import aiohttp
import pytest
import structlog

from tests.conftest import ALLOWED, FOREIGN, raw_http, status_of
from tests.upstream_app import RELEASE


def names(value: str | None) -> set[str]:
    """A list-valued header as a normalised set."""
    return {v.strip().lower() for v in (value or "").split(",") if v.strip()}


def cors_names(headers) -> set[str]:
    return {k.lower() for k in headers if k.lower().startswith("access-control-")}


# --- preflights -----------------------------------------------------------------------------

async def test_allowed_preflight_is_answered_by_the_proxy_with_204(proxy, received):
    """An allowed preflight gets 204 with the exact origin, methods, headers, max-age, Vary."""
    r = await proxy.options("/api/orders", headers={
        "Origin": ALLOWED, "Access-Control-Request-Method": "PUT",
        "Access-Control-Request-Headers": "content-type,authorization"})
    assert r.status == 204
    assert r.headers["Access-Control-Allow-Origin"] == ALLOWED
    assert "PUT" in {m.upper() for m in names(r.headers["Access-Control-Allow-Methods"])}
    assert {"content-type", "authorization"} <= names(r.headers["Access-Control-Allow-Headers"])
    assert r.headers["Access-Control-Max-Age"] == "600"
    assert names(r.headers["Vary"]) == {"origin", "access-control-request-method", "access-control-request-headers"}
    assert "Access-Control-Allow-Credentials" not in r.headers
    assert received == []  # never forwarded


async def test_preflight_from_a_foreign_origin_is_403_with_no_allow_headers(proxy, received):
    """A refused preflight is a 403 with a plain-text reason and no Access-Control-Allow-* header."""
    r = await proxy.options("/api/orders", headers={"Origin": FOREIGN, "Access-Control-Request-Method": "GET"})
    assert r.status == 403
    assert not {n for n in cors_names(r.headers) if n.startswith("access-control-allow-")}
    body = await r.text()
    assert FOREIGN in body and "allow_origins" in body
    assert received == []


async def test_preflight_for_a_header_not_allowed_names_it_for_the_console(proxy, received):
    """An allowed origin asking for a header outside allow_headers: 204 with the origin echoed,
    only the allowed names, Max-Age 0, and the reason in X-Corsproxy-Refused and the log line;
    never forwarded."""
    with structlog.testing.capture_logs() as logged:
        r = await proxy.options("/api/x", headers={"Origin": ALLOWED, "Access-Control-Request-Method": "GET",
                                                   "Access-Control-Request-Headers": "x-api-key"})
    assert r.status == 204
    assert r.headers["Access-Control-Allow-Origin"] == ALLOWED
    assert "x-api-key" not in names(r.headers.get("Access-Control-Allow-Headers"))
    assert "*" not in r.headers.get("Access-Control-Allow-Headers", "")
    assert r.headers["Access-Control-Max-Age"] == "0"
    assert names(r.headers["Vary"]) == {"origin", "access-control-request-method", "access-control-request-headers"}
    assert "header 'x-api-key' is not in allow_headers" in r.headers["X-Corsproxy-Refused"]
    assert r.headers["X-Corsproxy-Change"].endswith("corsproxy.yaml:4")  # the allow_headers line
    assert received == []
    (line,) = [entry for entry in logged if entry["event"] == "refused"]
    assert (line["status"], line["cors"], line["why"]) == (204, "refused", r.headers["X-Corsproxy-Refused"])


async def test_preflight_for_a_method_not_allowed_lists_the_allowed_methods(make_proxy, received):
    """allow_methods limits the methods a preflight may ask for; the answer lists the allowed ones."""
    client = await make_proxy("""
        routes:
          - prefix: /api
            upstream: {upstream}/v1
            cors: {{allow_origins: [http://localhost:3000], allow_methods: [GET, POST]}}
    """)
    r = await client.options("/api/x", headers={"Origin": ALLOWED, "Access-Control-Request-Method": "DELETE"})
    assert r.status == 204 and r.headers["Access-Control-Allow-Methods"] == "GET, POST"
    assert r.headers["Access-Control-Allow-Origin"] == ALLOWED
    assert "method 'DELETE' is not in allow_methods" in r.headers["X-Corsproxy-Refused"]
    assert received == []


async def test_wildcard_origin_without_credentials_answers_star(make_proxy):
    """allow_origins ["*"] without credentials sends Access-Control-Allow-Origin: *."""
    client = await make_proxy("""
        cors: {{allow_origins: ["*"]}}
        routes: [{{prefix: /api, upstream: "{upstream}/v1"}}]
    """)
    r = await client.options("/api/x", headers={"Origin": FOREIGN, "Access-Control-Request-Method": "GET"})
    assert r.status == 204 and r.headers["Access-Control-Allow-Origin"] == "*"
    r = await client.get("/api/x", headers={"Origin": FOREIGN})
    assert r.status == 200 and r.headers["Access-Control-Allow-Origin"] == "*"


async def test_credentials_echo_the_exact_origin(make_proxy):
    """With credentials on, the exact origin is echoed with Allow-Credentials: true."""
    client = await make_proxy("""
        cors: {{allow_origins: [http://localhost:3000], allow_credentials: true}}
        routes: [{{prefix: /api, upstream: "{upstream}/v1"}}]
    """)
    r = await client.get("/api/x", headers={"Origin": ALLOWED})
    assert r.headers["Access-Control-Allow-Origin"] == ALLOWED
    assert r.headers["Access-Control-Allow-Credentials"] == "true"


async def test_private_network_preflight_answered_only_when_on(make_proxy):
    """Access-Control-Request-Private-Network gets Allow-Private-Network only when the route allows it."""
    on = await make_proxy("""
        cors: {{allow_origins: [http://localhost:3000], allow_private_network: true}}
        routes: [{{prefix: /api, upstream: "{upstream}/v1"}}]
    """)
    asked = {"Origin": ALLOWED, "Access-Control-Request-Method": "GET", "Access-Control-Request-Private-Network": "true"}
    r = await on.options("/api/x", headers=asked)
    assert r.status == 204 and r.headers["Access-Control-Allow-Private-Network"] == "true"


async def test_private_network_preflight_refused_when_off(proxy):
    """A private-network preflight to a route that does not allow it is refused."""
    r = await proxy.options("/api/x", headers={"Origin": ALLOWED, "Access-Control-Request-Method": "GET",
                                               "Access-Control-Request-Private-Network": "true"})
    assert r.status == 204 and "Access-Control-Allow-Private-Network" not in r.headers
    assert "allow_private_network is off" in r.headers["X-Corsproxy-Refused"]


async def test_preflight_on_an_unmatched_path_is_judged_by_file_defaults(proxy):
    """A preflight for a path with no route gets 204 when the file defaults allow the origin."""
    r = await proxy.options("/nothing/here", headers={"Origin": ALLOWED, "Access-Control-Request-Method": "GET"})
    assert r.status == 204 and r.headers["Access-Control-Allow-Origin"] == ALLOWED
    r = await proxy.options("/nothing/here", headers={"Origin": FOREIGN, "Access-Control-Request-Method": "GET"})
    assert r.status == 403


async def test_options_without_request_method_is_forwarded(proxy, received):
    """OPTIONS without Access-Control-Request-Method is not a preflight: it goes upstream."""
    r = await proxy.options("/api/x", headers={"Origin": ALLOWED})
    assert r.status == 200 and received[-1]["method"] == "OPTIONS"
    assert r.headers["Access-Control-Allow-Origin"] == ALLOWED


# --- actual requests ------------------------------------------------------------------------

async def test_allowed_origin_is_forwarded_with_cors_headers(proxy, received):
    """An allowed Origin is forwarded; the response gets ACAO, Expose-Headers and Vary: Origin."""
    r = await proxy.get("/api/orders?x=1", headers={"Origin": ALLOWED})
    assert r.status == 200
    assert r.headers["Access-Control-Allow-Origin"] == ALLOWED
    assert names(r.headers["Access-Control-Expose-Headers"]) == {"x-total-count"}
    assert "origin" in names(r.headers["Vary"])
    assert received[-1]["raw_path"] == "/v1/orders?x=1"


async def test_foreign_origin_is_403_and_never_forwarded(proxy, received):
    """A request from a foreign Origin is refused before anything reaches the upstream."""
    for method in ("GET", "POST", "DELETE"):
        r = await proxy.request(method, "/api/orders", headers={"Origin": FOREIGN, "Cookie": "a=b"}, data=b"x=1")
        assert r.status == 403
        assert "Access-Control-Allow-Origin" not in r.headers
    assert received == []


@pytest.mark.parametrize("origin", [
    "https://localhost:3000", "http://localhost:3001", "http://localhost", "http://LOCALHOST:3000",
    "http://localhost:3000.evil.com", "null", "http://127.0.0.1:3000", "http://localhost:3000/",
], ids=["scheme", "port", "no-port", "case", "suffix", "null", "ip-literal", "trailing-slash"])
async def test_near_miss_origins_are_foreign(proxy, received, origin):
    """Origins are compared exactly: scheme, host, port, suffixes and null are all foreign."""
    r = await proxy.get("/api/x", headers={"Origin": origin})
    assert r.status == 403
    assert received == []


async def test_same_origin_request_is_forwarded_without_cors_headers(proxy, received):
    """An Origin equal to the proxy's own origin is same-origin: forwarded, no ACAO."""
    own = f"http://{proxy.host}:{proxy.port}"
    r = await proxy.post("/api/form", headers={"Origin": own}, data=b"a=1")
    assert r.status == 200 and "Access-Control-Allow-Origin" not in r.headers
    assert received[-1]["method"] == "POST"


async def test_request_without_origin_is_forwarded_without_cors_headers(proxy, received):
    """curl-style requests (no Origin) are forwarded; only Vary: Origin is added."""
    r = await proxy.get("/api/x")
    assert r.status == 200
    assert not cors_names(r.headers)
    assert "origin" in names(r.headers["Vary"])


async def test_upstream_cors_headers_are_replaced(proxy):
    """Every upstream Access-Control-* header is replaced by the proxy's own."""
    r = await proxy.get("/api/cors-headers", headers={"Origin": ALLOWED})
    assert r.headers.getall("Access-Control-Allow-Origin") == [ALLOWED]
    assert "Access-Control-Allow-Credentials" not in r.headers
    assert names(r.headers["Access-Control-Expose-Headers"]) == {"x-total-count"}
    assert names(r.headers["Vary"]) == {"accept-encoding", "origin"}
    assert len(r.headers.getall("Vary")) == 1


async def test_upstream_cors_headers_are_removed_without_origin(proxy):
    """Upstream Access-Control-* headers are removed for requests without Origin too."""
    r = await proxy.get("/api/cors-headers")
    assert not cors_names(r.headers)


async def test_no_route_is_404_with_cors_headers_for_allowed_origins(proxy, received):
    """A path no route matches gets a readable 404 (CORS headers of the file defaults)."""
    r = await proxy.get("/elsewhere", headers={"Origin": ALLOWED})
    assert r.status == 404
    assert r.headers["Access-Control-Allow-Origin"] == ALLOWED
    assert received == []


async def test_prefix_matches_on_segment_boundary(proxy, received):
    """/api matches /api and /api/..., never /apix."""
    assert (await proxy.get("/apix")).status == 404
    assert (await proxy.get("/api")).status == 200
    assert received[-1]["raw_path"] == "/v1"


async def test_longest_prefix_wins(make_proxy, received):
    """Of /api and /api/v2 the longer prefix takes /api/v2/...."""
    client = await make_proxy("""
        routes:
          - {{prefix: /api, upstream: "{upstream}/v1"}}
          - {{prefix: /api/v2, upstream: "{upstream}/v1/two"}}
    """)
    await client.get("/api/v2/items")
    assert received[-1]["raw_path"] == "/v1/two/items"
    await client.get("/api/v3/items")
    assert received[-1]["raw_path"] == "/v1/v3/items"


async def test_strip_prefix_false_keeps_the_prefix(make_proxy, received):
    """strip_prefix: false forwards /api/orders to <upstream>/v1/api/orders."""
    client = await make_proxy("""
        routes: [{{prefix: /api, upstream: "{upstream}/v1", strip_prefix: false}}]
    """)
    await client.get("/api/orders")
    assert received[-1]["raw_path"] == "/v1/api/orders"


@pytest.mark.parametrize("path", ["/api/../admin", "/api/%2e%2e/admin", "/api/%2E%2E/secret", "/api/..%2fadmin",
                                  "/api/..%5cadmin", "/api/%c0%ae%c0%ae/admin"],
                         ids=["dotdot", "encoded", "encoded-upper", "encoded-slash", "backslash", "overlong-utf8"])
async def test_path_escaping_its_prefix_is_400(proxy, received, path):
    """A decoded path that leaves its prefix is answered 400 and never forwarded."""
    # A raw socket: HTTP clients normalise dot segments before sending.
    answer = await raw_http(proxy.port, f"GET {path} HTTP/1.1\r\nHost: localhost\r\nOrigin: {ALLOWED}\r\n"
                                        "Connection: close\r\n\r\n".encode())
    assert status_of(answer) == 400
    assert received == []


async def test_query_string_is_kept_byte_for_byte(proxy, received):
    """The query string reaches the upstream exactly as sent."""
    raw = "/api/search?q=a%20b&q=%2F&empty=&plus=a+b&odd=%7e"
    await proxy.get(aiohttp.client.URL(raw, encoded=True))
    assert received[-1]["raw_path"] == "/v1/search?q=a%20b&q=%2F&empty=&plus=a+b&odd=%7e"


# --- forwarding -----------------------------------------------------------------------------

async def test_forwarding_headers(proxy, received):
    """Hop-by-hop headers are dropped; X-Forwarded-* are set; Host is the upstream's."""
    await proxy.get("/api/x", headers={"Connection": "keep-alive, X-Drop-Me", "X-Drop-Me": "1",
                                       "Keep-Alive": "timeout=5", "X-Keep": "kept"})
    seen = {k.lower(): v for k, v in received[-1]["headers"]}
    assert "x-drop-me" not in seen and "keep-alive" not in seen
    assert seen["x-keep"] == "kept"
    assert seen["x-forwarded-for"] == "127.0.0.1"
    assert seen["x-forwarded-proto"] == "http"
    assert seen["x-forwarded-host"] == f"{proxy.host}:{proxy.port}"
    upstream_port = seen["host"].rsplit(":", 1)[1]
    assert seen["host"] == f"127.0.0.1:{upstream_port}"


async def test_change_origin_false_keeps_the_clients_host(make_proxy, received):
    """change_origin: false sends the client's Host upstream."""
    client = await make_proxy("""
        routes: [{{prefix: /api, upstream: "{upstream}/v1", change_origin: false}}]
    """)
    await client.get("/api/x")
    seen = {k.lower(): v for k, v in received[-1]["headers"]}
    assert seen["host"] == f"{client.host}:{client.port}"


async def test_request_headers_set_and_remove(make_proxy, received):
    """request_headers.set (with ${VAR}) and .remove apply on the way up."""
    client = await make_proxy("""
        routes:
          - prefix: /api
            upstream: "{upstream}/v1"
            request_headers: {{set: {{Authorization: "Bearer ${{TOKEN}}"}}, remove: [Cookie]}}
    """)
    await client.get("/api/x", headers={"Cookie": "a=b", "Authorization": "Bearer client"})
    seen = {k.lower(): v for k, v in received[-1]["headers"]}
    assert seen["authorization"] == "Bearer s3cret"
    assert "cookie" not in seen


async def test_location_pointing_at_the_upstream_is_rewritten(proxy):
    """A redirect to the upstream comes back pointing through the proxy and its prefix."""
    r = await proxy.get("/api/redirect", allow_redirects=False, headers={"Origin": ALLOWED})
    assert r.status == 302
    assert r.headers["Location"] == f"http://{proxy.host}:{proxy.port}/api/target"
    assert r.headers["Access-Control-Allow-Origin"] == ALLOWED


async def test_set_cookie_domain_is_removed(proxy):
    """A Domain attribute on Set-Cookie is removed so the cookie lands on the proxy's host."""
    r = await proxy.get("/api/cookie")
    cookies = r.headers.getall("Set-Cookie")
    assert cookies[0] == "session=abc123; Path=/; HttpOnly"
    assert cookies[1] == "theme=dark; Path=/; Expires=Wed, 21 Oct 2037 07:28:00 GMT"


async def test_upstream_status_and_body_pass_through(proxy):
    """The upstream's status and body reach the client unchanged (a 500 stays a 500)."""
    r = await proxy.get("/api/status/500", headers={"Origin": ALLOWED})
    assert r.status == 500 and await r.text() == "status body"
    assert r.headers["Access-Control-Allow-Origin"] == ALLOWED


async def test_no_content_type_is_invented(make_proxy, raw_upstream):
    """Headers pass as sent: no Content-Type, Server or Date the upstream did not send."""
    port = await raw_upstream(b"HTTP/1.1 200 OK\r\nContent-Length: 5\r\nConnection: close\r\n\r\nbytes")
    client = await make_proxy("routes: [{{prefix: /raw, upstream: 'http://127.0.0.1:{port}'}}]", port=port)
    r = await client.get("/raw/x")
    assert await r.read() == b"bytes"
    assert "Content-Type" not in r.headers and "Server" not in r.headers and "Date" not in r.headers


async def test_compressed_bodies_are_not_decoded(make_proxy, raw_upstream):
    """A gzip body is passed through as bytes with its Content-Encoding, never re-coded."""
    body = b"\x1f\x8b\x08\x00notreallygzip"
    head = f"HTTP/1.1 200 OK\r\nContent-Encoding: gzip\r\nContent-Length: {len(body)}\r\nConnection: close\r\n\r\n"
    port = await raw_upstream(head.encode() + body)
    client = await make_proxy("routes: [{{prefix: /raw, upstream: 'http://127.0.0.1:{port}'}}]", port=port)
    r = await client.get("/raw/x", auto_decompress=False)
    assert r.headers["Content-Encoding"] == "gzip"
    assert await r.read() == body


async def test_request_body_is_streamed_upstream(proxy):
    """A large upload reaches the upstream whole."""
    payload = b"a" * (5 * 1024 * 1024)
    r = await proxy.post("/api/upload", data=payload)
    assert (await r.json())["received"] == len(payload)


async def test_chunked_upload_is_streamed_upstream(proxy):
    """A chunked upload (no Content-Length) reaches the upstream whole."""
    async def chunks():
        for _ in range(20):
            yield b"b" * 65536
    r = await proxy.post("/api/upload", data=chunks())
    assert (await r.json())["received"] == 20 * 65536


async def test_large_download_streams_through(proxy):
    """A download streams through with its Content-Length."""
    r = await proxy.get("/api/download?size=3000000")
    assert r.headers["Content-Length"] == "3000000"
    assert len(await r.read()) == 3_000_000


async def test_sse_events_arrive_as_they_are_sent(proxy, upstream):
    """Server-sent events are flushed one by one, not at the end of the stream."""
    async with proxy.get("/api/sse", headers={"Origin": ALLOWED}) as r:
        assert r.headers["Access-Control-Allow-Origin"] == ALLOWED
        assert await asyncio.wait_for(r.content.readuntil(b"\n\n"), 5) == b"data: event 0\n\n"
        upstream.app[RELEASE].set()
        assert await asyncio.wait_for(r.content.readuntil(b"\n\n"), 5) == b"data: event 1\n\n"
        upstream.app[RELEASE].set()
        assert await asyncio.wait_for(r.content.readuntil(b"\n\n"), 5) == b"data: event 2\n\n"


async def test_upstream_closing_mid_body_truncates_the_client_response(proxy):
    """An upstream that dies mid-body makes the client see a broken body, never a clean 200."""
    r = await proxy.get("/api/truncated")
    with pytest.raises(aiohttp.ClientPayloadError):
        await r.read()
    again = await proxy.get("/api/x")
    assert again.status == 200


# --- upstream failures ----------------------------------------------------------------------

async def test_unreachable_upstream_is_a_readable_502(make_proxy, unused_tcp_port):
    """A refused connection is a 502 with CORS headers and the JSON body."""
    client = await make_proxy("""
        cors: {{allow_origins: [http://localhost:3000]}}
        routes: [{{prefix: /api, upstream: "http://127.0.0.1:{port}/v1"}}]
    """, port=unused_tcp_port)
    r = await client.get("/api/x", headers={"Origin": ALLOWED})
    assert r.status == 502
    assert r.headers["Access-Control-Allow-Origin"] == ALLOWED
    body = await r.json()
    assert set(body) == {"error", "route", "upstream", "detail"}
    assert body["route"] == "/api" and body["upstream"] == f"http://127.0.0.1:{unused_tcp_port}/v1"


async def test_hung_upstream_is_a_readable_504(make_proxy):
    """No answer within the route's timeout is a 504 with CORS headers and the JSON body."""
    client = await make_proxy("""
        cors: {{allow_origins: [http://localhost:3000]}}
        routes: [{{prefix: /api, upstream: "{upstream}/v1", timeout: 0.5}}]
    """)
    r = await client.get("/api/hang", headers={"Origin": ALLOWED})
    assert r.status == 504
    assert r.headers["Access-Control-Allow-Origin"] == ALLOWED
    assert (await r.json())["error"] == "upstream timeout"


# --- guards and built-ins -------------------------------------------------------------------

@pytest.mark.parametrize("host", ["evil.example", "evil.example:8080", "localhost.evil.example", "10.0.0.1"],
                         ids=["name", "name-port", "suffix", "ip"])
async def test_foreign_host_is_403_and_never_forwarded(proxy, received, host):
    """A Host outside allowed_hosts (DNS rebinding) is refused, also for built-ins."""
    r = await proxy.get("/api/x", headers={"Host": host})
    assert r.status == 403
    r = await proxy.get("/__corsproxy/health", headers={"Host": host})
    assert r.status == 403
    assert received == []


@pytest.mark.parametrize("host", ["localhost:8080", "127.0.0.1", "[::1]:8080", "LOCALHOST"],
                         ids=["localhost", "ip", "ipv6", "case"])
async def test_default_allowed_hosts(proxy, host):
    """localhost, 127.0.0.1 and ::1 are allowed on any port by default."""
    r = await proxy.get("/__corsproxy/health", headers={"Host": host})
    assert r.status == 200


async def test_allowed_hosts_star_disables_the_check(make_proxy):
    """allowed_hosts: ["*"] lets any Host through."""
    client = await make_proxy("""
        server: {{allowed_hosts: ["*"]}}
        routes: [{{prefix: /api, upstream: "{upstream}/v1"}}]
    """)
    assert (await client.get("/api/x", headers={"Host": "corsproxy:8080"})).status == 200


async def test_health_endpoint(proxy):
    """GET /__corsproxy/health answers {"status": "ok"}."""
    r = await proxy.get("/__corsproxy/health")
    assert r.status == 200 and await r.json() == {"status": "ok"}


async def test_routes_endpoint_hides_secret_values(make_proxy):
    """/__corsproxy/routes lists routes with file:line, and header names but never their values."""
    client = await make_proxy("""
        routes:
          - prefix: /api
            upstream: "{upstream}/v1"
            request_headers: {{set: {{Authorization: "Bearer ${{TOKEN}}"}}}}
    """)
    r = await client.get("/__corsproxy/routes")
    text = await r.text()
    assert "s3cret" not in text
    routes = json.loads(text)["routes"]
    assert routes[0]["prefix"] == "/api" and "Authorization" in json.dumps(routes[0])
    assert routes[0]["source"].endswith("corsproxy.yaml:3")
    # The whole effective policy, each value with the line to change (the route's, for a default).
    assert set(routes[0]["cors"]) == {"allow_origins", "allow_origin_regex", "allow_methods", "allow_headers",
                                      "expose_headers", "allow_credentials", "max_age", "allow_private_network"}
    assert routes[0]["cors"]["max_age"] == {"value": 600, "source": routes[0]["source"]}


async def test_builtins_are_never_forwarded(make_proxy, received):
    """/__corsproxy/* is answered by the proxy even with a catch-all route."""
    client = await make_proxy("routes: [{{prefix: /, upstream: '{upstream}/v1'}}]")
    assert (await client.get("/__corsproxy/nope")).status == 404
    assert received == []


# --- websockets -----------------------------------------------------------------------------

async def test_websocket_is_proxied(proxy, received):
    """A WebSocket upgrade on a route is relayed both ways."""
    async with proxy.ws_connect("/api/ws", headers={"Origin": ALLOWED}, protocols=("chat",)) as ws:
        await ws.send_str("hello")
        assert (await ws.receive(timeout=5)).data == "echo: hello"
        await ws.send_bytes(b"\x00\x01")
        assert (await ws.receive(timeout=5)).data == b"\x00\x01"
        assert ws.protocol == "chat"


async def test_websocket_from_a_foreign_origin_is_refused(proxy, received):
    """A WebSocket from a foreign origin is refused before the upstream is dialled."""
    with pytest.raises(aiohttp.WSServerHandshakeError) as info:
        await proxy.ws_connect("/api/ws", headers={"Origin": FOREIGN})
    assert info.value.status == 403
    assert received == []


async def test_websocket_with_a_foreign_host_is_refused(proxy, received):
    """The Host guard applies to WebSocket upgrades too."""
    with pytest.raises(aiohttp.WSServerHandshakeError) as info:
        await proxy.ws_connect("/api/ws", headers={"Host": "evil.example"})
    assert info.value.status == 403
    assert received == []


async def test_two_reasons_are_numbered_never_run_together(make_proxy):
    """A refusal with two reasons: the log line and X-Corsproxy-Refused number them, and each names
    the line of its own key (allow_methods, allow_headers), not only the route's."""
    client = await make_proxy("""
        cors:
          allow_origins: [http://localhost:3000]
          allow_methods: [GET]
          allow_headers: [Content-Type]
        routes:
          - prefix: /api
            upstream: {upstream}/v1
    """)
    with structlog.testing.capture_logs() as logged:
        r = await client.options("/api/x", headers={"Origin": ALLOWED, "Access-Control-Request-Method": "PURGE",
                                                    "Access-Control-Request-Headers": "x-foo"})
    refused = r.headers["X-Corsproxy-Refused"]
    first, second = refused.split("; (2) ")
    assert first.startswith("(1) method 'PURGE' is not in allow_methods of route /api (") and "corsproxy.yaml:4)" in first
    assert second.startswith("header 'x-foo' is not in allow_headers of route /api (") and "corsproxy.yaml:5)" in second
    assert [entry["why"] for entry in logged if entry["event"] == "refused"] == [refused]
    assert r.headers["X-Corsproxy-Change"].count("corsproxy.yaml:") == 2

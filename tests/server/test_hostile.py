"""Hostile requests: the gates' order, no open proxy, path escapes, ambiguous framing, limits.

Each test asserts on what the upstream RECEIVED (or on a socket that must never be dialled):
a refusal that still reached the upstream is no refusal. Raw sockets throughout, because HTTP
clients normalise paths and refuse to send malformed requests.
"""

from __future__ import annotations

import asyncio
import re

import aiohttp
import aiohttp.web_protocol
import pytest
from aiohttp import http_parser

from corsproxy import config as config_module
from corsproxy.errors import ConfigError
from tests.conftest import ALLOWED, FOREIGN, raw_http, status_of

TWO_ROUTES = """
    cors:
      allow_origins: [http://localhost:3000, https://app.example.com]
      allow_origin_regex: '^https://[a-z0-9-]+\\.preview\\.example\\.com$'
    routes:
      - prefix: /api
        upstream: {upstream}/v1
        request_headers: {{set: {{Authorization: "Bearer ${{TOKEN}}"}}}}
      - prefix: /admin
        upstream: {upstream}/secret
"""


@pytest.fixture
async def guarded(make_proxy):
    """/api -> upstream /v1 (injecting Authorization), /admin -> upstream /secret."""
    return await make_proxy(TWO_ROUTES)


def request(target: str, *headers: str, method: str = "GET", body: bytes = b"",
            version: str = "HTTP/1.1") -> bytes:
    """A request's bytes exactly as written; Host localhost unless a header names another."""
    lines = [f"{method} {target} {version}"]
    if not any(h.lower().startswith("host:") for h in headers):
        lines.append("Host: localhost:8080")
    lines += [*headers, "Connection: close"]
    return ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1") + body


async def send(client, data: bytes) -> bytes:
    return await raw_http(client.port, data)


def body_of(response: bytes) -> bytes:
    return response.partition(b"\r\n\r\n")[2]


# --- 1. order of gates ----------------------------------------------------------------------

@pytest.mark.parametrize("data", [
    request("/api/x", "Host: evil.example", f"Origin: {FOREIGN}"),
    request("/api/x", "Host: evil.example", "Origin: http://localhost:3000",
            "Access-Control-Request-Method: GET", method="OPTIONS"),
    request("/api/../admin/x", "Host: evil.example"),
    request("/__corsproxy/health", "Host: evil.example"),
    request("/__corsproxy/routes", "Host: evil.example:8080"),
    request("http://127.0.0.1:1/", "Host: evil.example"),
    request("/api/ws", "Host: evil.example", f"Origin: {ALLOWED}", "Upgrade: websocket",
            "Connection: Upgrade", "Sec-WebSocket-Version: 13", "Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ=="),
    request("/api/x", "Host: localhost.evil.example"),
    request("/api/x"[:0] + "/api/x", "Host: 127.0.0.1.nip.io"),
], ids=["foreign-origin", "preflight", "path-escape", "health", "routes", "absolute-form", "websocket",
        "suffix", "rebinding-name"])
async def test_host_gate_comes_first(guarded, received, data):
    """A foreign Host is refused (403, naming the Host guard) before any other gate speaks."""
    answer = await send(guarded, data)
    assert status_of(answer) == 403
    assert b"allowed_hosts" in body_of(answer) or b"Host" in body_of(answer)
    assert b"access-control-allow" not in answer.lower()
    assert received == []


@pytest.mark.parametrize("host", ["", "Host: localhost\r\nHost: evil.example", "Host: evil.example\r\nHost: localhost"],
                         ids=["missing", "duplicate-allowed-first", "duplicate-foreign-first"])
async def test_missing_or_duplicate_host_is_refused(guarded, received, host):
    """RFC 9112 §3.2: no Host, or more than one, is refused and never forwarded."""
    data = f"GET /api/x HTTP/1.1\r\n{host + chr(13) + chr(10) if host else ''}Connection: close\r\n\r\n"
    answer = await send(guarded, data.encode())
    assert status_of(answer) in (400, 403)
    assert received == []


CSRF_SHAPES = {
    "form-post": dict(method="POST", headers=("Content-Type: application/x-www-form-urlencoded", "Content-Length: 7"),
                      body=b"amount=1"[:7]),
    "text-plain-post": dict(method="POST", headers=("Content-Type: text/plain", "Content-Length: 2"), body=b"{}"),
    "multipart-post": dict(method="POST", headers=("Content-Type: multipart/form-data; boundary=b",
                                                   "Content-Length: 6"), body=b"--b--\n"),
    "get-with-cookies": dict(method="GET", headers=("Cookie: session=abc",), body=b""),
    "head": dict(method="HEAD", headers=(), body=b""),
    "delete": dict(method="DELETE", headers=(), body=b""),
}

FOREIGN_ORIGINS = [
    "http://127.0.0.1:3000", "http://[::1]:3000", "null", "https://app.example.com.evil.com",
    "https://evilapp.example.com", "https://app.example.co", "http://app.example.com", "https://app.example.com:444",
    "https://app.example.com:443", "http://localhost:3000.evil.com", "http://localhost:30000",
    "http://localhost:300", "https://localhost:3000", "http://localhost", "http://LOCALHOST:3000",
    "http://localhost:3000/", "http://user@localhost:3000", "https://x.preview.example.com.evil.com",
    "https://a.b.preview.example.com", "http://x.preview.example.com", "https://x.preview.example.com/",
    "http://localhost:3000, https://evil.example", "*", "",
]


@pytest.mark.parametrize("shape", CSRF_SHAPES, ids=list(CSRF_SHAPES))
@pytest.mark.parametrize("origin", [FOREIGN, "null", "http://127.0.0.1:3000", "https://app.example.com.evil.com"])
async def test_foreign_page_cannot_drive_the_upstream(guarded, received, shape, origin):
    """Simple requests a foreign page can send without a preflight are refused and never forwarded."""
    spec = CSRF_SHAPES[shape]
    data = request("/api/transfer", f"Origin: {origin}", *spec["headers"], method=spec["method"], body=spec["body"])
    answer = await send(guarded, data)
    assert status_of(answer) == 403
    assert b"access-control-allow" not in answer.lower()
    assert received == []


@pytest.mark.parametrize("origin", FOREIGN_ORIGINS)
async def test_near_miss_origins_are_foreign(guarded, received, origin):
    """Origins are compared exactly (IP literal, null, suffix, prefix, scheme, port, case, path)."""
    answer = await send(guarded, request("/api/x", f"Origin: {origin}"))
    assert status_of(answer) == 403, answer[:300]
    assert received == []
    preflight = await send(guarded, request("/api/x", f"Origin: {origin}", "Access-Control-Request-Method: GET",
                                            method="OPTIONS"))
    assert status_of(preflight) == 403
    assert received == []


async def test_listed_origins_pass_the_same_gate(guarded, received):
    """The control case: the listed origins and the regex's own shape are forwarded."""
    for origin in ("http://localhost:3000", "https://app.example.com", "https://pr-7.preview.example.com"):
        answer = await send(guarded, request("/api/x", f"Origin: {origin}"))
        assert status_of(answer) == 200
    assert len(received) == 3


async def test_websocket_from_a_foreign_origin_never_dials(guarded, received):
    """A WebSocket upgrade goes through the same origin gate: refused, never forwarded."""
    for origin in (FOREIGN, "null", "http://127.0.0.1:3000"):
        answer = await send(guarded, request("/api/ws", f"Origin: {origin}", "Upgrade: websocket",
                                             "Connection: Upgrade", "Sec-WebSocket-Version: 13",
                                             "Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ=="))
        assert status_of(answer) == 403
    assert received == []


# --- 2. not an open proxy -------------------------------------------------------------------

@pytest.mark.parametrize("form", ["absolute", "absolute-own-host", "absolute-https", "connect", "connect-absolute",
                                  "asterisk", "authority", "no-slash"])
async def test_request_targets_naming_an_address_are_never_dialled(guarded, received, bystander, form):
    """Absolute-form, CONNECT and other non-origin-form targets are 4xx and dial nothing."""
    port, connections = bystander
    data = {
        "absolute": request(f"http://127.0.0.1:{port}/", f"Host: 127.0.0.1:{port}"),
        "absolute-own-host": request(f"http://127.0.0.1:{port}/api/x"),
        "absolute-https": request(f"https://127.0.0.1:{port}/api/x"),
        "connect": request(f"127.0.0.1:{port}", f"Host: 127.0.0.1:{port}", method="CONNECT"),
        "connect-absolute": request(f"127.0.0.1:{port}", method="CONNECT"),
        "asterisk": request("*", method="OPTIONS"),
        "authority": request(f"127.0.0.1:{port}"),
        "no-slash": request(f"api/x@127.0.0.1:{port}"),
    }[form]
    answer = await send(guarded, data)
    assert 400 <= status_of(answer) < 500
    await asyncio.sleep(0)  # let a (wrongly) started dial be accepted before counting
    assert connections == [] and received == []


# --- 3. paths -------------------------------------------------------------------------------

ESCAPES = {
    "dotdot": "/api/../admin/x",
    "dotdot-at-end": "/api/..",
    "dotdot-above-base": "/api/x/../../v1/x",
    "encoded-dots": "/api/%2e%2e/admin/x",
    "mixed-dots": "/api/.%2E/admin/x",
    "encoded-slash": "/api/..%2fadmin/x",
    "encoded-slash-prefix": "/api%2f..%2fadmin/x",
    "backslash": "/api/..\\admin/x",
    "encoded-backslash": "/api/..%5cadmin/x",
    "climb-into-route": "/admin/../api/x",
    "climb-into-route-encoded": "/admin/%2e%2e/api/x",
    "overlong-dot": "/api/%c0%ae%c0%ae/admin/x",
    "overlong-slash": "/api/..%c0%afadmin/x",
    "overlong-3byte": "/api/%e0%80%ae%e0%80%ae/admin",
    "invalid-utf8": "/api/%ff/x",
    "nul": "/api/x%00.json",
    "crlf": "/api/x%0d%0aInjected:%20yes",
    "bad-escape": "/api/%zz",
    "truncated-escape": "/api/%2",
    "above-root": "/..",
    "above-root-encoded": "/%2e%2e/etc/passwd",
}


@pytest.mark.parametrize("path", ESCAPES.values(), ids=list(ESCAPES))
async def test_path_escapes_are_400_and_never_forwarded(guarded, received, path):
    """Decoded once, `\\` as `/`, normalised: a path that leaves its prefix or is malformed is 400."""
    answer = await send(guarded, request(path, f"Origin: {ALLOWED}"))
    assert status_of(answer) == 400, answer[:300]
    assert received == []


KEPT_INSIDE = {
    "double-encoded-dots": ("/api/%252e%252e/admin", "/v1/%252e%252e/admin"),
    "double-encoded-slash": ("/api/a%252fb", "/v1/a%252fb"),
    "encoded-slash-inside": ("/api/a%2fb", "/v1/a%2fb"),
    "backslash-inside": ("/api/a%5cb", "/v1/a%5cb"),
    "encoded-slash-after-dots": ("/api/x/../a%2fb", "/v1/a/b"),
    "dotdot-inside": ("/api/a/../b", "/v1/b"),
    "dot": ("/api/./b/.", "/v1/b/"),
    "utf8": ("/api/caf%C3%A9", "/v1/caf%C3%A9"),
    "space": ("/api/a%20b", "/v1/a%20b"),
    "percent": ("/api/100%25", "/v1/100%25"),
    "query-not-decoded": ("/api/x?p=..%2f..%2fadmin", "/v1/x?p=..%2f..%2fadmin"),
}


@pytest.mark.parametrize("sent,forwarded", KEPT_INSIDE.values(), ids=list(KEPT_INSIDE))
async def test_paths_kept_inside_the_prefix_are_forwarded_exactly(guarded, received, sent, forwarded):
    """What is forwarded is the path as sent minus the prefix, under the upstream's base path; a
    path with dot-segments is forwarded normalised and re-encoded."""
    answer = await send(guarded, request(sent, f"Origin: {ALLOWED}"))
    assert status_of(answer) == 200, answer[:300]
    assert [r["raw_path"] for r in received] == [forwarded]


# --- 4. framing -----------------------------------------------------------------------------

HEAD = "POST /api/x HTTP/1.1\r\nHost: localhost\r\nOrigin: http://localhost:3000\r\n"
SMUGGLED = "GET /admin/secret HTTP/1.1\r\nHost: localhost\r\n\r\n"
AMBIGUOUS = {
    "cl-te": HEAD + "Content-Length: 4\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n" + SMUGGLED,
    "te-cl": HEAD + "Transfer-Encoding: chunked\r\nContent-Length: 50\r\n\r\n0\r\n\r\n" + SMUGGLED,
    "duplicate-cl": HEAD + "Content-Length: 0\r\nContent-Length: 48\r\n\r\n" + SMUGGLED,
    "duplicate-cl-same": HEAD + "Content-Length: 4\r\nContent-Length: 4\r\n\r\nabcd",
    "list-cl": HEAD + "Content-Length: 4, 4\r\n\r\nabcd",
    "signed-cl": HEAD + "Content-Length: +4\r\n\r\nabcd",
    "hex-cl": HEAD + "Content-Length: 0x4\r\n\r\nabcd",
    "te-xchunked": HEAD + "Transfer-Encoding: xchunked\r\n\r\n0\r\n\r\n" + SMUGGLED,
    "te-chunked-identity": HEAD + "Transfer-Encoding: chunked, identity\r\n\r\n0\r\n\r\n" + SMUGGLED,
    "te-identity": HEAD + "Transfer-Encoding: identity\r\n\r\n" + SMUGGLED,
    "te-twice": HEAD + "Transfer-Encoding: chunked\r\nTransfer-Encoding: identity\r\n\r\n0\r\n\r\n" + SMUGGLED,
    "te-space-before-colon": HEAD + "Transfer-Encoding : chunked\r\nContent-Length: 4\r\n\r\n0\r\n\r\n" + SMUGGLED,
    "te-leading-space-with-cl": HEAD + "Transfer-Encoding:  chunked\r\nContent-Length: 4\r\n\r\n0\r\n\r\n" + SMUGGLED,
    "te-vertical-tab": HEAD + "Transfer-Encoding:\x0bchunked\r\n\r\n0\r\n\r\n" + SMUGGLED,
    "te-obs-fold": HEAD + "Transfer-Encoding:\r\n chunked\r\n\r\n0\r\n\r\n" + SMUGGLED,
    "te-http10": HEAD.replace("HTTP/1.1", "HTTP/1.0") + "Transfer-Encoding: chunked\r\nContent-Length: 4\r\n\r\n"
                 "0\r\n\r\n" + SMUGGLED,
    "chunk-size-hex-prefix": HEAD + "Transfer-Encoding: chunked\r\n\r\n0x4\r\nabcd\r\n0\r\n\r\n",
    "chunk-size-overflow": HEAD + "Transfer-Encoding: chunked\r\n\r\n10000000000000000004\r\nabcd\r\n0\r\n\r\n",
    "chunk-bare-lf": HEAD + "Transfer-Encoding: chunked\r\n\r\n4\nabcd\n0\n\n",
    "bare-cr-in-value": HEAD + "X-A: a\rContent-Length: 4\r\n\r\nabcd",
    "bare-cr-line-end": HEAD + "X-A: a\r\r\nContent-Length: 0\r\n\r\n",
    "obs-fold": HEAD + "X-A: a\r\n b\r\nContent-Length: 0\r\n\r\n",
    "leading-whitespace-line": HEAD + " X-A: b\r\nContent-Length: 0\r\n\r\n",
    "space-in-name": HEAD + "X A: b\r\nContent-Length: 0\r\n\r\n",
    "nul-in-value": HEAD + "X-A: a\x00b\r\nContent-Length: 0\r\n\r\n",
    "no-colon": HEAD + "X-A\r\nContent-Length: 0\r\n\r\n",
    "http09": "GET /api/x\r\n\r\n",
    "http09-no-crlf-head": "GET /api/x\r\nHost: localhost\r\n\r\n",
    "bad-version": "GET /api/x HTTP/1.7\r\nHost: localhost\r\n\r\n",
    "http2-version": "GET /api/x HTTP/2.0\r\nHost: localhost\r\n\r\n",
    "control-in-target": "GET /api/x\x01y HTTP/1.1\r\nHost: localhost\r\n\r\n",
    "del-in-target": "GET /api/x\x7fy HTTP/1.1\r\nHost: localhost\r\n\r\n",
    "nul-in-target": "GET /api/x\x00y HTTP/1.1\r\nHost: localhost\r\n\r\n",
    "tab-in-target": "GET /api/x\ty HTTP/1.1\r\nHost: localhost\r\n\r\n",
    "cr-in-target": "GET /api/x\rX-Injected: 1 HTTP/1.1\r\nHost: localhost\r\n\r\n",
    "space-in-target": "GET /api/x y HTTP/1.1\r\nHost: localhost\r\n\r\n",
    "duplicate-origin": "GET /api/x HTTP/1.1\r\nHost: localhost\r\nOrigin: http://localhost:3000\r\n"
                        "Origin: https://evil.example\r\n\r\n",
}


@pytest.fixture(params=["llhttp", "python"])
def parser(request, monkeypatch):
    """The request parser in use: the installed C one (llhttp), and aiohttp's pure-Python one,
    which aiohttp falls back to when AIOHTTP_NO_EXTENSIONS is set or no wheel fits."""
    if request.param == "python":
        monkeypatch.setattr(aiohttp.web_protocol, "HttpRequestParser", http_parser.HttpRequestParserPy)
    elif not aiohttp.http_parser.HttpRequestParser.__module__.endswith("_http_parser"):
        pytest.skip("aiohttp's C parser is not installed here")
    return request.param


@pytest.mark.parametrize("data", AMBIGUOUS.values(), ids=list(AMBIGUOUS))
async def test_ambiguous_framing_is_400_and_never_forwarded(parser, guarded, received, data):
    """A request two parsers could read differently is refused; the upstream sees nothing."""
    if parser == "python" and data == AMBIGUOUS["chunk-size-overflow"]:
        # The pure-Python parser reads the size as a big integer (no wraparound) and waits for
        # that many bytes: nothing is answered, and no request is completed upstream.
        with pytest.raises(TimeoutError):
            await raw_http(guarded.port, data.encode("latin-1"), timeout=1.0)
        assert received == []
        return
    answer = await send(guarded, data.encode("latin-1"))
    assert answer, "the connection closed without an answer"
    assert status_of(answer) == 400, answer[:300]
    assert received == []
    # Nor was the smuggled request answered on the same connection.
    assert len(re.findall(rb"HTTP/\d\.\d \d\d\d ", answer)) == 1


async def test_valid_chunked_and_content_length_uploads_still_work(parser, guarded, received):
    """The control case: plain framing of either kind is forwarded with its body."""
    chunked = HEAD + "Transfer-Encoding: chunked\r\nConnection: close\r\n\r\n4\r\nabcd\r\n0\r\n\r\n"
    assert status_of(await send(guarded, chunked.encode())) == 200
    sized = HEAD + "Content-Length: 4\r\nConnection: close\r\n\r\nabcd"
    assert status_of(await send(guarded, sized.encode())) == 200
    assert [r["body"] for r in received] == ["abcd", "abcd"]


async def test_no_request_bytes_become_an_upstream_header(guarded, received):
    """Encoded CR/LF in the path is 400; in the query it stays encoded; no header is injected."""
    assert status_of(await send(guarded, request("/api/x%0d%0aX-Injected:%201"))) == 400
    assert status_of(await send(guarded, request("/api/x?a=%0d%0aX-Injected:%201"))) == 200
    assert status_of(await send(guarded, request("/api/x", "X-A: %0d%0aX-Injected: 1"))) == 200
    assert len(received) == 2
    for record in received:
        assert "x-injected" not in {name.lower() for name, _ in record["headers"]}


@pytest.mark.parametrize("value", ["a\r\nX-Injected: 1", "a\nX-Injected: 1", "a\rX-Injected: 1", "a\x00b"],
                         ids=["crlf", "lf", "cr", "nul"])
def test_config_refuses_line_breaks_in_header_values(tmp_path, value):
    """A request_headers.set value with CR, LF or NUL is refused at load, literal or from ${VAR}."""
    escaped = value.replace("\r", "\\r").replace("\n", "\\n").replace("\x00", "\\0")
    literal = tmp_path / "literal.yaml"
    literal.write_text(f'routes: [{{prefix: /api, upstream: "http://127.0.0.1:1", '
                       f'request_headers: {{set: {{X-A: "{escaped}"}}}}}}]\n')
    from_env = tmp_path / "env.yaml"
    from_env.write_text('routes: [{prefix: /api, upstream: "http://127.0.0.1:1", '
                        'request_headers: {set: {X-A: "${VALUE}"}}}]\n')
    for path in (literal, from_env):
        with pytest.raises(ConfigError, match="line break or NUL"):
            config_module.load(path, env={"VALUE": value})


@pytest.mark.parametrize("name", ["X-A\r\nX-Injected", "X-A: b", "X A", ""], ids=["crlf", "colon", "space", "empty"])
def test_config_refuses_bad_header_names(tmp_path, name):
    """A request_headers.set name that is not an HTTP token is refused at load."""
    escaped = name.replace("\r", "\\r").replace("\n", "\\n")
    path = tmp_path / "c.yaml"
    path.write_text(f'routes: [{{prefix: /api, upstream: "http://127.0.0.1:1", '
                    f'request_headers: {{set: {{"{escaped}": v}}}}}}]\n')
    with pytest.raises(ConfigError):
        config_module.load(path, env={})


# --- 5. limits ------------------------------------------------------------------------------

OVERSIZED = {
    "huge-header-value": request("/api/x", "X-Big: " + "a" * 70_000),
    "huge-header-name": request("/api/x", "X-" + "a" * 70_000 + ": 1"),
    "huge-url": request("/api/" + "a" * 70_000),
    "huge-query": request("/api/x?" + "a=1&" * 20_000),
    "long-path-under-line-limit": request("/api/" + "a" * 9_000),
    "huge-cookie": request("/api/x", "Cookie: " + "c=1; " * 14_000),
    "huge-method": request("/api/x", method="G" * 70_000),
}


@pytest.mark.parametrize("data", OVERSIZED.values(), ids=list(OVERSIZED))
async def test_oversized_requests_are_4xx_and_the_proxy_keeps_serving(guarded, received, data):
    """Huge headers, URLs or request lines get 400/414/431, never a crash; the next request works."""
    answer = await send(guarded, data)
    assert status_of(answer) in (400, 413, 414, 431), answer[:300]
    assert received == []
    assert status_of(await send(guarded, request("/api/x"))) == 200


async def test_many_headers_are_bounded(guarded, received):
    """Thousands of small headers (a megabyte of them) are refused, never forwarded."""
    data = request("/api/x", *(f"X-H{n}: {'v' * 90}" for n in range(12_000)))
    answer = await send(guarded, data)
    assert 400 <= status_of(answer) < 500, answer[:300]
    assert received == []
    assert status_of(await send(guarded, request("/api/x"))) == 200


async def test_garbage_then_a_good_request_on_a_new_connection(guarded, received):
    """Binary garbage (a TLS hello, HTTP/2's preface, blank lines) gets a 400 or a close, and the
    proxy goes on answering."""
    for junk in (b"\x16\x03\x01\x02\x00\x01\x00\x01\xfc\x03\x03" + bytes(range(256)), b"\r\n" * 5000,
                 b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n", bytes(range(256)) * 40):
        reader, writer = await asyncio.open_connection("127.0.0.1", guarded.port)
        writer.write(junk)
        writer.write_eof()
        answer = await asyncio.wait_for(reader.read(1 << 16), 5)
        writer.close()
        assert answer == b"" or 400 <= status_of(answer) < 500
    assert status_of(await send(guarded, request("/api/x"))) == 200
    assert len(received) == 1


async def test_an_aiohttp_client_cannot_send_what_the_gates_refuse(guarded, received):
    """Smoke check through a real client: a foreign origin POST is 403, an allowed one forwarded."""
    r = await guarded.post("/api/x", data=b"a=1", headers={"Origin": FOREIGN,
                                                           "Content-Type": "application/x-www-form-urlencoded"})
    assert r.status == 403
    r = await guarded.post("/api/x", data=b"a=1", headers={"Origin": ALLOWED})
    assert r.status == 200
    assert len(received) == 1
    seen = {k.lower(): v for k, v in received[0]["headers"]}
    assert seen["authorization"] == "Bearer s3cret"
    with pytest.raises((aiohttp.ClientError, ValueError)):
        await guarded.get("/api/x", headers={"X-A": "a\r\nX-Injected: 1"})

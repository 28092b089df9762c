"""Hardening, round two (issue #16) on the wire: real proxies in front of a real loopback upstream.

Each test asserts on what the upstream RECEIVED: a refusal that still reached the upstream is
no refusal.
"""

from __future__ import annotations

import asyncio
import json
import re
import subprocess
import sys

import aiohttp
import pytest
import structlog

from tests.conftest import ALLOWED, ROOT, raw_http, status_of
from tests.processes import stop_process

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


# --- raw upstreams: answers no well-behaved server would send -----------------------------------

HOSTILE_ANSWERS = {
    b"/v1/control": b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\nX-Bad: a\x01b\r\n\r\nok",
    b"/v1/escape": b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\nX-Title: \x1b]0;pwned\x07\r\n\r\nok",
    b"/v1/switch": b"HTTP/1.1 101 Switching Protocols\r\nUpgrade: h2c\r\nConnection: Upgrade\r\n\r\n",
    b"/v1/toss": (b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\nSet-Cookie: ok=1; Domain=127.0.0.1; Path=/\r\n"
                  b"Set-Cookie: toss=1; Domain=other.example.com; Path=/\r\n\r\nok"),
    b"/v1/probe": ("HTTP/1.1 200 OK\r\nAccess-Control-Allow-Origin: *\r\nX-Title: \x1b]0;pwned\x07\r\n"
                   "X-Clear: \x1b[2J\x1b[H\u009b31m\r\nX-Bidi: \u202eworb a\r\n"
                   "Content-Type: text/plain\r\nContent-Length: {n}\r\n\r\n").encode(),
}
PROBE_BODY = b"\x1b[2J\x1b[Hverdict: a browser would allow this\r\n"


@pytest.fixture
async def raw_upstream():
    """A loopback server that answers each path with the bytes of HOSTILE_ANSWERS, exactly."""
    async def answer(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        head = await reader.readuntil(b"\r\n\r\n")
        target = head.split(b" ", 2)[1].partition(b"?")[0]
        reply = HOSTILE_ANSWERS.get(target, b"HTTP/1.1 404 Not Found\r\nContent-Length: 0\r\n\r\n")
        if b"{n}" in reply:
            reply = reply.replace(b"{n}", str(len(PROBE_BODY)).encode()) + PROBE_BODY
        writer.write(reply)
        await writer.drain()
        writer.close()

    server = await asyncio.start_server(answer, "127.0.0.1", 0)
    try:
        yield server.sockets[0].getsockname()[1]
    finally:
        server.close()
        await server.wait_closed()


RAW_ROUTE = """
    cors:
      allow_origins: [http://localhost:3000]
    routes:
      - prefix: /api
        upstream: http://127.0.0.1:{port}/v1
"""


@pytest.mark.parametrize(("path", "reason"), [
    pytest.param("/api/control", "control character", id="control-character-in-header"),
    pytest.param("/api/escape", "control character", id="terminal-escape-in-header"),
    pytest.param("/api/switch", "101 Switching Protocols", id="unasked-101"),
])
async def test_upstream_misbehaviour_is_a_readable_502(make_proxy, raw_upstream, path, reason) -> None:
    """A control character in an upstream header, or a 101 to a plain GET, becomes a 502 the
    page can read (CORS headers on), with the reason in the JSON body and the log."""
    proxy = await make_proxy(RAW_ROUTE, port=raw_upstream)
    with structlog.testing.capture_logs() as logged:
        response = await proxy.get(path, headers={"Origin": ALLOWED})
        body = await response.json()
    assert response.status == 502
    assert response.headers["Access-Control-Allow-Origin"] == ALLOWED
    assert body["error"] == "bad upstream response" and reason in body["detail"]
    assert any(reason in entry.get("why", "") for entry in logged)


async def test_cookie_for_another_domain_is_dropped_and_logged_once(make_proxy, raw_upstream) -> None:
    """A Set-Cookie whose Domain is not the upstream's host is dropped, not moved onto the
    proxy's host; one warning names it however often it comes; the upstream's own cookie stays."""
    proxy = await make_proxy(RAW_ROUTE, port=raw_upstream)
    with structlog.testing.capture_logs() as logged:
        for _ in range(3):
            response = await proxy.get("/api/toss")
            assert response.headers.getall("Set-Cookie") == ["ok=1; Path=/"]
    dropped = [entry for entry in logged if entry["event"] == "cookie dropped"]
    assert [entry["domain"] for entry in dropped] == ["other.example.com"]


async def test_probe_escapes_a_hostile_servers_terminal_sequences(raw_upstream) -> None:
    """probe prints a hostile server's escape sequences, C1 controls and bidi overrides escaped,
    so it cannot retitle the terminal, clear it, or draw a fake verdict line."""
    process = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "corsproxy", "probe", f"http://127.0.0.1:{raw_upstream}/v1/probe",
        "--origin", ALLOWED, cwd=ROOT, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE)
    try:
        out, _ = await asyncio.wait_for(process.communicate(), 30)
    finally:
        await stop_process(process, "corsproxy probe")
    text = out.decode()
    assert [char for char in text if not char.isprintable() and char != "\n"] == []
    assert "< X-Title: \\x1b]0;pwned\\x07" in text and "\\x9b31m" in text


async def test_console_log_values_are_escaped(spawn, tmp_path) -> None:
    """A request's Origin reaches the console log with C1 and bidi controls escaped."""
    path = tmp_path / "c.yaml"
    path.write_text(RAW_ROUTE.format(port=9))
    proxy = await spawn("serve", "-c", str(path), "--port", "0", "--log-format", "console")
    port = int(proxy.url.rsplit(":", 1)[1])
    await raw_http(port, "GET /nothing/ HTTP/1.1\r\nHost: localhost\r\nOrigin: http://a\u202e\u009b.test\r\n"
                         "Connection: close\r\n\r\n".encode())
    assert await proxy.stop() == 0
    log = (await proxy.stderr.finished()).decode()
    assert "/nothing/" in log
    assert "\u202e" not in log and "\u009b" not in log
    assert "\\u202e" in log and "\\x9b" in log


async def test_malformed_client_request_logs_one_warning_line(spawn, tmp_path) -> None:
    """A request llhttp cannot parse is answered 400 and logged as one warning, no traceback."""
    path = tmp_path / "c.yaml"
    path.write_text(RAW_ROUTE.format(port=9))
    proxy = await spawn("serve", "-c", str(path), "--port", "0")
    port = int(proxy.url.rsplit(":", 1)[1])
    answer = await raw_http(port, b"GET /api/x HTTP/1.1\r\nHost: localhost\r\nX-Bad: a\x01b\r\n\r\n")
    assert status_of(answer) == 400
    assert await proxy.stop() == 0
    log = (await proxy.stderr.finished()).decode()
    lines = [line for line in log.splitlines() if "malformed request" in line]
    assert len(lines) == 1 and "warning" in lines[0] and "Invalid header value char" in lines[0]
    assert "Traceback" not in log and "[error" not in log


# --- 12. path and config edges ----------------------------------------------------------------


@pytest.mark.parametrize("target", ["/api/..;/admin", "/api/x/..;jsessionid=1/y", "/api/%2e%2e;/admin",
                                    "/api/.;/x"])
async def test_servlet_dot_segment_is_refused(token_proxy, received, target) -> None:
    """`..;` and `.;` segments (Tomcat/Jetty read them as `..`/`.`) are 400, never forwarded."""
    answer = await raw_http(token_proxy.port, f"GET {target} HTTP/1.1\r\nHost: localhost\r\n"
                                              "Connection: close\r\n\r\n".encode())
    assert status_of(answer) == 400 and b"Tomcat" in answer
    assert received == []


@pytest.mark.parametrize(("request_bytes", "status", "says"), [
    pytest.param(b"CONNECT localhost:443 HTTP/1.1\r\nHost: localhost\r\n", 400, b"not an HTTP proxy",
                 id="connect-allowed-host"),
    pytest.param(b"CONNECT evil.test:443 HTTP/1.1\r\nHost: evil.test:443\r\n", 403, b"allowed_hosts",
                 id="connect-foreign-host"),
    pytest.param(b"OPTIONS * HTTP/1.1\r\nHost: localhost\r\n", 400, b"asterisk-form", id="options-asterisk"),
    pytest.param(b"OPTIONS * HTTP/1.1\r\nHost: evil.test\r\n", 403, b"allowed_hosts",
                 id="options-asterisk-foreign-host"),
])
async def test_connect_and_options_asterisk_meet_the_gates(token_proxy, received, request_bytes, status,
                                                           says) -> None:
    """CONNECT and `OPTIONS *` are answered by the Host and target gates, never by a bare 404."""
    answer = await raw_http(token_proxy.port, request_bytes + b"Connection: close\r\n\r\n")
    assert status_of(answer) == status and says in answer
    assert received == []


# --- 7. Location rewriting is no open redirect -----------------------------------------------


@pytest.mark.parametrize(("sent", "expected"), [
    # (aiohttp's own redirect encodes a backslash; tests/policy/test_rewrite.py covers /\\host)
    pytest.param("/v1//evil.test/x", "/%2Fevil.test/x", id="double-slash"),
])
async def test_rewritten_location_stays_on_the_proxy(make_proxy, sent, expected) -> None:
    """With route / to base /v1, an upstream Location /v1//evil.test/x is not emitted as
    //evil.test/x (which a browser follows to evil.test), and the encoded one routes back."""
    proxy = await make_proxy("""
        routes:
          - prefix: /
            upstream: {upstream}/v1
    """)
    response = await proxy.get("/redirect", params={"to": sent}, allow_redirects=False)
    assert response.headers["Location"] == expected


# --- 9. a secret in upstream: never displayed ---------------------------------------------------


async def test_secret_in_upstream_is_shown_as_its_variable(spawn, tmp_path) -> None:
    """The banner, /__corsproxy/routes, the 502 body and its log line show .../bot${BOT_TOKEN}."""
    secret = "123456:AAHsecretTOKEN"
    path = tmp_path / "bot.yaml"
    path.write_text('cors: {allow_origins: ["http://localhost:3000"]}\n'
                    'routes:\n  - prefix: /bot\n    upstream: "http://127.0.0.1:9/bot${BOT_TOKEN}"\n')
    proxy = await spawn("serve", "-c", str(path), "--port", "0", env={"BOT_TOKEN": secret})
    async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=20)) as session:
        async with session.get(proxy.url + "/__corsproxy/routes") as response:
            routes = await response.text()
        async with session.get(proxy.url + "/bot/sendMessage", headers={"Origin": ALLOWED}) as response:
            assert response.status == 502
            failure = await response.json()
        async with session.get(proxy.url + "/__corsproxy/events") as response:
            events = await response.text()
    assert await proxy.stop() == 0
    log = (await proxy.stderr.finished()).decode()
    assert "http://127.0.0.1:9/bot${BOT_TOKEN}" in routes
    assert failure["upstream"] == "http://127.0.0.1:9/bot${BOT_TOKEN}"
    for shown in (routes, json.dumps(failure), events, log, proxy.ready):
        assert secret not in shown


EVERY_VALUE = """\
cors:
  allow_origins: ["${PAGE}", "https://app.example.com"]
  allow_headers: ["${HEADER}"]
  expose_headers: ["${EXPOSED}"]
  max_age: ${AGE}
  allow_credentials: ${CREDENTIALS}
routes:
  - prefix: "${PREFIX}"
    upstream: "https://127.0.0.1:9/v1"
    timeout: ${TIMEOUT}
"""
VALUES = {"PAGE": "http://preview-4a7c.test:8000", "HEADER": "x-secret-header-1f3e", "EXPOSED": "X-Exposed-9d2b",
          "AGE": "4321", "CREDENTIALS": "true", "PREFIX": "/hidden-7c1a", "TIMEOUT": "17.5"}


async def test_every_value_from_a_variable_is_shown_as_the_variable(spawn, tmp_path) -> None:
    """check, the banner, its warnings and /__corsproxy/routes show ${VAR}, never what it holds."""
    path = tmp_path / "every.yaml"
    path.write_text(EVERY_VALUE)
    env = {**VALUES, "PATH": ""}
    check = subprocess.run([sys.executable, "-m", "corsproxy", "check", "-c", str(path)], cwd=ROOT,
                           capture_output=True, text=True, timeout=60, env=env)
    assert check.returncode == 0, check.stderr
    proxy = await spawn("serve", "-c", str(path), "--port", "0", env=VALUES)
    async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=20)) as session:
        async with session.get(proxy.url + "/__corsproxy/routes") as response:
            routes = await response.json()
    assert await proxy.stop() == 0
    # A timestamp's digits or the port the kernel chose may spell a value by chance (.344321Z).
    banner = re.sub(r"\d{4}-\d\d-\d\dT[\d:.]+Z|:\d+(?=[/\s'\"]|$)", "", (await proxy.stderr.finished()).decode())
    for shown in (check.stdout, banner, json.dumps(routes)):
        for name, value in VALUES.items():
            if name != "CREDENTIALS":   # "true" is also how a typed flag reads
                assert value not in shown, (name, shown)
    for name in VALUES:
        assert "${" + name + "}" in check.stdout and "${" + name + "}" in json.dumps(routes), name
    for name in ("PAGE", "HEADER", "EXPOSED", "PREFIX", "CREDENTIALS"):   # what the banner tells
        assert "${" + name + "}" in banner, name
    assert "plain-http origin(s) ${PAGE}" in check.stdout      # the warning names the variable too
    row = routes["routes"][0]
    assert row["allow_origins"] == ["${PAGE}", "https://app.example.com"]
    assert row["cors"]["max_age"]["value"] == "${AGE}" and row["timeout"] == "${TIMEOUT}"

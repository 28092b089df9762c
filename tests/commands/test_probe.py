"""`corsproxy probe` against real loopback servers built to fail in each way CORS fails."""

from __future__ import annotations

import asyncio
import json
import os
import signal
import socket
import sys
from collections.abc import Awaitable, Callable
from pathlib import Path

import pytest
from aiohttp import web
from aiohttp.test_utils import TestServer
from multidict import CIMultiDict

from corsproxy import cli
from tests.processes import stop_process

ROOT = Path(__file__).resolve().parents[2]
O = "http://localhost:3000"
ACAO, ACAC = "Access-Control-Allow-Origin", "Access-Control-Allow-Credentials"
ACAM, ACAH = "Access-Control-Allow-Methods", "Access-Control-Allow-Headers"
SEEN = web.AppKey("seen", list)

Headers = list[tuple[str, str]]
ServerFactory = Callable[..., Awaitable[str]]


@pytest.fixture
def cors_server(aiohttp_server) -> ServerFactory:
    """A server answering OPTIONS with `preflight` and everything else with `actual`
    ((status, headers) each); returns its base URL. Requests are recorded in app[SEEN]."""

    async def start(preflight: tuple[int, Headers] = (404, []), actual: tuple[int, Headers] = (200, [])) -> str:
        async def handle(request: web.Request) -> web.Response:
            request.app[SEEN].append((request.method, dict(request.headers)))
            status, headers = preflight if request.method == "OPTIONS" else actual
            return web.Response(status=status, headers=CIMultiDict(headers), text="body")

        app = web.Application()
        app[SEEN] = []
        app.router.add_route("*", "/{tail:.*}", handle)
        server: TestServer = await aiohttp_server(app)
        start.seen = app[SEEN]
        return f"http://127.0.0.1:{server.port}"

    return start


async def probe(capsys, *args: str) -> tuple[int, str, str]:
    """Run `corsproxy probe` in-process (its own event loop, so in a thread) and capture output."""
    code = await asyncio.to_thread(cli.main, ["probe", *args])
    out, err = capsys.readouterr()
    return code, out, err


async def probe_process(*args: str) -> tuple[int, str, str]:
    """Run `python -m corsproxy probe` as a separate process; killed by pid if it hangs."""
    process = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "corsproxy", "probe", *args, cwd=ROOT, env=dict(os.environ),
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE)
    try:
        out, err = await asyncio.wait_for(process.communicate(), 60)
    except asyncio.TimeoutError:
        await stop_process(process, "corsproxy probe", signal.SIGKILL)
        raise
    return process.returncode, out.decode(), err.decode()


# --- each way to fail ------------------------------------------------------------------------------

FAILURES = [
    pytest.param((404, []), (200, []), [], "no Access-Control-Allow-Origin header",
                 f"{ACAO}: {O}", id="no-acao"),
    pytest.param((404, []), (200, [(ACAO, "http://localhost:5173")]), [],
                 f"{ACAO} is 'http://localhost:5173', not the page's origin", f"{ACAO}: {O}", id="wrong-origin"),
    pytest.param((404, []), (200, [(ACAO, "*"), (ACAC, "true")]), ["--credentials"],
                 f"{ACAO} is '*', which a browser never accepts", f"{ACAO}: {O}", id="star-with-credentials"),
    pytest.param((404, []), (200, [(ACAO, O), (ACAO, O)]), [],
                 f"2 {ACAO} headers", f"{ACAO}: {O}", id="two-acao"),
    pytest.param((404, []), (200, [(ACAO, f"{O}, https://app.example")]), [],
                 f"{ACAO} is '{O}, https://app.example', a list", f"{ACAO}: {O}", id="comma-joined-acao"),
    pytest.param((404, []), (200, [(ACAO, O)]), ["-X", "PUT"],
                 "the preflight (OPTIONS) was answered 404", "status 204", id="preflight-404"),
    pytest.param((405, [(ACAO, O)]), (200, [(ACAO, O)]), ["-X", "DELETE"],
                 "the preflight (OPTIONS) was answered 405", "status 204", id="preflight-405"),
    pytest.param((204, [(ACAO, O), (ACAH, "content-type")]), (200, [(ACAO, O)]),
                 ["-H", "Authorization: Bearer t"], f"{ACAH} ('content-type') does not include 'authorization'",
                 f"{ACAH}: authorization", id="authorization-not-allowed"),
    pytest.param((204, [(ACAO, O), (ACAH, "*")]), (200, [(ACAO, O)]),
                 ["-H", "Authorization: Bearer t"], "Chromium is laxer", f"{ACAH}: authorization",
                 id="star-does-not-cover-authorization"),
    pytest.param((204, [(ACAO, O), (ACAM, "GET, POST")]), (200, [(ACAO, O)]), ["-X", "PATCH"],
                 f"{ACAM} ('GET, POST') does not include 'PATCH'", f"{ACAM}: PATCH", id="method-missing"),
    pytest.param((301, [(ACAO, O), ("Location", "/elsewhere")]), (200, [(ACAO, O)]), ["-X", "PUT"],
                 "a browser never follows a redirect for a preflight", "status 204", id="preflight-redirect"),
    pytest.param((404, []), (302, [("Location", "/elsewhere")]), [],
                 "no Access-Control-Allow-Origin header", f"{ACAO}: {O}", id="redirect-without-acao"),
    pytest.param((404, []), (200, [(ACAO, O)]), ["--credentials"],
                 f"{ACAC} is missing", f"{ACAC}: true", id="credentials-without-acac"),
]


@pytest.mark.parametrize(("preflight", "actual", "extra", "reason", "fix"), FAILURES)
async def test_probe_blocks(cors_server, capsys, preflight, actual, extra, reason, fix) -> None:
    """Each failure class: exit 1, 'blocked:', a reason naming the header, the fix and snippets."""
    base = await cors_server(preflight, actual)
    code, out, err = await probe(capsys, f"{base}/api/x", "--origin", O, *extra)
    assert code == 1, out + err
    assert "verdict: blocked: " in out
    assert reason in out
    assert "fix: the server must send\n" in out and f"  {fix}\n" in out
    for title in ("corsproxy YAML", "Express (what corsproxy export --to express writes for it):",
                  "nginx (what corsproxy export --to nginx writes for it):"):
        assert title in out
    assert f"allow_origins: [{O}]" in out and f'origins: ["{O}"]' in out and "add_header" in out


async def test_failed_preflight_stops_before_the_actual_request(cors_server, capsys) -> None:
    """A browser never sends the actual request after a failed preflight, so neither does probe."""
    base = await cors_server((204, [(ACAO, O)]), (200, [(ACAO, O)]))
    code, out, _ = await probe(capsys, f"{base}/x", "--origin", O, "-X", "DELETE")
    assert code == 1
    assert [method for method, _ in cors_server.seen] == ["OPTIONS"]
    assert "the actual request was not sent" in out


async def test_probe_allows_a_good_server(cors_server, capsys) -> None:
    """A server that answers correctly: both steps pass, exit 0, no fix printed."""
    base = await cors_server(
        (204, [(ACAO, O), (ACAC, "true"), (ACAM, "PUT"), (ACAH, "Authorization, Content-Type")]),
        (200, [(ACAO, O), (ACAC, "true"), ("X-Total", "1")]))
    code, out, _ = await probe(capsys, f"{base}/x", "--origin", O, "-X", "PUT", "--credentials",
                               "-H", "Authorization: Bearer t", "-H", "Content-Type: application/json",
                               "--data", "{}")
    assert code == 0, out
    assert out.rstrip().endswith("verdict: a browser would let the page read this")
    assert "fix:" not in out
    preflight_headers = cors_server.seen[0][1]
    assert cors_server.seen[0][0] == "OPTIONS"
    assert preflight_headers["Access-Control-Request-Method"] == "PUT"
    assert preflight_headers["Access-Control-Request-Headers"] == "authorization,content-type"
    assert "Authorization" not in preflight_headers
    method, actual_headers = cors_server.seen[1]
    assert method == "PUT" and actual_headers["Origin"] == O and actual_headers["Authorization"] == "Bearer t"
    assert "< X-Total: 1" in out   # every response header is printed
    assert "cannot read these response headers" in out and "x-total" in out


async def test_probe_explains_why_it_preflights(cors_server, capsys) -> None:
    """The reasons for a preflight are printed, each naming the method or header."""
    base = await cors_server((204, [(ACAO, O), (ACAH, "x-api-key")]), (200, [(ACAO, O)]))
    code, out, _ = await probe(capsys, f"{base}/x", "--origin", O, "-H", "X-Api-Key: k",
                               "-H", "Accept-Language: en_US")
    assert code == 1
    assert "a browser sends a preflight first, because:" in out
    assert "header 'X-Api-Key' is not a CORS-safelisted request-header" in out
    assert "header 'Accept-Language' contains '_'" in out
    assert f"{ACAH} ('x-api-key') does not include 'accept-language'" in out


async def test_simple_request_has_no_preflight(cors_server, capsys) -> None:
    """GET with safelisted headers only: no OPTIONS is sent."""
    base = await cors_server((500, []), (200, [(ACAO, "*")]))
    code, out, _ = await probe(capsys, f"{base}/x", "--origin", O, "-H", "Accept: application/json")
    assert code == 0
    assert [method for method, _ in cors_server.seen] == ["GET"]
    assert "no preflight" in out


async def test_redirect_is_reported_with_what_the_browser_does(cors_server, capsys) -> None:
    """A redirect is not followed by default: probe names the Location and the next Origin."""
    base = await cors_server((404, []), (302, [(ACAO, "*"), ("Location", "http://127.0.0.2:9/next")]))
    code, out, _ = await probe(capsys, f"{base}/x", "--origin", O)
    assert code == 0
    assert [method for method, _ in cors_server.seen] == ["GET"]
    assert "a browser follows it to http://127.0.0.2:9/next" in out
    assert "Origin: null" in out and "--follow" in out


async def test_follow_judges_the_next_hop_with_origin_null(cors_server, capsys) -> None:
    """--follow: a cross-origin redirect sends Origin: null, and the target must allow null."""
    target = await cors_server((404, []), (200, [(ACAO, O)]))
    base = await cors_server((404, []), (307, [(ACAO, O), ("Location", target.replace("127.0.0.1", "localhost") + "/t")]))
    code, out, _ = await probe(capsys, f"{base}/x", "--origin", O, "--follow", "--json")
    report = json.loads(out)
    assert code == 1
    assert [step["step"] for step in report["steps"]] == ["actual", "actual (after redirect 1)"]
    assert report["steps"][1]["request"]["headers"][0] == ["Origin", "null"]
    assert f"{ACAO} is '{O}', not the page's origin 'null'" in report["reasons"][0]


async def test_json_is_one_object(cors_server, capsys) -> None:
    """--json prints one JSON object with the steps, every header, the verdict and the fix."""
    base = await cors_server((204, [(ACAO, O), (ACAO, O), (ACAM, "PUT")]), (200, [(ACAO, O)]))
    code, out, _ = await probe(capsys, f"{base}/x", "--origin", O, "-X", "PUT", "--json")
    report = json.loads(out)
    assert code == 1 and report["allowed"] is False
    assert report["verdict"].startswith("blocked: ")
    assert report["preflight"]["needed"] is True
    assert report["steps"][0]["response"]["status"] == 204
    assert report["steps"][0]["response"]["headers"][:2] == [[ACAO, O], [ACAO, O]]
    assert {"header": ACAO, "value": O} in report["fix"]["headers"]
    assert set(report["fix"]) == {"headers", "corsproxy_yaml", "express", "nginx"}


# --- corsproxy itself ------------------------------------------------------------------------------

PROXY_YAML = """
    cors:
      allow_origins: [http://localhost:3000]
      allow_headers: [Content-Type, Authorization]
    routes:
      - prefix: /api
        upstream: {upstream}/v1
"""


async def test_corsproxy_fixes_a_no_cors_upstream(make_proxy, upstream, capsys) -> None:
    """The upstream alone is blocked; the same request through corsproxy is allowed."""
    proxy = await make_proxy(PROXY_YAML)
    args = ("--origin", O, "-X", "PUT", "-H", "Authorization: Bearer t",
            "-H", "Content-Type: application/json", "--data", '{"a": 1}')
    code, out, _ = await probe(capsys, f"http://127.0.0.1:{upstream.port}/v1/orders", *args)
    assert code == 1 and "preflight: fails" in out and f"no {ACAO} header" in out
    code, out, _ = await probe(capsys, str(proxy.make_url("/api/orders")), *args)
    assert code == 0, out
    assert "preflight: passes" in out and "actual: passes" in out
    assert out.rstrip().endswith("verdict: a browser would let the page read this")


async def test_corsproxy_refusal_of_an_origin_is_recognised(make_proxy, capsys) -> None:
    """An origin corsproxy does not allow: probe says corsproxy refused it and which line to
    change, and does not suggest headers for the server (or corsproxy in front of corsproxy)."""
    proxy = await make_proxy(PROXY_YAML)
    code, out, _ = await probe(capsys, str(proxy.make_url("/api/orders")), "--origin", "http://localhost:5173",
                               "-X", "DELETE")
    assert code == 1
    verdict = next(line for line in out.splitlines() if line.startswith("verdict: "))
    assert verdict.startswith("verdict: blocked: corsproxy refused this: origin 'http://localhost:5173' is "
                              "not in allow_origins of route /api (")
    assert verdict.endswith("corsproxy.yaml:3); add it to allow_origins to allow it; change "
                            f"{verdict.split('(', 1)[1].split(')', 1)[0]}")
    assert "the preflight (OPTIONS) was answered 403" in out
    assert "fix: change corsproxy's config at " in out
    assert "fix: the server must send" not in out and "corsproxy YAML" not in out


async def test_corsproxy_refusal_of_a_header_names_the_allow_headers_line(make_proxy, capsys) -> None:
    """A header corsproxy does not allow (credentials and Authorization are fine): the verdict is
    corsproxy's own reason and the allow_headers line, in text and JSON."""
    proxy = await make_proxy(PROXY_YAML.replace("allow_origins: [http://localhost:3000]",
                                                "allow_origins: [http://localhost:3000]\n      allow_credentials: true"))
    code, out, _ = await probe(capsys, str(proxy.make_url("/api/orders")), "--origin", O, "-X", "POST",
                               "--credentials", "-H", "Authorization: Bearer t", "-H", "X-Foo: 1", "--json")
    report = json.loads(out)
    assert code == 1
    change = report["fix"]["corsproxy"]["change"]
    assert len(change) == 1 and change[0].endswith("corsproxy.yaml:5")   # the allow_headers line
    assert report["verdict"] == (
        f"blocked: corsproxy refused this: header 'x-foo' is not in allow_headers of route /api "
        f"({change[0]}); add it to allow_headers to allow it; change {change[0]}")
    # What the browser sees is only that one header is missing: no word of credentials or Authorization.
    assert report["reasons"][1:] == [f"{ACAH} ('authorization, content-type') does not include 'x-foo'"]
    assert "corsproxy_yaml" not in report["fix"]


async def test_a_redirect_without_acao_says_the_redirect_was_judged(cors_server, capsys) -> None:
    """A 302 without Access-Control-Allow-Origin: the verdict says it is the redirect response the
    browser judged (before following it), not the page at its Location."""
    base = await cors_server((404, []), (302, [("Location", "/v1/items")]))
    code, out, _ = await probe(capsys, f"{base}/x", "--origin", O)
    assert code == 1
    assert ("verdict: blocked: the browser judged the redirect response (302 to /v1/items) itself, before "
            f"following it: the response has no {ACAO} header") in out


async def test_snippets_tell_the_page_to_call_localhost(cors_server, capsys) -> None:
    """The corsproxy snippet points the page at http://localhost:8080 (the page's host name), never
    at 127.0.0.1, which is another site to a page on localhost."""
    base = await cors_server((404, []), (200, []))
    code, out, _ = await probe(capsys, f"{base}/x", "--origin", O)
    assert code == 1
    assert "point the page at the proxy (http://localhost:8080, the page's own host name)" in out
    assert "http://127.0.0.1:8080" not in out


# --- as a process, and the exit code 2 cases -------------------------------------------------------


async def test_process_exit_codes(cors_server) -> None:
    """`python -m corsproxy probe`: 0 when allowed, 1 when blocked, with the verdict on stdout."""
    good = await cors_server((404, []), (200, [(ACAO, O)]))
    bad = await cors_server((404, []), (200, []))
    code, out, err = await probe_process(f"{good}/x", "--origin", O)
    assert (code, err) == (0, "") and "a browser would let the page read this" in out
    code, out, err = await probe_process(f"{bad}/x", "--origin", O, "--json")
    assert code == 1 and json.loads(out)["allowed"] is False


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


async def test_process_cannot_connect_exits_2() -> None:
    """Nothing listening: exit 2 and one message, never a traceback."""
    code, out, err = await probe_process(f"http://127.0.0.1:{free_port()}/x", "--origin", O)
    assert code == 2
    assert err.startswith("corsproxy probe: could not connect") and "Traceback" not in err


@pytest.mark.parametrize(("args", "message"), [
    pytest.param(["http://127.0.0.1:1/x"], "--origin", id="origin-missing"),
    pytest.param(["http://127.0.0.1:1/x", "--origin", "http://localhost:3000/app"], "has no path", id="origin-path"),
    pytest.param(["ftp://127.0.0.1/x", "--origin", O], "not an absolute http(s) URL", id="url-scheme"),
    pytest.param(["http://127.0.0.1:1/x", "--origin", O, "-X", "TRACE"], "forbidden method", id="forbidden-method"),
    pytest.param(["http://127.0.0.1:1/x", "--origin", O, "-H", "NoColon"], "is not 'Name: value'", id="bad-header"),
    pytest.param(["http://127.0.0.1:1/x", "--origin", O, "-H", "Origin: x"], "use --origin", id="origin-header"),
    pytest.param(["http://127.0.0.1:1/x", "--origin", O, "--data", "x"], "refuses a body with GET", id="get-body"),
    pytest.param(["http://127.0.0.1:1/x", "--origin", O, "--timeout", "0"], "--timeout", id="timeout"),
])
async def test_bad_arguments_exit_2(capsys, args: list[str], message: str) -> None:
    """Bad arguments: exit 2 with a message naming the argument, nothing sent."""
    code, out, err = await probe(capsys, *args)
    assert code == 2
    assert message in err and "Traceback" not in err


async def test_forbidden_header_is_noted_and_does_not_preflight(cors_server, capsys) -> None:
    """-H Cookie: a page cannot set it, so it causes no preflight; probe says so."""
    base = await cors_server((500, []), (200, [(ACAO, O), (ACAC, "true")]))
    code, out, _ = await probe(capsys, f"{base}/x", "--origin", O, "--credentials", "-H", "Cookie: s=1")
    assert code == 0
    assert "'Cookie' is a forbidden request-header name" in out
    assert [method for method, _ in cors_server.seen] == ["GET"]
    assert cors_server.seen[0][1]["Cookie"] == "s=1"


async def test_timeout_exits_2(aiohttp_server, capsys) -> None:
    """A server that never answers: exit 2 after --timeout, naming the wait."""
    release = asyncio.Event()

    async def hang(request: web.Request) -> web.Response:
        await release.wait()
        return web.Response()

    app = web.Application()
    app.router.add_get("/", hang)
    server = await aiohttp_server(app)
    try:
        code, _, err = await probe(capsys, f"http://127.0.0.1:{server.port}/", "--origin", O, "--timeout", "0.3")
    finally:
        release.set()
    assert code == 2 and "no answer within 0.3 seconds" in err

"""Intercept, judged by real headless Chromium: a page calls a third party's URL directly.

The third party is an HTTPS app on 127.0.0.1 with a test certificate for api.thirdparty.test,
sending no CORS headers for the page (tests/intercept_env.py). corsproxy runs from its real CLI;
Chromium is launched as `corsproxy browser` launches it (a fresh profile, the PAC, the SPKI pin)
plus --host-resolver-rules that resolve no name at all (so nothing can leave the machine, and a
host the PAC does not send to the proxy cannot be reached).
"""

from __future__ import annotations

import asyncio
import signal
import sys
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path

import pytest
import pytest_asyncio
from aiohttp import web

from corsproxy.commands.browser import INTERCEPT_LINE, chrome_flags
from tests.browser.apps import Site, start_site
from tests.browser.conftest import READY, ROOT, START_TIMEOUT, fresh_context, launched_chromium
from tests.intercept_env import LISTED_PATH, THIRD_PARTY, ThirdParty, third_party_app, write_test_pki
from tests.processes import stop_process

pytestmark = [pytest.mark.browser, pytest.mark.asyncio(loop_scope="module")]

# Every name but loopback resolves to nothing (the rules apply to IP literals too, hence the
# 127.0.0.1 exclusion: without it the PAC fetch fails and Chromium goes direct, silently).
NO_DNS = "--host-resolver-rules=MAP * ~NOTFOUND, EXCLUDE localhost, EXCLUDE 127.0.0.1"
PAGE = b"<!doctype html><title>widget page</title><p>a page on localhost that embeds a third-party widget</p>"


@dataclass
class Intercept:
    party: ThirdParty
    party_site: web.AppRunner
    page: Site
    process: asyncio.subprocess.Process
    log: Path
    listener: str
    spki: str

    def proxy_log(self) -> str:
        return self.log.read_text()


async def start_https(app: web.Application, cert: Path, key: Path) -> tuple[web.AppRunner, int]:
    import ssl
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    context.load_cert_chain(cert, key)
    runner = web.AppRunner(app, shutdown_timeout=1, access_log=None)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0, ssl_context=context)
    await site.start()
    return runner, site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]


async def serve_page(_request: web.Request) -> web.Response:
    return web.Response(body=PAGE, content_type="text/html")


def page_app() -> web.Application:
    app = web.Application()
    app.router.add_get("/", serve_page)
    return app


@pytest_asyncio.fixture(scope="module", loop_scope="module")
async def intercept(tmp_path_factory) -> AsyncIterator[Intercept]:
    tmp = tmp_path_factory.mktemp("intercept")
    ca_file, cert, key = write_test_pki(tmp)
    party = ThirdParty(0, ca_file)
    party_runner, party.port = await start_https(third_party_app(party), cert, key)
    page = await start_site(page_app())
    (tmp / "c.yaml").write_text(f"""\
cors:
  allow_origins: [{page.url}]
routes: []
intercept:
  listen: 127.0.0.1:0
  hosts:
    - host: {THIRD_PARTY}
      paths: [{LISTED_PATH}]
      cors: {{allow_credentials: true, allow_headers: [X-Custom]}}
      connect_to: 127.0.0.1:{party.port}
      ca_file: {ca_file.name}
""")
    log = tmp / "proxy.log"
    with log.open("wb") as stderr:
        process = await asyncio.create_subprocess_exec(
            sys.executable, "-m", "corsproxy", "serve", "-c", str(tmp / "c.yaml"), "--port", "0", "--grace", "1",
            cwd=ROOT, stdout=asyncio.subprocess.PIPE, stderr=stderr)
    try:
        ready = (await asyncio.wait_for(process.stdout.readline(), START_TIMEOUT)).decode()
        line = (await asyncio.wait_for(process.stdout.readline(), START_TIMEOUT)).decode().strip()
        match = INTERCEPT_LINE.match(line)
        assert ready.startswith(READY) and match, f"{ready}{line}\n{log.read_text()}"
        yield Intercept(party, party_runner, page, process, log, match["url"], match["spki"])
    finally:
        code = await stop_process(process, f"corsproxy (log: {log})", signal.SIGTERM)
        await page.stop()
        await party_runner.cleanup()
    assert code == 0


def intercept_flags(intercept: Intercept, *, pinned: bool = True) -> list[str]:
    """Chromium's flags as `corsproxy browser` starts it (Playwright's launch is a fresh profile)."""
    flags = chrome_flags(intercept.listener, intercept.spki)
    if not pinned:
        flags = [flag for flag in flags if not flag.startswith("--ignore-certificate-errors-spki-list=")]
    return [*flags, NO_DNS]


@pytest_asyncio.fixture(scope="module", loop_scope="module")
async def browser(intercept, tmp_path_factory):
    async with launched_chromium(tmp_path_factory, *intercept_flags(intercept)) as launched:
        yield launched


@pytest_asyncio.fixture(loop_scope="module")
async def page(browser, intercept):
    async with fresh_context(browser) as context:
        page = await context.new_page()
        await page.goto(intercept.page.url + "/")
        intercept.party.methods.clear()
        intercept.party.seen.clear()
        yield page


FETCH = """async ([url, init]) => {
  try {
    const response = await fetch(url, init);
    return {ok: true, status: response.status, body: await response.text()};
  } catch (error) {
    return {ok: false, error: String(error)};
  }
}"""


async def call(page, url: str, **init) -> dict:
    return await page.evaluate(FETCH, [url, init])


async def test_the_page_reads_the_listed_path_with_credentials_and_a_custom_header(page, intercept) -> None:
    """credentials: 'include' + X-Custom: Chromium's preflight is answered by corsproxy, the actual
    GET reaches the third party with the page's Origin, and the page reads the answer."""
    result = await call(page, f"https://{THIRD_PARTY}{LISTED_PATH}/data", credentials="include",
                        headers={"X-Custom": "from-the-page"})
    assert result["ok"] and result["status"] == 200, (result, intercept.proxy_log())
    assert '"custom": "from-the-page"' in result["body"]
    assert intercept.party.methods == {"GET": 1}  # no OPTIONS reached it
    assert intercept.party.seen[0]["headers"]["Origin"] == intercept.page.url


async def test_an_unlisted_path_of_the_listed_host_stays_blocked(page, intercept) -> None:
    """Another path of the host passes through untouched, so Chromium still blocks it."""
    result = await call(page, f"https://{THIRD_PARTY}/v2/other")
    assert not result["ok"] and "Failed to fetch" in result["error"]
    assert intercept.party.methods == {"GET": 1}  # it did reach the host, headers untouched


async def test_an_unlisted_host_is_never_proxied(page, intercept) -> None:
    """The PAC sends other hosts DIRECT (and no name resolves): the listener never sees them."""
    result = await call(page, "https://unlisted.thirdparty.test/x")
    assert not result["ok"]
    assert "unlisted.thirdparty.test" not in intercept.proxy_log()


async def test_a_foreign_origin_inside_the_tunnel_is_refused(browser, intercept) -> None:
    """A page on another origin (127.0.0.1, not listed) gets 403 in the tunnel; nothing is forwarded."""
    async with fresh_context(browser) as context:
        page = await context.new_page()
        await page.goto(f"http://127.0.0.1:{intercept.page.port}/")
        intercept.party.methods.clear()
        result = await call(page, f"https://{THIRD_PARTY}{LISTED_PATH}/data")
    assert not result["ok"]
    assert sum(intercept.party.methods.values()) == 0
    assert f"origin=http://127.0.0.1:{intercept.page.port}" in intercept.proxy_log()
    assert "status=403" in intercept.proxy_log()


async def test_a_browser_without_the_spki_pin_gets_a_certificate_error(intercept, tmp_path_factory) -> None:
    """Only the pin makes Chromium trust the CA: nothing was added to any trust store."""
    async with launched_chromium(tmp_path_factory, *intercept_flags(intercept, pinned=False)) as browser:
        page = await browser.new_page()
        with pytest.raises(Exception) as failed:
            await page.goto(f"https://{THIRD_PARTY}{LISTED_PATH}/data")
        assert "ERR_CERT_AUTHORITY_INVALID" in str(failed.value)

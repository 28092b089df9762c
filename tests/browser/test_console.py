"""Real Chromium tells the user the real fix: a preflight corsproxy refuses for an allowed origin
makes Chromium's console blame the missing method or header, never a missing
Access-Control-Allow-Origin; a cookie Chromium drops is named in corsproxy's log."""

from __future__ import annotations

import asyncio

import pytest

pytestmark = [pytest.mark.browser, pytest.mark.asyncio(loop_scope="module")]

CONSOLE_WAIT = 10.0
CORS_ERROR = "has been blocked by CORS policy"


async def console_of(context, page_url: str, script: str, arg) -> tuple[dict, list[str]]:
    """Run `script(arg)` on a page at `page_url`; return its result and the console's messages
    once Chromium has reported the CORS error (it may arrive after fetch() rejects)."""
    page = await context.new_page()
    messages: list[str] = []
    reported = asyncio.Event()

    def on_console(message) -> None:
        messages.append(message.text)
        if CORS_ERROR in message.text:
            reported.set()

    page.on("console", on_console)
    await page.goto(page_url + "/")
    result = await page.evaluate(script, arg)
    await asyncio.wait_for(reported.wait(), CONSOLE_WAIT)
    return result, messages


FETCH = """async ([url, init]) => {
  try { const r = await fetch(url, init); return {readable: true, status: r.status}; }
  catch (e) { return {readable: false, error: e.name}; }
}"""


@pytest.mark.parametrize(("init", "message"), [
    pytest.param({"method": "PURGE", "credentials": "include"},
                 "Method PURGE is not allowed by Access-Control-Allow-Methods in preflight response.",
                 id="method"),
    pytest.param({"headers": {"X-Foo": "1"}, "credentials": "include"},
                 "Request header field x-foo is not allowed by Access-Control-Allow-Headers in preflight response.",
                 id="header"),
])
async def test_console_names_the_missing_method_or_header(world, context, init, message):
    """From the allowed page, a method or header the route does not allow: Chromium's console
    says which, and nothing reaches the upstream."""
    world.reset()
    url = world.proxy.url + "/api/items"
    result, messages = await console_of(context, world.allowed_page.url, FETCH, [url, init])
    assert result == {"readable": False, "error": "TypeError"}
    origin = world.allowed_page.url
    expected = (f"Access to fetch at '{url}' from origin '{origin}' has been blocked by CORS policy: "
                f"{message}")
    assert expected in messages, messages
    assert not any("No 'Access-Control-Allow-Origin'" in text for text in messages), messages
    assert world.received == []


async def test_console_blames_the_origin_for_a_refused_origin(world, context):
    """A page whose origin is refused still sees the origin failure (403, no Allow-Origin)."""
    world.reset()
    url = world.proxy.url + "/api/items"
    result, messages = await console_of(context, world.foreign_page.url, FETCH,
                                        [url, {"headers": {"X-Foo": "1"}}])
    assert result == {"readable": False, "error": "TypeError"}
    assert any("Response to preflight request doesn't pass access control check: No "
               "'Access-Control-Allow-Origin' header is present on the requested resource." in text
               for text in messages), messages
    assert world.received == []


async def test_a_cookie_chromium_drops_is_named_in_the_log(world, context):
    """The allowed page on localhost logs in through the proxy called as 127.0.0.1 (another site):
    Chromium keeps no cookie, and the proxy's log names the cookie and that reason."""
    page = await context.new_page()
    await page.goto(world.allowed_page.url + "/")
    by_ip = world.proxy.url.replace("localhost", "127.0.0.1")
    result = await page.evaluate("""(url) => fetch(url, {method: 'POST', credentials: 'include',
        headers: {'Content-Type': 'application/json'}, body: '{"user": "ada"}'}).then(r => r.status)""",
                                 by_ip + "/api/login")
    assert result == 200
    assert await context.cookies(by_ip) == []
    logged = ""
    for _ in range(50):             # the line follows the response; bounded wait for it
        logged = world.proxy.log.read_text()
        if "cookie dropped" in logged:
            break
        await asyncio.sleep(0.1)
    (line,) = [text for text in logged.splitlines() if "cookie dropped" in text]
    assert "cookie=session" in line and "are different sites" in line, line
    assert f"call the proxy with the page's host name, {world.proxy.url}" in line, line

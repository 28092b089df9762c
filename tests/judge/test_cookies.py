"""The cookie doctor as values: which Set-Cookie a browser drops, and the reason, one row per rule."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from corsproxy.judge.cookies import CookieContext, CookieFinding, judge_set_cookie, parse_set_cookie

PROXY = "http://localhost:8080"
PAGE = "http://localhost:5173"


def context(proxy: str = PROXY, page: str | None = PAGE, credentials: bool = True) -> CookieContext:
    return CookieContext(proxy, page, credentials, "config/a.yaml:4", "route /api")


KEPT = [
    pytest.param("session=1; Path=/; HttpOnly", context(), id="plain-same-site-credentialed"),
    pytest.param("session=1; Path=/", context(page=None, credentials=False), id="navigation-needs-no-credentials"),
    pytest.param("session=1", context(page=PROXY, credentials=False), id="same-origin-needs-no-credentials"),
    pytest.param("s=1; Secure", context(), id="secure-on-http-localhost"),
    pytest.param("s=1; Secure", context(proxy="http://127.0.0.1:8080", page=None), id="secure-on-loopback-ip"),
    pytest.param("__Secure-s=1; Secure", context(), id="secure-prefix"),
    pytest.param("__Host-s=1; Secure; Path=/", context(), id="host-prefix"),
    pytest.param("s=1; SameSite=None; Secure", context(proxy="http://127.0.0.1:8080"),
                 id="third-party-cookie-samesite-none-secure"),
    pytest.param("s=1", context(proxy="https://api.example.com", page="https://app.example.com"),
                 id="same-site-subdomains"),
    pytest.param("=nameless", context(page="http://other.test", credentials=False), id="no-name-no-finding"),
]


@pytest.mark.parametrize(("value", "ctx"), KEPT)
def test_kept(value: str, ctx: CookieContext) -> None:
    """A cookie the browser keeps gets no finding."""
    assert judge_set_cookie(value, ctx) is None


DROPPED = [
    pytest.param("session=1; Path=/", context(credentials=False),
                 ["route /api does not allow credentials (config/a.yaml:4), so the page can read this "
                  "response only from a fetch without credentials, and a browser ignores Set-Cookie in "
                  "answer to such a request; set allow_credentials: true there and fetch with "
                  "credentials: 'include'"], id="route-without-credentials"),
    pytest.param("session=1; Path=/", context(proxy="http://127.0.0.1:8080"),
                 ["the page (http://localhost:5173) and the proxy (http://127.0.0.1:8080) are different "
                  "sites, and a browser refuses a SameSite=Lax (the default) cookie from a cross-site "
                  "response; call the proxy with the page's host name, http://localhost:8080"],
                 id="localhost-page-127-proxy"),
    pytest.param("session=1; SameSite=Strict", context(proxy="http://api.test:8080", page="http://app.example:3000"),
                 ["are different sites, and a browser refuses a SameSite=Strict cookie"], id="other-domain-strict"),
    pytest.param("s=1; SameSite=None", context(),
                 ["it has SameSite=None without Secure, which browsers refuse; add Secure"],
                 id="samesite-none-without-secure"),
    pytest.param("s=1; Secure", context(proxy="http://devbox.lan:8080", page="http://devbox.lan:3000"),
                 ["its Secure attribute needs a secure origin, and http://devbox.lan:8080 is plain http "
                  "on a host that is neither localhost nor a loopback address"], id="secure-on-plain-http-lan"),
    pytest.param("__Secure-s=1; Secure", context(proxy="http://10.0.0.5:8080", page=None),
                 ["its __Secure- prefix needs a secure origin"], id="secure-prefix-on-plain-http"),
    pytest.param("__Host-s=1; Secure; Path=/", context(proxy="http://devbox.lan:8080", page=None),
                 ["its __Host- prefix needs a secure origin"], id="host-prefix-on-plain-http"),
    pytest.param("__Secure-s=1", context(), ["its __Secure- prefix requires Secure, which it lacks"],
                 id="secure-prefix-without-secure"),
    pytest.param("__Host-s=1; Secure; Path=/app", context(), ["its __Host- prefix requires Path=/, which it lacks"],
                 id="host-prefix-with-a-path"),
    pytest.param("__Host-s=1; Secure; Path=/; Domain=localhost", context(),
                 ["its __Host- prefix requires no Domain, which it lacks"], id="host-prefix-with-domain"),
    pytest.param("s=1; SameSite=None", context(proxy="http://127.0.0.1:8080", credentials=False),
                 ["does not allow credentials", "are different sites", "SameSite=None without Secure"],
                 id="three-reasons-at-once"),
]


@pytest.mark.parametrize(("value", "ctx", "fragments"), DROPPED)
def test_dropped_with_every_reason(value: str, ctx: CookieContext, fragments: list[str]) -> None:
    """A cookie the browser drops: its name and one sentence per reason, in a frozen value."""
    finding = judge_set_cookie(value, ctx)
    assert isinstance(finding, CookieFinding)
    assert finding.name == parse_set_cookie(value)[0]
    assert len(finding.reasons) == len(fragments)
    for reason, fragment in zip(finding.reasons, fragments):
        assert fragment in reason


def test_parse_set_cookie_reads_name_and_attributes() -> None:
    """Name before the first '=', attributes case-insensitive, values trimmed."""
    assert parse_set_cookie("sid=a=b; Path=/x ; SECURE; SameSite=None") == (
        "sid", {"path": "/x", "secure": "", "samesite": "None"})


def test_cookie_judge_is_pure() -> None:
    """judge/cookies.py imports nothing of the async stack (it is judged at import, like policy/)."""
    code = ("import sys, corsproxy.judge.cookies; "
            "print([m for m in ('aiohttp', 'yaml', 'structlog', 'asyncio', 'multidict') if m in sys.modules])")
    out = subprocess.run([sys.executable, "-c", code], cwd=Path(__file__).resolve().parents[2],
                         capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"

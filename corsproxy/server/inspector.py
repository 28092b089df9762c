"""The inspector's aiohttp side: the one place a finished request becomes a record, and the
built-ins that show them (`/__corsproxy/` the page, `/__corsproxy/events` the JSON).

The record is redacted and kept in a bounded buffer (`corsproxy.judge.inspection`); the verdicts,
fixes and JSON are made only when the events are read. Neither built-in sends an
Access-Control-Allow-* header, both sit behind the Host guard, and the page's script and style
are pinned by hash in its Content-Security-Policy: no other site can read or drive them.
"""

from __future__ import annotations

import base64
import dataclasses
import hashlib
import json
import time
from functools import cache
from importlib import resources
from typing import TYPE_CHECKING

from aiohttp import web

from corsproxy.export import snippets
from corsproxy.judge.inspection import (
    EventBuffer,
    Record,
    cookie_findings,
    cors_response_headers,
    event_json,
    injected_names,
    redact_request,
)
from corsproxy.judge.remedies import Remedy
from corsproxy.model import BUILTIN_PREFIX, Config
from corsproxy.policy import origins

if TYPE_CHECKING:
    from corsproxy.server.app import Trace

NOTHING_INJECTED: frozenset[str] = frozenset()

INSPECTOR = web.AppKey("inspector", EventBuffer)
PAGE_PATHS = frozenset({BUILTIN_PREFIX, BUILTIN_PREFIX + "/"})
EVENTS_PATH = BUILTIN_PREFIX + "/events"
MAX_PATH = 2048          # characters of a path kept in a record
JSON = "application/json"
# Nothing of the inspector may be embedded in, sniffed by or cached for another site.
_COMMON_HEADERS = {
    "Cache-Control": "no-store",
    "X-Content-Type-Options": "nosniff",
    "Cross-Origin-Resource-Policy": "same-origin",
    "Referrer-Policy": "no-referrer",
}


def new_buffer(config: Config) -> EventBuffer:
    return EventBuffer(config.server.inspector_size)


def record(request: web.BaseRequest, app: web.Application, response: web.StreamResponse, trace: Trace,
           config: Config, elapsed: int) -> None:
    """Keep what the inspector shows of this request (never its body or a secret value). `app`
    is the main port's application: a request that came through a tunnel is recorded there too.
    `elapsed`: how long it took, in nanoseconds."""
    buffer = app[INSPECTOR]
    server = config.server
    if buffer.size != server.inspector_size:
        buffer.resize(server.inspector_size)          # a reload changed server.inspector_size
    if not buffer.size or trace.decision == "builtin":
        return
    match, facts, upstream = trace.match, trace.facts, trace.upstream_headers
    route = match.route if match is not None else None
    headers = request.headers
    if facts is None:
        origin, method = headers.get("Origin"), request.method
    else:   # the same values, read from the wire once already
        origin, method = facts.origin, facts.method
    path = request.raw_path.partition("?")[0][:MAX_PATH]
    # tuple.__new__, not Record(...): this runs on every request, and the NamedTuple's own
    # __new__ is a Python function of 22 arguments.
    buffer.add(_new_record(Record, (
        buffer.next_id(), time.time(), method, path, origin, response.status, elapsed / 1e6,
        trace.decision or "rejected", trace.reasons,
        redact_request(headers.items(), injected_names(route.set_headers) if route and route.set_headers
                       else NOTHING_INJECTED),
        trace.cors_headers, server, route, trace.source, trace.policy, facts,
        trace.upstream_status, None if upstream is None else cors_response_headers(upstream),
        trace.upstream_url, cookie_findings(trace.cookies) if trace.cookies else (),
        None if facts is None or facts.is_preflight else buffer.link(origin, path, method),
        trace.intercepted,
    )))


_new_record = tuple.__new__


# --- the built-ins ------------------------------------------------------------------------------


def answer(request: web.BaseRequest, app: web.Application, config: Config, path: str) -> web.Response:
    """The page, the events, or clearing them (DELETE, same-origin only)."""
    if path == EVENTS_PATH and request.method == "DELETE":
        return _clear(request, app[INSPECTOR])
    if request.method not in ("GET", "HEAD"):
        allow = "GET, HEAD, DELETE" if path == EVENTS_PATH else "GET, HEAD"
        return web.Response(status=405, text=f"{path} answers {allow} only\n",
                            headers={**_COMMON_HEADERS, "Allow": allow})
    if path == EVENTS_PATH:
        return _events(request, app[INSPECTOR], config)
    page = _page()
    return web.Response(status=200, body=page.body, content_type="text/html", charset="utf-8",
                        headers={**_COMMON_HEADERS, "Content-Security-Policy": page.csp,
                                 "X-Frame-Options": "DENY"})


def _with_snippets(event: dict) -> dict:
    """The server-side fix as configuration: the same nginx and Express text probe prints and
    `corsproxy export` writes (the judge below gives only the remedy)."""
    upstream = event["upstream_cors"]
    remedy = upstream.get("remedy") if upstream else None
    upstream_snippets = None
    if remedy is not None:
        fix = Remedy(**{**remedy, "header_names": tuple(remedy["header_names"])})
        upstream_snippets = dataclasses.asdict(snippets.for_remedy(fix))
    if upstream is not None:
        upstream["snippets"] = upstream_snippets
    return event


def _events(request: web.BaseRequest, buffer: EventBuffer, config: Config) -> web.Response:
    text = request.query.get("after", "0")
    if not (text.isascii() and text.isdigit()) or len(text) > 18:
        return web.Response(status=400, text=f"after={text[:40]!r}: expected an event id (a whole number)\n",
                            headers=_COMMON_HEADERS)
    server = config.server
    payload = {
        "events": [_with_snippets(event_json(record, buffer)) for record in buffer.after(int(text))],
        "enabled": server.inspector_size > 0,
        "size": server.inspector_size,
        "source": str(server.source) if server.source else None,
        "latest": buffer.latest_id,
    }
    return web.Response(status=200, body=json.dumps(payload).encode(), content_type=JSON,
                        headers=_COMMON_HEADERS)


def _clear(request: web.BaseRequest, buffer: EventBuffer) -> web.Response:
    """Only the inspector page itself may clear: a cross-site DELETE is preflighted (and the
    built-ins never answer a preflight with Access-Control-Allow-*), and the Origin is checked
    again here in case a browser sent it anyway."""
    origin = request.headers.get("Origin")
    own = origins.own_origin(request.scheme, request.headers.get("Host", ""))
    if origin is not None and origin != own or request.headers.get("Sec-Fetch-Site", "same-origin") != "same-origin":
        return web.Response(status=403, text="only the inspector page may clear its events\n",
                            headers=_COMMON_HEADERS)
    buffer.clear()
    return web.Response(status=204, headers=_COMMON_HEADERS)


# --- the page -----------------------------------------------------------------------------------


class _Page:
    """index.html with its style and script inlined once, and the CSP that pins them by hash."""

    def __init__(self) -> None:
        assets = resources.files("corsproxy.server") / "inspector_assets"
        style = (assets / "inspector.css").read_text(encoding="utf-8")
        script = (assets / "inspector.js").read_text(encoding="utf-8")
        html = (assets / "index.html").read_text(encoding="utf-8")
        self.body = (html.replace("<style></style>", f"<style>{style}</style>")
                     .replace("<script></script>", f"<script>{script}</script>").encode())
        self.csp = ("default-src 'none'; "
                    f"script-src '{_sha256(script)}'; style-src '{_sha256(style)}'; "
                    "connect-src 'self'; img-src 'self' data:; "
                    "base-uri 'none'; form-action 'none'; frame-ancestors 'none'")


def _sha256(text: str) -> str:
    return "sha256-" + base64.b64encode(hashlib.sha256(text.encode()).digest()).decode()


@cache
def _page() -> _Page:
    """Built when first asked for: a proxy whose inspector nobody opens never holds it."""
    return _Page()

"""The `probe` command's I/O: replay a request the way a browser sends it and say whether CORS
lets the page read the answer.

The decisions are the pure core's (`corsproxy.judge.fetch_request`: would a browser preflight;
`corsproxy.judge.browser`: would it let the page read the answer); this module only parses the
arguments, sends the preflight (when a browser would) and the actual request with aiohttp, and
prints what it saw.
Exit codes (CONTRACT): 0 a browser would allow it, 1 it would block it, 2 could not connect or
bad arguments (a message, never a traceback).
"""

from __future__ import annotations

import argparse
import asyncio
import dataclasses
import json
import ssl
import sys
from dataclasses import dataclass, field
from urllib.parse import urlsplit

import aiohttp
from multidict import CIMultiDict

from corsproxy import __version__
from corsproxy.export import snippets as export_snippets
from corsproxy.judge import browser, fetch_request
from corsproxy.judge.browser import Verdict
from corsproxy.judge.fetch_headers import get_header, is_token
from corsproxy.policy.cors import CHANGE_HEADER, NON_WILDCARD_HEADER, REFUSED_HEADER
from corsproxy.policy.origins import normalise_origin
from corsproxy.text import printable

EXIT_ALLOWED, EXIT_BLOCKED, EXIT_USAGE = 0, 1, 2
BODY_EXCERPT = 2000         # bytes of an error response's body shown
MAX_REDIRECTS = 20           # Fetch §4.4: a browser gives up after 20 redirects
ALLOWED_TEXT = "a browser would let the page read this"
# Headers probe (or the HTTP client) must own; a -H for them is a usage error.
_MANAGED = frozenset({
    "origin", "host", "content-length", "transfer-encoding", "connection", "keep-alive", "upgrade",
    "te", "trailer", "expect", "access-control-request-method", "access-control-request-headers",
})
# Fetch "request-body-header name": dropped when a redirect turns the request into a GET.
_BODY_HEADERS = frozenset({"content-encoding", "content-language", "content-location", "content-type"})


class ProbeError(Exception):
    """Bad arguments or no connection: exit 2 with this message."""


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("url", help="the URL the page fetches, e.g. http://localhost:8080/api/orders")
    parser.add_argument("--origin", required=True, help="the page's origin, e.g. http://localhost:3000")
    parser.add_argument("-X", "--method", default="GET", help="the fetch() method (default GET)")
    parser.add_argument("-H", "--header", dest="headers", action="append", default=[], metavar="'NAME: VALUE'",
                        help="a header the page sets; repeat for more")
    parser.add_argument("--credentials", action="store_true",
                        help="the page fetches with credentials: 'include' (cookies, HTTP auth)")
    parser.add_argument("-d", "--data", metavar="BODY", help="request body (sent as text/plain unless -H sets Content-Type)")
    parser.add_argument("--timeout", type=float, default=10.0, metavar="S", help="seconds per request (default 10)")
    parser.add_argument("--follow", action="store_true",
                        help="follow redirects as the browser would (default: report them and stop)")
    parser.add_argument("--json", action="store_true", help="print one JSON object instead of text")
    parser.add_argument("--intercept", metavar="LISTENER",
                        help="send through corsproxy's intercept listener (e.g. http://127.0.0.1:8081), trusting "
                             "its CA, as `corsproxy browser` does: probe an intercepted third-party URL")
    parser.set_defaults(run=run)


@dataclass(frozen=True, slots=True)
class Plan:
    """The request as the page would make it, validated."""

    url: str
    origin: str
    method: str
    headers: tuple[tuple[str, str], ...]
    body: bytes | None
    credentials: bool
    timeout: float
    follow: bool
    notes: tuple[str, ...] = ()
    intercept: str | None = None          # the intercept listener to send through


@dataclass(slots=True)
class Exchange:
    """One request probe sent and the response it got, with the browser's verdict on it."""

    step: str                                   # preflight | actual | redirect N
    method: str
    url: str
    request_headers: list[tuple[str, str]]
    status: int = 0
    reason: str = ""
    response_headers: list[tuple[str, str]] = field(default_factory=list)
    body: str = ""                              # the start of an error response's body
    verdict: Verdict | None = None


@dataclass(slots=True)
class Report:
    plan: Plan
    preflight_reasons: list[str]
    exchanges: list[Exchange]
    verdict: Verdict
    summary: str
    notes: list[str]                            # about the request as given
    stopped: str | None = None                  # why probe sent no more requests
    # corsproxy's own refusal (its X-Corsproxy-Refused / -Change headers): (reason, file:lines)
    proxy_refusal: tuple[str, str] | None = None


def run(args: argparse.Namespace) -> int:
    try:
        plan = make_plan(args)
        report = asyncio.run(probe(plan))
    except ProbeError as exc:
        print(printable(f"corsproxy probe: {exc}"), file=sys.stderr)
        if args.json:
            print(json.dumps({"error": str(exc)}))
        return EXIT_USAGE
    # JSON escapes every control character itself (ensure_ascii); text is escaped line by line.
    print(json.dumps(report_json(report), indent=2) if args.json
          else "\n".join(printable(line) for line in render_text(report).split("\n")))
    return EXIT_ALLOWED if report.verdict.allowed else EXIT_BLOCKED


# --- arguments ----------------------------------------------------------------------------------


def make_plan(args: argparse.Namespace) -> Plan:
    """The validated request; raises ProbeError naming the bad argument and the fix."""
    notes: list[str] = []
    parts = urlsplit(args.url)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise ProbeError(f"URL {args.url!r} is not an absolute http(s) URL; write it like http://localhost:8080/api/x")
    try:
        parts.port
    except ValueError:
        raise ProbeError(f"URL {args.url!r} has a bad port") from None
    origin = args.origin
    if origin != "null":
        try:
            origin = normalise_origin(args.origin)
        except ValueError as exc:
            raise ProbeError(f"--origin {args.origin!r}: {exc}") from None
        if origin != args.origin:
            notes.append(f"a browser sends the origin {args.origin!r} as {origin!r}; probing with that")
    if (problem := fetch_request.method_problem(args.method)) is not None:
        raise ProbeError(f"--method: {problem}")
    method = fetch_request.normalize_method(args.method)
    headers = [_parse_header(text) for text in args.headers]
    body = None
    if args.data is not None:
        if method in ("GET", "HEAD"):
            raise ProbeError(f"fetch() refuses a body with {method}: drop --data or pass --method POST")
        body = args.data.encode()
        if not any(name.lower() == "content-type" for name, _ in headers):
            # fetch() labels a string body so (Fetch "extract a body").
            headers.append(("Content-Type", "text/plain;charset=UTF-8"))
    if not args.timeout > 0:
        raise ProbeError("--timeout must be a positive number of seconds")
    notes += fetch_request.forbidden_header_notes(headers)
    return Plan(args.url, origin, method, tuple(headers), body, args.credentials, args.timeout,
                args.follow, tuple(notes), args.intercept.rstrip("/") if args.intercept else None)


def _parse_header(text: str) -> tuple[str, str]:
    name, colon, value = text.partition(":")
    name = name.strip()
    if not colon or not is_token(name):
        raise ProbeError(f"-H {text!r} is not 'Name: value'")
    if name.lower() in _MANAGED:
        hint = "use --origin" if name.lower() == "origin" else "probe sets it the way a browser does"
        raise ProbeError(f"-H {name}: a page cannot set this header and probe owns it ({hint})")
    value = value.strip(" \t")     # Fetch "normalize": leading and trailing HTTP whitespace go
    if any(char in value for char in "\r\n\0"):
        raise ProbeError(f"-H {name}: a header value cannot contain CR, LF or NUL")
    try:
        value.encode("latin-1")
    except UnicodeEncodeError:
        raise ProbeError(f"-H {name}: fetch() accepts only byte strings (Latin-1) as header values") from None
    return name, value


# --- the exchanges ------------------------------------------------------------------------------


async def probe(plan: Plan) -> Report:
    """Send what the browser would send, judge each answer, stop where the browser stops."""
    timeout = aiohttp.ClientTimeout(total=plan.timeout)
    route = await _through_intercept(plan.intercept, plan.timeout) if plan.intercept else {}
    async with aiohttp.ClientSession(cookie_jar=aiohttp.DummyCookieJar(), timeout=timeout,
                                     headers={"User-Agent": f"corsproxy-probe/{__version__}"}, **route) as session:
        return await _walk(session, plan)


async def _through_intercept(listener: str, timeout: float) -> dict:
    """Session options that send every request through the intercept listener and trust its
    CA (read from its /ca.pem) and nothing else, like the throwaway browser profile."""
    try:
        async with aiohttp.ClientSession() as session:
            async with session.get(f"{listener}/ca.pem", timeout=aiohttp.ClientTimeout(total=timeout)) as response:
                pem = (await response.read()).decode() if response.status == 200 else ""
        trust = ssl.create_default_context(cadata=pem)
    except (aiohttp.ClientError, OSError, ValueError, ssl.SSLError) as exc:
        raise ProbeError(f"--intercept {listener}: cannot read its /ca.pem ({exc or type(exc).__name__}); "
                         "is corsproxy serving an intercept block there?") from None
    return {"proxy": listener, "connector": aiohttp.TCPConnector(ssl=trust)}


async def _walk(session: aiohttp.ClientSession, plan: Plan) -> Report:
    url, origin, method, headers, body = plan.url, plan.origin, plan.method, list(plan.headers), plan.body
    page_headers = fetch_request.page_headers(headers)
    first_reasons = fetch_request.needs_preflight(method, page_headers)
    exchanges: list[Exchange] = []
    stopped = None
    if browser.url_origin(url) == origin:
        exchange = await _send(session, "actual", method, url, headers, body, plan.timeout)
        exchange.verdict = Verdict(True, notes=(
            "same-origin request: the page's origin is the URL's origin, so CORS does not apply",))
        return _report(plan, first_reasons, [exchange])
    for hop in range(MAX_REDIRECTS + 1):
        page_headers = fetch_request.page_headers(headers)
        unsafe = fetch_request.unsafe_header_names(page_headers)
        upstream = browser.url_origin(url)
        suffix = "" if hop == 0 else f" (after redirect {hop})"
        if fetch_request.needs_preflight(method, page_headers):
            asked = [("Origin", origin), ("Access-Control-Request-Method", method)]
            if unsafe:
                asked.append(("Access-Control-Request-Headers", fetch_request.acrh_value(page_headers)))
            asked.append(("Accept", "*/*"))
            exchange = await _send(session, "preflight" + suffix, "OPTIONS", url, asked, None, plan.timeout)
            exchange.verdict = browser.judge_preflight(
                exchange.status, exchange.response_headers, origin, method, unsafe, plan.credentials,
                upstream=upstream)
            exchanges.append(exchange)
            if not exchange.verdict.allowed:
                stopped = "the actual request was not sent: a browser stops after a failed preflight"
                break
        exchange = await _send(session, "actual" + suffix, method, url, [("Origin", origin), *headers],
                               body, plan.timeout)
        exchange.verdict = browser.judge_cors(
            exchange.status, exchange.response_headers, origin, plan.credentials, url=url,
            method=method, unsafe_names=unsafe, upstream=upstream)
        exchanges.append(exchange)
        redirect = exchange.verdict.redirect
        if redirect is None or not exchange.verdict.allowed or not plan.follow:
            break
        if browser.url_origin(redirect.location) != browser.url_origin(url):
            headers = [(n, v) for n, v in headers if n.lower() != NON_WILDCARD_HEADER]
        if redirect.method != method:
            headers = [(n, v) for n, v in headers if n.lower() not in _BODY_HEADERS]
            body = None
        url, method, origin = redirect.location, redirect.method, redirect.origin
    else:
        exchanges[-1].verdict = Verdict(False, (f"more than {MAX_REDIRECTS} redirects; a browser gives up",))
    return _report(plan, first_reasons, exchanges, stopped)


async def _send(session: aiohttp.ClientSession, step: str, method: str, url: str,
                headers: list[tuple[str, str]], body: bytes | None, timeout: float) -> Exchange:
    exchange = Exchange(step, method, url, list(headers))
    try:
        async with session.request(method, url, headers=CIMultiDict(headers), data=body,
                                   allow_redirects=False) as response:
            exchange.status, exchange.reason = response.status, response.reason or ""
            # raw_headers: every header as sent, in order, duplicates kept (Fetch "isomorphic decode").
            exchange.response_headers = [(k.decode("latin-1"), v.decode("latin-1"))
                                         for k, v in response.raw_headers]
            if response.status >= 400:
                # An error body often says why (corsproxy's 403 names the config line).
                exchange.body = (await response.content.read(BODY_EXCERPT)).decode("utf-8", "replace")
    except asyncio.TimeoutError:
        raise ProbeError(f"{method} {url}: no answer within {timeout:g} seconds") from None
    except (aiohttp.ClientError, OSError, ValueError) as exc:
        raise ProbeError(f"could not connect: {method} {url}: {exc or type(exc).__name__}") from None
    return exchange


def _report(plan: Plan, preflight_reasons: list[str], exchanges: list[Exchange],
            stopped: str | None = None) -> Report:
    verdicts = [e.verdict for e in exchanges if e.verdict is not None]
    blocked = [v for v in verdicts if not v.allowed]
    combined = Verdict(
        allowed=not blocked,
        reasons=tuple(r for v in blocked for r in v.reasons),
        fixes=tuple(dict.fromkeys(f for v in blocked for f in v.fixes)),
        remedy=blocked[0].remedy if blocked else None,
        notes=tuple(n for v in verdicts for n in v.notes),
        departures=tuple(dict.fromkeys(d for v in verdicts for d in v.departures)),
        redirect=verdicts[-1].redirect if verdicts else None,
    )
    refusal = _proxy_refusal(exchanges)
    if refusal is not None:
        # The proxy itself said no, and said why: its config is the fix, not the server's
        # headers (nor a corsproxy in front of corsproxy).
        reason, change = refusal
        told = f"corsproxy refused this: {reason}" + (f"; change {change}" if change else "")
        combined = dataclasses.replace(combined, reasons=(told, *combined.reasons), fixes=(), remedy=None)
        summary = f"blocked: {told}"
    elif blocked:
        summary = f"blocked: {combined.reasons[0]}"
    elif combined.redirect is not None and not plan.follow:
        summary = (f"the redirect passes the CORS check and a browser follows it to {combined.redirect.location}; "
                   "whether the page can read the final response depends on that server (run again with --follow)")
    else:
        summary = ALLOWED_TEXT
    return Report(plan, preflight_reasons, exchanges, combined, summary, list(plan.notes), stopped, refusal)


def _proxy_refusal(exchanges: list[Exchange]) -> tuple[str, str] | None:
    """(reason, file:lines to change) when corsproxy refused a step (and the browser blocks)."""
    for exchange in exchanges:
        if exchange.verdict is not None and not exchange.verdict.allowed:
            reason = get_header(exchange.response_headers, REFUSED_HEADER)
            if reason is not None:
                return reason, get_header(exchange.response_headers, CHANGE_HEADER) or ""
    return None


# --- output -------------------------------------------------------------------------------------


def render_text(report: Report) -> str:
    plan = report.plan
    lines = [f"probe: {plan.method} {plan.url}",
             f"  from a page on {plan.origin}, credentials: {'include' if plan.credentials else 'omit'}"]
    lines += [f"  note: {note}" for note in report.notes]
    if report.preflight_reasons:
        lines.append("a browser sends a preflight first, because:")
        lines += [f"  - {reason}" for reason in report.preflight_reasons]
    else:
        lines.append("no preflight: a CORS-safelisted method with CORS-safelisted headers only")
    for exchange in report.exchanges:
        lines += ["", f"{exchange.step}:", f"> {exchange.method} {exchange.url}"]
        lines += [f"> {name}: {value}" for name, value in exchange.request_headers]
        lines.append(f"< {exchange.status} {exchange.reason}".rstrip())
        lines += [f"< {name}: {value}" for name, value in exchange.response_headers]
        if exchange.body:
            lines += ["<", *(f"< {line}" for line in exchange.body.splitlines())]
        verdict = exchange.verdict
        if verdict is not None:
            lines.append(f"{exchange.step}: {'passes' if verdict.allowed else 'fails'}")
            lines += [f"  - {reason}" for reason in verdict.reasons]
            lines += [f"  note: {note}" for note in verdict.notes]
    if report.stopped:
        lines += ["", report.stopped]
    verdict = report.verdict
    lines += ["", f"verdict: {report.summary}"]
    if report.proxy_refusal is not None:
        lines += [f"  - {reason}" for reason in verdict.reasons[1:]]
        reason, change = report.proxy_refusal
        in_file = change and not change.startswith("--")   # a flag of serve --upstream says itself
        lines += ["", f"fix: change corsproxy's config at {change}: {reason}" if in_file else f"fix: {reason}"]
    elif not verdict.allowed:
        lines += [f"  - {reason}" for reason in verdict.reasons[1:]]
        lines += ["", "fix: the server must send"]
        lines += [f"  {fix}" for fix in verdict.fixes]
        if verdict.remedy is not None:
            snippets = export_snippets.for_remedy(verdict.remedy)
            for title, text in (("corsproxy YAML (corsproxy.yaml):", snippets.corsproxy_yaml),
                                ("Express (what corsproxy export --to express writes for it):", snippets.express),
                                ("nginx (what corsproxy export --to nginx writes for it):", snippets.nginx)):
                lines += ["", title, *(f"  {line}" for line in text.splitlines())]
    for key in verdict.departures:
        lines.append(f"note: {browser.DEPARTURES[key]}")
    return "\n".join(lines)


def report_json(report: Report) -> dict:
    plan, verdict = report.plan, report.verdict
    return {
        "url": plan.url,
        "origin": plan.origin,
        "method": plan.method,
        "credentials": plan.credentials,
        "allowed": verdict.allowed,
        "verdict": report.summary,
        "preflight": {"needed": bool(report.preflight_reasons), "reasons": report.preflight_reasons},
        "steps": [_exchange_json(e) for e in report.exchanges],
        "reasons": list(verdict.reasons),
        "fix": None if verdict.allowed else {
            "headers": [{"header": f.header, "value": f.value} if f.header else {"status": int(f.value)}
                        for f in verdict.fixes],
            **(dataclasses.asdict(export_snippets.for_remedy(verdict.remedy)) if verdict.remedy else {}),
            **({"corsproxy": {"refused": report.proxy_refusal[0],
                              "change": [c for c in report.proxy_refusal[1].split(", ") if c]}}
               if report.proxy_refusal else {}),
        },
        "redirect": dataclasses.asdict(verdict.redirect) if verdict.redirect else None,
        "departures": [{"name": key, "detail": browser.DEPARTURES[key]} for key in verdict.departures],
        "notes": report.notes + list(verdict.notes) + ([report.stopped] if report.stopped else []),
    }


def _exchange_json(exchange: Exchange) -> dict:
    verdict = exchange.verdict
    return {
        "step": exchange.step,
        "request": {"method": exchange.method, "url": exchange.url,
                    "headers": [[n, v] for n, v in exchange.request_headers]},
        "response": {"status": exchange.status, "reason": exchange.reason,
                     "headers": [[n, v] for n, v in exchange.response_headers],
                     "body": exchange.body},
        "allowed": verdict.allowed if verdict else None,
        "reasons": list(verdict.reasons) if verdict else [],
    }

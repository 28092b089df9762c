"""The inspector's record of one request, as values: what the proxy decided, why, the config
line that would change it, and what a browser would have done with the upstream's own answer.

`corsproxy.server.inspector` turns a finished request into a `Record` (already redacted: it
never holds a body or the value of a secret header) and keeps the last N in an `EventBuffer`.
Everything that is costly (the upstream verdict, the config fixes, the JSON) is worked out
here, lazily, when someone reads the events, so a request nobody watches costs one small
object. The upstream verdict is `corsproxy.judge.browser.judge_cors`, the judge `probe` uses,
so the inspector and `probe` never disagree about the same answer.
"""

from __future__ import annotations

import dataclasses
from collections import deque
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass
from datetime import datetime, timezone
from functools import lru_cache
from typing import NamedTuple

from corsproxy.judge import browser, fetch_request
from corsproxy.judge.cookies import CookieFinding
from corsproxy.model import CorsPolicy, RequestFacts, Route, ServerSettings
from corsproxy.policy import cors, origins

# Never kept, whoever sent them (CONTRACT: the inspector holds no credentials).
SECRET_HEADERS = frozenset({"authorization", "cookie", "set-cookie", "proxy-authorization"})
# Request headers the record keeps: what CORS reads, and the safelisted ones that decide
# whether a browser preflights. Secret and injected ones are kept by name; no other is kept.
REQUEST_VALUES = frozenset({
    "origin", "host", "access-control-request-method", "access-control-request-headers",
    "access-control-request-private-network", "sec-fetch-site", "sec-fetch-mode", "sec-fetch-dest",
    "content-type", "accept", "accept-language", "content-language", "range", "upgrade",
})
# Response headers the record keeps: the CORS answer (Vary included), corsproxy's own, and the
# Location a browser would follow.
RESPONSE_PREFIXES = ("access-control-", "x-corsproxy-")
RESPONSE_VALUES = frozenset({"vary", "location"})
REDACTED = "(redacted)"
PREFLIGHTS_REMEMBERED = 64   # preflights waiting for their actual request (see EventBuffer.link)

Pairs = tuple[tuple[str, str], ...]


def redact_request(headers: Iterable[tuple[str, str]], injected: frozenset[str]) -> Pairs:
    """The request headers the record keeps: the ones CORS reads, and the secret ones and those
    `request_headers.set` injects by name only (value REDACTED). This runs on every request,
    so it is one pass and two set look-ups a header."""
    kept = []
    for name, value in headers:
        lower = name.lower()
        if lower in REQUEST_VALUES:
            kept.append((name, value))
        elif lower in SECRET_HEADERS or lower in injected:
            kept.append((name, REDACTED))
    return tuple(kept)


def cors_response_headers(headers: Iterable[tuple[str, str]]) -> Pairs:
    """What a response said about CORS: every Access-Control-* header, Vary, Location and
    corsproxy's own X-Corsproxy-*; nothing else (never a Set-Cookie)."""
    kept = []
    for name, value in headers:
        lower = name.lower()
        if lower.startswith(RESPONSE_PREFIXES) or lower in RESPONSE_VALUES:
            kept.append((name, value))
    return tuple(kept)


def cookie_findings(findings: Iterable[CookieFinding]) -> tuple[str, ...]:
    """The cookie doctor's findings as the inspector shows them: one sentence per reason."""
    return tuple(f"the browser will drop the cookie '{finding.name}': {reason}"
                 for finding in findings for reason in finding.reasons)


@lru_cache(maxsize=256)
def injected_names(set_headers: tuple[tuple[str, str], ...]) -> frozenset[str]:
    """The lower-case names a route's request_headers.set injects (their values may be secrets)."""
    return frozenset(name.lower() for name, _ in set_headers)


# --- the record ---------------------------------------------------------------------------------


class Record(NamedTuple):
    """One finished request, redacted. `facts` and `policy` are the values the decision saw.

    A NamedTuple, not a frozen dataclass: one is made per request, and a frozen dataclass of
    this many fields costs several microseconds to build where a tuple costs a fraction of one."""

    id: int
    time: float                               # seconds since the epoch
    method: str
    path: str                                 # without the query (it may carry tokens)
    origin: str | None
    status: int
    duration_ms: float
    decision: str
    reasons: tuple[str, ...]
    request_headers: Pairs
    response_headers: Pairs                   # the CORS headers the proxy's decision added
    server: ServerSettings
    route: Route | None = None
    source: str | None = None
    policy: CorsPolicy | None = None
    facts: RequestFacts | None = None
    upstream_status: int | None = None
    upstream_headers: Pairs | None = None     # None: nothing was forwarded
    upstream_url: str | None = None
    cookies: tuple[str, ...] = ()             # the cookie doctor's findings on Set-Cookie
    preflight_id: int | None = None           # the preflight this actual request followed
    intercepted: str | None = None            # the third party's origin, for a tunnel's request

    @property
    def is_preflight(self) -> bool:
        return self.facts is not None and self.facts.is_preflight

    @property
    def credentialed(self) -> bool:
        """CONTRACT: judged as credentialed when the request carried cookies or Authorization."""
        return any(name.lower() in ("cookie", "authorization") for name, _ in self.request_headers)

    def header(self, name: str) -> str | None:
        return next((value for key, value in self.request_headers if key.lower() == name), None)


class EventBuffer:
    """The last `size` records, oldest first, with increasing ids; size 0 keeps nothing."""

    def __init__(self, size: int) -> None:
        self.size = size
        self._records: deque[Record] = deque(maxlen=size or 1)
        self._next_id = 1
        self._preflights: dict[tuple[str | None, str, str], int] = {}

    @property
    def latest_id(self) -> int:
        """The id of the newest record ever made (0 before the first)."""
        return self._next_id - 1

    def next_id(self) -> int:
        value = self._next_id
        self._next_id += 1
        return value

    def add(self, record: Record) -> None:
        self._records.append(record)
        facts = record.facts
        if facts is not None and facts.is_preflight:
            key = (record.origin, record.path, facts.request_method or "")
            self._preflights.pop(key, None)
            self._preflights[key] = record.id
            if len(self._preflights) > PREFLIGHTS_REMEMBERED:
                del self._preflights[next(iter(self._preflights))]

    def link(self, origin: str | None, path: str, method: str) -> int | None:
        """The id of the preflight a browser sent before this actual request, if one is waiting."""
        if not self._preflights or origin is None:
            return None
        return self._preflights.pop((origin, path, method), None)

    def resize(self, size: int) -> None:
        """A reload changed server.inspector_size: keep the newest records that still fit."""
        if size != self.size:
            self.size = size
            self._records = deque(list(self._records)[-size:] if size else (), maxlen=size or 1)

    def clear(self) -> None:
        self._records.clear()
        self._preflights.clear()

    def after(self, last_id: int) -> list[Record]:
        """Records with an id above `last_id`, oldest first."""
        newer: list[Record] = []
        for record in reversed(self._records):
            if record.id <= last_id:
                break
            newer.append(record)
        newer.reverse()
        return newer

    def get(self, record_id: int) -> Record | None:
        return next((r for r in reversed(self._records) if r.id == record_id), None)

    def __iter__(self) -> Iterator[Record]:
        return iter(list(self._records))

    def __len__(self) -> int:
        return len(self._records)


# --- the JSON -----------------------------------------------------------------------------------


def event_json(record: Record, buffer: EventBuffer | None = None) -> dict:
    """The event as `/__corsproxy/events` sends it (CONTRACT "The inspector")."""
    preflight = buffer.get(record.preflight_id) if buffer and record.preflight_id else None
    return {
        "id": record.id,
        "time": datetime.fromtimestamp(record.time, timezone.utc).isoformat(timespec="milliseconds"),
        "method": record.method,
        "path": record.path,
        "intercepted": record.intercepted,
        "origin": record.origin,
        "route": record.route.shown("prefix") if record.route else None,
        "source": record.source,
        "status": record.status,
        "upstream_status": record.upstream_status,
        "decision": record.decision,
        "reasons": list(record.reasons),
        "duration_ms": round(record.duration_ms, 2),
        "upstream_cors": upstream_cors(record, preflight),
        "preflight": record.is_preflight,
        "preflight_id": record.preflight_id,
        "credentialed": record.credentialed,
        "request": {
            "headers": _pairs(record.request_headers),
            "cookies_sent": record.header("cookie") is not None,
            "authorization_sent": record.header("authorization") is not None,
            "injected": [name for name, _ in record.route.set_headers] if record.route else [],
        },
        "response": {"headers": _pairs(record.response_headers)},
        "fix": [dataclasses.asdict(fix) for fix in config_fixes(record)],
        "cookies": list(record.cookies),
    }


def _pairs(headers: Pairs) -> list[list[str]]:
    return [[name, value] for name, value in headers]


# --- what the upstream itself said --------------------------------------------------------------


def upstream_cors(record: Record, preflight: Record | None = None) -> dict | None:
    """The upstream's own Access-Control-* headers and whether a browser would have let the page
    read that response without corsproxy (`judge_cors`, probe's judge); None when nothing
    was forwarded."""
    if record.upstream_headers is None:
        return None
    headers = [(name, value) for name, value in record.upstream_headers
               if name.lower().startswith("access-control-")]
    facts = record.facts
    if record.upstream_status == 101:
        return _upstream_json(headers, True, [], notes=[
            "WebSockets have no CORS: a browser opens the socket whatever the server answers; the "
            "server must check Origin itself"])
    # Same-origin through the proxy: without it, the page would call the upstream from its origin.
    page = record.origin if record.decision != "same-origin" else (facts.proxy_origin if facts else None)
    if page is None:
        return _upstream_json(headers, True, [], notes=[
            "not a CORS request (no Origin): a browser runs no CORS check on it"])
    # The names the page's preflight asked for; without one (a browser caches preflights),
    # what the kept headers show (a custom header's name is not kept).
    asked = (list(preflight.facts.request_headers) if preflight and preflight.facts
             else fetch_request.unsafe_header_names(record.request_headers))
    preflighted = preflight is not None or bool(fetch_request.needs_preflight(record.method, record.request_headers))
    upstream_url = record.upstream_url or ""
    verdict = browser.judge_cors(
        record.upstream_status, record.upstream_headers, page,
        record.credentialed, url=upstream_url, method=record.method, unsafe_names=asked,
        upstream=browser.url_origin(upstream_url) if upstream_url else None)
    notes = list(verdict.notes)
    if preflighted:
        notes.append(
            "without corsproxy a browser would first send a preflight (OPTIONS) to the upstream; "
            "corsproxy answered it itself, so the upstream's answer to it is not known: "
            f"{_probe_command(record, asked)} asks it")
    return _upstream_json(headers, verdict.allowed, list(verdict.reasons), verdict, notes)


def _upstream_json(headers: Sequence[tuple[str, str]], allowed: bool, why: list[str],
                   verdict: browser.Verdict | None = None, notes: Sequence[str] = ()) -> dict:
    return {
        "headers": _pairs(tuple(headers)),
        "browser_would_allow": allowed,
        "why": why,
        "fix": [str(fix) for fix in verdict.fixes] if verdict else [],
        # The policy that would fix it; the server layer writes its snippets with the exporters.
        "remedy": dataclasses.asdict(verdict.remedy) if verdict and verdict.remedy else None,
        "notes": list(notes),
    }


def _probe_command(record: Record, asked: Sequence[str]) -> str:
    parts = [f"corsproxy probe {record.upstream_url} --origin {record.origin} --method {record.method}"]
    parts += [f"-H '{name}: ...'" for name in asked]
    if record.credentialed:
        parts.append("--credentials")
    return " ".join(parts)


# --- what to change in the config ---------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class ConfigFix:
    """One config change that would let the request through: the key, the line, the YAML."""

    key: str
    source: str
    yaml: str
    text: str


def config_fixes(record: Record) -> tuple[ConfigFix, ...]:
    """What to change for a refusal, a rejected Host or an upstream error (empty otherwise).
    The CORS keys are found by asking the CORS engine itself about each part of the request,
    so the fix names exactly what the decision refused."""
    if record.decision == "upstream-error" and record.route is not None:
        return (_upstream_fix(record.route, record.status),)
    if record.decision == "rejected":
        return _host_fix(record)
    if record.decision != "refused" or record.policy is None or record.facts is None:
        return ()
    return _cors_fixes(record.policy, record.facts, record.route)


def _cors_fixes(policy: CorsPolicy, facts: RequestFacts, route: Route | None) -> tuple[ConfigFix, ...]:
    origin = facts.origin
    if origin is None:
        return ()    # refused for what it is, not for its origin: the reason says what to do
    if not cors.origin_allowed(policy, origin):
        return (_cors_fix(policy, route, "allow_origins", _listed(policy, "allow_origins", [origin], sort=False),
                          f"allow the origin {origin}"),)
    if not facts.is_preflight:
        return ()
    fixes = []
    bare = dataclasses.replace(facts, request_headers=(), request_private_network=False)
    method = (facts.request_method or "").upper()
    # A method the page wrote in lower case is the page's to fix (the reason says so).
    if _refuses(policy, bare) and method == facts.request_method:
        fixes.append(_cors_fix(policy, route, "allow_methods", _listed(policy, "allow_methods", [method]),
                               f"allow the method {method}"))
    simple = dataclasses.replace(bare, request_method="GET")
    refused = [name for name in facts.request_headers
               if _refuses(policy, dataclasses.replace(simple, request_headers=(name,)))]
    if refused:
        fixes.append(_cors_fix(policy, route, "allow_headers", _listed(policy, "allow_headers", refused),
                               f"allow the header{'s' if len(refused) > 1 else ''} {', '.join(refused)}"))
    if facts.request_private_network and not policy.allow_private_network:
        fixes.append(_cors_fix(policy, route, "allow_private_network", "true",
                               "answer Private Network Access preflights"))
    return tuple(fixes)


def _refuses(policy: CorsPolicy, facts: RequestFacts) -> bool:
    return not cors.preflight(policy, facts).allowed


def _listed(policy: CorsPolicy, key: str, added: list[str], *, sort: bool = True) -> str:
    """The key's list with `added` in it, as YAML; a value read through ${VAR} stays ${VAR}."""
    held: frozenset[str] = getattr(policy, key)
    items = [str(policy.shown(key, item)) for item in sorted(held)] + [a for a in added if a not in held]
    return f"[{', '.join(sorted(items) if sort else items)}]"


def _cors_fix(policy: CorsPolicy, route: Route | None, key: str, value: str, why: str) -> ConfigFix:
    where = policy.source_of(key)
    # A key left at its default points at its route's (or file's) line: the YAML then adds a
    # cors block there instead of editing an existing line.
    unset = route is not None and where == str(route.source) or where.endswith(":1")
    yaml = f"cors:\n  {key}: {value}" if unset else f"{key}: {value}"
    action = "add under" if unset else "change"
    return ConfigFix(f"cors.{key}", where, yaml, f"{why}: {action} {where} ({policy.scope})")


def _upstream_fix(route: Route, status: int) -> ConfigFix:
    where = str(route.source)
    if status == 504:
        return ConfigFix("timeout", where, f"timeout: {max(route.timeout * 2, 60):g}",
                         f"the upstream {route.upstream.shown} did not answer within {route.timeout:g}s: "
                         f"make it answer sooner, or raise the route's timeout ({where})")
    return ConfigFix("upstream", where, f"upstream: {route.upstream.shown}",
                     f"nothing answers at {route.upstream.shown}: start the upstream, or point the "
                     f"route's upstream ({where}) at a server that runs")


def _host_fix(record: Record) -> tuple[ConfigFix, ...]:
    server = record.server
    host = record.header("host")
    if host is None or origins.host_allowed(server.allowed_hosts, server.allow_any_host, host):
        return ()
    try:
        name, _ = origins.parse_host(host)
    except ValueError:
        return ()
    listed = [f'"{h}"' if ":" in h else h for h, port in server.allowed_hosts if port is None]
    where = str(server.source) if server.source else "the config (add a server block)"
    return (ConfigFix("server.allowed_hosts", where,
                      f"server:\n  allowed_hosts: [{', '.join([*dict.fromkeys(listed), name])}]",
                      f"reach the proxy as {name}: add it to server.allowed_hosts ({where}), "
                      "only if you trust every page that can resolve that name"),)


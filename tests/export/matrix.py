"""The request matrix, generated from a policy, sent to an engine and to `corsproxy serve`, and
the two gates over the answers.

- hard gate: the oracle (tests/export/oracle.py) gives the same verdict for both answers, for a
  page with and without credentials, and a foreign origin reaches the API through neither;
- soft gate: status and normalised CORS headers are equal, except the declared deviations; the
  deviations that showed are returned, so a module can fail on a stale one.
"""

from __future__ import annotations

import http.client
import re
import re._constants as sre
import re._parser as sre_parse
from collections.abc import Callable
from dataclasses import dataclass, field

from corsproxy.export.plan import UPSTREAM_CORS_HEADERS, Deviation
from corsproxy.model import Config, CorsPolicy, Route
from tests.export import oracle
from tests.export.stub import ID_HEADER

SAME = "<same-origin>"           # replaced by each server's own origin when sent
EVIL = "https://evil.example"
_LISTS = {"access-control-allow-methods", "access-control-allow-headers",
          "access-control-expose-headers", "vary"}
_STANDARD = {name.lower() for name in UPSTREAM_CORS_HEADERS}


@dataclass(frozen=True)
class Probe:
    ident: int
    label: str
    path: str                         # on corsproxy
    method: str
    origin: str | None
    route: Route | None
    policy: CorsPolicy | None
    acrm: str | None = None
    acrh: str | None = None
    pna: bool = False

    @property
    def preflight(self) -> bool:
        return self.method == "OPTIONS" and self.origin is not None and self.acrm is not None

    def names(self) -> list[str]:
        return [n.strip() for n in (self.acrh or "").split(",") if n.strip()]


@dataclass
class Answer:
    status: int
    headers: dict[str, list[str]]


@dataclass
class Server:
    """Where to send a probe: host, port, and how a corsproxy path maps to this server's path
    (None: the path is not this server's, e.g. an unmatched path for an app target)."""

    name: str
    port: int
    path_for: Callable[[Probe], str | None]
    tag: str

    @property
    def own_origin(self) -> str:
        return f"http://127.0.0.1:{self.port}"


@dataclass
class Outcome:
    failures: list[str] = field(default_factory=list)
    shown: set[str] = field(default_factory=set)     # headers of declared deviations that showed
    compared: int = 0


# --- generation ---------------------------------------------------------------------------------


def allowed_by_yaml(policy: CorsPolicy, origin: str) -> bool:
    """The YAML's meaning, written from the contract (not corsproxy's code): exact, `*`, or a full
    regex match."""
    if origin == SAME:
        return False
    regex = policy.allow_origin_regex
    return policy.allow_any_origin or origin in policy.allow_origins or (
        regex is not None and re.fullmatch(regex.pattern, origin) is not None)


def example_of(pattern: str) -> str:
    """One string the regex fully matches: the first alternative, each repeat taken once."""
    def build(items) -> str:
        out = []
        for op, arg in items:
            if op is sre.LITERAL:
                out.append(chr(arg))
            elif op is sre.ANY:
                out.append("a")
            elif op is sre.IN:
                out.append(_class_member(arg))
            elif op is sre.SUBPATTERN:
                out.append(build(arg[3]))
            elif op in (sre.MAX_REPEAT, sre.MIN_REPEAT):
                out.append(build(arg[2]) * max(arg[0], 1))
            elif op is sre.BRANCH:
                out.append(build(arg[1][0]))
        return "".join(out)
    text = build(sre_parse.parse(pattern))
    assert re.fullmatch(pattern, text), (pattern, text)
    return text


def _class_member(items) -> str:
    for op, arg in items:
        if op is sre.LITERAL:
            return chr(arg)
        if op is sre.RANGE:
            return chr(arg[0])
        if op is sre.CATEGORY:
            return {sre.CATEGORY_DIGIT: "0", sre.CATEGORY_WORD: "a"}.get(arg, "a")
    return "a"


def near_misses(origin: str) -> list[str]:
    """What an attacker registers next to a trusted origin."""
    scheme, rest = origin.split("://", 1)
    host, _, port = rest.partition(":")
    swapped = "https" if scheme == "http" else "http"
    misses = [f"{origin}.evil.test", f"{scheme}://evil{rest}", f"{swapped}://{rest}",
              f"{scheme}://{host}:{int(port) + 1 if port else 8443}", f"{scheme}://{host.upper()}" +
              (f":{port}" if port else ""), f"{origin}/"]
    return misses


def origins_for(policy: CorsPolicy) -> list[str]:
    chosen = sorted(policy.allow_origins)
    if policy.allow_origin_regex is not None:
        chosen.append(example_of(policy.allow_origin_regex.pattern))
    result = list(chosen)
    for origin in chosen[:2] + chosen[-1:]:
        result += near_misses(origin)
    result += ["null", EVIL, SAME]
    return list(dict.fromkeys(result))


def _allowed_method(policy: CorsPolicy) -> str:
    for method in ("PUT", "DELETE", "PATCH"):
        if policy.allow_any_method or method in policy.allow_methods:
            return method
    return "GET"


def _refused_method(policy: CorsPolicy) -> str:
    # With allow_methods ["*"], a lower-case non-normalised method is still refused (Fetch
    # compares it byte for byte and corsproxy says so).
    return "patch" if policy.allow_any_method else "PURGE"


def _asked_headers(policy: CorsPolicy) -> str:
    names = sorted(policy.allow_headers - {"content-type"})[:2] if not policy.allow_any_header else ["X-Anything"]
    mixed = [n.title() if i % 2 else n.upper() for i, n in enumerate(names)]
    return " ,  ".join(["Content-Type", *mixed])


def probes(config: Config, paths: Callable[[Route | None], list[str]]) -> list[Probe]:
    """The matrix for every route (and the unmatched paths of a gateway)."""
    out: list[Probe] = []

    def add(**fields) -> None:
        out.append(Probe(len(out) + 1, **fields))

    sections: list[tuple[Route | None, CorsPolicy]] = [(r, r.cors) for r in config.routes]
    if config.defaults and not any(r.prefix == "/" for r in config.routes):
        sections.append((None, config.defaults[0].cors))
    for route, policy in sections:
        where = route.prefix if route else "unmatched"
        route_paths = paths(route)
        if not route_paths:
            continue
        for origin in origins_for(policy):
            for path in route_paths:
                add(label=f"{where} GET {path} from {origin}", path=path, method="GET", origin=origin,
                    route=route, policy=policy)
                add(label=f"{where} preflight {path} from {origin}", path=path, method="OPTIONS",
                    origin=origin, route=route, policy=policy, acrm=_allowed_method(policy),
                    acrh=_asked_headers(policy))
        base = route_paths[0]
        for origin in [*origins_for(policy)[:1], EVIL, SAME]:
            add(label=f"{where} refused method from {origin}", path=base, method="OPTIONS", origin=origin,
                route=route, policy=policy, acrm=_refused_method(policy))
            if not policy.allow_any_header:
                add(label=f"{where} refused header from {origin}", path=base, method="OPTIONS", origin=origin,
                    route=route, policy=policy, acrm="GET", acrh="x-not-allowed,Content-Type")
            add(label=f"{where} private network from {origin}", path=base, method="OPTIONS", origin=origin,
                route=route, policy=policy, acrm="GET", pna=True)
            add(label=f"{where} plain OPTIONS from {origin}", path=base, method="OPTIONS", origin=origin,
                route=route, policy=policy)
            if route is not None:
                for status in ("404", "500"):
                    add(label=f"{where} upstream {status} from {origin}", path=f"{base.rstrip('/')}/status/{status}",
                        method="GET", origin=origin, route=route, policy=policy)
        for path in route_paths:
            add(label=f"{where} GET {path} without Origin", path=path, method="GET", origin=None,
                route=route, policy=policy)
    return out


def gateway_probes(config: Config) -> list[Probe]:
    """After the stub stops: 502 for every route, from an allowed and a foreign origin."""
    out = []
    for route in config.routes:
        for origin in [*origins_for(route.cors)[:1], EVIL]:
            out.append(Probe(100000 + len(out), f"{route.prefix} 502 from {origin}", _join(route.prefix, "x"),
                             "GET", origin, route, route.cors))
    return out


def hang_probes(config: Config) -> list[Probe]:
    """An upstream that accepts and never answers: 504 within the route's timeout."""
    return [Probe(200000 + i, f"{route.prefix} 504", _join(route.prefix, "hang"), "GET",
                  origins_for(route.cors)[0], route, route.cors) for i, route in enumerate(config.routes)]


def gateway_paths(route: Route | None) -> list[str]:
    if route is None:
        return ["/nowhere"]
    if route.prefix == "/":
        return ["/", "/x"]
    return [route.prefix, f"{route.prefix}/x", f"{route.prefix}x"]


def app_paths(route: Route | None) -> list[str]:
    """An app target owns only the API's own paths: no `/apix`, no unmatched path."""
    if route is None:
        return []
    return [route.prefix, _join(route.prefix, "x")]


def _join(prefix: str, rest: str) -> str:
    return f"{prefix.rstrip('/')}/{rest}"


# --- sending ------------------------------------------------------------------------------------


def send(server: Server, probe: Probe, path: str, timeout: float = 15) -> Answer:
    headers = {ID_HEADER: f"{server.tag}-{probe.ident}", "Host": f"127.0.0.1:{server.port}"}
    if probe.origin is not None:
        headers["Origin"] = server.own_origin if probe.origin == SAME else probe.origin
    if probe.acrm is not None:
        headers["Access-Control-Request-Method"] = probe.acrm
    if probe.acrh is not None:
        headers["Access-Control-Request-Headers"] = probe.acrh
    if probe.pna:
        headers["Access-Control-Request-Private-Network"] = "true"
    connection = http.client.HTTPConnection("127.0.0.1", server.port, timeout=timeout)
    try:
        connection.request(probe.method, path, headers=headers)
        response = connection.getresponse()
        response.read()
        collected: dict[str, list[str]] = {}
        for name, value in response.getheaders():
            collected.setdefault(name.lower(), []).append(value)
        return Answer(response.status, collected)
    finally:
        connection.close()


def app_path(probe: Probe) -> str | None:
    """corsproxy path -> the API's own path (base path, plus the prefix when it is kept)."""
    if probe.route is None:
        return None
    route = probe.route
    rest = probe.path[len(route.prefix):] if route.strip_prefix and route.prefix != "/" else probe.path
    return (route.upstream.base_path + rest) or "/"


# --- the gates ----------------------------------------------------------------------------------


def normalised(headers: dict[str, list[str]], deviations: tuple[Deviation, ...]) -> dict[str, object]:
    ignored = {d.header.lower() for d in deviations}
    out: dict[str, object] = {}
    for name, values in headers.items():
        if not (name.startswith("access-control-") or name == "vary") or name in ignored:
            continue
        if "access-control-*" in ignored and name.startswith("access-control-") and name not in _STANDARD:
            continue
        if name in _LISTS:
            tokens = {t.strip() for v in values for t in v.split(",") if t.strip()}
            out[name] = frozenset(t if name == "access-control-allow-methods" else t.lower() for t in tokens)
        else:
            out[name] = tuple(values)
    return out


def verdicts(probe: Probe, answer: Answer, origin: str) -> tuple[bool, bool] | None:
    """(without credentials, with credentials), or None when CORS does not apply."""
    if probe.origin is None or probe.origin == SAME:
        return None
    if probe.preflight:
        return tuple(oracle.preflight_ok(answer.status, answer.headers, origin, credentials, probe.acrm.upper()
                                         if probe.acrm.upper() in {"GET", "HEAD", "POST", "PUT", "DELETE", "OPTIONS"}
                                         else probe.acrm, probe.names(), probe.pna)
                     for credentials in (False, True))
    return tuple(oracle.cors_check(answer.headers, origin, credentials) for credentials in (False, True))


def compare(probes_: list[Probe], engine: Server, proxy: Server, reached: Callable[[], set[str]],
            deviations: tuple[Deviation, ...], outcome: Outcome) -> Outcome:
    """Send every probe to both, then apply both gates; failures name the probe."""
    answers = []
    for probe in probes_:
        path = engine.path_for(probe)
        if path is None:
            continue
        answers.append((probe, send(engine, probe, path), send(proxy, probe, probe.path)))
    got = reached()
    for probe, mine, theirs in answers:
        outcome.compared += 1
        origin_e = engine.own_origin if probe.origin == SAME else probe.origin
        origin_p = proxy.own_origin if probe.origin == SAME else probe.origin
        ve, vp = verdicts(probe, mine, origin_e), verdicts(probe, theirs, origin_p)
        if ve != vp:
            outcome.failures.append(f"HARD {probe.label}: the browser's verdict differs: {engine.name} {ve} "
                                    f"{mine.status} {mine.headers} / corsproxy {vp} {theirs.status} {theirs.headers}")
        foreign = probe.origin not in (None, SAME) and probe.policy is not None and \
            not allowed_by_yaml(probe.policy, probe.origin) and probe.route is not None
        for server, answer in ((engine, mine), (proxy, theirs)):
            if foreign and f"{server.tag}-{probe.ident}" in got:
                outcome.failures.append(f"HARD {probe.label}: a foreign origin reached the API through {server.name}")
        status_deviates = any(d.header == "status" for d in deviations)
        if mine.status != theirs.status:
            if status_deviates:
                outcome.shown.add("status")
            else:
                outcome.failures.append(f"SOFT {probe.label}: status {engine.name} {mine.status} / corsproxy {theirs.status}")
        loose_e, loose_p = normalised(mine.headers, deviations), normalised(theirs.headers, deviations)
        if loose_e != loose_p:
            outcome.failures.append(f"SOFT {probe.label}: CORS headers {engine.name} {loose_e} / corsproxy {loose_p}")
        strict_e, strict_p = normalised(mine.headers, ()), normalised(theirs.headers, ())
        for deviation in deviations:
            covered = set(strict_e).union(strict_p) - set(normalised(mine.headers, (deviation,))) \
                - set(normalised(theirs.headers, (deviation,)))
            if any(strict_e.get(name) != strict_p.get(name) for name in covered):
                outcome.shown.add(deviation.header)
    return outcome


def stale(deviations: tuple[Deviation, ...], outcome: Outcome) -> list[str]:
    """Declared deviations that never showed: the warning is stale."""
    return [str(d) for d in deviations if d.header not in outcome.shown]

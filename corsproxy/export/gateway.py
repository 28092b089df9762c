"""The decision both gateways write as lookup tables (nginx `map`, Caddy `map`), in their own
syntax: per policy, tables on the request headers give 0/1 digits, a table on the digits gives
one state, and a table on the state gives each CORS header's value (empty: not sent).

States: `preflight` (all allowed), `refused` (an allowed origin asking for a method, header or
private-network access the route does not allow: 204 with the allowed lists and Max-Age 0, as
corsproxy answers), `preflight-forbidden` and `forbidden` (403, no Access-Control-Allow-*),
`cors` (an allowed actual request) and `pass` (no Origin, or same-origin: no CORS headers).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from corsproxy.export.plan import PREFLIGHT_VARY, Plan, PolicyPlan, RoutePlan
from corsproxy.policy.cors import NORMALIZED_METHODS


@dataclass(frozen=True, slots=True)
class Regex:
    """A table key matched as a regex (case-insensitive when `caseless`)."""

    pattern: str
    caseless: bool = False


Key = str | Regex


@dataclass(frozen=True, slots=True)
class Table:
    source: str                         # what is looked up, in the target's syntax
    variable: str                       # the name it defines
    entries: tuple[tuple[Key, str], ...]
    default: str
    comment: str = ""


@dataclass(frozen=True, slots=True)
class Syntax:
    """How a target writes a variable, a request header and an echo of a request header."""

    var: Callable[[str], str]
    header: Callable[[str], str]
    echo: Callable[[str], str]


PREFLIGHT_OR_REFUSED = Regex("^(?:preflight|refused)$")
ALLOWED = Regex("^(?:preflight|refused|cors)$")
FORBIDDEN = Regex("^(?:forbidden|preflight-forbidden)$")
# Digits: preflight, has Origin, same-origin, origin allowed, method, headers, private network.
STATES = ((Regex("^1..1111$"), "preflight"), (Regex("^1..1...$"), "refused"),
          (Regex("^1......$"), "preflight-forbidden"), (Regex("^0(?:0.....|11....)$"), "pass"),
          (Regex("^0101...$"), "cors"))


def request_tables(syntax: Syntax) -> list[Table]:
    """Is the request a preflight (OPTIONS with an Origin and Access-Control-Request-Method),
    and does it carry an Origin."""
    return [Table(f"{syntax.var('request_method')} {syntax.var('corsproxy_has_origin')} "
                  f"{syntax.header('Access-Control-Request-Method')}", "corsproxy_preflight",
                  ((Regex("^OPTIONS 1 .+$"), "1"),), "0",
                  "A CORS preflight: OPTIONS with an Origin and an Access-Control-Request-Method."),
            Table(syntax.header("Origin"), "corsproxy_has_origin", (("", "0"),), "1")]


def policy_tables(key: str, cors: PolicyPlan, syntax: Syntax) -> list[Table]:
    v = f"corsproxy_{key}"
    var, header = syntax.var, syntax.header
    state = var(f"{v}_state")
    digits = "".join(var(name) for name in ("corsproxy_preflight", "corsproxy_has_origin", "corsproxy_same_origin",
                                            f"{v}_origin", f"{v}_method", f"{v}_headers", f"{v}_pna"))
    headers_entries, headers_default = _header_entries(cors)
    refused_headers = syntax.echo("Access-Control-Request-Headers") if cors.any_header else cors.refused_headers_value
    pna = f"{state}:{header('Access-Control-Request-Private-Network')}"
    return [
        Table(header("Origin"), f"{v}_origin", _origin_entries(cors), "0",
              f"{cors.name} ({cors.source}): which origins may read its responses"),
        Table(header("Access-Control-Request-Method"), f"{v}_method", _method_entries(cors), "0",
              "what a preflight may ask for (methods are case-sensitive, header names are not)"),
        Table(header("Access-Control-Request-Headers"), f"{v}_headers", headers_entries, headers_default),
        Table(header("Access-Control-Request-Private-Network"), f"{v}_pna",
              () if cors.private_network else ((Regex("^true$", caseless=True), "0"),), "1"),
        Table(digits, f"{v}_state", STATES, "forbidden",
              "preflight | refused (allowed origin, refused ask) | preflight-forbidden | cors | pass | forbidden"),
        Table(state, f"{v}_allow_origin", ((ALLOWED, "*" if cors.wildcard else syntax.echo("Origin")),), "",
              "the value of each CORS header in each state (empty: not sent)"),
        Table(state, f"{v}_allow_credentials", ((ALLOWED, "true"),) if cors.credentials else (), ""),
        _methods_table(v, cors, syntax),
        Table(state, f"{v}_allow_headers",
              (("preflight", syntax.echo("Access-Control-Request-Headers")), ("refused", refused_headers)), ""),
        Table(pna, f"{v}_allow_private_network",
              ((Regex("^(?:preflight|refused):true$", caseless=True), "true"),) if cors.private_network else (), ""),
        Table(state, f"{v}_max_age", (("preflight", str(cors.max_age)), ("refused", "0")), ""),
        Table(state, f"{v}_expose_headers", (("cors", cors.expose),) if cors.expose else (), ""),
        Table(var("corsproxy_preflight"), f"{v}_vary", (("1", PREFLIGHT_VARY),), cors.vary_actual),
    ]


def _methods_table(v: str, cors: PolicyPlan, syntax: Syntax) -> Table:
    state = syntax.var(f"{v}_state")
    if not cors.any_method:
        return Table(state, f"{v}_allow_methods", ((PREFLIGHT_OR_REFUSED, cors.methods),), "")
    # ["*"] echoes the asked method, unless the method itself was refused (a lower-case one):
    # echoing it would let the browser through.
    echo = syntax.echo("Access-Control-Request-Method")
    return Table(f"{state}:{syntax.var(f'{v}_method')}", f"{v}_allow_methods",
                 ((Regex("^preflight:.$"), echo), ("refused:1", echo)), "")


def _origin_entries(cors: PolicyPlan) -> tuple[tuple[Key, str], ...]:
    # Exact origins as anchored, case-sensitive regexes: a plain map string compares without case.
    if cors.any_origin:
        return (("", "0"), (Regex("^.+$"), "1"))
    entries = [(Regex(f"^{regex_literal(origin)}$"), "1") for origin in cors.origins]
    if cors.origin_regex is not None:
        entries.append((Regex(cors.origin_regex), "1"))
    return tuple(entries)


def _method_entries(cors: PolicyPlan) -> tuple[tuple[Key, str], ...]:
    # corsproxy upper-cases the six methods a browser normalises and takes every other method
    # byte for byte (Fetch "normalize a method"), so 'get' passes where 'patch' does not.
    if cors.any_method:
        return ((Regex("^[^a-z]+$"), "1"), (Regex(f"^(?:{'|'.join(sorted(NORMALIZED_METHODS))})$", True), "1"))
    exact = [regex_literal(m) for m in cors.method_names if m not in NORMALIZED_METHODS]
    normalised = [m for m in cors.method_names if m in NORMALIZED_METHODS]
    entries = [(Regex(f"^(?:{'|'.join(normalised)})$", True), "1")]
    if exact:
        entries.append((Regex(f"^(?:{'|'.join(exact)})$"), "1"))
    return tuple(entries)


def _header_entries(cors: PolicyPlan) -> tuple[tuple[tuple[Key, str], ...], str]:
    if cors.any_header:
        return (), "1"
    name = f"(?:{'|'.join(regex_literal(n) for n in cors.header_names)})?"
    # A comma-separated list whose every item is an allowed name (empty items are skipped).
    return (("", "1"), (Regex(f"^[\\t ]*{name}[\\t ]*(?:,[\\t ]*{name}[\\t ]*)*$", True), "1")), "0"


def regex_literal(text: str) -> str:
    """`text` as a literal inside a regex (PCRE and RE2 alike)."""
    return "".join(f"\\{c}" if c in ".^$|?*+()[]{}\\" else c for c in text)


def route_keys(plan: Plan) -> list[tuple[str, RoutePlan]]:
    """The name of each route's tables, in match order."""
    return [(f"r{index}", route) for index, route in enumerate(plan.routes, 1)]

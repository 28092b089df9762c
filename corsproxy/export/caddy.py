"""Plan -> a Caddyfile site block (Caddy 2.6 syntax, no global options), one builder per block.

As for nginx, `map`s compute one state per request and each CORS header's value in it; `header`
directives apply them before the handler runs, so they are on the API's own 4xx/5xx too. A
reverse_proxy failure (502, 504) is an error, and Caddy answers errors from `handle_errors`
with a fresh response, so the same headers are set there again, per route. Path matchers are
`/api` and `/api/*`, never `/api*` (which matches `/apix`).
"""

from __future__ import annotations

from corsproxy.export.gateway import (
    Regex,
    Syntax,
    Table,
    policy_tables,
    request_tables,
    route_keys,
)
from corsproxy.export.plan import Deviation, Plan, PolicyPlan, RoutePlan

TARGET = "caddy"
TESTED_ON = "Caddy 2.6.2 (Debian)"
DEVIATIONS = (
    Deviation("Access-Control-Allow-Headers", "a refused preflight lists every allowed name (the "
              "safelisted ones too) where corsproxy lists the asked names it allows, then the configured "
              "ones: a Caddyfile cannot filter a list; the browser refuses the same request either way"),
    Deviation("Access-Control-Allow-Methods", "with allow_methods ['*'], a preflight refused for a "
              "lower-case method gets none where corsproxy sends it upper-cased: a Caddyfile cannot "
              "change case; the browser refuses either way"),
)
TAB = "\t"
_ORIGIN = "{http.request.header.Origin}"
_ACRM = "{http.request.header.Access-Control-Request-Method}"
_ACRH = "{http.request.header.Access-Control-Request-Headers}"


def render(plan: Plan) -> str:
    host, port = plan.listen
    lines = [*(f"# {line}".rstrip() for line in plan.header_comment(TESTED_ON)), "",
             f"# corsproxy's listener: {host}:{port}, for any Host", f"http://:{port} {{",
             f"{TAB}bind {host}", "", *_indent(request_maps())]
    policies = [(key, route.cors) for key, route in route_keys(plan)]
    if plan.unmatched is not None:
        policies.append(("d", plan.unmatched))
    for key, cors in policies:
        lines += ["", *_indent(policy_maps(key, cors))]
    for key, route in route_keys(plan):
        lines += ["", *_indent(route_handle(key, route))]
    if not any(route.route.prefix == "/" for route in plan.routes):
        lines += ["", *_indent(unmatched_handle(plan.unmatched))]
    lines += ["", *_indent(errors(plan)), "}"]
    return "\n".join(lines) + "\n"


# --- maps ---------------------------------------------------------------------------------------

SYNTAX = Syntax(var=lambda name: "{http.request.method}" if name == "request_method" else f"{{{name}}}",
                header=lambda name: f"{{http.request.header.{name}}}",
                echo=lambda name: ECHO)


def map_block(table: Table) -> list[str]:
    lines = [f"# {table.comment}"] if table.comment else []
    lines += [f"map {_quote(table.source)} {{{table.variable}}} {{"]
    lines += [f"{TAB}{_quote(_key(key))} {_quote(value)}" for key, value in table.entries]
    return [*lines, f"{TAB}default {_quote(table.default)}", "}"]


def request_maps() -> list[str]:
    same = Table("{http.vars.corsproxy_same}", "corsproxy_same_origin", (("1", "1"),), "0")
    return [*(line for table in request_tables(SYNTAX) for line in map_block(table)),
            "# Same-origin (the Origin is this server's scheme and Host): no CORS check, no CORS headers.",
            "@corsproxy_same_origin expression `{http.request.header.Origin} == "
            "{http.request.scheme} + \"://\" + {http.request.hostport}`",
            "vars @corsproxy_same_origin corsproxy_same 1",
            *map_block(same)]


def policy_maps(key: str, cors: PolicyPlan) -> list[str]:
    return [line for table in policy_tables(key, cors, SYNTAX) for line in map_block(table)]


def _key(key) -> str:
    if isinstance(key, Regex):
        return ("~(?i)" if key.caseless else "~") + key.pattern
    return key


# --- routes -------------------------------------------------------------------------------------


def cors_headers(v: str) -> list[str]:
    """Every CORS header of a policy, each only when its value is not empty (Caddy would send
    an empty header). Caddy 2.6 does not expand a placeholder inside a map's output, so a map
    says ECHO and the `header` line names the request header to echo."""
    lines = [f"@{v}_vary expression `{{{v}_vary}} != \"\"`"]
    for name, var in _HEADERS:
        value = f"{{{v}_{var}}}"
        lines += [f"@{v}_{var} expression `{value} != \"\" && {value} != \"{ECHO}\"`",
                  f"header @{v}_{var} {name} {value}"]
        if var in _ECHOES:
            lines += [f"@{v}_{var}_echo vars {value} {ECHO}", f"header @{v}_{var}_echo {name} {_ECHOES[var]}"]
    return lines


ECHO = "ECHO"
_ECHOES = {"allow_origin": _ORIGIN, "allow_methods": _ACRM, "allow_headers": _ACRH}
_HEADERS = (("Access-Control-Allow-Origin", "allow_origin"),
            ("Access-Control-Allow-Credentials", "allow_credentials"),
            ("Access-Control-Allow-Methods", "allow_methods"),
            ("Access-Control-Allow-Headers", "allow_headers"),
            ("Access-Control-Allow-Private-Network", "allow_private_network"),
            ("Access-Control-Max-Age", "max_age"),
            ("Access-Control-Expose-Headers", "expose_headers"))


def _vary(v: str) -> str:
    # `+` adds to what the upstream sends instead of replacing it: corsproxy keeps its tokens.
    return f"header @{v}_vary +Vary {{{v}_vary}}"


def route_handle(key: str, route: RoutePlan) -> list[str]:
    r = route.route
    v = f"corsproxy_{key}"
    how = "prefix stripped" if r.strip_prefix else "prefix kept"
    return [f"# route {r.prefix} ({r.source}) -> {r.upstream.url}, {how}",
            f"@{v} path {_paths(r.prefix)}",
            f"handle @{v} {{",
            *_indent(_answers(v, route.cors)),
            *_indent(_rewrite(route)),
            *_indent(proxy(route)),
            "}"]


def _answers(v: str, cors: PolicyPlan) -> list[str]:
    return [*cors_headers(v), _vary(v),
            f"@{v}_forbidden vars {{{v}_state}} forbidden preflight-forbidden",
            f"respond @{v}_forbidden {_quote(cors.refusal)} 403",
            f"@{v}_preflight vars {{{v}_state}} preflight refused",
            f"respond @{v}_preflight 204"]


def unmatched_handle(cors: PolicyPlan | None) -> list[str]:
    lines = ["# paths no route matches: 404, readable by the origins the defaults allow"
             + (f" ({cors.source})" if cors else ""), "handle {"]
    if cors is not None:
        lines += _indent([*cors_headers("corsproxy_d"), _vary("corsproxy_d"),
                          "@corsproxy_d_forbidden vars {corsproxy_d_state} preflight-forbidden",
                          f"respond @corsproxy_d_forbidden {_quote(cors.refusal)} 403",
                          "@corsproxy_d_preflight vars {corsproxy_d_state} preflight refused",
                          "respond @corsproxy_d_preflight 204"])
    lines += [f"{TAB}header Content-Type application/json",
              f"{TAB}respond `{{\"error\": \"no route\"}}` 404", "}"]
    return lines


def proxy(route: RoutePlan) -> list[str]:
    r = route.route
    up = r.upstream
    scheme = {"ws": "http", "wss": "https"}.get(up.scheme, up.scheme)
    authority = f"[{up.host}]:{up.port}" if ":" in up.host else f"{up.host}:{up.port}"
    timeout = f"{max(1, round(r.timeout * 1000))}ms"
    lines = [f"reverse_proxy {scheme}://{authority} {{"]
    if r.change_origin:
        lines.append(f"{TAB}header_up Host {up.host_header}")
    lines += [f"{TAB}header_up -{name}" for name in sorted(r.remove_headers)]
    lines += [f"{TAB}# header_up {name} ...  (request_headers.set: the value is not exported)"
              for name, _ in r.set_headers]
    lines += [f"{TAB}header_down -Access-Control-*", f"{TAB}flush_interval -1",
              f"{TAB}transport http {{", f"{TAB * 2}dial_timeout {timeout}",
              f"{TAB * 2}response_header_timeout {timeout}"]
    if scheme == "https":
        lines += [f"{TAB * 2}tls", f"{TAB * 2}tls_server_name {up.host}"]
        if not r.verify_tls:
            lines.append(f"{TAB * 2}tls_insecure_skip_verify  # verify_tls: false")
    return [*lines, f"{TAB}}}", "}"]


def _rewrite(route: RoutePlan) -> list[str]:
    r = route.route
    base = r.upstream.base_path
    lines = []
    if r.strip_prefix and r.prefix != "/":
        lines.append(f"uri strip_prefix {r.prefix}")
    if base:
        lines.append(f"rewrite * {base}{{uri}}")
    return lines


def errors(plan: Plan) -> list[str]:
    """502/504 from reverse_proxy: the same CORS headers, and corsproxy's JSON body."""
    lines = ["# the gateway's own errors (502 upstream unreachable, 504 timeout) keep the CORS headers",
             "handle_errors {"]
    for key, route in route_keys(plan):
        v = f"corsproxy_{key}"
        body = (f'{{"error": "upstream error", "route": "{route.route.prefix}", '
                f'"upstream": "{route.route.upstream.url}", "status": {{err.status_code}}}}')
        lines += _indent([f"@{v}_error path {_paths(route.route.prefix)}", f"handle @{v}_error {{",
                          *_indent([*cors_headers(v), _vary(v), "header Content-Type application/json",
                                    f"respond `{body}` {{err.status_code}}"]), "}"])
    return [*lines, "}"]


# --- helpers -------------------------------------------------------------------------------------


def _paths(prefix: str) -> str:
    return "*" if prefix == "/" else f"{prefix} {prefix}/*"


def _indent(lines) -> list[str]:
    return [f"{TAB}{line}" if line else "" for line in lines]


def _quote(text: str) -> str:
    """A Caddyfile token: bare when it can be, else in backquotes (no escapes inside)."""
    if text and not any(c in text for c in ' \t"`{}#') and not text.startswith("~(?i)"):
        return text
    if "{" in text and "}" in text and text.startswith("{") and text.endswith("}") and " " not in text:
        return text
    return f"`{text}`" if "`" not in text else '"' + text.replace('"', '\\"') + '"'

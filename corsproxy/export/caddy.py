"""Plan -> a Caddyfile site block (Caddy 2.6 syntax, no global options), one builder per block.

As for nginx, `map`s compute one state per request and each CORS header's value in it; `header`
directives apply them before the handler runs, so they are on the API's own 4xx/5xx too. A
reverse_proxy failure (502, 504) is an error, and Caddy answers errors from `handle_errors`
with a fresh response, so the same headers are set there again, per route. Path matchers are
`/api` and `/api/*`, never `/api*` (which matches `/apix`).
"""

from __future__ import annotations

from corsproxy.export.plan import PREFLIGHT_VARY, Deviation, Plan, PolicyPlan, RoutePlan
from corsproxy.policy.cors import NORMALIZED_METHODS

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
_STATES = [("~^1..1111$", "preflight"), ("~^1..1...$", "refused"), ("~^1......$", "preflight-forbidden"),
           ("~^0(?:0.....|11....)$", "pass"), ("~^0101...$", "cors")]
_ORIGIN = "{http.request.header.Origin}"
_ACRM = "{http.request.header.Access-Control-Request-Method}"
_ACRH = "{http.request.header.Access-Control-Request-Headers}"
_ACRPN = "{http.request.header.Access-Control-Request-Private-Network}"


def render(plan: Plan) -> str:
    host, port = plan.listen
    lines = [*(f"# {line}".rstrip() for line in plan.header_comment(TESTED_ON)), "",
             f"# corsproxy's listener: {host}:{port}, for any Host", f"http://:{port} {{",
             f"{TAB}bind {host}", "", *_indent(request_maps())]
    policies = [(key, route.cors) for key, route in _keys(plan)]
    if plan.unmatched is not None:
        policies.append(("d", plan.unmatched))
    for key, cors in policies:
        lines += ["", *_indent(policy_maps(key, cors))]
    for key, route in _keys(plan):
        lines += ["", *_indent(route_handle(key, route))]
    if not any(route.route.prefix == "/" for route in plan.routes):
        lines += ["", *_indent(unmatched_handle(plan.unmatched))]
    lines += ["", *_indent(errors(plan)), "}"]
    return "\n".join(lines) + "\n"


# --- maps ---------------------------------------------------------------------------------------


def map_block(source: str, variable: str, entries: list[tuple[str, str]], default: str) -> list[str]:
    lines = [f"map {_quote(source)} {{{variable}}} {{"]
    lines += [f"{TAB}{_quote(key)} {_quote(value)}" for key, value in entries]
    return [*lines, f"{TAB}default {_quote(default)}", "}"]


def request_maps() -> list[str]:
    return ["# A CORS preflight: OPTIONS with an Origin and an Access-Control-Request-Method.",
            *map_block(f"{{http.request.method}} {{corsproxy_has_origin}} {_ACRM}", "corsproxy_preflight",
                       [("~^OPTIONS 1 .+$", "1")], "0"),
            *map_block(_ORIGIN, "corsproxy_has_origin", [("", "0")], "1"),
            "# Same-origin (the Origin is this server's scheme and Host): no CORS check, no CORS headers.",
            "@corsproxy_same_origin expression `{http.request.header.Origin} == "
            "{http.request.scheme} + \"://\" + {http.request.hostport}`",
            "vars @corsproxy_same_origin corsproxy_same 1",
            *map_block("{http.vars.corsproxy_same}", "corsproxy_same_origin", [("1", "1")], "0")]


def policy_maps(key: str, cors: PolicyPlan) -> list[str]:
    v = f"corsproxy_{key}"
    state = f"{{{v}_state}}"
    origin = "*" if cors.wildcard else ECHO
    allowed = "~^(?:preflight|refused|cors)$"
    preflights = "~^(?:preflight|refused)$"
    return [f"# {cors.name} ({cors.source}): which origins may read its responses",
            *map_block(_ORIGIN, f"{v}_origin", _origin_entries(cors), "0"),
            "# what a preflight may ask for (methods are case-sensitive, header names are not)",
            *map_block(_ACRM, f"{v}_method", _method_entries(cors), "0"),
            *map_block(_ACRH, f"{v}_headers", *_header_entries(cors)),
            *map_block(_ACRPN, f"{v}_pna", [] if cors.private_network else [("~(?i)^true$", "0")], "1"),
            "# preflight | refused (allowed origin, refused ask) | preflight-forbidden | cors | pass | forbidden",
            *map_block(f"{{corsproxy_preflight}}{{corsproxy_has_origin}}{{corsproxy_same_origin}}"
                       f"{{{v}_origin}}{{{v}_method}}{{{v}_headers}}{{{v}_pna}}", f"{v}_state", _STATES, "forbidden"),
            "# the value of each CORS header in each state (empty: not sent)",
            *map_block(state, f"{v}_allow_origin", [(allowed, origin)], ""),
            *map_block(state, f"{v}_allow_credentials", [(allowed, "true")] if cors.credentials else [], ""),
            *_methods_map(v, cors, preflights),
            *map_block(state, f"{v}_allow_headers",
                       [("preflight", ECHO), ("refused", ECHO if cors.any_header else cors.refused_headers_value)], ""),
            *map_block(f"{state}:{_ACRPN}", f"{v}_allow_private_network",
                       [("~(?i)^(?:preflight|refused):true$", "true")] if cors.private_network else [], ""),
            *map_block(state, f"{v}_max_age", [("preflight", str(cors.max_age)), ("refused", "0")], ""),
            *map_block(state, f"{v}_expose_headers", [("cors", cors.expose)] if cors.expose else [], ""),
            *map_block("{corsproxy_preflight}", f"{v}_vary", [("1", PREFLIGHT_VARY)], cors.vary_actual)]


def _methods_map(v: str, cors: PolicyPlan, preflights: str) -> list[str]:
    if not cors.any_method:
        return map_block(f"{{{v}_state}}", f"{v}_allow_methods", [(preflights, cors.methods)], "")
    # ["*"] echoes the asked method, unless the method itself was refused (a lower-case one).
    return map_block(f"{{{v}_state}}:{{{v}_method}}", f"{v}_allow_methods",
                     [("~^preflight:.$", ECHO), ("refused:1", ECHO)], "")


def _origin_entries(cors: PolicyPlan) -> list[tuple[str, str]]:
    if cors.any_origin:
        return [("", "0"), ("~^.+$", "1")]
    entries = [(f"~^{_regex_literal(origin)}$", "1") for origin in cors.origins]
    if cors.origin_regex is not None:
        entries.append((f"~{cors.origin_regex}", "1"))
    return entries


def _method_entries(cors: PolicyPlan) -> list[tuple[str, str]]:
    # corsproxy upper-cases the six methods a browser normalises and takes others byte for byte.
    if cors.any_method:
        return [("~^[^a-z]+$", "1"), (f"~(?i)^(?:{'|'.join(sorted(NORMALIZED_METHODS))})$", "1")]
    exact = [_regex_literal(m) for m in cors.method_names if m not in NORMALIZED_METHODS]
    normalised = [m for m in cors.method_names if m in NORMALIZED_METHODS]
    entries = [(f"~(?i)^(?:{'|'.join(normalised)})$", "1")]
    if exact:
        entries.append((f"~^(?:{'|'.join(exact)})$", "1"))
    return entries


def _header_entries(cors: PolicyPlan) -> tuple[list[tuple[str, str]], str]:
    if cors.any_header:
        return [], "1"
    name = f"(?:{'|'.join(_regex_literal(n) for n in cors.header_names)})?"
    return [("", "1"), (f"~(?i)^[\\t ]*{name}[\\t ]*(?:,[\\t ]*{name}[\\t ]*)*$", "1")], "0"


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
            f"respond @{v}_forbidden {_quote(_refusal(cors))} 403",
            f"@{v}_preflight vars {{{v}_state}} preflight refused",
            f"respond @{v}_preflight 204"]


def unmatched_handle(cors: PolicyPlan | None) -> list[str]:
    lines = ["# paths no route matches: 404, readable by the origins the defaults allow"
             + (f" ({cors.source})" if cors else ""), "handle {"]
    if cors is not None:
        lines += _indent([*cors_headers("corsproxy_d"), _vary("corsproxy_d"),
                          "@corsproxy_d_forbidden vars {corsproxy_d_state} preflight-forbidden",
                          f"respond @corsproxy_d_forbidden {_quote(_refusal(cors))} 403",
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
    for key, route in _keys(plan):
        v = f"corsproxy_{key}"
        body = (f'{{"error": "upstream error", "route": "{route.route.prefix}", '
                f'"upstream": "{route.route.upstream.url}", "status": {{err.status_code}}}}')
        lines += _indent([f"@{v}_error path {_paths(route.route.prefix)}", f"handle @{v}_error {{",
                          *_indent([*cors_headers(v), _vary(v), "header Content-Type application/json",
                                    f"respond `{body}` {{err.status_code}}"]), "}"])
    return [*lines, "}"]


# --- helpers -------------------------------------------------------------------------------------


def _keys(plan: Plan) -> list[tuple[str, RoutePlan]]:
    return [(f"r{index}", route) for index, route in enumerate(plan.routes, 1)]


def _paths(prefix: str) -> str:
    return "*" if prefix == "/" else f"{prefix} {prefix}/*"


def _refusal(cors: PolicyPlan) -> str:
    return (f"the origin of this request is not allowed by {cors.name} ({cors.policy.source_of('allow_origins')}); "
            "add it to allow_origins to allow it")


def _indent(lines) -> list[str]:
    return [f"{TAB}{line}" if line else "" for line in lines]


def _regex_literal(text: str) -> str:
    return "".join(f"\\{c}" if c in ".^$|?*+()[]{}\\" else c for c in text)


def _quote(text: str) -> str:
    """A Caddyfile token: bare when it can be, else in backquotes (no escapes inside)."""
    if text and not any(c in text for c in ' \t"`{}#') and not text.startswith("~(?i)"):
        return text
    if "{" in text and "}" in text and text.startswith("{") and text.endswith("}") and " " not in text:
        return text
    return f"`{text}`" if "`" not in text else '"' + text.replace('"', '\\"') + '"'

"""Plan -> an nginx conf.d file (for `include` inside `http { }`), one builder per block.

The decision is made by `map`s, never by `if` around `add_header` (an `add_header` inside `if`
replaces the location's, and an `if` is not a condition on the headers): per route, maps on
`$http_origin` (anchored, case-sensitive regexes: a plain map string would compare without
case) and on the preflight's request headers compute one state, and every CORS header is an
`add_header ... always` at location level whose value a map leaves empty when it must not be
sent (nginx sends no header with an empty value). `always` keeps them on the API's 4xx/5xx and
on nginx's own 502/504. Each location lists every `add_header` and `proxy_set_header` it needs,
because a block that has one inherits none from its parent.
"""

from __future__ import annotations

from corsproxy.export.plan import PREFLIGHT_VARY, UPSTREAM_CORS_HEADERS, Deviation, Plan, PolicyPlan, RoutePlan
from corsproxy.policy.cors import NORMALIZED_METHODS
from corsproxy.policy.routing import encode_path

TARGET = "nginx"
TESTED_ON = "nginx 1.22.1 (Debian)"
DEVIATIONS = (
    Deviation("Access-Control-*", "upstream headers named Access-Control-* other than the seven the CORS "
              "protocol defines pass through: nginx hides upstream headers by exact name only"),
    Deviation("Access-Control-Allow-Headers", "a refused preflight lists every allowed name (the "
              "safelisted ones too) where corsproxy lists the asked names it allows, then the configured "
              "ones: nginx cannot filter a list; the browser refuses the same request either way"),
    Deviation("Access-Control-Allow-Methods", "with allow_methods ['*'], a preflight refused for a "
              "lower-case method gets none where corsproxy sends it upper-cased: nginx cannot change "
              "case; the browser refuses either way"),
)
INDENT = "    "
_PREFLIGHT_STATES = "~^(?:preflight|refused)$"
_NO_ROUTE = '{"error": "no route"}\n'
_ALLOWED_STATES = "~^(?:preflight|refused|cors)$"


def render(plan: Plan) -> str:
    blocks = [comment(plan.header_comment(TESTED_ON)), request_maps()]
    for key, route in _keys(plan):
        blocks.append(policy_maps(key, route.cors))
    if plan.unmatched is not None:
        blocks.append(policy_maps("d", plan.unmatched))
    blocks.append(server(plan))
    return "\n\n".join(blocks) + "\n"


def comment(lines: list[str]) -> str:
    return "\n".join(f"# {line}".rstrip() for line in lines)


# --- maps ---------------------------------------------------------------------------------------


def map_block(source: str, variable: str, entries: list[tuple[str, str]], default: str) -> list[str]:
    """`map source $variable { ... }`; regex keys keep their order, which nginx honours."""
    lines = [f"map {_quote(source)} ${variable} {{", f"{INDENT}default {_value(default)};"]
    lines += [f"{INDENT}{_quote(key)} {_value(value)};" for key, value in entries]
    return [*lines, "}"]


def request_maps() -> str:
    """What every route's decision reads: is this a preflight, does it carry an Origin, is it
    same-origin (the Origin is the server's own scheme and Host), and the WebSocket upgrade."""
    return "\n".join([
        "# A CORS preflight: OPTIONS with an Origin and an Access-Control-Request-Method.",
        *map_block("$request_method $corsproxy_has_origin $http_access_control_request_method",
                   "corsproxy_preflight", [("~^OPTIONS 1 .+$", "1")], "0"),
        *map_block("$http_origin", "corsproxy_has_origin", [("", "0")], "1"),
        "# Same-origin: the browser runs no CORS check, so no CORS headers are sent.",
        *map_block("$http_origin $scheme://$http_host", "corsproxy_same_origin", [(r"~^(\S+) \1$", "1")], "0"),
        "# WebSocket upgrades are forwarded as upgrades; everything else keeps the connection.",
        *map_block("$http_upgrade", "corsproxy_connection", [("", "")], "upgrade"),
    ])


def policy_maps(key: str, cors: PolicyPlan) -> str:
    """The maps of one policy: which origins, methods, headers and private-network asks it
    allows, the state they add up to, and the value of each CORS header in that state."""
    v = f"corsproxy_{key}"
    lines = [f"# {cors.name} ({cors.source}): which origins may read its responses",
             *map_block("$http_origin", f"{v}_origin", _origin_entries(cors), "0"),
             "# what a preflight may ask for (methods are case-sensitive, header names are not)",
             *map_block("$http_access_control_request_method", f"{v}_method", _method_entries(cors), "0"),
             *map_block("$http_access_control_request_headers", f"{v}_headers", *_header_entries(cors)),
             *map_block("$http_access_control_request_private_network", f"{v}_pna",
                        [] if cors.private_network else [("~*^true$", "0")], "1"),
             "# preflight | refused (allowed origin, refused ask) | preflight-forbidden | cors | pass | forbidden",
             *map_block(f"$corsproxy_preflight$corsproxy_has_origin$corsproxy_same_origin"
                        f"${v}_origin${v}_method${v}_headers${v}_pna", f"{v}_state", _STATES, "forbidden"),
             *_header_maps(v, cors)]
    return "\n".join(lines)


_STATES = [("~^1..1111$", "preflight"), ("~^1..1...$", "refused"), ("~^1......$", "preflight-forbidden"),
           ("~^0(?:0.....|11....)$", "pass"), ("~^0101...$", "cors")]


def _origin_entries(cors: PolicyPlan) -> list[tuple[str, str]]:
    if cors.any_origin:
        return [("", "0"), ("~^.+$", "1")]
    entries = [(f"~^{_regex_literal(origin)}$", "1") for origin in cors.origins]
    if cors.origin_regex is not None:
        entries.append((f"~{cors.origin_regex}", "1"))
    return entries


def _method_entries(cors: PolicyPlan) -> list[tuple[str, str]]:
    # corsproxy upper-cases the six methods a browser normalises and takes every other method
    # byte for byte (Fetch "normalize a method"), so 'get' passes where 'patch' does not.
    if cors.any_method:
        normalised = sorted(NORMALIZED_METHODS)
        return [("~^[^a-z]+$", "1"), (f"~*^(?:{'|'.join(normalised)})$", "1")]
    exact = [_regex_literal(m) for m in cors.method_names if m not in NORMALIZED_METHODS]
    normalised = [m for m in cors.method_names if m in NORMALIZED_METHODS]
    entries = [(f"~*^(?:{'|'.join(normalised)})$", "1")]
    if exact:
        entries.append((f"~^(?:{'|'.join(exact)})$", "1"))
    return entries


def _header_entries(cors: PolicyPlan) -> tuple[list[tuple[str, str]], str]:
    if cors.any_header:
        return [], "1"
    name = f"(?:{'|'.join(_regex_literal(n) for n in cors.header_names)})?"
    # A comma-separated list whose every item is an allowed name (empty items are skipped).
    return [("", "1"), (f"~*^[\\t ]*{name}[\\t ]*(?:,[\\t ]*{name}[\\t ]*)*$", "1")], "0"


def _header_maps(v: str, cors: PolicyPlan) -> list[str]:
    state = f"${v}_state"
    origin = "*" if cors.wildcard else "$http_origin"
    refused_headers = "$http_access_control_request_headers" if cors.any_header else cors.refused_headers_value
    lines = ["# the value of each CORS header in each state (empty: not sent)",
             *map_block(state, f"{v}_allow_origin", [(_ALLOWED_STATES, origin)], ""),
             *map_block(state, f"{v}_allow_credentials",
                        [(_ALLOWED_STATES, "true")] if cors.credentials else [], ""),
             *_methods_map(v, cors),
             *map_block(state, f"{v}_allow_headers",
                        [("preflight", "$http_access_control_request_headers"), ("refused", refused_headers)], ""),
             *map_block(f"{state}:$http_access_control_request_private_network", f"{v}_allow_private_network",
                        [("~*^(?:preflight|refused):true$", "true")] if cors.private_network else [], ""),
             *map_block(state, f"{v}_max_age", [("preflight", str(cors.max_age)), ("refused", "0")], ""),
             *map_block(state, f"{v}_expose_headers", [("cors", cors.expose)] if cors.expose else [], ""),
             *map_block("$corsproxy_preflight", f"{v}_vary", [("1", PREFLIGHT_VARY)], cors.vary_actual)]
    return lines


def _methods_map(v: str, cors: PolicyPlan) -> list[str]:
    if not cors.any_method:
        return map_block(f"${v}_state", f"{v}_allow_methods", [(_PREFLIGHT_STATES, cors.methods)], "")
    # ["*"] echoes the asked method, unless the method itself was refused (a lower-case one):
    # echoing it would let the browser through.
    echo = "$http_access_control_request_method"
    return map_block(f"${v}_state:${v}_method", f"{v}_allow_methods",
                     [("~^preflight:.$", echo), ("refused:1", echo)], "")


# --- the server ---------------------------------------------------------------------------------


def server(plan: Plan) -> str:
    host, port = plan.listen
    address = f"[{host}]:{port}" if ":" in host else f"{host}:{port}"
    lines = [f"# corsproxy's listener: {address}", "server {", f"{INDENT}listen {address};",
             f"{INDENT}server_name _;"]
    for key, route in _keys(plan):
        lines += ["", *_indent(route_location(key, route))]
    if not any(route.route.prefix == "/" for route in plan.routes):
        lines += ["", *_indent(unmatched_location(plan.unmatched))]
    return "\n".join([*lines, "}"])


def cors_headers(v: str) -> list[str]:
    """Every CORS header of a policy, on every status (`always`)."""
    names = ("Access-Control-Allow-Origin", "Access-Control-Allow-Credentials",
             "Access-Control-Allow-Methods", "Access-Control-Allow-Headers",
             "Access-Control-Allow-Private-Network", "Access-Control-Max-Age",
             "Access-Control-Expose-Headers", "Vary")
    variables = ("allow_origin", "allow_credentials", "allow_methods", "allow_headers",
                 "allow_private_network", "max_age", "expose_headers", "vary")
    return [f"add_header {name} ${v}_{var} always;" for name, var in zip(names, variables)]


def route_location(key: str, route: RoutePlan) -> list[str]:
    r = route.route
    v = f"corsproxy_{key}"
    how = "prefix stripped" if r.strip_prefix else "prefix kept"
    lines = [f"# route {r.prefix} ({r.source}) -> {r.upstream.url}, {how}",
             f"location {_location_match(r.prefix)} {{",
             f"{INDENT}default_type text/plain;",
             f"{INDENT}if (${v}_state ~ ^(?:forbidden|preflight-forbidden)$) {{",
             f"{INDENT * 2}return 403 {_quote(_refusal(route.cors))};",
             f"{INDENT}}}",
             f"{INDENT}if (${v}_state ~ {_PREFLIGHT_STATES[1:]}) {{",
             f"{INDENT * 2}return 204;",
             f"{INDENT}}}",
             *_indent(cors_headers(v)),
             *_indent(f"proxy_hide_header {name};" for name in UPSTREAM_CORS_HEADERS),
             *_indent(proxy_lines(route)),
             "}"]
    return lines


def unmatched_location(cors: PolicyPlan | None) -> list[str]:
    lines = ["# paths no route matches: 404, readable by the origins the defaults allow"
             + (f" ({cors.source})" if cors else ""), "location / {"]
    if cors is not None:
        lines += [f"{INDENT}if ($corsproxy_d_state = preflight-forbidden) {{",
                  f"{INDENT * 2}return 403 {_quote(_refusal(cors))};",
                  f"{INDENT}}}",
                  f"{INDENT}if ($corsproxy_d_state ~ {_PREFLIGHT_STATES[1:]}) {{",
                  f"{INDENT * 2}return 204;",
                  f"{INDENT}}}",
                  *_indent(cors_headers("corsproxy_d"))]
    lines += [f"{INDENT}default_type application/json;",
              f"{INDENT}return 404 {_quote(_NO_ROUTE)};", "}"]
    return lines


def proxy_lines(route: RoutePlan) -> list[str]:
    """Forwarding as corsproxy does it: prefix strip and base path, Host, X-Forwarded-*,
    request_headers, the route's timeout, Location rewritten, TLS verified, bodies streamed."""
    r = route.route
    up = r.upstream
    scheme = {"ws": "http", "wss": "https"}.get(up.scheme, up.scheme)
    authority = f"[{up.host}]:{up.port}" if ":" in up.host else f"{up.host}:{up.port}"
    lines = list(_rewrite(route))
    lines += [f"proxy_pass {scheme}://{authority};",
              f"proxy_set_header Host {_quote(up.host_header) if r.change_origin else '$http_host'};",
              "proxy_set_header X-Forwarded-For $proxy_add_x_forwarded_for;",
              "proxy_set_header X-Forwarded-Proto $scheme;",
              "proxy_set_header X-Forwarded-Host $http_host;",
              "proxy_set_header Upgrade $http_upgrade;",
              "proxy_set_header Connection $corsproxy_connection;"]
    lines += [f'proxy_set_header {name} "";' for name in sorted(r.remove_headers)]
    lines += [f'# proxy_set_header {name} "...";  (request_headers.set: the value is not exported)'
              for name, _ in r.set_headers]
    timeout = f"{max(1, round(r.timeout * 1000))}ms"
    lines += [f"proxy_connect_timeout {timeout};", f"proxy_send_timeout {timeout};",
              f"proxy_read_timeout {timeout};",
              f"proxy_redirect {up.origin}{up.base_path}/ {_back_through(r)}/;",
              "proxy_http_version 1.1;", "proxy_buffering off;", "proxy_request_buffering off;"]
    if scheme == "https":
        lines += ["proxy_ssl_server_name on;", f"proxy_ssl_name {up.host};"]
        lines += (["proxy_ssl_verify on;", "proxy_ssl_trusted_certificate /etc/ssl/certs/ca-certificates.crt;"]
                  if r.verify_tls else ["proxy_ssl_verify off;  # verify_tls: false"])
    return lines


def _rewrite(route: RoutePlan) -> list[str]:
    r = route.route
    base = encode_path(r.upstream.base_path) if r.upstream.base_path else ""
    if not r.strip_prefix or r.prefix == "/":
        return [f"rewrite ^(.*)$ {base}$1 break;"] if base else []
    prefix = _regex_literal(r.prefix)
    if base:
        return [f"rewrite ^{prefix}(.*)$ {base}$1 break;"]
    return [f"rewrite ^{prefix}/?(.*)$ /$1 break;"]


def _back_through(route) -> str:
    """What a Location at the upstream's base path becomes: the route's prefix, when stripped."""
    return route.prefix if route.strip_prefix and route.prefix != "/" else ""


def _location_match(prefix: str) -> str:
    # `location /api` alone also matches /apix: match the prefix on a segment boundary.
    return "/" if prefix == "/" else f"~ ^{_regex_literal(prefix)}(?:/|$)"


def _refusal(cors: PolicyPlan) -> str:
    return (f"the origin of this request is not allowed by {cors.name} ({cors.policy.source_of('allow_origins')}); "
            "add it to allow_origins to allow it\n")


# --- helpers -------------------------------------------------------------------------------------


def _keys(plan: Plan) -> list[tuple[str, RoutePlan]]:
    return [(f"r{index}", route) for index, route in enumerate(plan.routes, 1)]


def _indent(lines) -> list[str]:
    return [f"{INDENT}{line}" if line else "" for line in lines]


def _regex_literal(text: str) -> str:
    """`text` as a literal inside a PCRE pattern."""
    return "".join(f"\\{c}" if c in ".^$|?*+()[]{}\\" else c for c in text)


def _quote(text: str) -> str:
    escaped = text.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n")
    return f'"{escaped}"'


def _value(text: str) -> str:
    return text if text.startswith("$") and " " not in text else _quote(text)

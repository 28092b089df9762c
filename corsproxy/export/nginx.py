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

from corsproxy.export.gateway import (
    FORBIDDEN,
    PREFLIGHT_OR_REFUSED,
    Regex,
    Syntax,
    Table,
    policy_tables,
    regex_literal,
    request_tables,
    route_keys,
)
from corsproxy.export.plan import (
    UPSTREAM_CORS_HEADERS,
    Deviation,
    Plan,
    PolicyPlan,
    RoutePlan,
)
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
_NO_ROUTE = '{"error": "no route"}\n'


def render(plan: Plan) -> str:
    blocks = [comment(plan.header_comment(TESTED_ON)), request_maps()]
    for key, route in route_keys(plan):
        blocks.append(policy_maps(key, route.cors))
    if plan.unmatched is not None:
        blocks.append(policy_maps("d", plan.unmatched))
    blocks.append(server(plan))
    return "\n\n".join(blocks) + "\n"


def comment(lines: list[str]) -> str:
    return "\n".join(f"# {line}".rstrip() for line in lines)


# --- maps ---------------------------------------------------------------------------------------

SYNTAX = Syntax(var=lambda name: f"${name}",
                header=lambda name: "$http_" + name.lower().replace("-", "_"),
                echo=lambda name: "$http_" + name.lower().replace("-", "_"))


def map_block(table: Table) -> list[str]:
    """`map source $variable { ... }`; regex keys keep their order, which nginx honours."""
    lines = [f"# {table.comment}"] if table.comment else []
    lines += [f"map {_quote(table.source)} ${table.variable} {{", f"{INDENT}default {_value(table.default)};"]
    lines += [f"{INDENT}{_quote(_key(key))} {_value(value)};" for key, value in table.entries]
    return [*lines, "}"]


def request_maps() -> str:
    """What every route's decision reads: is this a preflight, does it carry an Origin, is it
    same-origin (the Origin is the server's own scheme and Host), and the WebSocket upgrade."""
    tables = [*request_tables(SYNTAX),
              Table("$http_origin $scheme://$http_host", "corsproxy_same_origin", ((Regex(r"^(\S+) \1$"), "1"),),
                    "0", "Same-origin: the browser runs no CORS check, so no CORS headers are sent."),
              Table("$http_upgrade", "corsproxy_connection", (("", ""),), "upgrade",
                    "WebSocket upgrades are forwarded as upgrades; everything else keeps the connection.")]
    return "\n".join(line for table in tables for line in map_block(table))


def policy_maps(key: str, cors: PolicyPlan) -> str:
    """The maps of one policy: which origins, methods, headers and private-network asks it
    allows, the state they add up to, and the value of each CORS header in that state."""
    return "\n".join(line for table in policy_tables(key, cors, SYNTAX) for line in map_block(table))


def _key(key) -> str:
    if isinstance(key, Regex):
        return ("~*" if key.caseless else "~") + key.pattern
    return key


# --- the server ---------------------------------------------------------------------------------


def server(plan: Plan) -> str:
    host, port = plan.listen
    address = f"[{host}]:{port}" if ":" in host else f"{host}:{port}"
    lines = [f"# corsproxy's listener: {address}", "server {", f"{INDENT}listen {address};",
             f"{INDENT}server_name _;"]
    for key, route in route_keys(plan):
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
             f"{INDENT}if (${v}_state ~ {FORBIDDEN.pattern}) {{",
             f"{INDENT * 2}return 403 {_quote(_refusal(route.cors))};",
             f"{INDENT}}}",
             f"{INDENT}if (${v}_state ~ {PREFLIGHT_OR_REFUSED.pattern}) {{",
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
                  f"{INDENT}if ($corsproxy_d_state ~ {PREFLIGHT_OR_REFUSED.pattern}) {{",
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
    prefix = regex_literal(r.prefix)
    if base:
        return [f"rewrite ^{prefix}(.*)$ {base}$1 break;"]
    return [f"rewrite ^{prefix}/?(.*)$ /$1 break;"]


def _back_through(route) -> str:
    """What a Location at the upstream's base path becomes: the route's prefix, when stripped."""
    return route.prefix if route.strip_prefix and route.prefix != "/" else ""


def _location_match(prefix: str) -> str:
    # `location /api` alone also matches /apix: match the prefix on a segment boundary.
    return "/" if prefix == "/" else f"~ ^{regex_literal(prefix)}(?:/|$)"


def _refusal(cors: PolicyPlan) -> str:
    # `return 403 "..."` sends the text as it is: end the body with a newline, as corsproxy does.
    return cors.refusal + "\n"


# --- helpers -------------------------------------------------------------------------------------


def _indent(lines) -> list[str]:
    return [f"{INDENT}{line}" if line else "" for line in lines]


def _quote(text: str) -> str:
    escaped = text.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n")
    return f'"{escaped}"'


def _value(text: str) -> str:
    return text if text.startswith("$") and " " not in text else _quote(text)

"""Intercept, the pure part: which CONNECT is served, which Host fits a tunnel, the PAC text,
the routes of an intercepted host, and the parameters of the certificates.

The listener (server/intercept.py) and the CA (server/ca.py) do the I/O and the cryptography;
every decision they make about names is taken here, without a socket or a key.
"""

from __future__ import annotations

import ipaddress
import json
from collections.abc import Iterable

from corsproxy.model import CorsPolicy, InterceptSettings, Route, Source, Upstream
from corsproxy.policy.origins import parse_host

# RFC 1035 §2.3.4 / RFC 1123 §2.1: a label is 1-63 letters, digits and inner hyphens.
MAX_NAME_LENGTH = 253
_LABEL_CHARS = frozenset("abcdefghijklmnopqrstuvwxyz0123456789-")
# The CA may sign only for the listed names, and never for an address (RFC 5280 §4.2.1.10:
# an iPAddress constraint of 0/0 excludes every IPv4 address, ::/0 every IPv6 one).
EXCLUDED_IP_RANGES = ("0.0.0.0/0", "::/0")
CA_DAYS = 3650          # a persistent CA outlives many runs; the ephemeral one dies with the run
LEAF_DAYS = 30
CA_COMMON_NAME = "corsproxy intercept CA"


def is_ip_literal(host: str) -> bool:
    try:
        ipaddress.ip_address(host.strip("[]"))
    except ValueError:
        return False
    return True


def dns_name_problem(text: str) -> str | None:
    """Why `text` is not an exact DNS name corsproxy may intercept; None when it is one."""
    if "*" in text:
        return "a wildcard is not allowed: list each host name exactly"
    if is_ip_literal(text):
        return "an IP address is not allowed: the certificate authority never signs for addresses"
    name = text.lower().rstrip(".")
    labels = name.split(".")
    if not name or len(name) > MAX_NAME_LENGTH or any(
            not label or len(label) > 63 or not set(label) <= _LABEL_CHARS
            or label[0] == "-" or label[-1] == "-" for label in labels):
        return "not a DNS host name (letters, digits, inner hyphens and dots only)"
    if labels[-1].isdigit():
        return "a DNS name does not end in a number"
    return None


def connect_target(target: str) -> tuple[str, int] | None:
    """The (host, port) of a CONNECT request-target (RFC 9110 §9.3.6: authority-form,
    `host:port`, the port required); None when it is anything else."""
    if "@" in target or "/" in target:
        return None
    try:
        host, port = parse_host(target)
    except ValueError:
        return None
    return None if port is None else (host, port)


def connect_refusal(settings: InterceptSettings, target: str) -> str | None:
    """Why a CONNECT to `target` is refused (403, never dialled); None when it is listed."""
    parsed = connect_target(target)
    if parsed is None:
        return (f"CONNECT target {target[:200]!r} is not host:port; corsproxy tunnels only to "
                "the hosts of intercept.hosts")
    host, port = parsed
    if is_ip_literal(host):
        return f"CONNECT to an IP address ({host}) is refused: only listed host names are intercepted"
    if settings.find(host, port) is None:
        listed = ", ".join(f"{h.host}:{h.port}" for h in settings.hosts)
        return (f"{host}:{port} is not in intercept.hosts ({settings.source}); corsproxy tunnels "
                f"only to {listed}, and never to anything else")
    return None


def tunnel_host_matches(host_header: str | None, host: str, port: int) -> bool:
    """Whether a Host inside a tunnel names the CONNECT host (the port may be left out for 443)."""
    if host_header is None:
        return False
    try:
        name, given = parse_host(host_header)
    except ValueError:
        return False
    return name == host and (given == port or (given is None and port == 443))


def sni_matches(server_name: str | None, host: str) -> bool:
    """Whether a TLS ClientHello's SNI names the CONNECT host (a missing SNI does not)."""
    return server_name is not None and server_name.lower().rstrip(".") == host


def pac_script(settings: InterceptSettings, proxy: str) -> str:
    """A PAC file sending https:/wss: URLs of the listed host:ports to `proxy` (host:port), the
    rest DIRECT. A PAC sees only scheme, host and port of an https URL, so it cannot scope by
    path: the listener passes a listed host's other paths through untouched."""
    listed = json.dumps(sorted({f"{h.host}:{h.port}" for h in settings.hosts}))
    return f"""// corsproxy intercept: only these host:ports go through the proxy.
var LISTED = {listed};
function FindProxyForURL(url, host) {{
  var scheme = url.substring(0, url.indexOf(":")).toLowerCase();
  if (scheme != "https" && scheme != "wss") return "DIRECT";
  var authority = url.substring(url.indexOf("//") + 2).split("/")[0];
  var colon = authority.lastIndexOf(":");
  var port = (colon > authority.lastIndexOf("]")) ? authority.substring(colon + 1) : "443";
  var key = host.toLowerCase() + ":" + port;
  for (var i = 0; i < LISTED.length; i++) {{
    if (LISTED[i] == key) return "PROXY {proxy}";
  }}
  return "DIRECT";
}}
"""


def host_routes(host: str, port: int, paths: Iterable[str], policy: CorsPolicy, source: Source, *,
                connect_to: tuple[str, int] | None, ca_file: str | None,
                verify_tls: bool) -> tuple[Route, ...]:
    """The routes of one intercepted host: each listed path under the CORS policy, and (unless
    "/" is listed) "/" passing every other path through untouched. All keep the request as the
    browser made it: the same path, Host and cookies (transparent)."""
    authority = host if port == 443 else f"{host}:{port}"
    upstream = Upstream(f"https://{authority}", "https", host, port, "")
    common = dict(upstream=upstream, cors=policy, source=source, strip_prefix=False,
                  change_origin=False, verify_tls=verify_tls, transparent=True,
                  connect_to=connect_to, ca_file=ca_file)
    routes = [Route(prefix=path, **common) for path in dict.fromkeys(paths)]
    if "/" not in {route.prefix for route in routes}:
        routes.append(Route(prefix="/", applies_cors=False, **common))
    return tuple(routes)

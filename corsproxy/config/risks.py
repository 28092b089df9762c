"""Legal but risky setups: the warnings `corsproxy check` prints (exit 0) and `serve` logs.

Only model types come in (no YAML, no I/O), so the loader calls `find_risks` on the Config it
built. Each warning is one sentence starting with the `file:line` to change.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Iterator

from corsproxy.model import Config, Route
from corsproxy.policy.origins import loopback_host, loopback_origin, matches_any_origin


def find_risks(config: Config) -> tuple[str, ...]:
    """Every warning for `config`, each once: route risks by kind, then the server's."""
    warnings: list[str] = []
    for check in _ROUTE_CHECKS:
        warnings += _grouped(config.routes, check)
    warnings += _shadowed(config.routes)
    server = config.server
    if server.allow_any_host:
        where = f"{server.source}: " if server.source else ""
        warnings.append(
            f"{where}server.allowed_hosts is ['*']: the Host check that guards against DNS "
            "rebinding is off, so a website can reach the proxy (and the upstreams and tokens "
            "behind it) through a DNS name that resolves to this machine; list the host names "
            "you use instead")
    intercept = config.intercept
    if intercept is not None and not loopback_host(intercept.listen_host):
        warnings.append(
            f"{intercept.source}: intercept.listen is {intercept.listen_host}, not a loopback address: "
            "other machines can reach the listener and, through it, the intercepted hosts with the "
            "policy's CORS headers; use 127.0.0.1 unless another machine's browser needs it")
    return tuple(dict.fromkeys(warnings))


def _shadowed(routes: tuple[Route, ...]) -> list[str]:
    """A route of one file that takes over paths under another file's prefix: legal (the
    longest prefix wins), but in a team directory nobody may have meant it. The catch-all `/`
    is left out: every other route is meant to win over it."""
    by_prefix = {route.prefix: route for route in routes}
    warnings = []
    for inner in routes:
        outer_prefix = inner.prefix
        while (outer_prefix := outer_prefix.rpartition("/")[0]):
            outer = by_prefix.get(outer_prefix)
            if outer is not None and outer.source.file != inner.source.file:
                prefix = inner.shown("prefix")
                warnings.append(
                    f"{inner.source}: prefix {prefix} takes over {prefix}/* from route "
                    f"{outer.shown('prefix')} of {outer.source.file} ({outer.source}): those requests "
                    f"now go to {inner.upstream.shown} instead of {outer.upstream.shown}; if that is not "
                    "meant, change one of the two prefixes")
                break
    return warnings


def with_risks(config: Config) -> Config:
    """`config` with its warnings filled in (what config.load returns)."""
    return dataclasses.replace(config, warnings=config.warnings + find_risks(config))


# --- per route: (where, text) when the route has the risk, else None ----------------------------

RouteCheck = Callable[[Route], "tuple[str, str] | None"]


def _wildcard_with_authorization(route: Route) -> tuple[str, str] | None:
    if not route.cors.allow_any_origin:
        return None
    if not any(name.lower() == "authorization" for name, _ in route.set_headers):
        return None
    return (route.cors.source_of("allow_origins"),
            "allow_origins is ['*'] on {routes}, which injects an Authorization header "
            "(request_headers.set): any website you visit can call the upstream with that token "
            "through the proxy and read the answer; list your pages' origins in allow_origins")


def _regex_matches_any(route: Route) -> tuple[str, str] | None:
    regex = route.cors.allow_origin_regex
    example = matches_any_origin(regex) if regex is not None else None
    if example is None:
        return None
    return (route.cors.source_of("allow_origin_regex"),
            f"allow_origin_regex '{regex.pattern}' matches any origin (e.g. '{example}'), "
            "so every website can read the responses of {routes}; anchor it to your own hosts, "
            r"e.g. '^https://[a-z0-9-]+\.preview\.example\.com$'")


def _http_origin_with_credentials(route: Route) -> tuple[str, str] | None:
    policy = route.cors
    if not policy.allow_credentials or route.upstream.scheme not in ("https", "wss"):
        return None
    plain = sorted(origin for origin in policy.allow_origins
                   if origin.startswith("http://") and not loopback_origin(origin))
    if not plain:
        return None
    shown = ", ".join(str(policy.shown("allow_origins", origin)) for origin in plain)
    return (policy.source_of("allow_origins"),
            f"allow_origins has plain-http origin(s) {shown} with allow_credentials: true on "
            "{routes}, whose upstream is https: anyone on the network path to such a page can "
            "change it and use the user's credentials against the https upstream (a page on "
            "your own localhost is out of the network's reach); allow the https:// origin "
            "where the page has one")


def _wildcard_headers_with_credentials(route: Route) -> tuple[str, str] | None:
    policy = route.cors
    if not (policy.allow_any_header and policy.allow_credentials):
        return None
    return (policy.source_of("allow_headers"),
            "allow_headers is ['*'] on {routes}, which allows credentials: corsproxy echoes every "
            "header name a page asks for, Authorization included, so an allowed page may send any "
            "header together with the user's cookies (a server answering "
            "Access-Control-Allow-Headers: * would not cover Authorization there); list the "
            "names your pages send instead, e.g. [Content-Type, Authorization] (with serve "
            "--upstream: --allow-header Content-Type --allow-header Authorization)")


_ROUTE_CHECKS: tuple[RouteCheck, ...] = (
    _wildcard_with_authorization, _regex_matches_any, _http_origin_with_credentials,
    _wildcard_headers_with_credentials,
)


def _grouped(routes: tuple[Route, ...], check: RouteCheck) -> Iterator[str]:
    """One warning per (line, text): routes sharing a file default are named together."""
    found: dict[tuple[str, str], list[str]] = {}
    for route in routes:
        hit = check(route)
        if hit is not None:
            found.setdefault(hit, []).append(str(route.shown("prefix")))
    for (where, text), prefixes in found.items():
        names = ", ".join(prefixes)
        yield f"{where}: " + text.replace("{routes}", f"route{'s' if len(prefixes) > 1 else ''} {names}")


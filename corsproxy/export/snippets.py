"""The configuration `probe` suggests for a blocked request, written by the exporters: the
judge's `Remedy` (origin, credentials, method, header names) becomes a one-route policy, and
the nginx and Express text is what `corsproxy export` writes for it, blocks the engine suites
run. Only the corsproxy YAML is written here (corsproxy is no export target)."""

from __future__ import annotations

from dataclasses import dataclass
from urllib.parse import urlsplit

from corsproxy.export import express, nginx
from corsproxy.export.plan import app_plan, gateway_plan
from corsproxy.judge.remedies import Remedy
from corsproxy.model import Config, CorsPolicy, Route, ServerSettings, Source, Upstream
from corsproxy.policy.cors import SAFELISTED_METHODS

DEFAULT_UPSTREAM = "http://127.0.0.1:9000"
_DEFAULT_METHODS = ("GET", "HEAD", "POST", "PUT", "PATCH", "DELETE")
_SOURCE = Source("corsproxy.yaml", 1)


@dataclass(frozen=True, slots=True)
class Snippets:
    """Configuration that would make a server send the fixes."""

    corsproxy_yaml: str
    express: str
    nginx: str


def for_remedy(remedy: Remedy) -> Snippets:
    config = _config(remedy)
    gateway = gateway_plan(config, "nginx", None)
    app = app_plan(config, "express", None)
    return Snippets(
        corsproxy_yaml=_yaml(remedy),
        express="\n".join(["// the route's policy; `corsproxy export --to express` writes the middleware around it",
                           express.route_block("ROUTE_1", app.routes[0])]),
        nginx="\n\n".join([nginx.request_maps(), nginx.policy_maps("r1", gateway.routes[0].cors),
                           nginx.server(gateway)]),
    )


def _config(remedy: Remedy) -> Config:
    methods = set(_DEFAULT_METHODS)
    if remedy.method not in SAFELISTED_METHODS:
        methods.add(remedy.method)
    where = str(_SOURCE)
    policy = CorsPolicy(allow_origins=frozenset({remedy.origin}), allow_methods=frozenset(methods),
                        allow_headers=frozenset(remedy.header_names), allow_credentials=remedy.credentials,
                        key_sources=tuple((key, where) for key in ("allow_origins", "allow_methods", "allow_headers")))
    route = Route(prefix="/", upstream=_upstream(remedy.upstream or DEFAULT_UPSTREAM), cors=policy, source=_SOURCE)
    return Config(server=ServerSettings(), routes=(route,), defaults=(), files=(where,))


def _upstream(origin: str) -> Upstream:
    parts = urlsplit(origin)
    scheme = parts.scheme or "http"
    port = parts.port or (443 if scheme == "https" else 80)
    return Upstream(origin, scheme, parts.hostname or "127.0.0.1", port, "")


def _yaml(remedy: Remedy) -> str:
    if remedy.origin == "null":
        return ("# corsproxy refuses the origin 'null' (sandboxed iframes and file:// pages of every\n"
                "# site share it): serve the page from an http(s) origin and allow that origin.")
    lines = ["cors:", f"  allow_origins: [{remedy.origin}]"]
    if remedy.method not in _DEFAULT_METHODS and remedy.method not in SAFELISTED_METHODS:
        lines.append(f"  allow_methods: [{', '.join((*_DEFAULT_METHODS, remedy.method))}]")
    if remedy.header_names:
        lines.append(f"  allow_headers: [{', '.join(remedy.header_names)}]")
    if remedy.credentials:
        lines.append("  allow_credentials: true")
    lines += ["routes:", "  - prefix: /", f"    upstream: {remedy.upstream or DEFAULT_UPSTREAM}",
              "# then point the page at the proxy (http://localhost:8080, the page's own host name)",
              "# instead of the server"]
    return "\n".join(lines)

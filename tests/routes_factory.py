"""Route objects for the pure-core tests, built directly (no config loader involved)."""

from __future__ import annotations

from urllib.parse import urlsplit

from corsproxy.model import CorsPolicy, Route, Source, Upstream

DEFAULT_PORTS = {"http": 80, "ws": 80, "https": 443, "wss": 443}


def make_upstream(url: str) -> Upstream:
    parts = urlsplit(url)
    return Upstream(
        url=url,
        scheme=parts.scheme,
        host=parts.hostname or "",
        port=parts.port or DEFAULT_PORTS[parts.scheme],
        base_path=parts.path.rstrip("/"),
    )


def make_route(prefix: str = "/api", upstream: str = "https://api.example.com/v1", **options: object) -> Route:
    return Route(
        prefix=prefix,
        upstream=make_upstream(upstream),
        cors=CorsPolicy(allow_origins=frozenset({"http://localhost:3000"}), scope=f"route {prefix}"),
        source=Source("test.yaml", 1),
        **options,  # type: ignore[arg-type]
    )

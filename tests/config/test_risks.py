"""`check` warnings for legal but risky setups (corsproxy.config.risks.find_risks), from real YAML."""

from __future__ import annotations

import textwrap
from pathlib import Path

import pytest

from corsproxy import config
from corsproxy.config.risks import find_risks, with_risks


def risks_of(tmp_path: Path, yaml_text: str) -> tuple[str, ...]:
    path = tmp_path / "corsproxy.yaml"
    path.write_text(textwrap.dedent(yaml_text).lstrip("\n"))
    return find_risks(config.load(path, env={"TOKEN": "s3cret"}))


CASES = [
    pytest.param("""
        routes:
          - prefix: /api
            upstream: http://127.0.0.1:9000
            request_headers:
              set: {Authorization: "Bearer ${TOKEN}"}
            cors:
              allow_origins: ["*"]
        """, 7, "allow_origins is ['*'] on route /api, which injects an Authorization header",
        id="star-origins-with-injected-authorization"),
    pytest.param("""
        cors:
          allow_origins: ["*"]
        routes:
          - prefix: /a
            upstream: http://127.0.0.1:9000
            request_headers: {set: {authorization: "Bearer x"}}
          - prefix: /b
            upstream: http://127.0.0.1:9001
            request_headers: {set: {Authorization: "Bearer y"}}
        """, 2, "on routes /a, /b, which injects", id="file-default-star-names-both-routes"),
    pytest.param("""
        routes:
          - prefix: /api
            upstream: http://127.0.0.1:9000
            cors:
              allow_origin_regex: '.*'
        """, 5, "allow_origin_regex '.*' matches any origin", id="regex-matches-anything"),
    pytest.param("""
        routes:
          - prefix: /api
            upstream: http://127.0.0.1:9000
            cors:
              allow_origin_regex: 'https?://.+'
        """, 5, "matches any origin", id="regex-any-http-origin"),
    pytest.param("""
        routes:
          - prefix: /api
            upstream: https://api.example.com
            cors:
              allow_origins: [http://app.example.com, https://app.example.com]
              allow_credentials: true
        """, 5, "plain-http origin(s) http://app.example.com with allow_credentials: true on route /api",
        id="http-origin-credentials-https-upstream"),
    pytest.param("""
        server:
          allowed_hosts: ["*"]
        routes:
          - prefix: /api
            upstream: http://127.0.0.1:9000
        """, 1, "server.allowed_hosts is ['*']", id="allowed-hosts-star"),
    pytest.param("""
        cors:
          allow_origins: [http://localhost:5173]
          allow_credentials: true
        routes:
          - prefix: /api
            upstream: http://127.0.0.1:9000
            cors:
              allow_headers: ["*"]
        """, 8, "allow_headers is ['*'] on route /api, which allows credentials", id="star-headers-with-credentials"),
]


@pytest.mark.parametrize(("yaml_text", "line", "expect"), CASES)
def test_risk_is_warned(tmp_path: Path, yaml_text: str, line: int, expect: str) -> None:
    """Each risky setup yields one warning starting with the file:line to change."""
    warnings = risks_of(tmp_path, yaml_text)
    assert len(warnings) == 1, warnings
    assert warnings[0].startswith(f"{tmp_path / 'corsproxy.yaml'}:{line}: ")
    assert expect in warnings[0]


SAFE = [
    pytest.param("""
        routes:
          - prefix: /api
            upstream: http://127.0.0.1:9000
            request_headers: {set: {Authorization: "Bearer x"}}
            cors: {allow_origins: [http://localhost:3000]}
        """, id="listed-origins-with-authorization"),
    pytest.param("""
        routes:
          - prefix: /api
            upstream: http://127.0.0.1:9000
            request_headers: {set: {X-Api-Key: "k"}}
            cors: {allow_origins: ["*"]}
        """, id="star-without-authorization"),
    pytest.param(r"""
        routes:
          - prefix: /api
            upstream: http://127.0.0.1:9000
            cors: {allow_origin_regex: '^https://[a-z0-9-]+\.preview\.example\.com$'}
        """, id="anchored-regex"),
    pytest.param("""
        routes:
          - prefix: /api
            upstream: http://api.internal:8000
            cors: {allow_origins: [http://app.example.com], allow_credentials: true}
        """, id="http-upstream"),
    pytest.param("""
        server:
          allowed_hosts: [localhost, devbox.local]
        routes:
          - prefix: /api
            upstream: http://127.0.0.1:9000
        """, id="listed-hosts"),
    pytest.param("""
        routes:
          - prefix: /api
            upstream: http://127.0.0.1:9000
            cors: {allow_origins: [http://localhost:5173], allow_headers: ["*"]}
        """, id="star-headers-without-credentials"),
    pytest.param("""
        routes:
          - prefix: /api
            upstream: https://api.example.com/v1
            cors:
              allow_origins: [http://localhost:5173, "http://127.0.0.1:5173", "http://[::1]:5173"]
              allow_credentials: true
        """, id="loopback-http-origins-with-credentials-to-https"),
]


@pytest.mark.parametrize("yaml_text", SAFE)
def test_safe_setup_has_no_warning(tmp_path: Path, yaml_text: str) -> None:
    """Ordinary dev setups stay quiet (a warning nobody can act on trains people to ignore them)."""
    assert risks_of(tmp_path, yaml_text) == ()


def test_with_risks_fills_config_warnings(tmp_path: Path) -> None:
    """with_risks(config) is what the loader returns: its warnings are the risks."""
    path = tmp_path / "corsproxy.yaml"
    path.write_text('server: {allowed_hosts: ["*"]}\nroutes: [{prefix: /, upstream: "http://127.0.0.1:1"}]\n')
    loaded = config.load(path)
    assert with_risks(loaded).warnings == loaded.warnings + find_risks(loaded)
    assert len(with_risks(loaded).warnings) >= 1

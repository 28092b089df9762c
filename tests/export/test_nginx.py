"""`corsproxy export --to nginx`, proven on Debian's nginx: `nginx -t`, then nginx in front of
the recording stub, and the same requests through `corsproxy serve` on the same YAML."""

from __future__ import annotations

import re

import pytest
from hypothesis import given, seed

from tests.export import engines, matrix, suite
from tests.export.policies_strategy import policies

TARGET = "nginx"
TEMPLATE = (suite.POLICIES / "gateway.yaml").read_text()


def test_the_export_passes_nginx_t_inside_http(tmp_path, stub) -> None:
    """The file is valid for `include` inside `events {} http { }`: `nginx -t` passes."""
    yaml = suite.concrete(TEMPLATE, stub, tmp_path)
    engines.export(yaml, "nginx", tmp_path / "export.conf")
    result = engines.nginx_test(tmp_path, tmp_path / "export.conf")
    assert result.returncode == 0, result.stderr
    assert "test is successful" in result.stderr


def test_a_browser_decides_every_request_as_through_corsproxy(pair) -> None:
    """Every request of the matrix (origins, near-misses, preflights, statuses, 502, 504): the
    same browser verdict, no foreign origin reaching the API, the same CORS headers except the
    declared deviations, and every declared deviation seen at least once."""
    suite.assert_agrees(pair, matrix.probes(pair.config, matrix.gateway_paths) + matrix.hang_probes(pair.config)[:1],
                        minimum=250)


def _missing_always(text: str) -> str:
    # The classic bug: the API's 404/500 then lose Access-Control-Allow-Origin.
    return text.replace("add_header Access-Control-Allow-Origin $corsproxy_r1_allow_origin always;",
                        "add_header Access-Control-Allow-Origin $corsproxy_r1_allow_origin;", 1)


def _unanchored(text: str) -> str:
    # `...example\.com` without `$` also matches `...example.com.evil.test`.
    return re.sub(r'(\\\\\.com)\$" "1";', r'\1" "1";', text, count=1)


@pytest.mark.parametrize("plant", [_missing_always, _unanchored], ids=["missing-always", "unanchored-regex"])
def test_the_oracle_fails_on_a_planted_bug(plant, stub, tmp_path) -> None:
    """The hard gate is not vacuous: one `always` removed, or one regex unanchored, in the real
    export makes the oracle report a different verdict on the real nginx."""
    started = suite.start_gateway("nginx", suite.concrete(TEMPLATE, stub, tmp_path), tmp_path, stub, plant)
    try:
        outcome = started.gates(matrix.probes(started.config, matrix.gateway_paths))
    finally:
        started.stop()
    assert any(f.startswith("HARD") for f in outcome.failures), suite.report(outcome)


@seed(20261201)
@suite.RANDOM
@given(policy=policies())
def test_random_small_policies_agree_on_nginx(policy, stub, tmp_path_factory) -> None:
    """Small random policies (at most 3 routes, 3 origins, a regex from a safe grammar): nginx
    and corsproxy give every request of the matrix the same verdict and headers."""
    suite.random_policy_agrees("nginx", policy, stub, tmp_path_factory.mktemp("nginx-random"))


def test_the_engine_is_at_least_the_version_the_export_names() -> None:
    """The leading comment names the oldest version tried: the one here is not older."""
    from corsproxy.export import nginx
    assert engines.installed_version("nginx") >= engines.named_version(nginx.TESTED_ON)

"""`corsproxy export --to caddy`, proven on Debian's Caddy 2.6: `caddy validate`, then `caddy
run --adapter caddyfile` in front of the recording stub, and the same requests through
`corsproxy serve` on the same YAML."""

from __future__ import annotations

from tests.export import engines, matrix, suite

TARGET = "caddy"
TEMPLATE = (suite.POLICIES / "gateway.yaml").read_text()


def test_the_export_passes_caddy_validate(tmp_path, stub) -> None:
    """The file is a site block Caddy 2.6 accepts as it is (the test adds only `admin off`)."""
    yaml = suite.concrete(TEMPLATE, stub, tmp_path)
    engines.export(yaml, "caddy", tmp_path / "export.caddy")
    assert not (tmp_path / "export.caddy").read_text().lstrip().startswith("{"), "a global options block"
    result = engines.caddy_validate(tmp_path, tmp_path / "export.caddy")
    assert result.returncode == 0, result.stdout + result.stderr
    assert "Valid configuration" in result.stdout


def test_a_browser_decides_every_request_as_through_corsproxy(pair) -> None:
    """Every request of the matrix (origins, near-misses, preflights, statuses, 502, 504): the
    same browser verdict, no foreign origin reaching the API, the same CORS headers except the
    declared deviations, and every declared deviation seen at least once."""
    suite.assert_agrees(pair, matrix.probes(pair.config, matrix.gateway_paths) + matrix.hang_probes(pair.config)[:1],
                        minimum=250)


def test_the_engine_is_at_least_the_version_the_export_names() -> None:
    """The leading comment names the oldest version tried: the one here is not older."""
    from corsproxy.export import caddy
    assert engines.installed_version("caddy") >= engines.named_version(caddy.TESTED_ON)

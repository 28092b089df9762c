"""`corsproxy export --to starlette`, proven under uvicorn: `install(app)` on a recording stub
Starlette app (its unhandled exception is Starlette's own 500), and the same requests through
`corsproxy serve` in front of the Python stub."""

from __future__ import annotations

from hypothesis import given, seed

from tests.export import engines, matrix, suite
from tests.export.policies_strategy import policies

TARGET = "starlette"
TEMPLATE = (suite.POLICIES / "app.yaml").read_text()


def test_a_browser_decides_every_request_as_through_corsproxy(pair) -> None:
    """Every request of the matrix on the API's own paths (origins, near-misses, preflights,
    the API's 200/404 and Starlette's own 500): the same browser verdict, no foreign origin
    reaching the API, and the same CORS headers."""
    suite.assert_agrees(pair, matrix.probes(pair.config, matrix.app_paths), minimum=150)


@seed(20261201)
@suite.RANDOM
@given(policy=policies())
def test_random_small_policies_agree_on_starlette(policy, stub, tmp_path_factory) -> None:
    """Small random policies (at most 3 routes, 3 origins, a regex from a safe grammar):
    Starlette with the export and corsproxy agree on every request of the matrix."""
    suite.random_policy_agrees("starlette", policy, stub, tmp_path_factory.mktemp("starlette-random"))


def test_the_engine_is_at_least_the_version_the_export_names() -> None:
    """The leading comment names the oldest version tried: the one here is not older."""
    from corsproxy.export import starlette
    assert engines.installed_version("starlette") >= engines.named_version(starlette.TESTED_ON)

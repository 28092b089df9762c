"""`corsproxy export --to starlette`, proven under uvicorn: `install(app)` on a recording stub
Starlette app (its unhandled exception is Starlette's own 500), and the same requests through
`corsproxy serve` in front of the Python stub."""

from __future__ import annotations

import pytest
from hypothesis import HealthCheck, given, seed, settings

from tests.export import engines, matrix, suite
from tests.export.policies_strategy import policies
from tests.export.stub import Stub

TEMPLATE = (suite.POLICIES / "app.yaml").read_text()


@pytest.fixture(scope="module")
def stub():
    running = Stub()
    yield running
    running.stop()


@pytest.fixture(scope="module")
def pair(stub, tmp_path_factory):
    directory = tmp_path_factory.mktemp("starlette")
    started = suite.start_app("starlette", suite.concrete(TEMPLATE, stub, directory), directory, stub)
    yield started
    started.stop()


def test_a_browser_decides_every_request_as_through_corsproxy(pair) -> None:
    """Every request of the matrix on the API's own paths (origins, near-misses, preflights,
    the API's 200/404 and Starlette's own 500): the same browser verdict, no foreign origin
    reaching the API, and the same CORS headers."""
    pair.gates(matrix.probes(pair.config, matrix.app_paths))
    assert pair.outcome.failures == [], suite.report(pair.outcome)
    assert matrix.stale(pair.deviations, pair.outcome) == []
    assert pair.outcome.compared > 150


@seed(20261201)
@settings(max_examples=6, deadline=None, derandomize=True, database=None,
          suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow])
@given(policy=policies())
def test_random_small_policies_agree_on_starlette(policy, stub, tmp_path_factory) -> None:
    """Small random policies (at most 3 routes, 3 origins, a regex from a safe grammar):
    Starlette with the export and corsproxy agree on every request of the matrix."""
    directory = tmp_path_factory.mktemp("starlette-random")
    started = suite.start_app("starlette", suite.concrete(policy, stub, directory), directory, stub)
    try:
        outcome = started.gates(matrix.probes(started.config, matrix.app_paths))
    finally:
        started.stop()
    assert outcome.failures == [], policy + suite.report(outcome)


def test_the_engine_is_at_least_the_version_the_export_names() -> None:
    """The leading comment names the oldest version tried: the one here is not older."""
    from corsproxy.export import starlette
    assert engines.installed_version("starlette") >= engines.named_version(starlette.TESTED_ON)

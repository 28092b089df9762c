"""Fixtures of the engine suites: one recording stub and one engine + `corsproxy serve` pair per
module (each module names its TARGET and TEMPLATE), started once and stopped by pid."""

from __future__ import annotations

import pytest

from tests.export import suite
from tests.export.stub import Stub


@pytest.fixture(scope="module")
def stub():
    running = Stub()
    yield running
    running.stop()


@pytest.fixture(scope="module")
def pair(request, stub, tmp_path_factory):
    target, template = request.module.TARGET, request.module.TEMPLATE
    directory = tmp_path_factory.mktemp(target)
    start = suite.start_gateway if target in ("nginx", "caddy") else suite.start_app
    started = start(target, suite.concrete(template, stub, directory), directory, stub)
    yield started
    started.stop()

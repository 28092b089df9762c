"""`corsproxy export --to express`, proven on node with express 5 and cors (installed by `npm ci`
from tests/export/node/package-lock.json): the exported middleware mounted first in a recording
stub API, and the same requests through `corsproxy serve` in front of the Python stub."""

from __future__ import annotations

import json

from tests.export import engines, matrix, suite

TARGET = "express"
TEMPLATE = (suite.POLICIES / "app.yaml").read_text()


def test_the_tested_versions_are_the_locked_ones() -> None:
    """The versions the export's leading comment names are the ones the lockfile installs."""
    from corsproxy.export import express
    lock = json.loads((engines.NODE_DIR / "package-lock.json").read_text())["packages"]
    assert f"Express {lock['node_modules/express']['version']}" in express.TESTED_ON
    assert f"cors {lock['node_modules/cors']['version']}" in express.TESTED_ON


def test_a_browser_decides_every_request_as_through_corsproxy(pair) -> None:
    """Every request of the matrix on the API's own paths (origins, near-misses, preflights,
    the API's 200/404 and Express's own 500): the same browser verdict, no foreign origin
    reaching the API, and the same CORS headers."""
    suite.assert_agrees(pair, matrix.probes(pair.config, matrix.app_paths), minimum=150)

"""The pure core imports no I/O framework: the layering in docs/DESIGN.md holds."""

from __future__ import annotations

import ast
import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
PROBE = (
    "import corsproxy.cors, corsproxy.origins, corsproxy.routing, corsproxy.rewrite, corsproxy.browser, "
    "corsproxy.fetch_headers, corsproxy.fetch_request, corsproxy.remedies, corsproxy.risks; import sys; "
    "print(sorted(m for m in ('aiohttp','yaml','structlog','asyncio') if m in sys.modules))"
)


def test_pure_core_imports_no_io_framework() -> None:
    """Importing cors, origins, routing, rewrite, browser, fetch_headers, fetch_request, remedies and
    risks loads no aiohttp, yaml, structlog, asyncio."""
    paths = [str(ROOT), os.environ.get("PYTHONPATH", "")]
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(p for p in paths if p)}
    result = subprocess.run(
        [sys.executable, "-c", PROBE],
        capture_output=True, text=True, cwd=ROOT, env=env, timeout=60,
    )
    assert result.returncode == 0, result.stderr
    assert ast.literal_eval(result.stdout.strip()) == []

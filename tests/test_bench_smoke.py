"""The benchmark keeps working: a few-second smoke run of bench/run.py (figures are not judged)."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
pytestmark = pytest.mark.slow


def test_bench_smoke_measures_every_contender(tmp_path):
    """bench/run.py --smoke runs every scenario for every contender and writes its JSON."""
    result = subprocess.run([sys.executable, str(ROOT / "bench" / "run.py"), "--smoke", "--out", str(tmp_path)],
                            capture_output=True, text=True, timeout=300, cwd=ROOT)
    assert result.returncode == 0, result.stdout[-2000:] + result.stderr[-2000:]
    assert "corsproxy / nginx-proxy" in result.stdout
    [report] = tmp_path.glob("bench-*-smoke.json")
    results = json.loads(report.read_text())["results"]
    assert set(results) == {"direct", "nginx-proxy", "corsproxy", "no-inspector", "plain-aiohttp"}
    assert set(results["no-inspector"]) == {"small_get", "preflight"}
    corsproxy = results["corsproxy"]
    assert set(corsproxy) == {"small_get", "preflight", "download", "upload", "sse", "idle"}
    assert "errors" not in corsproxy["small_get"] and "errors" not in corsproxy["preflight"]
    assert corsproxy["download"]["MB_per_s"] > 0 and corsproxy["idle"]["KiB_per_idle_conn"] is not None


def test_stream_bench_keeps_rss_flat(tmp_path):
    """bench/stream.py streams 64 MiB each way through the proxy under its RSS limit."""
    result = subprocess.run([sys.executable, str(ROOT / "bench" / "stream.py"), "--mib", "64"],
                            capture_output=True, text=True, timeout=300, cwd=ROOT)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "ok: proxy peak RSS" in result.stdout

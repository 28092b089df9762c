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
    assert "figure (ratio to nginx-proxy)" in result.stdout and "targets (issue #15)" in result.stdout
    [report] = tmp_path.glob("bench-*-smoke.json")
    written = json.loads(report.read_text())
    results = written["results"]
    # cors-anywhere is a column only when npm could install it, and the run says so when not.
    node = {"cors-anywhere"} if "cors-anywhere left out" not in result.stdout else set()
    assert set(results) == {"direct", "nginx-proxy", "corsproxy", "corsproxy no-log", "no-inspector", "naive-aiohttp",
                            *node}
    assert {t["target"] for t in written["targets"] if t["met"] is None} == set()
    for name in ("corsproxy no-log", "no-inspector", "naive-aiohttp", *node):
        assert set(results[name]) == {"small_get", "preflight"}, name
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

"""What the four engine modules share: a policy file made concrete (the stub's address filled
in), the engine and `corsproxy serve` started on it, and the two gates run over the matrix."""

from __future__ import annotations

import itertools
import json
import urllib.request
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from hypothesis import HealthCheck, settings

from corsproxy import config as config_module
from corsproxy.export import export
from corsproxy.model import Config
from tests.export import engines, matrix
from tests.export.stub import Stub

POLICIES = Path(__file__).resolve().parent / "policies"
# Each pair tags its requests apart: the stub outlives a pair and remembers every id it saw.
_RUNS = itertools.count(1)


def concrete(template: str, stub: Stub, directory: Path, name: str = "policy.yaml") -> Path:
    """The policy with STUB (the stub API) and DEAD (a port nothing listens on) filled in."""
    path = directory / name
    path.write_text(template.replace("STUB", f"127.0.0.1:{stub.port}")
                    .replace("DEAD", f"127.0.0.1:{engines.free_port()}"))
    return path


@dataclass
class Pair:
    """An engine and `corsproxy serve` on the same YAML, and the gates' running tally."""

    target: str
    yaml: Path
    config: Config
    engine: engines.Running
    proxy: engines.Running
    engine_server: matrix.Server
    proxy_server: matrix.Server
    reached: Callable[[], set[str]]
    outcome: matrix.Outcome = field(default_factory=matrix.Outcome)

    @property
    def deviations(self):
        return export(self.config, self.target).deviations

    def gates(self, probes: list[matrix.Probe]) -> matrix.Outcome:
        return matrix.compare(probes, self.engine_server, self.proxy_server, self.reached, self.deviations,
                              self.outcome)

    def stop(self) -> None:
        for running in (self.engine, self.proxy):
            running.stop()


def start_gateway(target: str, yaml: Path, directory: Path, stub: Stub,
                  plant: Callable[[str], str] | None = None) -> Pair:
    """Export `yaml` for nginx or caddy (with a bug planted in the text when `plant` is given),
    start it and `corsproxy serve` on free ports."""
    engine_port, proxy_port = engines.free_port(), engines.free_port()
    out = directory / f"export.{target}"
    engines.export(yaml, target, out, "--listen", f"127.0.0.1:{engine_port}")
    if plant is not None:
        planted = plant(out.read_text())
        assert planted != out.read_text(), "the planted bug changed nothing"
        out.write_text(planted)
    engine = engines.nginx(directory, out, engine_port) if target == "nginx" else engines.caddy(directory, out, engine_port)
    try:
        proxy = engines.corsproxy(yaml, proxy_port, directory / "corsproxy.log")
    except BaseException:
        engine.stop()
        raise
    config = config_module.load(yaml)
    run = next(_RUNS)
    return Pair(target, yaml, config, engine, proxy, matrix.Server(target, engine_port, lambda p: p.path, f"e{run}"),
                matrix.Server("corsproxy", proxy_port, lambda p: p.path, f"c{run}"), lambda: set(stub.reached))


def start_app(target: str, yaml: Path, directory: Path, stub: Stub) -> Pair:
    """Export `yaml` for express or starlette, run it as the API (its own stub), and `corsproxy
    serve` in front of the Python stub."""
    engine_port, proxy_port = engines.free_port(), engines.free_port()
    out = directory / ("policy.js" if target == "express" else "exported_policy.py")
    engines.export(yaml, target, out)
    engine = (engines.express if target == "express" else engines.starlette)(out, engine_port, directory / f"{target}.log")
    try:
        proxy = engines.corsproxy(yaml, proxy_port, directory / "corsproxy.log")
    except BaseException:
        engine.stop()
        raise

    def reached() -> set[str]:
        with urllib.request.urlopen(f"http://127.0.0.1:{engine_port}/__stub/reached", timeout=10) as response:
            return set(json.load(response)) | stub.reached

    config = config_module.load(yaml)
    run = next(_RUNS)
    return Pair(target, yaml, config, engine, proxy, matrix.Server(target, engine_port, matrix.app_path, f"e{run}"),
                matrix.Server("corsproxy", proxy_port, lambda p: p.path, f"c{run}"), reached)


# Hypothesis: a fixed seed and a bounded example count (each example starts two processes).
RANDOM = settings(max_examples=6, deadline=None, derandomize=True, database=None,
                  suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow])


def assert_agrees(pair: Pair, probes: list[matrix.Probe], minimum: int) -> None:
    """Both gates over `probes`, and no declared deviation that never showed."""
    pair.gates(probes)
    assert pair.outcome.failures == [], report(pair.outcome)
    assert matrix.stale(pair.deviations, pair.outcome) == []
    assert pair.outcome.compared >= minimum


def random_policy_agrees(target: str, policy: str, stub: Stub, directory: Path) -> None:
    """One Hypothesis example: a fresh engine and corsproxy on `policy`, the whole matrix."""
    gateway = target in ("nginx", "caddy")
    start = start_gateway if gateway else start_app
    started = start(target, concrete(policy, stub, directory), directory, stub)
    try:
        outcome = started.gates(matrix.probes(started.config, matrix.gateway_paths if gateway else matrix.app_paths))
    finally:
        started.stop()
    assert outcome.failures == [], policy + report(outcome)


def report(outcome: matrix.Outcome, limit: int = 25) -> str:
    shown = "\n".join(f[:1500] for f in outcome.failures[:limit])
    more = len(outcome.failures) - limit
    return f"{len(outcome.failures)} of {outcome.compared} compared:\n{shown}" + (f"\n... and {more} more" if more > 0 else "")

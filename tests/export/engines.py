"""The real engines and `corsproxy serve`, as processes: started on free loopback ports, ready
when their port answers (a bounded wait), stopped by their pid. A missing engine fails the
test that needs it (`.ci/run` installs them); nothing here skips."""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
NODE_DIR = ROOT / "tests" / "export" / "node"
START_TIMEOUT = 20.0
STOP_TIMEOUT = 15.0


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def need(tool: str) -> str:
    """The path of an engine's executable; fails (never skips) when it is missing."""
    path = shutil.which(tool) or (f"/usr/sbin/{tool}" if Path(f"/usr/sbin/{tool}").exists() else None)
    assert path, f"{tool} is not installed: bash .ci/run installs it (apt-get install {tool})"
    return path


@dataclass
class Running:
    what: str
    process: subprocess.Popen
    port: int
    log: Path

    def stop(self, sig: int = signal.SIGTERM) -> None:
        """Signal the process by its pid; kill it, and fail, when it does not exit in time."""
        if self.process.poll() is None:
            self.process.send_signal(sig)
        try:
            self.process.wait(STOP_TIMEOUT)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait(STOP_TIMEOUT)
            raise AssertionError(f"{self.what} (pid {self.process.pid}) did not stop") from None

    def output(self) -> str:
        return self.log.read_text(errors="replace") if self.log.exists() else ""


def start(what: str, argv: list[str], port: int, log: Path, cwd: Path = ROOT,
          env: dict | None = None) -> Running:
    """Start `argv` and wait until 127.0.0.1:port accepts a connection."""
    with log.open("wb") as out:
        process = subprocess.Popen(argv, cwd=cwd, stdout=out, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                                   env={**os.environ, **(env or {})})
    running = Running(what, process, port, log)
    deadline = time.monotonic() + START_TIMEOUT
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise AssertionError(f"{what} exited with {process.returncode}:\n{running.output()}")
        try:
            socket.create_connection(("127.0.0.1", port), timeout=0.5).close()
            return running
        except OSError:
            time.sleep(0.05)   # polling a port: a bounded wait for a condition, not a sync sleep
    running.stop(signal.SIGKILL)
    raise AssertionError(f"{what} did not listen on {port} within {START_TIMEOUT:g} s:\n{running.output()}")


def run(argv: list[str], cwd: Path = ROOT, env: dict | None = None, timeout: float = 60) -> subprocess.CompletedProcess:
    return subprocess.run(argv, cwd=cwd, capture_output=True, text=True, timeout=timeout,
                          env={**os.environ, **(env or {})}, stdin=subprocess.DEVNULL)


# --- corsproxy ----------------------------------------------------------------------------------


def corsproxy(config: Path, port: int, log: Path) -> Running:
    return start("corsproxy serve", [sys.executable, "-m", "corsproxy", "serve", "-c", str(config),
                                     "--port", str(port), "--host", "127.0.0.1"], port, log)


def export(config: Path, target: str, out: Path, *extra: str) -> subprocess.CompletedProcess:
    result = run([sys.executable, "-m", "corsproxy", "export", "--to", target, "-c", str(config),
                  "-o", str(out), *extra])
    assert result.returncode == 0, result.stderr
    return result


# --- nginx --------------------------------------------------------------------------------------


def nginx_main_conf(directory: Path, include: Path) -> Path:
    """The smallest main file that includes an export, with every path inside `directory` (no
    root needed; as root, the workers keep root's user so they can read the test's temp dir)."""
    temp = directory / "temp"
    temp.mkdir(exist_ok=True)
    user = "user root root;\n" if os.geteuid() == 0 else ""
    paths = "".join(f"    {kind}_temp_path {temp / kind};\n"
                    for kind in ("client_body", "proxy", "fastcgi", "uwsgi", "scgi"))
    conf = directory / "nginx.conf"
    conf.write_text(f"{user}events {{}}\nhttp {{\n    access_log off;\n{paths}    include {include};\n}}\n")
    return conf


def nginx_args(directory: Path, conf: Path) -> list[str]:
    return [need("nginx"), "-p", str(directory), "-c", str(conf), "-e", str(directory / "error.log"),
            "-g", f"daemon off; pid {directory / 'nginx.pid'}; error_log {directory / 'error.log'};"]


def nginx_test(directory: Path, include: Path) -> subprocess.CompletedProcess:
    conf = nginx_main_conf(directory, include)
    return run([*nginx_args(directory, conf), "-t"])


def nginx(directory: Path, include: Path, port: int) -> Running:
    result = nginx_test(directory, include)
    assert result.returncode == 0, f"nginx -t failed:\n{result.stderr}"
    return start("nginx", nginx_args(directory, directory / "nginx.conf"), port, directory / "nginx.out")


# --- caddy --------------------------------------------------------------------------------------


def caddy_file(directory: Path, include: Path) -> Path:
    """The export imported under the test's own global options: no admin endpoint (parallel
    runs must not fight over :2019), nothing persisted outside `directory`."""
    wrapper = directory / "Caddyfile"
    wrapper.write_text(f"{{\n\tadmin off\n}}\n\nimport {include}\n")
    return wrapper


def caddy_env(directory: Path) -> dict:
    return {"HOME": str(directory), "XDG_DATA_HOME": str(directory / "data"),
            "XDG_CONFIG_HOME": str(directory / "config")}


def caddy_validate(directory: Path, include: Path) -> subprocess.CompletedProcess:
    wrapper = caddy_file(directory, include)
    return run([need("caddy"), "validate", "--adapter", "caddyfile", "--config", str(wrapper)],
               env=caddy_env(directory))


def caddy(directory: Path, include: Path, port: int) -> Running:
    result = caddy_validate(directory, include)
    assert result.returncode == 0, f"caddy validate failed:\n{result.stdout}{result.stderr}"
    return start("caddy", [need("caddy"), "run", "--adapter", "caddyfile", "--config", str(directory / "Caddyfile")],
                 port, directory / "caddy.out", env=caddy_env(directory))


# --- node + express, uvicorn + starlette --------------------------------------------------------


def express(module: Path, port: int, log: Path) -> Running:
    assert (NODE_DIR / "node_modules" / "express").is_dir(), \
        "express is not installed: bash .ci/run runs npm ci in tests/export/node"
    # The exported module lives in a temp dir: it finds express and cors through NODE_PATH.
    return start("node (express)", [need("node"), str(NODE_DIR / "app.js"), str(port), str(module)], port, log,
                 env={"NODE_PATH": str(NODE_DIR / "node_modules"), "NODE_ENV": "test"})


def starlette(module: Path, port: int, log: Path) -> Running:
    return start("uvicorn (starlette)", [sys.executable, "-m", "uvicorn", "--factory", "tests.export.starlette_app:make",
                                         "--host", "127.0.0.1", "--port", str(port), "--log-level", "warning"],
                 port, log, env={"CORSPROXY_EXPORTED": str(module)})


# --- versions -----------------------------------------------------------------------------------


def installed_version(target: str) -> tuple[int, ...]:
    """The version of the engine this machine runs, to hold the export's 'tested on' claim."""
    if target == "nginx":
        text = run([need("nginx"), "-v"]).stderr
    elif target == "caddy":
        text = run([need("caddy"), "version"]).stdout
    else:
        import starlette
        text = starlette.__version__
    return _numbers(text)


def named_version(tested_on: str) -> tuple[int, ...]:
    return _numbers(tested_on)


def _numbers(text: str) -> tuple[int, ...]:
    import re
    match = re.search(r"(\d+)\.(\d+)\.(\d+)", text)
    assert match, text
    return tuple(int(part) for part in match.groups())

"""`corsproxy ca`, `chrome-flags` and `browser`, run as a user runs them (the real CLI)."""

from __future__ import annotations

import asyncio
import json
import os
import signal
import socket
import stat
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
from cryptography import x509

from tests.intercept_env import intercept_yaml, start_third_party
from tests.processes import Output, stop_process

ROOT = Path(__file__).resolve().parents[2]
HOSTS_YAML = textwrap.dedent("""\
    intercept:
      listen: 127.0.0.1:0
      hosts:
        - host: api.thirdparty.test
        - host: cdn.thirdparty.test
    """)


@pytest.fixture
def user(tmp_path) -> dict:
    """An environment whose $XDG_DATA_HOME is outside the project folder below."""
    (tmp_path / "project").mkdir()
    return {**os.environ, "XDG_DATA_HOME": str(tmp_path / "data")}


def corsproxy(*args: str, env: dict, cwd: Path, timeout: float = 30) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "corsproxy", *args], env=env, cwd=cwd, capture_output=True,
                          text=True, timeout=timeout)


def test_ca_init_writes_a_private_key_and_a_constrained_ca(tmp_path, user) -> None:
    """ca init: directory 0700, key 0600, the CA permitting exactly the config's hosts."""
    project = tmp_path / "project"
    (project / "c.yaml").write_text(HOSTS_YAML)
    done = corsproxy("ca", "init", "-c", "c.yaml", env=user, cwd=project)
    assert done.returncode == 0, done.stderr
    store = tmp_path / "data" / "corsproxy"
    assert stat.S_IMODE(store.stat().st_mode) == 0o700
    assert stat.S_IMODE((store / "ca-key.pem").stat().st_mode) == 0o600
    ca = x509.load_pem_x509_certificate((store / "ca.pem").read_bytes())
    constraints = ca.extensions.get_extension_for_class(x509.NameConstraints)
    assert constraints.critical
    assert [s.value for s in constraints.value.permitted_subtrees] == ["api.thirdparty.test", "cdn.thirdparty.test"]
    assert list(project.iterdir()) == [project / "c.yaml"]  # nothing written into the project
    again = corsproxy("ca", "init", "-c", "c.yaml", env=user, cwd=project)
    assert again.returncode == 1 and "already exists" in again.stderr


def test_ca_init_refuses_a_store_inside_the_project(tmp_path, user) -> None:
    """A $XDG_DATA_HOME inside the repository is refused: the key could be committed."""
    project = tmp_path / "project"
    (project / ".git").mkdir()
    (project / "c.yaml").write_text(HOSTS_YAML)
    done = corsproxy("ca", "init", "-c", "c.yaml", env={**user, "XDG_DATA_HOME": str(project / ".data")}, cwd=project)
    assert done.returncode == 1
    assert "must never be in a project tree" in done.stderr
    assert not (project / ".data").exists()


def test_a_key_readable_by_others_is_refused(tmp_path, user) -> None:
    """ca show (and serve with ca: persistent) refuse a key whose mode lets others read it."""
    project = tmp_path / "project"
    (project / "c.yaml").write_text(HOSTS_YAML)
    assert corsproxy("ca", "init", "-c", "c.yaml", env=user, cwd=project).returncode == 0
    key = tmp_path / "data" / "corsproxy" / "ca-key.pem"
    key.chmod(0o644)
    shown = corsproxy("ca", "show", env=user, cwd=project)
    assert shown.returncode == 1 and f"chmod 600 {key}" in shown.stderr
    (project / "c.yaml").write_text(HOSTS_YAML.replace("  listen:", "  ca: persistent\n  listen:"))
    served = corsproxy("serve", "-c", "c.yaml", "--port", "0", env=user, cwd=project)
    assert served.returncode == 2 and "readable by others" in served.stderr


def test_check_warns_when_the_persistent_ca_does_not_permit_a_host(tmp_path, user) -> None:
    """A host added after `ca init` is named by check (exit 0) with the fix."""
    project = tmp_path / "project"
    (project / "c.yaml").write_text(HOSTS_YAML)
    assert corsproxy("ca", "init", "-c", "c.yaml", env=user, cwd=project).returncode == 0
    (project / "c.yaml").write_text(HOSTS_YAML.replace("  listen:", "  ca: persistent\n  listen:")
                                    + "    - host: new.example\n")
    checked = corsproxy("check", "-c", "c.yaml", env=user, cwd=project)
    assert checked.returncode == 0
    assert ("warning: c.yaml:7: the persistent CA in " in checked.stdout
            and "does not permit new.example" in checked.stdout), checked.stdout
    assert corsproxy("ca", "remove", env=user, cwd=project).returncode == 0
    assert not (tmp_path / "data" / "corsproxy").exists()


async def test_chrome_flags_read_the_running_listener(spawn, tmp_path, aiohttp_server) -> None:
    """chrome-flags prints the PAC URL and the SPKI of the CA the running listener serves."""
    party = await start_third_party(tmp_path, aiohttp_server)
    (tmp_path / "c.yaml").write_text(intercept_yaml(party))
    proxy = await spawn("serve", "-c", str(tmp_path / "c.yaml"), "--port", "0")
    line = (await proxy.stdout.until(b"\n", 15)).decode().strip()
    url, spki = line.split(" on ")[1].split(" (CA SPKI sha256: ")
    done = await asyncio.to_thread(corsproxy, "chrome-flags", "--url", url, env=dict(os.environ), cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    assert done.stdout.split() == [f"--proxy-pac-url={url}/proxy.pac",
                                   f"--ignore-certificate-errors-spki-list={spki.rstrip(')')}"]


FAKE_CHROMIUM = """\
#!{python}
import json, os, sys, time, urllib.request
args = sys.argv[1:]
pac = next(a.split("=", 1)[1] for a in args if a.startswith("--proxy-pac-url="))
profile = next(a.split("=", 1)[1] for a in args if a.startswith("--user-data-dir="))
with urllib.request.urlopen(pac, timeout=5) as response:   # the listener is up already
    body = response.read().decode()
json.dump({{"args": args, "pac_ok": "FindProxyForURL" in body, "profile_existed": os.path.isdir(profile)}},
          open({record!r}, "w"))
time.sleep(float(os.environ.get("FAKE_CHROMIUM_SECONDS", "0")))
"""


def fake_chromium(tmp_path: Path) -> tuple[Path, Path]:
    record = tmp_path / "chromium-args.json"
    script = tmp_path / "chromium"
    script.write_text(FAKE_CHROMIUM.format(python=sys.executable, record=str(record)))
    script.chmod(0o755)
    return script, record


def port_is_closed(port: int) -> bool:
    with socket.socket() as probe:
        return probe.connect_ex(("127.0.0.1", port)) != 0


async def run_browser(tmp_path, aiohttp_server, seconds: str):
    party = await start_third_party(tmp_path, aiohttp_server)
    with socket.socket() as free:
        free.bind(("127.0.0.1", 0))
        main_port = free.getsockname()[1]
    yaml_text = intercept_yaml(party).replace("routes: []", f"routes: []\nserver: {{port: {main_port}}}")
    (tmp_path / "c.yaml").write_text(yaml_text)
    script, record = fake_chromium(tmp_path)
    process = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "corsproxy", "browser", "http://localhost:3000", "-c", str(tmp_path / "c.yaml"),
        env={**os.environ, "CHROMIUM": str(script), "FAKE_CHROMIUM_SECONDS": seconds}, cwd=ROOT,
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE)
    return process, record, main_port, Output(process.stdout), Output(process.stderr)


def assert_launched_as_promised(record: Path) -> list[str]:
    launched = json.loads(record.read_text())
    args = launched["args"]
    assert launched["pac_ok"] and launched["profile_existed"]
    assert args[-1] == "http://localhost:3000"
    assert any(a.startswith("--ignore-certificate-errors-spki-list=") for a in args)
    assert "--ignore-certificate-errors" not in args
    profile = next(a.split("=", 1)[1] for a in args if a.startswith("--user-data-dir="))
    assert not Path(profile).exists()  # deleted on exit
    return args


async def test_browser_starts_chromium_after_the_listener_and_cleans_up(tmp_path, aiohttp_server) -> None:
    """corsproxy browser: PAC reachable when Chromium starts, SPKI pin, profile deleted and proxy
    stopped when the browser closes."""
    process, record, main_port, stdout, stderr = await run_browser(tmp_path, aiohttp_server, "0")
    try:
        assert await asyncio.wait_for(process.wait(), 60) == 0, stderr.text()
    finally:
        await stop_process(process, "corsproxy browser", signal.SIGKILL)
    assert "corsproxy intercepting" in stdout.text()
    assert_launched_as_promised(record)
    assert port_is_closed(main_port)


async def test_browser_stops_both_on_ctrl_c(tmp_path, aiohttp_server) -> None:
    """Ctrl-C (SIGINT) stops the browser and the proxy and deletes the profile."""
    process, record, main_port, stdout, stderr = await run_browser(tmp_path, aiohttp_server, "60")
    try:
        async with asyncio.timeout(30):
            while not record.exists():
                await asyncio.sleep(0.1)
        assert await stop_process(process, "corsproxy browser", signal.SIGINT) == 0, stderr.text()
    finally:
        await stop_process(process, "corsproxy browser", signal.SIGKILL)
    assert_launched_as_promised(record)
    assert port_is_closed(main_port)

"""The `intercept:` block: validated like the rest (file:line, key, hint), and what it becomes."""

from __future__ import annotations

import re
import textwrap
from pathlib import Path

import pytest

from corsproxy import config
from corsproxy.config.risks import find_risks
from corsproxy.errors import ConfigError

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture(autouse=True)
def in_tmp(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)  # messages then name "c.yaml", as the user wrote -c c.yaml


def load(tmp_path: Path, text: str):
    (tmp_path / "c.yaml").write_text(textwrap.dedent(text).lstrip("\n"))
    return config.load("c.yaml", env={})


def problems(tmp_path: Path, text: str) -> list[str]:
    with pytest.raises(ConfigError) as refused:
        load(tmp_path, text)
    return [str(problem) for problem in refused.value.problems]


def block(hosts: str, head: str = "") -> str:
    return "intercept:\n" + textwrap.indent(textwrap.dedent(head), "  ") + "  hosts:\n" + \
        textwrap.indent(textwrap.dedent(hosts), "    ")


CASES = [
    pytest.param(block("- host: '*.thirdparty.com'\n"), 3, "intercept.hosts[0].host", "a wildcard is not allowed",
                 id="wildcard"),
    pytest.param(block("- host: 10.0.0.1\n"), 3, "intercept.hosts[0].host", "an IP address is not allowed",
                 id="ipv4-literal"),
    pytest.param(block("- host: '::1'\n"), 3, "intercept.hosts[0].host", "an IP address is not allowed",
                 id="ipv6-literal"),
    pytest.param(block("- host: 'api.example.com/v1'\n"), 3, "intercept.hosts[0].host", "not a DNS host name",
                 id="not-a-name"),
    pytest.param(block("- host: a.test\n- host: A.test\n"), 4, "intercept.hosts[1].host",
                 "a.test:443 is listed twice, also at c.yaml:3", id="duplicate-host"),
    pytest.param(block("- {host: a.test, paths: [v1]}\n"), 3, "intercept.hosts[0].paths[0]",
                 "prefix 'v1' must start with '/'", id="path-without-slash"),
    pytest.param(block("- {host: a.test, connect_to: 'localhost'}\n"), 3, "intercept.hosts[0].connect_to",
                 "has no usable port", id="connect-to-without-port"),
    pytest.param(block("- {host: a.test, ca_file: missing.pem}\n"), 3, "intercept.hosts[0].ca_file",
                 "cannot use", id="missing-ca-file"),
    pytest.param(block("- {host: a.test, cors: {alow_origins: []}}\n"), 3, "intercept.hosts[0].cors.alow_origins",
                 "unknown key (did you mean 'allow_origins'?)", id="cors-typo"),
    pytest.param(block("- {host: a.test, prot: 443}\n"), 3, "intercept.hosts[0].prot",
                 "unknown key (did you mean 'port'?)", id="host-key-typo"),
    pytest.param(block("- host: a.test\n", "ca: forever\n"), 2, "intercept.ca", "expected ephemeral or persistent",
                 id="unknown-ca"),
    pytest.param(block("- host: a.test\n", "listen: 8081\n"), 2, "intercept.listen", "8081 is a port without a host",
                 id="listen-without-host"),
    pytest.param("intercept:\n  listen: 127.0.0.1:8081\n", 1, "intercept.hosts", "expected a list of hosts",
                 id="no-hosts"),
    pytest.param(block("- {host: a.test, cors: {allow_origins: ['*'], allow_credentials: true}}\n"), 3,
                 "intercept.hosts[0].cors", "cannot allow every origin and send credentials",
                 id="credentialed-wildcard"),
]


@pytest.mark.parametrize(("text", "line", "key", "message"), CASES)
def test_intercept_rule_reports_file_line_key_and_message(tmp_path, text, line, key, message) -> None:
    """Each intercept rule refuses its violation with file:line, the dotted key and why."""
    found = problems(tmp_path, text)
    assert any(p.startswith(f"c.yaml:{line}: {key}") and message in p for p in found), found


def test_two_files_with_an_intercept_block_are_refused(tmp_path) -> None:
    """One listener: a second file's intercept block is refused naming the first."""
    (tmp_path / "a.yaml").write_text(block("- host: a.test\n"))
    (tmp_path / "b.yaml").write_text(block("- host: b.test\n"))
    with pytest.raises(ConfigError) as refused:
        config.load(tmp_path, env={})
    assert [str(p) for p in refused.value.problems] == [
        f"{tmp_path}/b.yaml:1: intercept: the intercept block is also set in {tmp_path}/a.yaml:1 "
        "(at most one file of a directory may set intercept; move its hosts into one file)"]


def test_defaults_and_what_the_block_becomes(tmp_path) -> None:
    """listen 127.0.0.1:8081, ephemeral CA, port 443, paths [/]; the file's cors defaults apply."""
    loaded = load(tmp_path, """
        cors: {allow_origins: [http://localhost:3000]}
        intercept:
          hosts:
            - host: API.Thirdparty.test
        """)
    intercept = loaded.intercept
    assert (intercept.listen_host, intercept.listen_port, intercept.ca) == ("127.0.0.1", 8081, "ephemeral")
    (entry,) = intercept.hosts
    assert (entry.host, entry.port, [r.prefix for r in entry.routes]) == ("api.thirdparty.test", 443, ["/"])
    assert entry.routes[0].cors.allow_origins == frozenset({"http://localhost:3000"})
    assert entry.routes[0].transparent and entry.routes[0].applies_cors


def test_listed_paths_get_the_policy_and_the_rest_passes_through(tmp_path) -> None:
    """Each listed path is a CORS route; "/" is added to pass the host's other paths through."""
    entry = load(tmp_path, block("- {host: a.test, port: 8443, paths: [/v1/widget/, /v2]}\n")).intercept.hosts[0]
    assert [(r.prefix, r.applies_cors) for r in entry.routes] == [("/v1/widget", True), ("/v2", True), ("/", False)]
    assert entry.routes[0].upstream.origin == "https://a.test:8443"


def test_connect_to_and_ca_file_are_relative_to_the_config_folder(tmp_path) -> None:
    """ca_file is found next to the config file, whatever the current directory."""
    folder = tmp_path / "conf"
    folder.mkdir()
    from tests.intercept_env import write_test_pki
    ca, _, _ = write_test_pki(folder)
    path = folder / "c.yaml"
    path.write_text(block(f"- {{host: a.test, connect_to: '127.0.0.1:9443', ca_file: ./{ca.name}}}\n"))
    route = config.load(path, env={}).intercept.hosts[0].routes[0]
    assert route.connect_to == ("127.0.0.1", 9443)
    assert route.ca_file == str(folder / ca.name)


def test_listen_port_zero_is_a_free_port(tmp_path) -> None:
    """listen: 127.0.0.1:0 is allowed (the banner prints the real port)."""
    assert load(tmp_path, block("- host: a.test\n", "listen: 127.0.0.1:0\n")).intercept.listen_port == 0


def test_non_loopback_listen_is_allowed_when_written_and_warned(tmp_path) -> None:
    """An explicit 0.0.0.0 loads, and check warns at its line."""
    loaded = load(tmp_path, block("- host: a.test\n", "listen: 0.0.0.0:8081\n"))
    assert any(re.match(r"c\.yaml:1: intercept\.listen is 0\.0\.0\.0, not a loopback address", w)
               for w in find_risks(loaded))
    assert not find_risks(load(tmp_path, block("- host: a.test\n", "listen: '[::1]:8081'\n")))


def test_bundled_example_block_is_valid(tmp_path) -> None:
    """The commented intercept example of config/corsproxy.yaml loads once uncommented."""
    text = (ROOT / "config" / "corsproxy.yaml").read_text()
    example = text[text.index("# intercept:"):]
    lines = [line[2:] for line in example.splitlines() if line.startswith("# ") or line == "#"]
    from tests.intercept_env import write_test_pki
    ca, _, _ = write_test_pki(tmp_path)
    ca.rename(tmp_path / "staging-ca.pem")
    loaded = load(tmp_path, "\n".join(lines))
    assert [h.host for h in loaded.intercept.hosts] == ["api.thirdparty.com"]

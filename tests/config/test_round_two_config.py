"""Hardening, round two (issue #16) at load: what a config file can no longer do to the proxy."""

from __future__ import annotations

import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
import structlog

from corsproxy import config
from corsproxy.errors import ConfigError
from corsproxy.server.app import build_app, STATE
from corsproxy.server.reload import ConfigSource, Reloader

ROOT = Path(__file__).resolve().parents[2]
GOOD = """\
cors:
  allow_origins: [http://localhost:3000]
routes:
  - prefix: /api
    upstream: http://127.0.0.1:9/v1
"""


def bomb(levels: int = 10, width: int = 4) -> str:
    """A few hundred bytes of nested aliases that expand to width**levels strings (4**10: a
    million), under a key that takes a list, so nothing but the expansion is wrong with it."""
    anchors = [f"  - &x0 [{', '.join(['Content-Type'] * width)}]"]
    anchors += [f"  - &x{i} [{', '.join([f'*x{i - 1}'] * width)}]" for i in range(1, levels)]
    return ("cors:\n  allow_origins: [http://localhost:3000]\n  allow_headers:\n"
            + "\n".join(anchors) + "\n")


def run_cli(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "corsproxy", *args], cwd=ROOT, capture_output=True,
                          text=True, timeout=60)


# --- 4. YAML alias expansion is bounded --------------------------------------------------------


def test_alias_bomb_is_refused_with_file_and_line(tmp_path: Path) -> None:
    """Nested aliases past the node limit are refused at the line of the alias that passes it."""
    path = tmp_path / "bomb.yaml"
    path.write_text(bomb())
    with pytest.raises(ConfigError) as caught:
        config.load(path)
    (problem,) = caught.value.problems
    assert (problem.file, problem.line) == (str(path), 12)     # x8: 4**9 nodes, the first too many
    assert "expands to more than" in problem.message


@pytest.mark.parametrize("command", ["check", "serve"])
def test_alias_bomb_exits_2_for_check_and_serve(tmp_path: Path, command: str) -> None:
    """`check` and `serve` refuse the bomb with exit 2 and file:line, no traceback."""
    path = tmp_path / "bomb.yaml"
    path.write_text(bomb())
    result = run_cli(command, "-c", str(path), *(["--port", "0"] if command == "serve" else []))
    assert result.returncode == 2
    assert f"{path}:12:" in result.stderr and "expands to more than" in result.stderr
    assert "Traceback" not in result.stderr


async def test_alias_bomb_in_a_watched_directory_is_refused_by_reload(tmp_path: Path) -> None:
    """A teammate's bomb in a watched directory is refused by reload; the last good config stays."""
    (tmp_path / "a.yaml").write_text(GOOD)
    source = ConfigSource.at(tmp_path, lambda: config.load(tmp_path))
    app = build_app(source.load())
    before = app[STATE].current
    (tmp_path / "b.yaml").write_text(bomb())
    with structlog.testing.capture_logs() as logged:
        assert await Reloader(app[STATE], source).reload("test") is False
    assert app[STATE].current is before
    refused = [entry["why"] for entry in logged if entry["event"] == "reload refused"]
    assert refused == [f"{tmp_path / 'b.yaml'}:12: this value expands to more than 200,000 YAML nodes "
                       "through aliases (*name) (write the values out, or repeat an alias fewer times; "
                       "a config never needs this many)"]


def test_ordinary_anchors_and_merge_keys_still_load(tmp_path: Path) -> None:
    """Anchors, aliases and merge keys of an ordinary size keep working."""
    path = tmp_path / "c.yaml"
    path.write_text(textwrap.dedent("""\
        x-cors: &cors {allow_origins: [http://localhost:3000], allow_credentials: true}
        routes:
          - {prefix: /a, upstream: "http://127.0.0.1:9", cors: *cors}
          - {prefix: /b, upstream: "http://127.0.0.1:9", cors: {<<: *cors, max_age: 5}}
        """).replace("x-cors", "cors"))
    loaded = config.load(path)
    assert [route.cors.allow_credentials for route in loaded.routes] == [True, True]


# --- 5. allow_origin_regex is RE2: linear time, Python-only syntax refused ----------------------


@pytest.mark.parametrize("regex", [
    pytest.param(r"^https://(?!evil)[a-z]+\.example\.com$", id="lookahead"),
    pytest.param(r"^https://(?<=x)[a-z]+\.example\.com$", id="lookbehind"),
    pytest.param(r"^https://([a-z]+)\.\1\.example\.com$", id="backreference"),
    pytest.param(r"^https://[a-z]++\.example\.com$", id="possessive"),
])
def test_python_only_regex_syntax_is_refused_with_a_hint(tmp_path: Path, regex: str) -> None:
    """A regex RE2 cannot run in linear time is refused at load: file:line, key and the RE2 hint."""
    path = tmp_path / "r.yaml"
    path.write_text(f"cors:\n  allow_origins: [http://localhost:3000]\n  allow_origin_regex: '{regex}'\n")
    result = run_cli("check", "-c", str(path))
    assert result.returncode == 2
    assert f"{path}:3: cors.allow_origin_regex: this regex uses syntax RE2 does not have" in result.stderr
    assert "lookarounds" in result.stderr
    assert "Error parsing" not in result.stderr     # RE2's own stderr logging is off


# --- 12. an upstream base path that would mangle the request line -----------------------------


@pytest.mark.parametrize("upstream", [
    pytest.param('"http://127.0.0.1:9/v1\\r\\nX-Injected: 1"', id="crlf"),
    pytest.param('"http://127.0.0.1:9/v1 HTTP/1.0"', id="space"),
    pytest.param('"http://127.0.0.1:9/v1\\tx"', id="tab"),
    pytest.param('"http://127.0.0.1:9/caf\\u00e9"', id="non-ascii"),
    pytest.param('"http://127.0.0.1:9/bot${BOT_TOKEN}"', id="from-a-variable"),
])
def test_upstream_with_space_or_control_character_is_refused(tmp_path: Path, upstream: str) -> None:
    """An upstream with CR/LF, a space, a tab or non-ASCII (typed or from ${VAR}) is refused at
    load with file:line and key, and the value is not echoed (it may hold a secret)."""
    path = tmp_path / "u.yaml"
    path.write_text(f"routes:\n  - prefix: /api\n    upstream: {upstream}\n")
    with pytest.raises(ConfigError) as caught:
        config.load(path, env={"BOT_TOKEN": "12:ab cd\r\nX: y"})
    (problem,) = caught.value.problems
    assert (problem.line, problem.key) == (3, "routes[0].upstream")
    assert "would mangle the request line" in problem.message
    assert "12:ab" not in str(problem)


# --- 8. a teammate's file taking over another's paths; who reads which ${VAR} ------------------


def test_prefix_under_another_files_prefix_is_warned_naming_both_files(tmp_path: Path) -> None:
    """`/orders/v2` in one file shadowing `/orders` of another is a warning naming both files;
    nested prefixes within one file, and the catch-all `/`, are not."""
    (tmp_path / "orders.yaml").write_text("routes:\n  - {prefix: /orders, upstream: 'http://127.0.0.1:9/o'}\n"
                                          "  - {prefix: /orders/admin, upstream: 'http://127.0.0.1:9/a'}\n")
    (tmp_path / "root.yaml").write_text("routes:\n  - {prefix: /, upstream: 'http://127.0.0.1:9/r'}\n")
    (tmp_path / "web.yaml").write_text("routes:\n  - {prefix: /orders/v2, upstream: 'http://127.0.0.1:9/w'}\n")
    warnings = [w for w in config.load(tmp_path).warnings if "takes over" in w]
    assert warnings == [
        f"{tmp_path / 'web.yaml'}:2: prefix /orders/v2 takes over /orders/v2/* from route /orders of "
        f"{tmp_path / 'orders.yaml'} ({tmp_path / 'orders.yaml'}:2): those requests now go to "
        "http://127.0.0.1:9/w instead of http://127.0.0.1:9/o; if that is not meant, change one of the "
        "two prefixes"]


async def test_reload_logs_the_takeover(tmp_path: Path) -> None:
    """A file that takes over another file's paths on hot reload is named in the reload log."""
    (tmp_path / "orders.yaml").write_text("routes:\n  - {prefix: /orders, upstream: 'http://127.0.0.1:9/o'}\n")
    source = ConfigSource.at(tmp_path, lambda: config.load(tmp_path))
    app = build_app(source.load())
    (tmp_path / "web.yaml").write_text("routes:\n  - {prefix: /orders/v2, upstream: 'http://127.0.0.1:9/w'}\n")
    with structlog.testing.capture_logs() as logged:
        assert await Reloader(app[STATE], source).reload("test") is True
    said = [entry["why"] for entry in logged if entry["event"] == "config warning"]
    assert any("web.yaml:2: prefix /orders/v2 takes over" in why and "orders.yaml" in why for why in said)


def test_check_lists_which_file_reads_which_variable(tmp_path: Path) -> None:
    """`check` says which file reads which ${VAR}, by name only."""
    (tmp_path / "a.yaml").write_text('routes:\n  - prefix: /a\n    upstream: "http://127.0.0.1:9/${A_PATH:-a}"\n'
                                     '    request_headers: {set: {Authorization: "Bearer ${A_TOKEN}"}}\n')
    (tmp_path / "b.yaml").write_text("routes:\n  - {prefix: /b, upstream: 'http://127.0.0.1:9/b'}\n")
    result = subprocess.run([sys.executable, "-m", "corsproxy", "check", "-c", str(tmp_path)], cwd=ROOT,
                            capture_output=True, text=True, timeout=60, env={"A_TOKEN": "tok-123", "PATH": ""})
    assert result.returncode == 0, result.stderr
    assert f"variables: {tmp_path / 'a.yaml'} reads ${{A_PATH}}, ${{A_TOKEN}}" in result.stdout
    assert "b.yaml reads" not in result.stdout and "tok-123" not in result.stdout


# --- 9. a secret interpolated into upstream: is shown as ${VAR} --------------------------------

SECRET_UPSTREAM = 'routes:\n  - prefix: /bot\n    upstream: "http://127.0.0.1:9/bot${BOT_TOKEN}"\n'
SECRET = "123456:AAHsecretTOKEN"


def test_check_shows_the_variable_not_the_secret(tmp_path: Path) -> None:
    """`check` prints `upstream: .../bot${BOT_TOKEN}`, never the token."""
    path = tmp_path / "bot.yaml"
    path.write_text(SECRET_UPSTREAM)
    result = subprocess.run([sys.executable, "-m", "corsproxy", "check", "-c", str(path)], cwd=ROOT,
                            capture_output=True, text=True, timeout=60, env={"BOT_TOKEN": SECRET, "PATH": ""})
    assert result.returncode == 0, result.stderr
    assert "http://127.0.0.1:9/bot${BOT_TOKEN}" in result.stdout
    assert SECRET not in result.stdout + result.stderr

"""Heavy dependencies load only when the config uses them (idle memory), and say so clearly when
they cannot load."""

from __future__ import annotations

import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
BUNDLED = ROOT / "config" / "corsproxy.yaml"
INTERCEPT = """\
cors:
  allow_origins: [http://localhost:3000]
routes: []
intercept:
  listen: 127.0.0.1:0
  hosts:
    - host: api.thirdparty.test
      paths: [/v1]
"""
REGEX = """\
cors:
  allow_origin_regex: '^http://localhost:[0-9]+$'
routes:
  - prefix: /api
    upstream: http://127.0.0.1:9
"""
# `corsproxy serve` through the CLI; once it is ready it prints which of the heavy modules it
# holds and stops itself with SIGTERM, as a user would.
SERVE_AND_REPORT = textwrap.dedent("""\
    import os, signal, sys
    from corsproxy import cli
    from corsproxy.server import serve

    def ready(url, bound):
        print(" ".join(m for m in ("cryptography", "re2") if m in sys.modules) or "none", flush=True)
        os.kill(os.getpid(), signal.SIGTERM)

    serve._print_ready = ready
    sys.exit(cli.main(["serve", "-c", sys.argv[1], "--port", "0", "--log-level", "warning"]))
    """)
# The CLI with a module made unimportable (None in sys.modules makes `import` raise ImportError).
WITHOUT = "import sys; sys.modules[sys.argv[1]] = None; from corsproxy.cli import main; sys.exit(main(sys.argv[2:]))"


def run(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-c", *args], capture_output=True, text=True, timeout=60, cwd=ROOT)


@pytest.mark.parametrize(("text", "loaded"), [(None, "none"), (INTERCEPT, "cryptography"), (REGEX, "re2")],
                         ids=["bundled config", "intercept block", "allow_origin_regex"])
def test_serve_loads_cryptography_and_re2_only_for_the_config_that_uses_them(tmp_path, text, loaded) -> None:
    """A running proxy holds cryptography only with an intercept block and re2 only with a regex."""
    path = BUNDLED
    if text is not None:
        path = tmp_path / "c.yaml"
        path.write_text(text)
    done = run(SERVE_AND_REPORT, str(path))
    assert done.returncode == 0, done.stderr
    assert done.stdout.splitlines()[0] == loaded, done.stderr  # the intercept line may follow


def test_an_intercept_block_without_cryptography_is_one_clear_line_and_exit_2(tmp_path) -> None:
    """serve names the missing package and the fix, with no traceback."""
    (tmp_path / "c.yaml").write_text(INTERCEPT)
    done = run(WITHOUT, "cryptography", "serve", "-c", str(tmp_path / "c.yaml"), "--port", "0")
    assert done.returncode == 2
    assert "the intercept CA needs the 'cryptography' package" in done.stderr
    assert "pip install corsproxy" in done.stderr and "Traceback" not in done.stderr


def test_the_ca_command_without_cryptography_says_what_is_missing(tmp_path) -> None:
    """`corsproxy ca show` reports the missing package as its error, not a traceback."""
    done = run(WITHOUT, "cryptography", "ca", "show")
    assert done.returncode == 1
    assert "corsproxy ca: the intercept CA needs the 'cryptography' package" in done.stderr
    assert "Traceback" not in done.stderr


def test_a_regex_without_re2_is_a_config_problem_with_file_and_line(tmp_path) -> None:
    """check refuses the regex at its line, naming the package, and exits 2."""
    (tmp_path / "c.yaml").write_text(REGEX)
    done = run(WITHOUT, "re2", "check", "-c", str(tmp_path / "c.yaml"))
    assert done.returncode == 2
    assert "c.yaml:2: cors.allow_origin_regex: the regex needs the 'google-re2' package" in done.stderr
    assert "Traceback" not in done.stderr

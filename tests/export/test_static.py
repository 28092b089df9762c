"""Review of the exported text, without running an engine: the static checks (anchored regexes,
no `*` with credentials, nginx `always` and no `add_header` inside `if`) pass on every export and
fail on a planted bug; the output is deterministic and matches the golden files; the command's
refusals and warnings are as the contract says."""

from __future__ import annotations

import functools
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

from corsproxy import config as config_module
from corsproxy.export import TARGETS, export
from tests.export import static

ROOT = Path(__file__).resolve().parents[2]
POLICIES = "tests/export/policies"
GOLDEN = Path(__file__).resolve().parent / "golden"
GOLDEN_NAMES = {"nginx": "nginx.conf", "caddy": "Caddyfile", "express": "policy.js", "starlette": "policy.py"}


def cli(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "corsproxy", "export", *args], cwd=ROOT, capture_output=True,
                          text=True, timeout=60, env={**os.environ, "PYTHONPATH": str(ROOT)})


@functools.lru_cache(maxsize=None)
def exported(target: str, policy: str = f"{POLICIES}/readme.yaml") -> str:
    """What `corsproxy export` prints (each command run once per session: the checks only read it)."""
    result = cli("--to", target, "-c", policy)
    assert result.returncode == 0, result.stderr
    return result.stdout


CASES = [(t, f"{POLICIES}/{p}") for t in TARGETS for p in ("readme.yaml", "app.yaml")] + \
        [(t, f"{POLICIES}/gateway.yaml") for t in ("nginx", "caddy")] + [("nginx", "config/"), ("caddy", "config/")]


@pytest.mark.parametrize("target, policy", CASES, ids=[f"{t}-{p.rsplit('/', 1)[-1] or p}" for t, p in CASES])
def test_every_export_passes_the_static_checks(target: str, policy: str) -> None:
    """No unanchored regex, no `*` with credentials, and (nginx) `always` on every CORS header,
    none inside `if`."""
    text = exported(target, policy)
    assert static.regexes(text, target), "the check found no regex to look at"
    assert static.problems(text, target) == []


def _replace_once(old: str, new: str):
    def plant(text: str) -> str:
        assert old in text, old
        return text.replace(old, new, 1)
    return plant


def _regex_sub(pattern: str, new: str):
    def plant(text: str) -> str:
        planted = re.sub(pattern, new, text, count=1, flags=re.M)
        assert planted != text, pattern
        return planted
    return plant


PLANTED = [
    ("nginx", _replace_once("$corsproxy_r1_allow_origin always;", "$corsproxy_r1_allow_origin;"),
     static.nginx_header_problems, "without always"),
    ("nginx", _replace_once("            return 204;\n", "            add_header Access-Control-Allow-Origin $http_origin always;\n"
                            "            return 204;\n"), static.nginx_header_problems, "inside if"),
    ("nginx", _replace_once(r'\\.com$" "1";', r'\\.com" "1";'), static.unanchored, "not anchored at its end"),
    ("nginx", _replace_once("location ~ ^/api", "location ~ /api"), static.unanchored, "not anchored at its start"),
    ("nginx", _regex_sub(r'("~\^\(\?:preflight\|refused\|cors\)\$") \$http_origin;', r'\1 "*";'),
     static.wildcard_with_credentials, "'*' together with"),
    ("caddy", _replace_once(r"\.com$ 1", r"\.com 1"), static.unanchored, "not anchored at its end"),
    ("caddy", _regex_sub(r"(~\^\(\?:preflight\|refused\|cors\)\$) ECHO", r"\1 *"),
     static.wildcard_with_credentials, "'*' together with"),
    ("express", _replace_once(r'\\.com$")', r'\\.com")'), static.unanchored, "not anchored at its end"),
    ("express", _replace_once("anyOrigin: false,", "anyOrigin: true,"), static.wildcard_with_credentials,
     "any origin with credentials"),
    ("starlette", _replace_once(r"\\.com$')", r"\\.com')"), static.unanchored, "not anchored at its end"),
    ("starlette", _replace_once("any_origin=False,", "any_origin=True,"), static.wildcard_with_credentials,
     "any origin with credentials"),
]


@pytest.mark.parametrize("target, plant, check, expected", PLANTED,
                         ids=[f"{t}-{e.replace(' ', '-')}" for t, _, _, e in PLANTED])
def test_each_static_check_fails_on_a_planted_bug(target, plant, check, expected) -> None:
    """The checks are not vacuous: one bug planted in a real export is reported."""
    text = exported(target)
    assert check(text, target) == [] if check is not static.nginx_header_problems else check(text) == []
    planted = plant(text)
    found = check(planted, target) if check is not static.nginx_header_problems else check(planted)
    assert len(found) == 1 and expected in found[0], found


@pytest.mark.parametrize("target", TARGETS)
def test_the_output_matches_its_golden_file(target: str) -> None:
    """The export of README's example is byte for byte the reviewed file in tests/export/golden/
    (a change to an exporter shows as a diff there; regenerate with CORSPROXY_UPDATE_GOLDEN=1)."""
    text = exported(target)
    golden = GOLDEN / GOLDEN_NAMES[target]
    if os.environ.get("CORSPROXY_UPDATE_GOLDEN") == "1":
        golden.write_text(text)
    assert text == golden.read_text()


@pytest.mark.parametrize("target", TARGETS)
def test_the_output_is_deterministic(target: str) -> None:
    """The same input gives the same bytes, also from a fresh process (no set or dict order leaks)."""
    loaded = config_module.load(ROOT / POLICIES / "app.yaml")
    assert export(loaded, target).text == export(config_module.load(ROOT / POLICIES / "app.yaml"), target).text
    assert cli("--to", target, "-c", f"{POLICIES}/app.yaml").stdout == exported(target, f"{POLICIES}/app.yaml")


@pytest.mark.parametrize("target", TARGETS)
def test_the_leading_comment_names_version_sources_target_and_deviations(target: str) -> None:
    """The file starts with a comment naming the corsproxy version, the source files, the target
    and its oldest tested version, and every deviation; each deviation is a warning on stderr."""
    from corsproxy import __version__
    result = cli("--to", target, "-c", f"{POLICIES}/readme.yaml")
    head = result.stdout[:3000]
    assert f"corsproxy {__version__}" in head and f"{POLICIES}/readme.yaml" in head
    assert "tested on" in head and "deviations" in head
    loaded = config_module.load(ROOT / POLICIES / "readme.yaml")
    deviations = export(loaded, target).deviations
    assert result.stderr.splitlines() == [f"warning: {target} differs: {d}" for d in deviations]
    for deviation in deviations:
        assert str(deviation) in head
    assert re.fullmatch(r"(warning: \w+ differs: [\w*-]+: .+\n)*", result.stderr)


def test_each_route_block_names_its_route_and_line() -> None:
    """A reviewer sees, above each block, the route and the file:line it comes from."""
    text = exported("nginx", f"{POLICIES}/app.yaml")
    for line in (6, 14, 25):
        assert re.search(rf"^# route /\w+ \(tests/export/policies/app.yaml:{line}\)", text, re.M), line


def test_output_file(tmp_path: Path) -> None:
    """-o writes the file and prints nothing on stdout."""
    result = cli("--to", "starlette", "-c", f"{POLICIES}/readme.yaml", "-o", str(tmp_path / "policy.py"))
    assert result.returncode == 0 and result.stdout == ""
    assert (tmp_path / "policy.py").read_text() == exported("starlette")


@pytest.mark.parametrize("regex, construct", [
    ("^https://(?P<sub>[a-z]+)\\.example\\.com$", "named groups"),
    ("(?i)^https://a\\.example\\.com$", "inline flags"),
], ids=["named-group", "inline-flag"])
def test_a_regex_an_engine_reads_differently_is_refused(tmp_path: Path, regex: str, construct: str) -> None:
    """Exit 2 naming file:line and allow_origin_regex, and what to write instead; nothing printed."""
    yaml = tmp_path / "p.yaml"
    yaml.write_text("routes:\n  - prefix: /api\n    upstream: http://127.0.0.1:9000\n    cors:\n"
                    f"      allow_origin_regex: '{regex}'\n")
    result = cli("--to", "nginx", "-c", str(yaml))
    assert result.returncode == 2, result.stdout
    assert f"{yaml}:5: allow_origin_regex: nginx cannot take this regex" in result.stderr
    assert construct in result.stderr.lower() and "Traceback" not in result.stderr
    assert result.stdout == ""


@pytest.mark.parametrize("regex", [
    "^https://(?=a)[a-z]+\\.example\\.com$",
    "^https://([a-z]+)\\1\\.example\\.com$",
], ids=["look-ahead", "back-reference"])
def test_a_regex_re2_cannot_match_is_refused_before_any_export(tmp_path: Path, regex: str) -> None:
    """Look-arounds and back-references never reach an exporter: the loader refuses them (RE2,
    issue #16) with file:line and the key, so no engine is ever handed one."""
    yaml = tmp_path / "p.yaml"
    yaml.write_text("routes:\n  - prefix: /api\n    upstream: http://127.0.0.1:9000\n    cors:\n"
                    f"      allow_origin_regex: '{regex}'\n")
    result = cli("--to", "nginx", "-c", str(yaml))
    assert result.returncode == 2 and result.stdout == "", result.stdout
    assert f"{yaml}:5:" in result.stderr and "allow_origin_regex" in result.stderr
    assert "Traceback" not in result.stderr


def test_an_app_export_of_several_upstreams_asks_which(tmp_path: Path) -> None:
    """express/starlette: a config with two upstreams exits 2 listing them, until --upstream picks one."""
    result = cli("--to", "express", "-c", "config/corsproxy.yaml")
    assert result.returncode == 2
    assert "http://127.0.0.1:9000 (routes /api)" in result.stderr and "https://api.github.com" in result.stderr
    picked = cli("--to", "express", "-c", "config/corsproxy.yaml", "--upstream", "http://127.0.0.1:9000")
    assert picked.returncode == 0 and "route /api" in picked.stdout and "/github" not in picked.stdout


@pytest.mark.parametrize("args, message", [
    (("--to", "nginx", "--listen", "nowhere"), "--listen"),
    (("--to", "express", "--upstream", "ftp://x"), "--upstream"),
    (("--to", "apache",), "invalid choice"),
], ids=["listen", "upstream", "target"])
def test_bad_arguments_exit_2(args, message) -> None:
    result = cli(*args, "-c", f"{POLICIES}/readme.yaml")
    assert result.returncode == 2 and message in result.stderr and "Traceback" not in result.stderr

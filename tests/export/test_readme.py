"""README's "From the proxy to production" cannot drift: every exported block and warning list in
it is what `corsproxy export` prints for the command its marker names."""

from __future__ import annotations

import re

import pytest

from tests.export.test_static import ROOT, cli

README = (ROOT / "README.md").read_text()
BLOCKS = re.findall(r"<!-- export(-warnings)?: (.+?) -->\n```\w*\n(.*?)```\n<!-- /export(?:-warnings)? -->", README, re.S)


def test_readme_has_one_example_per_target_and_the_bundled_config() -> None:
    """Four worked examples from the file the tests export, and the bundled config/ for nginx."""
    commands = [args for kind, args, _ in BLOCKS if not kind]
    for target in ("nginx", "caddy", "express", "starlette"):
        assert f"--to {target} -c tests/export/policies/readme.yaml" in commands
    assert "--to nginx -c config/" in commands
    assert any(kind and args == "--to nginx -c config/" for kind, args, _ in BLOCKS)


@pytest.mark.parametrize("kind, args, shown", BLOCKS, ids=[f"{k or 'stdout'} {a}" for k, a, _ in BLOCKS])
def test_readme_shows_what_export_prints(kind: str, args: str, shown: str) -> None:
    """The block is byte for byte the command's stdout (or its stderr, for the warnings)."""
    result = cli(*args.split())
    assert result.returncode == 0, result.stderr
    assert shown == (result.stderr if kind else result.stdout)

"""The folders are the layers (docs/DESIGN.md): a module imports only from its own level or below,
and the pure levels import no I/O framework."""

from __future__ import annotations

import ast
import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
PACKAGE = ROOT / "corsproxy"

# Bottom to top. A module may import corsproxy modules of its own level or of a lower one.
LEVELS = {
    "model": 0, "errors": 0, "text": 0, "__init__": 0,
    "policy": 1,
    "judge": 2,
    "config": 3,
    "export": 4,
    "server": 5,
    "commands": 6,
    "cli": 7, "__main__": 7,
}
PURE = ("model", "errors", "text", "policy", "judge", "export")
IO_FRAMEWORKS = ("aiohttp", "yaml", "structlog", "asyncio", "multidict", "uvloop")


def level_name(module: str) -> str:
    """`corsproxy.policy.cors` -> `policy`; `corsproxy.cli` -> `cli`; `corsproxy` -> `__init__`."""
    parts = module.split(".")
    return parts[1] if len(parts) > 1 else "__init__"


def imported_modules(path: Path, module: str) -> list[tuple[int, str]]:
    """Every absolute module name `path` imports, relative imports resolved against `module`."""
    tree = ast.parse(path.read_text(), filename=str(path))
    package = module if path.name == "__init__.py" else module.rpartition(".")[0]
    found = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            found += [(node.lineno, alias.name) for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                anchor = package.split(".")[: len(package.split(".")) - node.level + 1]
                base = ".".join(anchor + ([base] if base else []))
            found.append((node.lineno, base))
            # `from corsproxy import policy` names a sub-package: judge it as that module.
            found += [(node.lineno, f"{base}.{alias.name}") for alias in node.names if base == "corsproxy" and alias.name in LEVELS]
    return found


def violations(package_dir: Path) -> list[str]:
    """One line per import that breaks the layering, `file:line: what`."""
    problems = []
    for path in sorted(package_dir.rglob("*.py")):
        relative = path.relative_to(package_dir.parent).with_suffix("")
        module = ".".join(relative.parts[:-1] if relative.name == "__init__" else relative.parts)
        own = level_name(module)
        if own not in LEVELS:
            problems.append(f"{path}: folder {own!r} is not a known layer (add it to LEVELS)")
            continue
        for line, name in imported_modules(path, module):
            top = name.split(".")[0]
            where = f"{path.relative_to(package_dir.parent)}:{line}"
            if top == "corsproxy" and name != "corsproxy":
                other = level_name(name)
                if LEVELS.get(other, 99) > LEVELS[own]:
                    problems.append(f"{where}: {own} imports {name}, a higher layer")
            elif own in PURE and top in IO_FRAMEWORKS:
                problems.append(f"{where}: {own} is pure but imports {name}")
    return problems


def test_every_folder_imports_only_from_its_level_or_below() -> None:
    """No module of corsproxy/ imports a module of a higher layer, and the pure layers import no
    aiohttp, yaml, structlog, asyncio, multidict or uvloop."""
    assert violations(PACKAGE) == []


@pytest.mark.parametrize("folder, module, line, expected", [
    ("policy", "cors.py", "from corsproxy.server import app\n", "policy imports corsproxy.server,"),
    ("judge", "browser.py", "from corsproxy.config import load\n", "judge imports corsproxy.config"),
    ("policy", "cors.py", "import aiohttp\n", "policy is pure but imports aiohttp"),
    ("judge", "browser.py", "import asyncio\n", "judge is pure but imports asyncio"),
    ("server", "app.py", "from corsproxy.commands import probe\n", "server imports corsproxy.commands,"),
    ("config", "loader.py", "from ..server import logs\n", "config imports corsproxy.server"),
    ("policy", "cors.py", "from corsproxy import server\n", "policy imports corsproxy.server"),
], ids=["policy->server", "judge->config", "policy-aiohttp", "judge-asyncio", "server->commands",
        "relative-up", "from-package"])
def test_a_planted_violation_is_found(tmp_path: Path, folder: str, module: str, line: str,
                                      expected: str) -> None:
    """The checker is not vacuous: one import planted against the rule is reported."""
    package = tmp_path / "corsproxy"
    (package / folder).mkdir(parents=True)
    (package / "__init__.py").write_text("")
    (package / folder / "__init__.py").write_text("")
    (package / folder / module).write_text("from corsproxy.model import Route\n" + line)
    found = violations(package)
    assert len(found) == 1 and expected in found[0], found
    assert found[0].startswith(f"corsproxy/{folder}/{module}:2:")


def test_pure_layers_load_no_io_framework_at_run_time() -> None:
    """Importing every module of policy/ and judge/ (and model, errors) leaves aiohttp, yaml,
    structlog and asyncio out of sys.modules: nothing pulls them in indirectly."""
    modules = ["corsproxy.model", "corsproxy.errors"] + [
        f"corsproxy.{folder}.{path.stem}" for folder in ("policy", "judge", "export")
        for path in sorted((PACKAGE / folder).glob("*.py")) if path.stem != "__init__"]
    probe = (f"import {', '.join(modules)}; import sys; "
             f"print(sorted(m for m in {IO_FRAMEWORKS!r} if m in sys.modules))")
    paths = [str(ROOT), os.environ.get("PYTHONPATH", "")]
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(p for p in paths if p)}
    result = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True,
                            cwd=ROOT, env=env, timeout=60)
    assert result.returncode == 0, result.stderr
    assert ast.literal_eval(result.stdout.strip()) == []

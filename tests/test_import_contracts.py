"""The import contracts hold, and they catch what they exist to catch.

``make lint`` runs import-linter on the tree; these tests also show it failing, naming the rule, when a module
takes a wrong turn (the scratch-branch check, kept), and check the convention import-linter cannot: no module
of the product imports another module's private name.
"""

from __future__ import annotations

import ast
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
PACKAGES = ("stream", "models", "bandits", "bench")
LINT_IMPORTS = Path(sys.executable).with_name("lint-imports")


def _lint(tree: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [str(LINT_IMPORTS), "--no-cache", str(tree / "pyproject.toml")],
        cwd=tree,
        capture_output=True,
        text=True,
        timeout=300,
        env={"PATH": "/usr/bin:/bin", "PYTHONPATH": str(tree)},
    )


@pytest.fixture()
def scratch(tmp_path: Path) -> Path:
    """A copy of the packages and the contracts, to break on purpose."""
    for name in PACKAGES:
        shutil.copytree(ROOT / name, tmp_path / name, ignore=shutil.ignore_patterns("__pycache__"))
    shutil.copy(ROOT / "pyproject.toml", tmp_path / "pyproject.toml")
    return tmp_path


def _add_import(tree: Path, module: str, line: str) -> None:
    path = tree / (module.replace(".", "/") + ".py")
    path.write_text(path.read_text() + f"\n{line}  # noqa\n")


def test_the_tree_keeps_every_contract(scratch: Path) -> None:
    result = _lint(scratch)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "0 broken" in result.stdout


@pytest.mark.parametrize(
    ("module", "line", "rules"),
    [
        ("bandits.base", "import stream.kafka.clients", ["models/ and bandits/ never import the engine", "Floors"]),
        ("stream.engine.processor", "import stream.app.settings", ["Floors", "No cycles"]),
        ("models.behaviour.features", "import bandits.offers", ["Floors"]),
        ("stream.app.worker", "import bench.machine", ["never imports the benchmarks"]),
    ],
)
def test_a_wrong_import_breaks_the_contract_that_names_the_rule(scratch, module, line, rules) -> None:
    _add_import(scratch, module, line)
    result = _lint(scratch)
    assert result.returncode != 0, result.stdout
    broken = result.stdout.split("Broken contracts", 1)[-1]
    for rule in rules:
        assert rule in broken, f"{rule!r} not reported for {module}: {line}\n{broken}"
    assert module in broken


def _private_imports(path: Path) -> list[str]:
    found = []
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.ImportFrom) and node.module and node.module.split(".")[0] in PACKAGES:
            found += [f"{path.relative_to(ROOT)}: {node.module}.{a.name}" for a in node.names if a.name.startswith("_")]
    return found


def test_no_module_of_the_product_imports_a_private_name() -> None:
    offenders = [hit for name in PACKAGES for path in (ROOT / name).rglob("*.py") for hit in _private_imports(path)]
    assert not offenders, offenders

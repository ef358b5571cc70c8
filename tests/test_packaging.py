"""The product ships only the product: the wheel and the worker image hold stream, models and bandits, no bench.

The wheel is built from a copy of the tree that also holds bench/, tests/ and docs/, so a packaging rule that let
them in would show here.
"""

from __future__ import annotations

import re
import shutil
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
PRODUCT = ("stream", "models", "bandits")


@pytest.fixture(scope="module")
def wheel(tmp_path_factory) -> Path:
    tree = tmp_path_factory.mktemp("tree")
    for name in (*PRODUCT, "bench", "tests", "docs"):
        shutil.copytree(ROOT / name, tree / name, ignore=shutil.ignore_patterns("__pycache__", "*.pyc"))
    for name in ("pyproject.toml", "README.md"):
        shutil.copy(ROOT / name, tree / name)
    out = tmp_path_factory.mktemp("wheel")
    subprocess.run(
        [sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation", "-q", "-w", str(out), str(tree)],
        check=True,
        capture_output=True,
        timeout=300,
    )
    (wheel,) = out.glob("offerstream-*.whl")
    return wheel


@pytest.fixture(scope="module")
def wheel_names(wheel) -> list[str]:
    with zipfile.ZipFile(wheel) as zf:
        return zf.namelist()


def test_the_wheel_holds_the_product_and_nothing_else(wheel_names):
    modules = sorted(n for n in wheel_names if n.endswith(".py"))
    print("\n".join(["wheel modules:", *modules]))
    sources = [p for name in PRODUCT for p in (ROOT / name).rglob("*.py") if "__pycache__" not in p.parts]
    expected = sorted(str(p.relative_to(ROOT)) for p in sources)
    assert modules == expected
    assert not [n for n in wheel_names if n.split("/")[0] in ("bench", "tests", "docs")]
    assert not [n for n in modules if "bench" in Path(n).stem]


def test_the_wheel_installs_the_command(wheel, wheel_names):
    (entry_points,) = (n for n in wheel_names if n.endswith(".dist-info/entry_points.txt"))
    with zipfile.ZipFile(wheel) as zf:
        assert "offerstream = stream.cli:main" in zf.read(entry_points).decode()


def test_the_worker_image_copies_only_the_product():
    dockerfile = (ROOT / "docker" / "Dockerfile").read_text()
    copied = [
        src
        for line in dockerfile.splitlines()
        if line.startswith("COPY") and "--from=" not in line
        for src in line.split()[1:-1]
    ]
    assert copied, "the Dockerfile copies nothing from the context?"
    assert {c.rstrip("/") for c in copied} <= {"pyproject.toml", "README.md*", *PRODUCT}, copied
    ignored = set((ROOT / "docker" / "Dockerfile.dockerignore").read_text().split())
    assert {"bench", "tests", "docs"} <= ignored
    assert not re.search(r"\bbench\b", dockerfile)

"""docs/reference/ is generated from the code and must be current: a setting or option changed without
``make docs`` fails here. Also: every relative link in README.md and docs/ points at a file that exists."""

from __future__ import annotations

import re
import runpy
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def test_the_generated_reference_is_current():
    generator = runpy.run_path(str(ROOT / "docs" / "generate_reference.py"))
    stale = [
        str(path.relative_to(ROOT))
        for path, text in generator["references"]().items()
        if not path.exists() or path.read_text() != text
    ]
    assert not stale, f"regenerate with `make docs`: {stale}"


def test_the_reference_names_every_setting_and_command():
    settings = (ROOT / "docs" / "reference" / "settings.md").read_text()
    commands = (ROOT / "docs" / "reference" / "commands.md").read_text()
    for key in ("`seed`", "`kafka.processing_guarantee`", "`processing.session_gap_s`", "`policy.noise_prior_scale`"):
        assert key in settings
    for command in ("run", "replay", "retrain", "backtest", "ope", "import", "demo"):
        assert f"## `offerstream {command}`" in commands


LINK = re.compile(r"\]\(([^)#\s]+)(#[^)\s]*)?\)")


def test_every_relative_link_in_the_docs_resolves():
    pages = [ROOT / "README.md", *sorted((ROOT / "docs").rglob("*.md"))]
    broken = []
    for page in pages:
        for target, _ in LINK.findall(page.read_text()):
            if "://" in target or target.startswith("mailto:"):
                continue
            if not (page.parent / target).exists():
                broken.append(f"{page.relative_to(ROOT)} -> {target}")
    assert not broken, broken


def test_the_readme_is_a_doorway():
    assert len((ROOT / "README.md").read_text().splitlines()) <= 250


ROOMS = "stream|models|bandits|bench|tests|docker|docs"
PATH_IN_TEXT = re.compile(rf"(?<![\w./-])((?:{ROOMS})/[A-Za-z0-9_./-]*[A-Za-z0-9_/])")


def test_every_path_the_docs_name_exists():
    """A module moved or renamed without its docs following fails here (``stream/engine/processor.py``...)."""
    pages = [ROOT / "README.md", *sorted((ROOT / "docs").rglob("*.md"))]
    missing = sorted(
        {
            f"{page.relative_to(ROOT)}: {path}"
            for page in pages
            for path in PATH_IN_TEXT.findall(page.read_text())
            if not (ROOT / path).exists()
        }
    )
    assert not missing, missing

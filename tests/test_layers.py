"""The layers of DESIGN.md as import-linter contracts (pyproject.toml): kept by the tree, and
broken, with a failing exit code, by each kind of deliberate violation in a temporary copy."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
LINT = Path(sys.executable).with_name("lint-imports")
pytestmark = pytest.mark.skipif(not LINT.exists(), reason=f"import-linter not installed at {LINT}")


def lint(root: Path) -> subprocess.CompletedProcess:
    """``lint-imports`` on the package under ``root`` (its own copy first on the path)."""
    return subprocess.run([str(LINT), "--no-cache", "--config", str(root / "pyproject.toml")],
                          cwd=root, env={"PYTHONPATH": str(root), "PATH": "/usr/bin:/bin"},
                          capture_output=True, text=True)


@pytest.fixture()
def copy(tmp_path) -> Path:
    shutil.copytree(REPO / "edgeft", tmp_path / "edgeft",
                    ignore=shutil.ignore_patterns("__pycache__"))
    shutil.copy(REPO / "pyproject.toml", tmp_path / "pyproject.toml")
    return tmp_path


def add_line(path: Path, line: str) -> None:
    path.write_text(path.read_text() + f"\n{line}\n")


def test_the_tree_keeps_every_contract(copy):
    done = lint(copy)
    assert done.returncode == 0, done.stdout + done.stderr
    assert "3 kept, 0 broken" in done.stdout


def test_a_back_edge_fails(copy):
    add_line(copy / "edgeft" / "deft" / "crunch.py", "import edgeft.report.summary  # noqa")
    done = lint(copy)
    assert done.returncode != 0
    assert "Each layer imports only the layers below it BROKEN" in done.stdout
    assert "edgeft.deft.crunch -> edgeft.report.summary" in done.stdout


def test_torch_in_a_manager_fails(copy):
    add_line(copy / "edgeft" / "sim" / "trace.py", "import torch  # noqa")
    done = lint(copy)
    assert done.returncode != 0
    assert "never import torch BROKEN" in done.stdout


def test_two_modules_importing_each_other_fail(copy):
    add_line(copy / "edgeft" / "deft" / "crunch.py", "import edgeft.deft.ba  # noqa")
    done = lint(copy)
    assert done.returncode != 0
    assert "No two modules import each other, at any depth BROKEN" in done.stdout

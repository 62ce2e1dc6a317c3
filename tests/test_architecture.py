"""The three floors (docs/ARCHITECTURE.md) hold: import-linter's contracts from pyproject.toml pass on the
tree, and they do fail when a forbidden import is added. ruff keeps the tree clean under the project's rules."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
BIN = Path(sys.executable).parent


def lint_imports(root: Path, env: dict | None = None) -> subprocess.CompletedProcess:
    return subprocess.run([str(BIN / "lint-imports"), "--no-cache"],
                          cwd=root, capture_output=True, text=True, env=env, timeout=120)


def test_the_import_contracts_are_kept():
    result = lint_imports(ROOT)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "0 broken" in result.stdout


@pytest.fixture
def copied_tree(tmp_path: Path) -> Path:
    """The sources as an importable `rnn_playground` package of their own, outside the installed one."""
    package = tmp_path / "rnn_playground"  # a namespace package, as installed (no __init__.py)
    package.mkdir()
    for folder in ("core", "tui"):
        shutil.copytree(ROOT / folder, package / folder, ignore=shutil.ignore_patterns("__pycache__"))
    shutil.copy(ROOT / "pyproject.toml", tmp_path / "pyproject.toml")
    return tmp_path


@pytest.mark.parametrize("module, forbidden, broken", [
    ("core/model.py", "import textual", "The engine imports no floor above it"),
    ("core/model.py", "from rnn_playground.tui.viewmodel import format", "The engine imports no floor above it"),
    ("tui/viewmodel/format.py", "import rich.text", "The middle floor is plain Python"),
    ("tui/cli/render.py", "from rnn_playground.tui.app.widgets import fitting", "The two faces stand side by side"),
    ("core/errors.py", "from rnn_playground.core import trainer", "No import circles"),
])
def test_a_forbidden_import_breaks_a_contract(copied_tree: Path, module: str, forbidden: str, broken: str):
    path = copied_tree / "rnn_playground" / module
    path.write_text(path.read_text() + f"\n{forbidden}  # added by the test\n")
    env = {**os.environ, "PYTHONPATH": str(copied_tree)}
    result = lint_imports(copied_tree, env)
    assert result.returncode == 1, result.stdout + result.stderr
    assert f"{broken}" in result.stdout.split("Broken contracts", 1)[1], result.stdout


def test_the_copied_tree_keeps_the_contracts(copied_tree: Path):
    """The control for the test above: the copy, untouched, keeps every contract."""
    env = {**os.environ, "PYTHONPATH": str(copied_tree)}
    result = lint_imports(copied_tree, env)
    assert result.returncode == 0, result.stdout + result.stderr
    assert str(copied_tree) in subprocess.run(
        [sys.executable, "-c", "import rnn_playground.core; print(rnn_playground.core.__file__)"],
        env=env, capture_output=True, text=True).stdout  # the copy was checked, not the installed tree


def test_the_tree_is_clean_under_ruff():
    result = subprocess.run([str(BIN / "ruff"), "check", "--no-cache", "."], cwd=ROOT, capture_output=True,
                            text=True, timeout=120)
    assert result.returncode == 0, result.stdout + result.stderr


def test_every_package_folder_is_installed():
    """pyproject.toml lists the packages by hand (package-dir maps core/ and tui/ into rnn_playground): a new
    folder left off the list would work in the editable install and be missing from a built wheel."""
    tomllib = pytest.importorskip("tomllib")  # Python 3.11+
    listed = set(tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["setuptools"]["packages"])
    found = {"rnn_playground." + ".".join(init.parent.relative_to(ROOT).parts)
             for folder in ("core", "tui") for init in (ROOT / folder).rglob("__init__.py")}
    assert found == listed


def test_the_readmes_python_example_runs(tmp_path):
    """The README shows how to use the engine from Python: that code runs as written (in a scratch folder)."""
    readme = (ROOT / "README.md").read_text()
    code = readme.split("## From Python", 1)[1].split("```python\n", 1)[1].split("```", 1)[0]
    env = {**os.environ, "RNN_PLAYGROUND_RUNS": str(tmp_path / "checkpoints")}
    result = subprocess.run([sys.executable, "-c", code], cwd=tmp_path, env=env, capture_output=True, text=True,
                            timeout=240)
    assert result.returncode == 0, result.stderr
    assert "Finished(" in result.stdout and (tmp_path / "checkpoints" / "from-python" / "last.safetensors").exists()
    sample = result.stdout.split("Finished(", 1)[1].split("\n", 1)[1]  # what was printed after the last event
    assert len(sample) == 80 + 1  # the 80 characters asked for after the prime, and print's newline

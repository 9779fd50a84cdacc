"""The tree passes ruff (format and lint: the package, scripts, tests and benchmarks) and the package passes
mypy --strict, as configured in pyproject.toml (`make lint` runs the same three).

The tools come from the `test` extra. Where they are missing the test is skipped, except in CI (CI set), where a
missing tool is a failure: CI must not pass by not looking.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
PACKAGE = "deposit_token"
RUFF_PATHS = (PACKAGE, "scripts", "tests", "bench")  # what ruff formats and checks; mypy: the package


def _tool(name: str) -> str:
    """The tool next to this interpreter (the project's virtualenv), else on PATH."""
    beside = Path(sys.executable).parent / name
    found = str(beside) if beside.is_file() else shutil.which(name)
    if found is None:
        if os.environ.get("CI"):
            pytest.fail(f"{name} is not installed: pip install -e '.[test]'")
        pytest.skip(f"{name} is not installed (pip install -e '.[test]')")
    return found


def _run(*command: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(command, cwd=ROOT, capture_output=True, text=True, timeout=600, check=False)


def _assert_clean(done: subprocess.CompletedProcess[str]) -> None:
    assert done.returncode == 0, f"{' '.join(done.args)} found problems:\n{done.stdout}{done.stderr}"


def test_ruff_format_leaves_the_tree_as_it_is() -> None:
    _assert_clean(_run(_tool("ruff"), "format", "--check", *RUFF_PATHS))


def test_ruff_check_finds_nothing_in_the_tree() -> None:
    _assert_clean(_run(_tool("ruff"), "check", "--no-fix", *RUFF_PATHS))


def test_mypy_strict_passes_on_the_package() -> None:
    # pyproject's [tool.mypy]: strict, files = the package
    _assert_clean(_run(_tool("mypy")))

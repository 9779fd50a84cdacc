"""``ape run <name>`` loads scripts/<name>.py and takes its ``cli``: each script is only a shim for
``deposit_token.cli.<name>``, where the command lives (loaded here from the file, as ape loads it)."""

from __future__ import annotations

import importlib
import importlib.util
from pathlib import Path

import click
import pytest

SCRIPTS = Path(__file__).resolve().parents[2] / "scripts"


@pytest.mark.parametrize("path", sorted(SCRIPTS.glob("*.py")), ids=lambda path: path.stem)
def test_every_script_is_the_packages_command(path):
    spec = importlib.util.spec_from_file_location(f"{path.stem}_script", path)
    script = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(script)
    command = importlib.import_module(f"deposit_token.cli.{path.stem}").cli
    assert isinstance(command, click.Command)
    assert script.cli is command
    assert len(path.read_text(encoding="utf-8").splitlines()) < 10, "a script is a shim; the code is in the package"

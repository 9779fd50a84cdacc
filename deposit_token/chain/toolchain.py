"""Makes the pinned Solidity compiler available to py-solc-x (and so to ape-solidity) without a download.

The compiler host is unreachable on the project's machines, so py-solc-x cannot fetch solc. A native solc of
the pinned version on PATH is preferred; otherwise a small wrapper over the solc-js shim in ``toolchain/`` is
registered in py-solc-x's install folder under the pinned version's name.
"""

from __future__ import annotations

import os
import shutil
import stat
import subprocess
from pathlib import Path

import solcx

from deposit_token import paths

SOLC_VERSION = "0.8.30"
SHIM = paths.TOOLCHAIN_DIR / "solc.js"


def native_solc() -> Path | None:
    """A native solc of the pinned version on PATH, ignoring this checkout's own shim."""
    shim_dir = (paths.TOOLCHAIN_DIR / "bin").resolve()
    for directory in os.environ.get("PATH", "").split(os.pathsep):
        candidate = Path(directory) / "solc"
        if not candidate.is_file() or candidate.resolve().parent == shim_dir:
            continue
        if (candidate.parent / "solc-select").exists():
            continue  # solc-select's front end (installed with slither) would try to download a compiler
        try:
            out = subprocess.run([candidate, "--version"], capture_output=True, text=True, timeout=10).stdout
        except (OSError, subprocess.SubprocessError):
            continue
        if f"Version: {SOLC_VERSION}+" in out and "Emscripten" not in out:
            return candidate
    return None


def install_solc() -> str:
    """Registers solc with py-solc-x; returns a line saying which compiler is used."""
    target = solcx.get_solcx_install_folder() / f"solc-v{SOLC_VERSION}"
    native = native_solc()
    if native is not None:
        shutil.copy(native, target)
        return f"solc {SOLC_VERSION}: native binary {native}"
    node = shutil.which("node")
    if node is None:
        raise SystemExit("node is not on PATH: it is needed to run solc-js (npm package `solc`)")
    target.write_text(f'#!/bin/sh\nexec "{node}" "{SHIM}" "$@"\n')
    target.chmod(target.stat().st_mode | stat.S_IXUSR | stat.S_IXGRP | stat.S_IXOTH)
    version = solcx.get_installed_solc_versions()
    return f"solc {SOLC_VERSION}: solc-js shim {SHIM} (registered as {target}; installed: {version})"


if __name__ == "__main__":
    print(install_solc())

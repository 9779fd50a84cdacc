"""The geth executable: where it is and whether it is a version that seals Clique blocks.

Geth v1.13.15 is the last release whose miner seals Clique (proof-of-authority) blocks: v1.14 removed it. ``make
setup`` builds it into the project's tool folder (``.tools/bin/geth``, see the Makefile and docs/NETWORK.md).
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess

from deposit_token import paths
from deposit_token.errors import DepositTokenError

GETH_ENV = "DEPOSIT_TOKEN_GETH"  # path of the geth binary to run (default: .tools/bin/geth, then PATH)
REQUIRED_SERIES = (1, 13)
TOOLS_GETH = paths.ROOT / ".tools" / "bin" / "geth"


class GethNotFoundError(DepositTokenError):
    """No usable geth binary."""


def find_geth() -> str:
    """The geth executable: $DEPOSIT_TOKEN_GETH, else the project's .tools/bin/geth, else `geth` on PATH."""
    configured = os.environ.get(GETH_ENV, "").strip()
    if configured:
        if not os.access(configured, os.X_OK):
            raise GethNotFoundError(f"${GETH_ENV} names {configured}, which is not an executable")
        return configured
    if os.access(TOOLS_GETH, os.X_OK):
        return str(TOOLS_GETH)
    found = shutil.which("geth")
    if found:
        return found
    raise GethNotFoundError(
        "geth not found: run `make setup` (it builds geth v1.13.15 into .tools/bin/) "
        f"or set ${GETH_ENV} to a geth 1.13 binary"
    )


def geth_version(geth: str) -> str:
    """The version geth reports (e.g. ``1.13.15-stable``); GethNotFoundError if it is not a Clique-sealing 1.13."""
    try:
        out = subprocess.run([geth, "version"], capture_output=True, text=True, timeout=30, check=True).stdout
    except (OSError, subprocess.SubprocessError) as err:
        raise GethNotFoundError(f"{geth} does not run (`geth version` failed: {err})") from None
    found = re.search(r"^Version:\s*(\d+)\.(\d+)\.(\d+)(\S*)", out, re.MULTILINE)
    if not found:
        raise GethNotFoundError(f"{geth} does not say which geth version it is")
    major, minor = int(found[1]), int(found[2])
    if (major, minor) != REQUIRED_SERIES:
        raise GethNotFoundError(
            f"{geth} is geth {found[1]}.{found[2]}.{found[3]}: Clique sealing needs geth 1.13 "
            "(1.14 removed it); run `make setup` to build v1.13.15"
        )
    return f"{found[1]}.{found[2]}.{found[3]}{found[4]}"


__all__ = ["GETH_ENV", "GethNotFoundError", "find_geth", "geth_version"]

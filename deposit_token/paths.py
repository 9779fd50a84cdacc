"""Where the project folder is: the one place that says so.

The package works from a source checkout (installed editable, ``pip install -e .``, as ``make setup`` does): the
commands read and write files of the project folder - the compiled contracts (``.build/``, ape's manifest), the
contract sources (``contracts/``), deployment records (``deployments/``), audit databases (``audit/``), the local
chain's data (``.anvil/``), the node binaries (``node_modules/``), the solc shim (``toolchain/``) and benchmark
results (``bench/results/``).

The project folder is, in order:
1. the folder named by the environment variable ``DEPOSIT_TOKEN_ROOT``, when set;
2. the folder above this package, when it is a project folder (holds ``ape-config.yaml``): a source checkout;
3. otherwise the current folder (a non-editable install run from inside a project folder, as ape itself
   expects: ``ape`` commands run from the project folder).

Some folders have their own environment variable on top (``DEPOSIT_TOKEN_DEPLOYMENTS_DIR``,
``DEPOSIT_TOKEN_NETWORK_DIR``, the audit folder's variable in ``deposit_token.audit.db.store``); those are read
where they are used.
"""

from __future__ import annotations

import os
from pathlib import Path

ROOT_ENV = "DEPOSIT_TOKEN_ROOT"
PROJECT_MARKER = "ape-config.yaml"


def project_root() -> Path:
    """The project folder (see the module docstring)."""
    given = os.environ.get(ROOT_ENV, "").strip()
    if given:
        return Path(given).expanduser().resolve()
    checkout = Path(__file__).resolve().parent.parent
    if (checkout / PROJECT_MARKER).is_file():
        return checkout
    return Path.cwd()


ROOT = project_root()
CONTRACTS_DIR = ROOT / "contracts"
BUILD_MANIFEST = ROOT / ".build" / "__local__.json"  # ape's compiled project: the contracts' ABI
DEPLOYMENTS_DIR = ROOT / "deployments"
AUDIT_DIR = ROOT / "audit"
ANVIL_DIR = ROOT / ".anvil"  # the local chains' data: .anvil/pilot, .anvil/demo
NODE_MODULES = ROOT / "node_modules"
TOOLCHAIN_DIR = ROOT / "toolchain"
BENCH_RESULTS_DIR = ROOT / "bench" / "results"

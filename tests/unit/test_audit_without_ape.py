"""``python -m deposit_token.audit`` runs without ape: neither it nor the library it uses imports ape (the ABI
is shipped with the package, deposit_token/chain/abi/)."""

from __future__ import annotations

import subprocess
import sys

from click.testing import CliRunner


def test_the_standalone_indexer_imports_no_ape() -> None:
    probe = (
        "import sys, deposit_token.audit.__main__, deposit_token.audit.sync.decode as d; d.LogDecoder(); "
        "from deposit_token.chain.reverts import decode_revert; "
        "print(sorted(m for m in sys.modules if m == 'ape' or m.startswith(('ape.', 'ape_', 'ethpm_types'))))"
    )
    out = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "[]"


def test_the_standalone_indexer_answers_help() -> None:
    from deposit_token.audit.__main__ import main

    result = CliRunner().invoke(main, ["index", "--help"])
    assert result.exit_code == 0 and "--rpc-url" in result.output

"""The README's "Run a pilot, step by step" is executed verbatim, so the guide cannot rot.

Every ```bash block between the README's pilot-walkthrough markers is run, in order, as one bash script
(`set -euo pipefail`), from the repository's folder, exactly as a reader would paste it. Only the places the
commands write to are moved into a temporary folder, through the variables the project documents: the node's
data directory, the deployment records, the audit databases, ape's keystore and the walkthrough's CSV files.
The passphrase the guide asks for is typed on standard input. The rehearsal chain uses the pilot's own port
(8545, as ape-config.yaml declares it), so that port must be free.
"""

from __future__ import annotations

from support.readme import require_free_ports, run_walkthrough, walkthrough_script

from deposit_token.chain import node
from deposit_token.ops import accounts


def test_the_readme_pilot_walkthrough_runs_verbatim(tmp_path):
    walkthrough_script("pilot-walkthrough")  # marked once, with bash blocks, before a port is looked at
    require_free_ports((node.DEFAULT_PORT,), "the walkthrough's pilot node")
    try:
        out, _ = run_walkthrough("pilot-walkthrough", tmp_path)
    finally:
        node.stop(node.config_for(tmp_path / "node"))
    created = accounts.list_aliases(tmp_path / "ape-data" / "accounts")
    assert {"admin", "bank", "budget", "official1", "restaurant"} <= set(created)
    for seen in ("Role granted", "Program #1 created", "Vendor registered", "45,000", "no mismatch"):
        assert seen in out, f"{seen!r} missing from the walkthrough's output:\n{out[-6000:]}"
    assert (tmp_path / "deployments" / "ethereum-pilot-node.json").is_file()
    assert (tmp_path / "audit" / "ethereum-pilot-node.sqlite").is_file()

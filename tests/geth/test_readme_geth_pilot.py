"""The README's "Run the pilot on the Geth network, step by step" is executed verbatim: a Geth Clique network
(three sealers and an archive node) on the documented ports, the gateway in front of it, and every command of
the pilot through the gateway with each institution's API key, as a reader would paste it.

As in tests/e2e/test_readme_pilot.py, only the places the commands write to move into a temporary folder (the
Geth data directory, the gateway's keys and logs, ape's keystore, the records, the audit database, the files).
Geth's clock is real time; the walkthrough's program opens on the current day at any hour, so the run is the
same on any date and at any time of day.
"""

from __future__ import annotations

from support.readme import require_free_ports, run_walkthrough, walkthrough_script

from deposit_token.chain.geth import GethNetwork
from deposit_token.gateway.control import stop_process
from deposit_token.gateway.keys import KEY_PREFIX

# The documented ports: the gateway, the archive node's HTTP, the engine API and p2p ports of the four nodes.
PORTS = (8600, 8645, *range(8651, 8655), *range(30311, 30315))


def test_the_readme_geth_walkthrough_runs_verbatim(tmp_path, geth_binary):
    walkthrough_script("geth-walkthrough")
    require_free_ports(PORTS, "the walkthrough's Geth network and gateway")
    try:
        out, _ = run_walkthrough("geth-walkthrough", tmp_path)
    finally:
        stop_process(tmp_path / "gateway")
        if (tmp_path / "geth").exists():
            GethNetwork(tmp_path / "geth").stop()
    # Gateway keys are shown once, into the reader's shell variables: never in the output, the key file (hashes
    # only) or the access log.
    assert KEY_PREFIX not in out
    for name in ("keys.json", "access.log"):
        assert KEY_PREFIX not in (tmp_path / "gateway" / name).read_text()
    for seen in (
        "Program #1 created",
        "Vendor registered",
        "paid 45,000 KRW to Hanok Table",
        "above the per-payment limit",
        "refused: above the limit",
        "may not call eth_sendRawTransaction",
        "refused: an auditor's key cannot send",
        "redeemed 45,000 KRW",
        "no mismatch",
    ):
        assert seen in out, f"{seen!r} missing from the walkthrough's output:\n{out[-6000:]}"
    assert (tmp_path / "deployments" / "ethereum-clique-node.json").is_file()
    assert (tmp_path / "audit" / "ethereum-clique-node.sqlite").is_file()
    log = (tmp_path / "gateway" / "access.log").read_text()
    assert '"client":"audit-office"' in log and '"outcome":"ok"' in log

"""A new institution joins the Geth network as a sealer (`ape run network add-sealer`): its node is listed by
every node, and it seals only once a majority of the current signers voted it in. On a network of its own
(tests/geth/conftest.py's module-scoped `geth_network`), since it leaves four sealers behind."""

from __future__ import annotations

import time

import pytest
from click.testing import CliRunner
from eth_account import Account
from support.geth import block_signer, send_raw, wait_receipt, zero_price_tx

from deposit_token.cli.network import cli

pytestmark = [pytest.mark.chain, pytest.mark.slow]


def test_a_new_sealer_is_listed_by_every_node_and_seals_once_voted_in(geth_network, geth_rpc, tmp_path):
    data_dir = str(geth_network.data_dir)
    added = CliRunner().invoke(
        cli, ["add-sealer", "supervisor", "--institution", "Financial Supervisory Service", "--data-dir", data_dir]
    )
    assert added.exit_code == 0, added.output
    newcomer = str(geth_network.node("supervisor").spec.address)
    assert newcomer in added.output and "propose-add" in added.output
    # Every node restarted with the new peer lists: five nodes, each peering with the four others.
    assert geth_network.wait_peered(20), geth_network.peer_counts()
    assert set(geth_network.peer_counts().values()) == {4}
    # Not a signer yet: geth refuses to seal with its key.
    head = geth_network.head()
    geth_network.wait_for_block(head + 3, timeout=20)
    assert newcomer not in geth_network.signers()
    assert all(block_signer(geth_network, n) != newcomer.lower() for n in range(1, geth_network.head() + 1))
    assert geth_network.head("supervisor") >= head  # it follows the chain

    again = CliRunner().invoke(cli, ["add-sealer", "supervisor", "--institution", "x", "--data-dir", data_dir])
    assert again.exit_code != 0 and "already has a node 'supervisor'" in again.output

    # Two of the three signers vote it in; then it takes its turns.
    geth_network.propose(newcomer, True, on=["treasury", "central-bank"])
    deadline = time.monotonic() + 30
    while newcomer not in geth_network.signers():
        assert time.monotonic() < deadline, "two votes of three did not add the new sealer"
        time.sleep(0.2)
    joined = geth_network.head()
    deadline = time.monotonic() + 30
    while newcomer.lower() not in {block_signer(geth_network, n) for n in range(joined, geth_network.head() + 1)}:
        assert time.monotonic() < deadline, "the new sealer did not seal a block after it was voted in"
        time.sleep(0.2)
    state = geth_network.status()
    assert [node.sealing for node in state.nodes if node.role == "sealer"] == [True, True, True, True]
    # Zero-price transactions still go through.
    official = Account.create()
    transfer = send_raw(geth_rpc, zero_price_tx(0, to="0x" + "22" * 20), official.key)
    assert int(wait_receipt(geth_rpc, transfer)["status"], 16) == 1

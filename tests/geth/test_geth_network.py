"""The permissioned Geth network (deposit_token.chain.geth, `ape run network ... --engine geth`) on real geth
processes: three Clique sealers and an archive node in a temporary directory on free ports (tests/geth/conftest.py).

Transactions are signed here with eth_account by fresh keys that hold no ether and are sent to the archive node,
which cannot seal: that they are sealed shows the zero gas price is accepted by the node clients send to, and
propagated to and included by the sealers.
"""

from __future__ import annotations

import itertools
import json
from pathlib import Path

import pytest
from click.testing import CliRunner
from eth_account import Account
from support.geth import INIT_CODE, block_signer, send_raw, start_outside_node, wait_for, wait_receipt, zero_price_tx

from deposit_token.chain.geth import GethNetwork
from deposit_token.cli.network import cli
from deposit_token.paths import ROOT
from deposit_token.processes import command_line

pytestmark = [pytest.mark.chain, pytest.mark.slow]


def invoke(*args: str):
    return CliRunner().invoke(cli, list(args))


def sealer_addresses(network: GethNetwork) -> set[str]:
    return {str(node.spec.address).lower() for node in network.sealers}


# --- the running network -------------------------------------------------------------------------------------


def test_three_sealers_seal_a_block_a_second_and_the_archive_follows(geth_network, geth_rpc):
    start = geth_network.head()
    head = geth_network.wait_for_block(start + 6, timeout=20)
    blocks = geth_rpc.batch([("eth_getBlockByNumber", [hex(n), False]) for n in range(head - 6, head + 1)])
    gaps = [int(b["timestamp"], 16) - int(a["timestamp"], 16) for a, b in itertools.pairwise(blocks)]
    assert all(gap >= 1 for gap in gaps) and sum(gaps) / len(gaps) <= 1.6, gaps
    assert all(int(block["baseFeePerGas"], 16) == 0 for block in blocks)
    assert int(blocks[-1]["gasLimit"], 16) == 1_000_000_000
    # The signers take turns: every sealer sealed some of the last blocks, nobody else did.
    signers = {block_signer(geth_network, n) for n in range(max(1, head - 8), head + 1)}
    assert signers == sealer_addresses(geth_network)
    state = geth_network.status()
    assert [node.name for node in state.nodes] == ["treasury", "central-bank", "settlement-bank", "archive"]
    for node in state.nodes:
        assert node.answering and node.peers == 3 and node.syncing is False, node
        assert node.lag is not None and node.lag <= 2, node
        assert {s.lower() for s in node.signers or ()} == sealer_addresses(geth_network)
    assert [node.sealing for node in state.nodes] == [True, True, True, None]
    assert geth_rpc.chain_id() == 20261
    assert int(geth_rpc.call("eth_gasPrice"), 16) == 0
    assert int(geth_rpc.call("eth_maxPriorityFeePerGas"), 16) == 0


def test_the_archive_node_serves_only_eth_net_web3_over_http_and_the_sealers_no_http(geth_network, geth_rpc):
    for method, params in (
        ("admin_peers", []),
        ("clique_getSigners", []),
        ("miner_start", []),
        ("debug_chaindbProperty", []),
    ):
        with pytest.raises(Exception, match=r"does not exist|not available"):
            geth_rpc.call(method, params)
    for node in geth_network.sealers:
        args = command_line(geth_network.pid(node.name))
        assert "--http" not in args and "--ws" not in args
        assert "--mine" not in args  # sealing is started over IPC, after the zero tip (nodes module docstring)


def test_a_zero_price_transfer_and_deployment_from_accounts_without_ether_are_sealed(geth_network, geth_rpc):
    official, vendor = Account.create(), Account.create()
    assert int(geth_rpc.call("eth_getBalance", [official.address, "latest"]), 16) == 0
    transfer = wait_receipt(geth_rpc, send_raw(geth_rpc, zero_price_tx(0, to=vendor.address, gas=21_000), official.key))
    deployed = wait_receipt(geth_rpc, send_raw(geth_rpc, zero_price_tx(1, data=INIT_CODE), official.key))
    assert int(transfer["status"], 16) == 1 and int(deployed["status"], 16) == 1
    assert int(transfer["effectiveGasPrice"], 16) == 0
    # The archive node does not seal: a sealer got the transactions from it over p2p and included them.
    assert block_signer(geth_network, int(transfer["blockNumber"], 16)) in sealer_addresses(geth_network)
    contract = deployed["contractAddress"]
    assert int(geth_rpc.call("eth_call", [{"to": contract}, "latest"]), 16) == 42
    # An archive node answers for old state: before the deployment there was no code.
    before = hex(int(deployed["blockNumber"], 16) - 1)
    assert geth_rpc.call("eth_getCode", [contract, before]) == "0x"
    assert int(geth_rpc.call("eth_getTransactionCount", [official.address, before]), 16) <= 1


def test_status_and_up_again_from_the_command_line(geth_network):
    data_dir = str(geth_network.data_dir)
    status = invoke("status", "--engine", "geth", "--data-dir", data_dir)
    assert status.exit_code == 0, status.output
    for name in ("treasury", "central-bank", "settlement-bank", "archive"):
        assert name in status.output
    for node in geth_network.sealers:
        assert f"{node.spec.address} ({node.name})" in status.output
    again = invoke("up", "--engine", "geth", "--data-dir", data_dir)
    assert again.exit_code == 0, again.output
    assert "already running" in again.output
    listed = invoke("validators", "list", "--data-dir", data_dir)
    assert listed.exit_code == 0 and "No pending votes" in listed.output, listed.output


def test_bad_input_is_one_sentence_and_changes_nothing(geth_network, tmp_path):
    data_dir = str(geth_network.data_dir)
    for args, sentence in (
        (("up", "--engine", "geth", "--data-dir", data_dir, "--port", "9000"), "--port applies to Anvil"),
        (("init", "--data-dir", data_dir), "already holds a Geth network"),
        (("validators", "propose-add", "0x123", "--data-dir", data_dir), "malformed"),
        (("validators", "propose-add", "0x" + "11" * 20, "--on", "archive", "--data-dir", data_dir), "not a sealer"),
        (("validators", "propose-remove", "0x" + "11" * 20, "--on", "bank", "--data-dir", data_dir), "no node 'bank'"),
        (("up", "--engine", "geth", "--data-dir", str(tmp_path / "none")), "holds no Geth network"),
        (("init", "--data-dir", str(tmp_path / "a"), "--passphrase-env", "DT_TEST_UNSET_VARIABLE"), "not set"),
        (
            ("init", "--data-dir", str(tmp_path / "b"), "--passphrase-file", str(ROOT / "pyproject.toml")),
            "inside the project folder",
        ),
        (("init", "--engine", "anvil"), "Anvil needs no init"),
    ):
        result = invoke(*args)
        assert result.exit_code != 0, (args, result.output)
        assert sentence in result.output, (args, result.output)
        assert "Traceback" not in result.output
    assert not (tmp_path / "a" / "network.json").exists() and not (tmp_path / "b" / "network.json").exists()
    assert geth_network.proposals() == {"treasury": {}, "central-bank": {}, "settlement-bank": {}}


def test_the_passphrase_is_in_no_log_command_line_or_output_and_keys_are_encrypted(geth_network, tmp_path):
    source = geth_network.passphrase_source
    assert source.kind == "generated" and (Path(source.where).stat().st_mode & 0o777) == 0o600
    secret = source.read()
    record = geth_network.record_file.read_text()
    assert secret not in record
    for node in geth_network.nodes:
        assert secret not in node.log_file.read_text(errors="replace")
        assert not any(secret in arg for arg in command_line(geth_network.pid(node.name)))
        if node.spec.role == "sealer":
            (keyfile,) = (node.directory / "keystore").iterdir()
            content = json.loads(keyfile.read_text())
            assert content["crypto"]["kdf"] == "scrypt" and (keyfile.stat().st_mode & 0o777) == 0o600
    # A passphrase from the operator's environment: recorded by name, never by value.
    made = CliRunner().invoke(
        cli,
        ["init", "--data-dir", str(tmp_path / "env"), "--free-ports", "--light-kdf", "--passphrase-env", "DT_PASS"],
        env={"DT_PASS": "correct horse battery staple"},
    )
    assert made.exit_code == 0, made.output
    assert "correct horse" not in made.output
    saved = json.loads((tmp_path / "env" / "network.json").read_text())
    assert saved["passphrase"] == {"kind": "env", "where": "DT_PASS"}
    assert not (tmp_path / "env" / "passphrase").exists()


# --- restarts ------------------------------------------------------------------------------------------------


def test_restarts_keep_state_and_history(geth_network, geth_rpc):
    official = Account.create()
    receipt = wait_receipt(geth_rpc, send_raw(geth_rpc, zero_price_tx(0, data=INIT_CODE), official.key))
    number = int(receipt["blockNumber"], 16)
    sealed = geth_rpc.call("eth_getBlockByNumber", [hex(number), False])["hash"]

    # One sealer restarted: it resumes sealing, the chain never stopped.
    geth_network.restart("treasury")
    treasury = str(geth_network.node("treasury").spec.address).lower()
    head = geth_network.head()
    wait_for(
        lambda: treasury in {block_signer(geth_network, n) for n in range(head + 1, geth_network.head() + 1)},
        20,
        "the restarted sealer sealing again",
        every=0.2,
    )

    # The whole network stopped and started again.
    before = geth_network.head()
    stops = geth_network.stop()
    assert all(stop.pid is not None and stop.graceful for stop in stops)
    report = geth_network.start()
    assert report.head >= before and all(node.started for node in report.nodes)
    geth_network.wait_for_block(before + 2, timeout=20)
    assert geth_rpc.call("eth_getBlockByNumber", [hex(number), False])["hash"] == sealed
    assert geth_rpc.call("eth_getTransactionReceipt", [receipt["transactionHash"]])["blockHash"] == sealed
    assert int(geth_rpc.call("eth_call", [{"to": receipt["contractAddress"]}, "latest"]), 16) == 42
    assert geth_rpc.call("eth_getCode", [receipt["contractAddress"], hex(number - 1)]) == "0x"
    # Still zero-price after the restart (the sealers' minimum tip is set again on every start).
    other = Account.create()
    assert int(wait_receipt(geth_rpc, send_raw(geth_rpc, zero_price_tx(0, to=other.address), other.key))["status"], 16)


# --- governance ----------------------------------------------------------------------------------------------


def wait_vote_cast(network: GethNetwork, geth_rpc, voter: str, address: str, since: int) -> int:
    """Waits for a block after `since` that `voter` sealed with its vote on `address` in it (Clique puts the
    candidate into the header's coinbase); returns that block's number."""
    voter_address = str(network.node(voter).spec.address).lower()

    def cast() -> int | None:
        for number in range(since + 1, network.head() + 1):
            block = geth_rpc.call("eth_getBlockByNumber", [hex(number), False])
            if block["miner"].lower() == address.lower() and block_signer(network, number) == voter_address:
                return number
        return None

    return wait_for(cast, 20, f"{voter}'s vote on {address}", every=0.2)


def test_a_signer_is_added_and_removed_only_by_a_majority_of_signers(geth_network, geth_rpc):
    newcomer = Account.create().address
    head = geth_network.head()
    assert geth_network.propose(newcomer, True, on=["treasury"]) == ["treasury"]
    assert geth_network.proposals()["treasury"] == {newcomer: True}
    # One vote of three, cast in a block: the set stays.
    voted = wait_vote_cast(geth_network, geth_rpc, "treasury", newcomer, head)
    geth_network.wait_for_block(voted + 1)
    assert newcomer not in geth_network.signers()
    # A second vote makes two of three: the newcomer is a signer.
    geth_network.propose(newcomer, True, on=["central-bank"])
    wait_for(lambda: newcomer in geth_network.signers(), 20, "the signer added by two votes of three", every=0.2)
    assert len(geth_network.signers()) == 4
    # Removing needs three of the four now; two votes are not enough.
    head = geth_network.head()
    result = invoke(
        "validators",
        "propose-remove",
        newcomer,
        "--on",
        "treasury",
        "--on",
        "central-bank",
        "--data-dir",
        str(geth_network.data_dir),
    )
    assert result.exit_code == 0 and "3 of the 4" in result.output, result.output
    last = max(wait_vote_cast(geth_network, geth_rpc, voter, newcomer, head) for voter in ("treasury", "central-bank"))
    geth_network.wait_for_block(last + 1)
    assert newcomer in geth_network.signers()
    geth_network.propose(newcomer, False, on=["settlement-bank"])
    wait_for(lambda: newcomer not in geth_network.signers(), 20, "the signer removed by three votes of four", every=0.2)
    assert {s.lower() for s in geth_network.signers()} == sealer_addresses(geth_network)
    # Votes in effect are discarded by the next vote, so no stale vote can bring the newcomer back.
    assert geth_network.tidy_votes() == {
        "treasury": [newcomer],
        "central-bank": [newcomer],
        "settlement-bank": [newcomer],
    }
    assert geth_network.proposals() == {"treasury": {}, "central-bank": {}, "settlement-bank": {}}


# --- node permissioning --------------------------------------------------------------------------------------


def test_a_node_outside_the_static_set_neither_peers_nor_seals(geth_network, tmp_path):
    outsider = start_outside_node(geth_network, tmp_path / "outsider", seal=True)
    try:
        start = geth_network.head()
        geth_network.wait_for_block(start + 5, timeout=20)
        # It knows every node's enode and dials them all: each refuses it (not trusted, no inbound slot).
        assert outsider.peers() == 0
        assert outsider.head() == 0
        for node in geth_network.status().nodes:
            assert node.peers == 3, node
        # It "seals" with a key that is not a signer: geth refuses to, and nothing of it reaches the chain.
        head = geth_network.head()
        outsider_address = str(outsider.node.spec.address).lower()
        assert all(block_signer(geth_network, n) != outsider_address for n in range(1, head + 1))
        assert "unauthorized signer" in outsider.node.log_file.read_text(errors="replace")
    finally:
        outsider.stop()

"""The local pilot chain (`ape run network up | down | status`, deposit_token.chain.node) on real Anvil processes.

Every test runs its own node on a free port with a data directory in pytest's tmp_path, so the default
chain (.anvil/pilot on port 8545) is never touched. Transactions are signed here with eth_account by fresh
keys that hold no ether: that they are mined shows the zero gas price.
"""

from __future__ import annotations

import importlib
import json
import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest
from click.testing import CliRunner
from eth_account import Account

from deposit_token.chain import deployment
from deposit_token.chain import node as net
from deposit_token.chain.rpc import RpcClient
from deposit_token.paths import ROOT
from deposit_token.processes import free_port

PILOT = "ethereum:pilot:node"
# Init code that deploys the 10-byte runtime `PUSH1 42 PUSH1 0 MSTORE PUSH1 32 PUSH1 0 RETURN` (returns 42).
RUNTIME = "602a60005260206000f3"
INIT_CODE = "0x" + "69" + RUNTIME + "600052600a6016f3"


def load_cli():
    module = importlib.import_module("deposit_token.cli.network")
    return module.cli


def ape_run(*args: str, env: dict[str, str], timeout: int = 120) -> subprocess.CompletedProcess:
    ape = Path(sys.executable).with_name("ape")
    return subprocess.run(
        [str(ape if ape.exists() else "ape"), "run", "network", *args],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=timeout,
    )


def send(rpc: RpcClient, tx: dict, key: bytes) -> str:
    signed = Account.sign_transaction(tx, key)
    return rpc.call("eth_sendRawTransaction", ["0x" + bytes(signed.raw_transaction).hex()])


def wait_receipt(rpc: RpcClient, tx_hash: str, timeout: float = 15.0) -> dict:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        receipt = rpc.call("eth_getTransactionReceipt", [tx_hash])
        if receipt:
            return receipt
        time.sleep(0.1)
    raise AssertionError(f"{tx_hash} was not mined within {timeout} s")


def deploy_probe(rpc: RpcClient, key: bytes, nonce: int = 0) -> tuple[str, dict]:
    """Deploys the 42-returning contract from an account without ether (legacy tx, gas price 0)."""
    tx = {"nonce": nonce, "gasPrice": 0, "gas": 100_000, "data": INIT_CODE, "value": 0, "chainId": net.DEFAULT_CHAIN_ID}
    receipt = wait_receipt(rpc, send(rpc, tx, key))
    assert int(receipt["status"], 16) == 1
    return receipt["contractAddress"], receipt


@pytest.fixture
def config(tmp_path) -> net.NetworkConfig:
    return net.NetworkConfig(data_dir=tmp_path / "chain", port=free_port(), state_interval=1)


@pytest.fixture
def node(config):
    """A running node; stopped (and checked stopped) after the test."""
    result = net.start(config)
    yield result
    net.stop(config)
    assert net.running_pid(config) is None


# --- the command line --------------------------------------------------------------------------------------


def test_cli_up_status_down(tmp_path, monkeypatch):
    """`ape run network up` returns while Anvil keeps running; `status` finds it; `ape run network down` stops
    it; then `status` says so. (up and down run as separate processes, as an operator runs them; status runs
    in-process, which is quicker on this busy machine.)"""
    data_dir, port = tmp_path / "cli-chain", free_port()
    env = dict(
        os.environ, APE_DATA_FOLDER=str(tmp_path / "ape"), **{deployment.DEPLOYMENTS_ENV: str(tmp_path / "deployments")}
    )
    monkeypatch.setenv(deployment.DEPLOYMENTS_ENV, str(tmp_path / "deployments"))
    cli, runner = load_cli(), CliRunner()
    up = ape_run("up", "--data-dir", str(data_dir), "--port", str(port), "--block-time", "0.5", env=env)
    assert up.returncode == 0, up.stdout + up.stderr
    assert "20261" in up.stdout and f"ethereum:pilot:http://127.0.0.1:{port}" in up.stdout
    config = net.config_for(data_dir)
    assert config.port == port and config.block_time == 0.5
    try:
        pid = net.running_pid(config)
        assert pid is not None, "Anvil did not outlive `ape run network up`"
        assert os.getsid(pid) == pid  # its own session: a Ctrl-C in the terminal does not reach it
        time.sleep(1.2)  # a few blocks for the block time measurement
        status = runner.invoke(cli, ["status", "--data-dir", str(data_dir)])  # port found in network.json
        assert status.exit_code == 0, status.output
        assert "running, ours" in status.output and "20261" in status.output
        assert "configured 0.5 s" in status.output
        assert "No deployment recorded for ethereum:pilot:node" in status.output
    finally:
        down = ape_run("down", "--data-dir", str(data_dir), env=env)
    assert down.returncode == 0, down.stdout + down.stderr
    assert "Stopped the pilot chain" in down.stdout
    assert net.running_pid(config) is None and not net.port_in_use("127.0.0.1", port)
    assert config.state_file.exists()
    after = runner.invoke(cli, ["status", "--data-dir", str(data_dir)])
    assert after.exit_code == 1 and "not running" in after.output
    again = runner.invoke(cli, ["down", "--data-dir", str(data_dir)])
    assert again.exit_code == 0 and "is not running" in again.output


@pytest.mark.parametrize("args", [[], ["up"], ["down"], ["status"]])
def test_every_command_has_help(args):
    result = CliRunner().invoke(load_cli(), [*args, "--help"])
    assert result.exit_code == 0, result.output
    assert "Usage:" in result.output
    if args == ["up"]:
        for option in ("--data-dir", "--port", "--block-time", "--chain-id", "--state-interval"):
            assert option in result.output


def test_cli_refuses_a_busy_port_with_a_clear_message(tmp_path):
    with socket.socket() as listener:
        listener.bind(("127.0.0.1", 0))
        listener.listen()
        port = listener.getsockname()[1]
        result = CliRunner().invoke(load_cli(), ["up", "--data-dir", str(tmp_path / "c"), "--port", str(port)])
    assert result.exit_code == 1
    assert f"port {port} on 127.0.0.1 is already in use" in result.output
    assert "Traceback" not in result.output
    assert not (tmp_path / "c" / net.PID_FILE).exists()


# --- the library -------------------------------------------------------------------------------------------


def test_refuses_a_second_start_of_the_same_data_dir_and_a_port_in_use(config, node, tmp_path):
    with pytest.raises(net.AlreadyRunningError, match="already running"):
        net.start(config)
    other = net.NetworkConfig(data_dir=tmp_path / "other", port=config.port)
    with pytest.raises(net.PortBusyError, match=f"port {config.port} .* already in use"):
        net.start(other)
    assert net.running_pid(config) == node.pid  # the running node was left alone


def test_zero_gas_price_lets_accounts_without_ether_transact(config, node):
    rpc = RpcClient(config.rpc_url)
    assert rpc.call("eth_gasPrice") == "0x0"
    payer = Account.create()
    assert int(rpc.call("eth_getBalance", [payer.address, "latest"]), 16) == 0
    legacy = {
        "nonce": 0,
        "gasPrice": 0,
        "gas": 21_000,
        "to": payer.address,
        "value": 0,
        "chainId": net.DEFAULT_CHAIN_ID,
    }
    eip1559 = {
        "nonce": 1,
        "maxFeePerGas": 0,
        "maxPriorityFeePerGas": 0,
        "gas": 21_000,
        "to": payer.address,
        "value": 0,
        "chainId": net.DEFAULT_CHAIN_ID,
        "type": 2,
    }
    hashes = [send(rpc, legacy, payer.key), send(rpc, eip1559, payer.key)]
    receipts = [wait_receipt(rpc, h) for h in hashes]
    assert all(int(r["status"], 16) == 1 for r in receipts)
    block = rpc.call("eth_getBlockByNumber", [receipts[-1]["blockNumber"], False])
    assert int(block["baseFeePerGas"], 16) == 0
    assert int(block["gasLimit"], 16) == net.DEFAULT_GAS_LIMIT


def test_state_survives_down_and_up_and_status_shows_the_deployment(config, node, tmp_path):
    rpc = RpcClient(config.rpc_url)
    deployer = Account.create()
    token, receipt = deploy_probe(rpc, deployer.key)
    records = tmp_path / "deployments"
    deployment.write_record(
        deployment.record_path(PILOT, records),
        {
            "network": PILOT,
            "chain_id": net.DEFAULT_CHAIN_ID,
            "token": token,
            "admin_module": deployer.address,
            "block": {"number": int(receipt["blockNumber"], 16)},
        },
    )
    before = net.status(config, PILOT, records)
    assert before.answering and before.ours and before.chain_id == net.DEFAULT_CHAIN_ID
    [record] = before.deployments
    assert record.token == token and record.token_has_code is True and record.module_has_code is False
    assert record.note == "live"
    head = rpc.block_number()

    stopped = net.stop(config)
    assert stopped.pid == node.pid and stopped.graceful
    assert net.status(config, PILOT, records).deployments[0].note == "chain not answering: code not checked"
    restarted = net.start(config)
    assert restarted.resumed and restarted.head_block >= head
    assert rpc.call("eth_getCode", [token, "latest"]) == "0x" + RUNTIME
    assert rpc.call("eth_call", [{"to": token, "data": "0x"}, "latest"]) == "0x" + (42).to_bytes(32, "big").hex()
    assert int(rpc.call("eth_getTransactionCount", [deployer.address, "latest"]), 16) == 1
    assert rpc.call("eth_getTransactionReceipt", [receipt["transactionHash"]])["contractAddress"] == token
    after = net.status(config, PILOT, records)
    assert after.deployments[0].token_has_code is True
    assert after.block_time == pytest.approx(1.0, abs=0.35) and after.blocks_measured >= 1


def test_a_killed_node_keeps_what_was_dumped_and_refuses_another_chain_id(config, node):
    rpc = RpcClient(config.rpc_url)
    token, _ = deploy_probe(rpc, Account.create().key)
    time.sleep(config.state_interval + 1.5)  # a periodic dump has happened since
    os.kill(node.pid, signal.SIGKILL)
    assert net._wait_for_exit(node.pid, 10)
    assert net.running_pid(config) is None
    with pytest.raises(net.NetworkError, match="holds the state of chain id 20261"):
        net.start(net.NetworkConfig(data_dir=config.data_dir, port=config.port, chain_id=999))
    net.start(config)
    assert rpc.call("eth_getCode", [token, "latest"]) == "0x" + RUNTIME


def test_status_reports_a_record_whose_token_has_no_code(config, node, tmp_path):
    records = tmp_path / "deployments"
    ghost = Account.create().address
    deployment.write_record(
        deployment.record_path(PILOT, records), {"network": PILOT, "chain_id": net.DEFAULT_CHAIN_ID, "token": ghost}
    )
    [record] = net.status(config, PILOT, records).deployments
    assert record.token_has_code is False and "no code" in record.note
    deployment.write_record(deployment.record_path(PILOT, records), {"network": PILOT, "chain_id": 1, "token": ghost})
    [record] = net.status(config, PILOT, records).deployments
    assert record.token_has_code is None and "chain id 1" in record.note
    assert json.loads(config.info_file.read_text())["chain_id"] == net.DEFAULT_CHAIN_ID


# --- chain time ----------------------------------------------------------------------------------------------


def block_stamps(rpc: RpcClient, first: int, last: int) -> list[int]:
    blocks = rpc.batch([("eth_getBlockByNumber", [hex(n), False]) for n in range(first, last + 1)])
    return [int(block["timestamp"], 16) for block in blocks]


def test_chain_time_never_goes_backwards_across_down_and_up(config, node):
    """Regression: Anvil does not restore its clock from the state file, so a chain time-travelled ahead and
    restarted went back to the machine's clock (a negative block time in `status`)."""
    rpc = RpcClient(config.rpc_url)
    chain_now = block_stamps(rpc, rpc.block_number(), rpc.block_number())[0]
    rpc.call("evm_setNextBlockTimestamp", [chain_now + 5 * 365 * 86_400])  # five years ahead of the chain
    rpc.call("evm_mine", [])
    head = rpc.block_number()
    [last] = block_stamps(rpc, head, head)
    assert net.stop(config).graceful
    assert net.last_block_timestamp(config.state_file) == last

    restarted = net.start(config)
    rpc.call("evm_mine", [])
    time.sleep(2.2)  # and a couple of interval-mined blocks
    new_head = rpc.block_number()
    assert new_head >= head + 2
    stamps = block_stamps(rpc, head, new_head)
    assert stamps == sorted(stamps) and stamps[1] > last, stamps
    state = net.status(config)
    assert state.block_time is not None and state.block_time >= 0
    shown = CliRunner().invoke(load_cli(), ["status", "--data-dir", str(config.data_dir)])
    assert shown.exit_code == 0, shown.output
    assert "block time   -" not in shown.output and " -0." not in shown.output and " -1" not in shown.output
    assert restarted.resumed and restarted.clock_start is not None and restarted.clock_start > last


def test_a_new_chain_starts_at_the_chosen_genesis_time_and_a_saved_one_refuses_it(tmp_path):
    data_dir, port = tmp_path / "genesis", free_port()
    cli, runner = load_cli(), CliRunner()
    bad = runner.invoke(cli, ["up", "--data-dir", str(data_dir), "--port", str(port), "--genesis-time", "soon"])
    assert bad.exit_code == 1 and "--genesis-time 'soon' is neither unix seconds" in bad.output
    assert "Traceback" not in bad.output and not (data_dir / net.PID_FILE).exists()

    up = runner.invoke(cli, ["up", "--data-dir", str(data_dir), "--port", str(port), "--genesis-time", "2031-03-01"])
    config = net.config_for(data_dir)
    try:
        assert up.exit_code == 0, up.output
        assert "started at 2031-03-01 00:00 KST" in up.output
        rpc = RpcClient(config.rpc_url)
        assert block_stamps(rpc, 0, 0) == [1_930_057_200]  # 2031-03-01 00:00 KST
    finally:
        net.stop(config)
    again = runner.invoke(cli, ["up", "--data-dir", str(data_dir), "--port", str(port), "--genesis-time", "2031-03-01"])
    assert again.exit_code == 1 and "keeps its own clock" in again.output
    assert net.running_pid(config) is None


def test_a_throwaway_node_starts_at_the_simulations_genesis_time():
    from deposit_token.chain.sandbox import throwaway_node

    genesis = 1_577_836_800  # 2020-01-01 00:00 UTC: years before the machine's date
    with throwaway_node(genesis_timestamp=genesis, block_time=0.2) as config:
        rpc = RpcClient(config.rpc_url)
        assert block_stamps(rpc, 0, 0) == [genesis]
        rpc.call("evm_setNextBlockTimestamp", [genesis + 3_600])  # a simulation can set its own times from there
        rpc.call("evm_mine", [])
        assert block_stamps(rpc, rpc.block_number(), rpc.block_number()) == [genesis + 3_600]

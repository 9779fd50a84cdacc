"""The Geth network in tests: finding geth (skip, or fail under CI), zero-price transactions from accounts without
ether, and a node outside the network's static set (for the permissioning tests).

Fixtures that give a running network are in tests/geth/conftest.py; these are the plain helpers they and the test
modules share (fault tests, the gateway, deploy-on-geth tests can import them as ``support.geth``).
"""

from __future__ import annotations

import subprocess
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, NoReturn

import pytest
from eth_account import Account

from deposit_token.chain.geth import keys, nodes
from deposit_token.chain.geth.binary import GethNotFoundError, find_geth, geth_version
from deposit_token.chain.geth.cluster import GethNetwork
from deposit_token.chain.geth.nodes import Node, NodeSpec
from deposit_token.chain.rpc import RpcClient
from deposit_token.processes import free_port
from support.postgres import in_ci

CHAIN_ID = 20261
# Init code that deploys the 10-byte runtime `PUSH1 42 PUSH1 0 MSTORE PUSH1 32 PUSH1 0 RETURN` (returns 42).
RUNTIME = "602a60005260206000f3"
INIT_CODE = "0x" + "69" + RUNTIME + "600052600a6016f3"


def geth_unusable(reason: str) -> NoReturn:
    """Skip with `reason`, or fail under CI, where the Geth network's tests must run."""
    if in_ci():
        pytest.fail(f"{reason} (CI=true: Geth tests fail rather than skip)", pytrace=False)
    pytest.skip(reason)


def require_geth() -> str:
    """The geth binary (a 1.13 that seals Clique blocks), or skip / fail (CI) with the reason."""
    try:
        geth = find_geth()
        geth_version(geth)
    except GethNotFoundError as err:
        geth_unusable(str(err))
    return geth


def send_raw(rpc: RpcClient, tx: dict[str, Any], key: bytes) -> str:
    signed = Account.sign_transaction(tx, key)
    return str(rpc.call("eth_sendRawTransaction", ["0x" + bytes(signed.raw_transaction).hex()]))


def zero_price_tx(nonce: int, **fields: Any) -> dict[str, Any]:
    """A legacy (type 0) transaction priced 0: what an official without ether sends."""
    return {"nonce": nonce, "gasPrice": 0, "gas": 100_000, "value": 0, "chainId": CHAIN_ID, **fields}


def wait_receipt(rpc: RpcClient, tx_hash: str, timeout: float = 20.0) -> dict[str, Any]:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        receipt = rpc.call("eth_getTransactionReceipt", [tx_hash])
        if receipt:
            return dict(receipt)
        time.sleep(0.1)
    raise AssertionError(f"{tx_hash} was not sealed within {timeout} s")


def wait_for(predicate: Callable[[], Any], timeout: float, what: str, every: float = 0.1) -> Any:
    """Polls `predicate` every `every` s until it returns something true (returned); AssertionError naming `what`
    after `timeout` s."""
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"{what}: not within {timeout:g} s")
        time.sleep(every)


def block_signer(network: GethNetwork, number: int) -> str:
    """The address that sealed block `number` (Clique puts it in the seal, not in `miner`)."""
    with network.ipc(network.archive.name) as client:
        return str(client.call("clique_getSigner", [hex(number)])).lower()


@dataclass
class OutsideNode:
    """A geth node that is not in the network's record: its own key and directory, the network's genesis."""

    node: Node
    process: subprocess.Popen[bytes]

    def head(self) -> int:
        with self.node.ipc(5.0) as client:
            return int(client.call("eth_blockNumber"), 16)

    def peers(self) -> int:
        with self.node.ipc(5.0) as client:
            return len(client.call("admin_peers"))

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout=30)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(timeout=10)


def start_outside_node(network: GethNetwork, directory: Path, seal: bool = True) -> OutsideNode:
    """Starts a node with the network's genesis that is in nobody's static or trusted list. It knows every node
    of the network (all of them are its static and trusted peers: the strongest outsider, one that learnt the
    enode URLs) and, with `seal`, tries to seal with its own key, which is not a signer."""
    passphrase = "outsider passphrase"
    directory.mkdir(parents=True, mode=0o700)
    node_id = keys.write_node_key(directory)
    address = keys.write_keystore(directory / "keystore", passphrase, keys.LIGHT_SCRYPT_N)
    spec = NodeSpec("outsider", "sealer", free_port(), free_port(), node_id, "nobody", address)
    node = Node(spec, directory)
    geth = find_geth()
    nodes.init_database(geth, node, network.genesis)
    nodes.write_config(node, [other.spec.enode for other in network.nodes])
    process = nodes.spawn(geth, node, passphrase, network.chain_id, int(network.record["gas_limit"]))
    deadline = time.monotonic() + 30
    with nodes.wait_for_ipc(node, process, deadline) as client:
        if seal:
            nodes.wait_until_unlocked(node, client, process, deadline)
            nodes.start_sealing(client)
    return OutsideNode(node, process)

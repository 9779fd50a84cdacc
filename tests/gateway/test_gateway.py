"""The JSON-RPC gateway in front of a real Anvil node with a deployed token, over real HTTP.

One node and one gateway for the module (the `world` fixture): the token is deployed and set up through the
node directly (the treasury's setup is not what is tested here), with a business-promotion program, a vendor
and an enrolled, funded spender; the chain's clock starts on a working Monday morning in 2030 (KST) so payments
are within the program's hours on any date. Clients use the gateway as wallets and auditors would: requests with
`Authorization: Bearer`, web3.py and `ape run wallet pay` with the key in the URL (HTTP Basic).
"""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any

import pytest
import requests
from click.testing import CliRunner
from eth_account import Account
from eth_utils import keccak
from support.rpc_proxy import RpcProxy
from web3 import Web3
from web3.exceptions import Web3RPCError

from deposit_token.chain import deployment, sandbox
from deposit_token.chain.rpc import RpcClient
from deposit_token.chain.submit import LocalSigner, Submitter, encode_call, sign_legacy
from deposit_token.domain import presets
from deposit_token.domain.categories import Category
from deposit_token.gateway import GatewayConfig, KeyStore, RunningGateway, running
from deposit_token.gateway.control import running_pid
from deposit_token.gateway.server import PIPELINE_CHUNK
from deposit_token.paths import ROOT
from deposit_token.processes import free_port

pytestmark = pytest.mark.chain

KST = timezone(timedelta(hours=9))
MONDAY_10 = datetime(2030, 1, 7, 10, 0, tzinfo=KST)
MNEMONIC = "test test test test test test test test test test test junk"  # ape's test accounts (ape-config.yaml)
SPENDER_INDEX = 8  # TEST::8 in `ape run ... --account TEST::8`
ZERO = b"\0" * 32
MAX_BODY = 256 * 1024

Account.enable_unaudited_hdwallet_features()


def ape_test_signer(index: int) -> LocalSigner:
    return LocalSigner(bytes(Account.from_mnemonic(MNEMONIC, account_path=f"m/44'/60'/0'/0/{index}").key))


def ts(moment: datetime) -> int:
    return int(moment.timestamp())


@dataclass
class World:
    node_url: str
    chain_id: int
    token: sandbox.Token
    gateway: RunningGateway
    data_dir: Path
    keys: dict[str, str]  # client name -> key
    admin: LocalSigner
    spender: LocalSigner
    vendor: str
    rpc: RpcClient  # straight to the node, for checks


@pytest.fixture(scope="module")
def world(tmp_path_factory) -> Iterator[World]:
    data_dir = tmp_path_factory.mktemp("gateway")
    with sandbox.throwaway_node(genesis_timestamp=ts(MONDAY_10), block_time=0.25) as node:
        submitter = Submitter(node.rpc_url, node.chain_id, gas_price=0)
        admin, issuer, manager, registrar = (ape_test_signer(i) for i in range(4))
        spender, vendor = ape_test_signer(SPENDER_INDEX), ape_test_signer(17)
        treasury = sandbox.address_for("gateway treasury")
        token = sandbox.deploy_token(submitter, admin)
        sandbox.setup_roles(
            submitter,
            token,
            admin,
            {"ISSUER_ROLE": issuer, "PROGRAM_MANAGER_ROLE": manager, "VENDOR_REGISTRAR_ROLE": registrar},
            [treasury],
        )
        spec = presets.business_promotion(
            "BP-2030-GW", treasury, ts(MONDAY_10 - timedelta(days=6)), ts(MONDAY_10 + timedelta(days=170))
        )
        sandbox.checked(
            submitter.submit(
                [
                    token.call(issuer, "mint", treasury, 10**9),
                    token.call(manager, "createProgram", spec.as_params()),
                    token.call(registrar, "registerVendor", vendor.address, int(Category.RESTAURANT), "Hanok Table"),
                ]
            ),
            "program and vendor",
        )
        sandbox.checked(
            submitter.submit([token.call(manager, "enrol", [spender.address], 1, [b"MOEF".ljust(32, b"\0")])]), "enrol"
        )
        sandbox.checked(
            submitter.submit([token.call(manager, "allocate", b"\1".rjust(32, b"\0"), 1, [spender.address], [10**6])]),
            "allocate",
        )
        submitter.close()
        store = KeyStore(data_dir / "keys.json")
        keys = {
            "audit-office": store.add("audit-office", "auditor"),
            "kim": store.add("kim", "wallet"),
            "treasury": store.add("treasury", "operator"),
            "slow": store.add("slow", "wallet", rate=0.5, burst=3),
            "old": store.add("old", "wallet"),
        }
        store.revoke("old")
        config = GatewayConfig(
            upstream=node.rpc_url,
            data_dir=data_dir,
            port=0,
            token=token.address,
            poll_interval=0.3,
            max_body=MAX_BODY,
            max_batch=1000,
        )
        with running(config) as gateway, RpcClient(node.rpc_url) as rpc:
            yield World(
                node.rpc_url, node.chain_id, token, gateway, data_dir, keys, admin, spender, vendor.address, rpc
            )


# --- helpers -----------------------------------------------------------------------------------------------------

SESSION = requests.Session()
SESSION.trust_env = False


def post(world: World, payload: Any, client: str | None = None, **headers: str) -> requests.Response:
    if client is not None:
        headers.setdefault("Authorization", f"Bearer {world.keys[client]}")
    return SESSION.post(world.gateway.url, json=payload, headers=headers, timeout=30)


def call(world: World, client: str, method: str, *params: Any, call_id: Any = 1) -> dict[str, Any]:
    response = post(world, {"jsonrpc": "2.0", "id": call_id, "method": method, "params": list(params)}, client)
    assert response.status_code == 200, response.text
    answer: dict[str, Any] = response.json()
    assert answer["id"] == call_id
    return answer


def signed(
    world: World, signer: LocalSigner, data: bytes = b"", to: str | None = None, nonce: int | None = None
) -> str:
    """A raw legacy transaction (gas price 0) from `signer` to the token (or `to`)."""
    if nonce is None:
        nonce = int(world.rpc.call("eth_getTransactionCount", [signer.address, "pending"]), 16)
    raw, _ = sign_legacy(
        signer,
        nonce=nonce,
        gas_price=0,
        gas=300_000,
        to=to or world.token.address,
        value=0,
        data=data,
        chain_id=world.chain_id,
    )
    return "0x" + raw.hex()


def receipt(world: World, tx_hash: str, timeout: float = 20) -> dict[str, Any]:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        found = world.rpc.call("eth_getTransactionReceipt", [tx_hash])
        if found:
            return dict(found)
        time.sleep(0.1)
    raise AssertionError(f"{tx_hash} was not mined within {timeout} s")


def access_log(world: World) -> list[dict[str, Any]]:
    return [json.loads(line) for line in (world.data_dir / "access.log").read_text().splitlines()]


def pay_data(world: World, amount: int, receipt_no: int) -> bytes:
    return encode_call(world.token.abi, "pay", [world.vendor, amount, receipt_no.to_bytes(32, "big"), ZERO])


# --- authentication --------------------------------------------------------------------------------------------

BLOCK_NUMBER = {"jsonrpc": "2.0", "id": 1, "method": "eth_blockNumber", "params": []}


def test_no_key_a_bad_key_and_a_revoked_key_are_refused(world):
    for headers, words in (
        ({}, "authentication required"),
        ({"Authorization": "Bearer dtgw_not-a-key"}, "not valid"),
        ({"Authorization": "Basic !!!"}, "authentication required"),
        ({"Authorization": f"Bearer {world.keys['old']}"}, "client old was revoked"),
    ):
        response = post(world, BLOCK_NUMBER, **headers)
        assert response.status_code == 401, headers
        assert response.json()["error"]["code"] == -32001 and words in response.json()["error"]["message"]
        assert "Basic" in response.headers["WWW-Authenticate"]
    basic = SESSION.post(world.gateway.url, json=BLOCK_NUMBER, auth=("anyone", world.keys["kim"]), timeout=10)
    assert basic.status_code == 200 and basic.json()["result"].startswith("0x")
    assert call(world, "kim", "eth_chainId")["result"] == hex(world.chain_id)


# --- methods ---------------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("client", "method", "code"),
    [
        ("audit-office", "eth_sendRawTransaction", -32004),
        ("audit-office", "debug_traceTransaction", -32601),
        ("kim", "admin_peers", -32601),
        ("kim", "trace_block", -32601),
        ("treasury", "eth_sendTransaction", -32601),
        ("treasury", "personal_unlockAccount", -32601),
        ("treasury", "clique_propose", -32601),
        ("treasury", "txpool_content", -32601),
        ("treasury", "miner_start", -32601),
        ("treasury", "eth_sign", -32601),
        ("treasury", "anvil_setBalance", -32601),
        ("kim", "no_suchMethod", -32601),
    ],
)
def test_methods_outside_the_role_are_refused(world, client, method, code):
    answer = call(world, client, method, "0x00")
    assert answer["error"]["code"] == code and method in answer["error"]["message"]


def test_each_role_reads(world):
    balance_of = "0x" + encode_call(world.token.abi, "balanceOf", [world.spender.address]).hex()
    for client in ("audit-office", "kim", "treasury"):
        answer = call(world, client, "eth_call", {"to": world.token.address, "data": balance_of}, "latest")
        assert int(answer["result"], 16) > 0
        logs = call(world, client, "eth_getLogs", {"address": world.token.address, "fromBlock": "0x0"})
        assert len(logs["result"]) > 5
        assert call(world, client, "eth_accounts")["result"] == []  # answered by the gateway: no node keys


# --- senders ---------------------------------------------------------------------------------------------------


def test_an_unknown_key_cannot_send_and_a_registered_spender_pays(world):
    stranger = sandbox.signer_for("gateway stranger")
    refused = call(world, "kim", "eth_sendRawTransaction", signed(world, stranger, pay_data(world, 1_000, 1)))
    assert refused["error"]["code"] == -32003
    assert stranger.address in refused["error"]["message"] and "not a registered participant" in str(refused)
    assert int(world.rpc.call("eth_getTransactionCount", [stranger.address, "pending"]), 16) == 0  # never sent
    paid = call(world, "kim", "eth_sendRawTransaction", signed(world, world.spender, pay_data(world, 45_000, 2)))
    assert int(receipt(world, paid["result"])["status"], 16) == 1


def test_a_role_granted_later_is_allowed_at_once_and_a_freeze_refuses(world):
    officer = sandbox.signer_for("gateway compliance officer")
    follower = world.gateway.gateway.follower
    assert follower is not None
    first = call(world, "treasury", "eth_sendRawTransaction", signed(world, officer, to=officer.address))
    assert first["error"]["code"] == -32003
    role = keccak(text="COMPLIANCE_ROLE")
    grant = encode_call(world.token.abi, "grantRole", [role, officer.address])
    granted = call(world, "treasury", "eth_sendRawTransaction", signed(world, world.admin, grant))
    assert int(receipt(world, granted["result"])["status"], 16) == 1
    # no waiting for the registry's next poll: a refused sender makes it read the new block first
    accepted = call(world, "treasury", "eth_sendRawTransaction", signed(world, officer, to=officer.address))
    assert "result" in accepted, accepted

    freeze = encode_call(world.token.abi, "freeze", [world.spender.address, "gateway test"])
    froze = call(world, "kim", "eth_sendRawTransaction", signed(world, officer, freeze))
    assert int(receipt(world, froze["result"])["status"], 16) == 1
    # a freeze, like a revocation, takes effect at the registry's next poll (poll_interval): until then the
    # chain itself refuses the frozen account's payments
    wait_until(lambda: bytes.fromhex(world.spender.address[2:]) in follower.registry.frozen, "the freeze")
    frozen = call(world, "kim", "eth_sendRawTransaction", signed(world, world.spender, pay_data(world, 1_000, 3)))
    assert frozen["error"]["code"] == -32003 and "is frozen" in frozen["error"]["message"], frozen
    unfreeze = encode_call(world.token.abi, "unfreeze", [world.spender.address, "gateway test done"])
    receipt(world, call(world, "kim", "eth_sendRawTransaction", signed(world, officer, unfreeze))["result"])
    wait_until(lambda: follower.registry.frozen == set(), "the unfreeze to be seen")

    revoke = encode_call(world.token.abi, "revokeRole", [role, officer.address])
    receipt(world, call(world, "treasury", "eth_sendRawTransaction", signed(world, world.admin, revoke))["result"])
    wait_until(  # a revocation takes effect at the registry's next poll (poll_interval)
        lambda: "error" in call(world, "kim", "eth_sendRawTransaction", signed(world, officer, to=officer.address)),
        "the revoked officer to be refused",
    )


def wait_until(condition: Any, what: str, timeout: float = 10) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(0.1)


# --- batches and limits ------------------------------------------------------------------------------------------


def test_a_mixed_batch_is_answered_call_by_call_in_order(world):
    stranger = sandbox.signer_for("gateway batch stranger")
    batch = [
        {"jsonrpc": "2.0", "id": 7, "method": "eth_chainId", "params": []},
        {"jsonrpc": "2.0", "id": 7, "method": "debug_traceBlockByNumber", "params": ["latest"]},
        {"jsonrpc": "2.0", "id": "s", "method": "eth_sendRawTransaction", "params": [signed(world, stranger)]},
        {"jsonrpc": "2.0", "id": "p", "method": "eth_sendRawTransaction", "params": [signed(world, world.spender)]},
        {"jsonrpc": "2.0", "id": "bad", "params": []},
        {"jsonrpc": "2.0", "id": "raw", "method": "eth_sendRawTransaction", "params": ["0x1234"]},
        {"jsonrpc": "2.0", "id": None, "method": "eth_accounts"},
    ]
    response = post(world, batch, "kim")
    assert response.status_code == 200
    answers = response.json()
    assert [a["id"] for a in answers] == [7, 7, "s", "p", "bad", "raw", None]
    assert answers[0]["result"] == hex(world.chain_id)
    assert [a.get("error", {}).get("code") for a in answers] == [None, -32601, -32003, None, -32600, -32602, None]
    assert answers[3]["result"].startswith("0x") and answers[6]["result"] == []


def test_a_long_batch_is_pipelined_in_order(world):
    """Above PIPELINE_CHUNK calls the gateway forwards chunk by chunk while it checks the next: the answers keep
    the client's order, a refused sender in a later chunk is refused, and a sender's nonces reach the node in
    order (two payments of one spender, one in the first chunk and one in the last, both succeed)."""
    stranger = sandbox.signer_for("gateway pipelined stranger")
    nonce = int(world.rpc.call("eth_getTransactionCount", [world.spender.address, "pending"]), 16)
    size = PIPELINE_CHUNK * 2 + 50
    batch: list[dict[str, Any]] = [
        {"jsonrpc": "2.0", "id": i, "method": "eth_chainId", "params": []} for i in range(size)
    ]
    first = signed(world, world.spender, pay_data(world, 1_000, 10), nonce=nonce)
    last = signed(world, world.spender, pay_data(world, 1_000, 11), nonce=nonce + 1)
    batch[3] = {"jsonrpc": "2.0", "id": 3, "method": "eth_sendRawTransaction", "params": [first]}
    batch[PIPELINE_CHUNK + 7]["method"] = "debug_traceBlockByNumber"
    batch[size - 9] = {
        "jsonrpc": "2.0",
        "id": size - 9,
        "method": "eth_sendRawTransaction",
        "params": [signed(world, stranger)],
    }
    batch[size - 2] = {"jsonrpc": "2.0", "id": size - 2, "method": "eth_sendRawTransaction", "params": [last]}
    answers = post(world, batch, "treasury").json()
    assert [a["id"] for a in answers] == list(range(size))
    codes = {i: a["error"]["code"] for i, a in enumerate(answers) if "error" in a}
    assert codes == {PIPELINE_CHUNK + 7: -32601, size - 9: -32003}
    for i in (3, size - 2):
        assert int(receipt(world, answers[i]["result"])["status"], 16) == 1


def test_a_node_that_does_not_answer_is_a_clear_error(world, tmp_path):
    with RpcProxy(world.node_url) as proxy:
        config = GatewayConfig(upstream=proxy.url, data_dir=tmp_path, port=0, token=world.token.address)
        key = KeyStore(config.keys_path).add("kim", "wallet")
        with running(config) as gateway:
            proxy.close()  # the node goes away after the gateway started
            answer = SESSION.post(gateway.url, json=BLOCK_NUMBER, auth=("kim", key), timeout=30)
            assert answer.status_code == 502
            assert answer.json()["error"]["code"] == -32002 and "did not answer" in answer.json()["error"]["message"]
            batch = SESSION.post(gateway.url, json=[BLOCK_NUMBER, BLOCK_NUMBER], auth=("kim", key), timeout=30)
            assert batch.status_code == 502 and [a["error"]["code"] for a in batch.json()] == [-32002, -32002]


def test_the_rate_limit_refuses_with_retry_after(world):
    for _ in range(3):  # the burst
        assert post(world, BLOCK_NUMBER, "slow").status_code == 200
    limited = post(world, BLOCK_NUMBER, "slow")
    assert limited.status_code == 429 and int(limited.headers["Retry-After"]) >= 1
    assert limited.json()["error"]["code"] == -32005 and "over its rate limit" in limited.json()["error"]["message"]
    too_big = post(world, [BLOCK_NUMBER] * 4, "slow")
    assert too_big.status_code == 429 and "split the batch" in too_big.json()["error"]["message"]
    assert post(world, BLOCK_NUMBER, "kim").status_code == 200  # another client has its own bucket


def test_size_limits_and_malformed_requests(world):
    headers = {"Authorization": f"Bearer {world.keys['kim']}", "Content-Type": "application/json"}
    big = SESSION.post(world.gateway.url, data=b"[" + b" " * MAX_BODY + b"]", headers=headers, timeout=10)
    assert big.status_code == 413 and big.json()["error"]["code"] == -32005
    assert f"{MAX_BODY:,} bytes" in big.json()["error"]["message"]
    long_batch = post(world, [BLOCK_NUMBER] * 1001, "kim")
    assert long_batch.status_code == 413 and "limit of 1,000 calls" in long_batch.json()["error"]["message"]
    not_json = SESSION.post(world.gateway.url, data=b"{nope", headers=headers, timeout=10)
    assert not_json.status_code == 400 and not_json.json()["error"]["code"] == -32700
    for body, code in ((b"[]", -32600), (b"42", -32600)):
        answer = SESSION.post(world.gateway.url, data=body, headers=headers, timeout=10)
        assert answer.status_code == 400 and answer.json()["error"]["code"] == code


# --- clients -----------------------------------------------------------------------------------------------------


def test_web3_through_the_gateway(world):
    """web3.py with the key in the URL: reads, a payment sent and its receipt awaited, a refusal as its error."""
    w3 = Web3(Web3.HTTPProvider(world.gateway.url_for("kim", world.keys["kim"])))
    assert w3.eth.chain_id == world.chain_id and w3.eth.block_number > 0
    tx_hash = w3.eth.send_raw_transaction(signed(world, world.spender, pay_data(world, 2_000, 4)))
    assert w3.eth.wait_for_transaction_receipt(tx_hash, timeout=20)["status"] == 1
    with pytest.raises(Web3RPCError, match="not a registered participant"):
        w3.eth.send_raw_transaction(signed(world, sandbox.signer_for("gateway web3 stranger")))


def test_ape_wallet_pay_through_the_gateway(world, tmp_path):
    """An official's `ape run wallet pay` with the gateway's URL (key as the Basic-auth password): the payment
    is made, and neither ape's output nor the access log holds the key."""
    record = {"network": "ethereum:pilot:node", "chain_id": world.chain_id, "token": world.token.address}
    record["block"] = {"number": 0}
    deployment.write_record(deployment.record_path("ethereum:pilot:node", tmp_path), record)
    env = dict(os.environ, **{deployment.DEPLOYMENTS_ENV: str(tmp_path)})
    network = f"ethereum:pilot:{world.gateway.url_for('kim', world.keys['kim'])}"
    ape = Path(sys.executable).with_name("ape")
    result = subprocess.run(
        [
            str(ape),
            "run",
            "wallet",
            "pay",
            "Hanok Table",
            "12,000",
            "--receipt",
            "GW-1",
            "--network",
            network,
            "--account",
            f"TEST::{SPENDER_INDEX}",
        ],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=180,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert "paid 12,000 KRW to Hanok Table" in result.stdout
    assert world.keys["kim"] not in result.stdout + result.stderr
    sends = [e for e in access_log(world) if e.get("method") == "eth_sendRawTransaction" and e["outcome"] == "ok"]
    assert sends[-1]["client"] == "kim" and sends[-1]["sender"] == world.spender.address


def test_an_ape_command_with_a_wrong_key_says_the_gateway_refused_it(world, tmp_path):
    """ape alone would say "no (supported) node found": the command says what the gateway said, in one line."""
    ape = Path(sys.executable).with_name("ape")
    network = f"ethereum:pilot:{world.gateway.url}"
    env = dict(os.environ, **{deployment.DEPLOYMENTS_ENV: str(tmp_path), "DEPOSIT_TOKEN_RPC_KEY": "dtgw_not_a_key"})
    result = subprocess.run(
        [str(ape), "run", "treasury", "programs", "--network", network],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=180,
    )
    out = result.stdout + result.stderr
    assert result.returncode != 0
    assert "the API key is not valid; give your gateway API key in $DEPOSIT_TOKEN_RPC_KEY" in out, out
    assert "Traceback" not in out and "dtgw_not_a_key" not in out


# --- the access log ----------------------------------------------------------------------------------------------


def test_the_access_log_names_clients_senders_and_outcomes_and_holds_no_secret(world):
    # the parameters of an auditor's call are not the log's business
    secret_data = "0x" + encode_call(world.token.abi, "balanceOf", [sandbox.address_for("someone")]).hex()
    call(world, "audit-office", "eth_call", {"to": world.token.address, "data": secret_data}, "latest")
    stranger = sandbox.signer_for("gateway logged stranger")
    raw = signed(world, stranger)
    call(world, "kim", "eth_sendRawTransaction", raw)
    post(world, BLOCK_NUMBER, Authorization="Bearer dtgw_wrong")
    text = (world.data_dir / "access.log").read_text()
    assert not [name for name, key in world.keys.items() if key in text]
    assert secret_data[10:] not in text and raw[2:] not in text and "dtgw_" not in text
    entries = access_log(world)
    assert all({"time", "client", "outcome", "latency_ms"} <= set(e) for e in entries)
    refused = [e for e in entries if e.get("sender") == stranger.address][-1]
    assert refused["client"] == "kim" and refused["role"] == "wallet" and refused["outcome"] == "refused"
    assert refused["reason"] == "sender" and refused["code"] == -32003
    assert refused["tx"] == "0x" + keccak(bytes.fromhex(raw[2:])).hex()
    assert entries[-1]["client"] is None and entries[-1]["reason"] == "bad-key"
    read = [e for e in entries if e.get("method") == "eth_call" and e["client"] == "audit-office"][-1]
    assert read["outcome"] == "ok" and "sender" not in read


# --- the command line and a detached gateway -----------------------------------------------------------------


def gateway_cli():
    from deposit_token.cli.gateway import cli

    return cli


def test_cli_keys_and_a_detached_gateway(world, tmp_path):
    cli, runner, data_dir = gateway_cli(), CliRunner(mix_stderr=False), str(tmp_path / "gw")
    added = runner.invoke(cli, ["keys", "add", "lee", "--role", "auditor", "--data-dir", data_dir])
    assert added.exit_code == 0, added.output
    key = added.stdout.strip()
    assert key.startswith("dtgw_") and len(key) > 40 and "shown only now" in added.stderr
    listed = runner.invoke(cli, ["keys", "list", "--data-dir", data_dir])
    assert listed.exit_code == 0 and "lee" in listed.output and "auditor" in listed.output and key not in listed.output
    port = free_port()
    started = runner.invoke(
        cli,
        [
            "start",
            "--upstream",
            world.node_url,
            "--port",
            str(port),
            "--token",
            world.token.address,
            "--data-dir",
            data_dir,
        ],
    )
    assert started.exit_code == 0, started.output
    try:
        assert running_pid(Path(data_dir)) is not None
        answer = SESSION.post(f"http://127.0.0.1:{port}", json=BLOCK_NUMBER, auth=("lee", key), timeout=10)
        assert answer.status_code == 200 and "result" in answer.json()
        status = runner.invoke(cli, ["status", "--data-dir", data_dir])
        assert status.exit_code == 0 and f"127.0.0.1:{port}" in status.output and world.token.address in status.output
        revoked = runner.invoke(cli, ["keys", "revoke", "lee", "--data-dir", data_dir])
        assert revoked.exit_code == 0 and "Revoked" in revoked.output
        refused = SESSION.post(f"http://127.0.0.1:{port}", json=BLOCK_NUMBER, auth=("lee", key), timeout=10)
        assert refused.status_code == 401 and "revoked" in refused.json()["error"]["message"]
    finally:
        stopped = runner.invoke(cli, ["stop", "--data-dir", data_dir])
    assert stopped.exit_code == 0 and "Stopped the gateway" in stopped.output
    assert runner.invoke(cli, ["status", "--data-dir", data_dir]).exit_code == 1
    gateway_log = (tmp_path / "gw" / "gateway.log").read_text() + (tmp_path / "gw" / "access.log").read_text()
    assert "gateway on http://127.0.0.1" in gateway_log and key not in gateway_log


@pytest.mark.parametrize(
    ("args", "words"),
    [
        (["serve", "--token", "0x1234"], "malformed"),
        (["serve", "--allow-sender", "0xZZ"], "malformed"),
        (["serve", "--upstream", "ftp://node"], "not an http(s) URL"),
        (["serve", "--token", "0x" + "11" * 20, "--deployment", "x.json"], "not both"),
        (["serve", "--upstream", "http://127.0.0.1:9"], "did not answer"),
        (["keys", "revoke", "nobody"], "no client named nobody"),
        (["keys", "add", "x y", "--role", "wallet"], "not usable"),
        (["keys", "add", "lee", "--role", "admin"], "Invalid value for '--role'"),
    ],
)
def test_cli_bad_input_is_one_sentence(tmp_path, args, words):
    extra = ["--data-dir", str(tmp_path)] + (["--port", str(free_port())] if args[0] == "serve" else [])
    result = CliRunner().invoke(gateway_cli(), [*args, *extra])
    assert result.exit_code != 0 and words in result.output, result.output
    assert "Traceback" not in result.output and not (tmp_path / "keys.json").exists()


def test_cli_a_busy_port_is_one_sentence(world, tmp_path):
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        port = str(busy.getsockname()[1])
        for command in ("serve", "start"):
            args = [command, "--upstream", world.node_url, "--port", port, "--data-dir", str(tmp_path / command)]
            result = CliRunner().invoke(gateway_cli(), args)
            assert result.exit_code == 1 and f"cannot listen on 127.0.0.1:{port}" in result.output, result.output
            assert "Traceback" not in result.output and len(result.output.strip().splitlines()) == 1


@pytest.mark.parametrize(
    "args",
    [[], ["keys"], ["keys", "add"], ["keys", "list"], ["keys", "revoke"], ["serve"], ["start"], ["stop"], ["status"]],
)
def test_every_command_has_help(args):
    result = CliRunner().invoke(gateway_cli(), [*args, "--help"])
    assert result.exit_code == 0 and "Usage:" in result.output, result.output


# --- before the token exists; a reorganisation --------------------------------------------------------------


def test_before_the_token_exists_only_operators_send_from_allowed_senders(world, tmp_path):
    """A gateway started before deploy (--deployment names a record not written yet, --allow-sender the
    deployer): an operator deploys through it with the Submitter; a wallet key may not use the deployer; once
    the record is written the gateway follows the new token, whose admin (the deployer) may then send through
    any client that may send."""
    deployer = sandbox.signer_for("gateway second deployer")
    record = tmp_path / "deployments" / "ethereum-pilot-node.json"
    config = GatewayConfig(
        upstream=world.node_url,
        data_dir=tmp_path / "gw",
        port=0,
        deployment=record,
        allow_senders=(deployer.address,),
        poll_interval=0.3,
    )
    store = KeyStore(config.keys_path)
    keys = {"ops": store.add("ops", "operator"), "wal": store.add("wal", "wallet")}
    with running(config) as gateway:
        as_wallet = SESSION.post(
            gateway.url,
            json={"jsonrpc": "2.0", "id": 1, "method": "eth_sendRawTransaction", "params": [signed(world, deployer)]},
            auth=("wal", keys["wal"]),
            timeout=10,
        ).json()
        assert as_wallet["error"]["code"] == -32003 and "follows no token yet" in as_wallet["error"]["message"]
        before = int(world.rpc.call("eth_blockNumber"), 16)  # the token's events start after this block
        with Submitter(gateway.url_for("ops", keys["ops"]), world.chain_id, gas_price=0) as submitter:
            token = sandbox.deploy_token(submitter, deployer)
        deployment.write_record(
            record,
            {
                "token": token.address,
                "chain_id": world.chain_id,
                "deployer": deployer.address,
                "block": {"number": before},
            },
        )
        wait_until(lambda: gateway.gateway.follower.registry.token == token.address, "the record to be followed")
        again = SESSION.post(
            gateway.url,
            json={"jsonrpc": "2.0", "id": 2, "method": "eth_sendRawTransaction", "params": [signed(world, deployer)]},
            auth=("wal", keys["wal"]),
            timeout=10,
        ).json()
        assert "result" in again, again


def test_a_reorganisation_rebuilds_the_registry(world):
    """Anvil's evm_revert rewinds the chain as a reorganisation would: a role granted in the dropped blocks
    is no longer honoured once the follower sees that the block it read up to is gone."""
    newcomer = sandbox.signer_for("gateway reorg newcomer")
    follower = world.gateway.gateway.follower
    rebuilds = follower.rebuilds
    snapshot = world.rpc.call("evm_snapshot")
    grant = encode_call(world.token.abi, "grantRole", [keccak(text="ISSUER_ROLE"), newcomer.address])
    receipt(world, world.rpc.call("eth_sendRawTransaction", [signed(world, world.admin, grant)]))
    wait_until(lambda: bytes.fromhex(newcomer.address[2:]) in follower.registry.roles, "the grant to be seen")
    world.rpc.call("evm_revert", [snapshot])
    wait_until(lambda: follower.rebuilds > rebuilds, "the reorganisation to be noticed")
    wait_until(lambda: bytes.fromhex(newcomer.address[2:]) not in follower.registry.roles, "the rebuilt registry")
    refused = call(world, "treasury", "eth_sendRawTransaction", signed(world, newcomer, to=newcomer.address))
    assert refused["error"]["code"] == -32003

"""The commands on the permissioned Geth network, unchanged: deploy, a payment and a refusal, a disbursal, the
indexer and verify, as an operator types them (`ape run ...` subprocesses), against the module's network of
three Clique sealers and an archive node (tests/geth/conftest.py); and the same network behind the
authenticated gateway (tests/gateway covers the gateway itself).

Geth cannot time-travel and its clock is real time: the program is valid from a day before the chain's clock to
a day after it, with the preset's hours widened around the current hour (`sim.demo.live_hours`), so the
payments are within hours at any time of day on any date. What a test does not run through a command (roles,
the program, vendors, enrolment) is set up with the project's submitter. Accounts are ape's test accounts
(`TEST::n`, ape-config.yaml's mnemonic): on this network nobody holds ether and transactions are priced 0.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass, replace
from datetime import datetime
from pathlib import Path

import pytest
from eth_account import Account
from eth_utils import keccak

from deposit_token.chain import deployment, reads, sandbox
from deposit_token.chain.contracts import system_contract_type
from deposit_token.chain.rpc import API_KEY_ENV, RpcClient, RpcConnectionError, RpcError, mask_url
from deposit_token.chain.submit import LocalSigner, Submitter, TxRequest, encode_call, sign_legacy
from deposit_token.domain import presets
from deposit_token.domain.categories import Category
from deposit_token.gateway import GatewayConfig, KeyStore, RunningGateway, running
from deposit_token.paths import ROOT
from deposit_token.processes import free_port
from deposit_token.sim.demo import KST, live_hours

MNEMONIC = "test test test test test test test test test test test junk"  # ape's test accounts (ape-config.yaml)
ADMIN, BANK, BUDGET, REGISTRAR, COMPLIANCE, TREASURY, OFFICIAL, OFFICIAL2, RESTAURANT, BAR = range(10)
PROGRAM = "BP-GETH-MOEF"
ZERO = b"\0" * 32
APE_TIMEOUT = 180

Account.enable_unaudited_hdwallet_features()


def signer(index: int) -> LocalSigner:
    return LocalSigner(bytes(Account.from_mnemonic(MNEMONIC, account_path=f"m/44'/60'/0'/0/{index}").key))


@dataclass
class Pilot:
    rpc_url: str  # the archive node's HTTP JSON-RPC
    network: str  # the ape --network choice that reaches it
    deployments: Path
    deploy_output: str
    token: sandbox.Token
    chain_id: int

    def ape(self, *args: str, network: str | None = None, env: dict[str, str] | None = None):
        """`ape run <args> --network <the Geth network>` as a subprocess, as an operator runs it."""
        ape = Path(sys.executable).with_name("ape")
        environment = dict(os.environ, **{deployment.DEPLOYMENTS_ENV: str(self.deployments)}, **(env or {}))
        return subprocess.run(
            [str(ape if ape.exists() else "ape"), "run", *args, "--network", network or self.network],
            cwd=ROOT,
            env=environment,
            capture_output=True,
            text=True,
            timeout=APE_TIMEOUT,
        )

    def pay(self, payer: int, vendor: int, amount: int, receipt: int, evidence: bytes = ZERO) -> TxRequest:
        data = encode_call(
            self.token.abi, "pay", [signer(vendor).address, amount, receipt.to_bytes(32, "big"), evidence]
        )
        return TxRequest(signer(payer), self.token.address, data, 200_000)


def ok(result: subprocess.CompletedProcess[str]) -> str:
    out = result.stdout + result.stderr
    assert result.returncode == 0, out[-4000:]
    assert "Traceback" not in out
    return out


@pytest.fixture(scope="module")
def pilot(geth_network, tmp_path_factory) -> Iterator[Pilot]:
    """The token deployed with `ape run deploy` on the Geth network; roles, a program around now, two vendors
    and two enrolled officials set up through the submitter."""
    folder = tmp_path_factory.mktemp("deployments")
    url = geth_network.rpc_url
    pilot = Pilot(url, f"ethereum:clique:{url}", folder, "", sandbox.Token("", "", system_contract_type()), 0)
    pilot.deploy_output = ok(pilot.ape("deploy", "--account", f"TEST::{ADMIN}"))
    (record_file,) = folder.glob("*.json")
    record = json.loads(record_file.read_text())
    pilot.token = sandbox.Token(record["token"], record["admin_module"], system_contract_type())
    pilot.chain_id = int(record["chain_id"])
    with Submitter(url, pilot.chain_id) as submitter:
        token, admin = pilot.token, signer(ADMIN)
        holders = {
            "ISSUER_ROLE": signer(BANK),
            "PROGRAM_MANAGER_ROLE": signer(BUDGET),
            "VENDOR_REGISTRAR_ROLE": signer(REGISTRAR),
            "COMPLIANCE_ROLE": signer(COMPLIANCE),
        }
        sandbox.setup_roles(submitter, token, admin, holders, [signer(TREASURY).address])
        now = reads.head(submitter.rpc)[1]
        spec = presets.business_promotion(PROGRAM, signer(TREASURY).address, now - 86_400, now + 86_400)
        spec = replace(spec, hours=live_hours(spec.hours, datetime.fromtimestamp(now, KST)))
        officials = [signer(OFFICIAL).address, signer(OFFICIAL2).address]
        sandbox.checked(
            submitter.submit(
                [
                    token.call(signer(BANK), "mint", signer(TREASURY).address, 10**9),
                    token.call(signer(BUDGET), "createProgram", spec.as_params(), gas=1_500_000),
                    token.call(
                        signer(REGISTRAR),
                        "registerVendor",
                        signer(RESTAURANT).address,
                        int(Category.RESTAURANT),
                        "Hanok",
                    ),
                    token.call(
                        signer(REGISTRAR), "registerVendor", signer(BAR).address, int(Category.ENTERTAINMENT_BAR), "Bar"
                    ),
                    token.call(signer(BUDGET), "enrol", officials, 1, [b"MOEF".ljust(32, b"\0")] * 2),
                ]
            ),
            "set-up",
        )
    yield pilot


# --- deploy ------------------------------------------------------------------------------------------------------


def test_deploy_on_geth_records_the_paris_evm(pilot):
    (record_file,) = pilot.deployments.glob("*.json")
    record = json.loads(record_file.read_text())
    assert record["compiler"]["settings"]["evm_version"] == "paris" and "evm=paris" in pilot.deploy_output
    assert record["chain_id"] == 20261 and record["network"] == "ethereum:clique:node"
    with RpcClient(pilot.rpc_url) as rpc:
        assert rpc.has_code(pilot.token.address) and rpc.has_code(record["admin_module"])
        assert rpc.call("web3_clientVersion").startswith("Geth/v1.13")


# --- a disbursal, a payment and refusals ------------------------------------------------------------------------


def test_a_disbursal_goes_through_the_bulk_submitter_without_traces(pilot, tmp_path):
    rows = [(signer(OFFICIAL).address, 3_000_000, "GETH-001"), (signer(OFFICIAL2).address, 3_000_000, "GETH-002")]
    csv = tmp_path / "december.csv"
    csv.write_text("address,amount,reference\n" + "".join(f"{a},{n},{r}\n" for a, n, r in rows))
    out = ok(pilot.ape("treasury", "disburse", str(csv), "--program", PROGRAM, "--account", f"TEST::{BUDGET}"))
    assert "every row" in out and "each exactly once" in out, out
    with RpcClient(pilot.rpc_url) as rpc:
        states = reads.accounts_of(rpc, pilot.token.address, [a for a, _, _ in rows])
    assert [s.balance for s in states] == [3_000_000, 3_000_000]


def test_a_payment_and_a_refusal_with_its_rule(pilot):
    paid = ok(
        pilot.ape("wallet", "pay", "Hanok", "45,000", "--receipt", "GETH-INV-1", "--account", f"TEST::{OFFICIAL}")
    )
    assert "paid 45,000 KRW to Hanok" in paid
    refused = pilot.ape("wallet", "pay", "Bar", "45,000", "--receipt", "GETH-INV-2", "--account", f"TEST::{OFFICIAL}")
    out = refused.stdout + refused.stderr
    assert refused.returncode == 1 and "Traceback" not in out
    assert "ENTERTAINMENT_BAR" in out and f"'{PROGRAM}' does not allow" in out, out


def test_refused_transactions_are_explained_without_traces(pilot):
    """Geth serves no trace_ methods and its HTTP has no debug_: the submitter confirms by block receipts and
    finds each revert by replaying the call, before the block (per-payment limit) or after it (a receipt that an
    earlier transaction of the same block took)."""
    with Submitter(pilot.rpc_url, pilot.chain_id) as submitter:
        outcomes = submitter.submit(
            [
                pilot.pay(OFFICIAL, RESTAURANT, 1_250_000, 7001, keccak(text="attendees")),
                pilot.pay(OFFICIAL, RESTAURANT, 20_000, 7002),
                pilot.pay(OFFICIAL, RESTAURANT, 30_000, 7002),  # the same invoice, next nonce: the same block
            ]
        )
        assert submitter.confirm_mode() == "blocks"
    over, first, repeated = outcomes
    assert not over.status and "above the per-payment limit of 1,000,000" in (over.error or ""), over.error
    assert first.status and first.gas_used
    assert not repeated.status  # (its block is first's but for a block boundary between the two arrivals)
    assert "has already been paid to vendor" in (repeated.error or ""), repeated.error


# --- the audit -----------------------------------------------------------------------------------------------------


def test_the_indexer_and_verify_against_the_archive_node(pilot, tmp_path):
    db = tmp_path / "audit.sqlite"
    indexed = ok(pilot.ape("audit", "index", "--confirmations", "2", "--db", str(db)))
    assert "checkpoint block" in indexed
    verified = ok(pilot.ape("audit", "verify", "--db", str(db)))
    assert "no mismatch" in verified, verified


# --- authentication: the gateway in front of the archive node ------------------------------------------------------


@dataclass
class Gate:
    gateway: RunningGateway
    keys: dict[str, str]


@pytest.fixture(scope="module")
def gate(pilot, tmp_path_factory) -> Iterator[Gate]:
    data_dir = tmp_path_factory.mktemp("gateway")
    store = KeyStore(data_dir / "keys.json")
    keys = {
        "kim": store.add("kim", "wallet"),
        "audit-office": store.add("audit-office", "auditor"),
        "slow": store.add("slow", "auditor", rate=2, burst=2),
    }
    config = GatewayConfig(upstream=pilot.rpc_url, data_dir=data_dir, port=0, token=pilot.token.address)
    with running(config) as gateway:
        yield Gate(gateway, keys)


def test_the_client_sends_the_key_and_never_shows_it(gate, monkeypatch):
    url, key = gate.gateway.url, gate.keys["audit-office"]
    monkeypatch.delenv(API_KEY_ENV, raising=False)
    with RpcClient(url) as anonymous, pytest.raises(RpcError) as refused:
        anonymous.block_number()
    assert refused.value.http_status == 401 and "authentication required" in str(refused.value)
    monkeypatch.setenv(API_KEY_ENV, key)  # Bearer
    with RpcClient(url) as bearer:
        assert bearer.block_number() > 0
    monkeypatch.delenv(API_KEY_ENV)
    basic_url = gate.gateway.url_for("audit-office", key)  # user-info: Basic
    with RpcClient(basic_url) as basic:
        assert basic.block_number() > 0
        assert key not in repr(basic) and key not in basic.display_url and "***@" in basic.display_url
    wrong = gate.gateway.url_for("audit-office", "dtgw_" + "x" * 40)
    with RpcClient(wrong) as bad, pytest.raises(RpcError) as refused:
        bad.block_number()
    assert "not valid" in str(refused.value) and "x" * 40 not in str(refused.value)
    down = f"http://audit-office:{key}@127.0.0.1:{free_port()}"
    with RpcClient(down, timeout=2) as nowhere, pytest.raises(RpcConnectionError) as unreachable:
        nowhere.block_number()
    assert key not in str(unreachable.value) and mask_url(down) in str(unreachable.value)


def test_the_gateway_refuses_methods_roles_and_unknown_senders_on_geth(pilot, gate):
    """In front of the real archive node: the never-exposed namespaces (geth's own admin, debug, clique, txpool,
    miner and personal APIs) for every client, sending for an auditor, and a raw transaction from a key the
    token does not know, each with its own JSON-RPC error; a registered official's payment goes through."""
    with RpcClient(gate.gateway.url_for("kim", gate.keys["kim"])) as wallet:
        for method, params in (
            ("admin_peers", []),
            ("debug_traceBlockByNumber", ["latest"]),
            ("clique_getSigners", []),
            ("txpool_content", []),
            ("miner_start", []),
            ("personal_listAccounts", []),
            ("eth_sendTransaction", [{"from": signer(OFFICIAL).address}]),
        ):
            with pytest.raises(RpcError) as refused:
                wallet.call(method, params)
            assert refused.value.code is not None and method in refused.value.message, refused.value
        nonce = int(wallet.call("eth_getTransactionCount", [signer(OFFICIAL).address, "pending"]), 16)
        request = pilot.pay(OFFICIAL, RESTAURANT, 1_000, 7201)
        fields = {"gas_price": 0, "gas": 200_000, "to": pilot.token.address, "value": 0, "data": request.data}
        raw = "0x" + sign_legacy(request.signer, nonce=nonce, chain_id=pilot.chain_id, **fields)[0].hex()
        stranger = LocalSigner(keccak(b"a key the token does not know"))
        raw_stranger = "0x" + sign_legacy(stranger, nonce=0, chain_id=pilot.chain_id, **fields)[0].hex()
        with pytest.raises(RpcError) as unknown:
            wallet.call("eth_sendRawTransaction", [raw_stranger])
        assert "not a registered participant" in unknown.value.message and stranger.address in unknown.value.message
        with RpcClient(gate.gateway.url_for("audit-office", gate.keys["audit-office"])) as auditor:
            with pytest.raises(RpcError) as read_only:
                auditor.call("eth_sendRawTransaction", [raw])
            assert "may not call eth_sendRawTransaction" in read_only.value.message
        tx_hash = wallet.call("eth_sendRawTransaction", [raw])
        deadline = time.monotonic() + 30
        while (receipt := wallet.call("eth_getTransactionReceipt", [tx_hash])) is None:
            assert time.monotonic() < deadline, "the official's payment was not mined"
            time.sleep(0.3)
        assert int(receipt["status"], 16) == 1


def test_a_rate_limit_is_waited_out(gate):
    """The gateway answers HTTP 429 with Retry-After once a client's burst is spent: the client waits, then
    gets its answer."""
    with RpcClient(gate.gateway.url_for("slow", gate.keys["slow"])) as slow:
        began = time.monotonic()
        heads = [slow.block_number() for _ in range(3)]
        assert heads == sorted(heads) and time.monotonic() - began >= 0.9


def test_the_submitter_through_the_gateway(pilot, gate, monkeypatch):
    """The gateway exposes neither trace_ nor debug_: the submitter still confirms and names the rule."""
    monkeypatch.setenv(API_KEY_ENV, gate.keys["kim"])
    with Submitter(gate.gateway.url, pilot.chain_id) as submitter:
        paid, refused = submitter.submit(
            [pilot.pay(OFFICIAL2, RESTAURANT, 12_000, 7101), pilot.pay(OFFICIAL2, BAR, 12_000, 7102)]
        )
        assert submitter.confirm_mode() == "blocks"
    assert paid.status, paid.error
    assert not refused.status and "ENTERTAINMENT_BAR" in (refused.error or ""), refused.error


def test_a_command_through_the_gateway_never_shows_the_key(pilot, gate):
    key = gate.keys["kim"]
    network = f"ethereum:clique:{gate.gateway.url_for('kim', key)}"
    result = pilot.ape("wallet", "balance", "--account", f"TEST::{OFFICIAL}", network=network)
    out = ok(result)
    assert "RESTAURANT" in out and key not in out
    down = f"ethereum:clique:http://kim:{key}@127.0.0.1:{free_port()}"
    failed = pilot.ape("wallet", "balance", "--account", f"TEST::{OFFICIAL}", network=down)
    assert failed.returncode != 0 and key not in failed.stdout + failed.stderr

"""Dual control on the Geth Clique network (Paris EVM, real time): the Safe v1.4.1 contracts from npm deploy and
run there; the issuer role held by a 2-of-3 Safe mints only with two owners' signatures, proposed, shown,
signed and executed with `ape run safe` against the archive node."""

from __future__ import annotations

import json

from click.testing import CliRunner
from eth_utils import keccak
from support.geth_pilot import deploy_pilot

from deposit_token.chain import deployment, sandbox
from deposit_token.chain.contracts import system_contract_type
from deposit_token.chain.rpc import RpcClient
from deposit_token.chain.submit import Submitter, encode_call
from deposit_token.cli import safe as safe_command
from deposit_token.ops.multisig import proposal, safes, words

ISSUER = keccak(text="ISSUER_ROLE")


def test_issuance_through_a_safe_on_geth(geth_network, tmp_path, monkeypatch):
    pilot = deploy_pilot(geth_network.rpc_url, spenders=1, vendors=1, label="geth-safe")
    url, token, operator = pilot.rpc_url, pilot.token.address, pilot.operator
    owners = [sandbox.signer_for(f"geth-safe: owner {i}") for i in range(3)]
    with Submitter(url, pilot.chain_id, gas_price=0) as submitter:
        infra = safes.deploy_infrastructure(submitter, operator)
        issuer_safe = safes.create_safe(submitter, operator, infra, [o.address for o in owners], 2, 0)
        sandbox.checked(
            submitter.submit(
                [
                    pilot.token.call(operator, "grantRole", ISSUER, issuer_safe),
                    pilot.token.call(operator, "setMintAllowance", issuer_safe, 10**9),
                    pilot.token.call(operator, "revokeRole", ISSUER, operator.address),
                ]
            ),
            "hand-over",
        )
    with RpcClient(url) as rpc:
        state = safes.read_safe(rpc, issuer_safe)
        mint = encode_call(system_contract_type(), "mint", [pilot.treasury, 250_000])
        tx = proposal.SafeTx(safe=issuer_safe, chain_id=pilot.chain_id, to=token, data=mint, nonce=state.nonce)
        assert tx.hash() == safes.contract_tx_hash(rpc, tx)
        assert safes.simulate(rpc, tx, infra.simulate_tx_accessor) is None
        assert safes.simulate(rpc, tx, None) is None  # eth_call from the Safe's address: Geth allows it
        too_much = proposal.SafeTx(
            safe=issuer_safe,
            chain_id=pilot.chain_id,
            to=token,
            data=encode_call(system_contract_type(), "mint", [pilot.treasury, 10**10]),
            nonce=state.nonce,
        )
        assert "may mint" in (safes.simulate(rpc, too_much, infra.simulate_tx_accessor) or "")
        before = int(rpc.call("eth_call", [{"to": token, "data": _balance(pilot.treasury)}, "latest"]), 16)

    record = {
        "token": token,
        "chain_id": pilot.chain_id,
        "network": url,
        "safe_contracts": {name: getattr(infra, name) for name in vars(infra)},
        "safes": {"issuer": {"address": issuer_safe, "roles": ["ISSUER_ROLE"]}},
    }
    deployment.write_record(deployment.record_path(url, tmp_path), record)
    monkeypatch.setenv(deployment.DEPLOYMENTS_ENV, str(tmp_path))
    path = tmp_path / "mint.json"
    proposal.Proposal(tx, words.describe(tx, token), url, token=token, safe_label="issuer").write(path)

    shown = CliRunner().invoke(safe_command.cli, ["show", str(path)])
    assert shown.exit_code == 0, shown.output
    assert f"mint 250,000 KRW into treasury {pilot.treasury}" in " ".join(shown.output.split())
    for owner in owners[:2]:  # signed offline, as each owner would on their own machine
        signed = proposal.Proposal.read(path)
        signed.add(proposal.sign(signed.tx, owner))
        signed.write(path)
    assert len(json.loads(path.read_text())["signatures"]) == 2
    executor = sandbox.signer_for("geth-safe: executor")  # holds no ether: the chain's gas price is 0
    outcome = safes.execute(url, proposal.Proposal.read(path), executor, gas_price=0)
    assert outcome.status
    with RpcClient(url) as rpc:
        after = int(rpc.call("eth_call", [{"to": token, "data": _balance(pilot.treasury)}, "latest"]), 16)
        assert after == before + 250_000
        assert safes.read_safe(rpc, issuer_safe).nonce == state.nonce + 1
    replay = CliRunner().invoke(safe_command.cli, ["show", str(path)])
    assert "can no longer run" in " ".join(replay.output.split())


def _balance(who: str) -> str:
    return "0x" + encode_call(system_contract_type(), "balanceOf", [who]).hex()

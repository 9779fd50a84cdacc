"""Safe events in the audit database (issue 11): who approved each privileged action.

A 2-of-3 compliance Safe (Safe v1.4.1 from npm, SafeL2) on a throwaway Anvil node pauses the token with one
owner's EIP-712 signature plus the executing owner's own approval, fails nothing, then adds an owner and raises
its threshold. `audit.sync.safe.sync` indexes the Safe's events into SQLite (migration 0005), and
`audit.query.approvals` names the approvers of the pause's transaction, the executor, the threshold and the
outcome, and lists the owner changes. Syncing twice changes nothing; a rollback drops the rows above a block.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone

import pytest
from eth_utils import keccak

from deposit_token.audit.db import store
from deposit_token.audit.query import approvals
from deposit_token.audit.sync import safe as safe_sync
from deposit_token.chain import sandbox
from deposit_token.chain.rpc import RpcClient
from deposit_token.chain.submit import LocalSigner, Submitter, encode_call
from deposit_token.ops.multisig import proposal, safes

pytestmark = pytest.mark.chain

MONDAY_10 = datetime(2030, 1, 7, 10, 0, tzinfo=timezone(timedelta(hours=9)))


@dataclass
class World:
    url: str
    token: sandbox.Token
    safe: str
    owners: list[LocalSigner]
    pause_tx: str
    rpc: RpcClient


def execute(url: str, safe: str, chain_id: int, to: str, data: bytes, signer: LocalSigner, executor: LocalSigner):
    with RpcClient(url) as rpc:
        nonce = safes.read_safe(rpc, safe).nonce
    tx = proposal.SafeTx(safe=safe, chain_id=chain_id, to=to, data=data, nonce=nonce)
    offer = proposal.Proposal(tx, [], url)
    offer.add(proposal.sign(tx, signer))
    return safes.execute(url, offer, executor)  # the executor's own approval (v = 1) is the second


@pytest.fixture(scope="module")
def world() -> Iterator[World]:
    with sandbox.throwaway_node(genesis_timestamp=int(MONDAY_10.timestamp())) as node:
        admin = sandbox.signer_for("safe audit admin")
        owners = [sandbox.signer_for(f"safe audit owner {i}") for i in range(4)]
        with Submitter(node.rpc_url, node.chain_id, gas_price=0) as submitter:
            token = sandbox.deploy_token(submitter, admin)
            infra = safes.deploy_infrastructure(submitter, admin)
            safe = safes.create_safe(submitter, admin, infra, [o.address for o in owners[:3]], 2, 0)
            role = keccak(text="COMPLIANCE_ROLE")
            sandbox.checked(submitter.submit([token.call(admin, "grantRole", role, safe)]), "grant")
        pause = encode_call(token.abi, "pause", [])
        done = execute(node.rpc_url, safe, node.chain_id, token.address, pause, owners[0], owners[2])
        add = safes.call_data("addOwnerWithThreshold(address,uint256)", owners[3].address, 3)
        execute(node.rpc_url, safe, node.chain_id, safe, add, owners[1], owners[0])
        with RpcClient(node.rpc_url) as rpc:
            yield World(node.rpc_url, token, safe, owners, str(done.tx_hash), rpc)


def test_the_approvers_of_a_privileged_action_are_indexed(world, tmp_path):
    engine = store.open_database(f"sqlite:///{tmp_path / 'audit.sqlite'}")
    head = int(world.rpc.call("eth_blockNumber"), 16)
    first = safe_sync.sync(engine, world.rpc, [world.safe], 0, head)
    assert first.rows >= 6  # 2 executions (transaction + success each), AddedOwner, ChangedThreshold
    assert safe_sync.sync(engine, world.rpc, [world.safe], 0, head).rows == 0  # idempotent

    (pause,) = approvals.approvals_of(engine, world.pause_tx)
    owners = [o.address for o in world.owners]
    assert pause.safe == world.safe and pause.nonce == 0 and pause.threshold == 2 and pause.succeeded
    assert sorted(pause.approvers) == sorted([owners[0], owners[2]]) and pause.executor == owners[2]
    assert pause.target == world.token.address and pause.data == "0x" + encode_call(world.token.abi, "pause", []).hex()
    with RpcClient(world.url) as rpc:
        tx = proposal.SafeTx(
            safe=world.safe, chain_id=rpc.chain_id(), to=pause.target, data=bytes.fromhex(pause.data[2:]), nonce=0
        )
        assert pause.safe_tx_hash == "0x" + safes.contract_tx_hash(rpc, tx).hex()

    history = approvals.approvals_by_safe(engine, world.safe)
    assert [a.nonce for a in history] == [0, 1] and sorted(history[1].approvers) == sorted(owners[:2])
    changes = approvals.owner_changes(engine, world.safe)
    assert [(c.event, c.owner, c.threshold) for c in changes] == [
        ("AddedOwner", owners[3], None),
        ("ChangedThreshold", None, 3),
    ]
    assert safe_sync.rollback(engine, history[1].block_number - 1) >= 3
    assert [a.nonce for a in approvals.approvals_by_safe(engine, world.safe)] == [0]

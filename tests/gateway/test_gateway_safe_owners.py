"""The gateway admits the owners of a Safe that holds a token role (issue 11): a Safe acts only through
`execTransaction`, which one of its owners' keys sends, and owners are not registered participants of the token.

One Anvil node and one gateway for the module: the token, the Safe v1.4.1 contracts (npm) and a 2-of-3
compliance Safe set up through the node directly; the Safe's owners then pause the token through the gateway,
an owner removed from the Safe is refused from then on, an added owner is admitted, and once the Safe loses its
role none of its owners may send.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
from typing import Any

import pytest
import requests
from eth_utils import keccak

from deposit_token.chain import sandbox
from deposit_token.chain.rpc import RpcClient
from deposit_token.chain.submit import LocalSigner, Submitter, encode_call, sign_legacy
from deposit_token.gateway import GatewayConfig, KeyStore, RunningGateway, running
from deposit_token.ops.multisig import proposal, safes

pytestmark = pytest.mark.chain

MONDAY_10 = datetime(2030, 1, 7, 10, 0, tzinfo=timezone(timedelta(hours=9)))
COMPLIANCE = keccak(text="COMPLIANCE_ROLE")
SESSION = requests.Session()
SESSION.trust_env = False


@dataclass
class World:
    chain_id: int
    token: sandbox.Token
    safe: str
    owners: list[LocalSigner]
    admin: LocalSigner
    gateway: RunningGateway
    key: str
    rpc: RpcClient


@pytest.fixture(scope="module")
def world(tmp_path_factory) -> Iterator[World]:
    data_dir = tmp_path_factory.mktemp("gateway-safe")
    with sandbox.throwaway_node(genesis_timestamp=int(MONDAY_10.timestamp()), block_time=0.25) as node:
        admin = sandbox.signer_for("safe gateway admin")
        owners = [sandbox.signer_for(f"safe gateway owner {i}") for i in range(4)]  # the 4th is added later
        with Submitter(node.rpc_url, node.chain_id, gas_price=0) as submitter:
            token = sandbox.deploy_token(submitter, admin)
            infra = safes.deploy_infrastructure(submitter, admin)
            safe = safes.create_safe(submitter, admin, infra, [o.address for o in owners[:3]], 2, 0)
            sandbox.checked(submitter.submit([token.call(admin, "grantRole", COMPLIANCE, safe)]), "grant")
        store = KeyStore(data_dir / "keys.json")
        key = store.add("compliance-office", "operator")
        config = GatewayConfig(upstream=node.rpc_url, data_dir=data_dir, port=0, token=token.address, poll_interval=0.3)
        with running(config) as gateway, RpcClient(node.rpc_url) as rpc:
            yield World(node.chain_id, token, safe, owners, admin, gateway, key, rpc)


def send(world: World, signer: LocalSigner, to: str, data: bytes) -> dict[str, Any]:
    """eth_sendRawTransaction through the gateway of a transaction from `signer` (gas price 0)."""
    nonce = int(world.rpc.call("eth_getTransactionCount", [signer.address, "pending"]), 16)
    raw, _ = sign_legacy(
        signer, nonce=nonce, gas_price=0, gas=500_000, to=to, value=0, data=data, chain_id=world.chain_id
    )
    payload = {"jsonrpc": "2.0", "id": 1, "method": "eth_sendRawTransaction", "params": ["0x" + raw.hex()]}
    response = SESSION.post(world.gateway.url, json=payload, headers={"Authorization": f"Bearer {world.key}"})
    assert response.status_code == 200, response.text
    answer: dict[str, Any] = response.json()
    if "result" in answer:
        deadline = time.monotonic() + 20
        while not (found := world.rpc.call("eth_getTransactionReceipt", [answer["result"]])):
            assert time.monotonic() < deadline, "not mined"
            time.sleep(0.1)
        assert int(found["status"], 16) == 1, found
    return answer


def through_safe(world: World, to: str, data: bytes, signers: list[LocalSigner], executor: LocalSigner) -> dict:
    """execTransaction of the Safe, signed by `signers`, sent through the gateway by `executor`."""
    state = safes.read_safe(world.rpc, world.safe)
    tx = proposal.SafeTx(safe=world.safe, chain_id=world.chain_id, to=to, data=data, nonce=state.nonce)
    signatures = proposal.pack([proposal.sign(tx, s) for s in signers])
    return send(world, executor, world.safe, safes.call_data(safes.EXEC, *tx.exec_args(signatures)))


def token_call(world: World, fn: str, *args: Any) -> bytes:
    return encode_call(world.token.abi, fn, list(args))


def paused(world: World) -> bool:
    answer = world.rpc.call("eth_call", [{"to": world.token.address, "data": "0x" + token_call(world, "paused").hex()}])
    return int(answer, 16) == 1


def refused(answer: dict[str, Any], who: LocalSigner) -> bool:
    return answer.get("error", {}).get("code") == -32003 and who.address in answer["error"]["message"]


def test_a_safes_owner_executes_through_the_gateway_and_an_outsider_is_refused(world):
    first, second, third, newcomer = world.owners
    outsider = sandbox.signer_for("safe gateway outsider")
    pause = token_call(world, "pause")
    assert refused(through_safe(world, world.token.address, pause, [first, second], outsider), outsider)
    assert through_safe(world, world.token.address, pause, [first, second], third).get("result")
    assert paused(world)
    unpause = token_call(world, "unpause")
    assert through_safe(world, world.token.address, unpause, [second, third], first).get("result")
    assert not paused(world)
    assert refused(through_safe(world, world.token.address, pause, [second, third], newcomer), newcomer)


def test_owners_follow_the_safes_added_and_removed_owners_and_its_role(world):
    first, second, third, newcomer = world.owners
    follower = world.gateway.gateway.follower
    assert follower is not None
    # the Safe adds the newcomer (threshold stays 2): admitted from the next poll, here forced by the refusal path
    add = safes.call_data("addOwnerWithThreshold(address,uint256)", newcomer.address, 2)
    assert through_safe(world, world.safe, add, [first, second], third).get("result")
    pause = token_call(world, "pause")
    assert through_safe(world, world.token.address, pause, [first, second], newcomer).get("result")
    # ... and removes the first owner: its key is refused from then on, whatever it sends
    state = safes.read_safe(world.rpc, world.safe)
    index = state.owners.index(first.address)
    previous = safes.SENTINEL_OWNERS if index == 0 else state.owners[index - 1]
    remove = safes.call_data("removeOwner(address,address,uint256)", previous, first.address, 2)
    assert through_safe(world, world.safe, remove, [second, third], newcomer).get("result")
    unpause = token_call(world, "unpause")
    assert refused(through_safe(world, world.token.address, unpause, [second, third], first), first)
    # the admin takes the role from the Safe: none of its owners may send any more
    assert send(world, world.admin, world.token.address, token_call(world, "revokeRole", COMPLIANCE, world.safe))
    for owner in (second, third, newcomer):
        assert refused(through_safe(world, world.token.address, unpause, [second, third], owner), owner)
    assert paused(world)

"""Indexing the Safes that hold the token's roles (issue 11): who approved each privileged action.

A Safe v1.4.1 deployed as SafeL2 logs ``SafeMultiSigTransaction`` before it runs a transaction: the SafeTx's
fields, the packed signatures and ``additionalInfo = abi.encode(nonce, msg.sender, threshold)``. The owners that
approved are recovered here from the signatures over the SafeTx's EIP-712 hash (an ECDSA signature of the hash,
an ``eth_sign`` signature of it, an owner's ``approveHash``/the executor's own approval with v = 1, or a contract
owner with v = 0). Then ``ExecutionSuccess`` or ``ExecutionFailure`` carries the same safeTxHash. Owner changes
(``AddedOwner``, ``RemovedOwner``, ``ChangedThreshold``) and on-chain approvals (``ApproveHash``) are kept too.

Kept separate from the token's indexer (`deposit_token.audit.sync.indexer`): `sync` reads a block range of the
given Safes' logs into ``safe_events`` (migration 0005) and is idempotent (a row per (block, log)); `rollback`
drops the rows above a reorganisation's common ancestor.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any

from eth_abi import decode as abi_decode
from eth_account import Account
from eth_account.messages import _hash_eip191_message, encode_typed_data
from eth_utils import keccak, to_checksum_address
from sqlalchemy import Engine, text

from deposit_token.chain.rpc import RpcClient

ZERO = "0x" + "00" * 20
SIGNATURES = {
    "SafeMultiSigTransaction": (
        "SafeMultiSigTransaction(address,uint256,bytes,uint8,uint256,uint256,uint256,address,address,bytes,bytes)"
    ),
    "ExecutionSuccess": "ExecutionSuccess(bytes32,uint256)",
    "ExecutionFailure": "ExecutionFailure(bytes32,uint256)",
    "AddedOwner": "AddedOwner(address)",
    "RemovedOwner": "RemovedOwner(address)",
    "ChangedThreshold": "ChangedThreshold(uint256)",
    "ApproveHash": "ApproveHash(bytes32,address)",
}
TOPICS = {"0x" + keccak(text=signature).hex(): name for name, signature in SIGNATURES.items()}
COLUMNS = (
    "block_number",
    "log_index",
    "block_time",
    "tx_hash",
    "safe",
    "event",
    "owner",
    "threshold",
    "safe_tx_hash",
    "nonce",
    "executor",
    "approvers",
    "target",
    "operation",
    "data",
)
_SAFE_TX_TYPES = {
    "EIP712Domain": [{"name": "chainId", "type": "uint256"}, {"name": "verifyingContract", "type": "address"}],
    "SafeTx": [
        {"name": n, "type": t}
        for n, t in (
            ("to", "address"),
            ("value", "uint256"),
            ("data", "bytes"),
            ("operation", "uint8"),
            ("safeTxGas", "uint256"),
            ("baseGas", "uint256"),
            ("gasPrice", "uint256"),
            ("gasToken", "address"),
            ("refundReceiver", "address"),
            ("nonce", "uint256"),
        )
    ],
}


def safe_tx_hash(safe: str, chain_id: int, fields: Sequence[Any], nonce: int) -> bytes:
    """The SafeTx's EIP-712 hash (the Safe's getTransactionHash) from the event's first nine fields."""
    names = [f["name"] for f in _SAFE_TX_TYPES["SafeTx"]]
    message = dict(zip(names, [*fields[:9], nonce], strict=True))
    typed = {
        "types": _SAFE_TX_TYPES,
        "primaryType": "SafeTx",
        "domain": {"chainId": chain_id, "verifyingContract": safe},
        "message": message,
    }
    return bytes(_hash_eip191_message(encode_typed_data(full_message=typed)))


def signers(digest: bytes, signatures: bytes) -> list[str]:
    """The owners whose approval each 65-byte entry of Safe's packed signatures carries (the order Safe checked
    them in); contract signatures' dynamic parts are skipped (their owner is in r)."""
    found: list[str] = []
    count = len(signatures) // 65
    for i in range(count):
        part = signatures[i * 65 : (i + 1) * 65]
        r, v = part[:32], part[64]
        if v in (0, 1):  # a contract owner (v = 0) or an approved hash / the executor itself (v = 1): r is the owner
            found.append(to_checksum_address(r[12:]))
            continue
        if v > 30:  # eth_sign: the owner signed the hash with the "Ethereum Signed Message" prefix
            message = keccak(b"\x19Ethereum Signed Message:\n32" + digest)
            fixed = part[:64] + bytes([v - 4])
        else:
            message, fixed = digest, part
        try:
            found.append(str(Account._recover_hash(message, signature=fixed)))
        except Exception:  # noqa: BLE001 - a malformed entry the Safe would have refused: nobody to name
            continue
    return found


@dataclass(frozen=True)
class SyncResult:
    rows: int
    safes: int


def decode(log: dict[str, Any], chain_id: int, block_time: int) -> tuple[Any, ...] | None:
    """A ``safe_events`` row from a Safe's log (None for an event not indexed)."""
    topics = log.get("topics") or []
    name = TOPICS.get(topics[0]) if topics else None
    if name is None:
        return None
    safe = to_checksum_address(log["address"])
    data = bytes.fromhex(str(log["data"])[2:])
    row: dict[str, Any] = dict.fromkeys(COLUMNS)
    row.update(
        block_number=int(log["blockNumber"], 16),
        log_index=int(log["logIndex"], 16),
        block_time=block_time,
        tx_hash=log["transactionHash"],
        safe=safe,
        event=name,
    )
    if name == "SafeMultiSigTransaction":
        types = ["address", "uint256", "bytes", "uint8", "uint256", "uint256", "uint256", "address", "address"]
        fields = list(abi_decode([*types, "bytes", "bytes"], data))
        nonce, executor, threshold = abi_decode(["uint256", "address", "uint256"], fields[10])
        digest = safe_tx_hash(safe, chain_id, fields, int(nonce))
        row.update(
            safe_tx_hash="0x" + digest.hex(),
            nonce=int(nonce),
            executor=to_checksum_address(executor),
            threshold=int(threshold),
            approvers=",".join(signers(digest, bytes(fields[9]))),
            target=to_checksum_address(fields[0]),
            operation=int(fields[3]),
            data="0x" + bytes(fields[2]).hex(),
        )
    elif name in ("ExecutionSuccess", "ExecutionFailure"):
        row["safe_tx_hash"] = topics[1]
    elif name in ("AddedOwner", "RemovedOwner"):
        row["owner"] = to_checksum_address("0x" + topics[1][-40:])
    elif name == "ChangedThreshold":
        row["threshold"] = int.from_bytes(data[:32], "big")
    elif name == "ApproveHash":
        row.update(safe_tx_hash=topics[1], owner=to_checksum_address("0x" + topics[2][-40:]))
    return tuple(row[c] for c in COLUMNS)


def sync(engine: Engine, rpc: RpcClient, safes: Iterable[str], from_block: int, to_block: int) -> SyncResult:
    """Reads the Safes' events in blocks from_block..to_block into ``safe_events`` (rows already there are kept:
    running a range twice changes nothing)."""
    addresses = sorted({to_checksum_address(s) for s in safes})
    if not addresses or from_block > to_block:
        return SyncResult(0, len(addresses))
    chain_id = rpc.chain_id()
    logs = rpc.call(
        "eth_getLogs",
        [{"address": addresses, "fromBlock": hex(from_block), "toBlock": hex(to_block), "topics": [list(TOPICS)]}],
    )
    numbers = sorted({int(log["blockNumber"], 16) for log in logs})
    answers = rpc.batch_results([("eth_getBlockByNumber", [hex(n), False]) for n in numbers]) if numbers else []
    times = {n: int(a["timestamp"], 16) for n, a in zip(numbers, answers, strict=True) if isinstance(a, dict)}
    rows = [r for log in logs if (r := decode(log, chain_id, times.get(int(log["blockNumber"], 16), 0))) is not None]
    if not rows:
        return SyncResult(0, len(addresses))
    placeholders = ", ".join(f":{c}" for c in COLUMNS)
    with engine.begin() as conn:
        existing = {
            (int(b), int(i))
            for b, i in conn.execute(
                text("SELECT block_number, log_index FROM safe_events WHERE block_number BETWEEN :a AND :b"),
                {"a": from_block, "b": to_block},
            )
        }
        new = [dict(zip(COLUMNS, r, strict=True)) for r in rows if (r[0], r[1]) not in existing]
        if new:
            conn.execute(text(f"INSERT INTO safe_events ({', '.join(COLUMNS)}) VALUES ({placeholders})"), new)
    return SyncResult(len(new), len(addresses))


def rollback(engine: Engine, ancestor: int) -> int:
    """Deletes the Safe events above block `ancestor` (a reorganisation); how many went."""
    with engine.begin() as conn:
        return int(conn.execute(text("DELETE FROM safe_events WHERE block_number > :a"), {"a": ancestor}).rowcount)

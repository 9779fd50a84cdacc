"""Batched reads of the token's state for whole files of addresses: a few HTTP requests, not one call per row.

A disbursal file has tens of thousands of rows and each needs a look at the chain (is it enrolled in the
program? frozen?). One `eth_call` per row would take minutes; here the token's own `multicall` (OpenZeppelin
Multicall, which delegate-calls the token itself, so admin-module views work through the fallback) packs
`CHUNK` view calls into one `eth_call`, and several chunks travel in one batched JSON-RPC request, all pinned to
one block so that every answer describes the same state.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any

from eth_abi import decode as abi_decode
from eth_abi import encode as abi_encode
from eth_utils import keccak, to_checksum_address

from deposit_token.chain.rpc import Call, RpcClient, RpcError
from deposit_token.chain.submit import SubmitError
from deposit_token.domain.kinds import kind_label

CHUNK = 1000  # view calls per eth_call: ~5k gas each, far below any eth_call gas cap
CALLS_PER_REQUEST = 4  # eth_calls per HTTP request: ~130 KB of calldata each; Anvil refuses bodies above 2 MB


def selector(signature: str) -> bytes:
    """The 4-byte function selector of a canonical signature such as ``accountOf(address)``."""
    return keccak(text=signature)[:4]


MULTICALL = selector("multicall(bytes[])")
ACCOUNT_OF = selector("accountOf(address)")
BATCH_APPLIED = selector("batchApplied(bytes32)")
ACCOUNT_TYPES = ("uint96", "uint8", "bool", "bool", "uint8", "uint16")


class ReadError(SubmitError):
    """A read from the node failed (the node is unreachable or refused it)."""


@dataclass(frozen=True)
class AccountState:
    """`accountOf` of the token: one packed slot per holder."""

    balance: int
    kind: int
    frozen: bool
    suspended: bool
    category: int
    program_id: int

    @property
    def kind_label(self) -> str:
        return kind_label(self.kind)


def results(answers: Sequence[Any], what: str) -> list[Any]:
    """`answers` of `RpcClient.batch_results` with the first error raised as ReadError."""
    for answer in answers:
        if isinstance(answer, RpcError):
            raise ReadError(f"{what} failed: {answer.message}")
    return list(answers)


def read_batch(rpc: RpcClient, calls: Sequence[Call], what: str) -> list[Any]:
    """The results of `calls`, sent as one batch; any failure (an item's error, the node unreachable) is a
    ReadError saying `what` was being read."""
    try:
        answers = rpc.batch_results(calls, chunk=None)
    except RpcError as err:
        raise ReadError(f"{what} failed: {err}") from err
    return results(answers, what)


def head(rpc: RpcClient) -> tuple[int, int]:
    """(number, timestamp) of the latest block."""
    (block,) = read_batch(rpc, [("eth_getBlockByNumber", ["latest", False])], "reading the latest block")
    return int(block["number"], 16), int(block["timestamp"], 16)


def _chunks(items: Sequence[Any], size: int) -> Iterable[Sequence[Any]]:
    for start in range(0, len(items), size):
        yield items[start : start + size]


def multicall_views(
    rpc: RpcClient, token: str, calldatas: Sequence[bytes], block: int | None = None, chunk: int = CHUNK
) -> list[bytes]:
    """The return data of each view call in `calldatas`, all read at one block (default: the head)."""
    if not calldatas:
        return []
    tag = hex(block) if block is not None else "latest"
    requests_ = [
        ("eth_call", [{"to": token, "data": "0x" + (MULTICALL + abi_encode(["bytes[]"], [list(part)])).hex()}, tag])
        for part in _chunks(calldatas, chunk)
    ]
    returned: list[bytes] = []
    for part in _chunks(requests_, CALLS_PER_REQUEST):
        for raw in read_batch(rpc, part, "a batched read (multicall) of the token"):
            returned.extend(abi_decode(["bytes[]"], bytes.fromhex(raw[2:]))[0])
    return returned


def accounts_of(rpc: RpcClient, token: str, addresses: Sequence[str], block: int | None = None) -> list[AccountState]:
    """`accountOf` for every address, in order."""
    calls = [ACCOUNT_OF + abi_encode(["address"], [address]) for address in addresses]
    return [AccountState(*abi_decode(ACCOUNT_TYPES, data)) for data in multicall_views(rpc, token, calls, block)]


def batches_applied(rpc: RpcClient, token: str, refs: Sequence[bytes], block: int | None = None) -> list[bool]:
    """`batchApplied` for every batch reference, in order."""
    calls = [BATCH_APPLIED + ref for ref in refs]
    return [abi_decode(["bool"], data)[0] for data in multicall_views(rpc, token, calls, block)]


def event_topic(signature: str) -> str:
    return "0x" + keccak(text=signature).hex()


SPENDER_ENROLLED = event_topic("SpenderEnrolled(address,uint16,bytes32)")


def enrolled_spenders(
    rpc: RpcClient, token: str, program_id: int, from_block: int = 0, to_block: int | None = None, step: int = 50_000
) -> list[str]:
    """Every address ever enrolled in `program_id` (from `SpenderEnrolled` events), in first-seen order.

    Block ranges are split into `step`-sized windows, all asked in one batch, because nodes limit the range
    of one `eth_getLogs`.
    """
    last = to_block if to_block is not None else head(rpc)[0]
    program_topic = "0x" + program_id.to_bytes(32, "big").hex()
    calls = [
        (
            "eth_getLogs",
            [
                {
                    "address": token,
                    "fromBlock": hex(start),
                    "toBlock": hex(min(start + step - 1, last)),
                    "topics": [SPENDER_ENROLLED, None, program_topic],
                }
            ],
        )
        for start in range(from_block, last + 1, step)
    ]
    seen: dict[str, None] = {}
    for logs in read_batch(rpc, calls, "reading SpenderEnrolled events"):
        for log in logs:
            seen.setdefault(to_checksum_address("0x" + log["topics"][1][-40:]), None)
    return list(seen)

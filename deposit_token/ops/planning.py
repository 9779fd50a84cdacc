"""Gas-round planning for many transactions: batched ``eth_estimateGas`` (a refusal becomes its sentence),
the margin added to an estimate, and index ranges that fit one JSON-RPC request or one block.

A submission round that fits one block is mined in one block on any chain, so a bulk action (`ops.bulk`) or a
disbursal (`ops.disburse`) sends its transactions in such rounds.
"""

from __future__ import annotations

from collections.abc import Sequence

from deposit_token.ops.context import REQUEST_BYTES, Chain, refusal_of

GAS_MARGIN = 1.25  # estimates are exact for the state they ran on; state moves a little before mining


def packed(costs: Sequence[int], budget: int, most: int | None = None) -> list[range]:
    """Consecutive index ranges of `costs`, greedily filled: each holds at most `most` items and costs at most
    `budget` in total (an item that alone exceeds the budget gets a range of its own)."""
    ranges: list[range] = []
    start, used = 0, 0
    for index, cost in enumerate(costs):
        full = most is not None and index - start >= most
        if index > start and (used + cost > budget or full):
            ranges.append(range(start, index))
            start, used = index, 0
        used += cost
    if start < len(costs):
        ranges.append(range(start, len(costs)))
    return ranges


def size_chunks(datas: Sequence[bytes], limit: int = REQUEST_BYTES, most: int = 200) -> list[range]:
    """Index ranges of `datas` whose hex encoding fits in one JSON-RPC request of `limit` bytes."""
    return packed([2 * len(data) + 200 for data in datas], limit, most)


def estimate_many(chain: Chain, sender: str, datas: Sequence[bytes]) -> list[int | str]:
    """Gas for each calldata sent by `sender` (batched eth_estimateGas), or the sentence of its refusal."""
    answers: list[int | str] = []
    for chunk in size_chunks(datas):
        calls = [
            ("eth_estimateGas", [{"from": sender, "to": chain.address, "data": "0x" + datas[i].hex()}, "pending"])
            for i in chunk
        ]
        for answer in chain.rpc.batch_results(calls, chunk=None):
            reason = refusal_of(answer, chain, "estimating gas")
            answers.append(reason if reason is not None else int(answer, 16))
    return answers


def with_margin(gas: int) -> int:
    return int(gas * GAS_MARGIN) + 20_000


def block_gas_limit(chain: Chain) -> int:
    return int(chain.rpc.call("eth_getBlockByNumber", ["latest", False])["gasLimit"], 16)


def block_rounds(gases: Sequence[int], limit: int, most: int | None = None) -> list[range]:
    """Consecutive index ranges (at most `most` items each) whose gas fits in one block of `limit`.

    A submission round that fits one block is mined in one block on any chain; on an auto-mining dev chain
    (ape-foundry's Anvil) transactions beyond the block's gas would wait for a next transaction that never
    comes."""
    return packed(gases, int(limit * 0.95), most)

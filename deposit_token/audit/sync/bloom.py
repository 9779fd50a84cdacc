"""Checking an ``eth_getLogs`` answer against the blocks' ``logsBloom``: a provider that drops or alters logs is
caught and asked again instead of leaving a silent gap in the audit tables.

A header's logsBloom is a 2048-bit Bloom filter of every log in the block: for the emitting address and each
topic, three bits chosen by keccak256 (the yellow paper's M3:2048). Two checks per block whose header a step
fetched (`Indexer._commit`: blocks with logs, the range's last block and, near the head, every block):

* definite fault: a returned log's bits are not all set in its block's bloom - the log is not in that block
  (altered, or attributed to the wrong block);
* probable fault: the answer has no log in a block whose bloom holds the token's address and the topic0 of one
  of the system's events. Bloom filters give false positives, more the fuller the filter, so this counts only
  when the chance that address and topic match by accident is below `MAX_FALSE_POSITIVE`: with a fraction
  ``f`` of the bits set, about ``f**3 * K * f**3`` for K event topics. That keeps the check to sparse blocks
  (a few dozen log items, which is where providers' usual fault shows: a log index lagging a fresh block),
  and a congested block's full filter never stops the indexer.

What it cannot see: one log missing from a block that has other logs of ours (its bits are set anyway), and,
far from the head, empty blocks whose headers the step does not fetch (fetching every header of a backfill
range would multiply its requests; near the head, where lagging log indexes return empty answers, every
block is checked).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from functools import lru_cache
from typing import Any

from eth_utils import keccak

from deposit_token.chain.rpc import RpcError

BLOOM_BITS = 2048
MAX_FALSE_POSITIVE = 1e-9  # per checked block: at one block per second, one spurious suspicion in ~30 years


class BloomMismatch(RpcError):
    """The provider's eth_getLogs answer contradicts the block headers' logsBloom, even after retries."""

    def __init__(self, message: str) -> None:
        super().__init__("eth_getLogs", None, message)


@lru_cache(maxsize=1 << 16)
def bits(item: str) -> int:
    """The three bloom bits of an address or topic given as 0x-hex (cached: addresses and topics repeat)."""
    digest = keccak(bytes.fromhex(item[2:]))
    mask = 0
    for i in (0, 2, 4):
        mask |= 1 << (((digest[i] << 8) | digest[i + 1]) & (BLOOM_BITS - 1))
    return mask


def masks(items: Mapping[str, Iterable[str]]) -> dict[int, int]:
    """Block number -> the bloom bits of the block's logs, from the distinct addresses and topics of its logs by
    the logs' own hex block number (collected first: far fewer than the logs, and a set insert is cheaper than
    a 2048-bit OR; the indexer collects them in its one pass over a range, ``Indexer._scan``)."""
    found: dict[int, int] = {}
    for key, distinct in items.items():
        mask = 0
        for item in distinct:
            mask |= bits(item)
        number = int(key, 16)
        found[number] = found.get(number, 0) | mask
    return found


class Expectation:
    """What the headers' blooms should show for one token: its address, and any topic0 of its events."""

    def __init__(self, address: str, topics0: Iterable[str]) -> None:
        self.address = bits(address.lower())
        self.topics = tuple(bits(topic) for topic in topics0)

    def _suspect(self, bloom: int) -> bool:
        """The bloom says a log of ours is in the block, and that is not likely an accident."""
        if bloom & self.address != self.address or not any(bloom & t == t for t in self.topics):
            return False
        filled = bloom.bit_count() / BLOOM_BITS
        return filled**6 * len(self.topics) < MAX_FALSE_POSITIVE

    def fault(self, headers: Mapping[int, Mapping[str, Any]], answer: Mapping[int, int]) -> str | None:
        """Why an answer whose logs have the bloom bits `answer` (block number -> bits, ``masks``) contradicts
        `headers` (block number -> header), or None if it does not."""
        for number, header in sorted(headers.items()):
            bloom = int(header.get("logsBloom") or "0x0", 16)
            mask = answer.get(number)
            if mask is not None and mask & ~bloom:
                return (
                    f"block {number}: the answer has logs the block's logsBloom does not contain (logs altered "
                    "or from another block)"
                )
            if mask is None and self._suspect(bloom):
                return (
                    f"block {number}: its logsBloom says the token logged an event there, but the answer has "
                    "no log in it"
                )
        return None

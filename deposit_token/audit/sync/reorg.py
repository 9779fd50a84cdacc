"""Reorg detection and rollback.

The database's checkpoint carries the hash of the last indexed block. Before every step the indexer asks the
node for the block at that height: if the hash differs (or the chain is now shorter), the chain was
reorganised. Hashes chain each block to its parent, so the highest stored block whose hash the node still
agrees with is a common ancestor: everything above it is deleted in one transaction and indexed again.

The blocks table holds every block with events, every checkpoint block and every block of the recent window
(``reorg_window`` blocks below the head), so the search usually stops within the first batch. If nothing
stored matches (a reorg deeper than the database's history, or a restarted dev chain), the index restarts
from the deployment block.
"""

from __future__ import annotations

from dataclasses import dataclass

from sqlalchemy import Engine

from deposit_token.audit.db import store
from deposit_token.chain.rpc import RpcClient

SEARCH_BATCH = 64


@dataclass(frozen=True)
class Rollback:
    """What a rollback did: from which checkpoint back to which ancestor, and how many rows went."""

    from_block: int
    ancestor: int
    rows_removed: int

    def __str__(self) -> str:
        return (
            f"reorg: block {self.from_block} is no longer on the chain; rolled back to common ancestor "
            f"{self.ancestor} ({self.rows_removed} event rows removed, re-indexing)"
        )


def find_common_ancestor(rpc: RpcClient, engine: Engine, checkpoint: int, start_block: int) -> tuple[int, str | None]:
    """(number, hash) of the highest stored block still on the chain; (start_block - 1, None) if none is."""
    below = checkpoint
    while True:
        with engine.connect() as conn:
            stored = store.stored_blocks_desc(conn, below, SEARCH_BATCH)
        if not stored:
            return start_block - 1, None
        headers = rpc.headers([n for n, _h in stored])
        for (number, block_hash), header in zip(stored, headers):
            if header is not None and header["hash"] == block_hash:
                return number, block_hash
        below = stored[-1][0] - 1


def check_and_rollback(
    rpc: RpcClient,
    engine: Engine,
    checkpoint: tuple[int, str] | None,
    chain_hash_at_checkpoint: str | None,
    start_block: int,
) -> Rollback | None:
    """Rolls back if the checkpoint block is not on the chain any more; None if it still is."""
    if checkpoint is None:
        return None
    number, block_hash = checkpoint
    if chain_hash_at_checkpoint == block_hash:
        return None
    ancestor, ancestor_hash = find_common_ancestor(rpc, engine, number, start_block)
    removed = store.rollback_to(engine, ancestor, ancestor_hash)
    return Rollback(from_block=number, ancestor=ancestor, rows_removed=removed)

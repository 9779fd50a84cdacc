"""Who approved a privileged action: the Safe executions of a transaction (from ``safe_events``, filled by
`deposit_token.audit.sync.safe`), and each Safe's history of owners and thresholds."""

from __future__ import annotations

from dataclasses import dataclass

from sqlalchemy import Engine, text


@dataclass(frozen=True)
class Approval:
    """One Safe transaction executed in a chain transaction."""

    tx_hash: str
    block_number: int
    block_time: int
    safe: str
    nonce: int
    safe_tx_hash: str
    executor: str
    approvers: tuple[str, ...]
    threshold: int
    succeeded: bool | None  # None when the outcome event is not indexed (yet)
    target: str
    data: str


_APPROVALS = """
SELECT m.tx_hash, m.block_number, m.block_time, m.safe, m.nonce, m.safe_tx_hash, m.executor, m.approvers,
       m.threshold, m.target, m.data,
       (SELECT o.event FROM safe_events o
         WHERE o.tx_hash = m.tx_hash AND o.safe = m.safe AND o.safe_tx_hash = m.safe_tx_hash
           AND o.event IN ('ExecutionSuccess', 'ExecutionFailure')) AS outcome
FROM safe_events m
WHERE m.event = 'SafeMultiSigTransaction' {where}
ORDER BY m.block_number, m.log_index
"""


def _approvals(engine: Engine, where: str, params: dict[str, object]) -> list[Approval]:
    with engine.connect() as conn:
        rows = conn.execute(text(_APPROVALS.format(where=where)), params).all()
    return [
        Approval(
            tx_hash=r.tx_hash,
            block_number=int(r.block_number),
            block_time=int(r.block_time),
            safe=r.safe,
            nonce=int(r.nonce),
            safe_tx_hash=r.safe_tx_hash,
            executor=r.executor,
            approvers=tuple(a for a in (r.approvers or "").split(",") if a),
            threshold=int(r.threshold),
            succeeded=None if r.outcome is None else r.outcome == "ExecutionSuccess",
            target=r.target,
            data=r.data,
        )
        for r in rows
    ]


def approvals_of(engine: Engine, tx_hash: str) -> list[Approval]:
    """The Safe transactions executed in the chain transaction `tx_hash` (a privileged token event's
    transaction): who signed, who executed, the threshold then."""
    return _approvals(engine, "AND lower(m.tx_hash) = lower(:tx)", {"tx": tx_hash})


def approvals_by_safe(engine: Engine, safe: str) -> list[Approval]:
    """Every Safe transaction a Safe executed, in chain order."""
    return _approvals(engine, "AND lower(m.safe) = lower(:safe)", {"safe": safe})


@dataclass(frozen=True)
class OwnerChange:
    block_number: int
    tx_hash: str
    safe: str
    event: str  # AddedOwner, RemovedOwner, ChangedThreshold
    owner: str | None
    threshold: int | None


def owner_changes(engine: Engine, safe: str | None = None) -> list[OwnerChange]:
    """Owner and threshold changes of the indexed Safes (or of `safe`), in chain order."""
    where = "AND lower(safe) = lower(:safe)" if safe else ""
    with engine.connect() as conn:
        rows = conn.execute(
            text(
                "SELECT block_number, tx_hash, safe, event, owner, threshold FROM safe_events "
                f"WHERE event IN ('AddedOwner', 'RemovedOwner', 'ChangedThreshold') {where} "
                "ORDER BY block_number, log_index"
            ),
            {"safe": safe} if safe else {},
        ).all()
    return [OwnerChange(int(r.block_number), r.tx_hash, r.safe, r.event, r.owner, r.threshold) for r in rows]

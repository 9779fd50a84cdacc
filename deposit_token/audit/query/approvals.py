"""Who approved a privileged action: the Safe executions of a transaction (from ``safe_events``, filled by
`deposit_token.audit.sync.safe`), and each Safe's history of owners and thresholds."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from functools import cache
from typing import Any

from eth_abi import decode as abi_decode
from eth_utils import keccak
from sqlalchemy import Connection, Engine, inspect, text

from deposit_token.chain import abi
from deposit_token.domain import display


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


Source = Engine | Connection  # an Engine (a command) or a connection in a snapshot (the web console)


@contextmanager
def _connected(source: Source) -> Iterator[Connection]:
    if isinstance(source, Connection):
        yield source
    else:
        with source.connect() as conn:
            yield conn


def _approvals(source: Source, where: str, params: dict[str, object]) -> list[Approval]:
    with _connected(source) as conn:
        if not inspect(conn).has_table("safe_events"):  # a database indexed before migration 0005
            return []
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


def all_approvals(source: Source) -> list[Approval]:
    """Every indexed Safe transaction, in chain order (none for a database without ``safe_events``)."""
    return _approvals(source, "", {})


def approvals_of(source: Source, tx_hash: str) -> list[Approval]:
    """The Safe transactions executed in the chain transaction `tx_hash` (a privileged token event's
    transaction): who signed, who executed, the threshold then."""
    return _approvals(source, "AND lower(m.tx_hash) = lower(:tx)", {"tx": tx_hash})


def approvals_by_safe(source: Source, safe: str) -> list[Approval]:
    """Every Safe transaction a Safe executed, in chain order."""
    return _approvals(source, "AND lower(m.safe) = lower(:safe)", {"safe": safe})


@dataclass(frozen=True)
class OwnerChange:
    block_number: int
    tx_hash: str
    safe: str
    event: str  # AddedOwner, RemovedOwner, ChangedThreshold
    owner: str | None
    threshold: int | None


def owner_changes(source: Source, safe: str | None = None) -> list[OwnerChange]:
    """Owner and threshold changes of the indexed Safes (or of `safe`), in chain order."""
    where = "AND lower(safe) = lower(:safe)" if safe else ""
    with _connected(source) as conn:
        if not inspect(conn).has_table("safe_events"):
            return []
        rows = conn.execute(
            text(
                "SELECT block_number, tx_hash, safe, event, owner, threshold FROM safe_events "
                f"WHERE event IN ('AddedOwner', 'RemovedOwner', 'ChangedThreshold') {where} "
                "ORDER BY block_number, log_index"
            ),
            {"safe": safe} if safe else {},
        ).all()
    return [OwnerChange(int(r.block_number), r.tx_hash, r.safe, r.event, r.owner, r.threshold) for r in rows]


# --- privileged actions and their approvers (the report's section) ---------------------------------------------


@dataclass(frozen=True)
class ActionRow:
    """One Safe execution in the report: what it called, through which Safe, approved by whom."""

    block: int
    time: str  # KST
    safe: str
    nonce: int
    action: str
    approvers: str
    approved: str  # "2 of threshold 2"
    executor: str
    outcome: str
    tx_hash: str


@cache
def _functions() -> dict[str, tuple[str, list[str]]]:
    """Selector (0x + 8 hex) -> (name, argument types) of the token's and admin module's functions."""
    found: dict[str, tuple[str, list[str]]] = {}
    for item in abi.shipped()["abi"]:
        if item.get("type") == "function":
            types = [_abi_type(i) for i in item.get("inputs", [])]
            selector = "0x" + keccak(text=f"{item['name']}({','.join(types)})")[:4].hex()
            found[selector] = (item["name"], types)
    return found


def _abi_type(param: dict[str, Any]) -> str:
    kind = str(param["type"])
    if kind.startswith("tuple"):
        return "(" + ",".join(_abi_type(c) for c in param.get("components", [])) + ")" + kind[5:]
    return kind


def _value(value: Any, kind: str) -> str:
    """An argument as people read it (``domain.display``): addresses EIP-55 checksummed (eth_abi gives them in
    lower case), numbers with thousands separators, bytes as hex."""
    if isinstance(value, list | tuple):
        # an array's elements are of its type without the last dimension; a tuple's are listed: "(address,uint256)"
        inner = [kind[: kind.rindex("[")]] * len(value) if kind.endswith("]") else _split(kind[1:-1])
        return "[" + ", ".join(_value(v, k) for v, k in zip(value, inner, strict=False)) + "]"
    if kind == "address" and isinstance(value, str):
        return display.address(value)
    if isinstance(value, bytes):
        return "0x" + value.hex()
    if isinstance(value, int) and not isinstance(value, bool):
        return f"{value:,}"
    return str(value)


def _split(types: str) -> list[str]:
    """The top-level types of a tuple's type list: "address,(uint8,bool)[],uint256" -> three types."""
    found, depth, start = [], 0, 0
    for i, char in enumerate(types):
        depth += {"(": 1, ")": -1}.get(char, 0)
        if char == "," and depth == 0:
            found.append(types[start:i])
            start = i + 1
    return [*found, types[start:]] if types else found


def describe_call(data: str | None) -> str:
    """A token call's calldata as ``name(arg, ...)`` (the selector alone for a call the ABI does not know)."""
    raw = bytes.fromhex((data or "0x")[2:])
    known = _functions().get("0x" + raw[:4].hex())
    if known is None:
        return "0x" + raw[:4].hex() if raw else "(no call data)"
    name, types = known
    try:
        args = abi_decode(types, raw[4:])
    except Exception:  # noqa: BLE001 - eth_abi raises several kinds for data that does not match
        return f"{name}(...)"
    return f"{name}({', '.join(_value(a, k) for a, k in zip(args, types, strict=True))})"


def privileged_actions(conn: Connection) -> list[ActionRow]:
    """Every indexed Safe execution (the privileged token calls the role Safes made), in chain order; none for
    a database without the ``safe_events`` table (indexed before migration 0005)."""
    return [
        ActionRow(
            block=a.block_number,
            time=display.moment(a.block_time),
            safe=a.safe,
            nonce=a.nonce,
            action=describe_call(a.data),
            approvers=", ".join(a.approvers),
            approved=f"{len(a.approvers)} of threshold {a.threshold}",
            executor=a.executor,
            outcome=outcome(a),
            tx_hash=a.tx_hash,
        )
        for a in all_approvals(conn)
    ]


def outcome(approval: Approval) -> str:
    """``executed``, ``failed`` (the Safe ran the call and it reverted: the nonce is spent) or ``pending`` (the
    outcome event is not indexed yet)."""
    if approval.succeeded is None:
        return "pending"
    return "executed" if approval.succeeded else "failed"

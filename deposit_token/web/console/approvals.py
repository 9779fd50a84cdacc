"""Privileged actions (issue 11): every call the role Safes executed (a mint, a role change, a freeze, a
claw-back...), newest first, with the owners who signed it against the Safe's threshold, who carried it to the
chain and how it ended; and an action's own page, by its transaction hash, with its approvers and the Safe's
owner and threshold changes.

Everything comes from ``audit.query.approvals`` (filled by ``audit.sync.safe``). Addresses are shown EIP-55
checksummed by ``domain.display``, not through ape's account aliases: the server runs without ape (``python -m
deposit_token.web``), and an owner is a person's key the audit database knows only by its address."""

from __future__ import annotations

import re
from dataclasses import dataclass

from fastapi import Request
from fastapi.responses import Response

from deposit_token.audit.query.approvals import (
    Approval,
    OwnerChange,
    all_approvals,
    approvals_of,
    describe_call,
    outcome,
    owner_changes,
)
from deposit_token.domain import display
from deposit_token.domain.inputs import check_address
from deposit_token.web.console import NavItem
from deposit_token.web.core.auth import console_router
from deposit_token.web.core.pages import render
from deposit_token.web.core.state import state_of

router = console_router()
NAV = NavItem("/console/approvals", "nav.approvals", order=50)

TX_HASH = re.compile(r"0x[0-9a-fA-F]{64}")
# Literal keys (not built at run time) so that the i18n test sees each of them in use.
OUTCOMES = {
    "executed": "approvals.outcome.executed",
    "failed": "approvals.outcome.failed",
    "pending": "approvals.outcome.pending",
}
CHANGES = {
    "AddedOwner": "approvals.change.added_owner",
    "RemovedOwner": "approvals.change.removed_owner",
    "ChangedThreshold": "approvals.change.threshold",
}


@dataclass(frozen=True)
class Approver:
    address: str
    is_executor: bool  # the executor's own approval (v = 1 in the signatures) counts as a signature


@dataclass(frozen=True)
class ActionView:
    """One Safe execution as the pages show it."""

    tx_hash: str
    block_number: int
    block_time: int
    safe: str
    nonce: int
    safe_tx_hash: str
    call: str  # the token call decoded: mint(0x..., 2,000,000,000)
    target: str
    approvers: tuple[Approver, ...]
    signatures: int
    threshold: int
    executor: str
    outcome: str  # a catalogue key (OUTCOMES)


def _view(a: Approval) -> ActionView:
    executor = display.address(a.executor)
    return ActionView(
        tx_hash=a.tx_hash,
        block_number=a.block_number,
        block_time=a.block_time,
        safe=display.address(a.safe),
        nonce=a.nonce,
        safe_tx_hash=a.safe_tx_hash,
        call=describe_call(a.data),
        target=display.address(a.target),
        approvers=tuple(Approver(display.address(o), display.address(o) == executor) for o in a.approvers),
        signatures=len(a.approvers),
        threshold=a.threshold,
        executor=executor,
        outcome=OUTCOMES[outcome(a)],
    )


@dataclass(frozen=True)
class ChangeView:
    block_number: int
    tx_hash: str
    label: str  # a catalogue key (CHANGES)
    owner: str | None
    threshold: int | None


def _change(c: OwnerChange) -> ChangeView:
    return ChangeView(
        c.block_number, c.tx_hash, CHANGES[c.event], display.address(c.owner) if c.owner else None, c.threshold
    )


def _error(request: Request, message: str, status_code: int = 400) -> Response:
    return render(request, "console/problem.html", {"message": message}, status_code)


@router.get("/console/approvals")
def actions(request: Request, safe: str | None = None) -> Response:
    try:
        chosen = check_address(safe, "Safe") if safe else None
    except ValueError as err:
        return _error(request, str(err))
    reader = state_of(request).reader
    with reader.snapshot() as conn:
        # Once per indexer checkpoint: privileged actions are few (each needs several people), but every
        # auditor's visit would otherwise decode them all again.
        every = reader.cached(conn, "approvals", None, lambda c: [_view(a) for a in all_approvals(c)])
    safes = sorted({a.safe for a in every})
    listed = [a for a in reversed(every) if chosen is None or a.safe == display.address(chosen)]
    return render(
        request,
        "console/approvals.html",
        {"actions": listed, "safes": safes, "chosen": display.address(chosen) if chosen else ""},
    )


@router.get("/console/approvals/{tx_hash}")
def action(request: Request, tx_hash: str) -> Response:
    if not TX_HASH.fullmatch(tx_hash):
        return _error(request, f"{tx_hash!r} is not a transaction hash (0x and 64 hex digits)", 404)
    with state_of(request).reader.snapshot() as conn:
        executions = [_view(a) for a in approvals_of(conn, tx_hash)]
        changes = {e.safe: [_change(c) for c in owner_changes(conn, e.safe)] for e in executions}
    if not executions:
        return _error(request, f"the index has no Safe execution in transaction {tx_hash}", 404)
    return render(request, "console/approval.html", {"executions": executions, "changes": changes})

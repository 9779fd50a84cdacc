"""Participants and programs: a vendor's registration, suspensions, payments (per month and the latest ones) and
redemptions; an official's money in and out and spending per category against the caps in a month; every
program with its rules now, each version of the rules with what changed, pauses and cap overrides. All of it
from ``audit.query.participants`` and ``audit.query.payments``."""

from __future__ import annotations

from fastapi import Request
from fastapi.responses import Response

from deposit_token.audit.query.common import parse_period
from deposit_token.audit.query.participants import (
    official_spending,
    program_history,
    vendor_activity,
)
from deposit_token.audit.query.payments import PaymentFilter, list_payments
from deposit_token.domain.inputs import check_address
from deposit_token.web.console import NavItem
from deposit_token.web.console._filters import payment_pairs, query
from deposit_token.web.core.auth import console_router
from deposit_token.web.core.pages import render
from deposit_token.web.core.state import state_of

router = console_router()
NAV = (NavItem("/console/programs", "nav.programs", order=40), NavItem("/console/vendors", "nav.vendors", order=45))
LATEST = 20  # payments listed on a participant's page (the full list is one link away)


def _error(request: Request, message: str, status_code: int = 400) -> Response:
    return render(request, "console/problem.html", {"message": message}, status_code)


@router.get("/console/vendors")
def vendors(request: Request) -> Response:
    with state_of(request).reader.snapshot() as conn:
        choices = state_of(request).reader.choices(conn)
    return render(request, "console/vendors.html", {"vendors": choices.vendors})


@router.get("/console/vendors/{address}")
def vendor(request: Request, address: str) -> Response:
    try:
        checked = check_address(address, "vendor")
    except ValueError as err:
        return _error(request, str(err), 404)
    filt = PaymentFilter(vendors=(checked,))
    with state_of(request).reader.snapshot() as conn:
        activity = vendor_activity(conn, checked)
        latest = list_payments(conn, filt, limit=LATEST)
    if activity is None:
        return _error(request, f"the index knows no vendor {checked}", 404)
    return render(
        request,
        "console/vendor.html",
        {"v": activity, "latest": latest.rows, "all_url": "/console/payments" + query(payment_pairs(filt))},
    )


@router.get("/console/officials/{address}")
def official(request: Request, address: str, month: str | None = None) -> Response:
    try:
        checked = check_address(address, "official")
        period = parse_period(month) if month else None
    except ValueError as err:
        return _error(request, str(err), 404 if not month else 400)
    filt = PaymentFilter(payers=(checked,))
    with state_of(request).reader.snapshot() as conn:
        spending = official_spending(conn, checked, period)
        latest = list_payments(conn, filt, limit=LATEST)
    if spending is None:
        return _error(request, f"the index knows no official {checked}", 404)
    months = sorted({m[0] for m in spending.months}, reverse=True)
    return render(
        request,
        "console/official.html",
        {
            "o": spending,
            "latest": latest.rows,
            "months": months,
            "all_url": "/console/payments" + query(payment_pairs(filt)),
        },
    )


@router.get("/console/programs")
def programs(request: Request) -> Response:
    with state_of(request).reader.snapshot() as conn:
        listed = [program_history(conn, pid) for pid, _ in state_of(request).reader.choices(conn).programs]
    return render(request, "console/programs.html", {"programs": [p for p in listed if p is not None]})


@router.get("/console/programs/{program_id}")
def program(request: Request, program_id: str) -> Response:
    if not program_id.isdigit() or not 0 < int(program_id) < 2**16:
        return _error(request, f"{program_id!r} is not a program id (1, 2, ...)", 404)
    with state_of(request).reader.snapshot() as conn:
        history = program_history(conn, int(program_id))
    if history is None:
        return _error(request, f"the index has no program {program_id}", 404)
    filt = PaymentFilter(programs=(history.program_id,))
    return render(
        request,
        "console/program.html",
        {"h": history, "all_url": "/console/payments" + query(payment_pairs(filt))},
    )

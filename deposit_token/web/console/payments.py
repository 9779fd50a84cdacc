"""Payments: the filtered list (program, department, vendor, category, month, amount range, flag), newest
first in keyset pages, and one payment in full (the decoded event, KST time, the payer's department, the vendor,
receipt and settlement, evidence hash, cap left, block and transaction, the program's rules in force at that
block, its flags and every disposition recorded on them, with the form to record another).

The figures come from the audit library (``audit.query.payments``, ``audit.query.participants.filter_choices``,
``audit.cases``); this module only reads the query string and renders."""

from __future__ import annotations

from typing import Any

from fastapi import Request
from fastapi.responses import Response

from deposit_token.audit import cases
from deposit_token.audit.query.flags import RULES
from deposit_token.audit.query.payments import (
    ANY_FLAG,
    PaymentFilter,
    count_payments,
    get_payment,
    list_payments,
    parse_payment_key,
)
from deposit_token.web.console import NavItem
from deposit_token.web.console._filters import one_month, payment_filter, payment_pairs, query
from deposit_token.web.console._flagtext import flag_text
from deposit_token.web.core.auth import console_router
from deposit_token.web.core.pages import render
from deposit_token.web.core.state import state_of

router = console_router()
NAV = NavItem("/console/payments", "nav.payments", order=20)
PAGE = 50


def _error(request: Request, message: str, status_code: int = 400) -> Response:
    return render(request, "console/problem.html", {"message": message}, status_code)


@router.get("/console/payments")
def payments(request: Request, after: str | None = None, before: str | None = None) -> Response:
    try:
        filt = payment_filter(request)
        with state_of(request).reader.snapshot() as conn:
            page = list_payments(conn, filt, after=after, before=before, limit=PAGE)
            counted = count_payments(conn, filt)
            choices = state_of(request).reader.choices(conn)
    except ValueError as err:
        return _error(request, str(err))
    pairs = payment_pairs(filt)
    return render(
        request,
        "console/payments.html",
        {
            "page": page,
            "count": counted,
            "choices": choices,
            "chosen": filt.as_params(),
            "month": one_month(filt),
            "rules": list(RULES),
            "any_flag": ANY_FLAG,
            "filtered": not filt.is_empty(),
            "next_url": None if page.next_cursor is None else query([*pairs, ("after", page.next_cursor)]),
            "prev_url": None if page.prev_cursor is None else query([*pairs, ("before", page.prev_cursor)]),
            "export_query": query(pairs),
        },
    )


def flags_of_payment(conn: Any, key: str, filt: PaymentFilter) -> list[cases.FlagRow]:
    """The flag queue's rows of one payment (every status): the queue narrowed to the payment's payer, vendor,
    month and amount, then to the payment itself."""
    rows: list[cases.FlagRow] = []
    after: str | None = None
    while True:
        page = cases.flag_queue(conn, cases.FlagFilter(status="any", payments=filt), after=after, limit=100)
        rows.extend(row for row in page.rows if row.payment.key == key)
        if page.next_cursor is None:
            return rows
        after = page.next_cursor


@router.get("/console/payments/{key}")
def payment(request: Request, key: str) -> Response:
    try:
        block, log = parse_payment_key(key)
    except ValueError as err:
        return _error(request, str(err), 404)
    with state_of(request).reader.snapshot() as conn:
        detail = get_payment(conn, (block, log))
        if detail is None:
            return _error(request, f"no payment at block {block}, log {log}", 404)
        row = detail.row
        narrow = PaymentFilter(
            payers=(row.payer,),
            vendors=(row.vendor,),
            min_amount=row.amount,
            max_amount=row.amount,
        )
        flags = flags_of_payment(conn, row.key, narrow) if row.flags else []
        history = cases.disposition_history(conn, block, log)
    by_rule: dict[str, list[cases.Disposition]] = {}
    for decided in history:
        by_rule.setdefault(decided.rule, []).append(decided)
    return render(
        request,
        "console/payment.html",
        {
            "p": detail,
            "row": row,
            "flags": flags,
            "history": by_rule,
            "dispositions": cases.DISPOSITIONS,
            "max_note": cases.MAX_NOTE,
            "flag_text": flag_text,
        },
    )

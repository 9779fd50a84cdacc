"""Payments: the filtered list (program, department, vendor, category, month, amount range, flag), newest
first in keyset pages, and one payment in full (the decoded event, KST time, the payer's department, the vendor,
receipt and settlement, evidence hash, cap left, block and transaction, the program's rules in force at that
block, its flags and every disposition recorded on them, with the form to record another).

The figures come from the audit library (``audit.query.payments``, ``audit.query.participants.filter_choices``,
``audit.cases``); this module only reads the query string and renders."""

from __future__ import annotations

import threading
from collections import OrderedDict
from collections.abc import Hashable

from fastapi import Request
from fastapi.responses import Response
from sqlalchemy import Connection

from deposit_token.audit import cases
from deposit_token.audit.query.cases import flags_of_payment
from deposit_token.audit.query.flags import RULES
from deposit_token.audit.query.payments import (
    ANY_FLAG,
    PaymentCount,
    PaymentFilter,
    count_payments,
    get_payment,
    list_payments,
    parse_payment_key,
)
from deposit_token.web.console import NavItem
from deposit_token.web.console._filters import one_month, payment_filter, payment_pairs, query
from deposit_token.web.console._flagtext import flag_text
from deposit_token.web.console._rows import payment_rows
from deposit_token.web.core.auth import console_router
from deposit_token.web.core.pages import render
from deposit_token.web.core.state import state_of

router = console_router()
NAV = NavItem("/console/payments", "nav.payments", order=20)
PAGE = 50


def _error(request: Request, message: str, status_code: int = 400) -> Response:
    return render(request, "console/problem.html", {"message": message}, status_code)


# (checkpoint, filter) -> its count: every page of a filtered list shows the same count, counted once per
# checkpoint (up to 10,001 rows read) rather than on every page turned; kept apart from the reader's cache, which
# the public API's cells fill
_COUNTS: OrderedDict[tuple[Hashable, PaymentFilter], PaymentCount] = OrderedDict()
_COUNTS_SIZE = 1024
_COUNTS_LOCK = threading.Lock()


def _count(request: Request, conn: Connection, filt: PaymentFilter) -> PaymentCount:
    point = state_of(request).reader.point(conn)
    if point is None:
        return count_payments(conn, filt)
    key = ((point.block_number, point.block_hash), filt)
    with _COUNTS_LOCK:
        found = _COUNTS.get(key)
        if found is not None:
            _COUNTS.move_to_end(key)
            return found
    counted = count_payments(conn, filt)
    with _COUNTS_LOCK:
        _COUNTS[key] = counted
        while len(_COUNTS) > _COUNTS_SIZE:
            _COUNTS.popitem(last=False)
    return counted


@router.get("/console/payments")
def payments(request: Request, after: str | None = None, before: str | None = None) -> Response:
    try:
        filt = payment_filter(request)
        with state_of(request).reader.snapshot() as conn:
            page = list_payments(conn, filt, after=after, before=before, limit=PAGE)
            counted = _count(request, conn, filt)
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
            "payment_rows": payment_rows,
        },
    )


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
        history = cases.disposition_history(conn, block, log)
        flags = flags_of_payment(conn, row, history) if row.flags else []
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

"""Flags and cases: the flag queue (every rule of ``audit flags``, kept by the indexer's derive step; filtered by
rule, status and anything the payments list filters by, in keyset pages) and recording a disposition of one flag
(justified, explanation requested, referred, recovered) with a note. Dispositions are append-only (``audit.cases``
has no update, the database refuses one) and each is written in the same transaction as its access-log line, so
that neither exists without the other."""

from __future__ import annotations

from fastapi import Request
from fastapi.responses import RedirectResponse, Response
from starlette.concurrency import run_in_threadpool

from deposit_token.audit import cases
from deposit_token.audit.query.flags import RULES
from deposit_token.web.console import NavItem
from deposit_token.web.console._filters import flag_filter, flag_pairs, one_month, query
from deposit_token.web.console._rows import flag_rows
from deposit_token.web.core import accesslog
from deposit_token.web.core.auth import CurrentUser, client_ip, console_router
from deposit_token.web.core.pages import render
from deposit_token.web.core.state import state_of

router = console_router()
NAV = NavItem("/console/flags", "nav.flags", order=30)
PAGE = 50


def _error(request: Request, message: str, status_code: int = 400) -> Response:
    return render(request, "console/problem.html", {"message": message}, status_code)


@router.get("/console/flags")
def flags(request: Request, after: str | None = None, before: str | None = None) -> Response:
    try:
        filt = flag_filter(request)
        with state_of(request).reader.snapshot() as conn:
            page = cases.flag_queue(conn, filt, after=after, before=before, limit=PAGE)
            counts = state_of(request).reader.flag_counts(conn, filt.payments)
            choices = state_of(request).reader.choices(conn)
    except ValueError as err:
        return _error(request, str(err))
    pairs = flag_pairs(filt)
    return render(
        request,
        "console/flags.html",
        {
            "page": page,
            "counts": counts,
            "choices": choices,
            "chosen": filt.payments.as_params(),
            "month": one_month(filt.payments),
            "rules": list(RULES),
            "chosen_rules": filt.rules,
            "status": filt.status,
            "statuses": cases.STATUSES,
            "next_url": None if page.next_cursor is None else query([*pairs, ("after", page.next_cursor)]),
            "prev_url": None if page.prev_cursor is None else query([*pairs, ("before", page.prev_cursor)]),
            "export_query": query(pairs),
            "flag_rows": flag_rows,
        },
    )


@router.post("/console/flags/{key}/dispositions")
async def record(request: Request, key: str, principal: CurrentUser) -> Response:
    form = await request.form()
    kind, note = (str(form.get(name) or "") for name in ("disposition", "note"))
    state = state_of(request)
    ip = client_ip(request)

    def write() -> cases.Disposition:
        if not note.strip():
            raise ValueError("a disposition needs a note saying why")
        with state.engine.begin() as conn:
            stored = cases.record_disposition(conn, key, kind, note, principal.name)
            accesslog.record(
                conn,
                accesslog.DISPOSITION,
                state.now(),
                principal.name,
                ip,
                flag=stored.flag,
                disposition=stored.disposition,
                tx_hash=stored.tx_hash,
                id=stored.id,
            )
            return stored

    try:
        stored = await run_in_threadpool(write)
    except ValueError as err:
        message = str(err)
        return await run_in_threadpool(lambda: _error(request, message))
    payment = f"{stored.block_number}-{stored.log_index}"
    return RedirectResponse(f"/console/payments/{payment}#flag-{stored.flag}", status_code=303)

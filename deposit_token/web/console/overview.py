"""The console's first page: the spending report (spend by program, department, category and month; money flows
per program; top vendors: ``audit.query.overview``, from the derived monthly cells, so distinct payers are not
shown) as tables and a chart, the indexer's position, and the newest payments, streaming in as they are indexed
(server-sent events, ``/console/live/payments``)."""

from __future__ import annotations

from typing import Any

from fastapi import Request
from fastapi.responses import Response, StreamingResponse

from deposit_token.web.console import NavItem
from deposit_token.web.core.auth import console_router
from deposit_token.web.core.follow import read_status
from deposit_token.web.core.live import label, latest_payments, parse_position
from deposit_token.web.core.pages import render, translator
from deposit_token.web.core.state import state_of

router = console_router()
NAV = NavItem("/console", "nav.overview", order=10)
DIMENSIONS = ("program", "department", "category", "month")


@router.get("/console")
def overview(request: Request) -> Response:
    state = state_of(request)
    t = translator(request)
    with state.reader.snapshot() as conn:  # one snapshot: the report, the newest payments and the checkpoint agree
        report = state.reader.overview(conn=conn)
        latest = label(conn, latest_payments(conn, 20), t)
        point = state.reader.point(conn)
    spend = {d: report.spend.get(d, []) for d in DIMENSIONS}
    by_category = spend["category"]
    chart: dict[str, Any] = {
        "title": t("overview.chart.title"),
        "unit": t("unit.krw"),
        "lang": t.lang,
        "labels": [t.category(row.label) for row in by_category],
        "values": [row.amount for row in by_category],
    }
    # the follower may run in another process (--workers): its status comes through the shared folder
    follower = read_status(state.shared) if state.config.follow else None
    return render(
        request,
        "console/overview.html",
        {
            "spend": spend,
            "dimensions": DIMENSIONS,
            "flows": report.flows,
            "vendors": report.vendors,
            "latest": latest,
            "checkpoint": point,
            "follower": follower,
            "chart": chart,
        },
    )


@router.get("/console/live/payments")
async def live_payments(request: Request) -> Response:
    """Server-sent events: each payment indexed from now on (or after ``Last-Event-ID``)."""
    state = state_of(request)
    since = parse_position(request.headers.get("last-event-id") or request.query_params.get("after"))
    return StreamingResponse(
        state.feed.stream(translator(request), since, request.is_disconnected, state.stopping),
        media_type="text/event-stream",
        headers={"Cache-Control": "no-store", "X-Accel-Buffering": "no"},
    )

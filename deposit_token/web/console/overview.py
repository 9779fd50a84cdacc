"""The console's first page: the spending report (spend by program, department, category and month; money flows
per program; top vendors: ``audit.query.overview``, from the derived monthly cells, so distinct payers are not
shown) as tables and a chart, the indexer's position, and the newest payments, streaming in as they are indexed
(server-sent events, ``/console/live/payments``)."""

from __future__ import annotations

import threading
from collections import OrderedDict
from collections.abc import Hashable
from dataclasses import dataclass
from typing import Any

from fastapi import Request
from fastapi.responses import Response, StreamingResponse
from jinja2 import Environment
from markupsafe import Markup

from deposit_token.audit.query.overview import Overview
from deposit_token.web.console import NavItem
from deposit_token.web.core.auth import console_router
from deposit_token.web.core.follow import read_status
from deposit_token.web.core.i18n import LANGUAGES, Translator
from deposit_token.web.core.live import label, latest_payments, parse_position
from deposit_token.web.core.pages import render, translator
from deposit_token.web.core.reader import Checkpoint
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
    # the follower may run in another process (--workers): its status comes through the shared folder
    follower = read_status(state.shared) if state.config.follow else None
    return render(
        request,
        "console/overview.html",
        {
            "report_html": _report_html(state.templates, report, t, point),
            "latest": latest,
            "checkpoint": point,
            "follower": follower,
        },
    )


@dataclass(frozen=True)
class ReportHtml:
    chart: Markup
    tables: Markup


# (checkpoint, language) -> the report's HTML: the report is the same for every auditor until the checkpoint
# moves (the reader keeps it per checkpoint), and its tables were most of the page's rendering
_REPORTS: OrderedDict[tuple[Hashable, str], ReportHtml] = OrderedDict()
_REPORTS_LOCK = threading.Lock()


def _report_html(templates: Environment, report: Overview, t: Translator, point: Checkpoint | None) -> ReportHtml:
    key = (None if point is None else (point.block_number, point.block_hash), t.lang)
    with _REPORTS_LOCK:
        found = _REPORTS.get(key) if point is not None else None
    if found is not None:
        return found
    spend = {d: report.spend.get(d, []) for d in DIMENSIONS}
    by_category = spend["category"]
    chart: dict[str, Any] = {
        "title": t("overview.chart.title"),
        "unit": t("unit.krw"),
        "lang": t.lang,
        "labels": [t.category(row.label) for row in by_category],
        "values": [row.amount for row in by_category],
    }
    template = templates.get_template("console/_overview_report.html")
    context = template.new_context(
        {
            "t": t,
            "spend": spend,
            "dimensions": DIMENSIONS,
            "flows": report.flows,
            "vendors": report.vendors,
            "chart": chart,
        }
    )
    html = ReportHtml(*(Markup("".join(template.blocks[name](context))) for name in ("chart", "tables")))
    if point is not None:
        with _REPORTS_LOCK:
            _REPORTS[key] = html
            while len(_REPORTS) > 2 * len(LANGUAGES):  # the newest checkpoints' only
                _REPORTS.popitem(last=False)
    return html


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

"""Supervisors read the access log (newest first, 100 a page): logins, failed and throttled logins, logouts,
exports, dispositions, account changes."""

from __future__ import annotations

from fastapi import Request
from fastapi.responses import Response

from deposit_token.web.console import NavItem
from deposit_token.web.core import accesslog
from deposit_token.web.core.auth import console_router
from deposit_token.web.core.pages import render
from deposit_token.web.core.state import state_of

router = console_router(supervisor=True)
NAV = NavItem("/console/access-log", "nav.access_log", order=95, supervisor_only=True)
PAGE = 100


@router.get("/console/access-log")
def access_log(request: Request, before: int | None = None) -> Response:
    with state_of(request).engine.connect() as conn:
        entries = accesslog.recent(conn, PAGE, before)
    older = entries[-1].id if len(entries) == PAGE else None
    return render(request, "console/access_log.html", {"entries": entries, "older": older})

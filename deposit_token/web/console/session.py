"""Logging out (a POST with the CSRF token: a link elsewhere cannot log an auditor out)."""

from __future__ import annotations

from fastapi import Request
from fastapi.responses import RedirectResponse, Response
from starlette.concurrency import run_in_threadpool

from deposit_token.web.core import accesslog, sessions
from deposit_token.web.core.auth import CurrentUser, client_ip, console_router
from deposit_token.web.core.state import state_of

router = console_router()


@router.post("/console/logout")
async def logout(request: Request, principal: CurrentUser) -> Response:
    state = state_of(request)

    def end() -> None:
        sessions.end(state.engine, principal.token_hash)
        with state.engine.begin() as conn:
            accesslog.record(conn, accesslog.LOGOUT, state.now(), principal.name, client_ip(request))

    await run_in_threadpool(end)
    response = RedirectResponse("/login", status_code=303)
    response.delete_cookie(
        sessions.COOKIE, path="/", httponly=True, samesite="strict", secure=state.config.secure_cookies
    )
    return response

"""Supervisors manage auditor accounts in the browser (as ``ape run audit users`` does on the server): list,
add (the new account's second factor is shown once, on the answer page), disable, enable, reset the second
factor. Every change is in the access log, with who made it."""

from __future__ import annotations

from fastapi import Request
from fastapi.responses import RedirectResponse, Response
from starlette.concurrency import run_in_threadpool

from deposit_token.web.console import NavItem
from deposit_token.web.core import accounts
from deposit_token.web.core.auth import CurrentUser, client_ip, console_router
from deposit_token.web.core.pages import render
from deposit_token.web.core.state import state_of

router = console_router(supervisor=True)
NAV = NavItem("/console/users", "nav.users", order=90, supervisor_only=True)


def _page(request: Request, status_code: int = 200, **context: object) -> Response:
    listed = accounts.list_accounts(state_of(request).engine)
    return render(
        request,
        "console/users.html",
        {"accounts": listed, "roles": accounts.ROLES, "enrolment": None, "error": None, **context},
        status_code,
    )


@router.get("/console/users")
def users(request: Request) -> Response:
    return _page(request)


@router.post("/console/users")
async def add(request: Request, principal: CurrentUser) -> Response:
    form = await request.form()
    name, role, password = (str(form.get(k) or "") for k in ("name", "role", "password"))
    state = state_of(request)
    try:
        enrolment = await run_in_threadpool(
            accounts.add_user,
            state.engine,
            name,
            role,
            password,
            state.now(),
            principal.name,
            client_ip(request),
            state.totp_keys,
        )
    except accounts.AccountError as err:
        message = str(err)
        return await run_in_threadpool(lambda: _page(request, 400, error=message))
    response = await run_in_threadpool(lambda: _page(request, enrolment=enrolment))
    response.headers["Cache-Control"] = "no-store"  # the page shows a TOTP secret
    return response


@router.post("/console/users/{name}/{action}")
def change(request: Request, name: str, action: str, principal: CurrentUser) -> Response:
    state = state_of(request)
    now, ip = state.now(), client_ip(request)
    try:
        if action == "disable":
            if accounts.check_name(name) == principal.name:
                raise accounts.AccountError("a supervisor cannot disable their own account")
            accounts.set_disabled(state.engine, name, True, now, principal.name, ip)
        elif action == "enable":
            accounts.set_disabled(state.engine, name, False, now, principal.name, ip)
        elif action == "reset-mfa":
            enrolment = accounts.reset_mfa(state.engine, name, now, principal.name, ip, state.totp_keys)
            response = _page(request, enrolment=enrolment)
            response.headers["Cache-Control"] = "no-store"
            return response
        else:
            return _page(request, 404, error=f"unknown action {action!r}")
    except accounts.AccountError as err:
        return _page(request, 400, error=str(err))
    return RedirectResponse("/console/users", status_code=303)

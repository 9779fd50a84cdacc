"""Who may see what: the login and logout pages, and the dependencies every console route runs.

* ``console_router()`` is the only way to make console routes: its routes require a live session of an enabled
  account (``require_user``) and, for every method but GET/HEAD/OPTIONS, the session's CSRF token in the form
  field ``csrf_token`` or the ``X-CSRF-Token`` header (``csrf_protect``); ``console_router(supervisor=True)``
  also requires the supervisor role. ``tests/web`` walks the app's routes and checks every one of them.
* Anonymous requests to a console page are sent to the login page (303); other requests get 401; a missing or
  wrong CSRF token gets 403, as does an auditor on a supervisor's page.
* The login form carries its own CSRF token (a double-submit cookie, since there is no session yet), so that
  another site cannot log a browser into an account of its choosing.
* Cookies are HttpOnly and SameSite=Strict, and Secure with ``--secure-cookies`` (served over TLS).
"""

from __future__ import annotations

import hmac
import secrets
from typing import Annotated
from urllib.parse import quote

from fastapi import APIRouter, Depends, Request
from fastapi.responses import JSONResponse, RedirectResponse, Response
from starlette.concurrency import run_in_threadpool

from deposit_token.errors import DepositTokenError
from deposit_token.web.core import accounts, sessions
from deposit_token.web.core.pages import render
from deposit_token.web.core.sessions import Principal
from deposit_token.web.core.state import state_of

LOGIN_CSRF_COOKIE = "dt_login_csrf"
SAFE_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})
CSRF_HEADER = "x-csrf-token"


class LoginRequired(DepositTokenError):
    """No live session (anonymous, expired, logged out or disabled)."""


class Forbidden(DepositTokenError):
    """Logged in, but this needs another role, or the request's CSRF token is missing or wrong."""

    def __init__(self, reason: str):
        super().__init__(reason)
        self.reason = reason


def client_ip(request: Request) -> str | None:
    return request.client.host if request.client else None


def principal_of(request: Request) -> Principal | None:
    """The principal this request was authenticated as (by ``require_user``), else None."""
    found: Principal | None = getattr(request.state, "principal", None)
    return found


def _lookup(request: Request) -> Principal | None:
    state = state_of(request)
    return sessions.lookup(state.engine, request.cookies.get(sessions.COOKIE), state.now(), state.config.session_idle)


def require_user(request: Request) -> Principal:
    """Dependency: the logged-in principal, or LoginRequired."""
    principal = principal_of(request) or _lookup(request)
    if principal is None:
        raise LoginRequired()
    request.state.principal = principal
    return principal


CurrentUser = Annotated[Principal, Depends(require_user)]
"""A route's parameter for the logged-in principal (``principal: CurrentUser``)."""


def require_supervisor(principal: CurrentUser) -> Principal:
    if not principal.is_supervisor:
        raise Forbidden("supervisor")
    return principal


async def csrf_protect(request: Request) -> None:
    """Dependency: an unsafe method must carry the session's CSRF token."""
    if request.method in SAFE_METHODS:
        return
    principal = principal_of(request) or await run_in_threadpool(_lookup, request)
    if principal is None:
        raise LoginRequired()
    sent = request.headers.get(CSRF_HEADER)
    if not sent and request.headers.get("content-type", "").startswith(
        ("application/x-www-form-urlencoded", "multipart/form-data")
    ):
        value = (await request.form()).get("csrf_token")
        sent = value if isinstance(value, str) else None
    if not sent or not hmac.compare_digest(sent, principal.csrf_token):
        raise Forbidden("csrf")


def console_router(*, supervisor: bool = False) -> APIRouter:
    """An APIRouter for console pages: login (and the supervisor role) and CSRF enforced on every route."""
    dependencies = [Depends(require_user), Depends(csrf_protect)]
    if supervisor:
        dependencies.append(Depends(require_supervisor))
    return APIRouter(dependencies=dependencies, include_in_schema=False)


def login_required_response(request: Request) -> Response:
    if request.method == "GET" and "text/html" in request.headers.get("accept", ""):
        target = request.url.path + (f"?{request.url.query}" if request.url.query else "")
        return RedirectResponse(f"/login?next={quote(target, safe='')}", status_code=303)
    return JSONResponse({"detail": "login required"}, status_code=401)


def forbidden_response(request: Request, error: Forbidden) -> Response:
    if "text/html" in request.headers.get("accept", ""):
        return render(request, "error.html", {"status": 403, "message_key": f"error.forbidden.{error.reason}"}, 403)
    return JSONResponse({"detail": f"forbidden ({error.reason})"}, status_code=403)


# --- login and logout ------------------------------------------------------------------------------------------

router = APIRouter(include_in_schema=False)


def safe_next(target: str | None) -> str:
    """Where to go after logging in: a console path of this site, never another site."""
    if target and target.startswith("/console") and "//" not in target and "\\" not in target:
        return target
    return "/console"


def _set_cookie(request: Request, response: Response, name: str, value: str, max_age: int | None, path: str) -> None:
    response.set_cookie(
        name,
        value,
        max_age=max_age,
        path=path,
        httponly=True,
        samesite="strict",
        secure=state_of(request).config.secure_cookies,
    )


def _login_page(
    request: Request,
    error_key: str | None = None,
    status_code: int = 200,
    headers: dict[str, str] | None = None,
    **values: object,
) -> Response:
    token = secrets.token_urlsafe(32)
    request.state.login_csrf = token
    response = render(
        request,
        "login.html",
        {"error_key": error_key, "error_values": values, "next": safe_next(request.query_params.get("next"))},
        status_code,
        {"Cache-Control": "no-store", **(headers or {})},
    )
    _set_cookie(request, response, LOGIN_CSRF_COOKIE, token, None, "/login")
    return response


@router.get("/login")
def login_form(request: Request) -> Response:
    return _login_page(request)


@router.post("/login")
async def login(request: Request) -> Response:
    form = await request.form()
    fields = {key: form.get(key) for key in ("name", "password", "code", "csrf_token", "next")}
    text = {key: value if isinstance(value, str) else "" for key, value in fields.items()}
    cookie = request.cookies.get(LOGIN_CSRF_COOKIE, "")
    if not cookie or not hmac.compare_digest(text["csrf_token"], cookie):
        return _login_page(request, "login.error.csrf", 403)
    state = state_of(request)
    try:
        account = await run_in_threadpool(
            accounts.authenticate,
            state.engine,
            text["name"],
            text["password"],
            text["code"],
            client_ip(request),
            state.now(),
            state.config.limits,
            state.totp_keys,
        )
    except accounts.LoginRefused as refused:
        if refused.reason == "throttled":
            minutes = max(1, -(-(refused.retry_after or 60) // 60))
            wait = str(refused.retry_after or 60)
            return _login_page(request, "login.error.throttled", 429, {"Retry-After": wait}, minutes=minutes)
        return _login_page(request, "login.error.credentials", 401)
    token, _ = await run_in_threadpool(
        sessions.create, state.engine, account, state.now(), state.config.session_lifetime
    )
    # ended sessions are deleted at each login (rare enough, and no timer thread needed)
    await run_in_threadpool(sessions.purge, state.engine, state.now(), state.config.session_idle)
    response = RedirectResponse(safe_next(text["next"]), status_code=303)
    _set_cookie(request, response, sessions.COOKIE, token, state.config.session_lifetime, "/")
    response.delete_cookie(
        LOGIN_CSRF_COOKIE, path="/login", httponly=True, samesite="strict", secure=state.config.secure_cookies
    )
    return response

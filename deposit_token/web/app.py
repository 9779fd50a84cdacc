"""The ASGI application: ``create_app(WebConfig(...))``.

Routes (``tests/web`` lists them from the app itself):

* public, no login: ``/`` (the transparency portal), ``/api/public/cells``, ``/api/public/cells.csv``,
  ``/api/public/meta``, ``/api/health``, ``/api/openapi.json`` (the public API's OpenAPI document), ``/api/docs``
  (that document as a page), ``/static/...``;
* ``/login`` (GET form, POST password + TOTP code);
* the console, ``/console...``: every module of ``deposit_token.web.console`` (overview, live payments, users,
  access log, logout, and the pages added there).

Every response carries a Content-Security-Policy that allows this site's own scripts, styles and connections
only (no inline script, no CDN, no framing), ``X-Content-Type-Options: nosniff`` and ``Referrer-Policy:
no-referrer``.
"""

from __future__ import annotations

import logging
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse, Response
from sqlalchemy import Engine
from starlette.concurrency import run_in_threadpool
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from deposit_token.audit.db import store
from deposit_token.errors import DepositTokenError
from deposit_token.web import console, public
from deposit_token.web.core import accounts, auth
from deposit_token.web.core.assets import StaticAssets
from deposit_token.web.core.background import Background
from deposit_token.web.core.config import WebConfig
from deposit_token.web.core.live import LiveFeed
from deposit_token.web.core.pages import environment, render
from deposit_token.web.core.reader import AuditReader
from deposit_token.web.core.shared import SharedFolder
from deposit_token.web.core.state import WebState
from deposit_token.web.core.totpkeys import KeyFileError, KeyRing

STATIC = Path(__file__).resolve().parent / "static"
API_TITLE = "deposit-token public spending API"
log = logging.getLogger("deposit_token.web")
# database connections each process keeps open: its requests run in up to 40 threads (anyio's default), and with
# SQLAlchemy's default 5 every request beyond the fifth opened a PostgreSQL connection (a server process) and
# closed it again
POOL_SIZE = 20

SECURITY_HEADERS = [
    (
        b"content-security-policy",
        b"default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; connect-src 'self'; "
        b"font-src 'self'; object-src 'none'; base-uri 'none'; form-action 'self'; frame-ancestors 'none'",
    ),
    (b"x-content-type-options", b"nosniff"),
    (b"referrer-policy", b"no-referrer"),
    (b"x-frame-options", b"DENY"),
    (b"cross-origin-opener-policy", b"same-origin"),
]


class WebError(DepositTokenError):
    """The server cannot start (the message says why, in one sentence)."""


def open_totp_keys(engine: Engine, config: WebConfig) -> KeyRing:
    """The key file of the accounts' TOTP secrets (created on first use), with every secret still stored in clear
    encrypted and every encrypted one checked to open; WebError in one sentence otherwise (the wrong, a missing
    or an unreadable key file)."""
    try:
        keys = accounts.key_ring(engine, config.totp_key_file)
        done = accounts.protect_secrets(engine, keys, int(time.time()))
    except KeyFileError as err:
        raise WebError(str(err)) from None
    if done.encrypted:
        log.info("encrypted the TOTP secrets of %d accounts stored in clear", len(done.encrypted))
    return keys


def open_database(db_url: str, migrate: bool = True) -> Engine:
    """The audit database, migrated to the current schema (the console's tables included) unless `migrate` is
    False. A SQLite file must exist already: a mistyped path is an error, not a new empty database."""
    try:
        url = store.parse_db_url(db_url)
        if url.get_backend_name() == "sqlite" and not store.sqlite_file(url).is_file():
            raise WebError(
                f"no audit database at {store.sqlite_file(url)}: index the chain first (`ape run audit index`), "
                "or give --db"
            )
        return store.open_database(db_url, migrate=migrate, pool_size=POOL_SIZE, cheap_ping=True)
    except store.DatabaseError as err:
        raise WebError(str(err)) from None


class SecurityHeaders:
    """Adds the security headers to every HTTP response (a plain ASGI middleware: event streams pass as they
    are)."""

    def __init__(self, app: ASGIApp):
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return

        async def with_headers(message: Message) -> None:
            if message["type"] == "http.response.start":
                present = {name.lower() for name, _ in message.get("headers", [])}
                message["headers"] = list(message.get("headers", [])) + [
                    (name, value) for name, value in SECURITY_HEADERS if name not in present
                ]
            await send(message)

        await self.app(scope, receive, with_headers)


def _wants_html(request: Request) -> bool:
    return not request.url.path.startswith("/api/") and "text/html" in request.headers.get("accept", "")


def create_app(config: WebConfig, engine: Engine | None = None, background: bool = True) -> FastAPI:
    """The app over `config.db_url` (opened and migrated here unless `engine` is given).

    background: the app also keeps the derived tables current and runs the follower (``core.background``), as
    when it serves alone; a worker of ``serve --workers N`` (N > 1) leaves that to the parent process, and opens
    the database without migrating it (the parent did, once)."""
    given = engine
    engine = engine or open_database(config.db_url, migrate=background)
    try:
        keys = open_totp_keys(engine, config)
    except WebError:
        if given is None:
            engine.dispose()
        raise
    own_folder = config.shared_dir is None  # the app alone (tests): a folder of its own, removed at the end
    shared = SharedFolder.create() if own_folder else SharedFolder(str(config.shared_dir))
    state = WebState(
        config=config,
        engine=engine,
        templates=environment(),
        reader=AuditReader(engine),
        feed=LiveFeed(engine, config.live_poll),
        shared=shared,
        totp_keys=keys,
    )
    work = Background(engine, config, shared, log=log.info) if background else None
    if work is not None:
        state.follower = work.follower

    @asynccontextmanager
    async def lifespan(_app: FastAPI) -> AsyncIterator[None]:
        if work is not None:
            # the flag queue and monthly cells follow the checkpoint, whoever indexes (core/derived.py)
            await run_in_threadpool(work.start)
        try:
            yield
        finally:
            state.stopping.set()
            if work is not None:
                work.stop()
            if own_folder:
                shared.remove()

    app = FastAPI(
        title=API_TITLE,
        version="1",
        description="Anonymised payments of the deposit-token pilot: department x merchant category x month, "
        "cells under 5 payments suppressed, no totals. No address, hash, vendor or receipt is ever published.",
        openapi_url="/api/openapi.json",
        docs_url=None,
        redoc_url=None,
        lifespan=lifespan,
    )
    app.state.web = state
    # the public API's cheapest answers first, inside the security headers (the last added is the outermost)
    app.add_middleware(public.FastPublic, reader=lambda: state.reader, max_age=lambda: state.config.public_max_age)
    app.add_middleware(SecurityHeaders)
    app.mount("/static", StaticAssets(STATIC), name="static")
    app.include_router(public.router)
    app.include_router(auth.router)
    pages = console.discover()
    for module in pages:
        app.include_router(module.router)
    state.nav = console.nav_items(pages)

    @app.exception_handler(auth.LoginRequired)
    async def login_required(request: Request, _error: Exception) -> Response:
        return auth.login_required_response(request)

    @app.exception_handler(auth.Forbidden)
    async def forbidden(request: Request, error: Exception) -> Response:
        assert isinstance(error, auth.Forbidden)
        return auth.forbidden_response(request, error)

    @app.exception_handler(StarletteHTTPException)
    async def http_error(request: Request, error: Exception) -> Response:
        assert isinstance(error, StarletteHTTPException)
        if _wants_html(request) and error.status_code in (404, 405):
            key = "error.not_found" if error.status_code == 404 else "error.bad_request"
            return render(request, "error.html", {"status": error.status_code, "message_key": key}, error.status_code)
        return JSONResponse({"detail": error.detail}, status_code=error.status_code, headers=error.headers)

    @app.exception_handler(RequestValidationError)
    async def invalid(request: Request, error: Exception) -> Response:
        assert isinstance(error, RequestValidationError)
        if _wants_html(request):
            return render(request, "error.html", {"status": 400, "message_key": "error.bad_request"}, 400)
        details: list[Any] = [{"loc": e.get("loc"), "msg": e.get("msg")} for e in error.errors()]
        return JSONResponse({"detail": details}, status_code=422)

    @app.exception_handler(Exception)
    async def failure(request: Request, error: Exception) -> Response:
        log.exception("error serving %s %s", request.method, request.url.path)
        if _wants_html(request):
            return render(request, "error.html", {"status": 500, "message_key": "error.internal"}, 500)
        return JSONResponse({"detail": "internal error"}, status_code=500)

    return app

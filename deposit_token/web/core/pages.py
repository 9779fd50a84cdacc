"""Rendering a page: the Jinja2 environment (autoescaped, templates from the package) and ``render``, which gives
every template the translator ``t``, the language, the logged-in principal (if any), its CSRF token, the console's
navigation and the language switch.

A template extends ``base.html`` (public pages) or ``console/base.html`` (console pages: navigation, logout)
and fills ``content``; a form posts ``csrf_token`` (``{{ csrf_field() }}``). Chart data goes into a
``<script type="application/json">`` block (``|tojson``), read by ``static/charts.js``: no inline script, so
the Content-Security-Policy can forbid them.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any
from urllib.parse import urlencode

from fastapi import Request
from fastapi.responses import HTMLResponse
from jinja2 import Environment, FileSystemLoader, StrictUndefined, select_autoescape
from markupsafe import Markup, escape

from deposit_token.web.core import i18n
from deposit_token.web.core.sessions import Principal
from deposit_token.web.core.state import state_of

TEMPLATES = Path(__file__).resolve().parents[1] / "templates"


def environment() -> Environment:
    return Environment(
        loader=FileSystemLoader(TEMPLATES),
        autoescape=select_autoescape(["html"]),
        undefined=StrictUndefined,
        trim_blocks=True,
        lstrip_blocks=True,
    )


def language(request: Request) -> str:
    return i18n.choose(request.query_params.get("lang"), request.cookies.get(i18n.COOKIE))


def translator(request: Request) -> i18n.Translator:
    return i18n.Translator(language(request))


def lang_url(request: Request, lang: str) -> str:
    """The current page in another language (its other query parameters kept)."""
    query = {k: v for k, v in request.query_params.multi_items() if k != "lang"}
    return f"{request.url.path}?{urlencode([*query.items(), ('lang', lang)])}"


def render(
    request: Request,
    template: str,
    context: Mapping[str, Any] | None = None,
    status_code: int = 200,
    headers: Mapping[str, str] | None = None,
) -> HTMLResponse:
    """The page `template` with `context`; a ``lang`` query parameter is remembered in a cookie."""
    state = state_of(request)
    t = translator(request)
    principal: Principal | None = getattr(request.state, "principal", None)  # set by auth.require_user

    def csrf_field() -> Markup:
        token = principal.csrf_token if principal else getattr(request.state, "login_csrf", "")
        return Markup(f'<input type="hidden" name="csrf_token" value="{escape(token)}">')

    html = state.templates.get_template(template).render(
        {
            "request": request,
            "t": t,
            "lang": t.lang,
            "languages": i18n.LANGUAGES,
            "lang_url": lambda lang: lang_url(request, lang),
            "principal": principal,
            "csrf_field": csrf_field,
            "nav": state.navigation(principal) if principal else [],
            "path": request.url.path,
            **(context or {}),
        }
    )
    response = HTMLResponse(html, status_code=status_code, headers=dict(headers or {}))
    chosen = request.query_params.get("lang")
    if chosen in i18n.LANGUAGES and chosen != request.cookies.get(i18n.COOKIE):
        response.set_cookie(
            i18n.COOKIE,
            chosen,
            max_age=365 * 24 * 3600,
            httponly=True,
            samesite="strict",
            secure=state.config.secure_cookies,
        )
    return response

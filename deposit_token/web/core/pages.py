"""Rendering a page: the Jinja2 environment (autoescaped, templates from the package) and ``render``, which gives
every template the translator ``t``, the language, the logged-in principal (if any), its CSRF token, the console's
navigation and the language switch.

A template extends ``base.html`` (public pages) or ``console/base.html`` (console pages: navigation, logout)
and fills ``content``; a form posts ``csrf_token`` (``{{ csrf_field() }}``). Chart data goes into a
``<script type="application/json">`` block (``|tojson``), read by ``static/charts.js``: no inline script, so
the Content-Security-Policy can forbid them.
"""

from __future__ import annotations

import threading
from collections import OrderedDict
from collections.abc import Collection, Mapping, Sequence
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
        auto_reload=False,  # templates change only with a release: no stat of each template per render
    )


# value list -> its <option> elements, unselected and selected, escaped once
_OPTIONS: OrderedDict[int, tuple[Sequence[Any], list[tuple[str, str, str]]]] = OrderedDict()
_OPTIONS_LOCK = threading.Lock()


def options(items: Sequence[Any], chosen: Collection[str], value: int = 0, label: int = 0) -> Markup:
    """``<option>`` elements for `items` (tuples: ``item[value]`` the value, ``item[label]`` the text; plain
    strings: both), those in `chosen` selected. The filter forms list every vendor (500 in the benchmark's pilot
    year) on every page; escaped and formatted by the template each time, they were a fifth of a payments page's
    time. `items` is the reader's cached list (the same object until the checkpoint moves), so each list is
    escaped once."""
    with _OPTIONS_LOCK:
        found = _OPTIONS.get(id(items))
        if found is not None and found[0] is not items:
            found = None
    if found is None:
        rendered = []
        for item in items:
            v, text = (item, item) if isinstance(item, str) else (str(item[value]), str(item[label]))
            attr = f'<option value="{escape(v)}"'
            rendered.append((v, f"{attr}>{escape(text)}</option>", f"{attr} selected>{escape(text)}</option>"))
        found = (items, rendered)
        with _OPTIONS_LOCK:
            _OPTIONS[id(items)] = found  # the list is kept with it: its id is not reused while cached
            while len(_OPTIONS) > 16:
                _OPTIONS.popitem(last=False)
    wanted = set(chosen)
    return Markup("".join(on if v in wanted else off for v, off, on in found[1]))


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
            "options": options,
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

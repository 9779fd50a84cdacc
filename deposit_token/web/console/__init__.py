"""The auditors' console: one module per page (or group of pages), found by :func:`discover`, so that a new
page is a new module here and nothing else changes (as ``ape run audit`` finds its subcommands).

A console module defines:

* ``router``: made with ``deposit_token.web.core.auth.console_router()`` (login and CSRF enforced on every route;
  ``console_router(supervisor=True)`` for supervisors only). Paths start with ``/console``.
* ``NAV`` (optional): a ``NavItem`` (``deposit_token.web.core.state``) or a tuple of them, the module's
  entries in the navigation bar.

Its pages ``render(request, "console/<page>.html", {...})`` (``deposit_token.web.core.pages``), templates extending
``console/base.html``; labels go into both catalogues (``deposit_token/web/catalogue/{ko,en}.json``). Reads go
through the audit library (``deposit_token.audit.query``), inside ``reader.snapshot()``, in a worker thread
(``def`` routes, not ``async def``, so that a slow query does not stop the event loop). Actions worth an
audit trail (exports, dispositions) go into the access log (``deposit_token.web.core.accesslog.record``).
"""

from __future__ import annotations

import importlib
import pkgutil
from types import ModuleType

from fastapi import APIRouter

from deposit_token.web.core.state import NavItem

__all__ = ["NavItem", "discover", "nav_items"]


def discover() -> list[ModuleType]:
    """The console's page modules (those with a ``router``), by name."""
    found = []
    for info in sorted(pkgutil.iter_modules(__path__), key=lambda i: i.name):
        if info.name.startswith("_"):
            continue
        module = importlib.import_module(f"{__name__}.{info.name}")
        if isinstance(getattr(module, "router", None), APIRouter):
            found.append(module)
    return found


def nav_items(modules: list[ModuleType]) -> list[NavItem]:
    """The navigation entries the modules declare (``NAV``: one NavItem or a tuple of them)."""
    items: list[NavItem] = []
    for module in modules:
        nav = getattr(module, "NAV", None)
        if nav is not None:
            items.extend(nav if isinstance(nav, tuple) else (nav,))
    return items

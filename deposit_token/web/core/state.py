"""What the running app holds: its configuration, the database engine, the templates, the cached reads, the
live feed, the folder its worker processes share, and the follower (when the server indexes the chain itself
in this process). One per app (per worker process), in ``app.state.web``."""

from __future__ import annotations

import threading
import time
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from fastapi import Request
from jinja2 import Environment
from sqlalchemy import Engine

from deposit_token.web.core.config import WebConfig
from deposit_token.web.core.sessions import Principal
from deposit_token.web.core.shared import SharedFolder
from deposit_token.web.core.totpkeys import KeyRing

if TYPE_CHECKING:
    from deposit_token.web.core.follow import Follower
    from deposit_token.web.core.live import LiveFeed
    from deposit_token.web.core.reader import AuditReader


@dataclass(frozen=True)
class NavItem:
    """An entry of the console's navigation bar (a console module's ``NAV``)."""

    path: str
    label_key: str  # a catalogue key
    order: int = 100  # left to right
    supervisor_only: bool = False


@dataclass
class WebState:
    config: WebConfig
    engine: Engine
    templates: Environment
    reader: AuditReader
    feed: LiveFeed
    shared: SharedFolder  # what the worker processes share: the follower's status, the verify job
    totp_keys: KeyRing  # opens the accounts' TOTP secrets (never in the database)
    follower: Follower | None = None  # in this process: the app serves alone (one worker, or tests)
    nav: list[NavItem] = field(default_factory=list)
    stopping: threading.Event = field(default_factory=threading.Event)

    def navigation(self, principal: Principal) -> list[NavItem]:
        """The navigation bar of `principal`, left to right."""
        shown = [item for item in self.nav if principal.is_supervisor or not item.supervisor_only]
        return sorted(shown, key=lambda item: (item.order, item.path))

    @staticmethod
    def now() -> int:
        """Unix seconds: the one clock of the web layer (sessions, throttling, the access log)."""
        return int(time.time())


def state_of(request: Request) -> WebState:
    state: WebState = request.app.state.web
    return state

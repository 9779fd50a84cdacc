"""What one process of the server does for all the others: keep the derived tables up to the checkpoint
(``core.derived``) and, with ``--follow``, index the chain (``core.follow``). It must run exactly once per server:
in the app's own process when it serves alone (one worker, tests), else in the parent of the worker processes
(``server.serve``), which answers no request."""

from __future__ import annotations

from collections.abc import Callable

from sqlalchemy import Engine

from deposit_token.web.core.config import WebConfig
from deposit_token.web.core.derived import Deriver
from deposit_token.web.core.follow import Follower
from deposit_token.web.core.shared import SharedFolder


class Background:
    def __init__(
        self, engine: Engine, config: WebConfig, shared: SharedFolder, log: Callable[[str], None] = lambda _m: None
    ):
        self.deriver = Deriver(engine, log=log)
        self.follower = None if config.follow is None else Follower(engine, config.follow, shared, log=log)

    def start(self) -> None:
        """A first refresh of the derived tables (before serving: a large database's first build takes a
        while), then the threads."""
        self.deriver.start()
        if self.follower is not None:
            self.follower.start()

    def stop(self) -> None:
        if self.follower is not None:
            self.follower.stop()
        self.deriver.stop()

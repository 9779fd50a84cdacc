"""Keeps the audit database's derived tables (the flag queue and the monthly cells: ``audit.derive``) up to the
indexer's checkpoint while the server runs, whether the indexer runs in the server (``--follow``) or beside it.

A thread looks at the checkpoint every `interval` seconds and calls ``derive.refresh`` only when it moved past
the derived tables (a read; the refresh takes the write lock, which the indexer needs too, so it is not taken
for nothing). The console's flag queue, payment counts and filter choices read these tables."""

from __future__ import annotations

import threading
from collections.abc import Callable

from sqlalchemy import Engine
from sqlalchemy.exc import SQLAlchemyError

from deposit_token.audit import derive
from deposit_token.errors import DepositTokenError


class Deriver:
    def __init__(self, engine: Engine, interval: float = 0.5, log: Callable[[str], None] = lambda _m: None):
        self.engine = engine
        self.interval = interval
        self.log = log
        self.error: str | None = None
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def behind(self) -> bool:
        with self.engine.connect() as conn:
            found = derive.status(conn)
        return found.checkpoint is not None and (found.behind or 0) > 0

    def refresh_now(self) -> None:
        """One refresh if the tables are behind (also what the thread does each `interval`)."""
        if self.behind():
            derive.refresh(self.engine)

    def start(self) -> None:
        """A first refresh before serving (a database indexed without the server), then the thread."""
        self.refresh_now()
        self._thread = threading.Thread(target=self._run, name="audit-derive", daemon=True)
        self._thread.start()

    def _run(self) -> None:
        while not self._stop.wait(self.interval):
            try:
                self.refresh_now()
                self.error = None
            except (DepositTokenError, SQLAlchemyError, ValueError) as err:
                # a locked or lost database: said once, tried again at the next tick
                text = str(err).splitlines()[0] if str(err) else type(err).__name__
                if text != self.error:
                    self.log(f"derived tables not refreshed: {text}")
                self.error = text

    def stop(self, timeout: float = 10.0) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout)
            self._thread = None

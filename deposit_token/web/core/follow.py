"""The server's own indexer (``serve --follow``): the audit library's Indexer following the head in a thread of
the server process, so that one process serves the console and keeps its database current.

Why in the same process: one thing for a service manager to start, and the console can show whether its
indexer runs and why it stopped. The alternative works as well - ``ape run audit index --follow`` (or
``python -m deposit_token.audit index --follow``) beside a server started without ``--follow``: both open the
same database (SQLite in WAL mode, or PostgreSQL), the indexer writes, the server reads.

A failing node does not stop the server: the follower says why in ``status`` and tries again after a pause.

With several worker processes (``--workers``) the follower runs once, in the parent process; it writes its status
to the server's shared folder (``core.shared``), where every worker's overview reads it (``read_status``).
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from dataclasses import asdict, dataclass

from sqlalchemy import Engine

from deposit_token.audit.db import store
from deposit_token.audit.sync.indexer import Indexer, IndexerConfig
from deposit_token.chain.rpc import RpcClient, RpcConnectionError, RpcError
from deposit_token.errors import DepositTokenError
from deposit_token.web.core.config import Follow
from deposit_token.web.core.shared import SharedFolder

RETRY_AFTER = 5.0
STATUS_FILE = "follower.json"


@dataclass
class FollowerStatus:
    running: bool = False
    events: int = 0
    error: str | None = None


def read_status(shared: SharedFolder) -> FollowerStatus:
    """The follower's status as its process last wrote it (not started yet: not running, no error)."""
    found = shared.read(STATUS_FILE)
    return FollowerStatus() if found is None else FollowerStatus(**found)


class Follower:
    def __init__(
        self, engine: Engine, follow: Follow, shared: SharedFolder, log: Callable[[str], None] = lambda _m: None
    ):
        self.engine = engine
        self.follow = follow
        self.shared = shared
        self.log = log
        self.status = FollowerStatus()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def _publish(self) -> None:
        self.shared.write(STATUS_FILE, asdict(self.status))

    def start(self) -> None:
        """Binds the database to the chain (refusing another chain's database, as ``audit index`` does) and
        starts following in a daemon thread."""
        rpc = RpcClient(self.follow.rpc_url)
        try:
            store.bind_to_chain(self.engine, rpc.chain_id(), self.follow.token, self.follow.start_block)
        finally:
            rpc.close()
        self._thread = threading.Thread(target=self._run, name="audit-follower", daemon=True)
        self._thread.start()

    def _run(self) -> None:
        config = IndexerConfig(
            token=self.follow.token,
            start_block=self.follow.start_block,
            confirmations=self.follow.confirmations,
            poll_interval=self.follow.poll_interval,
        )
        while not self._stop.is_set():
            rpc = RpcClient(self.follow.rpc_url)
            self.status.running, self.status.error = True, None
            self._publish()
            try:
                stats = Indexer(rpc, self.engine, config, log=self.log).run(follow=True, stop=self._stop)
                self.status.events += stats.events
            except (DepositTokenError, RpcError, RpcConnectionError, OSError) as err:
                self.status.error = str(err).splitlines()[0] if str(err) else type(err).__name__
                self.status.running = False
                self._publish()
                self.log(f"indexer stopped: {self.status.error}; trying again in {RETRY_AFTER:g} s")
                self._stop.wait(RETRY_AFTER)
            finally:
                self.status.running = False
                self._publish()
                rpc.close()

    def stop(self, timeout: float = 10.0) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout)
            self._thread = None

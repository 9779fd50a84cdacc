"""The console's engine checks a pooled connection by its socket (no SELECT 1 per checkout) and still recovers
from a restarted PostgreSQL: the connections the old server closed are dropped at checkout, not handed out."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from sqlalchemy import text
from support.postgres import postgres_unusable

from deposit_token.audit.db import pgserver, store


@pytest.fixture(scope="module")
def server() -> Iterator[pgserver.PgServer]:
    try:
        started = pgserver.start_server()
    except pgserver.PgServerError as err:
        postgres_unusable(str(err))
    try:
        yield started
    finally:
        pgserver.stop_server(started)


@pytest.mark.parametrize("mode", ["fast", "immediate"])
def test_restart_under_the_pool(server: pgserver.PgServer, mode: str) -> None:
    engine = store.create_db_engine(server.url(), pool_size=3, cheap_ping=True)
    try:
        # three pooled connections, all idle in the pool when the server goes away
        held = [engine.connect() for _ in range(3)]
        pids = {c.execute(text("SELECT pg_backend_pid()")).scalar_one() for c in held}
        for c in held:
            c.close()
        pg_ctl = str(server.bindir / "pg_ctl")
        data = str(server.folder / "data")
        pgserver._run([pg_ctl, "-D", data, "-m", mode, "-w", "stop"], server.folder, "stop")
        pgserver._start(server.bindir, server.folder, server.port)
        for _ in range(5):  # every checkout after the restart answers, none raises
            with engine.connect() as conn:
                pid = conn.execute(text("SELECT pg_backend_pid()")).scalar_one()
                assert pid not in pids
    finally:
        engine.dispose()

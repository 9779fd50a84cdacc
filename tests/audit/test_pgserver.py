"""The throwaway PostgreSQL server of deposit_token.audit.db.pgserver: it answers, leaves nothing behind, and says in
one sentence what to install when the server binaries are missing."""

from __future__ import annotations

import subprocess
import sys
import time
from pathlib import Path

import pytest
from support.postgres import postgres_unusable

from deposit_token.audit.db import pgserver

OWNER = """
import time
from deposit_token.audit.db import pgserver
print(pgserver.start_server().folder, flush=True)
time.sleep(600)
"""


def eventually(check, attempts: int = 300, pause_s: float = 0.1) -> bool:
    """True once `check()` holds; polls for at most attempts x pause_s (the watchdog looks once a second)."""
    for _ in range(attempts):
        if check():
            return True
        time.sleep(pause_s)
    return check()


def bindir_missing() -> str | None:
    try:
        pgserver.find_bindir()
    except pgserver.PgServerError as err:
        return str(err)
    return None


def postgres_processes_of(server: pgserver.PgServer) -> list[str]:
    """Command lines of the processes serving `server`'s data folder."""
    listing = subprocess.run(["ps", "-eo", "args"], capture_output=True, text=True, check=True).stdout
    return [line for line in listing.splitlines() if str(server.folder) in line]


def test_server_answers_then_leaves_nothing_behind():
    try:
        server = pgserver.start_server()
    except pgserver.PgServerError as err:
        postgres_unusable(str(err))
    try:
        assert pgserver.unreachable(server.url()) is None
        url = pgserver.create_database(server.url(), "made_here")
        assert url.endswith(f":{server.port}/made_here") and pgserver.unreachable(url) is None
        pgserver.drop_database(server.url(), "made_here")
        assert postgres_processes_of(server)
    finally:
        pgserver.stop_server(server)
    assert not server.folder.exists()
    assert eventually(lambda: postgres_processes_of(server) == [])  # the watchdog sees the folder gone, exits
    assert "not reachable" in pgserver.unreachable(server.url(), timeout_s=2)


def test_a_killed_owner_leaves_no_server_behind(tmp_path):
    """`kill -9` of the process that started the server (a test run stopped by `timeout`): its watchdog stops
    the server and deletes its folder."""
    if (why := bindir_missing()) is not None:
        postgres_unusable(why)
    owner = subprocess.Popen([sys.executable, "-c", OWNER], stdout=subprocess.PIPE, text=True)
    try:
        folder = Path(owner.stdout.readline().strip())
        assert folder.is_dir(), "the owner did not start a server"
        server = pgserver.PgServer(port=0, folder=folder, bindir=pgserver.find_bindir())
        assert postgres_processes_of(server)
    finally:
        owner.kill()
        owner.wait()
    assert eventually(lambda: not folder.exists() and postgres_processes_of(server) == [])


def test_missing_binaries_are_one_sentence_with_the_install_command(tmp_path, monkeypatch):
    monkeypatch.setenv(pgserver.BINDIR_ENV, str(tmp_path))
    with pytest.raises(pgserver.PgServerError) as caught:
        pgserver.start_server()
    message = str(caught.value)
    assert message.startswith("PostgreSQL server binaries not found")
    assert "apt-get install -y postgresql" in message and "\n" not in message
    assert list(tmp_path.iterdir()) == []


def test_url_helpers_keep_user_host_and_options():
    url = "postgresql+psycopg://alice:s3cret@db.example:6543/audit?sslmode=require"
    assert (
        pgserver.with_database(url, "other")
        == "postgresql+psycopg://alice:s3cret@db.example:6543/other?sslmode=require"
    )

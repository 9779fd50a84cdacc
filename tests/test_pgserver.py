"""The throwaway PostgreSQL server of deposit_token.pgserver: it answers, leaves nothing behind, and says in one
sentence what to install when the server binaries are missing."""

from __future__ import annotations

import subprocess

import pytest

from conftest import postgres_unusable
from deposit_token import pgserver


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
    assert postgres_processes_of(server) == []
    assert "not reachable" in pgserver.unreachable(server.url(), timeout_s=2)


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
    assert pgserver.with_database(url, "other") == \
        "postgresql+psycopg://alice:s3cret@db.example:6543/other?sslmode=require"

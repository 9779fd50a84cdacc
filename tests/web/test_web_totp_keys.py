"""The console's TOTP secrets encrypted at rest (issue 10 section 2): what the database holds is not the secret,
logging in still works end to end through a real server (SQLite and PostgreSQL: the column is 64 wide there), a
missing, wrong, foreign or world-readable key file is refused in one sentence by the server and the commands, a
secret stored in clear before encryption is encrypted (at the server's start and by `audit users
encrypt-secrets`) and refused at login until then, and a key rotation keeps the authenticator apps' codes.

No chain: an empty audit database migrated to the current schema is all the accounts need."""

from __future__ import annotations

import os
import re
import stat
import time
from collections.abc import Iterator
from pathlib import Path

import pyotp
import pytest
import requests
from click.testing import CliRunner
from sqlalchemy import Engine, select, text, update
from support.audit_rows import load_cli
from support.web import PASSWORD, post_login, postgres_schema

from deposit_token.audit.db import store
from deposit_token.web.app import WebError, create_app
from deposit_token.web.core import accesslog, accounts, tables, totpkeys
from deposit_token.web.core.config import WebConfig
from deposit_token.web.server import BackgroundServer


@pytest.fixture(params=["sqlite", "postgresql"])
def database(request, tmp_path) -> Iterator[str]:
    if request.param == "sqlite":
        url = f"sqlite:///{tmp_path / 'audit.sqlite'}"
        store.open_database(url).dispose()
        yield url
        return
    with postgres_schema(request.getfixturevalue("pg_url")) as url:
        store.open_database(url).dispose()
        yield url


@pytest.fixture
def sqlite_db(tmp_path) -> str:
    url = f"sqlite:///{tmp_path / 'audit.sqlite'}"
    store.open_database(url).dispose()
    return url


def stored_secret(engine: Engine, name: str) -> str:
    with engine.connect() as conn:
        return str(conn.execute(select(tables.users.c.totp_secret).where(tables.users.c.name == name)).scalar_one())


def login(base: str, name: str, secret: str) -> int:
    return post_login(requests.Session(), base, name, PASSWORD, pyotp.TOTP(secret).now()).status_code


def test_the_database_holds_no_secret_and_logging_in_works(database, tmp_path):
    key_file = tmp_path / "keys" / "totp.key"
    engine = store.create_db_engine(database)
    try:
        with BackgroundServer(WebConfig(database, totp_key_file=str(key_file))) as server:
            assert stat.S_IMODE(key_file.stat().st_mode) == 0o600  # made by the server's start: first use
            enrolment = accounts.add_user(
                engine, "alice", accounts.AUDITOR, PASSWORD, int(time.time()), keys=server.app.state.web.totp_keys
            )
            stored = stored_secret(engine, "alice")
            assert totpkeys.is_sealed(stored) and len(stored) <= 64
            assert enrolment.secret not in stored and enrolment.secret not in key_file.read_text()
            assert login(server.url, "alice", enrolment.secret) == 303
            # the key material appears in no repr a log line could print
            assert key_file.read_text().split('"1": "')[1][:20] not in repr(server.app.state.web)
    finally:
        engine.dispose()


def test_a_missing_wrong_or_exposed_key_file_is_refused_in_one_sentence(sqlite_db, tmp_path):
    right, wrong = tmp_path / "right.key", tmp_path / "wrong.key"
    engine = store.create_db_engine(sqlite_db)
    try:
        enrolment = accounts.add_user(
            engine, "bob", accounts.AUDITOR, PASSWORD, int(time.time()), keys=accounts.key_ring(engine, right)
        )
        totpkeys.KeyRing(wrong).create()  # a key file of its own: another installation's
        before = stored_secret(engine, "bob")
        # a login against the wrong key is refused like any wrong code, and the access log says why
        with pytest.raises(accounts.LoginRefused):
            code = pyotp.TOTP(enrolment.secret).now()
            accounts.authenticate(engine, "bob", PASSWORD, code, None, int(time.time()), keys=totpkeys.KeyRing(wrong))
        with engine.connect() as conn:
            last = accesslog.recent(conn, limit=1)[0]
        assert last.event == accesslog.LOGIN_FAILED
        assert last.detail["reason"] == "second factor secret does not open with the key file"
    finally:
        engine.dispose()
    exposed = tmp_path / "exposed.key"
    exposed.write_bytes(right.read_bytes())
    exposed.chmod(0o644)
    foreign = tmp_path / "foreign.key"
    foreign.write_text("not a key file\n")
    foreign.chmod(0o600)
    cases = (
        (wrong, "does not open the second-factor secret of bob"),
        (tmp_path / "absent.key", "there is no TOTP key file at"),
        (exposed, "can be read by other users"),
        (foreign, "is not a TOTP key file"),
    )
    cli, runner = load_cli(), CliRunner()
    for key_file, words in cases:
        with pytest.raises(WebError, match=re.escape(words)):
            create_app(WebConfig(sqlite_db, totp_key_file=str(key_file)))
        for args in (["serve", "--port", "1"], ["users", "reset-mfa", "bob"], ["users", "encrypt-secrets"]):
            answer = runner.invoke(cli, [*args, "--db", sqlite_db, "--totp-key-file", str(key_file)])
            assert answer.exit_code != 0 and words in answer.output, (args, answer.output)
            assert "Traceback" not in answer.output and len(answer.output.strip().splitlines()) == 1
    assert not (tmp_path / "absent.key").exists()  # never a fresh key for a database that has encrypted secrets
    engine = store.create_db_engine(sqlite_db)
    try:
        assert stored_secret(engine, "bob") == before  # nothing changed
    finally:
        engine.dispose()


def test_a_clear_secret_is_encrypted_by_the_command_and_by_the_servers_start(sqlite_db, tmp_path):
    key_file = tmp_path / "totp.key"
    engine = store.create_db_engine(sqlite_db)
    try:
        keys = accounts.key_ring(engine, key_file)
        clear = {}
        for name in ("carol", "dave"):
            accounts.add_user(engine, name, accounts.AUDITOR, PASSWORD, int(time.time()), keys=keys)
            clear[name] = pyotp.random_base32()
            # as a version before encryption stored it
            with engine.begin() as conn:
                u = tables.users
                conn.execute(update(u).where(u.c.name == name).values(totp_secret=clear[name]))
        with pytest.raises(accounts.LoginRefused):  # not trusted while in clear
            code = pyotp.TOTP(clear["carol"]).now()
            accounts.authenticate(engine, "carol", PASSWORD, code, None, int(time.time()), keys=keys)
        with engine.begin() as conn:  # (the refusal above counts as a failed login: start afresh)
            conn.execute(text("UPDATE web_users SET totp_last_step = 0"))
        answer = CliRunner().invoke(
            load_cli(), ["users", "encrypt-secrets", "--db", sqlite_db, "--totp-key-file", str(key_file)]
        )
        assert answer.exit_code == 0 and answer.output.startswith("2 secrets encrypted now, 2 in all"), answer.output
        for name in ("carol", "dave"):
            stored = stored_secret(engine, name)
            assert totpkeys.is_sealed(stored) and clear[name] not in stored
            assert keys.open(stored, name) == clear[name]
        again = CliRunner().invoke(
            load_cli(), ["users", "encrypt-secrets", "--db", sqlite_db, "--totp-key-file", str(key_file)]
        )
        assert again.exit_code == 0 and again.output.startswith("0 secrets encrypted now, 2 in all")
        # the server's start does the same
        with engine.begin() as conn:
            conn.execute(update(tables.users).where(tables.users.c.name == "dave").values(totp_secret=clear["dave"]))
        with BackgroundServer(WebConfig(sqlite_db, totp_key_file=str(key_file))) as server:
            assert totpkeys.is_sealed(stored_secret(engine, "dave"))
            assert login(server.url, "dave", clear["dave"]) == 303
        with engine.connect() as conn:
            events = conn.execute(select(tables.access_log.c.event)).scalars().all()
        assert events.count(accesslog.SECRETS_ENCRYPTED) == 2
    finally:
        engine.dispose()


def test_a_rotated_key_keeps_the_codes_and_the_running_server_follows(sqlite_db, tmp_path):
    key_file = tmp_path / "totp.key"
    cli, runner = load_cli(), CliRunner()
    engine = store.create_db_engine(sqlite_db)
    try:
        with BackgroundServer(WebConfig(sqlite_db, totp_key_file=str(key_file))) as server:
            users = {
                name: accounts.add_user(
                    engine, name, accounts.AUDITOR, PASSWORD, int(time.time()), keys=accounts.key_ring(engine, key_file)
                ).secret
                for name in ("erin", "frank")
            }
            first_key = key_file.read_text()
            rotated = runner.invoke(cli, ["users", "rotate-key", "--db", sqlite_db, "--totp-key-file", str(key_file)])
            assert rotated.exit_code == 0 and "key 2 is current; 2 secrets" in rotated.output, rotated.output
            assert totpkeys.key_id_of(stored_secret(engine, "erin")) == 2
            assert login(server.url, "erin", users["erin"]) == 303  # the server read the changed file
            dropped = runner.invoke(
                cli, ["users", "rotate-key", "--drop-old", "--db", sqlite_db, "--totp-key-file", str(key_file)]
            )
            assert dropped.exit_code == 0 and "older keys removed" in dropped.output
            assert totpkeys.KeyRing(key_file).key_ids() == [3]
            old_material = re.search(r'"1": "([^"]+)"', first_key).group(1)
            assert old_material not in key_file.read_text()
            assert stat.S_IMODE(os.stat(key_file).st_mode) == 0o600
            assert login(server.url, "frank", users["frank"]) == 303
    finally:
        engine.dispose()


def test_the_commands_say_where_the_key_file_is(sqlite_db):
    cli, runner = load_cli(), CliRunner()
    for args in (["users", "add"], ["users", "reset-mfa"], ["users", "rotate-key"], ["serve"]):
        answer = runner.invoke(cli, [*args, "--help"])
        assert (
            answer.exit_code == 0
            and "--totp-key-file" in answer.output
            and "DEPOSIT_TOKEN_TOTP_KEY_FILE" in (" ".join(answer.output.split()))
        )
    assert isinstance(totpkeys.default_path(), Path)

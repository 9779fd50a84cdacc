"""The console's security checklist (issue 10 section 2) where tests/web/test_web_security.py leaves gaps, without
a chain (an empty migrated audit database is all the accounts need):

* TOTP is RFC 6238's: the RFC's own test vectors (Appendix B, SHA-1 secret, the last 6 of their 8 digits), one
  step of drift either way and no more;
* Argon2id with RFC 9106's low-memory parameters, and a hash made with weaker parameters re-hashed at the next
  login;
* no secret in the server's own log lines (uvicorn's access and error logs, the package's loggers, at DEBUG) over
  a whole session: failed and good logins, a console enrolment and a reset showing a TOTP secret, a logout.
"""

from __future__ import annotations

import base64
import logging
import re
import time

import pyotp
import pytest
import requests
from argon2 import PasswordHasher
from sqlalchemy import select, update
from support.web import PASSWORD, csrf_of, post_login

from deposit_token.audit.db import store
from deposit_token.web.core import accounts, tables
from deposit_token.web.core.config import WebConfig
from deposit_token.web.server import BackgroundServer

RFC_SECRET = base64.b32encode(b"12345678901234567890").decode()
# RFC 6238 Appendix B, SHA-1: (time, 8-digit TOTP)
RFC_VECTORS = [
    (59, "94287082"),
    (1111111109, "07081804"),
    (1111111111, "14050471"),
    (1234567890, "89005924"),
    (2000000000, "69279037"),
    (20000000000, "65353130"),
]


@pytest.fixture
def db_url(tmp_path) -> str:
    url = f"sqlite:///{tmp_path / 'audit.sqlite'}"
    store.open_database(url).dispose()
    return url


@pytest.mark.parametrize(("at", "expected"), RFC_VECTORS)
def test_totp_is_rfc_6238(at, expected):
    code = expected[-6:]  # the same HOTP value truncated to 6 digits (RFC 4226 section 5.3)
    assert accounts.totp_step(RFC_SECRET, code, at) == at // 30
    assert accounts.totp_step(RFC_SECRET, code, at + 30) == at // 30  # a step late: clock drift
    assert accounts.totp_step(RFC_SECRET, code, at - 30) == at // 30  # a step early
    assert accounts.totp_step(RFC_SECRET, code, at + 61) is None  # two steps: refused
    assert accounts.totp_step(RFC_SECRET, code[:3] + " " + code[3:], at) == at // 30  # as an app shows it
    assert accounts.totp_step(RFC_SECRET, expected, at) is None  # 8 digits: not this form's code


def test_passwords_are_argon2id_rfc_9106_and_rehashed_when_the_parameters_change(db_url, tmp_path):
    engine = store.create_db_engine(db_url)
    keys = accounts.key_ring(engine, tmp_path / "totp.key")
    try:
        enrolment = accounts.add_user(engine, "gina", accounts.AUDITOR, PASSWORD, int(time.time()), keys=keys)
        u = tables.users

        def stored_hash() -> str:
            with engine.connect() as conn:
                return str(conn.execute(select(u.c.password_hash).where(u.c.name == "gina")).scalar_one())

        assert stored_hash().startswith("$argon2id$v=19$m=65536,t=3,p=4$")  # RFC 9106 low-memory profile
        weak = PasswordHasher(time_cost=1, memory_cost=8192, parallelism=1).hash(PASSWORD)
        with engine.begin() as conn:
            conn.execute(update(u).where(u.c.name == "gina").values(password_hash=weak))
        code = pyotp.TOTP(enrolment.secret).now()
        accounts.authenticate(engine, "gina", PASSWORD, code, None, int(time.time()), keys=keys)
        assert stored_hash().startswith("$argon2id$v=19$m=65536,t=3,p=4$")
    finally:
        engine.dispose()


class Collect(logging.Handler):
    def __init__(self) -> None:
        super().__init__(logging.DEBUG)
        self.lines: list[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.lines.append(self.format(record))


def test_no_secret_in_the_servers_log_lines(db_url, tmp_path):
    key_file = tmp_path / "totp.key"
    collect = Collect()
    # (not sqlalchemy.engine: SQL echo, a debugging switch the package never turns on, logs rows by design)
    names = ("", "uvicorn", "uvicorn.access", "uvicorn.error", "deposit_token")
    server = BackgroundServer(WebConfig(db_url, totp_key_file=str(key_file)), log_level="debug")
    loggers = [logging.getLogger(name) for name in names]
    levels = [logger.level for logger in loggers]
    for logger in loggers:
        logger.addHandler(collect)
        logger.setLevel(logging.DEBUG)
    secrets_seen: list[str] = [PASSWORD, key_file.read_text()]
    try:
        with server:
            engine = store.create_db_engine(db_url)
            boss = accounts.add_user(
                engine, "boss", accounts.SUPERVISOR, PASSWORD, int(time.time()), keys=server.app.state.web.totp_keys
            )
            engine.dispose()
            secrets_seen.append(boss.secret)
            session = requests.Session()
            wrong_code = f"{(int(pyotp.TOTP(boss.secret).now()) + 1) % 1000000:06d}"
            assert post_login(session, server.url, "boss", "a wrong password!!", wrong_code).status_code == 401
            assert post_login(session, server.url, "boss", PASSWORD, wrong_code).status_code == 401
            code = pyotp.TOTP(boss.secret).now()
            secrets_seen += [wrong_code, code]
            assert post_login(session, server.url, "boss", PASSWORD, code).status_code == 303
            secrets_seen.append(session.cookies.get("dt_session"))
            page = session.get(f"{server.url}/console/users", headers={"Accept": "text/html"})
            csrf = csrf_of(page.text)
            secrets_seen.append(csrf)
            other_password = "another long password 1"
            added = session.post(
                f"{server.url}/console/users",
                data={"name": "hana", "role": "auditor", "password": other_password, "csrf_token": csrf},
            )
            shown = re.search(r'id="totp-secret">([A-Z2-7]+)<', added.text)
            assert added.status_code == 200 and shown, added.text[:300]
            reset = session.post(f"{server.url}/console/users/hana/reset-mfa", data={"csrf_token": csrf})
            again = re.search(r'id="totp-secret">([A-Z2-7]+)<', reset.text)
            assert reset.status_code == 200 and again
            secrets_seen += [other_password, shown.group(1), again.group(1)]
            session.post(f"{server.url}/console/logout", data={"csrf_token": csrf}, allow_redirects=False)
    finally:
        for logger, level in zip(loggers, levels, strict=True):
            logger.removeHandler(collect)
            logger.setLevel(level)
    text = "\n".join(collect.lines)
    assert "POST /login" in text  # the access log was captured
    for secret in secrets_seen:
        assert secret and secret not in text
    # the key file's material, line by line (the JSON around it is not secret)
    for material in re.findall(r'"\d+": "([^"]+)"', key_file.read_text()):
        assert material not in text

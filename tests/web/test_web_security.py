"""The console's security against a real server over a real indexed database: password + TOTP logins (wrong
password, wrong code, a code used twice, throttling per account and per address), every console route refused
to anonymous and disabled users and to a POST without the CSRF token, roles (an auditor cannot manage accounts,
a supervisor can), cookies, the append-only access log without secrets, and the `ape run audit users` and
`serve` commands."""

from __future__ import annotations

import re
import socket
import time

import pytest
import requests
from click.testing import CliRunner
from sqlalchemy import text
from support.audit_rows import load_cli
from support.web import PASSWORD, User, csrf_of, filled, logged_in, new_user, post_login, routes_of

from deposit_token.audit.db import store
from deposit_token.audit.query.export import tables_to_export
from deposit_token.web.core import accounts
from deposit_token.web.core.config import WebConfig
from deposit_token.web.server import BackgroundServer

pytestmark = pytest.mark.chain  # the folder's pilot chain runs on a node of its own

LIMITS = accounts.Limits(per_user=3, per_ip=1000, window=900)


@pytest.fixture(scope="module")
def db_url(pilot, tmp_path_factory) -> str:
    return pilot.copy_db(tmp_path_factory.mktemp("web-security"))


@pytest.fixture(scope="module")
def server(db_url):
    with BackgroundServer(WebConfig(db_url, limits=LIMITS)) as running:
        yield running


@pytest.fixture
def supervisor(db_url) -> User:
    """A new supervisor per test: a TOTP code logs in once, and each test logs in afresh."""
    return new_user(db_url, accounts.SUPERVISOR, "boss")


def html(session: requests.Session | None, url: str, method: str = "GET", **kw) -> requests.Response:
    return (session or requests).request(method, url, headers={"Accept": "text/html"}, allow_redirects=False, **kw)


def console_routes(server) -> list[tuple[str, str]]:
    found = [(m, p) for m, p in routes_of(server.app) if p.startswith("/console")]
    assert {("GET", "/console"), ("POST", "/console/logout"), ("GET", "/console/users")} <= set(found)
    return found


# --- logging in -----------------------------------------------------------------------------------------------


def test_login_needs_the_password_and_a_fresh_totp_code(server, db_url):
    user = new_user(db_url)
    session = requests.Session()
    wrong_password = post_login(session, server.url, user.name, "not the password at all", user.code())
    wrong_code = post_login(
        session, server.url, user.name, user.password, "000000" if user.code() != "000000" else "111111"
    )
    unknown = post_login(session, server.url, "nobody-here", user.password, user.code())
    for refused in (wrong_password, wrong_code, unknown):
        assert refused.status_code == 401 and "dt_session" not in refused.headers.get("set-cookie", "")
        assert "올바르지 않습니다" in refused.text  # one message whatever was wrong (Korean by default)
    answer = post_login(session, server.url, user.name, user.password, user.code())
    assert answer.status_code == 303 and answer.headers["location"] == "/console"
    cookie = answer.headers["set-cookie"]
    assert "dt_session=" in cookie and "HttpOnly" in cookie and "SameSite=strict" in cookie and "Secure" not in cookie
    assert html(session, f"{server.url}/console").status_code == 200
    # the same code again (another browser): refused, a code is good once
    again = post_login(requests.Session(), server.url, user.name, user.password, user.code())
    assert again.status_code == 401


def test_login_form_without_its_csrf_token_is_refused(server, db_url):
    user = new_user(db_url)
    answer = requests.post(
        f"{server.url}/login",
        data={"name": user.name, "password": user.password, "code": user.code(), "csrf_token": "forged"},
        allow_redirects=False,
    )
    assert answer.status_code == 403


def test_failed_logins_are_throttled_per_account(server, db_url):
    user = new_user(db_url)
    session = requests.Session()
    for _ in range(LIMITS.per_user):
        assert post_login(session, server.url, user.name, "wrong password!!", user.code()).status_code == 401
    # now even the right password and code are refused, with a time to wait
    throttled = post_login(session, server.url, user.name, user.password, user.code())
    assert throttled.status_code == 429 and int(throttled.headers["retry-after"]) > 0
    assert "분 후에 다시" in throttled.text
    # another account from the same address is not affected
    other = new_user(db_url)
    assert post_login(session, server.url, other.name, other.password, other.code()).status_code == 303


def test_failed_logins_are_throttled_per_address(pilot, tmp_path):
    db_url = pilot.copy_db(tmp_path)
    users = [new_user(db_url) for _ in range(4)]
    limits = accounts.Limits(per_user=100, per_ip=3, window=900)
    with BackgroundServer(WebConfig(db_url, limits=limits)) as server:
        session = requests.Session()
        for user in users[:3]:
            assert post_login(session, server.url, user.name, "wrong password!!", user.code()).status_code == 401
        last = users[3]
        assert post_login(session, server.url, last.name, last.password, last.code()).status_code == 429


# --- every console route --------------------------------------------------------------------------------------


def test_anonymous_requests_to_every_console_route_are_refused(server):
    for method, path in console_routes(server):
        answer = html(None, f"{server.url}{filled(path)}", method)
        if method == "GET":
            assert answer.status_code == 303 and answer.headers["location"].startswith("/login?next="), path
        else:
            assert answer.status_code == 401, (method, path)
    # a client that does not ask for HTML gets 401, not a redirect
    assert requests.get(f"{server.url}/console", allow_redirects=False).status_code == 401


def test_a_disabled_account_is_refused_on_every_console_route_at_once(server, db_url):
    user = new_user(db_url, accounts.SUPERVISOR)
    session, csrf = logged_in(server.url, user)
    engine = store.create_db_engine(db_url)
    try:
        accounts.set_disabled(engine, user.name, True, int(time.time()), actor="test")
    finally:
        engine.dispose()
    for method, path in console_routes(server):
        answer = html(session, f"{server.url}{filled(path)}", method, data={"csrf_token": csrf})
        assert answer.status_code in (303, 401), (method, path, answer.status_code)
    # and it cannot log in again
    assert post_login(requests.Session(), server.url, user.name, user.password, user.code(1)).status_code == 401


def test_every_console_post_without_the_csrf_token_is_refused(server, supervisor):
    session, csrf = logged_in(server.url, supervisor)
    posts = [(m, p) for m, p in console_routes(server) if m not in ("GET", "HEAD", "OPTIONS")]
    assert posts
    for method, path in posts:
        for data in ({}, {"csrf_token": "forged"}, {"csrf_token": ""}):
            answer = html(session, f"{server.url}{filled(path)}", method, data=data)
            assert answer.status_code == 403, (method, path, data)
    assert html(session, f"{server.url}/console").status_code == 200  # still logged in
    # with the token (here in the header, as scripts send it) logging out works
    out = session.post(f"{server.url}/console/logout", headers={"X-CSRF-Token": csrf}, allow_redirects=False)
    assert out.status_code == 303 and html(session, f"{server.url}/console").status_code == 303


def test_an_auditor_cannot_manage_accounts_a_supervisor_can(server, db_url, supervisor):
    auditor = new_user(db_url, accounts.AUDITOR)
    session, csrf = logged_in(server.url, auditor)
    overview = html(session, f"{server.url}/console").text
    assert "/console/users" not in overview and "/console/access-log" not in overview  # not in its navigation
    assert html(session, f"{server.url}/console/users").status_code == 403
    assert html(session, f"{server.url}/console/access-log").status_code == 403
    form = {"csrf_token": csrf, "name": "sneaky", "role": "supervisor", "password": PASSWORD}
    assert html(session, f"{server.url}/console/users", "POST", data=form).status_code == 403
    assert html(session, f"{server.url}/console/users/{supervisor.name}/disable", "POST", data=form).status_code == 403

    boss, boss_csrf = logged_in(server.url, supervisor)
    added = html(boss, f"{server.url}/console/users", "POST", data={**form, "csrf_token": boss_csrf, "role": "auditor"})
    assert added.status_code == 200 and added.headers["cache-control"] == "no-store"
    secret = re.search(r'id="totp-secret">([A-Z2-7]+)<', added.text).group(1)
    newcomer = User("sneaky", "auditor", PASSWORD, secret)
    assert post_login(requests.Session(), server.url, "sneaky", PASSWORD, newcomer.code()).status_code == 303
    disabled = html(boss, f"{server.url}/console/users/sneaky/disable", "POST", data={"csrf_token": boss_csrf})
    assert disabled.status_code == 303
    assert post_login(requests.Session(), server.url, "sneaky", PASSWORD, newcomer.code(1)).status_code == 401
    # a supervisor cannot lock themselves out
    own = html(boss, f"{server.url}/console/users/{supervisor.name}/disable", "POST", data={"csrf_token": boss_csrf})
    assert own.status_code == 400


def test_secure_cookies_when_served_over_tls(pilot, tmp_path):
    db_url = pilot.copy_db(tmp_path)
    user = new_user(db_url)
    with BackgroundServer(WebConfig(db_url, secure_cookies=True)) as server:
        form = requests.get(f"{server.url}/login")
        assert "Secure" in form.headers["set-cookie"]
        # (a browser sends a Secure cookie over HTTPS only; this test speaks plain HTTP, so it sends it itself)
        token = csrf_of(form.text)
        answer = requests.post(
            f"{server.url}/login",
            data={"name": user.name, "password": user.password, "code": user.code(), "csrf_token": token},
            cookies={"dt_login_csrf": token},
            allow_redirects=False,
        )
    assert answer.status_code == 303
    session_cookie = next(c for c in answer.headers["set-cookie"].split(", dt_") if c.startswith("dt_session="))
    assert "Secure" in session_cookie and "HttpOnly" in session_cookie


# --- the access log -------------------------------------------------------------------------------------------


def test_the_access_log_is_append_only_and_holds_no_secret(server, db_url, supervisor):
    user = new_user(db_url)
    post_login(requests.Session(), server.url, user.name, "a wrong password", user.code())
    session, csrf = logged_in(server.url, user)
    session.post(f"{server.url}/console/logout", data={"csrf_token": csrf})
    engine = store.create_db_engine(db_url)
    try:
        with engine.connect() as conn:
            rows = conn.execute(text("SELECT actor, event, ip, detail FROM web_access_log")).all()
            users = conn.execute(text("SELECT name, password_hash, totp_secret FROM web_users")).all()
            sessions = conn.execute(text("SELECT token_hash FROM web_sessions")).all()
            exported = {table.name for table in tables_to_export(conn)}  # what `audit export` writes
        for statement in ("UPDATE web_access_log SET actor = 'x'", "DELETE FROM web_access_log"):
            with pytest.raises(Exception, match="append-only"), engine.begin() as conn:
                conn.execute(text(statement))
    finally:
        engine.dispose()
    assert "web_access_log" in exported and not exported & {"web_users", "web_sessions"}  # no secret exported
    mine = [(r.event, r.detail) for r in rows if r.actor == user.name]
    assert ("login_failed", '{"reason": "wrong password"}') in mine
    assert {"login", "logout", "user_added"} <= {e for e, _ in mine} | {
        r.event for r in rows if r.detail and user.name in r.detail
    }
    dump = repr(rows)
    for secret in (PASSWORD, "a wrong password", *(u.totp_secret for u in users), *(u.password_hash for u in users)):
        assert secret not in dump
    assert all(u.password_hash.startswith("$argon2id$") for u in users)
    assert all(len(s.token_hash) == 64 for s in sessions)  # SHA-256 hex, never the cookie itself
    page = html(logged_in(server.url, supervisor)[0], f"{server.url}/console/access-log")
    assert page.status_code == 200 and user.name in page.text


# --- commands -------------------------------------------------------------------------------------------------


def test_users_commands(db_url, tmp_path, monkeypatch):
    cli = load_cli()
    runner = CliRunner()
    monkeypatch.setenv("DEPOSIT_TOKEN_WEB_PASSWORD", PASSWORD)
    added = runner.invoke(cli, ["users", "add", "Carol", "--role", "auditor", "--db", db_url])
    assert added.exit_code == 0, added.output
    secret = re.search(r"secret: ([A-Z2-7]+)", added.output).group(1)
    assert added.output.count(secret) == 2 and "otpauth://totp/" in added.output and PASSWORD not in added.output
    listed = runner.invoke(cli, ["users", "list", "--db", db_url])
    assert listed.exit_code == 0 and re.search(r"carol\s+auditor\s+enabled", listed.output)
    assert secret not in listed.output
    reset = runner.invoke(cli, ["users", "reset-mfa", "carol", "--db", db_url])
    assert reset.exit_code == 0 and secret not in reset.output and "secret: " in reset.output
    assert runner.invoke(cli, ["users", "disable", "carol", "--db", db_url]).exit_code == 0
    assert re.search(r"carol\s+auditor\s+disabled", runner.invoke(cli, ["users", "list", "--db", db_url]).output)
    assert runner.invoke(cli, ["users", "enable", "carol", "--db", db_url]).exit_code == 0
    # bad input: one sentence, non-zero exit, nothing changed or created
    missing = tmp_path / "nowhere.sqlite"
    for args, words in (
        (["users", "add", "carol", "--role", "auditor", "--db", db_url], "already an account"),
        (["users", "add", "x", "--role", "auditor", "--db", db_url], "not an account name"),
        (["users", "add", "dave", "--role", "king", "--db", db_url], "king"),
        (["users", "disable", "nobody", "--db", db_url], "no account 'nobody'"),
        (["users", "list", "--db", str(missing)], "no audit database"),
    ):
        result = runner.invoke(cli, args)
        assert result.exit_code != 0 and words in result.output, (args, result.output)
        assert "Traceback" not in result.output
    assert not missing.exists()
    monkeypatch.setenv("DEPOSIT_TOKEN_WEB_PASSWORD", "short")
    short = runner.invoke(cli, ["users", "add", "erin", "--role", "auditor", "--db", db_url])
    assert short.exit_code != 0 and "too short" in short.output


def test_serve_refuses_a_busy_port_and_a_missing_database_in_one_sentence(db_url, tmp_path):
    cli = load_cli()
    runner = CliRunner()
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen(1)
        port = busy.getsockname()[1]
        answer = runner.invoke(cli, ["serve", "--db", db_url, "--port", str(port)])
    assert answer.exit_code != 0 and f"cannot listen on 127.0.0.1:{port}" in answer.output, answer.output
    missing = tmp_path / "typo.sqlite"
    answer = runner.invoke(cli, ["serve", "--db", str(missing)])
    assert answer.exit_code != 0 and "no audit database at" in answer.output and not missing.exists()
    assert "--secure-cookies" in runner.invoke(cli, ["serve", "--help"]).output

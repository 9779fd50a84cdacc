"""Server-side sessions: the cookie holds a random token, the database only its SHA-256 (a reader of the
database cannot take a session over), the account, a CSRF token, and when the session was made, last used
and must end.

A session ends at logout, after `idle` seconds unused, after `lifetime` seconds in any case, and at once when
its account is disabled or its second factor reset (``accounts``). Every request re-reads the account, so a
disabled account is refused on its next request, whatever its cookie says.
"""

from __future__ import annotations

import hashlib
import secrets
from dataclasses import dataclass

from sqlalchemy import Engine, delete, insert, select, update

from deposit_token.web.core import tables
from deposit_token.web.core.accounts import SUPERVISOR, Account

COOKIE = "dt_session"
TOUCH_EVERY = 60  # seconds: last_seen_at is written at most this often (a read, not a write, per request)


@dataclass(frozen=True)
class Principal:
    """The logged-in auditor of a request."""

    user_id: int
    name: str
    role: str
    csrf_token: str
    token_hash: str

    @property
    def is_supervisor(self) -> bool:
        return self.role == SUPERVISOR


def token_hash(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


def create(engine: Engine, account: Account, now: int, lifetime: int) -> tuple[str, Principal]:
    """A new session for `account`: (the cookie's value, the principal)."""
    token = secrets.token_urlsafe(32)
    csrf = secrets.token_urlsafe(32)
    hashed = token_hash(token)
    with engine.begin() as conn:
        conn.execute(
            insert(tables.sessions).values(
                token_hash=hashed,
                user_id=account.id,
                csrf_token=csrf,
                created_at=now,
                last_seen_at=now,
                expires_at=now + lifetime,
            )
        )
    return token, Principal(account.id, account.name, account.role, csrf, hashed)


def lookup(engine: Engine, token: str | None, now: int, idle: int) -> Principal | None:
    """The principal of a live session of an enabled account, or None."""
    if not token or len(token) > 128:
        return None
    hashed = token_hash(token)
    s, u = tables.sessions, tables.users
    # autocommit: one statement, so no BEGIN before it and no ROLLBACK when the pool takes the connection back
    # (psycopg sends each as a round trip of its own; this runs on every console request)
    with engine.connect().execution_options(isolation_level="AUTOCOMMIT") as conn:
        row = conn.execute(
            select(u.c.id, u.c.name, u.c.role, u.c.disabled, s.c.csrf_token, s.c.last_seen_at, s.c.expires_at)
            .select_from(s.join(u, u.c.id == s.c.user_id))
            .where(s.c.token_hash == hashed)
        ).first()
    if row is None or row.disabled or now >= row.expires_at or now >= row.last_seen_at + idle:
        return None
    if now - row.last_seen_at >= TOUCH_EVERY:
        with engine.begin() as conn:
            conn.execute(update(s).where(s.c.token_hash == hashed).values(last_seen_at=now))
    return Principal(row.id, row.name, row.role, row.csrf_token, hashed)


def end(engine: Engine, hashed: str) -> None:
    with engine.begin() as conn:
        conn.execute(delete(tables.sessions).where(tables.sessions.c.token_hash == hashed))


def purge(engine: Engine, now: int, idle: int) -> int:
    """Deletes ended sessions; returns how many."""
    s = tables.sessions
    with engine.begin() as conn:
        return conn.execute(delete(s).where((s.c.expires_at <= now) | (s.c.last_seen_at + idle <= now))).rowcount

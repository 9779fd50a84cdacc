"""The append-only access log: who logged in, failed to, logged out, exported, recorded a disposition, or
changed an account, when and from where.

Rows are only ever inserted (the database's triggers refuse UPDATE and DELETE: migration 0003). A row never
holds a secret: :func:`record` refuses detail keys that name one (password, code, secret, token...), so a
careless caller fails in its tests instead of writing a password into the log.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from sqlalchemy import Connection, func, insert, select

from deposit_token.web.core import tables

LOGIN = "login"
LOGIN_FAILED = "login_failed"
LOGIN_THROTTLED = "login_throttled"
LOGOUT = "logout"
EXPORT = "export"
DISPOSITION = "disposition"
USER_ADDED = "user_added"
USER_DISABLED = "user_disabled"
USER_ENABLED = "user_enabled"
MFA_RESET = "mfa_reset"
SECRETS_ENCRYPTED = "secrets_encrypted"  # TOTP secrets stored in clear before, encrypted (accounts.protect_secrets)
KEY_ROTATED = "key_rotated"  # a new TOTP key, every secret encrypted again under it (accounts.rotate_key)
EVENTS = (
    LOGIN,
    LOGIN_FAILED,
    LOGIN_THROTTLED,
    LOGOUT,
    EXPORT,
    DISPOSITION,
    USER_ADDED,
    USER_DISABLED,
    USER_ENABLED,
    MFA_RESET,
    SECRETS_ENCRYPTED,
    KEY_ROTATED,
)

# Detail keys that would name a secret (a payment's tx_hash or a flag's rule are fine, a "code" is the TOTP code).
_SECRET_WORDS = ("password", "passwd", "secret", "token", "otp", "csrf", "cookie", "session")
_SECRET_KEYS = frozenset({"code", "pin"})


@dataclass(frozen=True)
class Entry:
    id: int
    at: int
    actor: str | None
    event: str
    ip: str | None
    detail: dict[str, Any]


def record(conn: Connection, event: str, at: int, actor: str | None, ip: str | None, **detail: Any) -> None:
    """Appends one row on `conn`'s transaction; `detail` holds non-secret facts (ValueError otherwise)."""
    if event not in EVENTS:
        raise ValueError(f"unknown access log event {event!r}")
    leaky = [key for key in detail if key.lower() in _SECRET_KEYS or any(word in key.lower() for word in _SECRET_WORDS)]
    if leaky:
        raise ValueError(f"the access log holds no secret: detail keys {leaky} are refused")
    conn.execute(
        insert(tables.access_log).values(
            at=at,
            actor=actor,
            event=event,
            ip=ip,
            detail=json.dumps(detail, sort_keys=True, ensure_ascii=False, default=str) if detail else "",
        )
    )


def recent(conn: Connection, limit: int = 100, before_id: int | None = None) -> list[Entry]:
    """The latest rows, newest first (`before_id`: the page after a row)."""
    t = tables.access_log
    query = select(t).order_by(t.c.id.desc()).limit(limit)
    if before_id is not None:
        query = query.where(t.c.id < before_id)
    return [
        Entry(r.id, r.at, r.actor, r.event, r.ip, json.loads(r.detail) if r.detail else {}) for r in conn.execute(query)
    ]


def count_since(conn: Connection, events: tuple[str, ...], since: int, **match: Any) -> int:
    """How many rows of `events` at or after `since` match `match` (column = value: actor, ip)."""
    t = tables.access_log
    query = select(func.count()).select_from(t).where(t.c.event.in_(events), t.c.at >= since)
    for column, value in match.items():
        query = query.where(t.c[column] == value)
    return int(conn.execute(query).scalar_one())


def last_at(conn: Connection, event: str, **match: Any) -> int | None:
    """The time of the latest row of `event` matching `match`, or None."""
    t = tables.access_log
    query = select(func.max(t.c.at)).where(t.c.event == event)
    for column, value in match.items():
        query = query.where(t.c[column] == value)
    found = conn.execute(query).scalar_one_or_none()
    return None if found is None else int(found)


def last_logins(conn: Connection) -> Mapping[str, int]:
    """actor -> time of their latest successful login."""
    t = tables.access_log
    rows = conn.execute(select(t.c.actor, func.max(t.c.at)).where(t.c.event == LOGIN).group_by(t.c.actor))
    return {actor: int(at) for actor, at in rows if actor is not None}

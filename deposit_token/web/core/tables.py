"""The web layer's own tables in the audit database: auditor accounts, sessions, the append-only access log.

Created by the audit database's migration ``0003`` (``deposit_token/audit/db/migrations/versions/0003_web_users.py``:
one migration chain per database, whoever owns the tables); the objects here describe the same columns for
queries. Times are unix seconds (UTC), like the event tables' block times.
"""

from __future__ import annotations

from sqlalchemy import BigInteger, Boolean, Column, ForeignKey, Index, Integer, MetaData, String, Table, Text

metadata = MetaData()

# SQLite makes only an INTEGER PRIMARY KEY an auto-incrementing rowid.
_ID = BigInteger().with_variant(Integer(), "sqlite")

users = Table(
    "web_users",
    metadata,
    Column("id", _ID, primary_key=True, autoincrement=True),
    Column("name", String(64), nullable=False, unique=True),
    Column("role", String(16), nullable=False),  # auditor | supervisor
    Column("password_hash", Text, nullable=False),  # Argon2id, with its parameters and salt
    Column("totp_secret", String(64), nullable=False),  # encrypted: "<key id>:<base85>" (core.totpkeys)
    Column("totp_last_step", BigInteger, nullable=False, default=0),  # a code is accepted once
    Column("disabled", Boolean, nullable=False, default=False),
    Column("created_at", BigInteger, nullable=False),
    Column("changed_at", BigInteger, nullable=False),
)

sessions = Table(
    "web_sessions",
    metadata,
    Column("token_hash", String(64), primary_key=True),  # SHA-256 of the cookie's value, never the value
    Column("user_id", _ID, ForeignKey("web_users.id", ondelete="CASCADE"), nullable=False),
    Column("csrf_token", String(64), nullable=False),
    Column("created_at", BigInteger, nullable=False),
    Column("last_seen_at", BigInteger, nullable=False),
    Column("expires_at", BigInteger, nullable=False),
    Index("ix_web_sessions_user_id", "user_id"),
)

access_log = Table(
    "web_access_log",
    metadata,
    Column("id", _ID, primary_key=True, autoincrement=True),
    Column("at", BigInteger, nullable=False),
    Column("actor", String(64), nullable=True),  # the account, or the name typed at a failed login
    Column("event", String(32), nullable=False),
    Column("ip", String(64), nullable=True),
    Column("detail", Text, nullable=False, default=""),  # JSON of non-secret facts
    # the indexes migration 0003 made (throttling counts by account and by address): described so that
    # autogenerate finds nothing to change (tests/audit/test_autogenerate.py)
    Index("ix_web_access_log_actor_at", "actor", "at"),
    Index("ix_web_access_log_ip_at", "ip", "at"),
)

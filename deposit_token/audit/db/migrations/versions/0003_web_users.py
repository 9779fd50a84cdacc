"""the web console's auditor accounts, sessions and append-only access log

The console (deposit_token.web) serves the same database the indexer fills, so its accounts live beside the
index: ``web_users`` (Argon2 password hash, TOTP secret, role), ``web_sessions`` (server-side sessions: only the
SHA-256 of a session cookie is stored, so a reader of the database cannot take over a session) and
``web_access_log`` (logins, failed logins, exports, dispositions, user changes; never a secret). The access log
is append-only in the database itself: triggers refuse UPDATE and DELETE (and TRUNCATE on PostgreSQL), so that
not even the console's own code can rewrite it. Times are unix seconds, like the event tables' block times.

The table objects are ``deposit_token.web.tables`` (the web layer's own, not audit.db.schema).

Revision ID: 0003
Revises: 0002
Create Date: 2026-11-30 12:00:00
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None

# SQLite makes only an INTEGER PRIMARY KEY an auto-incrementing rowid.
_ID = sa.BigInteger().with_variant(sa.Integer(), "sqlite")


def upgrade() -> None:
    op.create_table(
        "web_users",
        sa.Column("id", _ID, primary_key=True, autoincrement=True),
        sa.Column("name", sa.String(64), nullable=False),
        sa.Column("role", sa.String(16), nullable=False),
        sa.Column("password_hash", sa.Text(), nullable=False),
        sa.Column("totp_secret", sa.String(64), nullable=False),
        sa.Column("totp_last_step", sa.BigInteger(), nullable=False, server_default="0"),
        sa.Column("disabled", sa.Boolean(), nullable=False, server_default=sa.false()),
        sa.Column("created_at", sa.BigInteger(), nullable=False),
        sa.Column("changed_at", sa.BigInteger(), nullable=False),
        sa.PrimaryKeyConstraint("id", name="pk_web_users"),
        sa.UniqueConstraint("name", name="uq_web_users_name"),
        sa.CheckConstraint("role IN ('auditor', 'supervisor')", name="ck_web_users_role"),
    )
    op.create_table(
        "web_sessions",
        sa.Column("token_hash", sa.String(64), nullable=False),
        sa.Column("user_id", _ID, sa.ForeignKey("web_users.id", ondelete="CASCADE"), nullable=False),
        sa.Column("csrf_token", sa.String(64), nullable=False),
        sa.Column("created_at", sa.BigInteger(), nullable=False),
        sa.Column("last_seen_at", sa.BigInteger(), nullable=False),
        sa.Column("expires_at", sa.BigInteger(), nullable=False),
        sa.PrimaryKeyConstraint("token_hash", name="pk_web_sessions"),
    )
    op.create_index("ix_web_sessions_user_id", "web_sessions", ["user_id"])
    op.create_table(
        "web_access_log",
        sa.Column("id", _ID, primary_key=True, autoincrement=True),
        sa.Column("at", sa.BigInteger(), nullable=False),
        sa.Column("actor", sa.String(64), nullable=True),
        sa.Column("event", sa.String(32), nullable=False),
        sa.Column("ip", sa.String(64), nullable=True),
        sa.Column("detail", sa.Text(), nullable=False, server_default=""),
        sa.PrimaryKeyConstraint("id", name="pk_web_access_log"),
    )
    # The login throttle counts recent failures per name and per address.
    op.create_index("ix_web_access_log_actor_at", "web_access_log", ["actor", "at"])
    op.create_index("ix_web_access_log_ip_at", "web_access_log", ["ip", "at"])
    if op.get_bind().dialect.name == "postgresql":
        op.execute(
            "CREATE FUNCTION web_access_log_append_only() RETURNS trigger LANGUAGE plpgsql AS $$ "
            "BEGIN RAISE EXCEPTION 'web_access_log is append-only'; END $$"
        )
        op.execute(
            "CREATE TRIGGER web_access_log_no_change BEFORE UPDATE OR DELETE ON web_access_log "
            "FOR EACH ROW EXECUTE FUNCTION web_access_log_append_only()"
        )
        op.execute(
            "CREATE TRIGGER web_access_log_no_truncate BEFORE TRUNCATE ON web_access_log "
            "FOR EACH STATEMENT EXECUTE FUNCTION web_access_log_append_only()"
        )
    else:
        for verb in ("UPDATE", "DELETE"):
            op.execute(
                f"CREATE TRIGGER web_access_log_no_{verb.lower()} BEFORE {verb} ON web_access_log "
                "BEGIN SELECT RAISE(ABORT, 'web_access_log is append-only'); END"
            )


def downgrade() -> None:
    if op.get_bind().dialect.name == "postgresql":
        op.execute("DROP TABLE web_access_log")
        op.execute("DROP FUNCTION web_access_log_append_only()")
    else:
        op.drop_table("web_access_log")  # its triggers go with it
    op.drop_index("ix_web_sessions_user_id", table_name="web_sessions")
    op.drop_table("web_sessions")
    op.drop_table("web_users")

"""the auditors' console: derived flags and monthly cells, dispositions (append-only), payment indexes

* ``payment_flags``, ``flag_totals``, ``derived_state``, ``derived_dirty``, ``spend_cells``, ``vendor_cells``,
  ``flow_cells``: what ``deposit_token.audit.derive`` keeps from the indexed events (the flag queue, totals);
* ``dispositions``: the auditors' decisions on flags, append-only: a trigger refuses UPDATE and DELETE (and
  TRUNCATE on PostgreSQL) on both databases;
* payments: the payer and vendor indexes gain (block_number, log_index) (the vendor's also the amount), and
  months get one, so that a console page filtered by payer, vendor or month reads its 50 newest rows from one
  index range; allocations by spender and redemptions by vendor (an official's and a vendor's pages).

Revision ID: 0004
Revises: 0003 (the web console's users)
Create Date: 2026-12-01 12:00:00
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

import deposit_token.audit.db.schema

revision = "0004"
down_revision = "0003"
branch_labels = None
depends_on = None

DISPOSITIONS = ("justified", "explanation_requested", "referred", "recovered")
APPEND_ONLY_MESSAGE = "dispositions are append-only: record a new disposition instead of changing one"


def upgrade() -> None:
    op.create_table(
        "payment_flags",
        sa.Column("block_number", sa.BigInteger(), autoincrement=False, nullable=False),
        sa.Column("log_index", sa.Integer(), autoincrement=False, nullable=False),
        sa.Column("rule", sa.String(32), nullable=False),
        sa.Column("tx_hash", sa.String(66), nullable=False),
        sa.Column("payer", sa.String(42), nullable=False),
        sa.Column("program_id", sa.Integer(), nullable=False),
        sa.Column("period", sa.Integer(), nullable=False),
        sa.Column("local_time", sa.String(32), nullable=False),
        sa.Column("detail", sa.Text(), nullable=False),
        sa.PrimaryKeyConstraint("block_number", "log_index", "rule", name="pk_payment_flags"),
    )
    op.create_index(
        "ix_payment_flags_rule_block_number_log_index", "payment_flags", ["rule", "block_number", "log_index"]
    )
    op.create_index("ix_payment_flags_payer_program_id_period", "payment_flags", ["payer", "program_id", "period"])
    op.create_table(
        "flag_totals",
        sa.Column("rule", sa.String(32), nullable=False),
        sa.Column("flags", sa.BigInteger(), nullable=False),
        sa.PrimaryKeyConstraint("rule", name="pk_flag_totals"),
    )
    op.create_table(
        "derived_state",
        sa.Column("id", sa.Integer(), autoincrement=False, nullable=False),
        sa.Column("block_number", sa.BigInteger(), nullable=False),
        sa.Column("settings", sa.Text(), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("id", name="pk_derived_state"),
    )
    # the one row exists from the start: a reorg rollback locks it (store.rollback_to), even before the first
    # refresh; settings '' make the first refresh build everything
    op.execute(
        "INSERT INTO derived_state (id, block_number, settings, updated_at) VALUES (1, -1, '', CURRENT_TIMESTAMP)"
    )
    op.create_table(
        "derived_dirty",
        sa.Column("payer", sa.String(42), nullable=False),
        sa.Column("program_id", sa.Integer(), nullable=False),
        sa.Column("period", sa.Integer(), nullable=False),
    )
    op.create_table(
        "spend_cells",
        sa.Column("period", sa.Integer(), autoincrement=False, nullable=False),
        sa.Column("program_id", sa.Integer(), autoincrement=False, nullable=False),
        sa.Column("department", sa.String(80), nullable=False),
        sa.Column("category", sa.Integer(), autoincrement=False, nullable=False),
        sa.Column("payments", sa.BigInteger(), nullable=False),
        sa.Column("amount", deposit_token.audit.db.schema.Amount(precision=78, scale=0), nullable=False),
        sa.PrimaryKeyConstraint("period", "program_id", "department", "category", name="pk_spend_cells"),
    )
    op.create_table(
        "vendor_cells",
        sa.Column("period", sa.Integer(), autoincrement=False, nullable=False),
        sa.Column("program_id", sa.Integer(), autoincrement=False, nullable=False),
        sa.Column("vendor", sa.String(42), nullable=False),
        sa.Column("category", sa.Integer(), autoincrement=False, nullable=False),
        sa.Column("payments", sa.BigInteger(), nullable=False),
        sa.Column("amount", deposit_token.audit.db.schema.Amount(precision=78, scale=0), nullable=False),
        sa.PrimaryKeyConstraint("period", "program_id", "vendor", "category", name="pk_vendor_cells"),
    )
    op.create_index("ix_vendor_cells_vendor", "vendor_cells", ["vendor"])
    op.create_table(
        "flow_cells",
        sa.Column("period", sa.Integer(), autoincrement=False, nullable=False),
        sa.Column("program_id", sa.Integer(), autoincrement=False, nullable=False),
        sa.Column("flow", sa.String(16), nullable=False),
        sa.Column("amount", deposit_token.audit.db.schema.Amount(precision=78, scale=0), nullable=False),
        sa.PrimaryKeyConstraint("period", "program_id", "flow", name="pk_flow_cells"),
    )
    op.create_table(
        "dispositions",
        sa.Column("id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), autoincrement=True, nullable=False),
        sa.Column("block_number", sa.BigInteger(), nullable=False),
        sa.Column("log_index", sa.Integer(), nullable=False),
        sa.Column("rule", sa.String(32), nullable=False),
        sa.Column("tx_hash", sa.String(66), nullable=False),
        sa.Column("disposition", sa.String(32), nullable=False),
        sa.Column("note", sa.Text(), nullable=False),
        sa.Column("decided_by", sa.String(120), nullable=False),
        sa.Column("decided_at", sa.DateTime(timezone=True), nullable=False),
        sa.CheckConstraint(
            "disposition IN (" + ", ".join(f"'{d}'" for d in DISPOSITIONS) + ")",
            name="ck_dispositions_disposition",
        ),
        sa.PrimaryKeyConstraint("id", name="pk_dispositions"),
    )
    op.create_index(
        "ix_dispositions_block_number_log_index_rule", "dispositions", ["block_number", "log_index", "rule"]
    )
    if op.get_bind().dialect.name == "postgresql":
        op.execute(
            "CREATE FUNCTION dispositions_append_only() RETURNS trigger LANGUAGE plpgsql AS $$ "
            f"BEGIN RAISE EXCEPTION '{APPEND_ONLY_MESSAGE}' USING ERRCODE = 'insufficient_privilege'; END $$"
        )
        op.execute(
            "CREATE TRIGGER dispositions_no_change BEFORE UPDATE OR DELETE ON dispositions "
            "FOR EACH ROW EXECUTE FUNCTION dispositions_append_only()"
        )
        op.execute(
            "CREATE TRIGGER dispositions_no_truncate BEFORE TRUNCATE ON dispositions "
            "FOR EACH STATEMENT EXECUTE FUNCTION dispositions_append_only()"
        )
    else:
        op.execute(
            "CREATE TRIGGER dispositions_no_update BEFORE UPDATE ON dispositions "
            f"BEGIN SELECT RAISE(ABORT, '{APPEND_ONLY_MESSAGE}'); END"
        )
        op.execute(
            "CREATE TRIGGER dispositions_no_delete BEFORE DELETE ON dispositions "
            f"BEGIN SELECT RAISE(ABORT, '{APPEND_ONLY_MESSAGE}'); END"
        )
    op.drop_index("ix_payments_payer", table_name="payments")
    op.drop_index("ix_payments_vendor", table_name="payments")
    op.create_index("ix_payments_payer_block_number_log_index", "payments", ["payer", "block_number", "log_index"])
    op.create_index(
        "ix_payments_vendor_block_number_log_index_amount",
        "payments",
        ["vendor", "block_number", "log_index", "amount"],
    )
    op.create_index("ix_payments_period_block_number_log_index", "payments", ["period", "block_number", "log_index"])
    op.create_index("ix_allocations_spender", "allocations", ["spender"])
    op.create_index("ix_redemptions_vendor", "redemptions", ["vendor"])


def downgrade() -> None:
    op.drop_index("ix_redemptions_vendor", table_name="redemptions")
    op.drop_index("ix_allocations_spender", table_name="allocations")
    op.drop_index("ix_payments_period_block_number_log_index", table_name="payments")
    op.drop_index("ix_payments_vendor_block_number_log_index_amount", table_name="payments")
    op.drop_index("ix_payments_payer_block_number_log_index", table_name="payments")
    op.create_index("ix_payments_vendor", "payments", ["vendor"])
    op.create_index("ix_payments_payer", "payments", ["payer"])
    # dropping the table drops its triggers (the append-only rule holds while the table exists)
    op.drop_table("dispositions")
    if op.get_bind().dialect.name == "postgresql":
        op.execute("DROP FUNCTION IF EXISTS dispositions_append_only()")
    for table in (
        "flow_cells",
        "vendor_cells",
        "spend_cells",
        "derived_dirty",
        "derived_state",
        "flag_totals",
        "payment_flags",
    ):
        op.drop_table(table)

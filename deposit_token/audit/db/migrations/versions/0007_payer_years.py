"""The report's distinct payers from a derived table: ``payer_years``

``payer_years`` holds each distinct (year, program, payer, category, vendor) of the payments that the derived
tables reflect, with the months of the year it occurred in as bits (``casework.payer_years``): the yearly report
counted the distinct payers per department, program, category, vendor and month from every payment (14.5 of its
15.5 s at 10,000,000 payments), which the summed cells cannot give. The table is filled here in one
INSERT ... SELECT (the months ORed as a sum of distinct bits, which both databases have) from the payments up to
``derived_state.block_number``, so a database whose derived tables are current stays current (``derive.refresh``
keeps it so from then on); before any derived build it stays empty, as the other cells.

Revision ID: 0007
Revises: 0006
Create Date: 2026-11-30 18:00:00
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0007"
down_revision = "0006"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "payer_years",
        sa.Column("year", sa.Integer(), autoincrement=False, nullable=False),
        sa.Column("program_id", sa.Integer(), autoincrement=False, nullable=False),
        sa.Column("payer", sa.String(42), nullable=False),
        sa.Column("category", sa.Integer(), autoincrement=False, nullable=False),
        sa.Column("vendor", sa.String(42), nullable=False),
        sa.Column("months", sa.Integer(), nullable=False),
        sa.PrimaryKeyConstraint("year", "program_id", "payer", "category", "vendor", name="pk_payer_years"),
    )
    op.execute(
        "INSERT INTO payer_years (year, program_id, payer, category, vendor, months) "
        "SELECT period / 100, program_id, payer, category, vendor, sum(DISTINCT 1 << (period % 100 - 1)) "
        "FROM payments WHERE block_number <= (SELECT block_number FROM derived_state WHERE id = 1) "
        "GROUP BY period / 100, program_id, payer, category, vendor"
    )
    if op.get_bind().dialect.name == "postgresql":
        op.execute("ANALYZE payer_years")  # read by the next report: its plan needs the row counts


def downgrade() -> None:
    op.drop_table("payer_years")

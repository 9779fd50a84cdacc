"""The report's distinct payers from a derived table: ``payer_cells``

``payer_cells`` holds each distinct (month, program, payer, category, vendor) of the payments that the derived
tables reflect (``casework.payer_cells``): the yearly report counted the distinct payers per department,
program, category, vendor and month from every payment (14.5 of its 15.5 s at 10,000,000 payments), which the
summed cells cannot give. The table is filled here, in one INSERT ... SELECT DISTINCT, from the payments up to
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
        "payer_cells",
        sa.Column("period", sa.Integer(), autoincrement=False, nullable=False),
        sa.Column("program_id", sa.Integer(), autoincrement=False, nullable=False),
        sa.Column("payer", sa.String(42), nullable=False),
        sa.Column("category", sa.Integer(), autoincrement=False, nullable=False),
        sa.Column("vendor", sa.String(42), nullable=False),
        sa.PrimaryKeyConstraint("period", "program_id", "payer", "category", "vendor", name="pk_payer_cells"),
    )
    op.execute(
        "INSERT INTO payer_cells (period, program_id, payer, category, vendor) "
        "SELECT DISTINCT period, program_id, payer, category, vendor FROM payments "
        "WHERE block_number <= (SELECT block_number FROM derived_state WHERE id = 1)"
    )


def downgrade() -> None:
    op.drop_table("payer_cells")

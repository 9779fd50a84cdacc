"""redemptions keep the settlement reference's text

`redeem` takes the settlement reference as text, spends its keccak256 once per vendor and emits the text in
`Redeemed`, so that auditors and the bank read the reference itself, not only its hash. Rows indexed before
this revision get ''.

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-30 09:00:00
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.add_column("redemptions", sa.Column("settlement_reference", sa.Text(), nullable=False, server_default=""))


def downgrade() -> None:
    with op.batch_alter_table("redemptions") as batch_op:  # SQLite rebuilds the table
        batch_op.drop_column("settlement_reference")

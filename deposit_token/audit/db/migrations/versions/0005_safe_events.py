"""Safe multisig events: who approved each privileged action (issue 11)

``safe_events`` holds the events of the Safes that hold the token's roles (deposit_token.audit.sync.safe):
``SafeMultiSigTransaction`` (SafeL2: the Safe transaction, its nonce, its executor and the owners whose
signatures it carried, recovered from the signatures), ``ExecutionSuccess`` / ``ExecutionFailure`` (the safeTxHash
and the outcome), ``AddedOwner``, ``RemovedOwner``, ``ChangedThreshold`` and ``ApproveHash`` (an owner's on-chain
approval). A privileged token event and the Safe execution that caused it share the transaction hash.

Revision ID: 0005
Revises: 0004
Create Date: 2026-11-30 13:00:00
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0005"
down_revision = "0004"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "safe_events",
        sa.Column("block_number", sa.BigInteger(), nullable=False),
        sa.Column("log_index", sa.Integer(), nullable=False),
        sa.Column("block_time", sa.BigInteger(), nullable=False),
        sa.Column("tx_hash", sa.String(66), nullable=False),
        sa.Column("safe", sa.String(42), nullable=False),
        sa.Column("event", sa.String(32), nullable=False),
        sa.Column("owner", sa.String(42), nullable=True),  # AddedOwner, RemovedOwner, ApproveHash
        sa.Column("threshold", sa.Integer(), nullable=True),  # ChangedThreshold; the Safe's at execution
        sa.Column("safe_tx_hash", sa.String(66), nullable=True),  # ExecutionSuccess/Failure, ApproveHash, and the tx
        sa.Column("nonce", sa.BigInteger(), nullable=True),
        sa.Column("executor", sa.String(42), nullable=True),  # who sent execTransaction
        sa.Column("approvers", sa.Text(), nullable=True),  # owners whose signatures counted, comma-separated
        sa.Column("target", sa.String(42), nullable=True),
        sa.Column("operation", sa.Integer(), nullable=True),
        sa.Column("data", sa.Text(), nullable=True),  # the Safe transaction's calldata, 0x-hex
        sa.PrimaryKeyConstraint("block_number", "log_index", name="pk_safe_events"),
    )
    op.create_index("ix_safe_events_tx_hash", "safe_events", ["tx_hash"])
    op.create_index("ix_safe_events_safe", "safe_events", ["safe", "block_number"])


def downgrade() -> None:
    op.drop_table("safe_events")

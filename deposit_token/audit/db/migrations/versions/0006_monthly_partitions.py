"""Monthly partitions of payments, transfers and allocations on PostgreSQL; the console's payments index

PostgreSQL (declarative partitioning, ``deposit_token.audit.db.partitions``): each table is rebuilt as a table
partitioned by RANGE of its month - ``payments`` by ``period`` (what every report, flag and console question
filters on), ``transfers`` and ``allocations`` by ``block_timestamp`` (UTC months) - with one partition per month
from its first row's to the month after its last row's, and a DEFAULT partition. The rows are copied over (an
existing database migrates forward in one transaction; the indexer must be stopped). PostgreSQL wants the
partition key in the primary key: it becomes (block_number, log_index, <key>), still unique per log since a
log's key is a function of the log. No foreign key references these tables (flags, dispositions and cells name
a payment by its block and log only), so nothing else changes. The indexer creates later months' partitions as
their rows arrive (``store.insert_rows`` -> ``partitions.ensure``).

Both databases: ``payments (period, program_id, amount)``, the console's filtered payments list (a month and a
program, amounts summed or ranged, from the index alone).

SQLite keeps its plain tables.

Revision ID: 0006
Revises: 0005
Create Date: 2026-11-30 15:00:00
"""

from __future__ import annotations

from alembic import op
from sqlalchemy import Connection, text

from deposit_token.audit.db import partitions

revision = "0006"
down_revision = "0005"
branch_labels = None
depends_on = None

# the secondary indexes of each table as migrations 0001-0005 left them: rebuilt on the new table
INDEXES: dict[str, dict[str, tuple[str, ...]]] = {
    "payments": {
        "ix_payments_payer_block_number_log_index": ("payer", "block_number", "log_index"),
        "ix_payments_vendor_block_number_log_index_amount": ("vendor", "block_number", "log_index", "amount"),
        "ix_payments_period_block_number_log_index": ("period", "block_number", "log_index"),
    },
    "transfers": {},
    "allocations": {"ix_allocations_spender": ("spender",)},
}
CONSOLE_INDEX = "ix_payments_period_program_id_amount"
CONSOLE_COLUMNS = ["period", "program_id", "amount"]


def _months(conn: Connection, table: str, source: str) -> list[int]:
    key = partitions.PARTITIONED[table].key
    lo, hi = conn.execute(text(f'SELECT min("{key}"), max("{key}") FROM "{source}"')).one()
    if lo is None:
        return []
    return partitions.months_between(partitions.month_of(table, lo), partitions.month_of(table, hi))


def _indexes(table: str) -> None:
    for name, columns in INDEXES[table].items():
        op.execute(f'CREATE INDEX "{name}" ON "{table}" ({", ".join(f"{c}" for c in columns)})')


def _partition(conn: Connection, table: str) -> None:
    old = f"{table}_unpartitioned"
    key = partitions.PARTITIONED[table].key
    op.execute(f'ALTER TABLE "{table}" RENAME TO "{old}"')
    op.execute(f'ALTER TABLE "{old}" RENAME CONSTRAINT "pk_{table}" TO "pk_{old}"')
    for name in INDEXES[table]:
        op.execute(f'DROP INDEX "{name}"')
    op.execute(f'CREATE TABLE "{table}" (LIKE "{old}" INCLUDING DEFAULTS) PARTITION BY RANGE ("{key}")')
    op.execute(f'ALTER TABLE "{table}" ADD CONSTRAINT "pk_{table}" PRIMARY KEY (block_number, log_index, "{key}")')
    op.execute(f'CREATE TABLE "{partitions.default_name(table)}" PARTITION OF "{table}" DEFAULT')
    months = _months(conn, table, old)
    for month in months + ([partitions.next_month(months[-1])] if months else []):
        lo, hi = partitions.bounds(table, month)
        op.execute(
            f'CREATE TABLE "{partitions.partition_name(table, month)}" PARTITION OF "{table}" '
            f"FOR VALUES FROM ({lo}) TO ({hi})"
        )
    # indexes after the copy: one sort per index instead of a b-tree insert per row
    op.execute(f'INSERT INTO "{table}" SELECT * FROM "{old}"')
    op.execute(f'DROP TABLE "{old}"')
    _indexes(table)
    op.execute(f'ANALYZE "{table}"')


def _unpartition(table: str) -> None:
    old = f"{table}_partitioned"
    op.execute(f'ALTER TABLE "{table}" RENAME TO "{old}"')
    op.execute(f'ALTER TABLE "{old}" RENAME CONSTRAINT "pk_{table}" TO "pk_{old}"')
    for name in INDEXES[table]:
        op.execute(f'DROP INDEX "{name}"')
    op.execute(f'CREATE TABLE "{table}" (LIKE "{old}" INCLUDING DEFAULTS)')
    op.execute(f'INSERT INTO "{table}" SELECT * FROM "{old}"')
    op.execute(f'DROP TABLE "{old}"')  # its partitions with it
    op.execute(f'ALTER TABLE "{table}" ADD CONSTRAINT "pk_{table}" PRIMARY KEY (block_number, log_index)')
    _indexes(table)


def upgrade() -> None:
    conn = op.get_bind()
    if conn.dialect.name == "postgresql":
        for table in partitions.PARTITIONED:
            _partition(conn, table)
    op.create_index(CONSOLE_INDEX, "payments", CONSOLE_COLUMNS)


def downgrade() -> None:
    op.drop_index(CONSOLE_INDEX, table_name="payments")
    if op.get_bind().dialect.name == "postgresql":
        for table in partitions.PARTITIONED:
            _unpartition(table)

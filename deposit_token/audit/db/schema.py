"""The audit database schema (SQLAlchemy Core): one typed table per event kind, blocks, checkpoint.

Shared contract between the indexer (which writes) and the report / flags / export / public commands (which
read): table and column names here are stable; columns may be added, never renamed. Alembic migrations
(``deposit_token/audit/db/migrations``) create exactly this schema, on SQLite and on PostgreSQL alike.

Conventions, chosen so that the same query runs on both databases and an auditor can read a row by eye:

* every event table starts with ``block_number``, ``log_index`` (primary key: a log's position on the chain,
  so re-inserting the same log is impossible), ``tx_hash`` and ``block_timestamp`` (unix seconds, UTC);
* addresses are checksummed strings (42 chars), bytes32 values ``0x``-hex strings (66 chars);
* token amounts (and other values that may exceed 64 bits) use :class:`Amount`: ``NUMERIC(78, 0)`` on
  PostgreSQL, exact integers on SQLite (see the class), always Python ``int`` when read back;
* small integers (program id, category, period ``yyyymm``) are plain integers, flags are booleans.

On PostgreSQL the tables that grow with every payment (payments, transfers, allocations) are partitioned by
month (``deposit_token.audit.db.partitions``); the tables below describe their columns and indexes, which are
the same on both databases.
"""

from __future__ import annotations

from decimal import Decimal
from typing import Any

from sqlalchemy import (
    BigInteger,
    Boolean,
    Column,
    DateTime,
    Index,
    Integer,
    MetaData,
    Numeric,
    String,
    Table,
    Text,
)
from sqlalchemy.engine import Dialect
from sqlalchemy.types import TypeDecorator, TypeEngine, UserDefinedType

# Deterministic constraint names: Alembic migrations and both databases agree on them.
metadata = MetaData(
    naming_convention={
        "ix": "ix_%(table_name)s_%(column_0_N_name)s",
        "uq": "uq_%(table_name)s_%(column_0_N_name)s",
        "ck": "ck_%(table_name)s_%(constraint_name)s",
        "pk": "pk_%(table_name)s",
    }
)

INT64_MAX = 2**63 - 1


class _SqliteExactInteger(UserDefinedType[int]):
    """SQLite column type for arbitrary-size integers.

    SQLite's INTEGER/NUMERIC affinities silently turn an integer above 2**63-1 into a REAL (15 digits), which
    would corrupt an unlimited approval (2**256-1) or a huge mint allowance. The declared name contains
    ``BLOB`` so the column has no affinity: values are stored as given - an INTEGER when it fits in 64 bits
    (all realistic KRW amounts; SUM and comparisons work as usual), exact decimal TEXT otherwise.
    """

    cache_ok = True

    def get_col_spec(self, **kw: Any) -> str:
        return "DECIMAL78_BLOB"


class Amount(TypeDecorator[int]):
    """An unsigned 256-bit integer: ``NUMERIC(78, 0)`` (PostgreSQL), exact integer (SQLite); reads as ``int``."""

    impl = Numeric(78, 0)
    cache_ok = True

    def load_dialect_impl(self, dialect: Dialect) -> TypeEngine[Any]:
        if dialect.name == "sqlite":
            return dialect.type_descriptor(_SqliteExactInteger())
        return dialect.type_descriptor(Numeric(78, 0, asdecimal=True))

    def process_bind_param(self, value: Any, dialect: Dialect) -> Any:
        if value is None:
            return None
        number = int(value)
        if dialect.name == "sqlite":
            return number if -INT64_MAX - 1 <= number <= INT64_MAX else str(number)
        return Decimal(number)

    def process_result_value(self, value: Any, dialect: Dialect) -> int | None:
        if value is None:
            return None
        return int(value)


ADDRESS = String(42)
HEX32 = String(66)


def _event_columns() -> list[Column[Any]]:
    """The columns every event table starts with; (block_number, log_index) is the primary key."""
    return [
        Column("block_number", BigInteger, primary_key=True, autoincrement=False),
        Column("log_index", Integer, primary_key=True, autoincrement=False),
        Column("tx_hash", HEX32, nullable=False),
        Column("block_timestamp", BigInteger, nullable=False),
    ]


def _event_table(name: str, *columns: Column[Any] | Index) -> Table:
    return Table(name, metadata, *_event_columns(), *columns)


# --- chain position ------------------------------------------------------------------------------------------

blocks = Table(
    "blocks",
    metadata,
    Column("number", BigInteger, primary_key=True, autoincrement=False),
    Column("hash", HEX32, nullable=False),
    Column("parent_hash", HEX32, nullable=False),
    Column("timestamp", BigInteger, nullable=False),
    Column("event_count", Integer, nullable=False, server_default="0"),
)
"""Blocks the indexer has seen: every block with events of the token, every checkpoint block and every block
of the recent (reorg-prone) window. The hashes let the indexer notice a reorg and find the common ancestor;
``event_count`` lets old empty blocks be pruned while blocks with events stay (their hash proves the rows)."""

checkpoint = Table(
    "checkpoint",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=False),  # always 1: one row
    Column("block_number", BigInteger, nullable=False),
    Column("block_hash", HEX32, nullable=False),
    Column("updated_at", DateTime(timezone=True), nullable=False),
)
"""The last block whose events are all in the database; written in the same transaction as those rows."""

index_meta = Table(
    "index_meta",
    metadata,
    Column("key", String(64), primary_key=True),
    Column("value", Text, nullable=False),
)
"""What this database indexes (chain id, token address, start block): a database is never mixed with
another chain's or another token's events."""

# --- ERC-20 ------------------------------------------------------------------------------------------------

transfers = _event_table(
    "transfers",
    Column("from_address", ADDRESS, nullable=False),
    Column("to_address", ADDRESS, nullable=False),
    Column("amount", Amount, nullable=False),
)
approvals = _event_table(
    "approvals",
    Column("owner", ADDRESS, nullable=False),
    Column("spender", ADDRESS, nullable=False),
    Column("amount", Amount, nullable=False),
)

# --- money movements -------------------------------------------------------------------------------------------

payments = _event_table(
    "payments",
    Column("payer", ADDRESS, nullable=False),
    Column("vendor", ADDRESS, nullable=False),
    Column("program_id", Integer, nullable=False),
    Column("category", Integer, nullable=False),
    Column("period", Integer, nullable=False),  # yyyymm in the program's time zone
    Column("amount", Amount, nullable=False),
    Column("receipt_id", HEX32, nullable=False),
    Column("evidence_hash", HEX32, nullable=False),
    Column("cap_left", Amount, nullable=False),
    # the console's lists: a payer's, a vendor's or a month's newest payments from one index range; with the
    # amount, what a vendor had received up to a payment is summed from the index alone
    Index(None, "payer", "block_number", "log_index"),
    Index(None, "vendor", "block_number", "log_index", "amount"),
    Index(None, "period", "block_number", "log_index"),
    # the console's filtered list (a month and a program, amounts ranged or summed) from the index alone
    Index(None, "period", "program_id", "amount"),
)
"""On PostgreSQL partitioned by month of ``period`` (``db.partitions``, migration 0006): its primary key there is
(block_number, log_index, period); a log's period never changes, so a log still has one row."""
allocations = _event_table(
    "allocations",
    Column("batch_ref", HEX32, nullable=False),
    Column("program_id", Integer, nullable=False),
    Column("spender", ADDRESS, nullable=False),
    Column("amount", Amount, nullable=False),
    Index(None, "spender"),  # an official's page
)
"""On PostgreSQL partitioned by UTC month of ``block_timestamp`` (as ``transfers``; migration 0006)."""
allocation_batches = _event_table(
    "allocation_batches",
    Column("batch_ref", HEX32, nullable=False),
    Column("program_id", Integer, nullable=False),
    Column("operator", ADDRESS, nullable=False),
    Column("count", Amount, nullable=False),
    Column("total", Amount, nullable=False),
)
returns = _event_table(
    "returns",
    Column("spender", ADDRESS, nullable=False),
    Column("program_id", Integer, nullable=False),
    Column("treasury", ADDRESS, nullable=False),
    Column("amount", Amount, nullable=False),
)
redemptions = _event_table(
    "redemptions",
    Column("vendor", ADDRESS, nullable=False),
    Column("settlement_ref", HEX32, nullable=False),  # keccak256 of the text below: spent once per vendor
    Column("amount", Amount, nullable=False),
    # The reference as the vendor wrote it (the bank pays out on it); '' for rows indexed before it was kept.
    Column("settlement_reference", Text, nullable=False, server_default=""),
    Index(None, "vendor"),  # a vendor's page, a payment's settlement
)
clawbacks = _event_table(
    "clawbacks",
    Column("spender", ADDRESS, nullable=False),
    Column("program_id", Integer, nullable=False),
    Column("officer", ADDRESS, nullable=False),
    Column("amount", Amount, nullable=False),
    Column("reason", Text, nullable=False),
)
sweeps = _event_table(
    "sweeps",
    Column("spender", ADDRESS, nullable=False),
    Column("program_id", Integer, nullable=False),
    Column("caller", ADDRESS, nullable=False),
    Column("amount", Amount, nullable=False),
)
mints = _event_table(
    "mints",
    Column("issuer", ADDRESS, nullable=False),
    Column("treasury", ADDRESS, nullable=False),
    Column("amount", Amount, nullable=False),
    Column("allowance_left", Amount, nullable=False),
)
mint_allowances = _event_table(
    "mint_allowances",
    Column("issuer", ADDRESS, nullable=False),
    Column("allowance", Amount, nullable=False),
)

# --- participants and programs -----------------------------------------------------------------------------

treasury_registrations = _event_table(
    "treasury_registrations",
    Column("treasury", ADDRESS, nullable=False),
)
vendor_registrations = _event_table(
    "vendor_registrations",
    Column("vendor", ADDRESS, nullable=False),
    Column("category", Integer, nullable=False),
    Column("name", Text, nullable=False),
)
vendor_suspensions = _event_table(
    "vendor_suspensions",
    Column("vendor", ADDRESS, nullable=False),
    Column("suspended", Boolean, nullable=False),
    Column("officer", ADDRESS, nullable=False),
    Column("reason", Text, nullable=False),
)
enrolments = _event_table(
    "enrolments",
    Column("spender", ADDRESS, nullable=False),
    Column("program_id", Integer, nullable=False),
    Column("department", HEX32, nullable=False),
    Column("department_text", Text, nullable=False),  # right-padded UTF-8, NULs stripped
)
cap_overrides = _event_table(
    "cap_overrides",
    Column("spender", ADDRESS, nullable=False),
    Column("category", Integer, nullable=False),
    Column("cap", Amount, nullable=False),
    Column("active", Boolean, nullable=False),
)
program_configs = _event_table(
    "program_configs",
    Column("program_id", Integer, nullable=False),
    Column("version", Integer, nullable=False),
    Column("name", Text, nullable=False),
    Column("treasury", ADDRESS, nullable=False),
    Column("start", BigInteger, nullable=False),
    Column("end_time", BigInteger, nullable=False),
    Column("utc_offset_minutes", Integer, nullable=False),
    Column("categories", Amount, nullable=False),  # bit mask: bit c set = category c allowed (up to bit 63)
    Column("opening_hours", Amount, nullable=False),  # uint72, see IDepositTokenTypes.ProgramRules
    Column("per_payment_limit", Amount, nullable=False),
    Column("evidence_threshold", Amount, nullable=False),
)
category_caps = _event_table(
    "category_caps",
    Column("program_id", Integer, nullable=False),
    Column("category", Integer, nullable=False),
    Column("cap", Amount, nullable=False),  # 2**48-1 = no cap
)

# --- compliance and roles ----------------------------------------------------------------------------------

freezes = _event_table(
    "freezes",
    Column("account", ADDRESS, nullable=False),
    Column("frozen", Boolean, nullable=False),
    Column("officer", ADDRESS, nullable=False),
    Column("reason", Text, nullable=False),
)
program_pauses = _event_table(
    "program_pauses",
    Column("program_id", Integer, nullable=False),
    Column("paused", Boolean, nullable=False),
    Column("officer", ADDRESS, nullable=False),
)
pauses = _event_table(
    "pauses",
    Column("paused", Boolean, nullable=False),  # Paused -> true, Unpaused -> false
    Column("account", ADDRESS, nullable=False),
)
role_events = _event_table(
    "role_events",
    Column("event_name", String(32), nullable=False),  # RoleGranted | RoleRevoked
    Column("role", HEX32, nullable=False),
    Column("account", ADDRESS, nullable=False),
    Column("sender", ADDRESS, nullable=False),
)
admin_events = _event_table(
    "admin_events",
    Column("event_name", String(64), nullable=False),
    Column("data", Text, nullable=False),  # JSON object of the arguments (ints: numbers, above 2**63-1 strings)
)
"""Every other event of the token: DefaultAdminTransferScheduled / ...Canceled, DefaultAdminDelayChange...,
RoleAdminChanged, EIP712DomainChanged, Initialized."""

EVENT_TABLES: tuple[Table, ...] = tuple(
    t for t in metadata.sorted_tables if t.name not in ("blocks", "checkpoint", "index_meta")
)
"""Every table holding events (each has block_number, log_index, tx_hash, block_timestamp)."""

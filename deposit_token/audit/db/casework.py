"""Tables the indexer does not fill: what is derived from the indexed events for the auditors' console (the
flags, spend pre-aggregated per month), and the auditors' own records (dispositions of flags).

They share ``schema.metadata`` (one Alembic history, one ``create_all``) but are kept out of
``schema.EVENT_TABLES``: a reorg rollback must not delete a disposition, and the derived tables are rebuilt by
``deposit_token.audit.derive`` from what the rollback removed (``store.rollback_to`` records it in
``derived_dirty``), not cut at a block number.

Derived tables (rebuilt at will, never edited by hand):

* ``payment_flags``: every flag of ``audit flags`` (``query.flags``, default settings) for the payments up to
  ``derived_state.block_number``: one row per (payment, rule), with the group the flag was computed in
  (payer, program, period) so that a group can be recomputed alone;
* ``flag_totals``: flags per rule;
* ``spend_cells``: payments and amount per (month, program, department at payment time, category): the
  overview's and the public portal's totals without reading a million payments;
* ``vendor_cells``: payments and amount per (month, program, vendor, category): top vendors;
* ``flow_cells``: allocated, returned, clawed back, swept and redeemed per (month, program);
* ``payer_years``: each distinct (year, program, payer, category, vendor) with its months as bits: the
  report's distinct payers.

Dispositions are append-only: there is no update or delete in the library, and both databases refuse one
(triggers created with the table, here and in migration 0004).
"""

from __future__ import annotations

from sqlalchemy import (
    DDL,
    BigInteger,
    CheckConstraint,
    Column,
    DateTime,
    Index,
    Integer,
    String,
    Table,
    Text,
    event,
)

from deposit_token.audit.db.schema import ADDRESS, HEX32, Amount, metadata

DISPOSITIONS = ("justified", "explanation_requested", "referred", "recovered")
"""What an auditor decides about a flag (docs/DOMAIN.md): the spending was justified, an explanation was asked
for, the case was referred (to inspection or prosecution), or the money was recovered."""

RULE = String(32)
DEPARTMENT = String(80)  # a department's text (<= 32 bytes on-chain) or its bytes32 hex

# --- derived ---------------------------------------------------------------------------------------------------

payment_flags = Table(
    "payment_flags",
    metadata,
    Column("block_number", BigInteger, primary_key=True, autoincrement=False),
    Column("log_index", Integer, primary_key=True, autoincrement=False),
    Column("rule", RULE, primary_key=True),
    Column("tx_hash", HEX32, nullable=False),
    Column("payer", ADDRESS, nullable=False),
    Column("program_id", Integer, nullable=False),
    Column("period", Integer, nullable=False),
    Column("local_time", String(32), nullable=False),  # ISO 8601 in the program's offset
    Column("detail", Text, nullable=False),
    Index(None, "rule", "block_number", "log_index"),
    Index(None, "payer", "program_id", "period"),
)

flag_totals = Table(
    "flag_totals",
    metadata,
    Column("rule", RULE, primary_key=True),
    Column("flags", BigInteger, nullable=False),
)
"""How many rows of ``payment_flags`` each rule has (the queue's tabs without counting a hundred thousand)."""

derived_state = Table(
    "derived_state",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=False),  # always 1: one row
    Column("block_number", BigInteger, nullable=False),  # every payment up to this block is reflected
    Column("settings", Text, nullable=False),  # the flag settings used (JSON): others mean a rebuild
    Column("updated_at", DateTime(timezone=True), nullable=False),
)

derived_dirty = Table(
    "derived_dirty",
    metadata,
    Column("payer", ADDRESS, nullable=False),
    Column("program_id", Integer, nullable=False),
    Column("period", Integer, nullable=False),
)
"""Groups (payer, program, month) whose payments changed below ``derived_state.block_number`` (a rollback
removed some): recomputed, then deleted, by the next refresh. Duplicates are harmless. ``FLOWS_DIRTY`` asks for
the flow cells to be summed again."""

FLOWS_DIRTY = ("", -1, -1)

spend_cells = Table(
    "spend_cells",
    metadata,
    Column("period", Integer, primary_key=True, autoincrement=False),
    Column("program_id", Integer, primary_key=True, autoincrement=False),
    Column("department", DEPARTMENT, primary_key=True),
    Column("category", Integer, primary_key=True, autoincrement=False),
    Column("payments", BigInteger, nullable=False),
    Column("amount", Amount, nullable=False),
)

vendor_cells = Table(
    "vendor_cells",
    metadata,
    Column("period", Integer, primary_key=True, autoincrement=False),
    Column("program_id", Integer, primary_key=True, autoincrement=False),
    Column("vendor", ADDRESS, primary_key=True),
    Column("category", Integer, primary_key=True, autoincrement=False),
    Column("payments", BigInteger, nullable=False),
    Column("amount", Amount, nullable=False),
    Index(None, "vendor"),
)

FLOWS = ("allocated", "returned", "clawed_back", "swept", "redeemed")

flow_cells = Table(
    "flow_cells",
    metadata,
    Column("period", Integer, primary_key=True, autoincrement=False),
    Column("program_id", Integer, primary_key=True, autoincrement=False),  # 0 for redemptions (no program)
    Column("flow", String(16), primary_key=True),  # one of FLOWS
    Column("amount", Amount, nullable=False),
)
"""Money through each program per month (the program's time zone; redemptions in KST under program 0): what
``reports.flows`` sums from the allocation, return, claw-back, sweep and redemption events."""

payer_years = Table(
    "payer_years",
    metadata,
    Column("year", Integer, primary_key=True, autoincrement=False),
    Column("program_id", Integer, primary_key=True, autoincrement=False),
    Column("payer", ADDRESS, primary_key=True),
    Column("category", Integer, primary_key=True, autoincrement=False),
    Column("vendor", ADDRESS, primary_key=True),
    Column("months", Integer, nullable=False),  # bit m-1 set: paid in month m of the year (the period's)
)
"""Who paid whom, and in which months: each distinct (year, program, payer, category, vendor) of the payments
with the months it occurred in as bits (migration 0007). The report's distinct payers per group, which sums
cannot give, are counted from these rows (a fifth of the payments in a national year) for any range of months;
a refresh ORs a step's months into its rows, a rollback's groups are deleted and taken again."""

DERIVED_TABLES: tuple[Table, ...] = (
    payment_flags,
    flag_totals,
    derived_state,
    derived_dirty,
    spend_cells,
    vendor_cells,
    flow_cells,
    payer_years,
)

# --- the auditors' records -------------------------------------------------------------------------------------

dispositions = Table(
    "dispositions",
    metadata,
    # SQLite autoincrements only an INTEGER PRIMARY KEY (the rowid)
    Column("id", BigInteger().with_variant(Integer, "sqlite"), primary_key=True, autoincrement=True),
    Column("block_number", BigInteger, nullable=False),  # the flag: payment position + rule
    Column("log_index", Integer, nullable=False),
    Column("rule", RULE, nullable=False),
    Column("tx_hash", HEX32, nullable=False),
    Column("disposition", String(32), nullable=False),
    Column("note", Text, nullable=False),
    Column("decided_by", String(120), nullable=False),
    Column("decided_at", DateTime(timezone=True), nullable=False),
    CheckConstraint(
        "disposition IN (" + ", ".join(f"'{d}'" for d in DISPOSITIONS) + ")",
        name="disposition",
    ),
    Index(None, "block_number", "log_index", "rule"),
)

APPEND_ONLY_MESSAGE = "dispositions are append-only: record a new disposition instead of changing one"

# The same statements as migration 0004 (a migration is history: it keeps its own copy).
POSTGRES_APPEND_ONLY = (
    "CREATE FUNCTION dispositions_append_only() RETURNS trigger LANGUAGE plpgsql AS $$ "
    f"BEGIN RAISE EXCEPTION '{APPEND_ONLY_MESSAGE}' USING ERRCODE = 'insufficient_privilege'; END $$",
    "CREATE TRIGGER dispositions_no_change BEFORE UPDATE OR DELETE ON dispositions "
    "FOR EACH ROW EXECUTE FUNCTION dispositions_append_only()",
    "CREATE TRIGGER dispositions_no_truncate BEFORE TRUNCATE ON dispositions "
    "FOR EACH STATEMENT EXECUTE FUNCTION dispositions_append_only()",
)
SQLITE_APPEND_ONLY = (
    f"CREATE TRIGGER dispositions_no_update BEFORE UPDATE ON dispositions "
    f"BEGIN SELECT RAISE(ABORT, '{APPEND_ONLY_MESSAGE}'); END",
    f"CREATE TRIGGER dispositions_no_delete BEFORE DELETE ON dispositions "
    f"BEGIN SELECT RAISE(ABORT, '{APPEND_ONLY_MESSAGE}'); END",
)

for _statement in POSTGRES_APPEND_ONLY:
    event.listen(dispositions, "after_create", DDL(_statement).execute_if(dialect="postgresql"))  # type: ignore[no-untyped-call]
for _statement in SQLITE_APPEND_ONLY:
    event.listen(dispositions, "after_create", DDL(_statement).execute_if(dialect="sqlite"))  # type: ignore[no-untyped-call]
# DROP TABLE drops the triggers with it; the PostgreSQL function goes too (tests drop and recreate schemas)
event.listen(
    dispositions,
    "after_drop",
    DDL("DROP FUNCTION IF EXISTS dispositions_append_only()").execute_if(  # type: ignore[no-untyped-call]
        dialect="postgresql"
    ),
)

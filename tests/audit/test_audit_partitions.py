"""Monthly partitions of the audit database (migration 0006, ``audit.db.partitions``).

A database at revision 0005 holding a year and a month of payments, transfers and allocations migrates forward
with every row kept (compared row by row), and back; new months' partitions appear as the indexer's writes
(``store.insert_rows``) bring their rows; a row written without them lands in the DEFAULT partition and moves
out when its month is created. Every statement the report, flags, public aggregates, a one-month export and the
console's filtered list make for a one-month question reads that month's partition only (EXPLAIN of each
statement as executed). SQLite migrates the same rows forward with plain tables.
"""

from __future__ import annotations

import json
import random
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import pytest
from alembic import command
from sqlalchemy import Engine, create_engine, event, text
from support.audit_rows import address, hex32, kst

from deposit_token.audit.db import partitions, schema, store
from deposit_token.audit.query import flags, public, reports
from deposit_token.audit.query.common import Filters, ProgramConfigs, snapshot, vendor_names
from deposit_token.audit.query.payments import (
    PaymentFilter,
    iter_payments,
    list_payments,
    payment_totals,
    stream_payment_values,
)
from deposit_token.domain.rules import KST_OFFSET_MINUTES, MAX_AMOUNT_40, local_time

BIG = ("payments", "transfers", "allocations")
MONTHS = [202912, *range(203001, 203013), 203101]  # 14 months, two years' edges
VENDORS = [address(f"vendor{i}") for i in range(12)]
PAYERS = [address(f"payer{i}") for i in range(40)]


def _rows() -> dict[str, list[tuple[Any, ...]]]:
    """A pilot's rows as the indexer writes them: one program, 40 payers, 12 vendors, ~200 payments a month
    (nights, weekends, near-limit and split bills among them, so that flags are raised)."""
    rng = random.Random(6)
    out: dict[str, list[tuple[Any, ...]]] = {t: [] for t in (*BIG, "program_configs", "enrolments")}
    block = 10
    start = int(kst(2029, 12, 1, 8).timestamp())
    out["program_configs"].append(
        (block, 0, hex32(block), start - 86_400, 1, 1, "BP", address("treasury"), start, start + 10**8,
         KST_OFFSET_MINUTES, 0b1111110, 0, 1_000_000, 500_000)
    )  # fmt: skip
    for i, payer in enumerate(PAYERS):
        out["enrolments"].append(
            (block, i + 1, hex32(block), start - 86_400, payer, 1, hex32(f"D{i % 4}"), f"D{i % 4}")
        )
    for month in MONTHS:
        block += 1
        first = int(kst(month // 100, month % 100, 1, 7).timestamp())
        for i, payer in enumerate(PAYERS):
            out["allocations"].append((block, i, hex32(block * 1000 + i), first, hex32(month), 1, payer, 3_000_000))
        for n in range(200):
            block += 1
            stamp = first + rng.randrange(27 * 86_400)
            amount = rng.choice((9_000, 45_000, 120_000, 480_000, 990_000))
            payer, vendor = rng.choice(PAYERS[:10]), rng.choice(VENDORS)
            period = local_time(stamp, KST_OFFSET_MINUTES)[0]
            tx = hex32(block)
            out["transfers"].append((block, 0, tx, stamp, payer, vendor, amount))
            out["payments"].append(
                (block, 1, tx, stamp, payer, vendor, 1, 1, period, amount, hex32(n), "0x" + "00" * 32, MAX_AMOUNT_40)
            )
    return out


def downgrade(engine: Engine, revision: str) -> None:
    config = store.alembic_config()
    with engine.begin() as conn:
        config.attributes["connection"] = conn
        command.downgrade(config, revision)


def _write(engine: Engine, rows: dict[str, list[tuple[Any, ...]]]) -> None:
    with engine.begin() as conn:
        for table, values in rows.items():
            store.insert_rows(conn, table, [c.name for c in schema.metadata.tables[table].columns], values)


def _dump(engine: Engine) -> dict[str, list[tuple[Any, ...]]]:
    with engine.connect() as conn:
        return {
            t: [tuple(r) for r in conn.execute(text(f"SELECT * FROM {t} ORDER BY block_number, log_index"))]
            for t in BIG
        }


@contextmanager
def _pg_engine(pg_url: str) -> Iterator[Engine]:
    """An empty database in a schema of its own (dropped afterwards), migrated by the caller."""
    name = f"audit_part_{uuid.uuid4().hex[:12]}"
    admin = create_engine(pg_url)
    with admin.begin() as conn:
        conn.execute(text(f'CREATE SCHEMA "{name}"'))
    engine = create_engine(f"{pg_url}{'&' if '?' in pg_url else '?'}options=-csearch_path%3D{name}")
    try:
        yield engine
    finally:
        engine.dispose()
        with admin.begin() as conn:
            conn.execute(text(f'DROP SCHEMA "{name}" CASCADE'))
        admin.dispose()


@pytest.fixture(scope="module")
def rows() -> dict[str, list[tuple[Any, ...]]]:
    return _rows()


@pytest.fixture(scope="module")
def migrated(pg_url: str, rows: dict[str, list[tuple[Any, ...]]]) -> Iterator[tuple[Engine, dict[str, Any]]]:
    """A database filled at 0005 and migrated to head: (engine, its rows before the migration)."""
    with _pg_engine(pg_url) as engine:
        store.upgrade(engine, "0005")
        _write(engine, rows)
        before = _dump(engine)
        store.upgrade(engine, "head")
        yield engine, before


def _partitions_of(engine: Engine, table: str) -> dict[str, int]:
    with engine.connect() as conn:
        names = [
            r[0]
            for r in conn.execute(
                text(
                    "SELECT c.relname FROM pg_inherits i JOIN pg_class c ON c.oid = i.inhrelid "
                    "WHERE i.inhparent = to_regclass(:t)"
                ),
                {"t": table},
            )
        ]
        return {n: int(conn.execute(text(f'SELECT count(*) FROM "{n}"')).scalar_one()) for n in names}


def test_migration_keeps_every_row_and_partitions_by_month(migrated) -> None:
    engine, before = migrated
    assert _dump(engine) == before
    assert len(before["payments"]) == 200 * len(MONTHS)
    payments = _partitions_of(engine, "payments")
    # every month of the rows, the month after, the default (empty: every row found its month)
    assert set(payments) == {f"payments_p{m}" for m in (*MONTHS, 203102)} | {"payments_default"}
    assert payments["payments_default"] == 0
    assert all(payments[f"payments_p{m}"] == 200 for m in MONTHS)
    for table in ("transfers", "allocations"):
        assert _partitions_of(engine, table)[f"{table}_default"] == 0
    with engine.connect() as conn:
        keys = (
            conn.execute(
                text(
                    "SELECT a.attname FROM pg_index i "
                    "JOIN pg_attribute a ON a.attrelid = i.indrelid AND a.attnum = ANY(i.indkey) "
                    "WHERE i.indrelid = 'payments'::regclass AND i.indisprimary ORDER BY a.attnum"
                )
            )
            .scalars()
            .all()
        )
    assert keys == ["block_number", "log_index", "period"]


def test_new_months_get_partitions_from_the_write_path(migrated) -> None:
    engine, _ = migrated
    stamp = int(kst(2031, 3, 2, 12).timestamp())
    columns = [c.name for c in schema.payments.columns]
    row = (
        9_000_000,
        1,
        hex32(9_000_000),
        stamp,
        PAYERS[0],
        VENDORS[0],
        1,
        1,
        203103,
        10_000,
        hex32(1),
        "0x" + "00" * 32,
        0,
    )
    # written behind the write path's back: the default partition takes it
    with engine.begin() as conn:
        conn.execute(schema.payments.insert(), [dict(zip(columns, row))])
    assert _partitions_of(engine, "payments")["payments_default"] == 1
    # the indexer's write of a row of that month creates the month (and the next), moving the first row in
    later = (9_000_001, 1, hex32(9_000_001), stamp + 60, *row[4:])
    with engine.begin() as conn:
        store.insert_rows(conn, "payments", columns, [later])
    found = _partitions_of(engine, "payments")
    assert found["payments_default"] == 0 and found["payments_p203103"] == 2 and "payments_p203104" in found
    # a repeated log is still refused (the key includes the period, the same for the same log)
    with engine.begin() as conn, pytest.raises(Exception, match="duplicate key"):
        store.insert_rows(conn, "payments", columns, [later])
    store.rollback_to(engine, 8_999_999, hex32(8_999_999))
    assert _partitions_of(engine, "payments")["payments_p203103"] == 0


# --- plans: a one-month question reads one month ---------------------------------------------------------------


@contextmanager
def _statements(engine: Engine) -> Iterator[list[tuple[str, Any]]]:
    seen: list[tuple[str, Any]] = []

    def record(_conn: Any, _cursor: Any, statement: str, parameters: Any, _context: Any, _many: bool) -> None:
        if not statement.lstrip().upper().startswith("EXPLAIN"):
            seen.append((statement, parameters))

    event.listen(engine, "before_cursor_execute", record)
    try:
        yield seen
    finally:
        event.remove(engine, "before_cursor_execute", record)


def _scanned(plan: dict[str, Any]) -> set[str]:
    out = set()
    if "Relation Name" in plan:
        out.add(plan["Relation Name"])
    for child in plan.get("Plans", []):
        out |= _scanned(child)
    return out


def _big_partitions_read(engine: Engine, call: Any) -> set[str]:
    """Every partition of the big tables read by the statements `call(conn)` makes (EXPLAIN of each)."""
    with _statements(engine) as seen, snapshot(engine) as conn:
        result = call(conn)
        if hasattr(result, "__next__"):
            list(result)
    read: set[str] = set()
    with engine.connect() as conn:
        raw: Any = conn.connection.driver_connection
        for statement, parameters in seen:
            if not any(t in statement for t in BIG):
                continue
            with raw.cursor() as cursor:
                cursor.execute("EXPLAIN (FORMAT JSON) " + statement, parameters or None)
                plan = cursor.fetchone()[0]
            plan = json.loads(plan) if isinstance(plan, str) else plan
            read |= {n for n in _scanned(plan[0]["Plan"]) if n.split("_")[0] in BIG}
    return read


MONTH = 203006
ONE_MONTH = Filters(since=MONTH, until=MONTH)
QUESTIONS = {
    "report": lambda conn: reports.build_report(conn, ONE_MONTH),
    "flags": lambda conn: flags.find_flags(conn, filters=ONE_MONTH),
    "public": lambda conn: public.public_aggregates(conn, ONE_MONTH),
    "export": lambda conn: list(stream_payment_values(conn, PaymentFilter(since=MONTH, until=MONTH))),
    "console pages": lambda conn: list(iter_payments(conn, PaymentFilter(since=MONTH, until=MONTH), batch=50)),
    "console list": lambda conn: list_payments(
        conn, PaymentFilter(programs=(1,), since=MONTH, until=MONTH, min_amount=100_000)
    ),
    "console totals": lambda conn: payment_totals(
        conn, PaymentFilter(programs=(1,), since=MONTH, until=MONTH, min_amount=100_000)
    ),
}


@pytest.mark.parametrize("question", list(QUESTIONS))
def test_one_month_question_reads_one_month(migrated, question: str) -> None:
    engine, _ = migrated
    read = _big_partitions_read(engine, QUESTIONS[question])
    payments = {n for n in read if n.startswith("payments")}
    assert payments == {f"payments_p{MONTH}"}, read
    # allocations by time: June in KST starts on 31 May 15:00 UTC, so May's and June's UTC partitions
    assert {n for n in read if n.startswith("allocations")} <= {"allocations_p203005", "allocations_p203006"}, read
    assert not {n for n in read if n.startswith("transfers")}


def test_flags_of_a_month_match_flags_of_the_year(migrated) -> None:
    engine, _ = migrated
    with snapshot(engine) as conn:
        year = flags.find_flags(conn)
        month = flags.find_flags(conn, filters=ONE_MONTH)
    assert month and month == [f for f in year if f.local_time.startswith("2030-06")]


def test_downgrade_restores_plain_tables(pg_url: str, rows) -> None:
    with _pg_engine(pg_url) as engine:
        store.upgrade(engine, "0005")
        _write(engine, rows)
        before = _dump(engine)
        store.upgrade(engine, "head")
        downgrade(engine, "0005")
        assert _dump(engine) == before
        with engine.connect() as conn:
            assert partitions.existing(conn, "payments") is None
        store.upgrade(engine, "head")
        assert _dump(engine) == before


def test_sqlite_migrates_forward_with_plain_tables(tmp_path, rows) -> None:
    engine = store.create_db_engine(str(tmp_path / "audit.sqlite"))
    try:
        store.upgrade(engine, "0005")
        _write(engine, rows)
        before = _dump(engine)
        store.upgrade(engine, "head")
        assert _dump(engine) == before
        with engine.connect() as conn:
            names = {r[0] for r in conn.exec_driver_sql("SELECT name FROM sqlite_master WHERE type = 'index'")}
        assert "ix_payments_period_program_id_amount" in names
        downgrade(engine, "0005")
        assert _dump(engine) == before
    finally:
        engine.dispose()


def test_report_summed_in_sql_matches_the_facts(migrated) -> None:
    """build_report's per-dimension SQL sums give what spend_by and top_vendors count from spend_facts."""
    engine, _ = migrated
    with snapshot(engine) as conn:
        programs, vendors = ProgramConfigs.load(conn), vendor_names(conn)
        for filters in (Filters(), ONE_MONTH, Filters(programs=(1,), since=203003, until=203008)):
            report = reports.build_report(conn, filters, top=None)
            facts = reports.spend_facts(conn, filters)
            by_facts = [row for d in reports.DIMENSIONS for row in reports.spend_by(facts, d, programs, vendors)]
            assert report.spend == by_facts
            assert report.vendors == reports.top_vendors(conn, facts, vendors, filters, None)


@pytest.mark.parametrize(
    "settings",
    [flags.FlagSettings(), flags.FlagSettings(near_pct=20, concentration_share_pct=30, concentration_min_payments=2)],
)
def test_flags_found_in_sql_match_every_payment_through_python(migrated, settings) -> None:
    """find_flags checks in Python only the payments SQL finds able to raise a flag: the same flags as checking
    every payment (flag_payments over load_payments, the derived queue's way)."""
    engine, _ = migrated
    with snapshot(engine) as conn:
        everything = flags.load_payments(conn, Filters(), ProgramConfigs.load(conn))
        expected = flags.flag_payments(everything, settings, flags.RULES)
        found = flags.find_flags(conn, settings)
    assert len({f.rule for f in expected}) >= 5
    assert found == expected

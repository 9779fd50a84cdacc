"""Flags and cases (audit.cases, query.cases): the flag queue by rule and status in keyset pages, dispositions
recorded with who and when, their history and export, and the append-only rule held by the databases
themselves (SQLite and PostgreSQL, built by the migrations and by create_all): no UPDATE, DELETE or TRUNCATE,
through a reorg rollback and an index reset; migration 0004 goes down and up again."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta

import pytest
from alembic import command
from sqlalchemy import text
from sqlalchemy.exc import DBAPIError
from support.audit_rows import BACKENDS, backend_engine, kst, postgres_engine, sqlite_engine
from support.console_rows import Book, migrated_engine

from deposit_token.audit import cases, derive
from deposit_token.audit.db import store
from deposit_token.audit.query.common import snapshot
from deposit_token.audit.query.export import dispositions_view, export_views, flags_view
from deposit_token.audit.query.payments import PaymentFilter
from deposit_token.domain.categories import Category

BP = 1
AT = datetime(2030, 2, 1, 9, 30, tzinfo=UTC)  # fixed decision times: no wall clock in the assertions


@pytest.fixture(params=BACKENDS)
def engine(request, tmp_path):
    with backend_engine(request, tmp_path) as engine:
        yield engine


def fill(engine) -> dict:
    book = Book(engine)
    book.configure(BP, "BP-2030-MOEF")
    kim, park = book.enrol("kim", BP, "MOEF"), book.enrol("park", BP, "MOIS")
    shop = book.vendor("restaurant", name="Hanok Table")
    cafe = book.vendor("cafe", Category.CAFE_BAKERY)
    for day in range(4, 17):  # kim, every day of two weeks at one restaurant: weekends + concentration
        book.pay(kim, shop, 10_000 + day, kst(2030, 3, day, 12))
    book.pay(park, cafe, 480_000, kst(2030, 3, 5, 12), category=Category.CAFE_BAKERY)  # near-evidence
    book.pay(park, shop, 20_000, kst(2030, 3, 6, 23, 30))  # night
    book.move_checkpoint()
    derive.refresh(engine)
    return {"book": book, "kim": kim, "park": park, "shop": shop}


def queue_keys(engine, filt=None, limit=4) -> list[str]:
    out, after = [], None
    with snapshot(engine) as conn:
        while True:
            page = cases.flag_queue(conn, filt or cases.FlagFilter(status="any"), after=after, limit=limit)
            out += [row.key for row in page.rows]
            if page.next_cursor is None:
                return out
            after = page.next_cursor


def test_the_queue_pages_through_every_flag_newest_first(engine):
    fill(engine)
    with snapshot(engine) as conn:
        everything = cases.flag_queue(conn, cases.FlagFilter(status="any"), limit=500).rows
        counts = {c.rule: (c.flags, c.open) for c in cases.flag_counts(conn)}
    assert queue_keys(engine) == [row.key for row in everything]  # pages of 4, flags sharing a payment included
    positions = [(r.payment.block_number, r.payment.log_index) for r in everything]
    assert positions == sorted(positions, reverse=True)
    assert counts["weekend"] == (3, 3) and counts["night"] == (1, 1) and counts["near-evidence-threshold"] == (1, 1)
    assert counts["concentration"][0] == 13 and counts["split-limit"] == (0, 0)
    night = next(r for r in everything if r.rule == "night")
    assert night.payment.vendor_name == "Hanok Table" and night.payment.department == "MOIS"
    assert night.latest is None and night.dispositions == 0 and "23:30" in night.detail
    assert night.rule_text == "paid between 23:00 and 06:00 local time"
    with snapshot(engine) as conn:
        page = cases.flag_queue(conn, cases.FlagFilter(status="any"), limit=4)
        second = cases.flag_queue(conn, cases.FlagFilter(status="any"), after=page.next_cursor, limit=4)
        back = cases.flag_queue(conn, cases.FlagFilter(status="any"), before=second.prev_cursor, limit=4)
    assert [r.key for r in back.rows] == [r.key for r in page.rows] and back.prev_cursor is None


def test_dispositions_are_recorded_with_who_and_when_and_set_the_status(engine):
    world = fill(engine)
    with snapshot(engine) as conn:
        weekend = cases.flag_queue(conn, cases.FlagFilter(rules=("weekend",))).rows
        night = cases.flag_queue(conn, cases.FlagFilter(rules=("night",))).rows[0]
    first = cases.record_disposition(
        engine, night.key, "explanation_requested", " asked the office ", "auditor.kim", AT
    )
    assert (first.disposition, first.note, first.decided_by, first.decided_at) == (
        "explanation_requested",
        "asked the office",
        "auditor.kim",
        AT,
    )
    assert first.decided_at_kst == "2030-02-01 18:30 KST"
    with engine.begin() as conn:  # inside the caller's transaction (the console logs the access with it)
        cases.record_disposition(
            conn, night.key, "justified", "client dinner, receipt seen", "auditor.lee", AT + timedelta(days=2)
        )
    cases.record_disposition(engine, weekend[0].key, "referred", "", "auditor.kim", AT)
    with snapshot(engine) as conn:
        history = cases.disposition_history(conn, night.payment.block_number, night.payment.log_index)
        open_weekends = [r.key for r in cases.flag_queue(conn, cases.FlagFilter(rules=("weekend",))).rows]
        justified = cases.flag_queue(conn, cases.FlagFilter(status="justified")).rows
        requested = cases.flag_queue(conn, cases.FlagFilter(status="explanation_requested")).rows
        decided = cases.flag_queue(conn, cases.FlagFilter(status="decided")).rows
        counts = {c.rule: (c.flags, c.open) for c in cases.flag_counts(conn)}
        mois = {c.rule: (c.flags, c.open) for c in cases.flag_counts(conn, PaymentFilter(departments=("MOIS",)))}
    assert [d.disposition for d in history] == ["explanation_requested", "justified"]
    assert [d.decided_by for d in history] == ["auditor.kim", "auditor.lee"]
    assert open_weekends == [r.key for r in weekend[1:]]
    assert [r.key for r in justified] == [night.key] and justified[0].dispositions == 2
    assert justified[0].latest.note == "client dinner, receipt seen"
    assert requested == []  # only the latest disposition is the status
    assert {r.key for r in decided} == {night.key, weekend[0].key}
    assert counts["night"] == (1, 0) and counts["weekend"] == (3, 2)
    assert mois["night"] == (1, 0) and mois["weekend"] == (0, 0)
    assert world["park"] == night.payment.payer


def test_bad_dispositions_are_refused_in_one_sentence(engine):
    fill(engine)
    with snapshot(engine) as conn:
        night = cases.flag_queue(conn, cases.FlagFilter(rules=("night",))).rows[0]
    block, log = night.payment.block_number, night.payment.log_index
    for args, message in (
        ((night.key, "forgiven", "", "a"), "unknown disposition 'forgiven'"),
        ((night.key, "justified", "", "  "), "needs the name of the auditor"),
        ((night.key, "justified", "x" * 4_001, "a"), "at most 4,000 are kept"),
        ((f"{block}-{log}-weekend", "justified", "", "a"), "has no weekend flag"),
        (("1-0-night", "justified", "", "a"), "no payment at block 1, log 0"),
        (("1-0-sunday", "justified", "", "a"), "is not a flag key"),
    ):
        with pytest.raises(ValueError, match=message):
            cases.record_disposition(engine, *args, decided_at=AT)
    assert not hasattr(cases, "update_disposition") and not hasattr(cases, "delete_disposition")


@pytest.mark.parametrize("built_by", ["migrations", "create_all"])
@pytest.mark.parametrize("backend", ["sqlite", "postgresql"])
def test_the_database_refuses_to_change_or_remove_a_disposition(backend, built_by, tmp_path, request):
    pg_url = request.getfixturevalue("pg_url") if backend == "postgresql" else None
    if built_by == "migrations":
        context = migrated_engine(backend, tmp_path, pg_url)
    elif backend == "sqlite":
        context = sqlite_engine(tmp_path / "created.sqlite")
    else:
        context = _first(postgres_engine(pg_url))
    with context as engine:
        world = fill(engine)
        with snapshot(engine) as conn:
            night = cases.flag_queue(conn, cases.FlagFilter(rules=("night",))).rows[0]
        cases.record_disposition(engine, night.key, "recovered", "200,000 KRW returned", "auditor.kim", AT)
        statements = ["UPDATE dispositions SET note = 'nothing happened'", "DELETE FROM dispositions"]
        if backend == "postgresql":
            statements.append("TRUNCATE dispositions")
        for statement in statements:
            with pytest.raises(DBAPIError, match="append-only"), engine.begin() as conn:
                conn.execute(text(statement))
        # a reorg rollback and a reset of the index leave the dispositions alone (and do not trip the triggers)
        store.rollback_to(engine, night.payment.block_number - 1, "0x" + "11" * 32)
        store.reset(engine)
        with snapshot(engine) as conn:
            (kept,) = cases.iter_dispositions(conn)
        assert (kept.note, kept.flag) == ("200,000 KRW returned", night.key)
        assert world["book"]


class _first:
    """`postgres_engine` yields (engine, url): a context manager yielding the engine only."""

    def __init__(self, context):
        self.context = context

    def __enter__(self):
        return self.context.__enter__()[0]

    def __exit__(self, *exc):
        return self.context.__exit__(*exc)


def downgrade(engine, revision: str) -> None:
    config = store.alembic_config()
    with engine.begin() as conn:
        config.attributes["connection"] = conn
        command.downgrade(config, revision)


@pytest.mark.parametrize("backend", ["sqlite", "postgresql"])
def test_migration_0004_goes_down_and_up(backend, tmp_path, request):
    pg_url = request.getfixturevalue("pg_url") if backend == "postgresql" else None
    with migrated_engine(backend, tmp_path, pg_url) as engine:
        downgrade(engine, "0003")
        with engine.connect() as conn:
            names = set(conn.dialect.get_table_names(conn))
        assert "dispositions" not in names and "payment_flags" not in names and "payments" in names
        store.upgrade(engine, "head")
        fill(engine)  # everything works again, triggers included
        with snapshot(engine) as conn:
            night = cases.flag_queue(conn, cases.FlagFilter(rules=("night",))).rows[0]
        cases.record_disposition(engine, night.key, "justified", "", "a", AT)
        with pytest.raises(DBAPIError, match="append-only"), engine.begin() as conn:
            conn.execute(text("DELETE FROM dispositions"))


def test_queue_and_dispositions_export_with_hashes(engine, tmp_path):
    fill(engine)
    with snapshot(engine) as conn:
        night = cases.flag_queue(conn, cases.FlagFilter(rules=("night",))).rows[0]
    cases.record_disposition(
        engine, night.key, "referred", 'to the "inspection" office, line 1\nline 2', "auditor.kim", AT
    )
    out = tmp_path / "cases"
    with snapshot(engine) as conn:
        written = export_views(
            conn,
            out,
            [flags_view(conn, cases.FlagFilter(status="any", rules=("night", "weekend"))), dispositions_view(conn)],
            "jsonl",
        )
    assert [(w.name, w.rows) for w in written] == [("flags", 4), ("dispositions", 1)]
    manifest = json.loads((out / "manifest.json").read_text())
    assert manifest["filters"]["flags"]["rules"] == ["night", "weekend"] and manifest["checkpoint"]["block_number"]
    flags = [json.loads(line) for line in (out / "flags.jsonl").read_text().splitlines()]
    by_key = {f["flag"]: f for f in flags}
    assert by_key[night.key]["status"] == "referred" and by_key[night.key]["decided_at"] == AT.isoformat()
    assert sum(1 for f in flags if f["status"] == "open") == 3
    (decision,) = [json.loads(line) for line in (out / "dispositions.jsonl").read_text().splitlines()]
    assert decision["note"] == 'to the "inspection" office, line 1\nline 2' and decision["flag"] == night.key

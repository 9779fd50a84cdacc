"""The derived tables (audit.derive): the flag table and the monthly cells, kept incrementally as blocks arrive,
always equal to what `audit flags` / `audit report` / `audit public` compute from every payment - after each
block, in small batches, after a reorg rollback (flags that appear because a payment went away included), a
late first enrolment, a reset, other flag settings, and with two refreshers at once. Real SQLite files and
real PostgreSQL schemas."""

from __future__ import annotations

import threading

import pytest
from alembic import command
from sqlalchemy import inspect, select
from support.audit_rows import BACKENDS, address, backend_engine, hex32, kst
from support.console_rows import Book

from deposit_token.audit import derive
from deposit_token.audit.db import casework, schema, store
from deposit_token.audit.query.common import Filters, snapshot
from deposit_token.audit.query.flags import FlagSettings, derived_flags, derived_is_current, find_flags, flags_of
from deposit_token.audit.query.overview import flows as cell_flows
from deposit_token.audit.query.overview import public_cells, spend_by_dimension
from deposit_token.audit.query.public import public_aggregates
from deposit_token.audit.query.reports import build_report, flows, spend_facts
from deposit_token.domain.categories import Category

BP, UTC_PROGRAM = 1, 3


@pytest.fixture(params=BACKENDS)
def engine(request, tmp_path):
    with backend_engine(request, tmp_path) as engine:
        yield engine


@pytest.fixture
def book(engine) -> Book:
    ledger = Book(engine)
    ledger.configure(BP, "BP-2030-MOEF")
    ledger.configure(UTC_PROGRAM, "UTC-DESK", offset=0)
    return ledger


def expected_flags(engine, settings: FlagSettings | None = None) -> dict:
    with snapshot(engine) as conn:
        return {
            (f.block_number, f.log_index, f.rule): (f.detail, f.local_time, f.payer, f.program_id)
            for f in find_flags(conn, settings or FlagSettings())
        }


def stored_flags(engine) -> dict:
    f = casework.payment_flags
    with engine.connect() as conn:
        return {
            (r.block_number, r.log_index, r.rule): (r.detail, r.local_time, r.payer, r.program_id)
            for r in conn.execute(select(f))
        }


def expected_cells(engine) -> dict:
    cells: dict = {}
    with snapshot(engine) as conn:
        for fact in spend_facts(conn):
            key = (fact.period, fact.program_id, fact.department, fact.category)
            n, amount = cells.get(key, (0, 0))
            cells[key] = (n + fact.payments, amount + fact.amount)
    return cells


def stored_cells(engine) -> dict:
    c = casework.spend_cells
    with engine.connect() as conn:
        return {
            (r.period, r.program_id, r.department, r.category): (r.payments, int(r.amount))
            for r in conn.execute(select(c))
            if r.payments
        }


def expected_payer_years(engine) -> dict:
    p = schema.payments
    years: dict = {}
    with engine.connect() as conn:
        for r in conn.execute(select(p.c.period, p.c.program_id, p.c.payer, p.c.category, p.c.vendor)):
            key = (r.period // 100, r.program_id, r.payer, r.category, r.vendor)
            years[key] = years.get(key, 0) | 1 << (r.period % 100 - 1)
    return years


def stored_payer_years(engine) -> dict:
    y = casework.payer_years
    with engine.connect() as conn:
        return {(r.year, r.program_id, r.payer, r.category, r.vendor): r.months for r in conn.execute(select(y))}


def assert_derived_current(engine) -> None:
    expected = expected_flags(engine)
    assert stored_flags(engine) == expected
    with engine.connect() as conn:
        totals = {r.rule: r.flags for r in conn.execute(select(casework.flag_totals)) if r.flags}
    assert totals == {rule: sum(1 for _, _, r in expected if r == rule) for rule in {r for _, _, r in expected}}
    assert stored_cells(engine) == expected_cells(engine)
    assert stored_payer_years(engine) == expected_payer_years(engine)
    with snapshot(engine) as conn:
        for filters in (Filters(), Filters(programs=(BP,)), Filters(since=203002, until=203003)):
            assert cell_flows(conn, filters) == flows(conn, filters)
        for filters in (Filters(), Filters(programs=(UTC_PROGRAM,)), Filters(since=203002, until=203002)):
            # `audit public` reads the cells: the very cells it sums from the payments
            assert public_aggregates(conn, filters) == public_aggregates(conn, filters, derived=False)
            # `audit report` reads the cells and counts payers: the very report it sums from the payments
            assert build_report(conn, filters, ["month"], 3) == build_report(conn, filters, ["month"], 3, derived=False)
        for filters in (  # the payers from payer_years: any range of months, within a year or across years
            Filters(),
            Filters(programs=(UTC_PROGRAM,)),
            Filters(since=203002, until=203002),
            Filters(since=203002),
            Filters(until=203002),
            Filters(programs=(BP,), since=202912, until=203001),
            Filters(since=203003, until=203112),
        ):
            assert build_report(conn, filters, top=None) == build_report(conn, filters, top=None, derived=False)
        # `audit flags` reads the queue: the very flags it computes, for any months, programs and rules
        assert derived_is_current(conn, FlagSettings())
        for filters in (
            Filters(),
            Filters(programs=(UTC_PROGRAM,)),
            Filters(since=203001, until=203001),
            Filters(programs=(BP,), since=203002),
        ):
            for rules in (None, ["concentration", "night"]):
                computed = find_flags(conn, FlagSettings(), filters, rules)
                assert derived_flags(conn, filters, rules) == computed
                assert flags_of(conn, FlagSettings(), filters, rules) == computed


def pay_scenario(book: Book) -> dict[str, str]:
    """Payments raising every rule at least once, and some raising none; returns the people and vendors."""
    kim, lee = book.enrol("kim", BP, "MOEF"), book.enrol("lee", BP, "MOEF")
    park, choi = book.enrol("park", BP, "MOIS"), book.enrol("choi", BP, "MOEF")
    han = book.enrol("han", UTC_PROGRAM, "LONDON-DESK")
    shop, cafe = book.vendor("restaurant"), book.vendor("cafe", Category.CAFE_BAKERY)
    other = book.vendor("other")
    for who in (kim, lee, park, choi):
        book.allocate(who, BP, 3_000_000, at=kst(2030, 1, 2, 9))
    book.allocate(han, UTC_PROGRAM, 500_000, at=kst(2030, 1, 2, 10))
    book.pay(kim, shop, 45_000, kst(2030, 1, 7, 12))  # nothing
    book.pay(kim, shop, 30_000, kst(2030, 1, 7, 23, 30))  # night
    book.pay(han, cafe, 5_000, kst(2030, 1, 8, 8, 30), program_id=UTC_PROGRAM, category=Category.CAFE_BAKERY, offset=0)
    book.pay(kim, shop, 300_000, kst(2030, 1, 8, 12))  # split-evidence with the next
    book.pay(kim, shop, 200_000, kst(2030, 1, 8, 13))
    book.pay(lee, shop, 600_000, kst(2030, 1, 9, 12), evidence=True)  # split-limit with the next
    book.pay(lee, shop, 500_000, kst(2030, 1, 9, 13), evidence=True)
    book.pay(lee, other, 480_000, kst(2030, 1, 10, 12))  # near-evidence-threshold
    book.pay(lee, other, 960_000, kst(2030, 1, 11, 12), evidence=True)  # near-payment-limit
    book.pay(kim, cafe, 12_000, kst(2030, 1, 12, 12), category=Category.CAFE_BAKERY)  # weekend
    book.pay(choi, shop, 70_000, kst(2030, 2, 4, 12))
    book.enrol("choi", BP, "MOIS")  # re-enrolled: later payments count for MOIS
    book.pay(choi, shop, 80_000, kst(2030, 2, 5, 12))
    for day in (4, 5, 6, 7, 8, 11):  # concentration: park's February goes to one vendor
        book.pay(park, shop, 50_000, kst(2030, 2, day, 12))
    book.pay(park, other, 20_000, kst(2030, 2, 12, 12))
    book.pay(kim, shop, 40_000, kst(2030, 3, 1, 12))  # holiday (Independence Movement Day)
    book.give_back(lee, BP, 100_000, at=kst(2030, 3, 2, 9))
    book.claw_back(park, BP, 200_000, at=kst(2030, 3, 3, 9))
    book.redeem(shop, 500_000, at=kst(2030, 3, 4, 9))
    book.sweep(han, UTC_PROGRAM, 495_000, at=kst(2030, 3, 5, 9))
    return {"kim": kim, "lee": lee, "park": park, "choi": choi, "han": han, "shop": shop, "cafe": cafe, "other": other}


def test_every_block_refreshed_gives_the_flags_and_cells_of_a_full_computation(book, engine):
    pay_scenario(book)
    first_payment = min(b for b, _, _ in expected_flags(engine))
    # follow the chain block by block from a few blocks before the first flag to the end
    for block in range(first_payment - 3, book.block + 1):
        book.move_checkpoint(block)
        derive.refresh(engine)
    assert_derived_current(engine)
    rules = {rule for _, _, rule in stored_flags(engine)}
    assert rules == {
        "night",
        "weekend",
        "holiday",
        "split-evidence",
        "split-limit",
        "near-evidence-threshold",
        "near-payment-limit",
        "concentration",
    }
    with engine.connect() as conn:
        state = derive.status(conn)
    assert state.block_number == state.checkpoint == book.block and state.behind == 0


def test_a_first_build_in_small_batches_equals_one_step(book, engine):
    pay_scenario(book)
    book.move_checkpoint()
    steps: list[int] = []
    result = derive.refresh(engine, batch=3, on_step=lambda reached, _cp: steps.append(reached))
    assert result.rebuilt and result.steps == len(steps) > 5 and steps == sorted(steps) and steps[-1] == book.block
    assert result.payments == 20
    assert_derived_current(engine)
    again = derive.refresh(engine)  # nothing new: nothing done
    assert again.steps == 0 and again.payments == 0 and not again.rebuilt


def test_public_cells_and_overview_agree_with_the_reports(book, engine):
    people = pay_scenario(book)
    for i in range(6):  # one publishable cell
        book.pay(people["lee"], people["shop"], 10_000 + i, kst(2030, 3, 4 + i, 12))
    book.move_checkpoint()
    derive.refresh(engine)
    with snapshot(engine) as conn:
        assert public_cells(conn) == public_aggregates(conn)
        assert any(not cell.suppressed for cell in public_cells(conn))
        by = spend_by_dimension(conn)
        facts = spend_facts(conn)
    assert sum(r.amount for r in by["month"]) == sum(f.amount for f in facts)
    departments = {r.key: r.amount for r in by["department"]}
    assert departments == {d: sum(f.amount for f in facts if f.department == d) for d in {f.department for f in facts}}
    # choi paid 70,000 as MOEF and 80,000 as MOIS
    assert departments["MOIS"] == 80_000 + 6 * 50_000 + 20_000
    assert [r.key for r in by["month"]] == ["2030-01", "2030-02", "2030-03"]


def test_a_rollback_is_recomputed_including_flags_that_appear_when_a_payment_goes(book, engine):
    people = pay_scenario(book)
    park, shop, other, cafe = people["park"], people["shop"], people["other"], people["cafe"]
    # March: shop 3 x 100,000, other 2 x 100,000, cafe 150,000: shop has 46 % - no concentration ...
    for day in (4, 5, 6):
        book.pay(park, shop, 100_000, kst(2030, 3, day, 12))
    for day in (7, 8):
        book.pay(park, other, 100_000, kst(2030, 3, day, 12))
    ancestor = book.block
    book.pay(park, cafe, 150_000, kst(2030, 3, 11, 12), category=Category.CAFE_BAKERY)
    book.claw_back(people["kim"], BP, 50_000, at=kst(2030, 3, 11, 13))  # the flows lose it again
    book.pay(people["kim"], shop, 20_000, kst(2030, 3, 16, 12))  # a Saturday: weekend
    book.move_checkpoint()
    derive.refresh(engine)
    assert_derived_current(engine)
    assert not any(rule == "concentration" and block > ancestor - 6 for block, _, rule in stored_flags(engine))
    # ... a reorg removes the cafe payment: shop now has 60 % of five payments
    store.rollback_to(engine, ancestor, hex32(ancestor))
    with engine.connect() as conn:
        assert derive.status(conn).block_number == ancestor
        assert not [k for k in stored_flags(engine) if k[0] > ancestor]  # the removed payments' flags went
    derive.refresh(engine)
    assert_derived_current(engine)
    assert any(rule == "concentration" and block > ancestor - 6 for block, _, rule in stored_flags(engine))
    # the new branch brings other payments at the same heights
    book.block = ancestor
    book.pay(park, other, 400_000, kst(2030, 3, 12, 12))
    book.pay(people["lee"], shop, 300_000, kst(2030, 3, 13, 1, 0))  # night
    book.move_checkpoint()
    derive.refresh(engine)
    assert_derived_current(engine)


def test_a_first_enrolment_indexed_after_payments_moves_them_to_the_department(book, engine):
    shop = book.vendor("restaurant")
    kim = book.enrol("kim", BP, "MOEF")
    from support.audit_rows import address

    ghost = address("ghost")  # paid before the index saw an enrolment (an index started late)
    book.pay(ghost, shop, 10_000, kst(2030, 1, 7, 12))
    book.pay(kim, shop, 20_000, kst(2030, 1, 7, 13))
    book.move_checkpoint()
    derive.refresh(engine)
    assert ("(not enrolled)" in {k[2] for k in stored_cells(engine)}) and stored_cells(engine) == expected_cells(engine)
    book.enrol("ghost", BP, "MOIS")
    book.move_checkpoint()
    derive.refresh(engine)
    assert stored_cells(engine) == expected_cells(engine)
    assert "(not enrolled)" not in {k[2] for k in stored_cells(engine)}


def test_the_report_counts_payers_of_every_enrolment_history_as_from_the_payments(book, engine):
    """The derived report takes a payer's department from SQL unless they were enrolled more than once: a payer
    never enrolled, one re-enrolled in the same department and one moved count as the payments say."""
    shop, cafe = book.vendor("restaurant"), book.vendor("cafe", Category.CAFE_BAKERY)
    kim, lee, choi = book.enrol("kim", BP, "MOEF"), book.enrol("lee", BP, "MOEF"), book.enrol("choi", BP, "MOEF")
    ghost = address("ghost")
    book.pay(ghost, shop, 10_000, kst(2030, 1, 7, 12))
    book.pay(kim, shop, 20_000, kst(2030, 1, 7, 13))
    book.pay(lee, cafe, 30_000, kst(2030, 1, 8, 12), category=Category.CAFE_BAKERY)
    book.pay(choi, shop, 40_000, kst(2030, 1, 9, 12))
    book.enrol("lee", BP, "MOEF")  # again, the same department
    book.enrol("choi", BP, "MOIS")  # moved: February counts for MOIS
    book.pay(lee, shop, 50_000, kst(2030, 2, 4, 12))
    book.pay(choi, shop, 60_000, kst(2030, 2, 5, 12))
    book.move_checkpoint()
    derive.refresh(engine)
    with snapshot(engine) as conn:
        assert derived_is_current(conn, FlagSettings())
        for filters in (Filters(), Filters(since=203001, until=203001), Filters(since=203002, until=203002)):
            report = build_report(conn, filters, top=None)
            assert report == build_report(conn, filters, top=None, derived=False)
        payers = {row.key: row.payers for row in build_report(conn, Filters(), ["department"]).spend}
    assert payers == {"MOEF": 3, "MOIS": 1, "(not enrolled)": 1}


def test_other_settings_or_a_reset_rebuild(book, engine):
    pay_scenario(book)
    book.move_checkpoint()
    derive.refresh(engine)
    stricter = FlagSettings(near_pct=10)
    result = derive.refresh(engine, stricter)
    assert result.rebuilt
    assert stored_flags(engine) == expected_flags(engine, stricter) != expected_flags(engine)
    store.reset(engine)
    with engine.connect() as conn:
        assert derive.status(conn).block_number is None
    assert stored_flags(engine) == {} and stored_cells(engine) == {}
    assert derive.refresh(engine).steps == 0  # nothing indexed: nothing to derive


def test_two_refreshers_at_once_count_every_payment_once(book, engine):
    people = pay_scenario(book)
    book.move_checkpoint()
    errors: list[BaseException] = []

    def run() -> None:
        try:
            for _ in range(5):
                derive.refresh(engine, batch=4)
        except BaseException as err:  # noqa: BLE001 - reported by the assertion below
            errors.append(err)

    threads = [threading.Thread(target=run) for _ in range(2)]
    for thread in threads:
        thread.start()
    for i in range(5):  # blocks keep arriving meanwhile
        book.pay(people["kim"], people["shop"], 1_000 + i, kst(2030, 4, 1 + i, 12))
        book.move_checkpoint()
    for thread in threads:
        thread.join()
    assert not errors
    derive.refresh(engine)
    assert_derived_current(engine)


def test_flags_are_computed_when_the_queue_is_not_current(book, engine):
    people = pay_scenario(book)
    book.move_checkpoint()
    derive.refresh(engine)
    stricter = FlagSettings(near_pct=10)
    with snapshot(engine) as conn:
        assert derived_is_current(conn, FlagSettings()) and not derived_is_current(conn, stricter)
        assert flags_of(conn, stricter) == find_flags(conn, stricter) != find_flags(conn)
    # a night payment indexed, the queue not refreshed yet: computed, the new flag included
    book.pay(people["lee"], people["shop"], 30_000, kst(2030, 3, 13, 1, 0))
    book.move_checkpoint()
    with snapshot(engine) as conn:
        assert not derived_is_current(conn, FlagSettings())
        computed = find_flags(conn)
        assert flags_of(conn) == computed and len(computed) == len(derived_flags(conn)) + 1
    derive.refresh(engine)
    with snapshot(engine) as conn:
        assert derived_is_current(conn, FlagSettings()) and derived_flags(conn) == computed


def test_migration_0007_fills_the_payer_years_of_a_current_database_and_goes_back(book, engine):
    pay_scenario(book)
    book.move_checkpoint()
    derive.refresh(engine)
    config = store.alembic_config()
    with engine.begin() as conn:  # a database kept from before the payer years (the downgrade drops them)
        config.attributes["connection"] = conn
        command.stamp(config, "head")  # the fixture's schema is the models' (create_all): the head's
        command.downgrade(config, "0006")
    with engine.connect() as conn:
        assert "payer_years" not in inspect(conn).get_table_names()
    store.upgrade(engine, "head")  # filled from the payments the derived tables reflect: current at once
    assert_derived_current(engine)
    book.pay(book.enrol("new", BP, "MOEF"), book.vendor("new-shop"), 10_000, kst(2030, 4, 2, 12))
    book.move_checkpoint()
    derive.refresh(engine)
    assert_derived_current(engine)

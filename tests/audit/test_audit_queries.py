"""The auditors' queries (report, flags, public, export) on real databases: a SQLite file and a PostgreSQL
schema, filled with indexer-shaped rows. Each flag rule has positive and negative cases."""

from __future__ import annotations

import csv
import json
from pathlib import Path

import pytest
from support.audit_rows import BACKENDS, Ledger, address, backend_engine, kst, sqlite_engine

from deposit_token.audit.query.common import AuditDatabaseError, Filters, open_audit_database, snapshot
from deposit_token.audit.query.export import export_all
from deposit_token.audit.query.flags import RULES, FlagSettings, find_flags
from deposit_token.audit.query.public import public_aggregates
from deposit_token.audit.query.reports import build_report, flows, spend_facts
from deposit_token.domain.categories import Category

BP = 1
EV = 2


@pytest.fixture(params=BACKENDS)
def engine(request, tmp_path):
    with backend_engine(request, tmp_path) as engine:
        yield engine


@pytest.fixture
def ledger(engine) -> Ledger:
    book = Ledger(engine)
    book.program(BP, "BP-2030-MOEF")
    book.program(EV, "EV-2030-MOE", limit=50_000_000)
    return book


def flags_of(engine, rule: str, **settings) -> list:
    with snapshot(engine) as conn:
        return find_flags(conn, FlagSettings(**settings), rules=[rule])


def flagged(engine, rule: str, **settings) -> set[str]:
    return {f.tx_hash for f in flags_of(engine, rule, **settings)}


# --- flags: one rule at a time, positive and negative -------------------------------------------------------


def test_night(ledger, engine):
    kim, bar = ledger.enrol("kim", BP, "MOEF"), ledger.vendor("restaurant")
    late = ledger.pay(kim, bar, 10_000, kst(2030, 1, 7, 23, 0))  # 23:00 sharp: in
    early = ledger.pay(kim, bar, 10_000, kst(2030, 1, 8, 5, 59))  # 05:59: in
    evening = ledger.pay(kim, bar, 10_000, kst(2030, 1, 8, 22, 59))  # 22:59: out
    morning = ledger.pay(kim, bar, 10_000, kst(2030, 1, 9, 6, 0))  # 06:00: out
    hits = flags_of(engine, "night")
    assert {f.tx_hash for f in hits} == {late["tx_hash"], early["tx_hash"]}
    assert evening["tx_hash"] not in {f.tx_hash for f in hits} and morning["tx_hash"] not in {f.tx_hash for f in hits}
    first = hits[0]
    assert first.rule == "night" and first.local_time == "2030-01-07T23:00:00+09:00" and "23:00" in first.detail
    assert (first.block_number, first.log_index, first.payer, first.amount) == (late["block_number"], 0, kim, 10_000)


def test_night_uses_the_programs_time_zone(ledger, engine):
    ledger.program(3, "UTC-PROGRAM", offset=0)
    lee, cafe = ledger.enrol("lee", 3, "LONDON-DESK"), ledger.vendor("cafe", Category.CAFE_BAKERY)
    kim = ledger.enrol("kim", BP, "MOEF")
    # 23:30 UTC: night in London, 08:30 the next morning in Seoul.
    utc_night = ledger.pay(lee, cafe, 5_000, kst(2030, 1, 8, 8, 30), program_id=3, offset=0)
    kst_morning = ledger.pay(kim, cafe, 5_000, kst(2030, 1, 8, 8, 30))
    assert flagged(engine, "night") == {utc_night["tx_hash"]}
    assert kst_morning["tx_hash"] not in flagged(engine, "night")
    assert flags_of(engine, "night")[0].local_time == "2030-01-07T23:30:00+00:00"


def test_weekend(ledger, engine):
    kim, shop = ledger.enrol("kim", BP, "MOEF"), ledger.vendor("restaurant")
    saturday = ledger.pay(kim, shop, 30_000, kst(2030, 1, 12, 12))
    sunday = ledger.pay(kim, shop, 30_000, kst(2030, 1, 13, 12))
    ledger.pay(kim, shop, 30_000, kst(2030, 1, 11, 12))  # Friday
    ledger.pay(kim, shop, 30_000, kst(2030, 1, 14, 12))  # Monday
    # Friday 23:30 UTC is Saturday 08:30 in Seoul: the local date decides.
    saturday_kst = ledger.pay(kim, shop, 30_000, kst(2030, 1, 19, 8, 30))
    assert flagged(engine, "weekend") == {saturday["tx_hash"], sunday["tx_hash"], saturday_kst["tx_hash"]}
    assert "Saturday" in flags_of(engine, "weekend")[0].detail


def test_holiday(ledger, engine):
    kim, shop = ledger.enrol("kim", BP, "MOEF"), ledger.vendor("restaurant")
    independence = ledger.pay(kim, shop, 40_000, kst(2030, 3, 1, 12))  # Friday, Independence Movement Day
    after_midnight = ledger.pay(kim, shop, 40_000, kst(2030, 5, 6, 0, 30))  # alternative holiday (Children's Day)
    ledger.pay(kim, shop, 40_000, kst(2030, 3, 4, 12))  # an ordinary Monday
    ledger.pay(kim, shop, 40_000, kst(2030, 2, 28, 23, 59))  # the evening before the holiday
    hits = flags_of(engine, "holiday")
    assert {f.tx_hash for f in hits} == {independence["tx_hash"], after_midnight["tx_hash"]}
    assert "Independence Movement Day" in hits[0].detail


def test_split_evidence(ledger, engine):
    kim, lee = ledger.enrol("kim", BP, "MOEF"), ledger.enrol("lee", BP, "MOEF")
    shop, other = ledger.vendor("restaurant"), ledger.vendor("other")
    a = ledger.pay(kim, shop, 300_000, kst(2030, 1, 7, 12))
    b = ledger.pay(kim, shop, 200_000, kst(2030, 1, 7, 12, 5))  # 500,000 together: at the threshold
    # negatives: below in total; other vendor; other day; other payer; one payment at the threshold with evidence
    ledger.pay(kim, shop, 300_000, kst(2030, 1, 8, 12))
    ledger.pay(kim, shop, 150_000, kst(2030, 1, 8, 13))
    ledger.pay(kim, shop, 300_000, kst(2030, 1, 9, 12))
    ledger.pay(kim, other, 300_000, kst(2030, 1, 9, 13))
    ledger.pay(kim, shop, 300_000, kst(2030, 1, 10, 22))
    ledger.pay(kim, shop, 300_000, kst(2030, 1, 11, 7))
    ledger.pay(lee, shop, 300_000, kst(2030, 1, 14, 12))
    ledger.pay(kim, shop, 300_000, kst(2030, 1, 14, 12, 1))
    ledger.pay(kim, shop, 600_000, kst(2030, 1, 15, 12), evidence=True)
    ledger.pay(kim, shop, 100_000, kst(2030, 1, 15, 13))
    hits = flags_of(engine, "split-evidence")
    assert {f.tx_hash for f in hits} == {a["tx_hash"], b["tx_hash"]}
    assert "2 payments" in hits[0].detail and "500,000 KRW" in hits[0].detail


def test_split_evidence_uses_the_threshold_in_force(ledger, engine):
    kim, shop = ledger.enrol("kim", BP, "MOEF"), ledger.vendor("restaurant")
    ledger.pay(kim, shop, 150_000, kst(2030, 1, 7, 10))
    ledger.pay(kim, shop, 150_000, kst(2030, 1, 7, 11))  # 300,000 < 500,000: no
    ledger.program(BP, "BP-2030-MOEF", version=2, threshold=300_000, at=kst(2030, 1, 8, 0))
    c = ledger.pay(kim, shop, 150_000, kst(2030, 1, 8, 10))
    d = ledger.pay(kim, shop, 150_000, kst(2030, 1, 8, 11))  # 300,000 >= the new 300,000 threshold
    assert flagged(engine, "split-evidence") == {c["tx_hash"], d["tx_hash"]}


def test_split_limit(ledger, engine):
    kim, shop = ledger.enrol("kim", BP, "MOEF"), ledger.vendor("restaurant")
    a = ledger.pay(kim, shop, 600_000, kst(2030, 1, 7, 12), evidence=True)
    b = ledger.pay(kim, shop, 500_000, kst(2030, 1, 7, 12, 10), evidence=True)  # 1,100,000 > 1,000,000
    ledger.pay(kim, shop, 600_000, kst(2030, 1, 8, 12), evidence=True)
    ledger.pay(kim, shop, 400_000, kst(2030, 1, 8, 13))  # exactly 1,000,000: within the limit
    ledger.pay(kim, shop, 1_000_000, kst(2030, 1, 9, 12), evidence=True)  # one payment at the limit
    assert flagged(engine, "split-limit") == {a["tx_hash"], b["tx_hash"]}


def test_near_evidence_threshold(ledger, engine):
    kim, shop = ledger.enrol("kim", BP, "MOEF"), ledger.vendor("restaurant")
    lowest = ledger.pay(kim, shop, 475_000, kst(2030, 1, 7, 10))  # 95% of 500,000
    highest = ledger.pay(kim, shop, 499_999, kst(2030, 1, 8, 10))
    ledger.pay(kim, shop, 474_999, kst(2030, 1, 9, 10))  # below the band
    ledger.pay(kim, shop, 480_000, kst(2030, 1, 10, 10), evidence=True)  # evidence given anyway
    ledger.pay(kim, shop, 500_000, kst(2030, 1, 11, 10), evidence=True)  # at the threshold (evidence required)
    assert flagged(engine, "near-evidence-threshold") == {lowest["tx_hash"], highest["tx_hash"]}
    # a wider band catches more
    assert len(flagged(engine, "near-evidence-threshold", near_pct=10)) == 3


def test_near_payment_limit(ledger, engine):
    kim, shop = ledger.enrol("kim", BP, "MOEF"), ledger.vendor("restaurant")
    ev, installer = ledger.enrol("ev-biz", EV, "EV-BIZ"), ledger.vendor("installer", Category.EV_CHARGER_INSTALLER)
    at_limit = ledger.pay(kim, shop, 1_000_000, kst(2030, 1, 7, 10), evidence=True)
    in_band = ledger.pay(kim, shop, 950_000, kst(2030, 1, 8, 10), evidence=True)
    ledger.pay(kim, shop, 949_999, kst(2030, 1, 9, 10), evidence=True)
    ledger.pay(ev, installer, 1_000_000, kst(2030, 1, 9, 11), program_id=EV, evidence=True)  # EV limit is 50M
    near_ev = ledger.pay(ev, installer, 48_000_000, kst(2030, 1, 10, 11), program_id=EV, evidence=True)
    assert flagged(engine, "near-payment-limit") == {at_limit["tx_hash"], in_band["tx_hash"], near_ev["tx_hash"]}


def test_programs_without_limits_are_not_checked(ledger, engine):
    ledger.program(4, "NO-LIMITS", limit=2**40 - 1, threshold=2**40 - 1)
    who, shop = ledger.enrol("x", 4, "X"), ledger.vendor("restaurant")
    ledger.pay(who, shop, 2**40 - 2, kst(2030, 1, 7, 10), program_id=4)
    ledger.pay(who, shop, 2**40 - 3, kst(2030, 1, 7, 11), program_id=4)
    for rule in ("near-payment-limit", "near-evidence-threshold", "split-limit", "split-evidence"):
        assert flagged(engine, rule) == set(), rule


def test_concentration(ledger, engine):
    kim, lee = ledger.enrol("kim", BP, "MOEF"), ledger.enrol("lee", BP, "MOEF")
    shop, cafe, deli = ledger.vendor("restaurant"), ledger.vendor("cafe", Category.CAFE_BAKERY), ledger.vendor("deli")
    # kim, January: 5 payments, the restaurant takes 300,000 of 500,000 (60%)
    hot = [ledger.pay(kim, shop, 100_000, kst(2030, 1, d, 12)) for d in (7, 8, 9)]
    ledger.pay(kim, cafe, 100_000, kst(2030, 1, 10, 12))
    ledger.pay(kim, deli, 100_000, kst(2030, 1, 11, 12))
    # kim, February: only 4 payments, all at the restaurant
    for d in (4, 5, 6, 7):
        ledger.pay(kim, shop, 100_000, kst(2030, 2, d, 12))
    # lee, January: 6 payments spread over three vendors (2 each: 33%)
    for d, v in zip((7, 8, 9, 10, 11, 14), (shop, cafe, deli) * 2):
        ledger.pay(lee, v, 50_000, kst(2030, 1, d, 13))
    hits = flags_of(engine, "concentration")
    assert {f.tx_hash for f in hits} == {p["tx_hash"] for p in hot}
    assert "60.0%" in hits[0].detail and "3 of 5 payments" in hits[0].detail and "2030-01" in hits[0].detail
    # stricter share: none; fewer payments needed: February counts too
    assert flagged(engine, "concentration", concentration_share_pct=61) == set()
    assert len(flagged(engine, "concentration", concentration_min_payments=4)) == 3 + 4


def test_every_flag_names_payment_and_rule_in_chain_order(ledger, engine):
    kim, shop = ledger.enrol("kim", BP, "MOEF"), ledger.vendor("restaurant")
    one = ledger.pay(kim, shop, 480_000, kst(2030, 3, 2, 23, 30))  # Saturday night, no evidence, near threshold
    two = ledger.pay(kim, shop, 20_000, kst(2030, 3, 2, 23, 40))  # same day: 500,000 together
    with snapshot(engine) as conn:
        hits = find_flags(conn)
    assert [(f.tx_hash, f.rule) for f in hits] == [
        (one["tx_hash"], "night"),
        (one["tx_hash"], "weekend"),
        (one["tx_hash"], "split-evidence"),
        (one["tx_hash"], "near-evidence-threshold"),
        (two["tx_hash"], "night"),
        (two["tx_hash"], "weekend"),
        (two["tx_hash"], "split-evidence"),
    ]
    assert all(f.rule in RULES and f.tx_hash.startswith("0x") and len(f.tx_hash) == 66 for f in hits)
    with snapshot(engine) as conn:
        with pytest.raises(ValueError, match="unknown flag rule"):
            find_flags(conn, rules=["nightly"])
        # filters: other months see nothing
        assert find_flags(conn, filters=Filters(since=203004)) == []


# --- report --------------------------------------------------------------------------------------------------


def _spend(report, dimension):
    return {r.key: r for r in report.spend if r.dimension == dimension}


def test_report(ledger, engine):
    kim, lee = ledger.enrol("kim", BP, "MOEF-BUDGET"), ledger.enrol("lee", BP, "MOEF-TAX")
    ev = ledger.enrol("ev-biz", EV, "EV-BIZ")
    shop = ledger.vendor("restaurant", name="Hanok Table")
    cafe = ledger.vendor("cafe", Category.CAFE_BAKERY, name="Bean Brothers")
    installer = ledger.vendor("installer", Category.EV_CHARGER_INSTALLER, name="ChargeUp Install")
    for who in (kim, lee):
        ledger.allocate(who, BP, 3_000_000)
    ledger.allocate(ev, EV, 100_000_000)
    ledger.pay(kim, shop, 120_000, kst(2030, 1, 7, 12))
    ledger.pay(kim, cafe, 30_000, kst(2030, 1, 8, 15), category=Category.CAFE_BAKERY)
    ledger.pay(lee, shop, 200_000, kst(2030, 2, 4, 12))
    ledger.pay(
        ev,
        installer,
        40_000_000,
        kst(2030, 2, 5, 11),
        program_id=EV,
        category=Category.EV_CHARGER_INSTALLER,
        evidence=True,
    )
    # kim moves to another department: later payments count there
    ledger.enrol("kim", BP, "MOEF-AUDIT", at=kst(2030, 2, 10, 9))
    ledger.pay(kim, shop, 50_000, kst(2030, 2, 11, 12))
    ledger.give_back(lee, BP, 1_000_000)
    ledger.claw_back(kim, BP, 500_000)
    ledger.sweep(ev, EV, 60_000_000)
    ledger.redeem(shop, 300_000)
    ledger.redeem(installer, 40_000_000)
    with snapshot(engine) as conn:
        report = build_report(conn)
        january = build_report(conn, Filters(until=203001))
        bp_only = build_report(conn, Filters(programs=(BP,)))

    dept = _spend(report, "department")
    assert {k: (r.payments, r.amount, r.payers) for k, r in dept.items()} == {
        "MOEF-BUDGET": (2, 150_000, 1),
        "MOEF-TAX": (1, 200_000, 1),
        "EV-BIZ": (1, 40_000_000, 1),
        "MOEF-AUDIT": (1, 50_000, 1),
    }
    assert next(r.key for r in report.spend if r.dimension == "department") == "EV-BIZ"  # largest first
    program = _spend(report, "program")
    assert (program["1"].label, program["1"].amount, program["1"].payers) == ("BP-2030-MOEF", 400_000, 2)
    assert program["2"].amount == 40_000_000
    category = _spend(report, "category")
    assert category["1"].label == "RESTAURANT" and category["1"].amount == 370_000
    assert category["2"].label == "CAFE_BAKERY" and category["2"].amount == 30_000
    vendor = _spend(report, "vendor")
    assert vendor[shop].label == "Hanok Table" and (vendor[shop].payments, vendor[shop].payers) == (3, 2)
    month = _spend(report, "month")
    assert list(month) == ["2030-01", "2030-02"] and month["2030-01"].amount == 150_000
    assert sum(r.share_pct for r in dept.values()) == pytest.approx(100, abs=0.05)

    flows_by = {r.program_id: r for r in report.flows}
    bp, evp, total = flows_by[BP], flows_by[EV], flows_by[None]
    assert (bp.allocated, bp.spent, bp.returned, bp.clawed_back, bp.swept) == (
        6_000_000,
        400_000,
        1_000_000,
        500_000,
        0,
    )
    assert bp.unspent == 6_000_000 - 400_000 - 1_000_000 - 500_000 and bp.redeemed is None
    assert (evp.allocated, evp.spent, evp.swept, evp.unspent) == (100_000_000, 40_000_000, 60_000_000, 0)
    assert (total.allocated, total.spent, total.redeemed) == (106_000_000, 40_400_000, 40_300_000)
    assert total.program == "all programs" and evp.spent_pct == 40.0

    top = report.vendors
    assert [(v.rank, v.vendor, v.name, v.received, v.redeemed) for v in top] == [
        (1, installer, "ChargeUp Install", 40_000_000, 40_000_000),
        (2, shop, "Hanok Table", 370_000, 300_000),
        (3, cafe, "Bean Brothers", 30_000, 0),
    ]

    assert {r.key for r in january.spend if r.dimension == "month"} == {"2030-01"}
    assert sum(r.amount for r in january.spend if r.dimension == "program") == 150_000
    assert {r.program_id for r in bp_only.flows} == {BP, None}
    assert bp_only.flows[-1].redeemed is None  # redemptions carry no program
    assert [v.vendor for v in bp_only.vendors] == [shop, cafe]


def test_flows_month_filter_uses_the_program_time_zone(ledger, engine):
    kim = ledger.enrol("kim", BP, "MOEF")
    ledger.allocate(kim, BP, 1_000, at=kst(2030, 1, 31, 23, 30))  # January in Seoul (14:30 UTC)
    ledger.allocate(kim, BP, 2_000, at=kst(2030, 2, 1, 0, 30))  # February in Seoul, still January in UTC
    with snapshot(engine) as conn:
        assert flows(conn, Filters(until=203001))[0].allocated == 1_000
        assert flows(conn, Filters(since=203002))[0].allocated == 2_000


# --- public --------------------------------------------------------------------------------------------------


def test_public_suppresses_small_cells_and_shows_no_address(ledger, engine):
    people = [ledger.enrol(f"official{i}", BP, "MOEF-BUDGET") for i in range(3)]
    tax = ledger.enrol("tax", BP, "MOEF-TAX")
    shop, cafe = ledger.vendor("restaurant"), ledger.vendor("cafe", Category.CAFE_BAKERY)
    for i in range(5):  # 5 payments: published
        ledger.pay(people[i % 3], shop, 10_000 * (i + 1), kst(2030, 1, 7 + i, 12))
    for i in range(4):  # 4 payments: suppressed
        ledger.pay(people[i % 3], cafe, 5_000, kst(2030, 1, 7 + i, 15), category=Category.CAFE_BAKERY)
    ledger.pay(tax, shop, 77_000, kst(2030, 1, 9, 12))  # 1 payment: suppressed
    with snapshot(engine) as conn:
        cells = public_aggregates(conn)
        with pytest.raises(ValueError, match="at least 5"):
            public_aggregates(conn, min_count=4)
        stricter = public_aggregates(conn, min_count=6)
    by_key = {(c.department, c.category, c.month): c for c in cells}
    assert by_key[("MOEF-BUDGET", "RESTAURANT", "2030-01")].payments == 5
    assert by_key[("MOEF-BUDGET", "RESTAURANT", "2030-01")].amount == 150_000
    cafe_cell = by_key[("MOEF-BUDGET", "CAFE_BAKERY", "2030-01")]
    assert (cafe_cell.payments, cafe_cell.amount, cafe_cell.suppressed) == (None, None, True)
    assert by_key[("MOEF-TAX", "RESTAURANT", "2030-01")].suppressed
    assert all(c.suppressed for c in stricter)
    text = json.dumps([c.__dict__ for c in cells])
    assert "0x" not in text and "77000" not in text and "20000" not in text


# --- export --------------------------------------------------------------------------------------------------


def test_export_every_table(ledger, engine, tmp_path):
    kim, shop = ledger.enrol("kim", BP, "MOEF"), ledger.vendor("restaurant", name='Kim\'s "Table", Seoul')
    ledger.pay(kim, shop, 120_000, kst(2030, 1, 7, 12))
    ledger.pay(kim, shop, 80_000, kst(2030, 1, 8, 12), evidence=True)
    unlimited = 2**256 - 1
    ledger.approve(kim, address("router"), unlimited)
    ledger.checkpoint()
    out = tmp_path / "csv"
    with snapshot(engine) as conn:
        written = {t.name: t for t in export_all(conn, out, "csv")}
    from deposit_token.audit.db import schema

    assert set(written) == {t.name for t in schema.metadata.sorted_tables}
    assert (out / "manifest.json").exists() and not list(out.glob(".*.tmp"))
    manifest = json.loads((out / "manifest.json").read_text())
    assert manifest["checkpoint"]["block_number"] == ledger.block
    assert {t["name"]: t["rows"] for t in manifest["tables"]}["payments"] == 2
    with open(out / "payments.csv", newline="") as f:
        rows = list(csv.DictReader(f))
    assert [int(r["amount"]) for r in rows] == [120_000, 80_000]  # chain order, exact integers
    assert rows[0]["payer"] == kim and rows[0]["tx_hash"].startswith("0x")
    with open(out / "approvals.csv", newline="") as f:
        assert int(next(csv.DictReader(f))["amount"]) == unlimited
    with open(out / "vendor_registrations.csv", newline="") as f:
        assert next(csv.DictReader(f))["name"] == 'Kim\'s "Table", Seoul'

    jl = tmp_path / "jsonl"
    with snapshot(engine) as conn:
        export_all(conn, jl, "jsonl", tables=["payments", "approvals"])
        with pytest.raises(ValueError, match="already holds an export"):
            export_all(conn, jl, "jsonl", tables=["payments"])
        export_all(conn, jl, "jsonl", tables=["payments"], overwrite=True)
        with pytest.raises(ValueError, match="no table"):
            export_all(conn, tmp_path / "x", "jsonl", tables=["nope"])
        with pytest.raises(ValueError, match="unknown export format"):
            export_all(conn, tmp_path / "y", "xml")
    lines = [json.loads(line) for line in (jl / "payments.jsonl").read_text().splitlines()]
    assert [line["amount"] for line in lines] == [120_000, 80_000] and isinstance(lines[0]["amount"], int)
    assert json.loads((jl / "approvals.jsonl").read_text())["amount"] == unlimited


# --- opening -------------------------------------------------------------------------------------------------


def test_open_audit_database_explains(tmp_path):
    with pytest.raises(AuditDatabaseError, match="no audit database at"):
        open_audit_database(str(tmp_path / "missing.sqlite"))
    (tmp_path / "empty.sqlite").write_bytes(b"")
    with pytest.raises(AuditDatabaseError, match="no audit index"):
        open_audit_database(str(tmp_path / "empty.sqlite"))
    with pytest.raises(AuditDatabaseError, match="unsupported database"):
        open_audit_database("mysql://x@localhost/db")
    with sqlite_engine(tmp_path / "ok.sqlite") as created:  # an indexed (if empty) database
        assert created.dialect.name == "sqlite"
    engine = open_audit_database(str(tmp_path / "ok.sqlite"))
    with snapshot(engine) as conn:
        assert spend_facts(conn) == []
    engine.dispose()
    Path(tmp_path / "ok.sqlite").unlink()

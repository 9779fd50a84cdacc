"""The console's payment pages and participants (query.payments, query.participants) on real SQLite files and
PostgreSQL schemas: every filter, keyset pages that neither skip nor repeat while payments arrive, a payment in
full (rules in force at its block, caps, the redemption that settled it), a vendor, an official against the
caps, a program's rule history, and filtered exports with manifest hashes."""

from __future__ import annotations

import csv
import hashlib
import json

import pytest
from support.audit_rows import BACKENDS, address, backend_engine, kst
from support.console_rows import Book

from deposit_token.audit import derive
from deposit_token.audit.query.common import snapshot
from deposit_token.audit.query.export import export_payments
from deposit_token.audit.query.lookups import period_ranges, version_known
from deposit_token.audit.query.participants import (
    filter_choices,
    official_spending,
    program_history,
    vendor_activity,
)
from deposit_token.audit.query.payments import (
    ANY_FLAG,
    PAYMENT_VALUES,
    PaymentFilter,
    count_payments,
    get_payment,
    iter_payments,
    list_payments,
    parse_payment_key,
    payment_totals,
    stream_payment_values,
)
from deposit_token.domain.categories import Category
from deposit_token.domain.inputs import InputError
from deposit_token.domain.rules import NO_CAP, pack_hours

BP, EV = 1, 2
RESTAURANT, CAFE = int(Category.RESTAURANT), int(Category.CAFE_BAKERY)


@pytest.fixture(params=BACKENDS)
def engine(request, tmp_path):
    with backend_engine(request, tmp_path) as engine:
        yield engine


@pytest.fixture
def world(engine) -> dict:
    """Two programs, four officials (one re-enrolled), three vendors, 40 payments over three months, a program
    update, a cap override, a pause, redemptions; derived tables refreshed."""
    book = Book(engine)
    book.configure(BP, "BP-2030-MOEF", caps={RESTAURANT: 2_000_000, CAFE: 300_000})
    book.configure(EV, "EV-2030-MOE", limit=50_000_000, caps={int(Category.EV_CHARGER_INSTALLER): NO_CAP})
    kim, lee = book.enrol("kim", BP, "MOEF"), book.enrol("lee", BP, "MOEF")
    park, choi = book.enrol("park", BP, "MOIS"), book.enrol("choi", BP, "MOEF")
    biz = book.enrol("biz", EV, "EV-BIZ")
    shop = book.vendor("restaurant", name="Hanok Table")
    cafe = book.vendor("cafe", Category.CAFE_BAKERY, name="Bean Brothers")
    installer = book.vendor("installer", Category.EV_CHARGER_INSTALLER, name="ChargeUp Install")
    book.allocate(kim, BP, 3_000_000)
    pays = []
    for i in range(10):  # January: kim and lee at the restaurant
        pays.append(book.pay(kim if i % 2 else lee, shop, 10_000 * (i + 1), kst(2030, 1, 7 + i, 12), receipt=1000 + i))
    pays.append(book.pay(kim, cafe, 12_000, kst(2030, 1, 12, 12), category=Category.CAFE_BAKERY))  # Saturday
    book.override(kim, CAFE, 500_000)
    update = book.configure(BP, "BP-2030-MOEF", version=2, limit=800_000, caps={RESTAURANT: 1_500_000, CAFE: 300_000})
    book.pause(BP)
    book.pause(BP, False)
    for i in range(10):  # February: choi, re-enrolled half-way, and park
        if i == 5:
            book.enrol("choi", BP, "MOIS")
        pays.append(book.pay(choi, shop, 20_000 + i, kst(2030, 2, 4 + i, 12)))
    for i in range(5):
        pays.append(book.pay(park, cafe, 30_000 + i, kst(2030, 2, 4 + i, 15), category=Category.CAFE_BAKERY))
    pays.append(book.pay(kim, shop, 480_000, kst(2030, 2, 20, 12)))  # near the evidence threshold
    for i in range(13):  # March
        pays.append(book.pay(kim, shop, 1_000 + i, kst(2030, 3, 4 + i, 10)))
    pays.append(
        book.pay(
            biz,
            installer,
            20_000_000,
            kst(2030, 3, 5, 11),
            program_id=EV,
            category=Category.EV_CHARGER_INSTALLER,
            evidence=True,
        )
    )
    book.redeem_as(shop, 100_000, "KB-2030-01")  # covers lee's 10,000 + kim's 20,000 + lee's 30,000 + ...
    book.redeem_as(shop, 2_000_000, "KB-2030-02")
    book.suspend(cafe)
    book.move_checkpoint()
    derive.refresh(engine)
    return {
        "book": book,
        "pays": pays,
        "update": update,
        "kim": kim,
        "lee": lee,
        "park": park,
        "choi": choi,
        "biz": biz,
        "shop": shop,
        "cafe": cafe,
        "installer": installer,
    }


def keys(page) -> list[str]:
    return [row.key for row in page.rows]


def all_rows(engine, filt: PaymentFilter) -> list:
    with snapshot(engine) as conn:
        return list(iter_payments(conn, filt, batch=7))


def _values(row) -> tuple:
    values = {**row.__dict__, "flags": ";".join(row.flags)}
    return tuple(values[c] for c in PAYMENT_VALUES)


def pay_key(row: dict) -> str:
    return f"{row['block_number']}-{row['log_index']}"


# --- filters and pages ----------------------------------------------------------------------------------------


def test_the_list_shows_what_a_row_needs_newest_first(engine, world):
    with snapshot(engine) as conn:
        page = list_payments(conn, limit=5)
    assert len(page.rows) == 5 and page.prev_cursor is None and page.next_cursor == page.rows[-1].key
    positions = [parse_payment_key(k) for k in keys(page)]
    assert positions == sorted(positions, reverse=True)
    newest = page.rows[0]
    assert (newest.vendor_name, newest.category_name, newest.amount) == (
        "ChargeUp Install",
        "EV_CHARGER_INSTALLER",
        20_000_000,
    )
    assert (newest.department, newest.program, newest.time_kst) == ("EV-BIZ", "EV-2030-MOE", "2030-03-05 11:00 KST")
    assert newest.has_evidence and newest.receipt == "-" and newest.period == "2030-03"
    with snapshot(engine) as conn:
        first_jan = list_payments(conn, PaymentFilter(since=203001, until=203001), limit=50).rows[-1]
    assert (first_jan.receipt, first_jan.amount, first_jan.department) == ("1000", 10_000, "MOEF")


@pytest.mark.parametrize(
    ("filt", "expected"),
    [
        (lambda w: PaymentFilter(programs=(EV,)), lambda w, r: r.program_id == EV),
        (lambda w: PaymentFilter(vendors=(w["cafe"],)), lambda w, r: r.vendor == w["cafe"]),
        (lambda w: PaymentFilter(payers=(w["kim"],)), lambda w, r: r.payer == w["kim"]),
        (lambda w: PaymentFilter(categories=(CAFE,)), lambda w, r: r.category == CAFE),
        (lambda w: PaymentFilter(since=203002, until=203002), lambda w, r: r.period == "2030-02"),
        (lambda w: PaymentFilter(since=203002), lambda w, r: r.period >= "2030-02"),
        (lambda w: PaymentFilter(min_amount=20_000, max_amount=30_000), lambda w, r: 20_000 <= r.amount <= 30_000),
        (lambda w: PaymentFilter(departments=("MOIS",)), lambda w, r: r.department == "MOIS"),
        (lambda w: PaymentFilter(departments=("MOEF", "EV-BIZ")), lambda w, r: r.department in ("MOEF", "EV-BIZ")),
        (lambda w: PaymentFilter(flags=("weekend",)), lambda w, r: "weekend" in r.flags),
        (lambda w: PaymentFilter(flags=(ANY_FLAG,)), lambda w, r: bool(r.flags)),
        (
            lambda w: PaymentFilter(departments=("MOIS",), vendors=(w["shop"],), since=203002, until=203002),
            lambda w, r: r.department == "MOIS" and r.vendor == w["shop"] and r.period == "2030-02",
        ),
    ],
)
def test_each_filter_keeps_exactly_its_payments(engine, world, filt, expected):
    everything = all_rows(engine, PaymentFilter())
    assert len(everything) == len(world["pays"])
    chosen = filt(world)
    wanted = [r.key for r in everything if expected(world, r)]
    assert wanted, "the case must select something"
    listed = all_rows(engine, chosen)
    assert [r.key for r in listed] == wanted
    with snapshot(engine) as conn:
        # the export's streamed read gives exactly the pages' rows
        streamed = list(stream_payment_values(conn, chosen))
        assert streamed == [_values(r) for r in listed]
        assert count_payments(conn, chosen).payments == len(wanted)
        totals = payment_totals(conn, chosen)
    assert (totals.payments, totals.amount) == (len(wanted), sum(r.amount for r in everything if expected(world, r)))


def test_departments_follow_re_enrolment(engine, world):
    choi = [r for r in all_rows(engine, PaymentFilter(payers=(world["choi"],)))]
    assert [r.department for r in reversed(choi)] == ["MOEF"] * 5 + ["MOIS"] * 5
    moef_choi = all_rows(engine, PaymentFilter(payers=(world["choi"],), departments=("MOEF",)))
    assert [r.amount for r in reversed(moef_choi)] == [20_000 + i for i in range(5)]
    assert all_rows(engine, PaymentFilter(departments=("NOBODY",))) == []


def test_pages_neither_skip_nor_repeat_and_go_back(engine, world):
    filt = PaymentFilter(programs=(BP,))
    expected = [r.key for r in all_rows(engine, filt)]
    seen, pages, after = [], [], None
    with snapshot(engine) as conn:
        while True:
            page = list_payments(conn, filt, after=after, limit=6)
            pages.append(page)
            seen += keys(page)
            if page.next_cursor is None:
                break
            after = page.next_cursor
        assert seen == expected
        # back from the third page to the second
        back = list_payments(conn, filt, before=pages[2].prev_cursor, limit=6)
        assert keys(back) == keys(pages[1]) and back.prev_cursor == pages[1].rows[0].key
        first = list_payments(conn, filt, before=pages[1].prev_cursor, limit=6)
        assert keys(first) == keys(pages[0]) and first.prev_cursor is None
    # new payments on top shift nothing: the next page after a cursor is the same
    book = world["book"]
    book.pay(world["kim"], world["shop"], 5_000, kst(2030, 3, 29, 12))
    book.move_checkpoint()
    with snapshot(engine) as conn:
        assert keys(list_payments(conn, filt, after=pages[0].next_cursor, limit=6)) == keys(pages[1])
        newer = list_payments(conn, filt, before=pages[0].rows[0].key, limit=6)
    assert len(newer.rows) == 1 and newer.rows[0].amount == 5_000


def test_bad_filters_and_keys_are_one_sentence(engine, world):
    for params, message in (
        ({"flag": "nightly"}, "unknown flag rule 'nightly'"),
        ({"since": "2030-03", "until": "2030-01"}, "the months run backwards"),
        ({"month": "2030-13"}, "is not a month"),
        ({"min_amount": "10,00"}, "min amount"),
        ({"min_amount": "500", "max_amount": "100"}, "is above the maximum"),
        ({"vendor": "0x1234"}, "vendor '0x1234' is malformed"),
        ({"program": "x"}, "is not a program id"),
        ({"category": "CASINO"}, "unknown merchant category"),
        ({"colour": "red"}, "unknown filter 'colour'"),
        ({"month": "2030-01", "since": "2030-01"}, "either month or since/until"),
    ):
        with pytest.raises((ValueError, InputError), match=message):
            PaymentFilter.from_params(params)
    with snapshot(engine) as conn, pytest.raises(ValueError, match="not a payment key"):
        list_payments(conn, after="12;drop table")


def test_filters_read_from_and_back_to_query_strings(world):
    params = {
        "program": ["1"],
        "department": "MOIS",
        "vendor": world["shop"].lower(),
        "category": ["restaurant", "2"],
        "month": "2030-02",
        "min_amount": "20,000",
        "max_amount": "",
        "flag": "any",
    }
    filt = PaymentFilter.from_params(params)
    assert filt == PaymentFilter(
        programs=(1,),
        departments=("MOIS",),
        vendors=(world["shop"],),
        categories=(RESTAURANT, CAFE),
        since=203002,
        until=203002,
        min_amount=20_000,
        flags=("any",),
    )
    assert PaymentFilter.from_params(filt.as_params()) == filt


# --- one payment ------------------------------------------------------------------------------------------------


def test_a_payment_in_full_with_the_rules_in_force_at_its_block(engine, world):
    january, february = world["pays"][1], world["pays"][11]  # kim, 20,000, before and after the update
    with snapshot(engine) as conn:
        before = get_payment(conn, pay_key(january))
        after = get_payment(conn, (february["block_number"], february["log_index"]))
        missing = get_payment(conn, "1-0")
    assert missing is None
    assert before.event == {
        "payer": world["kim"],
        "vendor": world["shop"],
        "programId": BP,
        "category": RESTAURANT,
        "period": 203001,
        "amount": 20_000,
        "receiptId": january["receipt_id"],
        "evidenceHash": "0x" + "00" * 32,
        "capLeft": january["cap_left"],
    }
    assert before.row.receipt == "1001" and before.evidence_hash is None and before.local_time.endswith("KST")
    assert (before.rules.version, before.rules.per_payment_limit, before.rules.evidence_threshold) == (
        1,
        1_000_000,
        500_000,
    )
    assert (after.rules.version, after.rules.per_payment_limit) == (2, 800_000)
    assert {c.name: c.cap for c in before.rules.categories} == {"RESTAURANT": 2_000_000, "CAFE_BAKERY": 300_000}
    assert {c.name: c.cap for c in after.rules.categories} == {"RESTAURANT": 1_500_000, "CAFE_BAKERY": 300_000}
    assert before.rules.hours[0] == ("Mon", "all day") and before.rules.zone == "KST" and not before.rules.paused
    assert (before.cap, before.cap_override, after.cap) == (2_000_000, False, 1_500_000)
    assert before.rules.configured_block < january["block_number"] < world["update"]["block_number"]
    assert before.vendor_category == RESTAURANT


def test_every_payment_is_found_by_its_key_within_the_periods_its_block_can_be_in(engine, world):
    pays = world["pays"]
    with snapshot(engine) as conn, version_known(("checkpoint", 1)):  # the ranges read once, then reused
        for _ in range(2):
            for pay in pays:
                found = get_payment(conn, (pay["block_number"], pay["log_index"]))
                assert found is not None and found.event["period"] == pay["period"]
        ranges = period_ranges(conn)
        assert get_payment(conn, (max(p["block_number"] for p in pays) + 1, 0)) is None
    if engine.dialect.name == "postgresql":
        assert ranges is not None and {period for period, _, _ in ranges} == {p["period"] for p in pays}
        for pay in pays:  # each payment's block lies in its period's range
            assert any(period == pay["period"] and low <= pay["block_number"] <= high for period, low, high in ranges)
    else:
        assert ranges is None  # SQLite: one primary-key probe already


def test_the_settlement_is_the_vendors_redemption_that_took_the_payment_out_first_in_first_out(engine, world):
    jan = world["pays"][:10]  # 10,000 .. 100,000 at the restaurant: 10,000 + 20,000 + 30,000 + 40,000 = 100,000
    with snapshot(engine) as conn:
        fourth, fifth = get_payment(conn, pay_key(jan[3])), get_payment(conn, pay_key(jan[4]))
        last = get_payment(conn, pay_key(world["pays"][-2]))  # kim's last March payment
    assert fourth.received_before == 100_000 and fourth.settlement.reference == "KB-2030-01"
    assert fifth.settlement.reference == "KB-2030-02" and fifth.redeemed_total == 2_100_000
    assert last.settlement is not None  # 550,000 + 200,000 + 480,000 + 78 ... < 2,100,000
    cafe_payment = world["pays"][10]
    with snapshot(engine) as conn:
        unredeemed = get_payment(conn, pay_key(cafe_payment))
    assert unredeemed.settlement is None and unredeemed.cap == 300_000 and not unredeemed.cap_override  # before it


# --- participants -----------------------------------------------------------------------------------------------


def test_a_vendors_payments_and_redemptions(engine, world):
    with snapshot(engine) as conn:
        shop = vendor_activity(conn, world["shop"])
        cafe = vendor_activity(conn, world["cafe"])
        nobody = vendor_activity(conn, address("nobody"))
    assert nobody is None
    shop_rows = all_rows(engine, PaymentFilter(vendors=(world["shop"],)))
    assert (shop.name, shop.category_name, shop.payments) == ("Hanok Table", "RESTAURANT", len(shop_rows))
    assert shop.received == sum(r.amount for r in shop_rows) and shop.redeemed == 2_100_000
    assert shop.outstanding == shop.received - 2_100_000
    assert [m.period for m in shop.months] == ["2030-01", "2030-02", "2030-03"]
    assert [r.reference for r in shop.redemptions] == ["KB-2030-02", "KB-2030-01"]
    assert cafe.suspended and cafe.suspensions[-1].reason == "inspection" and cafe.redemptions == []


def test_an_officials_spending_against_the_caps_this_month(engine, world):
    with snapshot(engine) as conn:
        kim = official_spending(conn, world["kim"])
        kim_january = official_spending(conn, world["kim"], period=203001)
        assert official_spending(conn, address("nobody")) is None
    assert (kim.department, kim.program, kim.period) == ("MOEF", "BP-2030-MOEF", "2030-03")  # the checkpoint's month
    restaurant = next(c for c in kim.categories if c.category == RESTAURANT)
    march = sum(1_000 + i for i in range(13))
    assert (restaurant.cap, restaurant.spent, restaurant.payments) == (1_500_000, march, 13)
    assert restaurant.left == 1_500_000 - march and restaurant.allowed
    cafe = next(c for c in kim_january.categories if c.category == CAFE)
    assert (cafe.cap, cafe.cap_override, cafe.spent) == (500_000, True, 12_000)
    assert kim.allocated == 3_000_000 and kim.spent == kim.allocated - kim.balance
    assert kim.spent == sum(r.amount for r in all_rows(engine, PaymentFilter(payers=(world["kim"],))))


def test_a_programs_rules_and_their_history(engine, world):
    with snapshot(engine) as conn:
        bp = program_history(conn, BP)
        assert program_history(conn, 99) is None
        choices = filter_choices(conn)
    assert [v.rules.version for v in bp.versions] == [1, 2] and bp.versions[0].changes == []
    assert bp.versions[1].changes == [
        "per-payment limit: 1,000,000 KRW -> 800,000 KRW",
        "RESTAURANT cap: 2,000,000 KRW -> 1,500,000 KRW",
    ]
    assert [p.paused for p in bp.pauses] == [True, False] and not bp.current.paused
    assert bp.spenders == 4 and bp.departments == ["MOEF", "MOIS"]
    assert [(o.category_name, o.cap, o.active) for o in bp.overrides] == [("CAFE_BAKERY", 500_000, True)]
    assert (
        bp.spent == sum(r.amount for r in all_rows(engine, PaymentFilter(programs=(BP,)))) and bp.allocated == 3_000_000
    )
    assert choices.programs == [(1, "BP-2030-MOEF"), (2, "EV-2030-MOE")]
    assert choices.departments == ["EV-BIZ", "MOEF", "MOIS"] and choices.months == ["2030-03", "2030-02", "2030-01"]
    assert [v[1] for v in choices.vendors] == ["Bean Brothers", "ChargeUp Install", "Hanok Table"]


def test_hours_read_as_windows(engine):
    book = Book(engine)
    book.configure(5, "WORKING-HOURS", hours=pack_hours([(9, 18)] * 5 + [(0, 0)] * 2))
    book.move_checkpoint()
    with snapshot(engine) as conn:
        rules = program_history(conn, 5).current
    assert rules.hours == [(d, "09:00-18:00") for d in ("Mon", "Tue", "Wed", "Thu", "Fri")] + [
        ("Sat", "closed"),
        ("Sun", "closed"),
    ]


# --- exports ------------------------------------------------------------------------------------------------------


def test_a_filtered_list_exports_with_its_filter_and_hashes(engine, world, tmp_path):
    filt = PaymentFilter(departments=("MOIS",), flags=(ANY_FLAG,))
    expected = all_rows(engine, filt)
    assert expected
    for fmt in ("csv", "jsonl"):
        out = tmp_path / fmt
        with snapshot(engine) as conn:
            (written,) = export_payments(conn, out, filt, fmt)
            with pytest.raises(ValueError, match="already holds an export"):
                export_payments(conn, out, filt, fmt)
        manifest = json.loads((out / "manifest.json").read_text())
        assert manifest["filters"] == {"payments": {"department": ["MOIS"], "flag": ["any"]}}
        (entry,) = manifest["tables"]
        data = (out / entry["file"]).read_bytes()
        assert entry["sha256"] == hashlib.sha256(data).hexdigest() == written.sha256
        assert entry["rows"] == len(expected)
        if fmt == "csv":
            rows = list(csv.DictReader(data.decode().splitlines()))
            assert [r["key"] for r in rows] == [r.key for r in expected]
            assert rows[0]["flags"] == ";".join(expected[0].flags) and rows[0]["department"] == "MOIS"
        else:
            rows = [json.loads(line) for line in data.decode().splitlines()]
            assert [r["amount"] for r in rows] == [r.amount for r in expected]
            assert rows[0]["has_evidence"] is False and rows[0]["flags"] == ";".join(expected[0].flags)

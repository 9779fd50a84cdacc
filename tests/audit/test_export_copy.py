"""The payments export written by PostgreSQL's COPY (audit.query.export_copy) gives the Python writer's bytes, row
count and SHA-256 for every kind of value: each receipt form, departments across a re-enrolment, 0 to 3 flags,
names that need CSV quoting or are not ASCII, unknown vendors, programs and categories, times at day, month and
year boundaries; for several filters (a month, a program, a payer, a vendor, a department, a flag, nothing)."""

from __future__ import annotations

import io

import pytest
from sqlalchemy import update
from support.audit_rows import address, kst, postgres_engine, sqlite_engine
from support.console_rows import Book

from deposit_token.audit import derive
from deposit_token.audit.db import casework, schema
from deposit_token.audit.query import export_copy
from deposit_token.audit.query.common import snapshot
from deposit_token.audit.query.export import csv_header, export_payments, write_rows
from deposit_token.audit.query.payments import PAYMENT_VALUES, PaymentFilter, stream_payment_values
from deposit_token.domain.categories import Category

BP, EV, UNCONFIGURED = 1, 2, 9
RESTAURANT, CAFE = int(Category.RESTAURANT), int(Category.CAFE_BAKERY)
RECEIPTS = [  # the stored bytes32 (its bytes, right-padded), as receipt_text reads them
    b"",  # none: "-"
    (1001).to_bytes(32, "big"),  # an invoice number
    (256).to_bytes(32, "big"),  # a number with zero bytes inside
    (2**247 + 12345).to_bytes(32, "big"),  # a number beyond 64 bits
    (2**60 - 1).to_bytes(32, "big"),  # the largest number read as one word
    (2**60).to_bytes(32, "big"),  # the smallest read as five
    b"INV-2030-0042",  # ASCII text
    b'A,"B"',  # text that the CSV must quote
    "영수증-7".encode(),  # Korean text
    b"\xff\xfeabc",  # not UTF-8
    b"AB\x07C",  # a control character
    b"12345",  # digits as text: not what receipt_id makes of "12345"
    b"AB\x00CD",  # a zero byte inside
    b" abc",  # leading space: receipt_id would strip it
    b"abc ",
    b"a\\b",  # a backslash
    b"\\.",  # COPY's end-of-data marker as a whole field
    b"~ !",
    b"\x7fX",
]


def _stored(raw: bytes) -> str:
    return "0x" + raw.ljust(32, b"\0").hex() if len(raw) <= 32 else "0x" + raw.hex()


@pytest.fixture(scope="module")
def pg_engine(pg_url):
    with postgres_engine(pg_url) as (engine, _url):
        yield engine


@pytest.fixture(scope="module")
def world(pg_engine) -> dict:
    book = Book(pg_engine)
    book.configure(BP, 'BP, "경기" 2030', caps={RESTAURANT: 2_000_000, CAFE: 300_000})
    book.configure(EV, "EV-2030", caps={RESTAURANT: 2_000_000})
    kim = book.enrol("kim", BP, "기획재정부")
    choi = book.enrol("choi", BP, "MOEF")
    lee = book.enrol("lee", EV, "EV, BIZ")
    shop = book.vendor("shop", name='Café "Bon", Seoul')
    lines = book.vendor("lines", name="Two\nLines ")
    plain = book.vendor("plain", Category.CAFE_BAKERY, name=" spaced ")
    ghost = address("ghost")  # never registered
    times = [
        kst(2030, 1, 7, 12),  # a weekday noon: no flag
        kst(2030, 1, 12, 12),  # Saturday: weekend
        kst(2030, 1, 12, 23, 30),  # Saturday night: night, weekend
        kst(2030, 1, 31, 23, 59),  # the last minute of January (KST), 14:59 UTC
        kst(2030, 2, 1, 0, 0),  # the first of February (KST), still January in UTC
        kst(2030, 2, 1, 8, 59),
        kst(2030, 2, 1, 9, 0),  # midnight UTC
        kst(2030, 12, 31, 23, 59),
    ]
    pays = []
    payers, vendors = [kim, choi, lee], [shop, lines, plain, ghost]
    for i in range(len(RECEIPTS)):
        at = times[i % len(times)].replace(second=i)
        payer = payers[i % 3]
        pays.append(
            book.pay(
                payer,
                vendors[i % 4],
                1_000 * (i + 1),
                at,
                program_id=EV if payer == lee else BP,
                category=Category.CAFE_BAKERY if i % 5 == 0 else Category.RESTAURANT,
                evidence=i % 2 == 0,
            )
        )
    book.enrol("choi", BP, "MOIS")  # re-enrolled: payments before and after differ
    for i in range(4):
        pays.append(book.pay(choi, shop, 7_000 + i, kst(2030, 2, 4 + i, 12), receipt=2000 + i))
    pays.append(book.pay(kim, shop, 5_000, kst(2030, 3, 4, 12), program_id=UNCONFIGURED))
    pays.append(book.pay(kim, plain, 6_000, kst(2030, 3, 5, 12), category=30))  # a category without a name
    pays.append(book.pay(address("stranger"), shop, 9_000, kst(2030, 3, 6, 12)))  # never enrolled
    with pg_engine.begin() as conn:
        for pay, raw in zip(pays, RECEIPTS):
            p = schema.payments
            conn.execute(
                update(p)
                .where(p.c.block_number == pay["block_number"], p.c.log_index == pay["log_index"])
                .values(receipt_id=_stored(raw))
            )
    book.move_checkpoint()
    derive.refresh(pg_engine)
    night = pays[2]
    with pg_engine.begin() as conn:  # a third rule on the Saturday night payment (concentration is not raised here)
        conn.execute(
            casework.payment_flags.insert().values(
                block_number=night["block_number"],
                log_index=night["log_index"],
                rule="concentration",
                tx_hash=night["tx_hash"],
                payer=night["payer"],
                program_id=night["program_id"],
                period=night["period"],
                local_time="2030-01-12T23:30:02+09:00",
                detail="test",
            )
        )
    return {"kim": kim, "choi": choi, "lee": lee, "shop": shop, "lines": lines, "ghost": ghost, "pays": pays}


def _python(conn, filt: PaymentFilter) -> tuple[int, str, bytes]:
    out = io.BytesIO()
    rows, sha256 = write_rows(out, PAYMENT_VALUES, stream_payment_values(conn, filt), "csv")
    return rows, sha256, out.getvalue()


def _copied(conn, filt: PaymentFilter, lateral_flags_max: int, split_min: int) -> tuple[int, str, bytes]:
    out = io.BytesIO()
    header = csv_header(PAYMENT_VALUES)
    written = export_copy.write_payments_csv(conn, filt, header, out, lateral_flags_max, split_min)
    assert written is not None, "the COPY path declined"
    return written[0], written[1], out.getvalue()


FILTERS = {
    "everything": lambda w: PaymentFilter(),
    "a month": lambda w: PaymentFilter(since=203001, until=203001),
    "months": lambda w: PaymentFilter(since=203001, until=203003),
    "a program": lambda w: PaymentFilter(programs=(EV,)),
    "a payer": lambda w: PaymentFilter(payers=(w["choi"],)),
    "a vendor": lambda w: PaymentFilter(vendors=(w["ghost"],)),
    "a department": lambda w: PaymentFilter(departments=("MOIS",)),
    "a flag": lambda w: PaymentFilter(flags=("weekend",)),
    "amounts": lambda w: PaymentFilter(min_amount=3_000, max_amount=9_000),
    "nothing": lambda w: PaymentFilter(since=202901, until=202912),
}


@pytest.mark.parametrize(
    "flags_by_key, split",
    [(True, False), (False, False), (False, True)],
    ids=["flags by key", "flags of the block range", "two connections"],
)
@pytest.mark.parametrize("name", FILTERS)
def test_copy_gives_the_python_writers_bytes(pg_engine, world, name, flags_by_key, split):
    filt = FILTERS[name](world)
    with snapshot(pg_engine) as conn:
        expected = _python(conn, filt)
        got = _copied(conn, filt, 10**9 if flags_by_key else 0, 1 if split else 10**9)
    assert got[2].decode().splitlines()[1:] == expected[2].decode().splitlines()[1:]  # a readable diff first
    assert got == expected


def test_the_world_holds_every_case(pg_engine, world):
    """The data the comparisons run on does hold what they claim to cover."""
    with snapshot(pg_engine) as conn:
        _rows, _sha, data = _python(conn, PaymentFilter())
    text = data.decode()
    for expected in ('"BP, ""경기"" 2030"', '"Café ""Bon"", Seoul"', '"Two\nLines "', "영수증-7", "(unregistered)"):
        assert expected in text
    for expected in ("program 9", "CATEGORY_30", "(not enrolled)", "night;weekend;concentration", ",weekend\n"):
        assert expected in text
    assert f",{2**60 - 1}," in text and f",{2**60}," in text
    assert ",-," in text and f",{2**247 + 12345}," in text and ",256," in text and '"A,""B"""' in text
    assert "2030-01-31 23:59 KST" in text and "2030-02-01 00:00 KST" in text and "2030-12-31 23:59 KST" in text
    assert ",MOEF," in text and ",MOIS," in text  # choi before and after the re-enrolment


def test_the_export_takes_the_copy_and_names_it_in_the_manifest(pg_engine, world, tmp_path):
    filt = PaymentFilter(since=203001, until=203002)
    with snapshot(pg_engine) as conn:
        rows, sha256, data = _python(conn, filt)
        (written,) = export_payments(conn, tmp_path, filt)
    assert (tmp_path / "payments.csv").read_bytes() == data
    assert (written.rows, written.sha256) == (rows, sha256) and rows > 10


def test_a_name_with_a_carriage_return_takes_the_python_path(pg_engine, world, tmp_path):
    """PostgreSQL would quote it and Python's csv does not: the COPY declines and the export stays identical."""
    book = Book(pg_engine)
    book.block, book.log, book.now = 10**6, 0, int(kst(2030, 6, 1).timestamp())
    vendor = book.vendor("carriage", name="A\rB")
    book.pay(world["kim"], vendor, 1_000, kst(2030, 6, 2, 12))
    filt = PaymentFilter(vendors=(vendor,))
    try:
        with snapshot(pg_engine) as conn:
            assert export_copy.write_payments_csv(conn, filt, b"", io.BytesIO()) is None
            rows, sha256, data = _python(conn, filt)
            (written,) = export_payments(conn, tmp_path, filt)
        assert b"A\rB" in data and (tmp_path / "payments.csv").read_bytes() == data
        assert (written.rows, written.sha256) == (rows, sha256) == (1, written.sha256)
    finally:
        with pg_engine.begin() as conn:
            conn.execute(schema.payments.delete().where(schema.payments.c.vendor == vendor))
            conn.execute(schema.vendor_registrations.delete().where(schema.vendor_registrations.c.vendor == vendor))


def test_sqlite_keeps_the_python_path(tmp_path):
    with sqlite_engine(tmp_path / "audit.sqlite") as engine, snapshot(engine) as conn:
        assert export_copy.write_payments_csv(conn, PaymentFilter(), b"", io.BytesIO()) is None


def test_the_second_connection_reads_the_same_snapshot(pg_engine, world):
    """A payment committed while the export runs is in neither half: both read the export's snapshot."""
    book = Book(pg_engine)
    book.block, book.log, book.now = 2 * 10**6, 0, int(kst(2030, 7, 1).timestamp())
    filt = PaymentFilter(payers=(world["kim"],))
    try:
        with snapshot(pg_engine) as conn:
            before = _python(conn, filt)  # the snapshot is taken here
            late = book.pay(world["kim"], world["shop"], 4_000, kst(2030, 7, 2, 12))
            assert _copied(conn, filt, 0, 1) == before
        with snapshot(pg_engine) as conn:
            assert _copied(conn, filt, 0, 1)[0] == before[0] + 1
    finally:
        with pg_engine.begin() as conn:
            p = schema.payments
            conn.execute(p.delete().where(p.c.block_number == late["block_number"]))

"""A year of payments for the auditors' console at scale, and what its queries cost there.

``python -m bench.web_data`` (``--payments N``, default 1,000,000) writes a pilot year into a fresh PostgreSQL
database *through the schema* (the migrations' tables, rows shaped exactly as the indexer writes them, bulk
``COPY`` as the indexer's own ``store.insert_rows``), builds the derived tables with ``audit.derive.refresh``
(timed: the first build), and then times each query the console's pages make, one at a time, ``--reps`` times
each with varied parameters: p50 and p95 per query, printed as a table and written to
``bench/results/web_queries.json``. Target: every query's p95 well under 30 ms (the console's pages, at most a
few queries each, must answer under 150 ms at 20 concurrent clients: ``make bench-web``).

The year (``generate``): 2030 in KST, one block per second; six programs (four ministries' business promotion
with the preset's caps and 06-23 hours, one field-inspection program open day and night, the EV-charger
subsidy); 20 departments, 3,500 officials and businesses, 500 vendors in ten categories; each official pays
mostly at a few regular vendors (lunch and dinner peaks, 3 % at weekends, fewer on public holidays, field staff
sometimes at night), amounts log-normal per category, a few just under the evidence threshold or the limit,
a few bills split in two; caps and per-payment limits respected (what the contract would refuse is not
generated), evidence wherever the threshold requires it; two programs updated in July (limits, caps), monthly
allocations and vendor redemptions, cap overrides, a pause. The realistic result: about 8 % of payments
flagged. Not generated: the Transfer rows beside each Payment (no console query reads them) and empty blocks.

``python -m bench.web_data --indexer-cost`` measures what the console's indexes cost the indexer: the
bench-indexer chain (``bench.indexer``: 100,000 payments) indexed into fresh SQLite and PostgreSQL databases,
alternately with the schema of migration 0004 and with its payment indexes taken back to 0003's (the derived
tables are never written by the indexer), ``--rounds`` times each; events/s (median) per variant.

``--db URL`` uses a PostgreSQL database of your own (emptied first with ``--reset``; kept afterwards), else a
throwaway server is started and removed at the end; ``--reuse`` measures an already generated database.
"""

from __future__ import annotations

import argparse
import hashlib
import math
import os
import random
import statistics
import sys
import tempfile
import time
from collections import defaultdict
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta, timezone
from pathlib import Path
from typing import Any

import holidays
from eth_utils import to_checksum_address
from sqlalchemy import Connection, Engine, func, select, text

from bench.report import Row, Target, report, wide_console
from deposit_token.audit import cases, derive
from deposit_token.audit.db import pgserver, schema, store
from deposit_token.audit.query import overview as overview_q
from deposit_token.audit.query import participants, payments
from deposit_token.audit.query.common import Filters, snapshot
from deposit_token.audit.query.payments import PaymentFilter
from deposit_token.domain.categories import Category
from deposit_token.domain.rules import NO_CAP, local_time, pack_hours

KST = timezone(timedelta(hours=9))
YEAR = 2030
GENESIS = int(datetime(YEAR - 1, 12, 20, tzinfo=KST).timestamp())  # block 0; one block per second after it
SEED = 20300101
CHAIN_ID = 20261
TOKEN = to_checksum_address("0x" + "d7" * 20)
TARGET_P95_MS = 30.0

DEPARTMENTS = (
    "MOEF", "MOIS", "MOLIT", "MOE", "MSIT", "MOHW", "MOTIE", "MAFRA", "MOJ", "MOFA",
    "MND", "MOEL", "MOGEF", "MCST", "MOF", "MSS", "KCS", "NTS", "PPS", "KMA",
)  # fmt: skip
BP_CAPS = {
    Category.RESTAURANT: 2_000_000,
    Category.CAFE_BAKERY: 300_000,
    Category.CATERING: 1_000_000,
    Category.CONFERENCE_VENUE: 1_500_000,
}
FIELD_CAPS = {Category.RESTAURANT: 1_500_000, Category.LODGING: 2_000_000, Category.TRANSPORT: 1_000_000}
EV_CAPS = {Category.EV_CHARGER_INSTALLER: NO_CAP, Category.EV_CHARGER_SUPPLIER: NO_CAP}
# category -> (median KRW, log-normal sigma, vendors)
AMOUNTS = {
    Category.RESTAURANT: (55_000, 0.6, 220),
    Category.CAFE_BAKERY: (14_000, 0.5, 90),
    Category.CATERING: (320_000, 0.5, 40),
    Category.CONFERENCE_VENUE: (600_000, 0.35, 30),
    Category.LODGING: (120_000, 0.4, 40),
    Category.TRANSPORT: (25_000, 0.7, 40),
    Category.EV_CHARGER_INSTALLER: (9_000_000, 0.5, 25),
    Category.EV_CHARGER_SUPPLIER: (14_000_000, 0.4, 15),
}
CATEGORY_SHARE = {  # of a business-promotion official's payments
    Category.RESTAURANT: 0.62,
    Category.CAFE_BAKERY: 0.28,
    Category.CATERING: 0.07,
    Category.CONFERENCE_VENUE: 0.03,
}
FIELD_SHARE = {Category.RESTAURANT: 0.5, Category.LODGING: 0.2, Category.TRANSPORT: 0.3}
EV_SHARE = {Category.EV_CHARGER_INSTALLER: 0.6, Category.EV_CHARGER_SUPPLIER: 0.4}
MONTH_WEIGHT = (0.85, 0.8, 1.0, 1.0, 1.0, 0.95, 0.9, 0.85, 1.0, 1.05, 1.1, 1.3)


def addr(label: str) -> str:
    return to_checksum_address("0x" + hashlib.sha256(label.encode()).hexdigest()[:40])


def hex32(value: int) -> str:
    return "0x" + value.to_bytes(32, "big").hex()


def synthetic_block(number: int) -> dict[str, Any]:
    """The `blocks` row of a synthetic chain's block: its hashes stand for the numbers, one block a second."""
    return {"number": number, "hash": hex32(number), "parent_hash": hex32(number - 1), "timestamp": GENESIS + number}


def mark_indexed(conn: Connection, block: int) -> None:
    """Records `block` as the indexer's checkpoint, as if the synthetic rows had been indexed up to it."""
    conn.execute(schema.blocks.insert(), [synthetic_block(block)])
    conn.execute(
        schema.checkpoint.insert(),
        [{"id": 1, "block_number": block, "block_hash": hex32(block), "updated_at": datetime.now(UTC)}],
    )


def text32(value: str) -> str:
    return "0x" + value.encode().ljust(32, b"\0").hex()


def ts(*args: int) -> int:
    return int(datetime(*args, tzinfo=KST).timestamp())


@dataclass(frozen=True)
class Program:
    id: int
    name: str
    caps: dict[Category, int]
    share: dict[Category, float]
    hours: tuple[tuple[int, int], ...]
    limit: int
    threshold: int


PROGRAMS = (
    Program(1, "BP-2030-MOEF", BP_CAPS, CATEGORY_SHARE, ((6, 23),) * 7, 1_000_000, 500_000),
    Program(2, "BP-2030-MOIS", BP_CAPS, CATEGORY_SHARE, ((6, 23),) * 7, 1_000_000, 500_000),
    Program(3, "BP-2030-MOLIT", BP_CAPS, CATEGORY_SHARE, ((6, 23),) * 7, 1_000_000, 500_000),
    Program(4, "BP-2030-MSIT", BP_CAPS, CATEGORY_SHARE, ((6, 23),) * 7, 1_000_000, 500_000),
    Program(5, "FIELD-2030-MOLIT", FIELD_CAPS, FIELD_SHARE, ((0, 24),) * 7, 1_000_000, 500_000),
    Program(6, "EV-2030-MOE", EV_CAPS, EV_SHARE, ((9, 18),) * 5 + ((0, 0),) * 2, 50_000_000, 500_000),
)


@dataclass
class Official:
    address: str
    program: Program
    department: str
    activity: float
    regulars: dict[Category, list[tuple[str, float]]] = field(default_factory=dict)


@dataclass
class Chain:
    """Rows per table, written in bulk; block numbers follow timestamps (one block per second)."""

    engine: Engine
    rows: dict[str, list[tuple[Any, ...]]] = field(default_factory=lambda: defaultdict(list))
    log_in_block: dict[int, int] = field(default_factory=dict)
    rng: random.Random = field(default_factory=lambda: random.Random(SEED))
    last_block: int = 0

    def position(self, timestamp: int) -> tuple[int, int, str]:
        block = timestamp - GENESIS
        log = self.log_in_block.get(block, 0)
        self.log_in_block[block] = log + 2  # a Transfer before each event of value, as on the chain
        self.last_block = max(self.last_block, block)
        return block, log + 1, hex32(self.rng.getrandbits(256))

    def event(self, table: str, timestamp: int, *values: Any) -> None:
        block, log, tx = self.position(timestamp)
        self.rows[table].append((block, log, tx, timestamp, *values))

    def flush(self) -> None:
        with self.engine.begin() as conn:
            for table, rows in self.rows.items():
                columns = [c.name for c in schema.metadata.tables[table].columns]
                store.insert_rows(conn, table, columns, rows)
        self.rows.clear()  # positions stay: an event of a later flush may share a second (a block) with this one


def _configure(chain: Chain, program: Program, at: int, version: int, limit: int, caps: dict[Category, int]) -> None:
    mask = 0
    for category, cap in sorted(caps.items()):
        mask |= 1 << int(category)
        chain.event("category_caps", at, program.id, int(category), cap)
    chain.event(
        "program_configs",
        at,
        program.id,
        version,
        program.name,
        addr(f"treasury-{program.id}"),
        ts(YEAR, 1, 1),
        ts(YEAR + 1, 1, 1),
        540,
        mask,
        pack_hours(program.hours),
        limit,
        program.threshold,
    )


def _setup(chain: Chain, rng: random.Random) -> tuple[list[Official], dict[Category, list[str]]]:
    at = ts(YEAR - 1, 12, 28, 10)
    for program in PROGRAMS:
        _configure(chain, program, at, 1, program.limit, dict(program.caps))
    vendors: dict[Category, list[str]] = defaultdict(list)
    for category, (_, _, count) in AMOUNTS.items():
        for i in range(count):
            vendor = addr(f"vendor-{category.name}-{i}")
            vendors[category].append(vendor)
            chain.event("vendor_registrations", at + 1, vendor, int(category), f"{category.name.title()} {i + 1:03d}")
    officials: list[Official] = []
    bp = PROGRAMS[:4]
    for d, department in enumerate(DEPARTMENTS):
        program = bp[d % 4]
        for i in range(150):
            officials.append(
                Official(addr(f"official-{department}-{i}"), program, department, rng.lognormvariate(0, 0.6))
            )
    for i in range(200):
        department = ("MOLIT", "KMA", "MOE", "MAFRA")[i % 4]
        officials.append(Official(addr(f"field-{i}"), PROGRAMS[4], department, rng.lognormvariate(0, 0.5)))
    for i in range(300):
        officials.append(Official(addr(f"ev-business-{i}"), PROGRAMS[5], f"EV-BIZ-{i % 8}", 0.08))
    for official in officials:
        chain.event(
            "enrolments",
            at + 2,
            official.address,
            official.program.id,
            text32(official.department),
            official.department,
        )
        for category in official.program.share:
            pool = vendors[category]
            picks = rng.sample(pool, min(len(pool), rng.randint(2, 6)))
            # a few regulars, the first much more often: most officials have a favourite place
            official.regulars[category] = [(v, 1.0 / (k + 1) ** 1.3) for k, v in enumerate(picks)]
    return officials, vendors


def _amount(rng: random.Random, category: Category) -> int:
    median, sigma, _ = AMOUNTS[category]
    return max(1_000, int(rng.lognormvariate(math.log(median), sigma)) // 100 * 100)


def _moment(rng: random.Random, program: Program, day: date, kr: holidays.HolidayBase) -> int | None:
    """A local time on `day` within the program's hours, or None (no payment that day)."""
    weekday = day.weekday()
    if weekday >= 5 and rng.random() > 0.05:
        return None
    if day in kr and rng.random() > 0.2:
        return None
    opening, closing = program.hours[weekday]
    if opening >= closing:
        return None
    r = rng.random()
    if program.id == 5 and r < 0.08:  # field staff on night duty
        hour = rng.choice((23, 0, 1, 2, 4, 5))
    elif r < 0.6:
        hour = rng.choice((11, 12, 12, 13))
    elif r < 0.92:
        hour = rng.choice((18, 19, 19, 20, 21))
    else:
        hour = rng.randint(max(opening, 7), min(closing, 22) - 1)
    hour = min(max(hour, opening), closing - 1)
    minute, second = rng.randrange(60), rng.randrange(60)
    return int(datetime(day.year, day.month, day.day, hour, minute, second, tzinfo=KST).timestamp())


@dataclass
class Generated:
    payments: int = 0
    refused: int = 0  # drawn but over a cap or limit: the contract would have refused them
    seconds: float = 0.0
    last_block: int = 0


def generate(
    engine: Engine, payments: int = 1_000_000, seed: int = SEED, log: Callable[[str], None] = print
) -> Generated:
    """Writes the year into `engine`'s (migrated, empty) database and moves the checkpoint to its end."""
    started = time.monotonic()
    rng = random.Random(seed)
    chain = Chain(engine, rng=random.Random(seed + 1))
    kr = holidays.country_holidays("KR", years=[YEAR])
    store.bind_to_chain(engine, CHAIN_ID, TOKEN, 0, "bench-web")
    officials, vendors = _setup(chain, rng)
    chain.flush()
    weights = [o.activity for o in officials]
    total_weight = sum(MONTH_WEIGHT)
    stats = Generated()
    receipts: dict[str, int] = defaultdict(int)
    overrides = rng.sample(officials[:3000], 20)
    overridden = {official.address for official in overrides}
    for month in range(1, 13):
        first = date(YEAR, month, 1)
        days = [(first + timedelta(days=i)) for i in range(31) if (first + timedelta(days=i)).month == month]
        if month == 7:  # mid-year rule changes: a lower limit, a smaller cafe cap
            at = ts(YEAR, 7, 1, 0, 30)
            _configure(chain, PROGRAMS[0], at, 2, 800_000, dict(BP_CAPS))
            _configure(chain, PROGRAMS[2], at, 2, 1_000_000, {**BP_CAPS, Category.CAFE_BAKERY: 200_000})
            chain.event("program_pauses", at + 60, 4, True, addr("compliance"))
            chain.event("program_pauses", at + 3_600, 4, False, addr("compliance"))
        if month == 3:
            for official in overrides:
                chain.event(
                    "cap_overrides", ts(YEAR, 3, 1, 8), official.address, int(Category.RESTAURANT), 3_000_000, True
                )
        for official in officials:
            chain.event(
                "allocations", ts(YEAR, month, 1, 7), hex32(month), official.program.id, official.address,
                3_000_000 if official.program.id != 6 else 80_000_000,
            )  # fmt: skip
        wanted = round(payments * MONTH_WEIGHT[month - 1] / total_weight)
        drawn: list[tuple[int, Official, Category, str, int]] = []

        def cap_of(official: Official, category: Category, month: int = month) -> int:
            cap = official.program.caps[category]
            if official.program.id == 3 and month >= 7 and category == Category.CAFE_BAKERY:
                cap = 200_000
            if official.address in overridden and category == Category.RESTAURANT and month >= 3:
                cap = 3_000_000
            return cap

        factor = 1.2  # some more than wanted: caps refuse a few, the rest is thinned
        while True:
            while len(drawn) < wanted * factor:
                official = rng.choices(officials, weights=weights)[0]
                when = _moment(rng, official.program, rng.choice(days), kr)
                if when is None:
                    continue
                categories = list(official.program.share)
                category = rng.choices(categories, weights=[official.program.share[c] for c in categories])[0]
                if rng.random() < 0.85:
                    regulars = official.regulars[category]
                    vendor = rng.choices([v for v, _ in regulars], weights=[w for _, w in regulars])[0]
                else:
                    vendor = rng.choice(vendors[category])
                amount = _amount(rng, category)
                r = rng.random()
                if official.program.id != 6 and r < 0.004:
                    amount = rng.randrange(475_000, 500_000, 100)  # just under the evidence threshold
                elif official.program.id != 6 and r < 0.005:
                    amount = rng.randrange(950_000, 1_000_001, 100)  # at the limit
                drawn.append((when, official, category, vendor, amount))
                if official.program.id != 6 and r > 0.997 and local_time(when, 540)[2] < 21:  # a bill split in two
                    drawn.append((when + 1_200, official, category, vendor, rng.randrange(250_000, 499_000, 1_000)))

            drawn.sort(key=lambda d: d[0])
            spent: dict[tuple[str, int], int] = defaultdict(int)
            accepted = []
            for item in drawn:  # what the contract would accept, in chain order
                _, official, category, _, amount = item
                limit = 800_000 if (official.program.id == 1 and month >= 7) else official.program.limit
                cap = cap_of(official, category)
                key = (official.address, int(category))
                if amount > limit or (cap < NO_CAP and spent[key] + amount > cap):
                    stats.refused += 1
                    continue
                spent[key] += amount
                accepted.append(item)
            if len(accepted) >= wanted or factor > 2:
                break
            stats.refused -= len(drawn) - len(accepted)  # counted again on the next pass
            factor += 0.1
        if len(accepted) > wanted:  # thinned at random: what is left is still within every cap
            keep = set(rng.sample(range(len(accepted)), wanted))
            accepted = [item for i, item in enumerate(accepted) if i in keep]
        spent.clear()
        received: dict[str, int] = defaultdict(int)
        for when, official, category, vendor, amount in accepted:
            program = official.program
            cap = cap_of(official, category)
            key = (official.address, int(category))
            spent[key] += amount
            evidence = amount >= program.threshold or rng.random() < 0.1
            receipts[vendor] += 1
            receipt = hex32(receipts[vendor]) if rng.random() < 0.7 else text32(f"R-{YEAR}-{receipts[vendor]:06d}")
            period = local_time(when, 540)[0]
            chain.event(
                "payments", when, official.address, vendor, program.id, int(category), period, amount, receipt,
                hex32(rng.getrandbits(256)) if evidence else "0x" + "00" * 32,
                (cap - spent[key]) if cap < NO_CAP else NO_CAP - spent[key],
            )  # fmt: skip
            received[vendor] += amount
            stats.payments += 1
        end = int(datetime(YEAR, month, days[-1].day, 23, 50, tzinfo=KST).timestamp())
        for i, (vendor, amount) in enumerate(sorted(received.items())):
            reference = f"KB-{YEAR}{month:02d}-{i:04d}"
            chain.event("redemptions", end + i, vendor, text32(reference[:32]), amount, reference)
        chain.flush()
        log(f"{YEAR}-{month:02d}: {stats.payments:,} payments so far")
    last = chain.last_block
    with engine.begin() as conn:
        mark_indexed(conn, last)
    if engine.dialect.name == "postgresql":
        with engine.connect().execution_options(isolation_level="AUTOCOMMIT") as conn:
            conn.exec_driver_sql("VACUUM ANALYZE")
    stats.seconds = time.monotonic() - started
    stats.last_block = last
    return stats


# --- measuring ------------------------------------------------------------------------------------------------


def percentile(values: Sequence[float], q: float) -> float:
    ordered = sorted(values)
    if not ordered:
        return float("nan")
    k = (len(ordered) - 1) * q
    lo, hi = math.floor(k), math.ceil(k)
    return ordered[lo] + (ordered[hi] - ordered[lo]) * (k - lo)


Query = Callable[[Connection], Any]


def _samples(conn: Connection, rng: random.Random) -> dict[str, list[Query]]:
    """Each query of the console with a few parameter sets drawn from the data."""
    p = schema.payments
    vendor_counts = list(
        conn.execute(select(p.c.vendor, func.count().label("n")).group_by(p.c.vendor).order_by(func.count().desc()))
    )
    busy = [r.vendor for r in vendor_counts[:5]]
    quiet = [r.vendor for r in vendor_counts[-5:]]
    payers = [r[0] for r in conn.execute(select(p.c.payer).distinct().limit(2_000))]
    last = conn.execute(select(func.max(p.c.block_number))).scalar_one()
    keys = [
        f"{r.block_number}-{r.log_index}"
        for r in conn.execute(select(p.c.block_number, p.c.log_index).where(p.c.block_number % 997 == 0).limit(200))
    ]
    middle = conn.execute(
        select(p.c.block_number, p.c.log_index)
        .where(p.c.block_number <= last // 2)
        .order_by(p.c.block_number.desc(), p.c.log_index.desc())
        .limit(1)
    ).one()
    deep = f"{middle.block_number}-{middle.log_index}"
    f = PaymentFilter
    months = [YEAR * 100 + m for m in range(1, 13)]
    departments = list(DEPARTMENTS)
    fq = cases.FlagFilter

    def pick(values: Sequence[Any]) -> Any:
        return rng.choice(values)

    return {
        "payments: first page": [lambda c: payments.list_payments(c)],
        "payments: page deep in the year": [lambda c: payments.list_payments(c, after=deep)],
        "payments: newer than a key (live)": [lambda c: payments.list_payments(c, before=pick(keys))],
        "payments: by program": [lambda c: payments.list_payments(c, f(programs=(pick((1, 2, 5, 6)),)))],
        "payments: by department": [lambda c: payments.list_payments(c, f(departments=(pick(departments),)))],
        "payments: by busy vendor": [lambda c: payments.list_payments(c, f(vendors=(pick(busy),)))],
        "payments: by quiet vendor": [lambda c: payments.list_payments(c, f(vendors=(pick(quiet),)))],
        "payments: by payer": [lambda c: payments.list_payments(c, f(payers=(pick(payers),)))],
        "payments: by rare category": [lambda c: payments.list_payments(c, f(categories=(int(Category.LODGING),)))],
        "payments: by month": [lambda c: payments.list_payments(c, f(since=(m := pick(months)), until=m))],
        "payments: by amount range": [
            lambda c: payments.list_payments(c, f(min_amount=475_000, max_amount=499_999)),
            lambda c: payments.list_payments(c, f(min_amount=5_000_000)),
        ],
        "payments: by flag (common)": [lambda c: payments.list_payments(c, f(flags=("weekend",)))],
        "payments: by flag (rare)": [lambda c: payments.list_payments(c, f(flags=(pick(("split-limit", "night")),)))],
        "payments: department+month+category": [
            lambda c: payments.list_payments(
                c, f(departments=(pick(departments),), since=(m := pick(months)), until=m, categories=(2,))
            )
        ],
        "payments: vendor+month+flag": [
            lambda c: payments.list_payments(
                c, f(vendors=(pick(busy),), since=(m := pick(months)), until=m, flags=("any",))
            )
        ],
        "count (capped 10,000)": [lambda c: payments.count_payments(c, f(departments=(pick(departments),)))],
        "totals from cells": [
            lambda c: payments.payment_totals(c, f(departments=(pick(departments),), since=pick(months)))
        ],
        "totals of a vendor": [lambda c: payments.payment_totals(c, f(vendors=(pick(busy),)))],
        "payment detail": [lambda c: payments.get_payment(c, pick(keys))],
        "vendor page": [lambda c: participants.vendor_activity(c, pick(busy + quiet))],
        "official page": [lambda c: participants.official_spending(c, pick(payers))],
        "program page": [lambda c: participants.program_history(c, pick((1, 3, 6)))],
        "flag queue: open": [lambda c: cases.flag_queue(c)],
        "flag queue: by rule": [
            lambda c: cases.flag_queue(c, fq(rules=(pick(("concentration", "holiday", "night")),)))
        ],
        "flag queue: decided": [lambda c: cases.flag_queue(c, fq(status="decided"))],
        "flag queue: department": [lambda c: cases.flag_queue(c, fq(payments=f(departments=(pick(departments),))))],
        "flag counts": [lambda c: cases.flag_counts(c)],
        "overview (cells)": [lambda c: overview_q.overview(c, Filters())],
        "overview of a program and months": [
            lambda c: overview_q.overview(
                c, Filters(programs=(pick((1, 2, 3)),), since=YEAR * 100 + 4, until=YEAR * 100 + 9)
            )
        ],
        "public cells": [lambda c: overview_q.public_cells(c)],
        "filter choices": [lambda c: participants.filter_choices(c)],
    }


def measure(engine: Engine, reps: int, log: Callable[[str], None] = print) -> dict[str, tuple[float, float]]:
    """(p50 ms, p95 ms) of each query alone, `reps` runs each, each in its own snapshot as a page would."""
    rng = random.Random(SEED + 2)
    with snapshot(engine) as conn:
        queries = _samples(conn, rng)
    # a few dispositions, so that the decided queue has something
    with snapshot(engine) as conn:
        flagged = [row.key for row in cases.flag_queue(conn, limit=200).rows]
    decided = datetime(YEAR + 1, 1, 5, 10, tzinfo=UTC)
    for key in flagged[::10]:
        cases.record_disposition(engine, key, "justified", "bench", "bench", decided)
    out: dict[str, tuple[float, float]] = {}
    for name, variants in queries.items():
        for variant in variants:  # warm the caches (lookups, the database's buffers) once
            with snapshot(engine) as conn:
                variant(conn)
        times = []
        for i in range(reps):
            variant = variants[i % len(variants)]
            t0 = time.perf_counter()
            with snapshot(engine) as conn:
                variant(conn)
            times.append((time.perf_counter() - t0) * 1_000)
        out[name] = (percentile(times, 0.5), percentile(times, 0.95))
        log(f"{name}: p50 {out[name][0]:.1f} ms, p95 {out[name][1]:.1f} ms")
    return out


def refresh_per_block(engine: Engine, blocks: int = 20) -> tuple[float, float]:
    """(p50, p95 ms) of ``derive.refresh`` for a new block of ~10 payments (what following the head costs)."""
    rng = random.Random(SEED + 3)
    p = schema.payments
    with engine.connect() as conn:
        sample = list(conn.execute(select(p).order_by(p.c.block_number.desc()).limit(500)))
        last = int(conn.execute(select(schema.checkpoint.c.block_number)).scalar_one())
    times = []
    for i in range(blocks):
        block = last + 1 + i
        rows = []
        for log_index in range(1, 20, 2):
            r = rng.choice(sample)
            rows.append(
                (block, log_index, hex32(rng.getrandbits(256)), GENESIS + block, r.payer, r.vendor, r.program_id,
                 r.category, r.period, 1_000, r.receipt_id, r.evidence_hash, r.cap_left)
            )  # fmt: skip
        with engine.begin() as conn:
            store.insert_rows(conn, "payments", [c.name for c in p.columns], rows)
            conn.execute(schema.blocks.insert(), [synthetic_block(block)])
            conn.execute(schema.checkpoint.update().values(block_number=block, block_hash=hex32(block)))
        t0 = time.perf_counter()
        derive.refresh(engine)
        times.append((time.perf_counter() - t0) * 1_000)
    return percentile(times, 0.5), percentile(times, 0.95)


def _slug(name: str) -> str:
    return "".join(ch if ch.isalnum() else "_" for ch in name.lower()).strip("_").replace("__", "_")


# --- what the indexes cost the indexer ------------------------------------------------------------------------

OLD_PAYMENT_INDEXES = (("ix_payments_payer", "payer"), ("ix_payments_vendor", "vendor"))
NEW_INDEXES = (  # what migration 0004 adds to the tables the indexer writes
    "ix_payments_payer_block_number_log_index",
    "ix_payments_vendor_block_number_log_index_amount",
    "ix_payments_period_block_number_log_index",
    "ix_allocations_spender",
    "ix_redemptions_vendor",
)


def _as_before(url: str) -> None:
    """The indexes of the tables the indexer writes as migration 0003 left them (the rest of 0004 is never
    written by the indexer)."""
    engine = store.open_database(url)
    with engine.begin() as conn:
        for name in NEW_INDEXES:
            conn.execute(text(f"DROP INDEX {name}"))
        for name, column in OLD_PAYMENT_INDEXES:
            conn.execute(text(f"CREATE INDEX {name} ON payments ({column})"))
    engine.dispose()


def indexer_cost(rounds: int, payments_count: int, log: Callable[[str], None]) -> dict[str, Any]:
    from bench import indexer as bench_indexer

    node = bench_indexer.Node(accounts=bench_indexer.FIRST_VENDOR + bench_indexer.VENDORS + 5)
    work = Path(tempfile.mkdtemp(prefix="bench-web-indexer-"))
    server = pgserver.start_server()
    rates: dict[str, list[float]] = defaultdict(list)
    try:
        chain = bench_indexer.build_chain(node, payments_count, log)
        for i in range(rounds):
            for variant in ("before", "after") if i % 2 == 0 else ("after", "before"):
                for backend in ("sqlite", "postgres"):
                    if backend == "sqlite":
                        url = f"sqlite:///{work / f'{variant}-{i}.sqlite'}"
                    else:
                        url = pgserver.create_database(server.url(), f"bench_web_{variant}_{i}")
                    store.open_database(url).dispose()
                    if variant == "before":
                        _as_before(url)
                    events, seconds, _ = bench_indexer.run_indexer_process(node.url, url, chain)
                    rates[f"{backend}_{variant}"].append(events / seconds)
                    log(f"round {i + 1} {backend} {variant}: {events / seconds:,.0f} events/s")
    finally:
        node.stop()
        pgserver.stop_server(server)
    figures: dict[str, Any] = {key: round(statistics.median(values)) for key, values in sorted(rates.items())}
    for backend in ("sqlite", "postgres"):
        before, after = figures[f"{backend}_before"], figures[f"{backend}_after"]
        figures[f"{backend}_cost_pct"] = round(100.0 * (before - after) / before, 1)
    figures["runs"] = {key: [round(v) for v in values] for key, values in sorted(rates.items())}
    return figures


# --- main -------------------------------------------------------------------------------------------------------


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--payments", type=int, default=1_000_000, help="payments in the year (default 1,000,000)")
    parser.add_argument("--reps", type=int, default=40, help="runs of each query (default 40)")
    parser.add_argument("--db", help="a PostgreSQL database URL of your own (default: a throwaway server)")
    parser.add_argument("--reset", action="store_true", help="with --db: empty it first")
    parser.add_argument("--reuse", action="store_true", help="with --db: measure the data already there")
    parser.add_argument(
        "--indexer-cost", action="store_true", help="measure the console's indexes' cost to the indexer"
    )
    parser.add_argument("--rounds", type=int, default=4, help="--indexer-cost: runs per variant and database")
    args = parser.parse_args(argv)
    console = wide_console()
    log = console.log
    started = time.monotonic()
    if args.indexer_cost:
        figures = indexer_cost(args.rounds, 100_000, log)
        runs = figures.pop("runs")
        report(
            "web_indexer_cost",
            None,
            figures,
            {},
            {
                "command": "python -m bench.web_data --indexer-cost",
                "runs_events_per_s": runs,
                "load_average": os.getloadavg(),
                "cpus": os.cpu_count(),
            },
            title="the console's indexes: indexer events/s before (0003 indexes) and after (0004)",
            console=console,
        )
        return 0
    server = None
    if args.db:
        url = pgserver.psycopg_url(args.db)
    else:
        server = pgserver.start_server()
        url = pgserver.create_database(server.url(), "bench_web")
    try:
        engine = store.open_database(url)
        if engine.dialect.name != "postgresql":
            raise SystemExit("bench.web_data measures PostgreSQL: give a postgresql:// URL")
        figures: dict[str, Any] = {}
        if not args.reuse:
            if args.reset:
                store.reset(engine)
            generated = generate(engine, args.payments, log=log)
            log(
                f"generated {generated.payments:,} payments in {generated.seconds:.0f} s "
                f"({generated.refused:,} drawn over a cap or limit, not paid)"
            )
            t0 = time.monotonic()
            built = derive.refresh(
                engine, on_step=lambda reached, cp: log(f"derived up to block {reached:,} of {cp:,}")
            )
            figures["derive_first_build_s"] = round(time.monotonic() - t0, 1)
            figures["flags"] = built.flags
            figures["generate_s"] = round(generated.seconds, 1)
        with engine.connect() as conn:
            figures["payments"] = int(conn.execute(select(func.count()).select_from(schema.payments)).scalar_one())
            figures.setdefault("flags", int(conn.execute(text("SELECT count(*) FROM payment_flags")).scalar_one()))
        timings = measure(engine, args.reps, log)
        rows: list[Row] = [Row("payments", unit="payments"), Row("flags", unit="flags")]
        for key in ("generate_s", "derive_first_build_s"):
            if key in figures:
                rows.append(Row(key, unit="s"))
        targets: dict[str, Target] = {}
        worst = 0.0
        for name, (p50, p95) in timings.items():
            slug = _slug(name)
            figures[f"{slug}_p50_ms"] = round(p50, 1)
            figures[f"{slug}_p95_ms"] = round(p95, 1)
            rows.append(Row(f"{slug}_p50_ms", label=f"{name} p50", unit="ms"))
            rows.append(Row(f"{slug}_p95_ms", label=f"{name} p95", unit="ms"))
            targets[f"{slug}_p95_ms"] = Target.at_most(TARGET_P95_MS)
            worst = max(worst, p95)
        figures["worst_query_p95_ms"] = round(worst, 1)
        rows.append(Row("worst_query_p95_ms", unit="ms"))
        p50, p95 = refresh_per_block(engine)
        figures["refresh_per_block_p50_ms"], figures["refresh_per_block_p95_ms"] = round(p50, 1), round(p95, 1)
        rows += [
            Row("refresh_per_block_p50_ms", unit="ms", note="derive.refresh after a block of 10 payments"),
            Row("refresh_per_block_p95_ms", unit="ms"),
        ]
        meta = {
            "command": "python -m bench.web_data",
            "reps": args.reps,
            "database": "PostgreSQL " + str(engine.dialect.server_version_info),
            "throwaway_server": server is not None,
            "load_average": os.getloadavg(),
            "cpus": os.cpu_count(),
            "python": sys.version.split()[0],
            "duration_seconds": round(time.monotonic() - started, 1),
        }
        report(
            "web_queries", rows, figures, targets, meta, title="console queries at scale (PostgreSQL)", console=console
        )
        engine.dispose()
    finally:
        if server is not None:
            pgserver.stop_server(server)
    return 0


if __name__ == "__main__":
    sys.exit(main())

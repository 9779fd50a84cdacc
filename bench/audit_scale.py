"""A national rollout's year in the audit database: 10,000,000 payments in PostgreSQL, and what the auditors'
commands cost there (issue 12 section 2).

``python -m bench.audit_scale`` (``make bench-audit-scale``; ``--payments N`` to run smaller) starts a throwaway
PostgreSQL server (``audit.db.pgserver``), migrates a database to the current schema (monthly partitions,
migration 0006) and writes a synthetic year straight into it *through the schema*: rows shaped exactly as the
indexer writes them, bulk ``COPY`` through the indexer's own ``store.insert_rows`` (which creates each month's
partitions as its rows arrive). Then it times, through the library functions the CLI commands call
(``audit report``: ``reports.build_report``, per section; ``audit flags``: ``flags.flags_of`` for one month, the
derived queue that ``derive.refresh`` builds first (timed apart: ``derive_s``), and ``flags.find_flags`` computing;
``audit public``: ``public.public_aggregates``; the console's one-month export: ``export.export_payments``),
each in a read snapshot as the CLI reads, and EXPLAINs the one-month payments questions (partitions read).
Results: a table and ``bench/results/audit_scale.json``. Targets: every one-month question < 2 s, the yearly
report < 10 s.

The year (``generate``): 2030 in KST, one block per second; 5 programs (four ministries' business promotion,
06-23 h, one field program open day and night), 100,000 officials in 40 departments, 20,000 vendors in six
categories; each official has a lognormal activity and a few regular vendors per category (85 % of payments),
lunch and dinner peaks, 3 % at weekends, fewer on public holidays, field staff sometimes at night; amounts
lognormal per category, 0.4 % just under the evidence threshold, 0.1 % at the limit, 0.3 % bills split in two;
monthly weight heavier in December. Beside each payment its Transfer (as on the chain); monthly allocations to
every official, monthly vendor redemptions, enrolments, vendor registrations, program configurations. Caps are
not enforced (``cap_left`` is the running remainder, floored at 0): no query reads them.
"""

from __future__ import annotations

import argparse
import json
import math
import multiprocessing
import os
import pwd
import random
import resource
import sys
import tempfile
import time
from collections import defaultdict
from collections.abc import Callable, Iterator, Sequence
from datetime import UTC, date, datetime, timedelta, timezone
from pathlib import Path
from typing import Any

import holidays
from sqlalchemy import Connection, Engine, select, text

from bench.report import Row, Target, report, run_meta, wide_console
from bench.web_data import addr, hex32, mark_indexed, text32
from deposit_token.audit import derive
from deposit_token.audit.db import casework, pgserver, schema, store
from deposit_token.audit.query import flags as flags_q
from deposit_token.audit.query import overview, reports
from deposit_token.audit.query import public as public_q
from deposit_token.audit.query.approvals import privileged_actions
from deposit_token.audit.query.common import (
    Departments,
    Filters,
    ProgramConfigs,
    derived_current,
    snapshot,
    vendor_names,
)
from deposit_token.audit.query.export import export_payments
from deposit_token.audit.query.payments import PaymentFilter
from deposit_token.domain.categories import Category
from deposit_token.domain.rules import NO_CAP, pack_hours
from deposit_token.processes import free_port

KST = timezone(timedelta(hours=9))
YEAR = 2030
GENESIS = int(datetime(YEAR - 1, 12, 20, tzinfo=KST).timestamp())  # block 0; one block per second after it
SEED = 20301231
CHAIN_ID = 20262
TOKEN = addr("audit-scale-token")
MONTH = 203011  # the one-month questions: November, a heavy month
FLUSH_ROWS = 50_000
MONTH_S = 2.0
YEAR_S = 10.0

# category -> (median KRW, lognormal sigma, share of vendors)
AMOUNTS = {
    Category.RESTAURANT: (55_000, 0.6, 0.45),
    Category.CAFE_BAKERY: (14_000, 0.5, 0.2),
    Category.CATERING: (320_000, 0.5, 0.08),
    Category.CONFERENCE_VENUE: (600_000, 0.35, 0.05),
    Category.LODGING: (120_000, 0.4, 0.12),
    Category.TRANSPORT: (25_000, 0.7, 0.1),
}
BP_SHARE = {
    Category.RESTAURANT: 0.62,
    Category.CAFE_BAKERY: 0.28,
    Category.CATERING: 0.07,
    Category.CONFERENCE_VENUE: 0.03,
}
FIELD_SHARE = {Category.RESTAURANT: 0.5, Category.LODGING: 0.2, Category.TRANSPORT: 0.3}
MONTH_WEIGHT = (0.85, 0.8, 1.0, 1.0, 1.0, 0.95, 0.9, 0.85, 1.0, 1.05, 1.1, 1.3)
PROGRAMS = {  # id -> (name, category shares, opening hours per weekday)
    1: ("BP-2030-MOEF", BP_SHARE, ((6, 23),) * 7),
    2: ("BP-2030-MOIS", BP_SHARE, ((6, 23),) * 7),
    3: ("BP-2030-MOLIT", BP_SHARE, ((6, 23),) * 7),
    4: ("BP-2030-MSIT", BP_SHARE, ((6, 23),) * 7),
    5: ("FIELD-2030-MOLIT", FIELD_SHARE, ((0, 24),) * 7),
}
LIMIT, THRESHOLD, CAP = 1_000_000, 500_000, 3_000_000
ZERO32 = "0x" + "00" * 32
YEAR_START = int(datetime(YEAR, 1, 1, tzinfo=KST).timestamp())
YEAR_END = int(datetime(YEAR + 1, 1, 1, tzinfo=KST).timestamp())
PAYMENT_BYTES = (
    "SELECT sum(pg_total_relation_size(c.oid)) FROM pg_inherits i JOIN pg_class c ON c.oid = i.inhrelid "
    "WHERE i.inhparent = 'payments'::regclass"
)


def columns(table: str) -> list[str]:
    return [c.name for c in schema.metadata.tables[table].columns]


class Writer:
    """Rows per table, flushed with ``store.insert_rows`` (COPY) every FLUSH_ROWS rows, one transaction each."""

    def __init__(self, engine: Engine):
        self.engine = engine
        self.rows: dict[str, list[tuple[Any, ...]]] = defaultdict(list)
        self.pending = 0
        self.written: dict[str, int] = defaultdict(int)

    def add(self, table: str, row: tuple[Any, ...]) -> None:
        self.rows[table].append(row)
        self.pending += 1
        if self.pending >= FLUSH_ROWS:
            self.flush()

    def flush(self) -> None:
        with self.engine.begin() as conn:
            for table, rows in self.rows.items():
                store.insert_rows(conn, table, columns(table), rows)
                self.written[table] += len(rows)
        self.rows.clear()
        self.pending = 0


_HASHES = random.Random()  # transaction hashes and evidence: seeded with the year (generate), apart from its draws


def _tx() -> str:
    return "0x" + _HASHES.randbytes(32).hex()


def _moment(rng: random.Random, program: int, day: date, kr: holidays.HolidayBase) -> int | None:
    """A local time on `day` within the program's hours (lunch and dinner peaks), or None (no payment)."""
    if day.weekday() >= 5 and rng.random() > 0.05:
        return None
    if day in kr and rng.random() > 0.2:
        return None
    r = rng.random()
    if program == 5 and r < 0.08:
        hour = rng.choice((23, 0, 1, 2, 4, 5))
    elif r < 0.6:
        hour = rng.choice((11, 12, 12, 13))
    elif r < 0.92:
        hour = rng.choice((18, 19, 19, 20, 21))
    else:
        hour = rng.randint(7, 21)
    return int(
        datetime(day.year, day.month, day.day, hour, rng.randrange(60), rng.randrange(60), tzinfo=KST).timestamp()
    )


def generate(
    engine: Engine, payments: int, spenders: int, vendors: int, log: Callable[[str], None] = print, seed: int = SEED
) -> dict[str, Any]:
    """Writes the year into `engine`'s migrated, empty database; returns counts and seconds."""
    started = time.monotonic()
    rng = random.Random(seed)
    _HASHES.seed(seed + 1)  # same seed, same data (hashes included), and the draws are those of the seed alone
    kr = holidays.country_holidays("KR", years=[YEAR])
    store.bind_to_chain(engine, CHAIN_ID, TOKEN, 0, "bench-audit-scale")
    w = Writer(engine)
    ts = int(datetime(YEAR - 1, 12, 28, 10, tzinfo=KST).timestamp())
    block, log_index = ts - GENESIS, 0

    highest = block

    def position(stamp: int) -> tuple[int, int]:
        nonlocal block, log_index, highest
        if stamp - GENESIS != block:
            block, log_index = stamp - GENESIS, 0
        log_index += 1
        highest = max(highest, block)
        return block, log_index

    tx = _tx()
    for pid, (name, share, hours) in PROGRAMS.items():
        mask = sum(1 << int(c) for c in share)
        for category in share:
            w.add("category_caps", (*position(ts), tx, ts, pid, int(category), CAP))
        w.add(
            "program_configs",
            (*position(ts), tx, ts, pid, 1, name, addr(f"treasury-{pid}"), YEAR_START, YEAR_END, 540, mask,
             pack_hours(hours), LIMIT, THRESHOLD),
        )  # fmt: skip
    by_category: dict[Category, list[str]] = {}
    ts += 1
    for category, (_, _, share) in AMOUNTS.items():
        count = max(2, round(vendors * share))
        by_category[category] = [addr(f"scale-vendor-{category.name}-{i}") for i in range(count)]
        for i, vendor in enumerate(by_category[category]):
            if i % 500 == 0:
                ts += 1
            w.add(
                "vendor_registrations",
                (*position(ts), _tx(), ts, vendor, int(category), f"{category.name.title()} {i + 1:05d}"),
            )
    # officials: 40 departments over the four business-promotion programs, 8 % in the field program
    officials: list[tuple[str, int, str, float]] = []
    regulars: list[dict[Category, tuple[list[str], list[float]]]] = []
    for i in range(spenders):
        field = i % 12 == 0
        program = 5 if field else 1 + (i // 12) % 4
        department = f"D{(i * 7) % 40:02d}"
        officials.append((addr(f"scale-official-{i}"), program, department, rng.lognormvariate(0, 0.7)))
        own: dict[Category, tuple[list[str], list[float]]] = {}
        for category in PROGRAMS[program][1]:
            pool = by_category[category]
            picks = [pool[rng.randrange(len(pool))] for _ in range(rng.randint(2, 5))]
            own[category] = (picks, [1.0 / (k + 1) ** 1.3 for k in range(len(picks))])
        regulars.append(own)
    ts += 1
    for i, (who, program, department, _) in enumerate(officials):
        if i % 500 == 0:
            ts += 1
        w.add("enrolments", (*position(ts), _tx(), ts, who, program, text32(department), department))
    w.flush()
    log(f"setup: {spenders:,} officials, {sum(len(v) for v in by_category.values()):,} vendors")
    weights = [o[3] for o in officials]
    cumulative = list(_accumulate(weights))
    spent_total = 0
    for month in range(1, 13):
        first = date(YEAR, month, 1)
        days = [d for d in (first + timedelta(days=i) for i in range(31)) if d.month == month]
        period = YEAR * 100 + month
        # allocations at the start of the month, 28 per block over the first hour
        start = int(datetime(YEAR, month, 1, 7, tzinfo=KST).timestamp())
        for i, (who, program, _, _) in enumerate(officials):
            stamp = start + i // 28
            w.add("allocations", (*position(stamp), _tx(), stamp, hex32(period), program, who, CAP))
        wanted = round(payments * MONTH_WEIGHT[month - 1] / sum(MONTH_WEIGHT))
        drawn: list[tuple[int, int, Category, str, int]] = []
        picks = rng.choices(range(len(officials)), cum_weights=cumulative, k=wanted * 2)
        k = 0
        while len(drawn) < wanted:
            o = picks[k % len(picks)]
            k += 1
            program = officials[o][1]
            when = _moment(rng, program, days[rng.randrange(len(days))], kr)
            if when is None:
                continue
            share = PROGRAMS[program][1]
            category = rng.choices(list(share), weights=list(share.values()))[0]
            if rng.random() < 0.85:
                pool, pw = regulars[o][category]
                vendor = rng.choices(pool, weights=pw)[0]
            else:
                pool = by_category[category]
                vendor = pool[rng.randrange(len(pool))]
            median, sigma, _ = AMOUNTS[category]
            amount = min(LIMIT, max(1_000, int(rng.lognormvariate(math.log(median), sigma)) // 100 * 100))
            r = rng.random()
            if r < 0.004:
                amount = rng.randrange(475_000, 500_000, 100)
            elif r < 0.005:
                amount = rng.randrange(950_000, LIMIT + 1, 100)
            drawn.append((when, o, category, vendor, amount))
            if r > 0.997 and len(drawn) < wanted:
                drawn.append((when + 1_200, o, category, vendor, rng.randrange(250_000, 499_000, 1_000)))
        drawn.sort(key=lambda d: d[0])
        spent: dict[tuple[int, int], int] = defaultdict(int)
        received: dict[str, int] = defaultdict(int)
        for when, o, category, vendor, amount in drawn:
            who, program = officials[o][0], officials[o][1]
            spent_key = (o, int(category))
            spent[spent_key] += amount
            evidence = _tx() if amount >= THRESHOLD or rng.random() < 0.1 else ZERO32
            b, li = position(when)
            txh = _tx()
            w.add("transfers", (b, li, txh, when, who, vendor, amount))
            b, li = position(when)
            w.add(
                "payments",
                (b, li, txh, when, who, vendor, program, int(category), period, amount, hex32(li + b),
                 evidence, max(CAP - spent[spent_key], 0) if CAP < NO_CAP else NO_CAP),
            )  # fmt: skip
            received[vendor] += amount
        spent_total += len(drawn)
        end = int(datetime(YEAR, month, days[-1].day, 23, 50, tzinfo=KST).timestamp())
        for i, (vendor, amount) in enumerate(sorted(received.items())):
            stamp = end + i // 50
            reference = f"KB-{period}-{i:05d}"
            w.add("redemptions", (*position(stamp), _tx(), stamp, vendor, text32(reference[:32]), amount, reference))
        w.flush()
        log(f"{YEAR}-{month:02d}: {spent_total:,} payments written ({time.monotonic() - started:.0f} s)")
    # the checkpoint at the highest block written (the month-end redemptions come before December's last
    # night payments): every row is indexed, as the indexer's checkpoint says
    with engine.begin() as conn:
        mark_indexed(conn, highest)
    written = time.monotonic() - started
    analysed = time.monotonic()
    with engine.connect().execution_options(isolation_level="AUTOCOMMIT") as conn:
        conn.exec_driver_sql("VACUUM ANALYZE")
    return {
        "payments": w.written["payments"],
        "rows": dict(w.written),
        "write_s": round(written, 1),
        "vacuum_analyze_s": round(time.monotonic() - analysed, 1),
    }


def _accumulate(values: Sequence[float]) -> Iterator[float]:
    total = 0.0
    for v in values:
        total += v
        yield total


# --- measuring ------------------------------------------------------------------------------------------------


def _report_sections(conn: Connection) -> dict[str, float]:
    """The yearly report, step by step exactly as ``reports.build_report`` makes it: seconds per section (their
    sum is the report's time; ``spend`` includes the vendor sums that ``vendors`` ranks). With the derived
    tables current (as ``derive_s`` left them): sums from the cells, distinct payers from the payments."""
    t: dict[str, float] = {}
    mark = time.perf_counter()

    def lap(key: str) -> None:
        nonlocal mark
        now = time.perf_counter()
        t[key] = round(now - mark, 3)
        mark = now

    filters = Filters()
    p = schema.payments
    where = filters.payment_clause(p)
    cells = derived_current(conn)
    # as build_report: from the cells only the re-enrolled spenders' histories are needed
    programs, vendors = ProgramConfigs.load(conn), vendor_names(conn)
    departments = Departments.load(conn, reenrolled_only=cells)
    lap("setup")
    dimensions = list(reports.DIMENSIONS)
    if cells:
        tallies = reports._cell_tallies(conn, filters, dimensions, where, departments)
    else:
        tallies = {d: reports.dimension_tallies(conn, d, where, departments) for d in dimensions}
    total = sum(amount for _, _, amount in tallies["vendor"].values())
    for d in reports.DIMENSIONS:
        reports._spend_rows(d, tallies[d], total, programs, vendors)
    lap("spend")
    if cells:
        spent = {k: a for k, (_, _, a) in tallies["program"].items()}
        overview.flows(conn, filters, spent, programs)
    else:
        reports.flows(conn, filters, programs)
    lap("flows")
    categories: dict[str, set[int]] = defaultdict(set)
    if cells:
        vc = casework.vendor_cells
        pairs = select(vc.c.vendor, vc.c.category).where(filters.payment_clause(vc), vc.c.payments > 0).distinct()
    else:
        pairs = select(p.c.vendor, p.c.category).where(where).distinct()
    for vendor, category in conn.execute(pairs):
        categories[vendor].add(category)
    reports._rank_vendors(conn, tallies["vendor"], categories, total, vendors, filters, 10)
    lap("vendors")
    privileged_actions(conn)
    lap("approvals")
    t["total"] = round(sum(t.values()), 3)
    t["from_cells"] = cells
    return t


def _export_month(conn: Connection) -> int:
    with tempfile.TemporaryDirectory(prefix="audit-scale-") as work:
        written = export_payments(conn, Path(work), PaymentFilter(since=MONTH, until=MONTH), overwrite=True)
    return sum(x.rows for x in written)


ONE_MONTH = Filters(since=MONTH, until=MONTH)
QUESTIONS: dict[str, Callable[[Connection], Any]] = {  # figure -> the library call of the CLI command
    "report_s": _report_sections,  # build_report, timed per section
    "report_month_s": lambda conn: reports.build_report(conn, ONE_MONTH),
    "flags_month_s": lambda conn: len(flags_q.flags_of(conn, filters=ONE_MONTH)),  # the derived queue
    "flags_month_computed_s": lambda conn: len(flags_q.find_flags(conn, filters=ONE_MONTH)),
    "public_s": lambda conn: len(public_q.public_aggregates(conn, Filters())),
    "public_month_s": lambda conn: len(public_q.public_aggregates(conn, ONE_MONTH)),
    "export_month_s": _export_month,
}


def _child(url: str, key: str, send: Any) -> None:
    engine = store.create_db_engine(url)
    started = time.perf_counter()
    with snapshot(engine) as conn:
        result = QUESTIONS[key](conn)
    seconds = time.perf_counter() - started
    rss_mb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    send.send((seconds, rss_mb, result if isinstance(result, int | dict) else None))
    engine.dispose()


def ask(url: str, key: str, timeout_s: float) -> tuple[float | None, float | None, Any]:
    """Runs one question in a child process (its own connection and memory, a read snapshot as the CLI reads):
    (seconds, the child's peak RSS in MB, what it returned if a count or dict), or (None, None, None) when it
    took longer than `timeout_s` (it is stopped)."""
    context = multiprocessing.get_context("spawn")  # a fresh interpreter: its peak RSS is the question's own
    receive, send = context.Pipe(duplex=False)
    child = context.Process(target=_child, args=(url, key, send), daemon=True)
    child.start()
    if not receive.poll(timeout_s):
        child.kill()
        child.join()
        return None, None, None
    seconds, rss_mb, result = receive.recv()
    child.join()
    return round(seconds, 3), round(rss_mb), result


def measure(url: str, timeout_s: float, log: Callable[[str], None] = print) -> dict[str, Any]:
    """Times each question; a question over `timeout_s` is recorded as None with ``<key>_timeout``."""
    t: dict[str, Any] = {}
    for key in QUESTIONS:
        seconds, rss_mb, result = ask(url, key, timeout_s)
        name = key[: -len("_s")]
        if seconds is None:  # the figure is the time it was given: at least that long
            t[key] = timeout_s
            t[f"{name}_timed_out"] = True
            log(f"{name}: stopped after {timeout_s:.0f} s")
            continue
        t[key] = seconds
        if isinstance(result, dict):  # the report's sections
            t.update(
                {f"{name}_{section}_s": s for section, s in result.items() if section not in ("total", "from_cells")}
            )
            if "from_cells" in result:
                t[f"{name}_from_cells"] = result["from_cells"]
        t[f"{name}_rss_mb"] = rss_mb
        if isinstance(result, int):
            t[f"{name}_rows"] = result
        log(f"{name}: {seconds} s, peak RSS {rss_mb} MB" + (f", {result:,} rows" if isinstance(result, int) else ""))
    return t


ONE_MONTH_SQL = {  # the one-month questions' payments statements, as the library writes them (see the test)
    "report_month_facts": f"SELECT payer, program_id, category, vendor, period, count(*), sum(amount) FROM payments "
    f"WHERE period >= {MONTH} AND period <= {MONTH} GROUP BY payer, program_id, category, vendor, period",
    "flags_month": f"SELECT * FROM payments WHERE period >= {MONTH} AND period <= {MONTH} "
    "ORDER BY period, block_number, log_index",
    "export_month_page": f"SELECT * FROM payments WHERE period = {MONTH} ORDER BY block_number DESC, log_index DESC "
    "LIMIT 201",
    "console_filtered_totals": f"SELECT count(*), sum(amount) FROM payments WHERE program_id IN (1) AND "
    f"period = {MONTH} AND amount >= 100000",
}


def plans(conn: Connection) -> dict[str, Any]:
    """For each one-month statement: the payments partitions its plan reads, its scan kinds, its time."""
    out: dict[str, Any] = {}
    for name, sql in ONE_MONTH_SQL.items():
        plan = conn.execute(text("EXPLAIN (ANALYZE, FORMAT JSON) " + sql)).scalar_one()
        plan = plan[0] if isinstance(plan, list) else plan
        nodes = list(_nodes(plan["Plan"]))
        read = sorted({n["Relation Name"] for n in nodes if n.get("Relation Name", "").startswith("payments")})
        scans = sorted({n["Node Type"] for n in nodes if "Scan" in n["Node Type"]})
        out[name] = {"partitions": read, "scans": scans, "ms": round(plan["Execution Time"], 1)}
    return out


def _nodes(plan: dict[str, Any]) -> Iterator[dict[str, Any]]:
    yield plan
    for child in plan.get("Plans", []):
        yield from _nodes(child)


GENERATED = "generated.json"  # in --data-dir: what the kept database holds, written once its year is complete


class KeptServer:
    """A PostgreSQL server whose data stays in `folder` (``--data-dir``): initdb the first time, started again on
    later runs, stopped cleanly (``fast``: the data is kept) at the end. The throwaway server's helpers
    (``pgserver``) run it; its watchdog is not used, since that deletes the folder."""

    def __init__(self, folder: Path):
        self.folder = folder.resolve()
        self.bindir = pgserver.find_bindir()
        self.port = 0

    def start(self) -> None:
        self.folder.mkdir(parents=True, exist_ok=True)
        if os.geteuid() == 0:  # initdb and the server run as postgres (pgserver._as_server_user)
            entry = pwd.getpwnam(pgserver.SUPERUSER)
            os.chown(self.folder, entry.pw_uid, entry.pw_gid)
        if (self.folder / "data" / "postmaster.pid").exists():
            raise SystemExit(f"{self.folder} is in use by a running server (data/postmaster.pid): stop it first")
        if not (self.folder / "data" / "PG_VERSION").exists():
            pgserver._initdb(self.bindir, self.folder)
        self.port = free_port()
        pgserver._start(self.bindir, self.folder, self.port)

    def stop(self) -> None:
        pgserver._run(
            [str(self.bindir / "pg_ctl"), "-D", str(self.folder / "data"), "-m", "fast", "-w", "stop"],
            self.folder,
            "stop",
        )

    def url(self, database: str = "postgres") -> str:
        return f"postgresql+psycopg://{pgserver.SUPERUSER}@127.0.0.1:{self.port}/{database}"


def _kept_year(folder: Path | None, wanted: dict[str, int]) -> dict[str, Any] | None:
    """What a kept database generated earlier (same parameters), or None (nothing complete kept: generate)."""
    if folder is None or not (folder / GENERATED).is_file():
        return None
    kept: dict[str, Any] = json.loads((folder / GENERATED).read_text())
    if kept["parameters"] != wanted:
        raise SystemExit(
            f"{folder} holds a year generated with {kept['parameters']}, not {wanted}: "
            "give the same parameters or another --data-dir"
        )
    return kept


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.audit_scale", description=__doc__.splitlines()[0])
    parser.add_argument("--payments", type=int, default=10_000_000, help="payments in the year (default 10,000,000)")
    parser.add_argument("--spenders", type=int, default=100_000, help="officials (default 100,000)")
    parser.add_argument("--vendors", type=int, default=20_000, help="vendors (default 20,000)")
    parser.add_argument("--seed", type=int, default=SEED, help=f"the year's random seed (default {SEED})")
    parser.add_argument(
        "--timeout", type=float, default=300.0, help="seconds before a question is stopped (default 300)"
    )
    parser.add_argument(
        "--data-dir",
        type=Path,
        help="keep the server's data in DIR: a later run with the same parameters reuses it (migrated to the "
        "current schema, derived tables refreshed) instead of generating the year again",
    )
    parser.add_argument(
        "--build-only", action="store_true", help="generate (or reuse) and derive, then stop: no questions timed"
    )
    parser.add_argument("--results-dir", type=Path, help="write audit_scale.json here (default bench/results/)")
    args = parser.parse_args(argv)
    if args.payments < 1_000 or args.spenders < 10 or args.vendors < 10:
        parser.error("give at least 1,000 payments, 10 spenders and 10 vendors")
    if args.data_dir is not None and args.data_dir.exists() and not args.data_dir.is_dir():
        parser.error(f"--data-dir {args.data_dir} is not a folder")
    wanted = {"payments": args.payments, "spenders": args.spenders, "vendors": args.vendors, "seed": args.seed}
    started, load_before = time.monotonic(), os.getloadavg()[0]
    kept = _kept_year(args.data_dir, wanted)
    kept_server = KeptServer(args.data_dir) if args.data_dir is not None else None
    server = None
    if kept_server is not None:
        kept_server.start()
        server_url = kept_server.url()
    else:
        server = pgserver.start_server()
        server_url = server.url()
    try:
        if kept is None:
            url = pgserver.create_database(server_url, "audit_scale")
            apply_settings(url)
            engine = store.open_database(url)
            gen = generate(engine, args.payments, args.spenders, args.vendors, seed=args.seed)
            if args.data_dir is not None:
                kept = {
                    "parameters": wanted,
                    "generated_at": datetime.now(UTC).isoformat(timespec="seconds"),
                    **gen,
                }
                (args.data_dir / GENERATED).write_text(json.dumps(kept, indent=2) + "\n")
        else:
            url = pgserver.with_database(server_url, "audit_scale")
            apply_settings(url)
            upgraded = time.monotonic()
            engine = store.open_database(url)  # a database kept by an older version: migrated forward here
            gen = {**kept, "upgrade_s": round(time.monotonic() - upgraded, 1)}
            print(f"reusing the year generated {kept['generated_at']} in {args.data_dir}")
        with engine.connect() as conn:
            size = int(conn.execute(text("SELECT pg_database_size(current_database())")).scalar_one())
            payment_bytes = int(conn.execute(text(PAYMENT_BYTES)).scalar_one())
        # the derived tables (flag queue, monthly cells) that the indexer's server keeps current after each
        # commit: built here in one go, timed apart (the questions read them when current); on a kept database
        # only what is missing (a build cut short, a table added by a later migration)
        derived = time.monotonic()
        derive.refresh(engine)
        derive_s = round(time.monotonic() - derived, 1)
        if kept is not None and kept.get("derive_s") is None:
            kept["derive_s"] = derive_s
            (args.data_dir / GENERATED).write_text(json.dumps(kept, indent=2) + "\n")
        engine.dispose()
        if args.build_only:
            print(f"built: {gen['payments']:,} payments, derive {derive_s} s, {size / 1e9:.2f} GB")
            return 0
        times = measure(url, args.timeout)
        with engine.connect() as conn:
            explained = plans(conn)
        engine.dispose()
    finally:
        if kept_server is not None:
            kept_server.stop()
        elif server is not None:
            pgserver.stop_server(server)
    figures: dict[str, Any] = {
        "payments": gen["payments"],
        "generate_s": gen["write_s"],
        "vacuum_analyze_s": gen["vacuum_analyze_s"],
        "derive_s": derive_s,
        **({"upgrade_s": gen["upgrade_s"]} if "upgrade_s" in gen else {}),
        "db_size_gb": round(size / 1e9, 2),
        "payments_gb": round(payment_bytes / 1e9, 2),
        **times,
        "rows": gen["rows"],
        "one_month_plans": explained,
        "one_month_reads_one_partition": all(p["partitions"] == [f"payments_p{MONTH}"] for p in explained.values()),
    }
    rows: list[Row | str] = [
        Row("payments", "payments in the year"),
        Row("generate_s", "written through the schema (COPY)", "s"),
        Row("derive_s", "derived flag queue and cells built (derive.refresh)", "s"),
        Row("db_size_gb", "database size", "GB"),
        Row("report_s", "audit report, the year", "s"),
        Row("report_setup_s", "  programs, vendors, departments", "s"),
        Row("report_spend_s", "  spend by 5 dimensions (SQL sums)", "s"),
        Row("report_flows_s", "  flows", "s"),
        Row("report_vendors_s", "  top vendors", "s"),
        Row("report_approvals_s", "  privileged actions", "s"),
        Row("report_month_s", "audit report, one month", "s"),
        Row("flags_month_s", "audit flags, one month (derived queue)", "s"),
        Row("flags_month_computed_s", "  computed from the payments", "s"),
        Row("public_s", "audit public, the year", "s"),
        Row("public_month_s", "audit public, one month", "s"),
        Row("export_month_s", "export of one month's payments", "s"),
        Row("one_month_reads_one_partition", "one-month plans read one partition"),
    ]
    targets = {
        "report_s": Target.at_most(YEAR_S),
        "report_month_s": Target.at_most(MONTH_S),
        "flags_month_s": Target.at_most(MONTH_S),
        "public_month_s": Target.at_most(MONTH_S),
        "export_month_s": Target.at_most(MONTH_S),
    }
    meta = {
        **run_meta("audit_scale", started, load_before),
        "spenders": args.spenders,
        "vendors": args.vendors,
        "programs": len(PROGRAMS),
        "month": MONTH,
        "server": ("kept" if args.data_dir else "throwaway")
        + " PostgreSQL (audit.db.pgserver), "
        + ", ".join(SETTINGS),
        "seed": args.seed,
        "data": {
            "reused": "upgrade_s" in gen,
            "data_dir": str(args.data_dir) if args.data_dir else None,
            "generated_at": kept["generated_at"] if kept else None,
            "generate_s": kept["write_s"] if kept else None,
        },
    }
    report(
        "audit_scale",
        rows,
        figures,
        targets,
        meta,
        title=f"Audit database at {gen['payments']:,} payments",
        results_dir=args.results_dir,
    )
    return 0


SETTINGS = ("jit = off", "work_mem = '64MB'", "maintenance_work_mem = '1GB'", "max_parallel_workers_per_gather = 2")


def apply_settings(url: str) -> None:
    """An audit server's settings (reloaded, no restart): sorts and hash aggregates of a month in memory; no JIT
    (compiling each partition's plan took seconds, longer than the queries: 16 s for a 0.1 s public query)."""
    admin = store.create_db_engine(url)
    with admin.connect().execution_options(isolation_level="AUTOCOMMIT") as conn:
        for setting in SETTINGS:
            conn.exec_driver_sql(f"ALTER SYSTEM SET {setting}")
        conn.exec_driver_sql("SELECT pg_reload_conf()")
    admin.dispose()


if __name__ == "__main__":
    wide_console()
    sys.exit(main())

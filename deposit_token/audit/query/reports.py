"""The auditors' spending report: spend by department, program, category, vendor and month; the money flows of
each program (allocated vs spent vs returned vs clawed back vs swept, and what vendors redeemed); top vendors.

Pure functions over a SQLAlchemy Connection: they return dataclasses; ``render`` turns them into tables, CSV
or JSON. Amounts are integers (KRW, the token has 0 decimals).

Payments are summed in SQL per (payer, program, category, vendor, month); only a payer whose department changed
(re-enrolment) has its payments read one by one, so each payment counts for the department the payer had when
paying.
"""

from __future__ import annotations

from collections import Counter, defaultdict
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from operator import attrgetter
from typing import TYPE_CHECKING, Any

from sqlalchemy import ColumnElement, Connection, Text, and_, cast, func, or_, select, true

from deposit_token.audit.db import casework, schema
from deposit_token.audit.query.approvals import ActionRow, privileged_actions
from deposit_token.audit.query.common import (
    UNKNOWN_DEPARTMENT,
    Departments,
    Filters,
    ProgramConfigs,
    department_label,
    derived_current,
    format_period,
    program_time_clause,
    timestamp_clause,
    vendor_names,
)
from deposit_token.domain.categories import category_name
from deposit_token.domain.rules import KST_OFFSET_MINUTES

if TYPE_CHECKING:  # render (and rich) is imported only when a report is presented
    from deposit_token.audit.query.render import Section

DIMENSIONS = ("department", "program", "category", "vendor", "month")
SECTIONS = ("spend", "flows", "vendors", "approvals")


@dataclass(frozen=True)
class SpendFact:
    """Payments of one payer to one vendor in one category and month, under one department."""

    department: str
    payer: str
    program_id: int
    category: int
    vendor: str
    period: int
    payments: int
    amount: int


def spend_facts(
    conn: Connection,
    filters: Filters = Filters(),
    departments: Departments | None = None,
    where: ColumnElement[bool] | None = None,
) -> list[SpendFact]:
    """The payments matching `filters` (and `where`, a further clause over ``schema.payments``), summed per
    (department, payer, program, category, vendor, month)."""
    p = schema.payments
    departments = departments or Departments.load(conn)
    changed = departments.changed()
    where = and_(filters.payment_clause(p), true() if where is None else where)
    grouped = conn.execute(
        select(
            p.c.payer,
            p.c.program_id,
            p.c.category,
            p.c.vendor,
            p.c.period,
            func.count().label("n"),
            func.sum(p.c.amount).label("total"),
        )
        .where(where)
        .group_by(p.c.payer, p.c.program_id, p.c.category, p.c.vendor, p.c.period)
    )
    # (department, payer, program, category, vendor, period) -> [payments, amount]
    facts: dict[tuple[str, str, int, int, str, int], list[int]] = {}
    for r in grouped:
        if r.payer in changed:
            continue
        key = (departments.at(r.payer), r.payer, r.program_id, r.category, r.vendor, r.period)
        facts[key] = [r.n, int(r.total)]
    if changed:
        payers = sorted(changed)
        for i in range(0, len(payers), 500):
            rows = conn.execute(
                select(
                    p.c.payer,
                    p.c.program_id,
                    p.c.category,
                    p.c.vendor,
                    p.c.period,
                    p.c.amount,
                    p.c.block_number,
                    p.c.log_index,
                ).where(where, p.c.payer.in_(payers[i : i + 500]))
            )
            for r in rows:
                key = (
                    departments.at(r.payer, (r.block_number, r.log_index)),
                    r.payer,
                    r.program_id,
                    r.category,
                    r.vendor,
                    r.period,
                )
                cell = facts.setdefault(key, [0, 0])
                cell[0] += 1
                cell[1] += int(r.amount)
    return [SpendFact(*key, n, total) for key, (n, total) in sorted(facts.items())]


# --- spend by dimension ----------------------------------------------------------------------------------------


@dataclass
class _Tally:
    """Running totals of one group of facts."""

    payments: int = 0
    amount: int = 0
    payers: set[str] = field(default_factory=set)
    categories: set[int] = field(default_factory=set)


@dataclass(frozen=True)
class SpendRow:
    dimension: str  # department | program | category | vendor | month
    key: str
    label: str
    payments: int
    payers: int  # distinct payers
    amount: int
    share_pct: float  # of all spend matching the filters


_FACT_FIELD = {
    "department": "department",
    "program": "program_id",
    "category": "category",
    "vendor": "vendor",
    "month": "period",
}


def spend_by(
    facts: Iterable[SpendFact],
    dimension: str,
    programs: ProgramConfigs,
    vendors: dict[str, tuple[str, int]],
) -> list[SpendRow]:
    """Spend grouped by one dimension, largest amount first (months in calendar order)."""
    if dimension not in DIMENSIONS:
        raise ValueError(f"unknown dimension {dimension!r} (known: {', '.join(DIMENSIONS)})")
    facts = list(facts)
    total = sum(f.amount for f in facts)
    groups: dict[Any, _Tally] = defaultdict(_Tally)
    key_of = attrgetter(_FACT_FIELD[dimension])  # one getter, not a dict of five per fact (millions in a year)
    for f in facts:
        g = groups[key_of(f)]
        g.payments += f.payments
        g.amount += f.amount
        g.payers.add(f.payer)
    tallies = {k: (g.payments, len(g.payers), g.amount) for k, g in groups.items()}
    return _spend_rows(dimension, tallies, total, programs, vendors)


Tallies = dict[Any, tuple[int, int, int]]
"""A dimension's groups: key -> (payments, distinct payers, amount)."""


def _spend_rows(
    dimension: str, tallies: Tallies, total: int, programs: ProgramConfigs, vendors: dict[str, tuple[str, int]]
) -> list[SpendRow]:
    def label(key: Any) -> str:
        if dimension == "program":
            return programs.name(key)
        if dimension == "category":
            return category_name(key)
        if dimension == "vendor":
            return vendors.get(key, ("(unregistered)", 0))[0]
        if dimension == "month":
            return format_period(key)
        return str(key)  # a department

    rows = [
        SpendRow(
            dimension,
            format_period(k) if dimension == "month" else str(k),
            label(k),
            payments,
            payers,
            amount,
            _pct(amount, total),
        )
        for k, (payments, payers, amount) in tallies.items()
    ]
    if dimension == "month":
        return sorted(rows, key=lambda r: r.key)
    return sorted(rows, key=lambda r: (-r.amount, r.key))


_DIMENSION_COLUMN = {"program": "program_id", "category": "category", "vendor": "vendor", "month": "period"}


def dimension_tallies(
    conn: Connection, dimension: str, where: ColumnElement[bool], departments: Departments
) -> Tallies:
    """What ``spend_by`` counts for one dimension, summed in SQL (payments per group and payer, then per group):
    a year's report reads one row per group and payer instead of one fact per payer, vendor, category and
    month. Departments are the payers' (``department_payments``)."""
    if dimension == "department":
        groups: dict[str, _Tally] = defaultdict(_Tally)
        for department, payer, payments, amount in department_payments(conn, where, departments):
            g = groups[department]
            g.payments += payments
            g.amount += amount
            g.payers.add(payer)
        return {k: (g.payments, len(g.payers), g.amount) for k, g in groups.items()}
    p = schema.payments
    column = p.c[_DIMENSION_COLUMN[dimension]]
    per_payer = (
        select(column.label("k"), func.count().label("n"), func.sum(p.c.amount).label("a"))
        .where(where)
        .group_by(column, p.c.payer)
        .subquery()
    )
    rows = conn.execute(
        select(per_payer.c.k, func.sum(per_payer.c.n), func.count(), func.sum(per_payer.c.a)).group_by(per_payer.c.k)
    )
    return {r[0]: (int(r[1]), int(r[2]), int(r[3])) for r in rows}


def department_payments(
    conn: Connection, where: ColumnElement[bool], departments: Departments, *by: str
) -> list[tuple[Any, ...]]:
    """(department, payer, payments, amount, *`by` columns' values) of the payments matching `where`, summed in SQL
    per payer (and `by`); a payer whose department changed has its payments read one by one, each counting for
    the department the payer had when paying (as ``spend_facts``)."""
    p = schema.payments
    changed = departments.changed()
    extra = [p.c[name] for name in by]
    out: list[tuple[Any, ...]] = []
    grouped = conn.execute(
        select(p.c.payer, func.count(), func.sum(p.c.amount), *extra).where(where).group_by(p.c.payer, *extra)
    )
    for r in grouped:
        if r[0] not in changed:
            out.append((departments.at(r[0]), r[0], int(r[1]), int(r[2]), *r[3:]))
    payers = sorted(changed)
    for i in range(0, len(payers), 500):
        rows = conn.execute(
            select(p.c.payer, p.c.amount, p.c.block_number, p.c.log_index, *extra).where(
                where, p.c.payer.in_(payers[i : i + 500])
            )
        )
        for r in rows:
            out.append((departments.at(r[0], (r[2], r[3])), r[0], 1, int(r[1]), *r[4:]))
    return out


def _pct(part: int, whole: int) -> float:
    return round(100.0 * part / whole, 2) if whole else 0.0


# --- flows per program -----------------------------------------------------------------------------------------


@dataclass(frozen=True)
class FlowRow:
    """Money through one program (or all of them, program_id None): what its treasury allocated to spenders,
    what they spent at vendors, returned, had clawed back or swept after expiry, and what is still unspent.
    ``redeemed`` (vendors' tokens burned for bank money) carries no program, so only the total row has it."""

    program_id: int | None
    program: str
    allocated: int
    spent: int
    returned: int
    clawed_back: int
    swept: int
    unspent: int  # allocated - spent - returned - clawed_back - swept: still held by the program's spenders
    spent_pct: float  # spent / allocated
    redeemed: int | None


def flows(
    conn: Connection,
    filters: Filters = Filters(),
    programs: ProgramConfigs | None = None,
    spent: Mapping[int, int] | None = None,
) -> list[FlowRow]:
    """One row per program (those with any allocation, payment, return, claw-back or sweep), then the total.
    `spent`: what each program's payments add up to under `filters`, when the caller has it (pre-aggregated),
    instead of summing the payments here."""
    programs = programs or ProgramConfigs.load(conn)
    offsets = programs.offsets()
    sums: dict[int, dict[str, int]] = defaultdict(lambda: defaultdict(int))
    p = schema.payments
    spent_rows = (
        spent.items()
        if spent is not None
        else (
            (r.program_id, r.total)
            for r in conn.execute(
                select(p.c.program_id, func.sum(p.c.amount).label("total"))
                .where(filters.payment_clause(p))
                .group_by(p.c.program_id)
            )
        )
    )
    for program_id, amount in spent_rows:
        sums[program_id]["spent"] = int(amount)
    for flow, table in (
        ("allocated", schema.allocations),
        ("returned", schema.returns),
        ("clawed_back", schema.clawbacks),
        ("swept", schema.sweeps),
    ):
        for r in conn.execute(
            select(table.c.program_id, func.sum(table.c.amount).label("total"))
            .where(program_time_clause(table, filters, offsets))
            .group_by(table.c.program_id)
        ):
            sums[r.program_id][flow] = int(r.total)
    rows = [flow_row(pid, programs.name(pid), sums[pid], None) for pid in sorted(sums)]
    total: dict[str, int] = defaultdict(int)
    for values in sums.values():
        for flow, value in values.items():
            total[flow] += value
    redeemed = None
    if not filters.programs:  # redemptions carry no program: only meaningful over all programs
        rt = schema.redemptions
        lo, hi = filters.time_bounds(KST_OFFSET_MINUTES)
        redeemed = int(
            conn.execute(
                select(func.coalesce(func.sum(rt.c.amount), 0)).where(timestamp_clause(rt, lo, hi))
            ).scalar_one()
        )
    rows.append(flow_row(None, "all programs", total, redeemed))
    return rows


def flow_row(program_id: int | None, name: str, values: Mapping[str, int], redeemed: int | None) -> FlowRow:
    """A FlowRow from the sums of its flows (``allocated``, ``spent``, ``returned``, ``clawed_back``, ``swept``)."""
    allocated, spent = values.get("allocated", 0), values.get("spent", 0)
    returned, clawed, swept = values.get("returned", 0), values.get("clawed_back", 0), values.get("swept", 0)
    return FlowRow(
        program_id,
        name,
        allocated,
        spent,
        returned,
        clawed,
        swept,
        allocated - spent - returned - clawed - swept,
        _pct(spent, allocated),
        redeemed,
    )


# --- vendors ---------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class VendorRow:
    rank: int
    vendor: str
    name: str
    category: str
    payments: int
    payers: int
    received: int
    share_pct: float  # of all spend matching the filters
    redeemed: int  # all the vendor's redemptions in the months filtered (redemptions carry no program)


def top_vendors(
    conn: Connection,
    facts: Iterable[SpendFact],
    vendors: dict[str, tuple[str, int]],
    filters: Filters = Filters(),
    limit: int | None = 10,
) -> list[VendorRow]:
    """Vendors by amount received, largest first; `limit` None or 0 = all."""
    facts = list(facts)
    total = sum(f.amount for f in facts)
    per_vendor: dict[str, _Tally] = defaultdict(_Tally)
    for f in facts:
        v = per_vendor[f.vendor]
        v.payments += f.payments
        v.amount += f.amount
        v.payers.add(f.payer)
        v.categories.add(f.category)
    received = {vendor: (v.payments, len(v.payers), v.amount) for vendor, v in per_vendor.items()}
    categories = {vendor: v.categories for vendor, v in per_vendor.items()}
    return _rank_vendors(conn, received, categories, total, vendors, filters, limit)


def _rank_vendors(
    conn: Connection,
    received: Tallies,
    categories: Mapping[str, set[int]],
    total: int,
    vendors: dict[str, tuple[str, int]],
    filters: Filters,
    limit: int | None,
) -> list[VendorRow]:
    ranked = sorted(received.items(), key=lambda kv: (-kv[1][2], kv[0]))
    if limit:
        ranked = ranked[:limit]
    r = schema.redemptions
    lo, hi = filters.time_bounds(KST_OFFSET_MINUTES)
    chosen = [vendor for vendor, _ in ranked]
    redeemed: dict[str, int] = {}
    for i in range(0, len(chosen), 500):
        for row in conn.execute(
            select(r.c.vendor, func.sum(r.c.amount).label("total"))
            .where(r.c.vendor.in_(chosen[i : i + 500]), timestamp_clause(r, lo, hi))
            .group_by(r.c.vendor)
        ):
            redeemed[row.vendor] = int(row.total)
    rows = []
    for rank, (vendor, (payments, payers, amount)) in enumerate(ranked, start=1):
        name, registered = vendors.get(vendor, ("(unregistered)", 0))
        paid_in = "/".join(category_name(c) for c in sorted(categories.get(vendor, ()))) or category_name(registered)
        rows.append(
            VendorRow(
                rank,
                vendor,
                name,
                paid_in,
                payments,
                payers,
                amount,
                _pct(amount, total),
                redeemed.get(vendor, 0),
            )
        )
    return rows


# --- the whole report ------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Report:
    filters: Filters
    spend: list[SpendRow]
    flows: list[FlowRow]
    vendors: list[VendorRow]
    approvals: list[ActionRow] = field(default_factory=list)


def build_report(
    conn: Connection,
    filters: Filters = Filters(),
    dimensions: Iterable[str] = DIMENSIONS,
    top: int | None = 10,
    derived: bool = True,
) -> Report:
    """The report of the payments matching `filters`. When the derived tables are current (``derived`` True and
    ``common.derived_current``: the indexer's server refreshes them after each commit), payments and amounts per
    group, the flows and the vendors' categories come from the monthly cells and only the distinct payers are
    counted from the payments; else everything is summed from the events. The same report either way."""
    programs = ProgramConfigs.load(conn)
    vendors = vendor_names(conn)
    cells = derived and derived_current(conn)
    # from the cells, only the distinct payers need departments, and only the re-enrolled spenders' histories
    departments = Departments.load(conn, reenrolled_only=cells)
    p = schema.payments
    where = filters.payment_clause(p)
    wanted = list(dict.fromkeys([*dimensions, "vendor"]))
    categories: dict[str, set[int]] = defaultdict(set)
    if cells:
        tallies = _cell_tallies(conn, filters, wanted, where, departments)
        vc = casework.vendor_cells
        for vendor, category in conn.execute(
            select(vc.c.vendor, vc.c.category).where(filters.payment_clause(vc), vc.c.payments > 0).distinct()
        ):
            categories[vendor].add(category)
        # imported here: the overview reads the cells and builds on this module's rows
        from deposit_token.audit.query.overview import flows as cell_flows

        spent = {k: a for k, (_, _, a) in tallies["program"].items()} if "program" in tallies else None
        money = cell_flows(conn, filters, spent, programs)
    else:
        # each dimension summed in SQL (what spend_by would count from spend_facts, without a fact per payer,
        # vendor, category and month in Python: a national year has millions of them)
        tallies = {d: dimension_tallies(conn, d, where, departments) for d in wanted}
        for vendor, category in conn.execute(select(p.c.vendor, p.c.category).where(where).distinct()):
            categories[vendor].add(category)
        money = flows(conn, filters, programs)
    by_vendor = tallies["vendor"]
    total = sum(amount for _, _, amount in by_vendor.values())
    spend = [row for d in dimensions for row in _spend_rows(d, tallies[d], total, programs, vendors)]
    return Report(
        filters,
        spend,
        money,
        _rank_vendors(conn, by_vendor, categories, total, vendors, filters, top),
        privileged_actions(conn),
    )


_CELL_COLUMN = {"department": "department", **_DIMENSION_COLUMN}


def _cell_tallies(
    conn: Connection, filters: Filters, dimensions: Iterable[str], where: ColumnElement[bool], departments: Departments
) -> dict[str, Tallies]:
    """``dimension_tallies`` of each dimension with payments and amounts from the cells (``vendor_cells`` for
    vendors, ``spend_cells`` for the others) and the distinct payers counted from ``payer_years`` (``payer_counts``:
    a row per distinct year, program, payer, category and vendor instead of a row per payment)."""
    dimensions = list(dimensions)
    payers = payer_counts(conn, dimensions, where, departments, filters)
    out: dict[str, Tallies] = {}
    for dimension in dimensions:
        cells = casework.vendor_cells if dimension == "vendor" else casework.spend_cells
        column = cells.c[_CELL_COLUMN[dimension]]
        out[dimension] = {
            key: (int(n), payers[dimension].get(key, 0), int(amount))
            for key, n, amount in conn.execute(
                select(column, func.sum(cells.c.payments), func.sum(cells.c.amount))
                .where(filters.payment_clause(cells))
                .group_by(column)
            )
            if n  # a group emptied by a rollback is no group
        }
    return out


def payer_counts(
    conn: Connection,
    dimensions: Iterable[str],
    where: ColumnElement[bool],
    departments: Departments,
    filters: Filters | None = None,
) -> dict[str, dict[Any, int]]:
    """Distinct payers per group of each dimension among the payments matching `where`, in one pass: one row per
    payer with the distinct programs, categories, months and vendors paid (a payer counts once in each of their
    groups; departments as ``department_payments``). One GROUP BY per dimension read the payments five times.
    With `filters` (the derived tables current): the same counts from ``payer_years`` (`where` then only reads the
    payments of payers whose department changed).

    `departments` need only hold the re-enrolled spenders (``Departments.load(reenrolled_only=True)``): every other
    payer's one department comes with their row, joined in SQL (labelling 100,000 spenders' enrolments in Python
    took a quarter of a one-month report)."""
    dimensions = list(dimensions)
    columns = [d for d in dimensions if d != "department"]
    query, allowed, month_values = _payer_rows(conn, columns, where, filters)
    lists: dict[str, list[str]] = {d: [] for d in columns}
    # "year * 4096 + months" values of several rows: each payer's months united in Python
    united = month_values == "years" and "month" in lists
    generic = [(1 + i, lists[d]) for i, d in enumerate(columns) if not (united and d == "month")]
    month_at = 1 + columns.index("month") if united else 0
    months: Counter[int] = Counter()
    memo: dict[str, set[int]] = {}  # a value -> its periods (a few hundred values in a year)
    reenrolled, done = departments.spenders(), set()
    pairs: list[tuple[str | None, str | None]] = []  # the other payers' (department, department_text)
    width = len(columns)
    for row in conn.execute(query):
        payer = row[0]
        if payer in reenrolled:  # a row per enrolment of theirs: taken once, their department from history
            if payer in done:
                continue
            done.add(payer)
        else:
            pairs.append((row[width + 1], row[width + 2]))
        # "a,b,c" (addresses and integers hold no comma); a set per payer: they count once per group; the lists
        # are counted once at the end (a Counter update per payer and dimension took most of the time)
        for at, bucket in generic:
            bucket.extend(set(row[at].split(",")))
        if united:
            months.update(
                set().union(
                    *(memo.get(v) or memo.setdefault(v, _months_of(int(v), allowed)) for v in row[month_at].split(","))
                )
            )
    counts: dict[str, Counter[Any]] = {
        d: Counter({(k if d == "vendor" else int(k)): n for k, n in Counter(lists[d]).items()}) for d in columns
    }
    if month_values == "bits" and "month" in lists:
        counts["month"] = _expand_months(counts["month"], allowed)
    elif united:
        counts["month"] = months
    if "department" in dimensions:
        counts["department"] = _department_counts(conn, pairs, done - departments.changed(), where, departments)
    return {d: dict(counts[d]) for d in dimensions}


def _payer_rows(
    conn: Connection, columns: list[str], where: ColumnElement[bool], filters: Filters | None
) -> tuple[Any, dict[int, int], str]:
    """The SELECT of ``payer_counts``: per payer, each dimension's values as text "a,b,c" (from the payments, or
    from ``payer_years`` with `filters`), then the department and its text of each of the payer's enrolments
    (NULLs if none): a row per enrolment, which only a re-enrolled spender has more than one of. Then the months'
    bits asked per year (``_years_clause``) and what the month values are: "periods" (from the payments),
    "bits" (``year * 4096 + months``, the payer's months of the one year asked ORed in SQL: one value per payer)
    or "years" (a ``year * 4096 + months`` value per row, to unite per payer: ranges over years, and SQLite,
    which has no bit_or)."""
    postgres = conn.dialect.name == "postgresql"

    def listed(column: Any, distinct: bool) -> Any:
        if postgres:  # text, not arrays: PostgreSQL sends and Python splits it faster
            value = cast(column, Text)
            return func.string_agg(value.distinct() if distinct else value, ",")
        return func.group_concat(column.distinct() if distinct else column)  # separator "," (SQLite's default)

    allowed: dict[int, int] = {}
    month_values = "periods"
    if filters is None:
        p: Any = schema.payments
        source_where = where
        aggregates = [listed(p.c[_DIMENSION_COLUMN[d]], True) for d in columns]
    else:
        p = casework.payer_years
        source_where, allowed = _years_clause(filters)
        one_year = (
            filters.since is not None and filters.until is not None and filters.since // 100 == filters.until // 100
        )
        month_values = "bits" if postgres and one_year else "years"
        # no DISTINCT: a payer's rows are distinct already and repeat a program, category or vendor only across
        # categories or years; a set per payer costs less than a sort per payer and aggregate (~2 s a year)
        aggregates = [
            listed(p.c[_YEAR_COLUMN[d]], False)
            if d != "month"
            else cast(p.c.year * 4096 + func.bit_or(p.c.months), Text)  # `year` is one value then
            if month_values == "bits"
            else listed(p.c.year * 4096 + p.c.months, False)
            for d in columns
        ]
    per_payer = (
        select(p.c.payer, *(a.label(f"v{i}") for i, a in enumerate(aggregates)))
        .where(source_where)
        .group_by(p.c.payer, *([p.c.year] if month_values == "bits" else []))
        .subquery()
    )
    e = schema.enrolments
    query = select(per_payer, e.c.department, e.c.department_text).select_from(
        per_payer.outerjoin(e, e.c.spender == per_payer.c.payer)
    )
    return query, allowed, month_values


def _expand_months(values: Counter[int], allowed: Mapping[int, int]) -> Counter[int]:
    """Payers per period from payers per ``year * 4096 + months`` value (each payer's one value)."""
    out: Counter[int] = Counter()
    for value, payers in values.items():
        for period in _months_of(value, allowed):
            out[period] += payers
    return out


def _department_counts(
    conn: Connection,
    pairs: Iterable[tuple[str | None, str | None]],
    same: Iterable[str],
    where: ColumnElement[bool],
    departments: Departments,
) -> Counter[str]:
    """Distinct payers per department: `pairs` (each payer's department and text, None if never enrolled),
    `same` (re-enrolled payers who kept their department: theirs from history) and the payers whose department
    changed, their payments matching `where` read one by one (``department_payments``)."""
    counts: Counter[str] = Counter()
    for (department, text), payers in Counter(pairs).items():
        counts[UNKNOWN_DEPARTMENT if department is None else department_label(department, text)] += payers
    counts.update(departments.at(payer) for payer in same)
    changed = departments.changed()
    if changed:
        seen: dict[str, set[str]] = defaultdict(set)
        for department, payer, *_ in department_payments(
            conn, and_(where, schema.payments.c.payer.in_(sorted(changed))), departments
        ):
            seen[department].add(payer)
        for department, payers_of in seen.items():
            counts[department] += len(payers_of)
    return counts


_YEAR_COLUMN = {"program": "program_id", "category": "category", "vendor": "vendor"}
ALL_MONTHS = (1 << 12) - 1


def _years_clause(filters: Filters) -> tuple[ColumnElement[bool], dict[int, int]]:
    """The ``payer_years`` rows with a payment in `filters`' programs and months, and the months' bits asked in
    each year the range starts or ends in (other years: all of them)."""
    y = casework.payer_years
    allowed: dict[int, int] = {}
    if filters.since is not None:
        year, month = divmod(filters.since, 100)
        allowed[year] = ALL_MONTHS & ~((1 << (month - 1)) - 1)
    if filters.until is not None:
        year, month = divmod(filters.until, 100)
        allowed[year] = allowed.get(year, ALL_MONTHS) & ((1 << month) - 1)
    parts: list[ColumnElement[bool]] = []
    if filters.programs:
        parts.append(y.c.program_id.in_(filters.programs))
    if filters.since is not None:
        parts.append(y.c.year >= filters.since // 100)
    if filters.until is not None:
        parts.append(y.c.year <= filters.until // 100)
    for year, bits in allowed.items():
        if bits != ALL_MONTHS:
            parts.append(or_(y.c.year != year, y.c.months.op("&")(bits) != 0))
    return and_(true(), *parts), allowed


def _months_of(value: int, allowed: Mapping[int, int]) -> set[int]:
    """The periods ``yyyymm`` of a ``year * 4096 + months`` value, only the months `allowed` if its year is named."""
    year, bits = divmod(int(value), 4096)
    bits &= allowed.get(year, ALL_MONTHS)
    return {year * 100 + m for m in range(1, 13) if bits >> (m - 1) & 1}


# --- presentation ----------------------------------------------------------------------------------------------


def report_sections(report: Report, sections: Iterable[str] = SECTIONS) -> list[Section]:
    """The report as ``render.Section`` s, in the order asked."""
    from deposit_token.audit.query.render import Col, Section

    built = {
        "spend": Section(
            "spend",
            "Spend",
            [
                Col("dimension", "dimension"),
                Col("key", "{group}"),
                Col("label", "name", same_as="key"),
                Col("payments", "payments", "int"),
                Col("payers", "payers", "int"),
                Col("amount", "amount (KRW)", "amount"),
                Col("share_pct", "share", "pct"),
            ],
            report.spend,
            group_by="dimension",
            empty="no payments",
        ),
        "flows": Section(
            "flows",
            "Allocated vs spent vs returned vs redeemed",
            [
                Col("program_id", "program id", "int"),
                Col("program", "program"),
                Col("allocated", "allocated", "amount"),
                Col("spent", "spent", "amount"),
                Col("spent_pct", "spent/allocated", "pct"),
                Col("returned", "returned", "amount"),
                Col("clawed_back", "clawed back", "amount"),
                Col("swept", "swept", "amount"),
                Col("unspent", "unspent", "amount"),
                Col("redeemed", "redeemed by vendors", "amount"),
            ],
            report.flows,
            notes=[
                "unspent = allocated - spent - returned - clawed back - swept (still in spenders' wallets); "
                "redemptions carry no program, so only the all-programs row has them"
            ],
        ),
        "vendors": Section(
            "vendors",
            "Top vendors",
            [
                Col("rank", "#", "int"),
                Col("vendor", "vendor"),
                Col("name", "name"),
                Col("category", "category"),
                Col("payments", "payments", "int"),
                Col("payers", "payers", "int"),
                Col("received", "received (KRW)", "amount"),
                Col("share_pct", "share", "pct"),
                Col("redeemed", "redeemed (KRW)", "amount"),
            ],
            report.vendors,
            empty="no payments",
        ),
        "approvals": Section(
            "approvals",
            "Privileged actions and their approvers",
            [
                Col("time", "time"),
                Col("safe", "Safe"),
                Col("nonce", "nonce", "int"),
                Col("action", "action", wrap=True),
                Col("approvers", "approved by", wrap=True),
                Col("approved", "signatures"),
                Col("executor", "sent by"),
                Col("outcome", "outcome"),
                Col("tx_hash", "transaction", in_table=False),
            ],
            report.approvals,
            empty="no privileged action through a Safe indexed",
            notes=["every execution of the role Safes, whatever the filters; approvers recovered from the signatures"],
        ),
    }
    return [built[name] for name in sections]

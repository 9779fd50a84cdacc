"""The console's overview and the public portal's cells, read from the pre-aggregated monthly cells
(``spend_cells``, ``vendor_cells``; kept by ``audit.derive``) instead of every payment: the same figures as
``reports`` and ``public`` compute from the payments (a payment counts for its payer's department when paying
and for its ``period``), as fresh as the last refresh, in milliseconds at a million payments.

What the cells cannot say is left out: distinct payers per group (``reports.SpendRow.payers``) would need the
payments themselves.
"""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass
from typing import Any

from sqlalchemy import BigInteger, ColumnElement, Connection, and_, cast, func, select, true

from deposit_token.audit.db import casework, schema
from deposit_token.audit.query.common import Filters, ProgramConfigs, format_period, timestamp_clause
from deposit_token.audit.query.lookups import lookups
from deposit_token.audit.query.public import MIN_CELL_COUNT, PublicCell
from deposit_token.audit.query.reports import FlowRow, flow_row
from deposit_token.domain.categories import category_name
from deposit_token.domain.rules import KST_OFFSET_MINUTES

DIMENSIONS = ("program", "department", "category", "month")


@dataclass(frozen=True)
class CellRow:
    dimension: str
    key: str
    label: str
    payments: int
    amount: int
    share_pct: float


@dataclass(frozen=True)
class TopVendor:
    rank: int
    vendor: str
    name: str
    category: str
    payments: int
    received: int
    share_pct: float
    redeemed: int  # in the months filtered (redemptions carry no program)


@dataclass(frozen=True)
class Overview:
    filters: Filters
    payments: int
    amount: int
    spend: dict[str, list[CellRow]]  # dimension -> rows (largest first; months in calendar order)
    flows: list[FlowRow]
    vendors: list[TopVendor]


def _cell_clause(table: Any, filters: Filters) -> ColumnElement[bool]:
    parts: list[ColumnElement[bool]] = []
    if filters.programs:
        parts.append(table.c.program_id.in_(filters.programs))
    if filters.since is not None:
        parts.append(table.c.period >= filters.since)
    if filters.until is not None:
        parts.append(table.c.period <= filters.until)
    return and_(true(), *parts)


def _int_sum(column: Any) -> Any:
    """SUM as a 64-bit integer: cell totals fit, and the driver reads them faster than NUMERIC."""
    return cast(func.sum(column), BigInteger)


def _pct(part: int, whole: int) -> float:
    return round(100.0 * part / whole, 2) if whole else 0.0


def spend_by_dimension(conn: Connection, filters: Filters = Filters()) -> dict[str, list[CellRow]]:
    """Spend by program, department, category and month (payments and amount)."""
    c = casework.spend_cells
    found = lookups(conn)
    where = _cell_clause(c, filters)
    groups: dict[str, dict[Any, list[int]]] = {}
    # one small GROUP BY per dimension: the database adds up the cells, a few dozen rows come back
    for dimension, column in (
        ("program", c.c.program_id),
        ("department", c.c.department),
        ("category", c.c.category),
        ("month", c.c.period),
    ):
        groups[dimension] = {
            r.key: [int(r.n), int(r.total)]
            for r in conn.execute(
                select(column.label("key"), _int_sum(c.c.payments).label("n"), _int_sum(c.c.amount).label("total"))
                .where(where)
                .group_by(column)
            )
        }
    whole = sum(a for _, a in groups["month"].values())

    def label(dimension: str, key: Any) -> str:
        if dimension == "program":
            return found.programs.name(key)
        if dimension == "category":
            return category_name(key)
        if dimension == "month":
            return format_period(key)
        return str(key)

    out: dict[str, list[CellRow]] = {}
    for dimension, cells in groups.items():
        rows = [
            CellRow(
                dimension,
                format_period(k) if dimension == "month" else str(k),
                label(dimension, k),
                n,
                a,
                _pct(a, whole),
            )
            for k, (n, a) in cells.items()
        ]
        out[dimension] = (
            sorted(rows, key=lambda r: r.key)
            if dimension == "month"
            else sorted(rows, key=lambda r: (-r.amount, r.key))
        )
    return out


def top_vendors(conn: Connection, filters: Filters = Filters(), limit: int = 10) -> list[TopVendor]:
    """Vendors by amount received, largest first."""
    v = casework.vendor_cells
    found = lookups(conn)
    where = _cell_clause(v, filters)
    total = int(conn.execute(select(func.coalesce(func.sum(v.c.amount), 0)).where(where)).scalar_one())
    amount = _int_sum(v.c.amount)
    top_rows = conn.execute(
        select(v.c.vendor, _int_sum(v.c.payments).label("n"), amount.label("amount"))
        .where(where)
        .group_by(v.c.vendor)
        .order_by(amount.desc(), v.c.vendor)
        .limit(limit if limit > 0 else None)
    ).all()
    per_vendor: dict[str, list[Any]] = {r.vendor: [int(r.n), int(r.amount), set()] for r in top_rows}
    if per_vendor:
        for r in conn.execute(
            select(v.c.vendor, v.c.category).where(where, v.c.vendor.in_(list(per_vendor))).distinct()
        ):
            per_vendor[r.vendor][2].add(r.category)
    ranked = sorted(per_vendor.items(), key=lambda kv: (-kv[1][1], kv[0]))
    red = schema.redemptions
    lo, hi = filters.time_bounds(KST_OFFSET_MINUTES)
    chosen = [vendor for vendor, _ in ranked]
    redeemed: dict[str, int] = {}
    if chosen:
        for got in conn.execute(
            select(red.c.vendor, func.sum(red.c.amount).label("total"))
            .where(red.c.vendor.in_(chosen), timestamp_clause(red, lo, hi))
            .group_by(red.c.vendor)
        ):
            redeemed[got.vendor] = int(got.total)
    return [
        TopVendor(
            rank,
            vendor,
            found.vendor_name(vendor),
            "/".join(category_name(c) for c in sorted(categories)),
            n,
            amount,
            _pct(amount, total),
            redeemed.get(vendor, 0),
        )
        for rank, (vendor, (n, amount, categories)) in enumerate(ranked, start=1)
    ]


def flows(
    conn: Connection,
    filters: Filters = Filters(),
    spent: dict[int, int] | None = None,
    programs: ProgramConfigs | None = None,
) -> list[FlowRow]:
    """``reports.flows`` from the cells: allocated vs spent vs returned vs clawed back vs swept per program, then
    the total with what vendors redeemed (over all programs only: redemptions carry none). `spent`: each
    program's payments when the caller has them (else read from the spend cells); `programs`: the programs'
    names when the caller has them (else the cached lookups, which a fresh process loads whole)."""
    names = programs if programs is not None else lookups(conn).programs
    f, c = casework.flow_cells, casework.spend_cells
    sums: dict[int, dict[str, int]] = defaultdict(dict)
    for r in conn.execute(
        select(f.c.program_id, f.c.flow, func.sum(f.c.amount).label("total"))
        .where(_cell_clause(f, filters), f.c.program_id != 0)
        .group_by(f.c.program_id, f.c.flow)
    ):
        sums[r.program_id][r.flow] = int(r.total)
    if spent is None:
        spent = {
            int(r.program_id): int(r.total)
            for r in conn.execute(
                select(c.c.program_id, func.sum(c.c.amount).label("total"))
                .where(_cell_clause(c, filters))
                .group_by(c.c.program_id)
            )
        }
    for program_id, amount in spent.items():
        sums[program_id]["spent"] = amount
    rows = [flow_row(pid, names.name(pid), sums[pid], None) for pid in sorted(sums)]
    total: dict[str, int] = defaultdict(int)
    for values in sums.values():
        for flow, value in values.items():
            total[flow] += value
    redeemed = None
    if not filters.programs:
        redeemed = int(
            conn.execute(
                select(func.coalesce(func.sum(f.c.amount), 0)).where(
                    _cell_clause(f, filters), f.c.program_id == 0, f.c.flow == "redeemed"
                )
            ).scalar_one()
        )
    rows.append(flow_row(None, "all programs", total, redeemed))
    return rows


def overview(conn: Connection, filters: Filters = Filters(), top: int = 10) -> Overview:
    """Everything the console's overview shows but the latest payments (``payments.list_payments``)."""
    spend = spend_by_dimension(conn, filters)
    spent = {int(r.key): r.amount for r in spend["program"]}
    return Overview(
        filters=filters,
        payments=sum(r.payments for r in spend["month"]),
        amount=sum(r.amount for r in spend["month"]),
        spend=spend,
        flows=flows(conn, filters, spent),
        vendors=top_vendors(conn, filters, top),
    )


def public_cells(conn: Connection, filters: Filters = Filters(), min_count: int = MIN_CELL_COUNT) -> list[PublicCell]:
    """``public.public_aggregates`` from the cells: department x category x month, count and total, cells under
    `min_count` payments suppressed, no totals; sorted by month, department, category."""
    if min_count < MIN_CELL_COUNT:
        raise ValueError(f"cells must hold at least {MIN_CELL_COUNT} payments to be published, not {min_count}")
    c = casework.spend_cells
    out = []
    for r in conn.execute(
        select(
            c.c.period,
            c.c.department,
            c.c.category,
            _int_sum(c.c.payments).label("n"),
            _int_sum(c.c.amount).label("total"),
        )
        .where(_cell_clause(c, filters))
        .group_by(c.c.period, c.c.department, c.c.category)
    ):
        count = int(r.n)
        hidden = count < min_count
        out.append(
            PublicCell(
                r.department,
                category_name(r.category),
                format_period(r.period),
                None if hidden else count,
                None if hidden else int(r.total),
                hidden,
            )
        )
    # sorted here, not by the database: PostgreSQL's collation may order text otherwise than Python
    order = {category_name(code): code for code in range(64)}
    return sorted(out, key=lambda cell: (cell.month, cell.department, order.get(cell.category, 99)))

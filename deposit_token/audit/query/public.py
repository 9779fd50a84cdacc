"""Anonymised aggregates for citizens: payments per department x merchant category x month, count and total.

* No address, payer, vendor, transaction hash or receipt leaves this module: only a department's name (as
  enrolled on-chain), a category name, a month, and two numbers.
* A cell with fewer than ``min_count`` payments (5 unless more is asked) is suppressed: it is listed, marked
  suppressed, with neither count nor amount, so that no single official's payment can be read off it.
* No row, column or grand totals are published: with them a suppressed cell could be recovered by
  subtraction (the classic secondary-disclosure problem), so the cells are the whole publication.

A payment counts for the department its payer had when paying and for the month of its ``period`` (the
program's time zone, KST by default). The cells are read from ``spend_cells`` when the derived tables are current
(``common.derived_current``; the indexer's server refreshes them after each commit), else summed from the
payments: the same figures either way.
"""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass
from typing import TYPE_CHECKING

from sqlalchemy import Connection, func, select

from deposit_token.audit.db import casework, schema
from deposit_token.audit.query.common import Departments, Filters, derived_current, format_period
from deposit_token.audit.query.reports import department_payments
from deposit_token.domain.categories import category_name

if TYPE_CHECKING:  # render (and rich) is imported only when the cells are presented
    from deposit_token.audit.query.render import Section

MIN_CELL_COUNT = 5


@dataclass(frozen=True)
class PublicCell:
    department: str
    category: str
    month: str  # YYYY-MM
    payments: int | None  # None when suppressed
    amount: int | None  # None when suppressed
    suppressed: bool


def public_aggregates(
    conn: Connection, filters: Filters = Filters(), min_count: int = MIN_CELL_COUNT, derived: bool = True
) -> list[PublicCell]:
    """The department x category x month cells, sorted by month, department, category; `derived` False: summed
    from the payments even when the derived cells are current."""
    if min_count < MIN_CELL_COUNT:
        raise ValueError(f"cells must hold at least {MIN_CELL_COUNT} payments to be published, not {min_count}")
    cells: dict[tuple[int, str, int], list[int]] = defaultdict(lambda: [0, 0])
    if derived and derived_current(conn):
        # the monthly cells the indexer's server keeps (audit.derive): the same sums, without reading payments
        c = casework.spend_cells
        for period, department, category, payments, amount in conn.execute(
            select(c.c.period, c.c.department, c.c.category, func.sum(c.c.payments), func.sum(c.c.amount))
            .where(filters.payment_clause(c))
            .group_by(c.c.period, c.c.department, c.c.category)
        ):
            if payments:  # a cell emptied by a rollback is no cell
                cells[(period, department, category)] = [int(payments), int(amount)]
    else:
        # summed in SQL per payer, month and category (not per vendor too, as spend_facts would)
        where = filters.payment_clause(schema.payments)
        for department, _, payments, amount, period, category in department_payments(
            conn, where, Departments.load(conn), "period", "category"
        ):
            cell = cells[(period, department, category)]
            cell[0] += payments
            cell[1] += amount
    out = []
    for (period, department, category), (count, amount) in sorted(cells.items()):
        hidden = count < min_count
        out.append(
            PublicCell(
                department,
                category_name(category),
                format_period(period),
                None if hidden else count,
                None if hidden else amount,
                hidden,
            )
        )
    return out


def public_section(cells: list[PublicCell], min_count: int = MIN_CELL_COUNT) -> Section:
    """The cells as one ``render.Section``."""
    from deposit_token.audit.query.render import Col, Section

    return Section(
        "cells",
        "Payments by department, category and month",
        [
            Col("month", "month"),
            Col("department", "department"),
            Col("category", "category"),
            Col("payments", "payments", "int"),
            Col("amount", "amount (KRW)", "amount"),
            Col("suppressed", "suppressed"),
        ],
        cells,
        empty="no payments",
        notes=[
            f"cells with fewer than {min_count} payments are suppressed (-); no totals are published, so that "
            "suppressed cells cannot be recovered by subtraction"
        ],
    )

"""Payments for the auditors' console: a filtered list in pages (keyset pagination, newest first) and one
payment in full (the decoded event, who paid whom in words, the receipt, the redemption that settled it, and the
program's rules in force at that block).

Filters (``PaymentFilter``): programs, departments (the payer's department *when paying*), vendors, payers,
merchant categories, months (the payment's ``period``: ``yyyymm`` in the program's time zone, KST unless the
program says otherwise), an amount range and flag rules (the derived ``payment_flags`` table, see
``audit.derive``: as fresh as its last refresh).

Pages are in chain order, newest first: (block_number, log_index) descending. A page gives the key of its last
row as ``next_cursor`` (``after=`` that key: older payments) and of its first row as ``prev_cursor``
(``before=`` that key: newer ones), so a page costs one index range scan however deep it is, and rows arriving
meanwhile never shift it. A payment's key ``"<block>-<log index>"`` is its position on the chain.

Everything here reads; nothing writes. Call it inside ``common.snapshot(engine)``.
"""

from __future__ import annotations

import re
from collections import defaultdict
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field, replace
from typing import Any

from sqlalchemy import (
    BigInteger,
    ColumnElement,
    Connection,
    Select,
    and_,
    any_,
    bindparam,
    exists,
    false,
    func,
    or_,
    select,
    true,
    union_all,
)
from sqlalchemy.dialects import postgresql

from deposit_token.audit.db import casework, schema
from deposit_token.audit.query.common import (
    UNKNOWN_DEPARTMENT,
    Position,
    ProgramConfig,
    format_period,
    next_period,
    parse_period,
)
from deposit_token.audit.query.flags import RULES, ZERO_HASH
from deposit_token.audit.query.lookups import Lookups, lookups, periods_of_block
from deposit_token.domain import display
from deposit_token.domain.categories import category_name, parse_category
from deposit_token.domain.inputs import check_address, check_amount
from deposit_token.domain.receipts import receipt_text
from deposit_token.domain.rules import KST_OFFSET_MINUTES, MAX_AMOUNT_40, NO_CAP, WEEKDAYS, unpack_hours

ANY_FLAG = "any"  # PaymentFilter.flags: flagged by any rule
DEFAULT_PAGE = 50
MAX_PAGE = 500

_KEY = re.compile(r"^\s*(\d{1,19})-(\d{1,9})\s*$")


# --- keys ------------------------------------------------------------------------------------------------------


def payment_key(block_number: int, log_index: int) -> str:
    """``"<block>-<log index>"``: a payment's position, as used in URLs and cursors."""
    return f"{block_number}-{log_index}"


def parse_payment_key(text: str) -> Position:
    """(block_number, log_index) from a payment key; ValueError in one sentence for anything else."""
    match = _KEY.match(str(text))
    if not match:
        raise ValueError(f"{text!r} is not a payment key (block-log, e.g. 1234-5)")
    return int(match.group(1)), int(match.group(2))


# --- the filter ------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class PaymentFilter:
    """Which payments a list shows; every field narrows (empty = no condition), values within a field are
    alternatives. Months are ``yyyymm`` bounds, inclusive."""

    programs: tuple[int, ...] = ()
    departments: tuple[str, ...] = ()  # as shown: the department's text, or its bytes32 hex
    vendors: tuple[str, ...] = ()  # checksummed addresses
    payers: tuple[str, ...] = ()
    categories: tuple[int, ...] = ()
    since: int | None = None
    until: int | None = None
    min_amount: int | None = None
    max_amount: int | None = None
    flags: tuple[str, ...] = ()  # rule names of query.flags.RULES, or ANY_FLAG

    def __post_init__(self) -> None:
        unknown = [rule for rule in self.flags if rule != ANY_FLAG and rule not in RULES]
        if unknown:
            raise ValueError(f"unknown flag rule {unknown[0]!r} (known: {ANY_FLAG}, {', '.join(RULES)})")
        for bound in (self.since, self.until):
            if bound is not None:
                parse_period(bound)
        if self.since is not None and self.until is not None and self.since > self.until:
            raise ValueError(
                f"the months run backwards: {format_period(self.since)} is after {format_period(self.until)}"
            )
        for amount in (self.min_amount, self.max_amount):
            if amount is not None and amount < 0:
                raise ValueError("an amount bound cannot be negative")
        if self.min_amount is not None and self.max_amount is not None and self.min_amount > self.max_amount:
            raise ValueError(f"the minimum amount {self.min_amount:,} is above the maximum {self.max_amount:,}")

    @classmethod
    def from_params(cls, params: Mapping[str, str | Sequence[str]]) -> PaymentFilter:
        """A filter from query-string values (each a string or a list of strings; empty strings are ignored):
        ``program``, ``department``, ``vendor``, ``payer``, ``category`` (name or code), ``month`` (one month,
        YYYY-MM), ``since``, ``until``, ``min_amount``, ``max_amount`` (KRW, ``45000`` or ``45,000``), ``flag``
        (a rule or ``any``). Raises ValueError with one sentence naming the bad value."""

        def values(name: str) -> list[str]:
            raw = params.get(name, ())
            items = [raw] if isinstance(raw, str) else list(raw)
            return [item.strip() for item in items if item and item.strip()]

        def one(name: str) -> str | None:
            found = values(name)
            if len(found) > 1:
                raise ValueError(f"give {name} once, not {len(found)} times")
            return found[0] if found else None

        unknown = sorted(set(params) - set(PARAMS))
        if unknown:
            raise ValueError(f"unknown filter {unknown[0]!r} (known: {', '.join(PARAMS)})")
        programs = []
        for text in values("program"):
            if not text.isdigit() or not 0 < int(text) < 2**16:
                raise ValueError(f"program {text!r} is not a program id (1, 2, ...)")
            programs.append(int(text))
        month, since, until = one("month"), one("since"), one("until")
        if month is not None and (since is not None or until is not None):
            raise ValueError("give either month or since/until, not both")
        amounts = [
            None if (given := one(name)) is None else check_amount(given, name.replace("_", " "), allow_zero=True)
            for name in ("min_amount", "max_amount")
        ]
        return cls(
            programs=tuple(dict.fromkeys(programs)),
            departments=tuple(dict.fromkeys(values("department"))),
            vendors=tuple(dict.fromkeys(check_address(v, "vendor") for v in values("vendor"))),
            payers=tuple(dict.fromkeys(check_address(v, "payer") for v in values("payer"))),
            categories=tuple(dict.fromkeys(int(parse_category(c)) for c in values("category"))),
            since=None if (low := month or since) is None else parse_period(low),
            until=None if (high := month or until) is None else parse_period(high),
            min_amount=amounts[0],
            max_amount=amounts[1],
            flags=tuple(dict.fromkeys(values("flag"))),
        )

    def as_params(self) -> dict[str, list[str]]:
        """The filter as query-string values (what ``from_params`` reads back)."""
        out: dict[str, list[str]] = {
            "program": [str(p) for p in self.programs],
            "department": list(self.departments),
            "vendor": list(self.vendors),
            "payer": list(self.payers),
            "category": [category_name(c) for c in self.categories],
            "since": [] if self.since is None else [format_period(self.since)],
            "until": [] if self.until is None else [format_period(self.until)],
            "min_amount": [] if self.min_amount is None else [str(self.min_amount)],
            "max_amount": [] if self.max_amount is None else [str(self.max_amount)],
            "flag": list(self.flags),
        }
        return {k: v for k, v in out.items() if v}

    def is_empty(self) -> bool:
        return self == PaymentFilter()


PARAMS = (
    "program",
    "department",
    "vendor",
    "payer",
    "category",
    "month",
    "since",
    "until",
    "min_amount",
    "max_amount",
    "flag",
)


def _position_at_least(table: Any, position: Position) -> ColumnElement[bool]:
    block, log = position
    return and_(table.c.block_number >= block, or_(table.c.block_number > block, table.c.log_index >= log))


def _position_below(table: Any, position: Position) -> ColumnElement[bool]:
    block, log = position
    return and_(table.c.block_number <= block, or_(table.c.block_number < block, table.c.log_index < log))


def _position_above(table: Any, position: Position) -> ColumnElement[bool]:
    block, log = position
    return and_(table.c.block_number >= block, or_(table.c.block_number > block, table.c.log_index > log))


def department_clause(table: Any, departments: Iterable[str], found: Lookups) -> ColumnElement[bool]:
    """Payments (rows with ``payer``, ``block_number``, ``log_index``) made while the payer had one of
    `departments` (the payer's department when paying, as ``Departments.at``)."""
    whole: set[str] = set()
    parts: list[ColumnElement[bool]] = []
    history = found.departments
    for label in departments:
        if label == UNKNOWN_DEPARTMENT:
            enrolled = sorted(history.spenders())
            parts.append(table.c.payer.not_in(enrolled) if enrolled else true())
            continue
        for spender, ranges in history.spans(label).items():
            if ranges == [(None, None)]:
                whole.add(spender)
                continue
            for start, end in ranges:
                bounds = [table.c.payer == spender]
                if start is not None:
                    bounds.append(_position_at_least(table, start))
                if end is not None:
                    bounds.append(_position_below(table, end))
                parts.append(and_(*bounds))
    if whole:
        parts.append(table.c.payer.in_(sorted(whole)))
    return or_(*parts) if parts else false()


def flag_clause(table: Any, rules: Iterable[str]) -> ColumnElement[bool]:
    """Payments with a flag of one of `rules` (ANY_FLAG: any rule) in ``payment_flags``."""
    f = casework.payment_flags
    wanted = list(rules)
    condition = and_(f.c.block_number == table.c.block_number, f.c.log_index == table.c.log_index)
    if ANY_FLAG not in wanted:
        condition = and_(condition, f.c.rule.in_(wanted))
    return exists(select(1).select_from(f).where(condition))


def _listed(filt: PaymentFilter, table: Any) -> list[ColumnElement[bool]]:
    """The filter's program, category and vendor lists over a table with those columns (payments or the cells)."""
    parts: list[ColumnElement[bool]] = []
    if filt.programs:
        parts.append(table.c.program_id.in_(filt.programs))
    if filt.categories:
        parts.append(table.c.category.in_(filt.categories))
    if filt.vendors:
        parts.append(table.c.vendor.in_(filt.vendors))
    return parts


def payment_clause(filt: PaymentFilter, found: Lookups, table: Any = schema.payments) -> ColumnElement[bool]:
    """The WHERE clause of `filt` over the payments table."""
    parts = _listed(filt, table)
    if filt.payers:
        parts.append(table.c.payer.in_(filt.payers))
    if filt.since is not None and filt.since == filt.until:
        parts.append(table.c.period == filt.since)  # one month: the (period, block, log) index in chain order
    else:
        if filt.since is not None:
            parts.append(table.c.period >= filt.since)
        if filt.until is not None:
            parts.append(table.c.period <= filt.until)
    if filt.min_amount is not None:
        parts.append(table.c.amount >= filt.min_amount)
    if filt.max_amount is not None:
        parts.append(table.c.amount <= filt.max_amount)
    if filt.departments:
        parts.append(department_clause(table, filt.departments, found))
    if filt.flags:
        parts.append(flag_clause(table, filt.flags))
    return and_(true(), *parts)


# --- list rows -------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class PaymentRow:
    """What a list shows of one payment."""

    key: str
    block_number: int
    log_index: int
    tx_hash: str
    timestamp: int
    time_kst: str  # "2030-01-07 12:00 KST"
    program_id: int
    program: str
    payer: str
    department: str
    vendor: str
    vendor_name: str
    category: int
    category_name: str
    amount: int
    receipt: str  # the invoice number or text, "-" for none
    has_evidence: bool
    period: str  # YYYY-MM
    flags: tuple[str, ...]  # rules raised (derived table)


@dataclass(frozen=True)
class PaymentPage:
    rows: list[PaymentRow]
    next_cursor: str | None  # after= this key: the older payments
    prev_cursor: str | None  # before= this key: the newer payments
    filter: PaymentFilter = field(default_factory=PaymentFilter)


_LIST_COLUMNS = (
    "block_number",
    "log_index",
    "tx_hash",
    "block_timestamp",
    "payer",
    "vendor",
    "program_id",
    "category",
    "period",
    "amount",
    "receipt_id",
    "evidence_hash",
)


def _select_rows(where: ColumnElement[bool]) -> Select[Any]:
    p = schema.payments
    return select(*(p.c[name] for name in _LIST_COLUMNS)).where(where)


def flag_rules(conn: Connection) -> Any:
    """A payment's flag rules (comma-separated, NULL for none) as a column ``flag_rules`` of a select from
    ``payments``, read by the flags' primary key in the same statement: ``_rows`` then needs no query for them."""
    p, f = schema.payments, casework.payment_flags
    joined = func.string_agg if conn.dialect.name == "postgresql" else func.group_concat
    return (
        select(joined(f.c.rule, ","))
        .where(f.c.block_number == p.c.block_number, f.c.log_index == p.c.log_index)
        .scalar_subquery()
        .label("flag_rules")
    )


def _select_listed(conn: Connection, where: ColumnElement[bool]) -> Select[Any]:
    p = schema.payments
    return select(*(p.c[name] for name in _LIST_COLUMNS), flag_rules(conn)).where(where)


def among(conn: Connection, column: Any, values: Sequence[int]) -> ColumnElement[bool]:
    """`column` is one of `values` (integers): on PostgreSQL ``= ANY(array)``, one parameter whatever their number,
    so that a page's statement is compiled and planned once instead of once per length of its IN list."""
    if conn.dialect.name == "postgresql":
        found: ColumnElement[bool] = column == any_(bindparam(None, list(values), type_=postgresql.ARRAY(BigInteger)))
        return found
    listed: ColumnElement[bool] = column.in_(values)
    return listed


def flags_of(conn: Connection, positions: Sequence[Position]) -> dict[Position, tuple[str, ...]]:
    """The rules raised on each payment (derived table), in ``RULES`` order."""
    if not positions:
        return {}
    f = casework.payment_flags
    blocks = sorted({block for block, _ in positions})
    wanted = set(positions)
    order = {rule: i for i, rule in enumerate(RULES)}
    found: dict[Position, list[str]] = defaultdict(list)
    for i in range(0, len(blocks), 1_000):
        for r in conn.execute(
            select(f.c.block_number, f.c.log_index, f.c.rule).where(
                among(conn, f.c.block_number, blocks[i : i + 1_000])
            )
        ):
            position = (r.block_number, r.log_index)
            if position in wanted:
                found[position].append(r.rule)
    return {position: tuple(sorted(rules, key=lambda r: order.get(r, 99))) for position, rules in found.items()}


def _listed_flags(raw: Sequence[Any]) -> dict[Position, tuple[str, ...]]:
    order = {rule: i for i, rule in enumerate(RULES)}
    return {
        (r.block_number, r.log_index): tuple(sorted(r.flag_rules.split(","), key=lambda x: order.get(x, 99)))
        for r in raw
        if r.flag_rules
    }


def _rows(conn: Connection, raw: Sequence[Any], found: Lookups) -> list[PaymentRow]:
    # rows of _select_listed carry their flags; others are looked up
    listed = bool(raw) and hasattr(raw[0], "flag_rules")
    flags = _listed_flags(raw) if listed else flags_of(conn, [(r.block_number, r.log_index) for r in raw])
    out = []
    for r in raw:
        position = (r.block_number, r.log_index)
        out.append(
            PaymentRow(
                key=payment_key(*position),
                block_number=r.block_number,
                log_index=r.log_index,
                tx_hash=r.tx_hash,
                timestamp=r.block_timestamp,
                time_kst=display.moment(r.block_timestamp, KST_OFFSET_MINUTES),
                program_id=r.program_id,
                program=found.programs.name(r.program_id),
                payer=r.payer,
                department=found.departments.at(r.payer, position),
                vendor=r.vendor,
                vendor_name=found.vendor_name(r.vendor),
                category=r.category,
                category_name=category_name(r.category),
                amount=int(r.amount),
                receipt=receipt_text(r.receipt_id),
                has_evidence=r.evidence_hash not in (None, "", ZERO_HASH),
                period=format_period(r.period),
                flags=flags.get(position, ()),
            )
        )
    return out


MONTH_UNION_MAX = 36  # a range of up to this many months is read month by month (see _fetch)


def _months(filt: PaymentFilter) -> list[int] | None:
    if filt.since is None or filt.until is None or filt.since == filt.until:
        return None
    months = [filt.since]
    while months[-1] < filt.until and len(months) <= MONTH_UNION_MAX:
        months.append(next_period(months[-1]))
    return months if months[-1] == filt.until else None


def _fetch(
    conn: Connection, filt: PaymentFilter, found: Lookups, position: ColumnElement[bool], newest_first: bool, n: int
) -> list[Any]:
    """Up to `n` rows matching `filt` and `position`, in chain order (newest first or oldest first).

    A range of months is read as one ordered range per month, merged (UNION ALL of per-month LIMIT queries): the
    (period, block, log) index gives each month in chain order, where a single range condition on the period
    would make the database either sort the whole range or walk the chain back to the months asked for."""
    p = schema.payments
    order = (p.c.block_number.desc(), p.c.log_index.desc()) if newest_first else (p.c.block_number, p.c.log_index)
    months = _months(filt)
    if months is None:
        query = _select_listed(conn, and_(payment_clause(filt, found), position))
        return list(conn.execute(query.order_by(*order).limit(n)))
    where = and_(payment_clause(replace(filt, since=None, until=None), found), position)
    parts = [
        _select_listed(conn, and_(where, p.c.period == month)).order_by(*order).limit(n).subquery() for month in months
    ]
    merged = union_all(*(select(*part.c) for part in parts)).subquery()
    merged_order = (
        (merged.c.block_number.desc(), merged.c.log_index.desc())
        if newest_first
        else (merged.c.block_number, merged.c.log_index)
    )
    return list(conn.execute(select(*merged.c).order_by(*merged_order).limit(n)))


def list_payments(
    conn: Connection,
    filt: PaymentFilter = PaymentFilter(),
    after: str | None = None,
    before: str | None = None,
    limit: int = DEFAULT_PAGE,
) -> PaymentPage:
    """One page of the payments matching `filt`, newest first: the first page, or those older than the key
    `after`, or those newer than the key `before` (the page just above it). Raises ValueError for a bad key or
    limit."""
    if after is not None and before is not None:
        raise ValueError("give after or before, not both")
    if not 1 <= limit <= MAX_PAGE:
        raise ValueError(f"a page holds 1 to {MAX_PAGE} payments, not {limit}")
    p = schema.payments
    found = lookups(conn)
    if before is not None:
        raw = _fetch(conn, filt, found, _position_above(p, parse_payment_key(before)), False, limit + 1)
        more_newer = len(raw) > limit
        rows = _rows(conn, raw[:limit][::-1], found)
        return PaymentPage(
            rows,
            next_cursor=rows[-1].key if rows else before,
            prev_cursor=rows[0].key if rows and more_newer else None,
            filter=filt,
        )
    position = true() if after is None else _position_below(p, parse_payment_key(after))
    raw = _fetch(conn, filt, found, position, True, limit + 1)
    more_older = len(raw) > limit
    rows = _rows(conn, raw[:limit], found)
    return PaymentPage(
        rows,
        next_cursor=rows[-1].key if rows and more_older else None,
        prev_cursor=rows[0].key if rows and after is not None else (None if rows or after is None else after),
        filter=filt,
    )


def iter_payments(
    conn: Connection, filt: PaymentFilter = PaymentFilter(), batch: int = MAX_PAGE
) -> Iterator[PaymentRow]:
    """Every payment matching `filt`, newest first, page by page (an export of a filtered list)."""
    after: str | None = None
    while True:
        page = list_payments(conn, filt, after=after, limit=batch)
        yield from page.rows
        if page.next_cursor is None:
            return
        after = page.next_cursor


PAYMENT_VALUES = (
    "key",
    "block_number",
    "log_index",
    "tx_hash",
    "timestamp",
    "time_kst",
    "period",
    "program_id",
    "program",
    "payer",
    "department",
    "vendor",
    "vendor_name",
    "category",
    "category_name",
    "amount",
    "receipt",
    "has_evidence",
    "flags",
)
"""The fields of ``stream_payment_values``' tuples: a ``PaymentRow``'s, flags as ``rule;rule``."""

STREAM_BATCH = 10_000


def stream_payment_values(conn: Connection, filt: PaymentFilter = PaymentFilter()) -> Iterator[tuple[Any, ...]]:
    """Every payment matching `filt`, newest first, as ``PAYMENT_VALUES`` tuples holding what ``iter_payments``'
    rows hold: one query read in large batches (a server-side cursor on PostgreSQL) merged with one ordered read
    of the flags in its block range, with the labels looked up once per payer, program, vendor and minute.

    An export of a month's million payments through the console's pages cost a page query, a flags query and
    a dataclass per row (137 us a row at 10,000,000 payments); this path does neither per row."""
    p, f = schema.payments, casework.payment_flags
    found = lookups(conn)
    where = payment_clause(filt, found)
    low, high = conn.execute(select(func.min(p.c.block_number), func.max(p.c.block_number)).where(where)).one()
    if low is None:
        return
    flag_rows = conn.execution_options(yield_per=STREAM_BATCH).execute(
        select(f.c.block_number, f.c.log_index, f.c.rule)
        .where(f.c.block_number >= low, f.c.block_number <= high)
        .order_by(f.c.block_number.desc(), f.c.log_index.desc())
    )
    flag_iter = iter(flag_rows)
    pending = next(flag_iter, None)
    order = {rule: i for i, rule in enumerate(RULES)}
    changed = found.departments.changed()
    departments: dict[str, str] = {}
    programs: dict[int, str] = {}
    vendors: dict[str, str] = {}
    categories: dict[int, str] = {}
    periods: dict[int, str] = {}
    minutes: dict[int, str] = {}
    result = conn.execution_options(yield_per=STREAM_BATCH).execute(
        _select_rows(where).order_by(p.c.block_number.desc(), p.c.log_index.desc())
    )
    for block, log, tx_hash, stamp, payer, vendor, program_id, category, period, amount, receipt, evidence in result:
        rules: list[str] = []
        while pending is not None and (pending[0], pending[1]) >= (block, log):
            if pending[0] == block and pending[1] == log:
                rules.append(pending[2])
            pending = next(flag_iter, None)
        if len(rules) > 1:
            rules.sort(key=lambda r: order.get(r, 99))
        department = departments.get(payer)
        if department is None:
            if payer in changed:
                department = found.departments.at(payer, (block, log))
            else:
                department = departments[payer] = found.departments.at(payer)
        minute = stamp // 60
        time_kst = minutes.get(minute)
        if time_kst is None:
            time_kst = minutes[minute] = display.moment(stamp, KST_OFFSET_MINUTES)
        program = programs.get(program_id)
        if program is None:
            program = programs[program_id] = found.programs.name(program_id)
        vendor_name = vendors.get(vendor)
        if vendor_name is None:
            vendor_name = vendors[vendor] = found.vendor_name(vendor)
        name = categories.get(category)
        if name is None:
            name = categories[category] = category_name(category)
        month = periods.get(period)
        if month is None:
            month = periods[period] = format_period(period)
        yield (
            f"{block}-{log}",
            block,
            log,
            tx_hash,
            stamp,
            time_kst,
            month,
            program_id,
            program,
            payer,
            department,
            vendor,
            vendor_name,
            category,
            name,
            int(amount),
            receipt_text(receipt),
            evidence not in (None, "", ZERO_HASH),
            ";".join(rules),
        )


@dataclass(frozen=True)
class PaymentCount:
    payments: int
    exact: bool  # False: at least `payments` (counting stopped at the cap)


def _cells_clause(filt: PaymentFilter) -> tuple[Any, ColumnElement[bool]] | None:
    """The cells table that can answer totals for `filt` and its WHERE clause, or None: ``spend_cells`` for
    programs, departments, categories and months; ``vendor_cells`` for programs, vendors, categories, months."""
    if filt.payers or filt.flags or filt.min_amount is not None or filt.max_amount is not None:
        return None
    if filt.vendors and filt.departments:
        return None
    table = casework.vendor_cells if filt.vendors else casework.spend_cells
    parts = _listed(filt, table)
    if filt.departments:
        parts.append(table.c.department.in_(filt.departments))
    if filt.since is not None:
        parts.append(table.c.period >= filt.since)
    if filt.until is not None:
        parts.append(table.c.period <= filt.until)
    return table, and_(true(), *parts)


def count_payments(conn: Connection, filt: PaymentFilter = PaymentFilter(), cap: int = 10_000) -> PaymentCount:
    """How many payments match: exact from the monthly cells when they can say (see ``payment_totals``), else
    counting at most `cap` + 1 rows (a page says "10,000+" rather than waiting)."""
    if _cells_clause(filt) is not None:
        return PaymentCount(payment_totals(conn, filt).payments, True)
    p = schema.payments
    inner = select(p.c.block_number).where(payment_clause(filt, lookups(conn))).limit(cap + 1).subquery()
    n = int(conn.execute(select(func.count()).select_from(inner)).scalar_one())
    return PaymentCount(min(n, cap), n <= cap)


@dataclass(frozen=True)
class PaymentTotals:
    payments: int
    amount: int


def payment_totals(conn: Connection, filt: PaymentFilter = PaymentFilter()) -> PaymentTotals:
    """Count and sum of the payments matching `filt`: from the monthly cells (``spend_cells`` or
    ``vendor_cells``, as fresh as the last ``derive.refresh``) when the filter names only programs, departments
    or vendors, categories and months, else from the payments themselves."""
    cells = _cells_clause(filt)
    if cells is not None:
        table, where = cells
        row = conn.execute(
            select(func.coalesce(func.sum(table.c.payments), 0), func.coalesce(func.sum(table.c.amount), 0)).where(
                where
            )
        ).one()
        return PaymentTotals(int(row[0]), int(row[1]))
    p = schema.payments
    row = conn.execute(
        select(func.count(), func.coalesce(func.sum(p.c.amount), 0)).where(payment_clause(filt, lookups(conn)))
    ).one()
    return PaymentTotals(int(row[0]), int(row[1]))


# --- one payment -----------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class CategoryRule:
    category: int
    name: str
    cap: int | None  # per spender per month; None = no cap


@dataclass(frozen=True)
class ProgramRules:
    """A program's rules as in force at one position (its ProgramConfigured event and the caps set up to it)."""

    program_id: int
    version: int
    name: str
    treasury: str
    start: str  # KST moments
    end: str
    utc_offset_minutes: int
    zone: str
    hours: list[tuple[str, str]]  # (weekday, "09-18" | "closed" | "all day")
    per_payment_limit: int | None  # None = no limit
    evidence_threshold: int | None  # None = evidence never required
    categories: list[CategoryRule]
    configured_block: int
    configured_tx: str
    configured_at: str
    paused: bool


def _hours_text(opening: int, closing: int) -> str:
    if opening >= closing:
        return "closed"
    if (opening, closing) == (0, 24):
        return "all day"
    return f"{opening:02d}:00-{closing:02d}:00"


def rules_at(conn: Connection, program_id: int, position: Position) -> ProgramRules | None:
    """The rules of `program_id` in force at `position` (None if the index has no configuration of it). From the
    lookups' rows of the program's configurations, caps and pauses (a handful, read once per index version),
    not three queries per payment page."""
    rows = lookups(conn).rules
    configs = rows.configs.get(program_id, [])
    upto = (position[0], position[1] + 1)
    earlier = [c for c in configs if (c.block_number, c.log_index) < upto]
    # an index that started after the program's creation: its earliest configuration
    config = earlier[-1] if earlier else (configs[0] if configs else None)
    if config is None:
        return None
    return _rules(config, position, rows.caps.get(program_id, []), rows.pauses.get(program_id, []))


def _rules(config: Any, position: Position, cap_rows: Sequence[Any], pause_rows: Sequence[Any]) -> ProgramRules:
    upto = (position[0], position[1] + 1)
    caps: dict[int, int] = {}
    for r in cap_rows:  # chain order: the last cap set before `position` stands
        if (r.block_number, r.log_index) < upto:
            caps[r.category] = int(r.cap)
    paused = None
    for r in pause_rows:
        if (r.block_number, r.log_index) < upto:
            paused = r.paused
    mask = int(config.categories)
    allowed = [c for c in range(64) if (mask >> c) & 1]
    limit, threshold = int(config.per_payment_limit), int(config.evidence_threshold)
    offset = config.utc_offset_minutes
    return ProgramRules(
        program_id=config.program_id,
        version=config.version,
        name=config.name,
        treasury=config.treasury,
        start=display.moment(config.start, offset),
        end=display.moment(config.end_time, offset),
        utc_offset_minutes=offset,
        zone=display.zone_name(offset),
        hours=[(WEEKDAYS[d], _hours_text(o, c)) for d, (o, c) in enumerate(unpack_hours(int(config.opening_hours)))],
        per_payment_limit=None if limit >= MAX_AMOUNT_40 else limit,
        evidence_threshold=None if threshold in (0, MAX_AMOUNT_40) else threshold,
        categories=[
            CategoryRule(c, category_name(c), None if caps.get(c, NO_CAP) >= NO_CAP else caps[c]) for c in allowed
        ],
        configured_block=config.block_number,
        configured_tx=config.tx_hash,
        configured_at=display.moment(config.block_timestamp, KST_OFFSET_MINUTES),
        paused=bool(paused),
    )


@dataclass(frozen=True)
class Settlement:
    """The vendor's redemption that took this payment's last KRW out, first in first out: the vendor's
    payments and redemptions are matched in chain order (a vendor's tokens only come from payments)."""

    block_number: int
    tx_hash: str
    time_kst: str
    amount: int
    reference: str  # the settlement reference's text ('' for rows indexed before it was kept)
    settlement_ref: str  # its keccak256, as on-chain


@dataclass(frozen=True)
class PaymentDetail:
    row: PaymentRow
    event: dict[str, Any]  # the Payment event's fields, ABI names and values as emitted
    local_time: str  # in the program's time zone
    receipt_id: str
    evidence_hash: str | None  # None: no evidence
    cap_left: int
    cap: int | None  # the payer's cap in this category at this payment (override or program's); None = no cap
    cap_override: bool
    vendor_category: int | None  # the vendor's registered category (the payment's category is its own)
    received_before: int  # the vendor's payments up to and including this one (KRW)
    redeemed_total: int  # everything the vendor has redeemed so far
    settlement: Settlement | None  # None: not redeemed yet
    rules: ProgramRules | None


def get_payment(conn: Connection, key: str | Position) -> PaymentDetail | None:
    """One payment in full, or None if there is none at that key."""
    block, log = parse_payment_key(key) if isinstance(key, str) else key
    p = schema.payments
    where = and_(p.c.block_number == block, p.c.log_index == log)
    periods = periods_of_block(conn, block)
    if periods is not None:  # the monthly partitions that can hold it, not every month's
        if not periods:
            return None
        where = and_(where, p.c.period.in_(periods))
    r = conn.execute(select(p).where(where)).first()
    if r is None:
        return None
    found = lookups(conn)
    (row,) = _rows(conn, [r], found)
    config: ProgramConfig | None = found.programs.at(r.program_id, (block, log))
    offset = config.utc_offset_minutes if config else KST_OFFSET_MINUTES
    rules = rules_at(conn, r.program_id, (block, log))
    cap, overridden = _cap_at(conn, r.payer, r.category, (block, log), rules)
    received = _vendor_received(conn, r.vendor, (block, log))
    settlement, redeemed = _settlement(conn, r.vendor, received)
    return PaymentDetail(
        row=row,
        event={
            "payer": r.payer,
            "vendor": r.vendor,
            "programId": r.program_id,
            "category": r.category,
            "period": r.period,
            "amount": int(r.amount),
            "receiptId": r.receipt_id,
            "evidenceHash": r.evidence_hash,
            "capLeft": int(r.cap_left),
        },
        local_time=display.moment(r.block_timestamp, offset),
        receipt_id=r.receipt_id,
        evidence_hash=None if r.evidence_hash in (None, "", ZERO_HASH) else r.evidence_hash,
        cap_left=int(r.cap_left),
        cap=cap,
        cap_override=overridden,
        vendor_category=found.vendor_category(r.vendor),
        received_before=received,
        redeemed_total=redeemed,
        settlement=settlement,
        rules=rules,
    )


def _cap_at(
    conn: Connection, payer: str, category: int, position: Position, rules: ProgramRules | None
) -> tuple[int | None, bool]:
    o = schema.cap_overrides
    override = conn.execute(
        select(o.c.cap, o.c.active)
        .where(o.c.spender == payer, o.c.category == category, _position_below(o, position))
        .order_by(o.c.block_number.desc(), o.c.log_index.desc())
        .limit(1)
    ).first()
    if override is not None and override.active:
        cap = int(override.cap)
        return (None if cap >= NO_CAP else cap), True
    if rules is None:
        return None, False
    for rule in rules.categories:
        if rule.category == category:
            return rule.cap, False
    return None, False


def _vendor_received(conn: Connection, vendor: str, position: Position) -> int:
    p = schema.payments
    return int(
        conn.execute(
            select(func.coalesce(func.sum(p.c.amount), 0)).where(
                p.c.vendor == vendor, _position_below(p, (position[0], position[1] + 1))
            )
        ).scalar_one()
    )


def _settlement(conn: Connection, vendor: str, received: int) -> tuple[Settlement | None, int]:
    r = schema.redemptions
    cumulative = 0
    found: Settlement | None = None
    for row in conn.execute(
        select(
            r.c.block_number, r.c.tx_hash, r.c.block_timestamp, r.c.amount, r.c.settlement_reference, r.c.settlement_ref
        )
        .where(r.c.vendor == vendor)
        .order_by(r.c.block_number, r.c.log_index)
    ):
        cumulative += int(row.amount)
        if found is None and cumulative >= received:
            found = Settlement(
                row.block_number,
                row.tx_hash,
                display.moment(row.block_timestamp, KST_OFFSET_MINUTES),
                int(row.amount),
                row.settlement_reference,
                row.settlement_ref,
            )
    return found, cumulative

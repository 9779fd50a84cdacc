"""The flag queue and the dispositions auditors recorded on flags (reading; ``audit.cases`` records them).

A flag is one rule raised on one payment: its key is ``"<block>-<log index>-<rule>"``. The queue lists the
derived ``payment_flags`` rows (every rule of ``audit flags``, see ``audit.derive``) joined with their payment,
newest first, with the latest disposition of each; it filters by rule, by status (``open``: no disposition yet,
``decided``: at least one, or the latest disposition's kind) and by anything a payment list filters by. Pages
work as the payments list's (keyset, ``next_cursor`` / ``prev_cursor``, here flag keys).

Dispositions are append-only (``db.casework``): a flag's history is every disposition recorded on it, in order;
the latest one is its status.
"""

from __future__ import annotations

import re
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from types import SimpleNamespace
from typing import Any

from sqlalchemy import ColumnElement, Connection, and_, exists, func, not_, or_, select, true

from deposit_token.audit.db import casework, schema
from deposit_token.audit.query.flags import RULES
from deposit_token.audit.query.lookups import lookups
from deposit_token.audit.query.payments import (
    DEFAULT_PAGE,
    MAX_PAGE,
    PaymentFilter,
    PaymentRow,
    _rows,
    among,
    flag_rules,
    payment_clause,
)
from deposit_token.domain import display

DISPOSITIONS = casework.DISPOSITIONS
STATUSES = ("open", "decided", "any", *DISPOSITIONS)

FlagId = tuple[int, int, str]  # (block_number, log_index, rule)

_FLAG_KEY = re.compile(r"^\s*(\d{1,19})-(\d{1,9})-([a-z-]{1,32})\s*$")


def flag_key(block_number: int, log_index: int, rule: str) -> str:
    return f"{block_number}-{log_index}-{rule}"


def parse_flag_key(text: str) -> FlagId:
    """(block_number, log_index, rule) from a flag key; ValueError in one sentence otherwise."""
    match = _FLAG_KEY.match(str(text))
    if not match or match.group(3) not in RULES:
        raise ValueError(f"{text!r} is not a flag key (block-log-rule, e.g. 1234-5-night)")
    return int(match.group(1)), int(match.group(2)), match.group(3)


# --- dispositions ----------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Disposition:
    id: int
    flag: str  # flag key
    block_number: int
    log_index: int
    rule: str
    tx_hash: str
    disposition: str
    note: str
    decided_by: str
    decided_at: datetime  # UTC
    decided_at_kst: str


def _aware(value: datetime) -> datetime:
    return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


def _disposition(r: Any) -> Disposition:
    at = _aware(r.decided_at)
    return Disposition(
        id=r.id,
        flag=flag_key(r.block_number, r.log_index, r.rule),
        block_number=r.block_number,
        log_index=r.log_index,
        rule=r.rule,
        tx_hash=r.tx_hash,
        disposition=r.disposition,
        note=r.note,
        decided_by=r.decided_by,
        decided_at=at,
        decided_at_kst=display.moment(int(at.timestamp())),
    )


def disposition_history(
    conn: Connection, block_number: int, log_index: int, rule: str | None = None
) -> list[Disposition]:
    """Every disposition recorded on the payment's flags (or on one rule's), oldest first."""
    d = casework.dispositions
    where = and_(d.c.block_number == block_number, d.c.log_index == log_index)
    if rule is not None:
        where = and_(where, d.c.rule == rule)
    return [_disposition(r) for r in conn.execute(select(d).where(where).order_by(d.c.id))]


def latest_dispositions(conn: Connection, flags: Sequence[FlagId]) -> dict[FlagId, tuple[Disposition, int]]:
    """The latest disposition of each flag that has one, with how many it has."""
    if not flags:
        return {}
    d = casework.dispositions
    wanted = set(flags)
    blocks = sorted({block for block, _, _ in flags})
    history: dict[FlagId, list[Any]] = {}
    for i in range(0, len(blocks), 1_000):
        for r in conn.execute(select(d).where(among(conn, d.c.block_number, blocks[i : i + 1_000])).order_by(d.c.id)):
            key = (r.block_number, r.log_index, r.rule)
            if key in wanted:
                history.setdefault(key, []).append(r)
    return {key: (_disposition(rows[-1]), len(rows)) for key, rows in history.items()}


def iter_dispositions(conn: Connection) -> Iterator[Disposition]:
    """Every disposition, in the order recorded (the export)."""
    d = casework.dispositions
    result = conn.execution_options(yield_per=5_000).execute(select(d).order_by(d.c.id))
    for partition in result.partitions():
        for r in partition:
            yield _disposition(r)


# --- the queue -------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class FlagFilter:
    """Which flags the queue shows: rules (empty = all), status, and the flagged payments' filter."""

    rules: tuple[str, ...] = ()
    status: str = "open"
    payments: PaymentFilter = field(default_factory=PaymentFilter)

    def __post_init__(self) -> None:
        unknown = [rule for rule in self.rules if rule not in RULES]
        if unknown:
            raise ValueError(f"unknown flag rule {unknown[0]!r} (known: {', '.join(RULES)})")
        if self.status not in STATUSES:
            raise ValueError(f"unknown status {self.status!r} (known: {', '.join(STATUSES)})")


@dataclass(frozen=True)
class FlagRow:
    key: str
    rule: str
    rule_text: str
    detail: str
    local_time: str
    payment: PaymentRow
    latest: Disposition | None  # None: open
    dispositions: int


# --- a flag's detail as parameters -----------------------------------------------------------------------------
# ``payment_flags.detail`` keeps the English sentence ``audit.query.flags`` wrote (the CLI's and the exports' text).
# The console says it in the reader's language: each rule's sentence read back into its parameters here, one
# pattern per sentence of ``flags._single_payment_flags``, ``_split_flags`` and ``_concentration_flags``
# (tests/web/test_web_i18n.py reads every flag of its chain back). A detail that does not match (a sentence
# written by another version) is shown as it is.

_AMOUNT = r"([\d,]+) KRW"
_DETAILS: dict[str, re.Pattern[str]] = {
    "night": re.compile(
        r"^paid at (?P<time>\d\d:\d\d) local time \((?P<start>\d\d:00)-(?P<end>\d\d:00) needs justification\)$"
    ),
    "weekend": re.compile(r"^paid on a (?P<weekday>[A-Z][a-z]+day) \((?P<date>\d{4}-\d\d-\d\d)\)$"),
    "holiday": re.compile(r"^paid on (?P<date>\d{4}-\d\d-\d\d), (?P<name>.+) \(KR public holiday\)$"),
    "near-evidence-threshold": re.compile(
        rf"^{_AMOUNT.replace('(', '(?P<amount>', 1)} without evidence, within (?P<pct>\d+)% below the evidence "
        rf"threshold of {_AMOUNT.replace('(', '(?P<threshold>', 1)}$"
    ),
    "near-payment-limit": re.compile(
        rf"^{_AMOUNT.replace('(', '(?P<amount>', 1)} is within (?P<pct>\d+)% of the per-payment limit of "
        rf"{_AMOUNT.replace('(', '(?P<limit>', 1)}$"
    ),
    "split-evidence": re.compile(
        r"^(?P<count>\d+) payments to this vendor on (?P<day>\d{4}-\d\d-\d\d), each below the evidence threshold "
        rf"of {_AMOUNT.replace('(', '(?P<threshold>', 1)}, together {_AMOUNT.replace('(', '(?P<total>', 1)}$"
    ),
    "split-limit": re.compile(
        r"^(?P<count>\d+) payments to this vendor on (?P<day>\d{4}-\d\d-\d\d), together "
        rf"{_AMOUNT.replace('(', '(?P<total>', 1)}, above the per-payment limit of "
        rf"{_AMOUNT.replace('(', '(?P<limit>', 1)}$"
    ),
    "concentration": re.compile(
        rf"^vendor received (?P<share>\d+\.\d)% \({_AMOUNT.replace('(', '(?P<amount>', 1)} in (?P<own>\d+) of "
        r"(?P<payments>\d+) payments\) of this payer's spend in (?P<period>\d{4}-\d\d)$"
    ),
}
DETAIL_AMOUNTS = frozenset(("amount", "threshold", "limit", "total"))  # integers of KRW
_DETAIL_COUNTS = frozenset(("count", "own", "payments", "pct"))


def detail_values(rule: str, detail: str) -> dict[str, str | int] | None:
    """The parameters of a flag's `detail` sentence (amounts and counts as integers), or None if it is not the
    sentence `rule` writes."""
    pattern = _DETAILS.get(rule)
    found = pattern.match(detail) if pattern is not None else None
    if found is None:
        return None
    return {
        name: int(value.replace(",", "")) if name in DETAIL_AMOUNTS or name in _DETAIL_COUNTS else value
        for name, value in found.groupdict().items()
    }


@dataclass(frozen=True)
class FlagPage:
    rows: list[FlagRow]
    next_cursor: str | None
    prev_cursor: str | None
    filter: FlagFilter = field(default_factory=FlagFilter)


def _same_flag(d: Any, f: Any) -> ColumnElement[bool]:
    return and_(d.c.block_number == f.c.block_number, d.c.log_index == f.c.log_index, d.c.rule == f.c.rule)


def status_clause(status: str, f: Any = casework.payment_flags) -> ColumnElement[bool]:
    """Flags (rows of ``payment_flags`` or alike) whose status is `status`."""
    d = casework.dispositions
    if status == "any":
        return true()
    has_any = exists(select(1).select_from(d).where(_same_flag(d, f)))
    if status == "open":
        return not_(has_any)
    if status == "decided":
        return has_any
    later = d.alias("later")
    newest = select(func.max(later.c.id)).where(_same_flag(later, d)).scalar_subquery()
    return exists(select(1).select_from(d).where(_same_flag(d, f), d.c.disposition == status, d.c.id == newest))


def _flag_payment(f: Any, p: Any) -> ColumnElement[bool]:
    """A flag's payment: by its position, and in the flag's period, so that PostgreSQL reads the payment from
    that month's partition only instead of probing every month's."""
    return and_(p.c.block_number == f.c.block_number, p.c.log_index == f.c.log_index, p.c.period == f.c.period)


def _flag_cmp(f: Any, flag: FlagId, below: bool) -> ColumnElement[bool]:
    block, log, rule = flag
    if below:
        return and_(
            f.c.block_number <= block,
            or_(
                f.c.block_number < block,
                f.c.log_index < log,
                and_(f.c.log_index == log, f.c.rule < rule),
            ),
        )
    return and_(
        f.c.block_number >= block,
        or_(
            f.c.block_number > block,
            f.c.log_index > log,
            and_(f.c.log_index == log, f.c.rule > rule),
        ),
    )


_FLAG_COLUMNS = ("block_number", "log_index", "rule", "detail", "local_time")


def _with_payments(conn: Connection, flags: Sequence[Any]) -> list[Any]:
    """`flags` (rows of payment_flags) each with its payment's columns, as the queue's join gives them."""
    if not flags:
        return []
    p = schema.payments
    blocks = sorted({r.block_number for r in flags})
    periods = sorted({r.period for r in flags})
    payments = {
        (r.block_number, r.log_index): r._mapping
        for r in conn.execute(
            select(p, flag_rules(conn)).where(among(conn, p.c.block_number, blocks), among(conn, p.c.period, periods))
        )
    }
    return [
        SimpleNamespace(
            **{**payments[(r.block_number, r.log_index)], **{name: getattr(r, name) for name in _FLAG_COLUMNS}}
        )
        for r in flags
        if (r.block_number, r.log_index) in payments
    ]


def flag_queue(
    conn: Connection,
    filt: FlagFilter = FlagFilter(),
    after: str | None = None,
    before: str | None = None,
    limit: int = DEFAULT_PAGE,
) -> FlagPage:
    """One page of the flag queue, newest first (see the module docstring)."""
    if after is not None and before is not None:
        raise ValueError("give after or before, not both")
    if not 1 <= limit <= MAX_PAGE:
        raise ValueError(f"a page holds 1 to {MAX_PAGE} flags, not {limit}")
    f, p = casework.payment_flags, schema.payments
    found = lookups(conn)
    where = and_(
        f.c.rule.in_(filt.rules) if filt.rules else true(),
        status_clause(filt.status, f),
        true() if filt.payments.is_empty() else payment_clause(filt.payments, found, p),
    )
    by_payment = not filt.payments.is_empty()

    def fetch(condition: ColumnElement[bool], newest_first: bool) -> list[Any]:
        keys = (f.c.block_number, f.c.log_index, f.c.rule)
        order = [k.desc() for k in keys] if newest_first else list(keys)
        if by_payment:  # the payments' filter needs them joined
            query = select(
                *(f.c[name] for name in _FLAG_COLUMNS),
                *(column for column in p.c if column.name not in _FLAG_COLUMNS),
            ).select_from(f.join(p, _flag_payment(f, p)))
            return list(conn.execute(query.where(condition).order_by(*order).limit(limit + 1)))
        # the queue alone: its page of flags, then their payments by position within their periods (joined, the
        # planner merged the flags with a whole month of payments to find a page's fifty)
        flags = list(
            conn.execute(
                select(*(f.c[name] for name in (*_FLAG_COLUMNS, "period")))
                .where(condition)
                .order_by(*order)
                .limit(limit + 1)
            )
        )
        return _with_payments(conn, flags)

    if before is not None:
        raw = fetch(and_(where, _flag_cmp(f, parse_flag_key(before), below=False)), newest_first=False)
        more_newer = len(raw) > limit
        raw = raw[:limit][::-1]
        rows = _flag_rows(conn, raw, found, filt.status)
        return FlagPage(rows, rows[-1].key if rows else before, rows[0].key if rows and more_newer else None, filt)
    if after is not None:
        where = and_(where, _flag_cmp(f, parse_flag_key(after), below=True))
    raw = fetch(where, newest_first=True)
    more_older = len(raw) > limit
    rows = _flag_rows(conn, raw[:limit], found, filt.status)
    return FlagPage(
        rows,
        rows[-1].key if rows and more_older else None,
        rows[0].key if rows and after is not None else (None if rows or after is None else after),
        filt,
    )


def iter_flags(conn: Connection, filt: FlagFilter = FlagFilter(), batch: int = MAX_PAGE) -> Iterator[FlagRow]:
    """Every flag of the queue matching `filt`, newest first (an export)."""
    after: str | None = None
    while True:
        page = flag_queue(conn, filt, after=after, limit=batch)
        yield from page.rows
        if page.next_cursor is None:
            return
        after = page.next_cursor


def _flag_rows(conn: Connection, raw: Sequence[Any], found: Any, status: str = "any") -> list[FlagRow]:
    payments = {(row.block_number, row.log_index): row for row in _rows(conn, _unique_payments(raw), found)}
    ids = [(r.block_number, r.log_index, r.rule) for r in raw]
    # an open flag has no disposition: the queue's default view needs no look-up of them
    latest = {} if status == "open" else latest_dispositions(conn, ids)
    return [_flag_row(r, flag, payments[(r.block_number, r.log_index)], latest.get(flag)) for r, flag in zip(raw, ids)]


def flags_of_payment(
    conn: Connection, payment: PaymentRow, history: Sequence[Disposition] | None = None
) -> list[FlagRow]:
    """Every flag of one payment (every status), in rule order, with its latest disposition: the payment's
    ``payment_flags`` rows by their primary key (the queue's rows for it, without searching the queue).
    `history`: the payment's ``disposition_history`` when the caller has it (else read here)."""
    if history is None:
        history = disposition_history(conn, payment.block_number, payment.log_index)
    f = casework.payment_flags
    raw = list(
        conn.execute(
            select(f.c.block_number, f.c.log_index, f.c.rule, f.c.detail, f.c.local_time)
            .where(f.c.block_number == payment.block_number, f.c.log_index == payment.log_index)
            .order_by(f.c.rule)
        )
    )
    ids = [(r.block_number, r.log_index, r.rule) for r in raw]
    latest: dict[FlagId, tuple[Disposition, int]] = {}
    for decided in history:  # oldest first: the last one of a flag is its latest
        flag = (decided.block_number, decided.log_index, decided.rule)
        latest[flag] = (decided, latest[flag][1] + 1 if flag in latest else 1)
    rows = [_flag_row(r, flag, payment, latest.get(flag)) for r, flag in zip(raw, ids)]
    order = {rule: i for i, rule in enumerate(RULES)}
    return sorted(rows, key=lambda row: order.get(row.rule, len(order)))


def _flag_row(r: Any, flag: FlagId, payment: PaymentRow, decided: tuple[Disposition, int] | None) -> FlagRow:
    return FlagRow(
        key=flag_key(*flag),
        rule=r.rule,
        rule_text=RULES.get(r.rule, r.rule),
        detail=r.detail,
        local_time=r.local_time,
        payment=payment,
        latest=None if decided is None else decided[0],
        dispositions=0 if decided is None else decided[1],
    )


def _unique_payments(raw: Sequence[Any]) -> list[Any]:
    seen: dict[tuple[int, int], Any] = {}
    for r in raw:
        seen.setdefault((r.block_number, r.log_index), r)
    return list(seen.values())


@dataclass(frozen=True)
class FlagCount:
    rule: str
    rule_text: str
    flags: int
    open: int


def flag_counts(conn: Connection, payments: PaymentFilter | None = None) -> list[FlagCount]:
    """Flags and open flags per rule (every rule, in ``RULES`` order), over the payments of `payments` (all:
    from ``flag_totals``, as fresh as the flags themselves)."""
    payments = payments or PaymentFilter()
    f, p, d = casework.payment_flags, schema.payments, casework.dispositions
    if payments.is_empty():
        # kept per rule by audit.derive beside the flags themselves
        t = casework.flag_totals
        totals = {r.rule: int(r.flags) for r in conn.execute(select(t.c.rule, t.c.flags))}
        # flags with at least one disposition, each once however many it has
        decided_flags = (
            select(f.c.rule, f.c.block_number, f.c.log_index)
            .select_from(f.join(d, _same_flag(d, f)))
            .distinct()
            .subquery()
        )
        decided = dict(
            (r.rule, int(r.n))
            for r in conn.execute(select(decided_flags.c.rule, func.count().label("n")).group_by(decided_flags.c.rule))
        )
    else:
        found = lookups(conn)
        joined = f.join(p, _flag_payment(f, p))
        where = payment_clause(payments, found, p)
        totals = dict(
            (r.rule, int(r.n))
            for r in conn.execute(
                select(f.c.rule, func.count().label("n")).select_from(joined).where(where).group_by(f.c.rule)
            )
        )
        decided = dict(
            (r.rule, int(r.n))
            for r in conn.execute(
                select(f.c.rule, func.count().label("n"))
                .select_from(joined)
                .where(where, status_clause("decided", f))
                .group_by(f.c.rule)
            )
        )
    return [
        FlagCount(rule, text, totals.get(rule, 0), totals.get(rule, 0) - decided.get(rule, 0))
        for rule, text in RULES.items()
    ]

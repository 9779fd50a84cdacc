"""Anomaly flags from Korean public-sector card audit practice (docs/DOMAIN.md), over indexed payments.

The contracts block what is forbidden (restricted categories, hours outside a program's window, amounts over a
limit, missing evidence). These rules flag what is allowed but needs justification or looks like a way around a
limit. Each flag names one payment (tx hash and log index) and one rule. Times are local to the payment's
program (its ``utc_offset_minutes``; KST, UTC+9, unless the program says otherwise); limits are those of the
program's configuration in force when the payment was made.

Rules (``RULES``; thresholds are :class:`FlagSettings`):

``night``
    paid at or after 23:00 or before 06:00 local time.
``weekend``
    paid on a Saturday or Sunday (local date).
``holiday``
    paid on a Korean public holiday (local date; ``holidays`` package, country KR, substitute holidays included).
``split-evidence``
    the payer paid the vendor at least twice on the same local day (same program) with payments each *below* the
    evidence threshold that together reach it (sum >= threshold): every such payment of that day is flagged.
    The threshold is the one in force at the day's last such payment.
``split-limit``
    the payer paid the vendor at least twice on the same local day (same program) and together *more than* the
    per-payment limit (each payment is within it, or the contract would have refused it): every payment of that
    day to that vendor is flagged. The limit is the one in force at the day's last payment.
``near-evidence-threshold``
    a payment without an evidence hash whose amount is in the top ``near_pct`` % (default 5 %) of the
    evidence-free range: ``threshold * (100 - near_pct) / 100 <= amount < threshold``. For the 500,000 KRW
    threshold: 475,000 to 499,999.
``near-payment-limit``
    an amount in the top ``near_pct`` % of what the per-payment limit allows:
    ``limit * (100 - near_pct) / 100 <= amount <= limit``. For a 1,000,000 KRW limit: 950,000 to 1,000,000.
    Programs without a limit (2**40-1) or without a threshold (0 or 2**40-1) are not checked for these.
``concentration``
    in one month (the payment's ``period``, local) a payer made at least ``concentration_min_payments`` (5)
    payments in a program and one vendor received at least ``concentration_share_pct`` % (50 %) of the amount:
    every payment of that payer to that vendor in that month is flagged.
"""

from __future__ import annotations

import json
from collections import defaultdict
from collections.abc import Iterable, Iterator
from dataclasses import asdict, dataclass
from datetime import date, datetime
from functools import lru_cache
from itertools import groupby
from typing import TYPE_CHECKING, Any

import holidays
from sqlalchemy import ColumnElement, Connection, Select, and_, case, false, func, literal, or_, select, true, tuple_

from deposit_token.audit.db import casework, schema
from deposit_token.audit.query.common import (
    Filters,
    ProgramConfig,
    ProgramConfigs,
    derived_current,
    format_period,
    local_datetime,
)
from deposit_token.domain.display import krw
from deposit_token.domain.rules import KST_OFFSET_MINUTES, MAX_AMOUNT_40

if TYPE_CHECKING:  # render (and rich) is imported only when flags are presented
    from deposit_token.audit.query.render import Section

RULES: dict[str, str] = {
    "night": "paid between 23:00 and 06:00 local time",
    "weekend": "paid on a Saturday or Sunday",
    "holiday": "paid on a Korean public holiday",
    "split-evidence": "same payer, vendor and day: each payment below the evidence threshold, together at or above it",
    "split-limit": "same payer, vendor and day: together above the per-payment limit",
    "near-evidence-threshold": "just below the evidence threshold, without evidence",
    "near-payment-limit": "just at or below the per-payment limit",
    "concentration": "one vendor took most of a payer's spend in a month",
}

ZERO_HASH = "0x" + "00" * 32
_RULE_ORDER = {rule: i for i, rule in enumerate(RULES)}


@dataclass(frozen=True)
class FlagSettings:
    near_pct: int = 5
    concentration_share_pct: int = 50
    concentration_min_payments: int = 5
    night_from_hour: int = 23
    night_until_hour: int = 6

    def __post_init__(self) -> None:
        if not 0 < self.near_pct < 100:
            raise ValueError(f"near_pct must be between 1 and 99, got {self.near_pct}")
        if not 0 < self.concentration_share_pct <= 100:
            raise ValueError(f"concentration_share_pct must be between 1 and 100, got {self.concentration_share_pct}")
        if self.concentration_min_payments < 1:
            raise ValueError("concentration_min_payments must be at least 1")


@dataclass(frozen=True)
class Flag:
    rule: str
    tx_hash: str
    block_number: int
    log_index: int
    local_time: str  # ISO 8601 with the program's offset
    program_id: int
    payer: str
    vendor: str
    amount: int
    detail: str


@dataclass(frozen=True)
class _Payment:
    block_number: int
    log_index: int
    tx_hash: str
    when: datetime  # local
    program_id: int
    payer: str
    vendor: str
    period: int
    amount: int
    evidence: bool
    config: ProgramConfig | None

    def flag(self, rule: str, detail: str) -> Flag:
        return Flag(
            rule,
            self.tx_hash,
            self.block_number,
            self.log_index,
            self.when.isoformat(),
            self.program_id,
            self.payer,
            self.vendor,
            self.amount,
            detail,
        )


_PAYMENT_COLUMNS = (
    "block_number",
    "log_index",
    "tx_hash",
    "block_timestamp",
    "program_id",
    "payer",
    "vendor",
    "period",
    "amount",
    "evidence_hash",
)
WINDOW_FETCH = 10_000  # rows fetched per round trip while streaming a month's payments


def _select_payments(filters: Filters, where: ColumnElement[bool] | None) -> Select[Any]:
    p = schema.payments
    return select(*(p.c[name] for name in _PAYMENT_COLUMNS)).where(
        filters.payment_clause(p), true() if where is None else where
    )


def _payment(r: Any, programs: ProgramConfigs) -> _Payment:
    config = programs.at(r.program_id, (r.block_number, r.log_index))
    offset = config.utc_offset_minutes if config else KST_OFFSET_MINUTES
    return _Payment(
        r.block_number,
        r.log_index,
        r.tx_hash,
        local_datetime(r.block_timestamp, offset),
        r.program_id,
        r.payer,
        r.vendor,
        r.period,
        int(r.amount),
        r.evidence_hash not in (None, "", ZERO_HASH),
        config,
    )


def load_payments(
    conn: Connection, filters: Filters, programs: ProgramConfigs, where: ColumnElement[bool] | None = None
) -> list[_Payment]:
    """The payments matching `filters` (and `where`, a further clause over ``schema.payments``), in chain order,
    each with its local time and the program configuration in force when it was made."""
    p = schema.payments
    rows = conn.execute(_select_payments(filters, where).order_by(p.c.block_number, p.c.log_index))
    return [_payment(r, programs) for r in rows]


def month_windows(conn: Connection, filters: Filters, programs: ProgramConfigs) -> Iterator[list[_Payment]]:
    """The payments matching `filters`, one month (``period``) at a time, each month in chain order: streamed
    from the (period, block, log) index (a server-side cursor on PostgreSQL, which reads the month's partition),
    so that flags over a year hold one month of payments in memory, not the year. Every rule looks at one
    payment, a local day or a month of one payer, all within one period."""
    p = schema.payments
    query = _select_payments(filters, None).order_by(p.c.period, p.c.block_number, p.c.log_index)
    rows = conn.execution_options(yield_per=WINDOW_FETCH).execute(query)
    for _, group in groupby(rows, key=lambda r: r.period):
        yield [_payment(r, programs) for r in group]


@lru_cache(maxsize=1)
def korean_holidays() -> holidays.HolidayBase:
    """Korea's public holidays (substitute holidays included), built once: the console flags each new block."""
    return holidays.country_holidays("KR")


def find_flags(
    conn: Connection,
    settings: FlagSettings = FlagSettings(),
    filters: Filters = Filters(),
    rules: Iterable[str] | None = None,
) -> list[Flag]:
    """Every flag raised by the payments matching `filters`, in chain order (then rule order).

    The database finds the payments that can raise one (``_candidates``: local night, weekend, holiday, near-*
    bands, a payer's second payment to a vendor in a day, a payer-month at the concentration share); they are
    streamed month by month and the rules run on them in Python, exactly as on every payment: a year never sits
    in memory, and a month of a national rollout's payments is not turned into Python objects one by one."""
    wanted = list(RULES) if rules is None else list(rules)
    unknown = [r for r in wanted if r not in RULES]
    if unknown:
        raise ValueError(f"unknown flag rule(s) {', '.join(unknown)} (known: {', '.join(RULES)})")
    programs = ProgramConfigs.load(conn)
    flags: list[Flag] = []
    candidates = _candidates(conn, settings, filters, wanted)
    if candidates is None:  # a program changed time zone: every payment goes through Python
        for month in month_windows(conn, filters, programs):
            flags.extend(flag_payments(month, settings, wanted))
        return sorted(flags, key=_chain_order)
    query, complete = candidates
    rows = conn.execution_options(yield_per=WINDOW_FETCH).execute(query)
    for _, group in groupby(rows, key=lambda r: r.period):
        month = []
        whole: set[tuple[int, str, int]] = set()
        for r in group:
            month.append(_payment(r, programs))
            if r.whole_month:
                whole.add((r.program_id, r.payer, r.period))
        flags.extend(flag_payments(month, settings, wanted, whole if complete else None))
    return sorted(flags, key=_chain_order)


def settings_text(settings: FlagSettings) -> str:
    """The settings as ``derived_state.settings`` records those the derived flags were computed with."""
    return json.dumps(asdict(settings), sort_keys=True)


def derived_is_current(conn: Connection, settings: FlagSettings) -> bool:
    """Whether ``payment_flags`` holds exactly the flags of every payment in the database for `settings`
    (``common.derived_current``, computed with these settings)."""
    return derived_current(conn, settings_text(settings))


def derived_flags(conn: Connection, filters: Filters = Filters(), rules: Iterable[str] | None = None) -> list[Flag]:
    """The flags of the payments matching `filters` as ``payment_flags`` holds them (with each payment's vendor
    and amount), in chain order then rule order. Only what ``find_flags`` returns when ``derived_is_current``:
    every rule looks at one payer's payments within one program and month, so a month's or a program's flags
    are those of the whole database in that month or program."""
    f, p = casework.payment_flags, schema.payments
    wanted = list(RULES) if rules is None else list(rules)
    query = (
        select(
            f.c.rule,
            f.c.tx_hash,
            f.c.block_number,
            f.c.log_index,
            f.c.local_time,
            f.c.program_id,
            f.c.payer,
            p.c.vendor,
            p.c.amount,
            f.c.detail,
        )
        .join(
            p,
            and_(p.c.period == f.c.period, p.c.block_number == f.c.block_number, p.c.log_index == f.c.log_index),
        )
        .where(filters.payment_clause(f), filters.payment_clause(p), f.c.rule.in_(wanted))
        # chain order, then rule order (``_chain_order``), sorted by the database: no key call per flag here
        .order_by(f.c.block_number, f.c.log_index, case(_RULE_ORDER, value=f.c.rule, else_=len(RULES)))
    )
    # plain tuples unpacked into Flags (no Row attribute lookups, no Python sort): a month at 10,000,000 payments
    # has 115,000 flags. Read whole, not through a server-side cursor: the flags are kept in a list anyway, and
    # PostgreSQL plans a cursor for its first rows and never in parallel (1.6 s for a month at 10,000,000
    # payments against 0.5 s for the same statement read whole)
    rows = conn.execute(query)
    return [
        Flag(ru, tx, b, li, lt, pid, payer, vendor, amount, detail)
        for ru, tx, b, li, lt, pid, payer, vendor, amount, detail in rows
    ]


def flags_of(
    conn: Connection,
    settings: FlagSettings = FlagSettings(),
    filters: Filters = Filters(),
    rules: Iterable[str] | None = None,
) -> list[Flag]:
    """What ``audit flags`` shows: the derived flag queue when it is current for `settings` (the indexer's
    server refreshes it after each commit), else ``find_flags`` computes them. Same flags either way; a month
    at 10,000,000 payments took 34 s to compute."""
    wanted = list(RULES) if rules is None else list(rules)
    unknown = [r for r in wanted if r not in RULES]
    if unknown:
        raise ValueError(f"unknown flag rule(s) {', '.join(unknown)} (known: {', '.join(RULES)})")
    if derived_is_current(conn, settings):
        return derived_flags(conn, filters, wanted)
    return find_flags(conn, settings, filters, wanted)


_SECONDS_PER_DAY = 86_400
_EPOCH = date(1970, 1, 1)


def _candidates(
    conn: Connection, s: FlagSettings, filters: Filters, rules: list[str]
) -> tuple[Select[Any], bool] | None:
    """The payments that can raise a flag, found in SQL, and whether the query marks the payer-months given in
    whole (``whole_month``): the rules then run in Python on these only, with the same result as on every payment.

    A payment is a candidate if its local time is at night, at a weekend or on a holiday, if its amount is in a
    near-* band of any of its program's configurations, if its payer paid the same vendor again that local day
    (the whole day's group then is in), or if its payer's month in the program has a vendor at the concentration
    share (the whole month then is in, marked: only such complete months are checked for concentration).
    None when a program's configurations have more than one time zone (local days would need each payment's
    configuration: the caller checks every payment then)."""
    t = schema.program_configs
    configs = conn.execute(
        select(t.c.program_id, t.c.utc_offset_minutes, t.c.per_payment_limit, t.c.evidence_threshold)
    ).all()
    offsets: dict[int, set[int]] = defaultdict(set)
    for c in configs:
        offsets[c.program_id].add(int(c.utc_offset_minutes))
    if any(len(o) > 1 for o in offsets.values()):
        return None
    p = schema.payments
    shift = case(
        *((p.c.program_id == pid, o.pop() * 60) for pid, o in sorted(offsets.items())),
        else_=KST_OFFSET_MINUTES * 60,
    )
    local = p.c.block_timestamp + shift
    day = local // _SECONDS_PER_DAY  # unix seconds are positive: floor = integer division
    hour = (local % _SECONDS_PER_DAY) // 3600
    near = s.near_pct
    conditions: list[ColumnElement[bool]] = []
    if "night" in rules:
        conditions.append(or_(hour >= s.night_from_hour, hour < s.night_until_hour))
    if "weekend" in rules:
        conditions.append((day + 3) % 7 >= 5)  # 1970-01-01 was a Thursday (Monday = 0)
    if "holiday" in rules:
        bounds = conn.execute(select(func.min(p.c.period), func.max(p.c.period)).where(filters.payment_clause(p))).one()
        if bounds[0] is not None:
            years = range(bounds[0] // 100 - 1, bounds[1] // 100 + 2)
            days = [(d - _EPOCH).days for d in holidays.country_holidays("KR", years=years)]
            conditions.append(day.in_(days))
    thresholds = [int(c.evidence_threshold) for c in configs if 0 < int(c.evidence_threshold) < MAX_AMOUNT_40]
    if "near-evidence-threshold" in rules and thresholds:
        conditions.append(
            and_(
                p.c.evidence_hash.in_(("", ZERO_HASH)),
                p.c.amount * 100 >= min(thresholds) * (100 - near),
                p.c.amount < max(thresholds),
            )
        )
    limits = [int(c.per_payment_limit) for c in configs if int(c.per_payment_limit) < MAX_AMOUNT_40]
    if "near-payment-limit" in rules and limits:
        conditions.append(and_(p.c.amount * 100 >= min(limits) * (100 - near), p.c.amount <= max(limits)))
    scope = filters.payment_clause(p)
    if {"split-evidence", "split-limit"} & set(rules):
        days_again = (
            select(p.c.program_id, p.c.payer, p.c.vendor, day.label("day"))
            .where(scope)
            .group_by(p.c.program_id, p.c.payer, p.c.vendor, day)
            .having(func.count() >= 2)
        )
        conditions.append(tuple_(p.c.program_id, p.c.payer, p.c.vendor, day).in_(days_again))
    whole_month: ColumnElement[Any] = literal(False)
    complete = "concentration" in rules
    if complete:
        per_vendor = (
            select(
                p.c.program_id,
                p.c.payer,
                p.c.period,
                func.sum(p.c.amount).label("received"),
                func.sum(func.sum(p.c.amount))
                .over(partition_by=(p.c.program_id, p.c.payer, p.c.period))
                .label("spent"),
                func.sum(func.count()).over(partition_by=(p.c.program_id, p.c.payer, p.c.period)).label("n"),
            )
            .where(scope)
            .group_by(p.c.program_id, p.c.payer, p.c.period, p.c.vendor)
            .subquery()
        )
        concentrated = (
            select(per_vendor.c.program_id, per_vendor.c.payer, per_vendor.c.period)
            .where(
                per_vendor.c.n >= s.concentration_min_payments,
                per_vendor.c.spent > 0,
                per_vendor.c.received * 100 >= per_vendor.c.spent * s.concentration_share_pct,
            )
            .distinct()
        )
        in_month = tuple_(p.c.program_id, p.c.payer, p.c.period).in_(concentrated)
        conditions.append(in_month)
        whole_month = case((in_month, literal(True)), else_=literal(False))
    if not conditions:
        conditions.append(false())
    query = (
        _select_payments(filters, or_(*conditions))
        .add_columns(whole_month.label("whole_month"))
        .order_by(p.c.period, p.c.block_number, p.c.log_index)
    )
    return query, complete


def _chain_order(flag: Flag) -> tuple[int, int, int]:
    return flag.block_number, flag.log_index, _RULE_ORDER[flag.rule]


def flag_payments(
    payments: list[_Payment],
    settings: FlagSettings,
    rules: Iterable[str],
    whole_months: set[tuple[int, str, int]] | None = None,
) -> list[Flag]:
    """The flags of `payments` (complete days of each payer and vendor, complete months of each payer in a
    program); `whole_months`: only these (program, payer, period) months are complete (the others are checked
    for every rule but concentration), None = all of them."""
    rules = set(rules)
    flags: list[Flag] = []
    if rules & {"night", "weekend", "holiday", "near-evidence-threshold", "near-payment-limit"}:
        kr = korean_holidays()
        for pay in payments:
            flags.extend(_single_payment_flags(pay, settings, rules, kr))
    if rules & {"split-evidence", "split-limit"}:
        flags.extend(_split_flags(payments, rules))
    if "concentration" in rules:
        whole = (
            payments
            if whole_months is None
            else [p for p in payments if (p.program_id, p.payer, p.period) in whole_months]
        )
        flags.extend(_concentration_flags(whole, settings))
    return sorted(flags, key=_chain_order)


def _single_payment_flags(pay: _Payment, s: FlagSettings, rules: set[str], kr: holidays.HolidayBase) -> list[Flag]:
    out = []
    when = pay.when
    if "night" in rules and (when.hour >= s.night_from_hour or when.hour < s.night_until_hour):
        out.append(
            pay.flag(
                "night",
                f"paid at {when:%H:%M} local time "
                f"({s.night_from_hour:02d}:00-{s.night_until_hour:02d}:00 needs justification)",
            )
        )
    if "weekend" in rules and when.weekday() >= 5:
        out.append(pay.flag("weekend", f"paid on a {when:%A} ({when:%Y-%m-%d})"))
    if "holiday" in rules and when.date() in kr:
        out.append(pay.flag("holiday", f"paid on {when:%Y-%m-%d}, {kr.get(when.date())} (KR public holiday)"))
    c = pay.config
    if c is None:
        return out
    if (
        "near-evidence-threshold" in rules
        and c.has_evidence_threshold
        and not pay.evidence
        and pay.amount < c.evidence_threshold
        and pay.amount * 100 >= c.evidence_threshold * (100 - s.near_pct)
    ):
        out.append(
            pay.flag(
                "near-evidence-threshold",
                f"{krw(pay.amount)} without evidence, within {s.near_pct}% below the evidence "
                f"threshold of {krw(c.evidence_threshold)}",
            )
        )
    if (
        "near-payment-limit" in rules
        and c.has_payment_limit
        and 0 < pay.amount <= c.per_payment_limit
        and pay.amount * 100 >= c.per_payment_limit * (100 - s.near_pct)
    ):
        out.append(
            pay.flag(
                "near-payment-limit",
                f"{krw(pay.amount)} is within {s.near_pct}% of the per-payment limit of {krw(c.per_payment_limit)}",
            )
        )
    return out


def _split_flags(payments: list[_Payment], rules: set[str]) -> list[Flag]:
    days: dict[tuple[int, str, str, date], list[_Payment]] = defaultdict(list)
    for pay in payments:
        days[(pay.program_id, pay.payer, pay.vendor, pay.when.date())].append(pay)
    out: list[Flag] = []
    for (_, _, _, day), group in days.items():
        if len(group) < 2:
            continue
        if "split-evidence" in rules:
            below = [
                p
                for p in group
                if p.config is not None and p.config.has_evidence_threshold and p.amount < p.config.evidence_threshold
            ]
            if len(below) >= 2 and (last := below[-1].config) is not None:
                threshold = last.evidence_threshold
                total = sum(p.amount for p in below)
                if total >= threshold:
                    detail = (
                        f"{len(below)} payments to this vendor on {day}, each below the evidence threshold of "
                        f"{krw(threshold)}, together {krw(total)}"
                    )
                    out.extend(p.flag("split-evidence", detail) for p in below)
        if "split-limit" in rules:
            config = group[-1].config
            if config is not None and config.has_payment_limit:
                total = sum(p.amount for p in group)
                if total > config.per_payment_limit:
                    detail = (
                        f"{len(group)} payments to this vendor on {day}, together {krw(total)}, above the "
                        f"per-payment limit of {krw(config.per_payment_limit)}"
                    )
                    out.extend(p.flag("split-limit", detail) for p in group)
    return out


def _concentration_flags(payments: list[_Payment], s: FlagSettings) -> list[Flag]:
    months: dict[tuple[int, str, int], list[_Payment]] = defaultdict(list)
    for pay in payments:
        months[(pay.program_id, pay.payer, pay.period)].append(pay)
    out: list[Flag] = []
    for (_, _, period), group in months.items():
        if len(group) < s.concentration_min_payments:
            continue
        total = sum(p.amount for p in group)
        if total <= 0:
            continue
        per_vendor: dict[str, list[_Payment]] = defaultdict(list)
        for pay in group:
            per_vendor[pay.vendor].append(pay)
        for own in per_vendor.values():
            amount = sum(p.amount for p in own)
            if amount * 100 >= total * s.concentration_share_pct:
                share = 100.0 * amount / total
                detail = (
                    f"vendor received {share:.1f}% ({krw(amount)} in {len(own)} of {len(group)} payments) "
                    f"of this payer's spend in {format_period(period)}"
                )
                out.extend(p.flag("concentration", detail) for p in own)
    return out


def flag_section(flags: list[Flag]) -> Section:
    """The flags as one ``render.Section``."""
    from deposit_token.audit.query.render import Col, Section

    return Section(
        "flags",
        "Flags",
        [
            Col("rule", "rule"),
            Col("tx_hash", "tx hash"),
            Col("log_index", "log", "int"),
            Col("block_number", "block", "int", in_table=False),
            Col("local_time", "local time"),
            Col("program_id", "program", "int", in_table=False),
            Col("payer", "payer", in_table=False),
            Col("vendor", "vendor", in_table=False),
            Col("amount", "amount (KRW)", "amount"),
            Col("detail", "why", wrap=True),
        ],
        flags,
        empty="no flags raised",
        notes=["payer, vendor, block and program of each flag: --format csv or json"] if flags else [],
    )


def rule_counts(flags: list[Flag]) -> dict[str, int]:
    counts = dict.fromkeys(RULES, 0)
    for f in flags:
        counts[f.rule] += 1
    return counts

"""Participants and programs for the auditors' console: a vendor's payments and redemptions, an official's
spending by category against the caps, a program's rules and their change history.

Monthly totals come from the derived cells (``spend_cells``, ``vendor_cells``, ``flow_cells``: ``audit.derive``),
as fresh as its last refresh, so a page
about a vendor paid a hundred thousand times reads a few hundred rows; single payments are listed with
``query.payments.list_payments`` (a vendor's or payer's filter). Everything here reads.

"Now" is never the wall clock: an official's current month is the month of the indexer's checkpoint block in
the program's time zone (or the month asked for).
"""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass
from typing import Any

from sqlalchemy import Connection, func, select

from deposit_token.audit.db import casework, schema
from deposit_token.audit.query.common import department_label, format_period
from deposit_token.audit.query.lookups import lookups
from deposit_token.audit.query.payments import ProgramRules, rules_at
from deposit_token.domain import display
from deposit_token.domain.categories import category_name
from deposit_token.domain.rules import KST_OFFSET_MINUTES, NO_CAP, local_time

# --- vendors ---------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class MonthTotal:
    period: str  # YYYY-MM
    payments: int
    amount: int


@dataclass(frozen=True)
class Redemption:
    block_number: int
    tx_hash: str
    time_kst: str
    amount: int
    reference: str
    settlement_ref: str


@dataclass(frozen=True)
class Registration:
    block_number: int
    time_kst: str
    name: str
    category: int
    category_name: str


@dataclass(frozen=True)
class Suspension:
    block_number: int
    time_kst: str
    suspended: bool
    officer: str
    reason: str


@dataclass(frozen=True)
class VendorActivity:
    vendor: str
    name: str
    category: int | None
    category_name: str
    registrations: list[Registration]
    suspensions: list[Suspension]
    suspended: bool
    payments: int
    received: int
    redeemed: int
    outstanding: int  # received - redeemed: tokens the vendor still holds from payments
    months: list[MonthTotal]  # oldest first
    by_program: list[tuple[int, str, int, int]]  # (program id, name, payments, amount)
    redemptions: list[Redemption]  # newest first


def vendor_activity(conn: Connection, vendor: str) -> VendorActivity | None:
    """A vendor's registration, suspensions, monthly payments received and redemptions; None if the index
    knows nothing of `vendor` (a checksummed address)."""
    found = lookups(conn)
    r, s, cells = schema.vendor_registrations, schema.vendor_suspensions, casework.vendor_cells
    registrations = [
        Registration(
            row.block_number, display.moment(row.block_timestamp), row.name, row.category, category_name(row.category)
        )
        for row in conn.execute(select(r).where(r.c.vendor == vendor).order_by(r.c.block_number, r.c.log_index))
    ]
    suspensions = [
        Suspension(row.block_number, display.moment(row.block_timestamp), row.suspended, row.officer, row.reason)
        for row in conn.execute(select(s).where(s.c.vendor == vendor).order_by(s.c.block_number, s.c.log_index))
    ]
    months: dict[int, list[int]] = defaultdict(lambda: [0, 0])
    programs: dict[int, list[int]] = defaultdict(lambda: [0, 0])
    for row in conn.execute(
        select(cells.c.period, cells.c.program_id, cells.c.payments, cells.c.amount).where(cells.c.vendor == vendor)
    ):
        for bucket in (months[row.period], programs[row.program_id]):
            bucket[0] += int(row.payments)
            bucket[1] += int(row.amount)
    red = schema.redemptions
    redemptions = [
        Redemption(
            row.block_number,
            row.tx_hash,
            display.moment(row.block_timestamp),
            int(row.amount),
            row.settlement_reference,
            row.settlement_ref,
        )
        for row in conn.execute(
            select(red).where(red.c.vendor == vendor).order_by(red.c.block_number.desc(), red.c.log_index.desc())
        )
    ]
    if not registrations and not months and not redemptions:
        return None
    received = sum(amount for _, amount in months.values())
    redeemed = sum(x.amount for x in redemptions)
    category = registrations[-1].category if registrations else None
    return VendorActivity(
        vendor=vendor,
        name=found.vendor_name(vendor),
        category=category,
        category_name=category_name(category) if category is not None else "-",
        registrations=registrations,
        suspensions=suspensions,
        suspended=bool(suspensions and suspensions[-1].suspended),
        payments=sum(n for n, _ in months.values()),
        received=received,
        redeemed=redeemed,
        outstanding=received - redeemed,
        months=[MonthTotal(format_period(p), n, a) for p, (n, a) in sorted(months.items())],
        by_program=[(pid, found.programs.name(pid), n, a) for pid, (n, a) in sorted(programs.items())],
        redemptions=redemptions,
    )


# --- officials -------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Enrolment:
    block_number: int
    time_kst: str
    program_id: int
    program: str
    department: str


@dataclass(frozen=True)
class CategorySpending:
    """An official's spending in one category in one month against the cap that applies."""

    category: int
    category_name: str
    allowed: bool  # in the program's categories now
    cap: int | None  # None = no cap
    cap_override: bool
    spent: int
    payments: int
    left: int | None  # cap - spent (None = no cap)
    used_pct: float | None
    last_cap_left: int | None  # what the latest payment's event said was left (the contract's own figure)


@dataclass(frozen=True)
class OfficialSpending:
    payer: str
    department: str
    program_id: int | None
    program: str
    enrolments: list[Enrolment]
    period: str  # the month shown: YYYY-MM
    categories: list[CategorySpending]
    allocated: int
    spent: int  # all months
    returned: int
    clawed_back: int
    swept: int
    balance: int  # allocated - spent - returned - clawed back - swept
    months: list[tuple[str, int, str, int, int]]  # (YYYY-MM, category, name, payments, amount), oldest first


def _sum(conn: Connection, table: Any, column: str, who: str) -> int:
    return int(
        conn.execute(select(func.coalesce(func.sum(table.c.amount), 0)).where(table.c[column] == who)).scalar_one()
    )


def current_period(conn: Connection, utc_offset_minutes: int = KST_OFFSET_MINUTES) -> int | None:
    """The month of the indexer's checkpoint block in a time zone (the console's "now"), or None."""
    cp = conn.execute(select(schema.checkpoint.c.block_number)).scalar_one_or_none()
    if cp is None:
        return None
    stamp = conn.execute(select(schema.blocks.c.timestamp).where(schema.blocks.c.number == cp)).scalar_one_or_none()
    if stamp is None:
        stamp = conn.execute(select(func.max(schema.payments.c.block_timestamp))).scalar_one_or_none()
    return None if stamp is None else local_time(int(stamp), utc_offset_minutes)[0]


def official_spending(conn: Connection, payer: str, period: int | None = None) -> OfficialSpending | None:
    """An official's department(s), program, money in and out, and spending per category in `period` (default:
    the current month, see the module docstring) against the caps in force now; None if the index knows
    nothing of `payer`."""
    found = lookups(conn)
    e, p, o = schema.enrolments, schema.payments, schema.cap_overrides
    enrolments = [
        Enrolment(
            row.block_number,
            display.moment(row.block_timestamp),
            row.program_id,
            found.programs.name(row.program_id),
            department_label(row.department, row.department_text),
        )
        for row in conn.execute(select(e).where(e.c.spender == payer).order_by(e.c.block_number, e.c.log_index))
    ]
    monthly = list(
        conn.execute(
            select(p.c.period, p.c.category, func.count().label("n"), func.sum(p.c.amount).label("total"))
            .where(p.c.payer == payer)
            .group_by(p.c.period, p.c.category)
            .order_by(p.c.period, p.c.category)
        )
    )
    if not enrolments and not monthly:
        return None
    program_id = enrolments[-1].program_id if enrolments else None
    latest_config = found.programs.latest(program_id) if program_id is not None else None
    offset = latest_config.utc_offset_minutes if latest_config else KST_OFFSET_MINUTES
    shown = period if period is not None else current_period(conn, offset)
    if shown is None:
        shown = monthly[-1].period if monthly else 0
    rules: ProgramRules | None = None
    if program_id is not None:
        cp = conn.execute(select(schema.checkpoint.c.block_number)).scalar_one_or_none()
        rules = rules_at(conn, program_id, (int(cp) if cp is not None else 2**62, 2**30))
    overrides: dict[int, tuple[int, bool]] = {}
    for row in conn.execute(select(o).where(o.c.spender == payer).order_by(o.c.block_number, o.c.log_index)):
        overrides[row.category] = (int(row.cap), bool(row.active))
    in_month = {row.category: (int(row.n), int(row.total)) for row in monthly if row.period == shown}
    last_left = {
        row.category: int(row.cap_left)
        for row in conn.execute(
            select(p.c.category, p.c.cap_left)
            .where(p.c.payer == payer, p.c.period == shown)
            .order_by(p.c.block_number, p.c.log_index)
        )
    }
    allowed = {rule.category: rule.cap for rule in rules.categories} if rules else {}
    categories = []
    for category in sorted(set(allowed) | set(in_month)):
        override = overrides.get(category)
        if override is not None and override[1]:
            cap: int | None = None if override[0] >= NO_CAP else override[0]
        else:
            cap = allowed.get(category)
        payments, spent = in_month.get(category, (0, 0))
        categories.append(
            CategorySpending(
                category=category,
                category_name=category_name(category),
                allowed=category in allowed,
                cap=cap,
                cap_override=override is not None and override[1],
                spent=spent,
                payments=payments,
                left=None if cap is None else cap - spent,
                used_pct=None if not cap else round(100.0 * spent / cap, 1),
                last_cap_left=last_left.get(category),
            )
        )
    allocated = _sum(conn, schema.allocations, "spender", payer)
    returned = _sum(conn, schema.returns, "spender", payer)
    clawed = _sum(conn, schema.clawbacks, "spender", payer)
    swept = _sum(conn, schema.sweeps, "spender", payer)
    spent_all = sum(int(row.total) for row in monthly)
    return OfficialSpending(
        payer=payer,
        department=found.departments.at(payer),
        program_id=program_id,
        program=found.programs.name(program_id) if program_id is not None else "-",
        enrolments=enrolments,
        period=format_period(shown) if shown else "-",
        categories=categories,
        allocated=allocated,
        spent=spent_all,
        returned=returned,
        clawed_back=clawed,
        swept=swept,
        balance=allocated - spent_all - returned - clawed - swept,
        months=[
            (format_period(row.period), row.category, category_name(row.category), int(row.n), int(row.total))
            for row in monthly
        ],
    )


# --- programs --------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class RulesVersion:
    rules: ProgramRules
    changes: list[str]  # what differs from the previous version, in words ([] for the first)


@dataclass(frozen=True)
class PauseChange:
    block_number: int
    time_kst: str
    paused: bool
    officer: str


@dataclass(frozen=True)
class CapOverride:
    spender: str
    department: str
    category: int
    category_name: str
    cap: int | None
    active: bool
    time_kst: str


@dataclass(frozen=True)
class ProgramHistory:
    program_id: int
    name: str
    current: ProgramRules
    versions: list[RulesVersion]  # oldest first
    pauses: list[PauseChange]
    overrides: list[CapOverride]  # spenders' cap overrides, latest per spender and category
    spenders: int  # enrolled in this program (by their latest enrolment)
    departments: list[str]
    allocated: int
    spent: int
    returned: int
    clawed_back: int
    swept: int
    months: list[MonthTotal]


def _money(amount: int | None) -> str:
    return "none" if amount is None else display.krw(amount)


def rules_changes(before: ProgramRules, after: ProgramRules) -> list[str]:
    """What changed between two versions of a program's rules, one sentence per change."""
    out: list[str] = []
    for label, old, new in (
        ("name", before.name, after.name),
        ("treasury", before.treasury, after.treasury),
        ("start", before.start, after.start),
        ("end", before.end, after.end),
        ("time zone", before.zone, after.zone),
    ):
        if old != new:
            out.append(f"{label}: {old} -> {new}")
    if before.per_payment_limit != after.per_payment_limit:
        out.append(f"per-payment limit: {_money(before.per_payment_limit)} -> {_money(after.per_payment_limit)}")
    if before.evidence_threshold != after.evidence_threshold:
        out.append(f"evidence threshold: {_money(before.evidence_threshold)} -> {_money(after.evidence_threshold)}")
    for (day, old_hours), (_, new_hours) in zip(before.hours, after.hours):
        if old_hours != new_hours:
            out.append(f"hours on {day}: {old_hours} -> {new_hours}")
    old_caps = {c.category: c for c in before.categories}
    new_caps = {c.category: c for c in after.categories}
    for category in sorted(set(old_caps) | set(new_caps)):
        name = category_name(category)
        if category not in old_caps:
            out.append(f"{name} allowed (cap {_money(new_caps[category].cap)})")
        elif category not in new_caps:
            out.append(f"{name} no longer allowed")
        elif old_caps[category].cap != new_caps[category].cap:
            out.append(f"{name} cap: {_money(old_caps[category].cap)} -> {_money(new_caps[category].cap)}")
    if before.paused != after.paused:
        out.append("paused" if after.paused else "resumed")
    return out


def program_history(conn: Connection, program_id: int) -> ProgramHistory | None:
    """A program's rules now, every version with what changed, pauses, spenders' cap overrides, spenders and
    money; None if the index has no configuration of `program_id`."""
    found = lookups(conn)
    t = schema.program_configs
    configs = list(
        conn.execute(
            select(t.c.block_number, t.c.log_index)
            .where(t.c.program_id == program_id)
            .order_by(t.c.block_number, t.c.log_index)
        )
    )
    if not configs:
        return None
    versions: list[RulesVersion] = []
    for row in configs:
        rules = rules_at(conn, program_id, (row.block_number, row.log_index))
        if rules is None:
            continue
        changes = rules_changes(versions[-1].rules, rules) if versions else []
        versions.append(RulesVersion(rules, changes))
    cp = conn.execute(select(schema.checkpoint.c.block_number)).scalar_one_or_none()
    current = rules_at(conn, program_id, (int(cp) if cp is not None else 2**62, 2**30)) or versions[-1].rules
    pp = schema.program_pauses
    pauses = [
        PauseChange(row.block_number, display.moment(row.block_timestamp), row.paused, row.officer)
        for row in conn.execute(
            select(pp).where(pp.c.program_id == program_id).order_by(pp.c.block_number, pp.c.log_index)
        )
    ]
    members = found.members(program_id)
    departments = sorted({found.departments.at(s) for s in members})
    overrides = _program_overrides(conn, set(members), found)
    cells = casework.spend_cells
    months: dict[int, list[int]] = defaultdict(lambda: [0, 0])
    for cell in conn.execute(
        select(cells.c.period, func.sum(cells.c.payments).label("n"), func.sum(cells.c.amount).label("total"))
        .where(cells.c.program_id == program_id)
        .group_by(cells.c.period)
    ):
        months[cell.period] = [int(cell.n), int(cell.total)]

    f = casework.flow_cells
    flows = {
        r.flow: int(r.total)
        for r in conn.execute(
            select(f.c.flow, func.sum(f.c.amount).label("total")).where(f.c.program_id == program_id).group_by(f.c.flow)
        )
    }

    return ProgramHistory(
        program_id=program_id,
        name=current.name,
        current=current,
        versions=versions,
        pauses=pauses,
        overrides=overrides,
        spenders=len(members),
        departments=departments,
        allocated=flows.get("allocated", 0),
        spent=sum(a for _, a in months.values()),
        returned=flows.get("returned", 0),
        clawed_back=flows.get("clawed_back", 0),
        swept=flows.get("swept", 0),
        months=[MonthTotal(format_period(p), n, a) for p, (n, a) in sorted(months.items())],
    )


def _program_overrides(conn: Connection, members: set[str], found: Any) -> list[CapOverride]:
    if not members:
        return []
    o = schema.cap_overrides
    latest: dict[tuple[str, int], Any] = {}
    for row in conn.execute(select(o).order_by(o.c.block_number, o.c.log_index)):
        if row.spender in members:
            latest[(row.spender, row.category)] = row
    return [
        CapOverride(
            spender,
            found.departments.at(spender),
            category,
            category_name(category),
            None if int(row.cap) >= NO_CAP else int(row.cap),
            bool(row.active),
            display.moment(row.block_timestamp),
        )
        for (spender, category), row in sorted(latest.items())
    ]


# --- choices for filters ---------------------------------------------------------------------------------------


@dataclass(frozen=True)
class FilterChoices:
    """What a payments filter form offers: every program, department, vendor and category the index knows."""

    programs: list[tuple[int, str]]
    departments: list[str]
    vendors: list[tuple[str, str, int]]  # (address, name, category), by name
    categories: list[tuple[int, str]]
    months: list[str]  # YYYY-MM with payments, newest first


def filter_choices(conn: Connection) -> FilterChoices:
    found = lookups(conn)
    cells = casework.spend_cells
    periods = [int(r[0]) for r in conn.execute(select(cells.c.period).distinct().order_by(cells.c.period.desc()))]
    categories = {int(r[0]) for r in conn.execute(select(cells.c.category).distinct())}
    categories |= {category for _, category in found.vendors.values()}
    return FilterChoices(
        programs=[(pid, found.programs.name(pid)) for pid in found.programs.program_ids()],
        departments=found.departments.labels(),
        vendors=sorted(((v, n, c) for v, (n, c) in found.vendors.items()), key=lambda x: (x[1].lower(), x[0])),
        categories=[(c, category_name(c)) for c in sorted(categories)],
        months=[format_period(p) for p in periods],
    )


__all__ = [
    "CategorySpending",
    "FilterChoices",
    "MonthTotal",
    "OfficialSpending",
    "ProgramHistory",
    "Redemption",
    "RulesVersion",
    "VendorActivity",
    "current_period",
    "filter_choices",
    "official_spending",
    "program_history",
    "rules_changes",
    "vendor_activity",
]

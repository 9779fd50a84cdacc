"""Keeps the derived tables (``db.casework``: flags, spend cells, vendor cells) up to the indexer's checkpoint,
incrementally, so that the console reads a flag queue and monthly totals instead of recomputing them from every
payment on each page.

``refresh(engine)`` looks at the payments above ``derived_state.block_number`` and recomputes only the groups
they belong to: a flag depends on its payment (night, weekend, holiday, near a limit), on the payer's payments
to the same vendor that local day (split bills) or on the payer's payments in the program that month
(concentration), so recomputing every (payer, program, month) group with a new payment, with the very
functions of ``audit flags`` (``query.flags.load_payments`` + ``flag_payments``), gives exactly the flags
``audit flags`` gives for the whole database. Cells are summed with ``query.reports.spend_facts`` (a payment
counts for the department its payer had when paying) and added to what is stored.

What changes below the derived checkpoint is handled too:

* a reorg: ``store.rollback_to`` lowers ``derived_state.block_number`` to the common ancestor and records the
  groups of the removed payments in ``derived_dirty`` in its own transaction; the next refresh recomputes those
  groups' flags and those months' cells from scratch;
* a payer's first enrolment indexed after payments of theirs (an index that started late): their months'
  cells are recomputed, since ``Departments`` dates the first department back;
* other flag settings than those stored, a reset index (no state row), a state above the checkpoint: a
  rebuild from nothing.

One refresh step is one transaction that first takes the ``derived_state`` row (a row lock on PostgreSQL, the
write lock on SQLite), so two refreshers never interleave and a rollback waits for a step to finish. The
server calls ``refresh`` after each indexer commit (``Indexer(on_commit=...)``) or on a timer: a step for one
block of payments takes milliseconds; the first build of a large database goes by ``batch`` payments per step.
"""

from __future__ import annotations

import time
from collections import defaultdict
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import Connection, Engine, and_, delete, func, literal, or_, select, true, update
from sqlalchemy.dialects import postgresql, sqlite

from deposit_token.audit.db import casework, schema, store
from deposit_token.audit.query.common import Departments, Filters, ProgramConfigs
from deposit_token.audit.query.flags import RULES, FlagSettings, flag_payments, load_payments, settings_text
from deposit_token.audit.query.lookups import lookups
from deposit_token.audit.query.reports import SpendFact, spend_facts
from deposit_token.domain.rules import KST_OFFSET_MINUTES, local_time

DEFAULT_BATCH = 50_000  # payments per step of a first build: memory and lock time stay bounded
NOT_STARTED = -1  # derived_state.block_number before any payment is reflected

Group = tuple[str, int, int]  # (payer, program_id, period)


@dataclass(frozen=True)
class RefreshResult:
    """What one ``refresh`` did: blocks (first_block, last_block] were taken in."""

    first_block: int
    last_block: int
    payments: int  # new payments reflected
    groups: int  # (payer, program, month) groups whose flags were recomputed
    flags: int  # flag rows written
    rebuilt: bool  # started from nothing
    steps: int
    seconds: float


@dataclass(frozen=True)
class DerivedStatus:
    """How far the derived tables are: ``block_number`` None = never built."""

    block_number: int | None
    checkpoint: int | None  # the indexer's
    updated_at: datetime | None

    @property
    def behind(self) -> int | None:
        if self.checkpoint is None:
            return None
        return self.checkpoint - (self.block_number if self.block_number is not None else NOT_STARTED)


def status(conn: Connection) -> DerivedStatus:
    """Where the derived tables stand against the indexer's checkpoint."""
    state = conn.execute(select(casework.derived_state.c.block_number, casework.derived_state.c.updated_at)).first()
    checkpoint = store.read_checkpoint(conn)
    return DerivedStatus(
        None if state is None or state.block_number < 0 else int(state.block_number),
        None if checkpoint is None else checkpoint[0],
        None if state is None else _aware(state.updated_at),
    )


def _aware(value: datetime) -> datetime:
    return value if value.tzinfo is not None else value.replace(tzinfo=UTC)


def refresh(
    engine: Engine,
    settings: FlagSettings | None = None,
    batch: int = DEFAULT_BATCH,
    on_step: Callable[[int, int], None] | None = None,
) -> RefreshResult:
    """Brings the derived tables up to the indexer's checkpoint (see the module docstring); `on_step` gets
    (block reached, checkpoint) after each committed step."""
    if batch < 1:
        raise ValueError("batch must be at least 1 payment")
    settings = settings or FlagSettings()
    started = time.monotonic()
    first: int | None = None
    last = NOT_STARTED
    totals = [0, 0, 0]
    rebuilt = False
    steps = 0
    while True:
        with engine.begin() as conn:
            step = _step(conn, settings, batch)
        if step is None:
            break
        steps += 1
        if first is None:
            first = step.first_block
        last = step.last_block
        rebuilt = rebuilt or step.rebuilt
        totals[0] += step.payments
        totals[1] += step.groups
        totals[2] += step.flags
        if on_step is not None:
            on_step(step.last_block, step.checkpoint)
        if step.last_block >= step.checkpoint:
            break
    if first is None:
        with engine.connect() as conn:
            now = status(conn).block_number
        first = last = NOT_STARTED if now is None else now
    return RefreshResult(first, last, totals[0], totals[1], totals[2], rebuilt, steps, time.monotonic() - started)


@dataclass(frozen=True)
class _Step:
    first_block: int
    last_block: int
    checkpoint: int
    payments: int
    groups: int
    flags: int
    rebuilt: bool


_settings_text = settings_text  # what query.flags.derived_is_current compares


def _lock_state(conn: Connection) -> tuple[int, str]:
    """Takes the state row (first statement of the step: the write lock on SQLite, a row lock on PostgreSQL),
    creating it if needed; (block_number, settings)."""
    state = casework.derived_state
    now = datetime.now(UTC)
    take = update(state).where(state.c.id == 1).values(updated_at=now)
    if conn.execute(take).rowcount == 0:
        # settings '' make the step build everything (as the row migration 0004 creates); another refresher
        # creating it meanwhile: nothing inserted here, the update below waits for its step
        dialect = postgresql if conn.dialect.name == "postgresql" else sqlite
        conn.execute(
            dialect.insert(state)
            .values(id=1, block_number=NOT_STARTED, settings="", updated_at=now)
            .on_conflict_do_nothing(index_elements=["id"])
        )
        conn.execute(take)
    row = conn.execute(select(state.c.block_number, state.c.settings).where(state.c.id == 1)).one()
    return int(row.block_number), row.settings


def _clear(conn: Connection) -> None:
    for table in casework.DERIVED_TABLES:
        if table is not casework.derived_state:
            conn.execute(delete(table))


def _step(conn: Connection, settings: FlagSettings, batch: int) -> _Step | None:
    """One transaction's worth: the dirty groups and up to `batch` new payments. None: nothing to do."""
    done, used = _lock_state(conn)
    checkpoint = store.read_checkpoint(conn)
    if checkpoint is None:
        return None  # nothing indexed yet
    indexed = checkpoint[0]
    rebuilt = used != _settings_text(settings) or done > indexed
    if rebuilt:
        done = NOT_STARTED
    if rebuilt:
        _clear(conn)
    dirty = _dirty_groups(conn)
    flows_dirty = casework.FLOWS_DIRTY in dirty
    dirty.discard(casework.FLOWS_DIRTY)
    if done >= indexed and not dirty and not flows_dirty:
        return None
    p = schema.payments
    target = indexed
    # the block of the (batch+1)-th new payment: stop before it (a block is never split between steps)
    over = conn.execute(
        select(p.c.block_number)
        .where(p.c.block_number > done, p.c.block_number <= indexed)
        .order_by(p.c.block_number, p.c.log_index)
        .offset(batch)
        .limit(1)
    ).scalar_one_or_none()
    if over is not None:
        first_of_next = int(over)
        target = first_of_next - 1 if first_of_next - 1 > done else first_of_next
    in_range = and_(p.c.block_number > done, p.c.block_number <= target)
    new_groups = {
        (r.payer, r.program_id, r.period)
        for r in conn.execute(select(p.c.payer, p.c.program_id, p.c.period).where(in_range).distinct())
    }
    found = lookups(conn)  # reloaded only when programs, enrolments or vendors changed
    programs, departments = found.programs, found.departments
    recompute_months = {(program, period) for _, program, period in dirty}
    recompute_months |= _late_first_enrolments(conn, done, target)
    groups, flags = _recompute_flags(conn, new_groups | dirty, target, settings, programs)
    _recompute_cells(conn, recompute_months, target, departments)
    _add_payer_years(conn, dirty, in_range, target)
    # new payments of months recomputed above are already in their cells
    new_months = {(program, period) for _, program, period in new_groups} - recompute_months
    if new_months:
        facts = spend_facts(conn, departments=departments, where=and_(in_range, _months_clause(p, new_months)))
        _add_cells(conn, facts)
    if flows_dirty:  # a rollback removed flags beside those recomputed here: count them all again
        _recount_flags(conn)
    if flows_dirty or _offset_changed(conn, done, target):
        conn.execute(delete(casework.flow_cells))
        _add_flows(conn, NOT_STARTED, target, programs)
    else:
        _add_flows(conn, done, target, programs)
    payments = int(conn.execute(select(func.count()).select_from(p).where(in_range)).scalar_one())
    conn.execute(delete(casework.derived_dirty))
    conn.execute(
        update(casework.derived_state)
        .where(casework.derived_state.c.id == 1)
        .values(block_number=target, settings=_settings_text(settings))
    )
    return _Step(done, target, indexed, payments, groups, flags, rebuilt)


def _recount_flags(conn: Connection) -> None:
    f = casework.payment_flags
    conn.execute(delete(casework.flag_totals))
    counts = {
        (r.rule,): [int(r.n), 0] for r in conn.execute(select(f.c.rule, func.count().label("n")).group_by(f.c.rule))
    }
    _upsert_add(conn, casework.flag_totals, ("rule",), counts, ("flags",))


_FLOW_TABLES = (
    ("allocated", schema.allocations),
    ("returned", schema.returns),
    ("clawed_back", schema.clawbacks),
    ("swept", schema.sweeps),
)


def _add_flows(conn: Connection, done: int, target: int, programs: ProgramConfigs) -> None:
    """Adds the money movements of blocks (done, target] to ``flow_cells``: each in the month of its program's
    time zone (the latest configuration's, as ``reports.flows`` counts them); redemptions in KST."""
    cells: dict[tuple[int, int, str], list[int]] = defaultdict(lambda: [0, 0])
    offsets: dict[int, int] = {}
    for flow, table in _FLOW_TABLES:
        for r in conn.execute(
            select(table.c.program_id, table.c.block_timestamp, table.c.amount).where(
                table.c.block_number > done, table.c.block_number <= target
            )
        ):
            offset = offsets.setdefault(r.program_id, programs.offset(r.program_id))
            cells[(local_time(r.block_timestamp, offset)[0], r.program_id, flow)][1] += int(r.amount)
    red = schema.redemptions
    for redeemed in conn.execute(
        select(red.c.block_timestamp, red.c.amount).where(red.c.block_number > done, red.c.block_number <= target)
    ):
        cells[(local_time(redeemed.block_timestamp, KST_OFFSET_MINUTES)[0], 0, "redeemed")][1] += int(redeemed.amount)
    _upsert_add(conn, casework.flow_cells, ("period", "program_id", "flow"), cells, ("amount",))


def _offset_changed(conn: Connection, done: int, target: int) -> bool:
    """Whether a program's time zone changed in blocks (done, target]: its flows fall in other months then."""
    t = schema.program_configs
    for r in conn.execute(
        select(t.c.program_id, t.c.utc_offset_minutes, t.c.block_number, t.c.log_index).where(
            t.c.block_number > done, t.c.block_number <= target
        )
    ):
        before = conn.execute(
            select(t.c.utc_offset_minutes)
            .where(
                t.c.program_id == r.program_id,
                or_(
                    t.c.block_number < r.block_number,
                    and_(t.c.block_number == r.block_number, t.c.log_index < r.log_index),
                ),
            )
            .order_by(t.c.block_number.desc(), t.c.log_index.desc())
            .limit(1)
        ).scalar_one_or_none()
        if before is not None and before != r.utc_offset_minutes:
            return True
    return False


def _dirty_groups(conn: Connection) -> set[Group]:
    d = casework.derived_dirty
    return {(r.payer, r.program_id, r.period) for r in conn.execute(select(d.c.payer, d.c.program_id, d.c.period))}


def _late_first_enrolments(conn: Connection, done: int, target: int) -> set[tuple[int, int]]:
    """(program, month) of payments made before their payer's first enrolment, when that enrolment is new:
    ``Departments`` dates a first department back, so those months' cells change."""
    e, p = schema.enrolments, schema.payments
    fresh = {
        r.spender
        for r in conn.execute(select(e.c.spender).where(e.c.block_number > done, e.c.block_number <= target).distinct())
    }
    if not fresh or done == NOT_STARTED:
        return set()
    known = {
        r.spender
        for r in conn.execute(select(e.c.spender).where(e.c.spender.in_(fresh), e.c.block_number <= done).distinct())
    }
    late = sorted(fresh - known)
    months: set[tuple[int, int]] = set()
    for i in range(0, len(late), 500):
        months |= {
            (r.program_id, r.period)
            for r in conn.execute(
                select(p.c.program_id, p.c.period)
                .where(p.c.payer.in_(late[i : i + 500]), p.c.block_number <= done)
                .distinct()
            )
        }
    return months


def _chunks(items: Sequence[Any], size: int) -> Iterable[Sequence[Any]]:
    for i in range(0, len(items), size):
        yield items[i : i + size]


def _recompute_flags(
    conn: Connection, groups: set[Group], target: int, settings: FlagSettings, programs: ProgramConfigs
) -> tuple[int, int]:
    """Deletes and recomputes the flags of every group of payers x programs x months covering `groups` (a
    superset read in one query per chunk of payers: whole groups, so each is flagged as ``audit flags`` would).
    Returns (groups recomputed, flags written)."""
    if not groups:
        return 0, 0
    p, f = schema.payments, casework.payment_flags
    totals: dict[str, list[int]] = defaultdict(lambda: [0, 0])  # rule -> [flags added - removed, unused]
    by_payer: dict[str, set[tuple[int, int]]] = defaultdict(set)
    for payer, program, period in groups:
        by_payer[payer].add((program, period))
    recomputed = 0
    written = 0
    for payers in _chunks(sorted(by_payer), 1_000):
        programs_in = sorted({program for payer in payers for program, _ in by_payer[payer]})
        periods_in = sorted({period for payer in payers for _, period in by_payer[payer]})
        cover = and_(f.c.payer.in_(payers), f.c.program_id.in_(programs_in), f.c.period.in_(periods_in))
        for r in conn.execute(select(f.c.rule, func.count().label("n")).where(cover).group_by(f.c.rule)):
            totals[r.rule][0] -= int(r.n)
        conn.execute(delete(f).where(cover))
        loaded = load_payments(
            conn,
            Filters(),
            programs,
            where=and_(
                p.c.payer.in_(payers),
                p.c.program_id.in_(programs_in),
                p.c.period.in_(periods_in),
                p.c.block_number <= target,
            ),
        )
        recomputed += len({(pay.payer, pay.program_id, pay.period) for pay in loaded})
        period_of = {(pay.block_number, pay.log_index): pay.period for pay in loaded}
        rows = [
            (
                flag.block_number,
                flag.log_index,
                flag.rule,
                flag.tx_hash,
                flag.payer,
                flag.program_id,
                period_of[(flag.block_number, flag.log_index)],
                flag.local_time,
                flag.detail,
            )
            for flag in flag_payments(loaded, settings, RULES)
        ]
        store.insert_rows(conn, f.name, [c.name for c in f.columns], rows)
        for row in rows:
            totals[row[2]][0] += 1
        written += len(rows)
    _upsert_add(conn, casework.flag_totals, ("rule",), {(rule,): sums for rule, sums in totals.items()}, ("flags",))
    return recomputed, written


def _add_payer_years(conn: Connection, dirty: set[Group], in_range: Any, target: int) -> None:
    """``payer_years``: the dirty groups' years deleted and taken again from the payments (a rollback may have
    removed a payer's only payment to a vendor in a month), then the new payments' months ORed into their rows
    (created where missing). In SQL, one INSERT ... SELECT per chunk: a first build adds millions of rows."""
    p, y = schema.payments, casework.payer_years
    dialect = postgresql if conn.dialect.name == "postgresql" else sqlite
    year = p.c.period // 100
    keys = (year, p.c.program_id, p.c.payer, p.c.category, p.c.vendor)
    # OR of the months' bits: a sum of the distinct bits (both databases have it, neither has bit_or in common)
    months = func.sum((literal(1).op("<<")(p.c.period % 100 - 1)).distinct())

    def add(where: Any) -> None:
        rows = select(*keys, months).where(where).group_by(*keys)
        insert = dialect.insert(y).from_select(["year", "program_id", "payer", "category", "vendor", "months"], rows)
        conn.execute(
            insert.on_conflict_do_update(
                index_elements=["year", "program_id", "payer", "category", "vendor"],
                set_={"months": y.c.months.op("|")(insert.excluded.months)},
            )
        )

    for chunk in _chunks(sorted(dirty), 500):
        conn.execute(
            delete(y).where(
                or_(*(and_(y.c.payer == a, y.c.program_id == b, y.c.year == m // 100) for a, b, m in chunk))
            )
        )
        add(
            and_(
                p.c.block_number <= target,
                or_(*(and_(p.c.payer == a, p.c.program_id == b, year == m // 100) for a, b, m in chunk)),
            )
        )
    add(in_range)


def _months_clause(table: Any, months: set[tuple[int, int]]) -> Any:
    programs = sorted({program for program, _ in months})
    periods = sorted({period for _, period in months})
    # a cross product of the two lists can hold a (program, period) not asked for: say it exactly
    return and_(
        table.c.program_id.in_(programs),
        table.c.period.in_(periods),
        true() if len(months) == len(programs) * len(periods) else _pairs(table, months),
    )


def _pairs(table: Any, months: set[tuple[int, int]]) -> Any:
    return or_(*(and_(table.c.program_id == program, table.c.period == period) for program, period in months))


def _recompute_cells(conn: Connection, months: set[tuple[int, int]], target: int, departments: Departments) -> None:
    if not months:
        return
    conn.execute(delete(casework.spend_cells).where(_months_clause(casework.spend_cells, months)))
    conn.execute(delete(casework.vendor_cells).where(_months_clause(casework.vendor_cells, months)))
    p = schema.payments
    facts = spend_facts(
        conn, departments=departments, where=and_(p.c.block_number <= target, _months_clause(p, months))
    )
    _add_cells(conn, facts)


def _add_cells(conn: Connection, facts: Iterable[SpendFact]) -> None:
    """Adds payments and amounts to the cells (created where missing)."""
    spend: dict[tuple[int, int, str, int], list[int]] = defaultdict(lambda: [0, 0])
    vendors: dict[tuple[int, int, str, int], list[int]] = defaultdict(lambda: [0, 0])
    for fact in facts:
        cell = spend[(fact.period, fact.program_id, fact.department, fact.category)]
        cell[0] += fact.payments
        cell[1] += fact.amount
        cell = vendors[(fact.period, fact.program_id, fact.vendor, fact.category)]
        cell[0] += fact.payments
        cell[1] += fact.amount
    _upsert_add(conn, casework.spend_cells, ("period", "program_id", "department", "category"), spend)
    _upsert_add(conn, casework.vendor_cells, ("period", "program_id", "vendor", "category"), vendors)


def _upsert_add(
    conn: Connection,
    table: Any,
    keys: tuple[str, ...],
    cells: dict[tuple[Any, ...], list[int]],
    values: tuple[str, ...] = ("payments", "amount"),
) -> None:
    """Adds each cell's [payments, amount] (those of them that are columns: `values`) to its row, creating it."""
    if not cells:
        return
    position = {"payments": 0, "amount": 1, "flags": 0}
    rows = [
        {**dict(zip(keys, key)), **{name: sums[position[name]] for name in values}}
        for key, sums in sorted(cells.items())
    ]
    dialect = postgresql if conn.dialect.name == "postgresql" else sqlite
    statement = dialect.insert(table)
    statement = statement.on_conflict_do_update(
        index_elements=list(keys),
        set_={name: table.c[name] + statement.excluded[name] for name in values},
    )
    for chunk in _chunks(rows, 5_000):
        conn.execute(statement, list(chunk))

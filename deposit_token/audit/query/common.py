"""What the auditors' commands (report, flags, export, public) share: opening the database, a consistent read
snapshot, month filters, program rules as they were at a given log, departments, vendor names.

Everything here reads; nothing writes. Positions on the chain are ``(block_number, log_index)`` pairs.
"""

from __future__ import annotations

import bisect
import re
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import Connection, Engine, and_, func, inspect, or_, select
from sqlalchemy.exc import SQLAlchemyError

from deposit_token.audit.db import casework, schema, store
from deposit_token.domain import display
from deposit_token.domain.rules import KST_OFFSET_MINUTES, MAX_AMOUNT_40
from deposit_token.errors import DepositTokenError

Position = tuple[int, int]


class AuditDatabaseError(DepositTokenError):
    """The audit database cannot be opened or holds no index (message meant for the user)."""


# --- opening ---------------------------------------------------------------------------------------------------


def database_url(target: str) -> str:
    """A database URL from what a user types: the audit commands' one rule, :func:`store.database_url`."""
    return store.database_url(target)


def open_audit_database(target: str) -> Engine:
    """An engine on an existing, indexed audit database (SQLite file path or URL, PostgreSQL URL), opened like
    the indexer opens it (``store.create_db_engine``) but never created or migrated: these commands only read.
    Raises AuditDatabaseError saying what is wrong."""
    try:
        url = store.parse_db_url(database_url(target))
    except store.DatabaseError as err:
        raise AuditDatabaseError(str(err)) from None
    if url.get_backend_name() == "sqlite" and not store.sqlite_file(url).is_file():
        raise AuditDatabaseError(
            f"no audit database at {store.sqlite_file(url)}: index the chain first "
            "(`ape run audit index`), or give --db"
        )
    try:
        engine = store.create_db_engine(url.render_as_string(hide_password=False), create_dir=False)
        with engine.connect() as conn:
            present = set(inspect(conn).get_table_names())
    except store.DatabaseError as err:
        raise AuditDatabaseError(str(err)) from None
    except SQLAlchemyError as err:
        reason = str(getattr(err, "orig", None) or err).strip().splitlines()
        raise AuditDatabaseError(
            f"cannot open the audit database {url.render_as_string(hide_password=True)}: "
            f"{reason[0] if reason else type(err).__name__}"
        ) from None
    if "payments" not in present:
        engine.dispose()
        raise AuditDatabaseError(
            f"{url.render_as_string(hide_password=True)} holds no audit index (no payments table): "
            "run `ape run audit index` first"
        )
    return engine


@contextmanager
def snapshot(engine: Engine) -> Iterator[Connection]:
    """A read-only connection that sees one consistent state, even while the indexer commits.

    PostgreSQL: a REPEATABLE READ, READ ONLY transaction (both said in its BEGIN: psycopg's read_only, not a SET
    TRANSACTION round trip of its own). SQLite: an explicit BEGIN (pysqlite would otherwise run each SELECT in
    its own implicit transaction), which in WAL mode reads one snapshot and otherwise holds the shared lock until
    the end.
    """
    if engine.dialect.name == "postgresql":
        options = {"isolation_level": "REPEATABLE READ", "postgresql_readonly": True}
        with engine.connect().execution_options(**options) as conn, conn.begin():
            yield conn
        return
    with engine.connect() as conn:
        if engine.dialect.name == "sqlite":
            conn.exec_driver_sql("BEGIN")
            try:
                yield conn
            finally:
                conn.exec_driver_sql("ROLLBACK")
        else:
            with conn.begin():
                yield conn


def derived_current(conn: Connection, settings: str | None = None) -> bool:
    """Whether the derived tables (``db.casework``: flag queue, monthly cells) reflect every payment in the
    database: refreshed up to the indexer's checkpoint and past the last payment, no group waiting to be
    recomputed, and (`settings` given) flags computed with these settings (``flags.settings_text``). False for a
    database indexed before the derived tables existed (migration 0004; these commands read, never migrate)."""
    if not inspect(conn).has_table(casework.derived_state.name):
        return False
    state = conn.execute(select(casework.derived_state.c.block_number, casework.derived_state.c.settings)).first()
    if state is None or state.block_number < 0 or (settings is not None and state.settings != settings):
        return False
    checkpoint = conn.execute(select(schema.checkpoint.c.block_number)).scalar_one_or_none()
    if checkpoint is None or int(state.block_number) < int(checkpoint):
        return False
    if conn.execute(select(casework.derived_dirty.c.period).limit(1)).first() is not None:
        return False
    last = conn.execute(select(func.max(schema.payments.c.block_number))).scalar_one_or_none()
    return last is None or int(last) <= int(state.block_number)


# --- filters ---------------------------------------------------------------------------------------------------

_PERIOD = re.compile(r"^\s*(\d{4})-?(\d{2})\s*$")


def parse_period(text: str | int) -> int:
    """``yyyymm`` from "2030-01", "203001" or 203001; raises ValueError naming the bad input."""
    match = _PERIOD.match(str(text))
    if not match or not 1 <= int(match.group(2)) <= 12:
        raise ValueError(f"{text!r} is not a month: write YYYY-MM (e.g. 2030-01)")
    return int(match.group(1)) * 100 + int(match.group(2))


format_period = display.period  # the audit side names periods as every command does


@dataclass(frozen=True)
class Filters:
    """Which payments (and other movements) a command looks at: programs, and months ``yyyymm`` inclusive, in
    each program's own time zone (a payment's ``period``)."""

    programs: tuple[int, ...] = ()
    since: int | None = None
    until: int | None = None

    def payment_clause(self, table: Any = schema.payments) -> Any:
        """A WHERE clause over a table with ``program_id`` and ``period`` columns."""
        parts = []
        if self.programs:
            parts.append(table.c.program_id.in_(self.programs))
        if self.since is not None:
            parts.append(table.c.period >= self.since)
        if self.until is not None:
            parts.append(table.c.period <= self.until)
        return and_(True, *parts)

    def time_bounds(self, utc_offset_minutes: int) -> tuple[int | None, int | None]:
        """[lo, hi) unix seconds of the month range in a time zone (None = open)."""
        return (
            None if self.since is None else month_start(self.since, utc_offset_minutes),
            None if self.until is None else month_start(next_period(self.until), utc_offset_minutes),
        )

    def as_dict(self) -> dict[str, Any]:
        return {
            "programs": list(self.programs),
            "since": None if self.since is None else format_period(self.since),
            "until": None if self.until is None else format_period(self.until),
        }


def next_period(period: int) -> int:
    year, month = divmod(period, 100)
    return (year + 1) * 100 + 1 if month == 12 else period + 1


def month_start(period: int, utc_offset_minutes: int) -> int:
    """Unix time of the first second of month ``period`` in a fixed UTC offset."""
    return int(datetime(period // 100, period % 100, 1, tzinfo=display.zone(utc_offset_minutes)).timestamp())


def timestamp_clause(table: Any, lo: int | None, hi: int | None) -> Any:
    parts = []
    if lo is not None:
        parts.append(table.c.block_timestamp >= lo)
    if hi is not None:
        parts.append(table.c.block_timestamp < hi)
    return and_(True, *parts)


def program_time_clause(table: Any, filters: Filters, offsets: dict[int, int]) -> Any:
    """Filters a table with ``program_id`` and ``block_timestamp`` by programs and months, each program's months
    in its own time zone (KST for a program the index has no configuration of)."""
    clause = and_(True)
    if filters.programs:
        clause = and_(clause, table.c.program_id.in_(filters.programs))
    if filters.since is None and filters.until is None:
        return clause
    known = sorted(set(offsets) | set(filters.programs))
    per_program = [
        and_(
            table.c.program_id == pid,
            timestamp_clause(table, *filters.time_bounds(offsets.get(pid, KST_OFFSET_MINUTES))),
        )
        for pid in known
    ]
    others = and_(
        table.c.program_id.not_in(known) if known else True,
        timestamp_clause(table, *filters.time_bounds(KST_OFFSET_MINUTES)),
    )
    return and_(clause, or_(*per_program, others))


# --- programs --------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class ProgramConfig:
    """One version of a program's rules, from its ProgramConfigured event."""

    program_id: int
    version: int
    position: Position
    name: str
    utc_offset_minutes: int
    per_payment_limit: int
    evidence_threshold: int

    @property
    def has_payment_limit(self) -> bool:
        return self.per_payment_limit < MAX_AMOUNT_40

    @property
    def has_evidence_threshold(self) -> bool:
        return 0 < self.evidence_threshold < MAX_AMOUNT_40


class ProgramConfigs:
    """Every version of every program's rules; ``at(program, position)`` is the one in force at that log."""

    def __init__(self, configs: Iterable[ProgramConfig]):
        self._by_program: dict[int, list[ProgramConfig]] = {}
        for config in sorted(configs, key=lambda c: c.position):
            self._by_program.setdefault(config.program_id, []).append(config)
        self._positions = {pid: [c.position for c in lst] for pid, lst in self._by_program.items()}

    @classmethod
    def load(cls, conn: Connection) -> ProgramConfigs:
        t = schema.program_configs
        rows = conn.execute(
            select(
                t.c.program_id,
                t.c.version,
                t.c.block_number,
                t.c.log_index,
                t.c.name,
                t.c.utc_offset_minutes,
                t.c.per_payment_limit,
                t.c.evidence_threshold,
            )
        )
        return cls(
            ProgramConfig(
                r.program_id,
                r.version,
                (r.block_number, r.log_index),
                r.name,
                r.utc_offset_minutes,
                int(r.per_payment_limit),
                int(r.evidence_threshold),
            )
            for r in rows
        )

    def at(self, program_id: int, position: Position) -> ProgramConfig | None:
        """The configuration in force at `position` (the earliest one if the program was configured later,
        which happens only in an index that started after the program's creation)."""
        configs = self._by_program.get(program_id)
        if not configs:
            return None
        i = bisect.bisect_right(self._positions[program_id], position) - 1
        return configs[max(i, 0)]

    def latest(self, program_id: int) -> ProgramConfig | None:
        configs = self._by_program.get(program_id)
        return configs[-1] if configs else None

    def name(self, program_id: int) -> str:
        latest = self.latest(program_id)
        return latest.name if latest else f"program {program_id}"

    def offset(self, program_id: int) -> int:
        latest = self.latest(program_id)
        return latest.utc_offset_minutes if latest else KST_OFFSET_MINUTES

    def offsets(self) -> dict[int, int]:
        return {pid: lst[-1].utc_offset_minutes for pid, lst in self._by_program.items()}

    def program_ids(self) -> list[int]:
        return sorted(self._by_program)


def local_datetime(timestamp: int, utc_offset_minutes: int) -> datetime:
    return datetime.fromtimestamp(timestamp, display.zone(utc_offset_minutes))


# --- participants ---------------------------------------------------------------------------------------------

UNKNOWN_DEPARTMENT = "(not enrolled)"


class Departments:
    """Each spender's department as it was at a given log (a spender may be re-enrolled with another one)."""

    def __init__(self, rows: Iterable[tuple[str, Position, str]]):
        self._changed: set[str] | None = None
        self._history: dict[str, list[tuple[Position, str]]] = {}
        for spender, position, label in sorted(rows, key=lambda r: (r[0], r[1])):
            self._history.setdefault(spender, []).append((position, label))

    @classmethod
    def load(cls, conn: Connection, reenrolled_only: bool = False) -> Departments:
        """Every enrolment, in chain order per spender: the database orders them, and each distinct department
        is labelled once (a national rollout enrols 100,000 officials in a few dozen departments: building this
        row by row through the constructor took a second, most of a one-month report).

        `reenrolled_only`: only the spenders enrolled more than once (``spenders()``; ``at`` of any other says
        "not enrolled"), for a caller that takes the one department of the others from the database
        (``reports.payer_counts``): the few whose department may have changed, not 100,000 histories."""
        t = schema.enrolments
        query = select(t.c.spender, t.c.block_number, t.c.log_index, t.c.department, t.c.department_text)
        if reenrolled_only:
            again = select(t.c.spender).group_by(t.c.spender).having(func.count() > 1)
            query = query.where(t.c.spender.in_(again))
        rows = conn.execute(query.order_by(t.c.block_number, t.c.log_index))
        labels: dict[tuple[str, str | None], str] = {}
        history: dict[str, list[tuple[Position, str]]] = {}
        for spender, block, log, department, text in rows:
            label = labels.get((department, text))
            if label is None:
                label = labels[(department, text)] = department_label(department, text)
            own = history.get(spender)
            if own is None:
                history[spender] = [((block, log), label)]
            else:
                own.append(((block, log), label))
        made = cls(())
        made._history = dict(sorted(history.items()))  # the constructor's order: by spender
        return made

    def changed(self) -> set[str]:
        """Spenders whose department changed at some point (the others have one department throughout)."""
        if self._changed is None:  # asked by each part of a report: 100,000 histories looked at once
            self._changed = {s for s, history in self._history.items() if len({label for _, label in history}) > 1}
        return set(self._changed)

    def labels(self) -> list[str]:
        """Every department any spender has had, sorted."""
        return sorted({label for history in self._history.values() for _, label in history})

    def spans(self, label: str) -> dict[str, list[tuple[Position | None, Position | None]]]:
        """Where spenders had department `label`: spender -> [from, until) position ranges, None = open (the first
        enrolment reaches back, as in `at`); a spender who only ever had `label` gets [(None, None)]."""
        out: dict[str, list[tuple[Position | None, Position | None]]] = {}
        for spender, history in self._history.items():
            ranges: list[tuple[Position | None, Position | None]] = []
            for i, (position, own) in enumerate(history):
                if own != label:
                    continue
                start = None if i == 0 else position
                end = history[i + 1][0] if i + 1 < len(history) else None
                if ranges and ranges[-1][1] == start:  # re-enrolled in the same department: one range
                    start = ranges.pop()[0]
                ranges.append((start, end))
            if ranges:
                out[spender] = ranges
        return out

    def spenders(self) -> set[str]:
        """Every spender with an enrolment."""
        return set(self._history)

    def at(self, spender: str, position: Position | None = None) -> str:
        history = self._history.get(spender)
        if not history:
            return UNKNOWN_DEPARTMENT
        if position is None:
            return history[-1][1]
        i = bisect.bisect_right(history, (position, "\uffff")) - 1
        return history[max(i, 0)][1]


def department_label(department_hex: str, department_text: str | None) -> str:
    """The department's text, or its bytes32 hex if it has no printable text."""
    text = (department_text or "").strip()
    return text if text and text.isprintable() else department_hex


def vendor_names(conn: Connection) -> dict[str, tuple[str, int]]:
    """vendor -> (name, category) from its latest registration."""
    t = schema.vendor_registrations
    rows = conn.execute(select(t.c.vendor, t.c.name, t.c.category).order_by(t.c.block_number, t.c.log_index))
    return {r.vendor: (r.name, r.category) for r in rows}


def checkpoint_info(conn: Connection) -> dict[str, Any] | None:
    """The indexer's checkpoint (block number, hash, block time), or None if there is none yet."""
    if not inspect(conn).has_table("checkpoint"):
        return None
    row = conn.execute(select(schema.checkpoint.c.block_number, schema.checkpoint.c.block_hash)).first()
    if row is None:
        return None
    stamp = conn.execute(
        select(schema.blocks.c.timestamp).where(schema.blocks.c.number == row.block_number)
    ).scalar_one_or_none()
    when = None if stamp is None else local_datetime(stamp, KST_OFFSET_MINUTES).isoformat()
    return {"block_number": row.block_number, "block_hash": row.block_hash, "block_time": when}

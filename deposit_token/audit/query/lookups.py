"""What every console page needs to label a payment: programs (rules by version), departments (by enrolment
history) and vendor names, loaded once per database and reused while those tables do not change.

The tables are small (programs, enrolments, vendor registrations: thousands of rows), but reading and sorting
them for every page of 50 payments would cost more than the page's own query. A page asks ``lookups(conn)``:
one query for the tables' row counts and highest blocks (the version) and, only when that changed, a reload.

A caller that knows more can skip even that query: inside ``version_known(token)`` (the web server passes the
indexer's checkpoint, since only the indexer's commits change these tables and each moves it), ``lookups``
checks the version once per token and database, not on every call (a console page called it three times, each a
query of six aggregates: a third of the page's database time at 1,000,000 payments).
"""

from __future__ import annotations

import threading
from collections.abc import Hashable, Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy import Connection, func, select, text

from deposit_token.audit.db import schema
from deposit_token.audit.query.common import Departments, ProgramConfigs, vendor_names


@dataclass(frozen=True)
class RuleRows:
    configs: dict[int, list[Any]]
    caps: dict[int, list[Any]]
    pauses: dict[int, list[Any]]


@dataclass(frozen=True)
class Lookups:
    programs: ProgramConfigs
    departments: Departments
    vendors: dict[str, tuple[str, int]]  # vendor -> (name, registered category), latest registration
    enrolled: dict[str, int]  # spender -> program of their latest enrolment
    # a program's rules over time, for ``payments.rules_at``: rows of program_configs, category_caps and
    # program_pauses per program, in chain order (a handful per program; read with the other tables above)
    rules: RuleRows = field(default_factory=lambda: RuleRows({}, {}, {}))

    def members(self, program_id: int) -> list[str]:
        """Spenders whose latest enrolment is in `program_id`, sorted."""
        return sorted(spender for spender, program in self.enrolled.items() if program == program_id)

    def vendor_name(self, vendor: str) -> str:
        return self.vendors.get(vendor, ("(unregistered)", 0))[0]

    def vendor_category(self, vendor: str) -> int | None:
        found = self.vendors.get(vendor)
        return None if found is None else found[1]


_VERSIONED = (
    schema.program_configs,
    schema.enrolments,
    schema.vendor_registrations,
    schema.category_caps,
    schema.program_pauses,
)
# database -> (version, its lookups, the version_known token last seen with that version, if any)
_cache: dict[str, tuple[tuple[int, ...], Lookups, Hashable | None]] = {}
_lock = threading.Lock()
_known: ContextVar[Hashable | None] = ContextVar("lookups_version_known", default=None)


@contextmanager
def version_known(token: Hashable) -> Iterator[None]:
    """Within this block, the lookups' tables are the same whenever `token` is (the caller vouches for it):
    ``lookups`` checks their version once per token instead of on every call."""
    reset = _known.set(token)
    try:
        yield
    finally:
        _known.reset(reset)


def _version(conn: Connection) -> tuple[int, ...]:
    columns = []
    for table in _VERSIONED:
        columns.append(select(func.count()).select_from(table).scalar_subquery())
        columns.append(select(func.coalesce(func.max(table.c.block_number), -1)).scalar_subquery())
    return tuple(int(v) for v in conn.execute(select(*columns)).one())


def load_lookups(conn: Connection) -> Lookups:
    """Reads the three tables now (no cache)."""
    e = schema.enrolments
    enrolled = {
        r.spender: r.program_id
        for r in conn.execute(select(e.c.spender, e.c.program_id).order_by(e.c.block_number, e.c.log_index))
    }
    return Lookups(ProgramConfigs.load(conn), Departments.load(conn), vendor_names(conn), enrolled, _rule_rows(conn))


def _rule_rows(conn: Connection) -> RuleRows:
    def by_program(table: Any) -> dict[int, list[Any]]:
        out: dict[int, list[Any]] = {}
        for r in conn.execute(select(table).order_by(table.c.block_number, table.c.log_index)):
            out.setdefault(int(r.program_id), []).append(r)
        return out

    return RuleRows(
        by_program(schema.program_configs), by_program(schema.category_caps), by_program(schema.program_pauses)
    )


def lookups(conn: Connection) -> Lookups:
    """The lookups of `conn`'s database as of its snapshot, from the cache when the tables did not change."""
    key = conn.engine.url.render_as_string(hide_password=False)
    token = _known.get()
    cached = _cache.get(key)
    if token is not None and cached is not None and cached[2] == token:
        return cached[1]
    version = _version(conn)
    if cached is not None and cached[0] == version:
        if token is not None:
            with _lock:
                if _cache.get(key) is cached:
                    _cache[key] = (version, cached[1], token)
        return cached[1]
    loaded = load_lookups(conn)
    with _lock:
        _cache[key] = (version, loaded, token)
    return loaded


# --- which monthly partition holds a block's payments -----------------------------------------------------------
# On PostgreSQL ``payments`` is partitioned by ``period`` (db/partitions.py): a look-up by (block, log index)
# alone probes every month's index. Payments are written in chain order, so each period spans a range of blocks
# (months of programs in different time zones overlap a little at their edges): the periods whose range holds a
# block are the only partitions to read. The ranges change only when the indexer commits (new payments), so within
# ``version_known(token)`` they are read once per token (the checkpoint); outside, on every call.

_RANGES = text(
    """
    WITH RECURSIVE ps(period) AS (
        SELECT min(period) FROM payments
        UNION ALL
        SELECT (SELECT min(p.period) FROM payments p WHERE p.period > ps.period) FROM ps WHERE ps.period IS NOT NULL
    )
    SELECT period,
           (SELECT min(p.block_number) FROM payments p WHERE p.period = ps.period) AS low,
           (SELECT max(p.block_number) FROM payments p WHERE p.period = ps.period) AS high
    FROM ps WHERE period IS NOT NULL
    """
)
_ranges: dict[str, tuple[Hashable, tuple[tuple[int, int, int], ...]]] = {}


def period_ranges(conn: Connection) -> tuple[tuple[int, int, int], ...] | None:
    """(period, lowest block, highest block) of every period with payments, or None where the table is not
    partitioned (SQLite: a primary-key look-up is one probe already)."""
    if conn.dialect.name != "postgresql":
        return None
    key = conn.engine.url.render_as_string(hide_password=False)
    token = _known.get()
    cached = _ranges.get(key)
    if token is not None and cached is not None and cached[0] == token:
        return cached[1]
    found = tuple((int(r.period), int(r.low), int(r.high)) for r in conn.execute(_RANGES))
    if token is not None:
        with _lock:
            _ranges[key] = (token, found)
    return found


def periods_of_block(conn: Connection, block_number: int) -> tuple[int, ...] | None:
    """The periods whose payments may include `block_number`'s (empty: none does), or None when every period
    must be read (SQLite)."""
    ranges = period_ranges(conn)
    if ranges is None:
        return None
    return tuple(period for period, low, high in ranges if low <= block_number <= high)

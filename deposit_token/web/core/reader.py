"""The web layer's reads of the audit database: the audit library's own queries (``deposit_token.audit.query``:
reports, public aggregates), each run in one consistent snapshot, their results kept per indexer checkpoint.

Between two commits of the indexer the index does not change, so a report or a public table computed at
checkpoint N is the answer to every request until the checkpoint moves: a request costs one primary-key read
of the checkpoint, and the full query runs once per new block with events, not once per visitor.

A snapshot reads the checkpoint once, when it opens (one query, not the audit library's ``checkpoint_info``,
which first asks the catalogue whether the table exists), and tells the library's lookups that their tables are
those of that checkpoint (``lookups.version_known``: only the indexer's commits change them, and each moves the
checkpoint), so that a page does not check their version again with every query it calls.
"""

from __future__ import annotations

import asyncio
import threading
import time
from collections import OrderedDict
from collections.abc import Callable, Hashable, Iterator
from contextlib import contextmanager, nullcontext
from contextvars import ContextVar
from dataclasses import dataclass, field
from typing import Any, TypeVar

from sqlalchemy import Connection, Engine, func, select
from starlette.concurrency import run_in_threadpool

from deposit_token.audit.db import casework, schema
from deposit_token.audit.query import overview as overview_q
from deposit_token.audit.query.cases import FlagCount, flag_counts
from deposit_token.audit.query.common import Filters, snapshot
from deposit_token.audit.query.lookups import version_known
from deposit_token.audit.query.participants import FilterChoices, filter_choices
from deposit_token.audit.query.payments import PaymentFilter
from deposit_token.audit.query.public import MIN_CELL_COUNT, PublicCell
from deposit_token.audit.query.reports import Report, build_report

T = TypeVar("T")
RECENT = 0.25  # seconds: how old recent_checkpoint's answer may be


@dataclass(frozen=True)
class Checkpoint:
    """The indexer's position: everything up to this block is in the database."""

    block_number: int
    block_hash: str
    block_time: int | None  # unix seconds
    # the newest disposition's id, read with it (one round trip, not one more per flag queue): the flag counts'
    # key, recorded by any worker or command; not part of the checkpoint's identity (equality, hash)
    newest_disposition: int | None = field(default=None, compare=False)


_POINT = select(
    schema.checkpoint.c.block_number,
    schema.checkpoint.c.block_hash,
    schema.blocks.c.timestamp,
    select(func.max(casework.dispositions.c.id)).scalar_subquery(),
).select_from(schema.checkpoint.outerjoin(schema.blocks, schema.blocks.c.number == schema.checkpoint.c.block_number))


def read_checkpoint(conn: Connection) -> Checkpoint | None:
    row = conn.execute(_POINT).first()
    if row is None:
        return None
    return Checkpoint(int(row[0]), str(row[1]), None if row[2] is None else int(row[2]), row[3])


_MISSING = object()  # not kept (a kept value may itself be None)


def _entry(name: str, point: Checkpoint | None, key: Hashable) -> Hashable:
    """The cache's key: a value is kept per name, checkpoint (block and hash) and key."""
    return (name, None if point is None else (point.block_number, point.block_hash), key)


# the snapshot open in this thread and its checkpoint
_current: ContextVar[tuple[Connection, Checkpoint | None] | None] = ContextVar("web_snapshot", default=None)


class AuditReader:
    """Cached reads of one audit database (thread-safe: routes run in worker threads)."""

    # entries of older checkpoints age out; 256 holds every month range of the portal's API (66) and the pages
    def __init__(self, engine: Engine, cache_size: int = 256):
        self.engine = engine
        self._cache: OrderedDict[Hashable, Any] = OrderedDict()
        self._size = cache_size
        self._lock = threading.Lock()
        self._recent: Checkpoint | None = None
        self._recent_at = float("-inf")
        self._recent_lock = asyncio.Lock()
        self._flights: dict[tuple[str, Hashable], asyncio.Lock] = {}

    @contextmanager
    def snapshot(self) -> Iterator[Connection]:
        """A read-only connection seeing one consistent state (``audit.query.common.snapshot``)."""
        with snapshot(self.engine) as conn:
            point = read_checkpoint(conn)
            opened = _current.set((conn, point))
            try:
                with nullcontext() if point is None else version_known((point.block_number, point.block_hash)):
                    yield conn
            finally:
                _current.reset(opened)

    @staticmethod
    def point(conn: Connection) -> Checkpoint | None:
        """The checkpoint `conn`'s snapshot sees (read when it opened)."""
        found = _current.get()
        return found[1] if found is not None and found[0] is conn else read_checkpoint(conn)

    def cached(self, conn: Connection, name: str, key: Hashable, compute: Callable[[Connection], T]) -> T:
        """`compute(conn)` at this snapshot's checkpoint, computed once per checkpoint and `key`."""
        full = _entry(name, self.point(conn), key)
        found = self._lookup(full)
        if found is not _MISSING:
            return found  # type: ignore[no-any-return]
        value = compute(conn)
        self._store(full, value)
        return value

    def peek(self, name: str, point: Checkpoint | None, key: Hashable) -> Any | None:
        """What ``cached`` keeps for `name` and `key` at checkpoint `point`, if it was computed; else None."""
        found = self._lookup(_entry(name, point, key))
        return None if found is _MISSING else found

    def keep(self, name: str, point: Checkpoint | None, key: Hashable, value: Any) -> None:
        """Keeps `value` as ``cached``'s for `name` and `key` at checkpoint `point`."""
        self._store(_entry(name, point, key), value)

    def _lookup(self, full: Hashable) -> Any:
        with self._lock:
            if full not in self._cache:
                return _MISSING
            self._cache.move_to_end(full)
            return self._cache[full]

    def _store(self, full: Hashable, value: Any) -> None:
        with self._lock:
            self._cache[full] = value
            self._cache.move_to_end(full)
            while len(self._cache) > self._size:
                self._cache.popitem(last=False)

    def checkpoint(self) -> Checkpoint | None:
        with self.snapshot() as conn:
            return self.point(conn)

    async def recent_checkpoint(self) -> Checkpoint | None:
        """The checkpoint as read at most RECENT seconds ago: one read shared by every request of this process
        (the public API answers from its cache at that checkpoint without a database connection or a thread of
        its own; an answer is then at most RECENT seconds older than the index, under a Cache-Control of 60)."""
        async with self._recent_lock:
            if time.monotonic() - self._recent_at >= RECENT:
                self._recent = await run_in_threadpool(self.checkpoint)
                self._recent_at = time.monotonic()
            return self._recent

    async def shared(self, name: str, key: Hashable, compute: Callable[[Connection], T]) -> T:
        """``cached``'s value for `name` and `key` at the recent checkpoint, from the event loop: kept, it costs a
        dictionary lookup (no thread, no connection); else it is computed in a worker thread by one request while
        the others of this process wait for it. (Each computing it for itself, the twenty requests that arrive as
        the checkpoint moves each ran the query and the encoding: the public API's p95 was 9 times its p50.)"""
        point = await self.recent_checkpoint()
        found = self.peek(name, point, key)
        if found is not None:
            return found  # type: ignore[no-any-return]
        flight = self._flights.setdefault((name, key), asyncio.Lock())
        async with flight:
            point = await self.recent_checkpoint()
            found = self.peek(name, point, key)
            if found is not None:
                return found  # type: ignore[no-any-return]
            seen, value = await run_in_threadpool(self._compute, name, key, compute)
            if seen != point:
                # the snapshot read a newer checkpoint than the recent one: it is the recent one now, so that the
                # next requests find the value just kept under it
                self._recent, self._recent_at = seen, time.monotonic()
            return value

    def _compute(self, name: str, key: Hashable, compute: Callable[[Connection], T]) -> tuple[Checkpoint | None, T]:
        with self.snapshot() as conn:
            return self.point(conn), self.cached(conn, name, key, compute)

    def flag_counts(self, conn: Connection, payments: PaymentFilter) -> list[FlagCount]:
        """Flags and open flags per rule (``audit.query.cases.flag_counts``). Over every payment (the queue's
        first page) they change when the checkpoint moves or a disposition is recorded, so they are kept per
        checkpoint and newest disposition (read with the snapshot's checkpoint); a filtered count is computed
        each time."""
        if not payments.is_empty():
            return flag_counts(conn, payments)
        point = self.point(conn)
        if point is None:
            newest = conn.execute(select(func.max(casework.dispositions.c.id))).scalar_one_or_none()
        else:
            newest = point.newest_disposition
        return self.cached(conn, "flag_counts", newest, lambda c: flag_counts(c, None))

    def choices(self, conn: Connection) -> FilterChoices:
        """The filter forms' choices (``audit.query.participants.filter_choices``: programs, departments, 500
        vendors sorted, months): the same until the checkpoint moves, and a third of a payments page's time."""
        return self.cached(conn, "choices", None, filter_choices)

    def public_cells(self, filters: Filters = Filters(), min_count: int = MIN_CELL_COUNT) -> list[PublicCell]:
        """``audit public``'s cells (k-suppressed), summed from the derived monthly cells
        (``audit.query.overview.public_cells``): from every payment they took seconds at a million payments, once
        per new block, and the visitors of that moment waited for it."""
        with self.snapshot() as conn:
            return self.cached(
                conn, "public", (filters, min_count), lambda c: overview_q.public_cells(c, filters, min_count)
            )

    def overview(
        self, filters: Filters = Filters(), top: int = 10, conn: Connection | None = None
    ) -> overview_q.Overview:
        """The console's overview (spend per dimension, flows, top vendors) from the derived cells
        (``audit.query.overview``); ``report`` computes the same from every payment. In `conn`'s snapshot if
        given, else in one of its own."""
        if conn is not None:
            return self.cached(conn, "overview", (filters, top), lambda c: overview_q.overview(c, filters, top))
        with self.snapshot() as own:
            return self.overview(filters, top, own)

    def report(self, filters: Filters = Filters(), top: int | None = 10) -> Report:
        """``audit report``'s report (``audit.query.reports.build_report``)."""
        with self.snapshot() as conn:
            return self.cached(conn, "report", (filters, top), lambda c: build_report(c, filters, top=top))

"""New payments as they are indexed, for the console's server-sent events (``/console/live/payments``).

One poller per server, shared by every open event stream: it reads the newest payment's position (one
primary-key lookup, ``ORDER BY block_number DESC, log_index DESC LIMIT 1``) at most every ``live_poll`` seconds
whoever asks; a stream that is behind reads the payments after its own position (a keyset range on the primary
key) and sends them. The event id is the payment's position ``block-log``, so a browser that reconnects
(``Last-Event-ID``) gets exactly what it missed.
"""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Any

from sqlalchemy import Connection, Engine, and_, or_, select
from starlette.concurrency import run_in_threadpool

from deposit_token.audit.db import schema
from deposit_token.audit.query.lookups import lookups
from deposit_token.web.core.i18n import Translator

Position = tuple[int, int]
KEEP_ALIVE = 15.0  # seconds: a comment line keeps proxies from closing an idle stream
BATCH = 50


def latest_position(conn: Connection) -> Position | None:
    p = schema.payments
    row = conn.execute(
        select(p.c.block_number, p.c.log_index).order_by(p.c.block_number.desc(), p.c.log_index.desc()).limit(1)
    ).first()
    return None if row is None else (int(row[0]), int(row[1]))


def payments_after(conn: Connection, position: Position, limit: int = BATCH) -> list[Any]:
    """Up to `limit` payments after `position`, in chain order."""
    p = schema.payments
    block, log = position
    return list(
        conn.execute(
            select(p)
            .where(or_(p.c.block_number > block, and_(p.c.block_number == block, p.c.log_index > log)))
            .order_by(p.c.block_number, p.c.log_index)
            .limit(limit)
        )
    )


def latest_payments(conn: Connection, limit: int = 20) -> list[Any]:
    """The `limit` newest payments, newest first."""
    p = schema.payments
    return list(conn.execute(select(p).order_by(p.c.block_number.desc(), p.c.log_index.desc()).limit(limit)))


def parse_position(text: str | None) -> Position | None:
    """``"123-4"`` (an event id) as (123, 4), else None."""
    if not text:
        return None
    block, _, log = text.partition("-")
    if block.isdigit() and log.isdigit() and len(text) < 40:
        return int(block), int(log)
    return None


@dataclass(frozen=True)
class LivePayment:
    """What the console shows of a new payment (labels in the viewer's language)."""

    id: str
    block: int
    time: str
    department: str
    program: str
    vendor: str
    category: str
    amount: str
    amount_krw: int
    tx_hash: str


class LiveFeed:
    def __init__(self, engine: Engine, poll: float):
        self.engine = engine
        self.poll = poll
        self._head: Position | None = None
        self._read_at = 0.0
        self._lock = asyncio.Lock()

    def _latest(self) -> Position | None:
        with self.engine.connect() as conn:
            return latest_position(conn)

    async def head(self) -> Position | None:
        """The newest payment's position, read at most once per poll interval for all streams."""
        async with self._lock:
            if time.monotonic() - self._read_at >= self.poll:
                self._head = await run_in_threadpool(self._latest)
                self._read_at = time.monotonic()
            return self._head

    def describe(self, position: Position, t: Translator) -> list[LivePayment]:
        """The payments after `position`, labelled."""
        with self.engine.connect() as conn:
            return label(conn, payments_after(conn, position), t)

    async def stream(
        self, t: Translator, since: Position | None, disconnected: Any, stopping: Any
    ) -> AsyncIterator[str]:
        """Server-sent events: ``event: payment`` with the payment as JSON, from after `since` (default: now)."""
        last = since if since is not None else (await self.head() or (-1, -1))
        yield f"retry: 2000\n: since {last[0]}-{last[1]}\n\n"
        quiet = 0.0
        while not stopping.is_set() and not await disconnected():
            head = await self.head()
            if head is not None and head > last:
                for payment in await run_in_threadpool(self.describe, last, t):
                    last = (payment.block, int(payment.id.split("-")[1]))
                    data = json.dumps(payment.__dict__, ensure_ascii=False)
                    yield f"id: {payment.id}\nevent: payment\ndata: {data}\n\n"
                quiet = 0.0
                continue
            await asyncio.sleep(self.poll)
            quiet += self.poll
            if quiet >= KEEP_ALIVE:
                quiet = 0.0
                yield ": keep-alive\n\n"


def label(conn: Connection, rows: list[Any], t: Translator) -> list[LivePayment]:
    """Payment rows as the console shows them: department at the time, program and vendor names, KST."""
    if not rows:
        return []
    found = lookups(conn)  # cached while programs, enrolments and vendors do not change: a page and an event each
    departments, programs, vendors = found.departments, found.programs, found.vendors
    out = []
    for r in rows:
        position = (r.block_number, r.log_index)
        config = programs.at(r.program_id, position)
        out.append(
            LivePayment(
                id=f"{r.block_number}-{r.log_index}",
                block=r.block_number,
                time=t.moment(r.block_timestamp, config.utc_offset_minutes if config else None),
                department=departments.at(r.payer, position),
                program=programs.name(r.program_id),
                vendor=vendors.get(r.vendor, (r.vendor, 0))[0],
                category=t.category(int(r.category)),
                amount=t.amount(int(r.amount)),
                amount_krw=int(r.amount),
                tx_hash=r.tx_hash,
            )
        )
    return out

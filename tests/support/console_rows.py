"""Audit databases for the console's library tests (payments pages, derived flags and cells, cases): the
``audit_rows.Ledger`` with what those need on top - category caps with a program's configuration, cap
overrides, redemptions with their reference text, program pauses, a movable checkpoint - and databases built by
the Alembic migrations (the path ``store.open_database`` takes) as well as by ``create_all``."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime

from sqlalchemy import Engine, delete, insert

from deposit_token.audit.db import pgserver, schema, store
from deposit_token.domain.categories import Category
from deposit_token.domain.rules import KST_OFFSET_MINUTES, NO_CAP, pack_hours
from support.audit_rows import Ledger, address, hex32

ALL_DAY = pack_hours([(0, 24)] * 7)


class Book(Ledger):
    """A Ledger whose programs carry caps and hours, with redemptions, overrides, pauses and a checkpoint."""

    def configure(
        self,
        program_id: int,
        name: str,
        *,
        version: int = 1,
        limit: int = 1_000_000,
        threshold: int = 500_000,
        caps: dict[int, int] | None = None,
        hours: int = ALL_DAY,
        offset: int = KST_OFFSET_MINUTES,
        at=None,
    ) -> dict:
        """CategoryCapSet per category, then ProgramConfigured (the contract's order, in one block here)."""
        caps = caps if caps is not None else {int(Category.RESTAURANT): 2_000_000, int(Category.CAFE_BAKERY): NO_CAP}
        mask = 0
        for category, cap in caps.items():
            mask |= 1 << category
            self._event(schema.category_caps, at, program_id=program_id, category=category, cap=cap)
            at = None
        return self.program(
            program_id,
            name,
            version=version,
            limit=limit,
            threshold=threshold,
            offset=offset,
            categories=mask,
            hours=hours,
            at=at,
        )

    def override(self, spender: str, category: int, cap: int, active: bool = True, at=None) -> dict:
        return self._event(schema.cap_overrides, at, spender=spender, category=category, cap=cap, active=active)

    def pause(self, program_id: int, paused: bool = True, at=None) -> dict:
        return self._event(schema.program_pauses, at, program_id=program_id, paused=paused, officer=address("officer"))

    def redeem_as(self, vendor: str, amount: int, reference: str, at=None) -> dict:
        return self._event(
            schema.redemptions,
            at,
            vendor=vendor,
            settlement_ref=hex32(reference[:32]),
            amount=amount,
            settlement_reference=reference,
        )

    def suspend(self, vendor: str, suspended: bool = True, reason: str = "inspection", at=None) -> dict:
        return self._event(
            schema.vendor_suspensions,
            at,
            vendor=vendor,
            suspended=suspended,
            officer=address("officer"),
            reason=reason,
        )

    def move_checkpoint(self, block: int | None = None) -> None:
        """The indexer's checkpoint at `block` (default: the last event's block), with its block row."""
        number = self.block if block is None else block
        with self.engine.begin() as conn:
            conn.execute(delete(schema.checkpoint))
            conn.execute(delete(schema.blocks).where(schema.blocks.c.number == number))
            conn.execute(
                insert(schema.blocks),
                [{"number": number, "hash": hex32(number), "parent_hash": hex32(number - 1), "timestamp": self.now}],
            )
            conn.execute(
                insert(schema.checkpoint),
                [{"id": 1, "block_number": number, "block_hash": hex32(number), "updated_at": datetime.now(UTC)}],
            )


@contextmanager
def migrated_engine(backend: str, folder, pg_url: str | None) -> Iterator[Engine]:
    """A database built by the migrations (``store.open_database``): a SQLite file in `folder`, or a PostgreSQL
    database of its own on `pg_url`'s server, dropped at the end."""
    if backend == "sqlite":
        engine = store.open_database(f"sqlite:///{folder / f'migrated-{uuid.uuid4().hex[:8]}.sqlite'}")
        try:
            yield engine
        finally:
            engine.dispose()
        return
    assert pg_url is not None
    name = f"audit_test_{uuid.uuid4().hex[:12]}"
    engine = store.open_database(pgserver.create_database(pg_url, name))
    try:
        yield engine
    finally:
        engine.dispose()
        pgserver.drop_database(pg_url, name)

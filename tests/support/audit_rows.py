"""Builds audit databases for the report / flags / export / public tests: real SQLite files and real PostgreSQL
schemas, filled with rows shaped exactly like the indexer's (positions, tx hashes, checksummed addresses,
0x-hex bytes32, KST periods computed as the contract computes them)."""

from __future__ import annotations

import hashlib
import importlib
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime, timedelta, timezone
from pathlib import Path
from typing import Any

from eth_utils import to_checksum_address
from sqlalchemy import Engine, create_engine, insert, text

from deposit_token.audit.db import schema
from deposit_token.domain.categories import Category
from deposit_token.domain.rules import KST_OFFSET_MINUTES, MAX_AMOUNT_40, local_time

KST = timezone(timedelta(hours=9))
ZERO32 = "0x" + "00" * 32


def address(label: str) -> str:
    return to_checksum_address("0x" + hashlib.sha256(label.encode()).hexdigest()[:40])


def hex32(value: int | str) -> str:
    if isinstance(value, int):
        return "0x" + value.to_bytes(32, "big").hex()
    return "0x" + value.encode().ljust(32, b"\0").hex()


def kst(*args: int) -> datetime:
    return datetime(*args, tzinfo=KST)


LEDGER_START = kst(2030, 1, 1, 9)


class Ledger:
    """Appends events in chain order: each call is one log in a new block (or in the block of `same_block`)."""

    def __init__(self, engine: Engine, start: datetime = LEDGER_START):
        self.engine = engine
        self.block = 100
        self.log = 0
        self.now = int(start.timestamp())

    def _event(self, table, at: datetime | int | None, **values) -> dict:
        self.block += 1
        if at is not None:
            self.now = at if isinstance(at, int) else int(at.timestamp())
        else:
            self.now += 60
        row = {
            "block_number": self.block,
            "log_index": self.log,
            "tx_hash": "0x" + hashlib.sha256(f"{self.block}/{self.log}".encode()).hexdigest(),
            "block_timestamp": self.now,
            **values,
        }
        with self.engine.begin() as conn:
            conn.execute(insert(table), [row])
        return row

    def program(
        self,
        program_id: int,
        name: str,
        *,
        version: int = 1,
        limit: int = 1_000_000,
        threshold: int = 500_000,
        offset: int = KST_OFFSET_MINUTES,
        categories: int = 0b1111110,
        hours: int = 0,
        at=None,
    ) -> dict:
        return self._event(
            schema.program_configs,
            at,
            program_id=program_id,
            version=version,
            name=name,
            treasury=address(f"treasury{program_id}"),
            start=int(kst(2030, 1, 1).timestamp()),
            end_time=int(kst(2031, 1, 1).timestamp()),
            utc_offset_minutes=offset,
            categories=categories,
            opening_hours=hours,
            per_payment_limit=limit,
            evidence_threshold=threshold,
        )

    def vendor(self, label: str, category: Category = Category.RESTAURANT, name: str | None = None, at=None) -> str:
        who = address(label)
        self._event(schema.vendor_registrations, at, vendor=who, category=int(category), name=name or label)
        return who

    def enrol(self, label: str, program_id: int, department: str, at=None) -> str:
        who = address(label)
        self._event(
            schema.enrolments,
            at,
            spender=who,
            program_id=program_id,
            department=hex32(department),
            department_text=department,
        )
        return who

    def allocate(self, spender: str, program_id: int, amount: int, at=None) -> dict:
        return self._event(
            schema.allocations, at, batch_ref=hex32(1), program_id=program_id, spender=spender, amount=amount
        )

    def pay(
        self,
        payer: str,
        vendor: str,
        amount: int,
        at: datetime | int | None = None,
        *,
        program_id: int = 1,
        category: Category = Category.RESTAURANT,
        evidence: bool = False,
        offset: int = KST_OFFSET_MINUTES,
        receipt: int = 0,
    ) -> dict:
        when = at if at is not None else self.now + 60
        stamp = when if isinstance(when, int) else int(when.timestamp())
        period, _, _ = local_time(stamp, offset)
        return self._event(
            schema.payments,
            stamp,
            payer=payer,
            vendor=vendor,
            program_id=program_id,
            category=int(category),
            period=period,
            amount=amount,
            receipt_id=hex32(receipt),
            evidence_hash=hex32("evidence") if evidence else ZERO32,
            cap_left=MAX_AMOUNT_40,
        )

    def give_back(self, spender: str, program_id: int, amount: int, at=None) -> dict:
        return self._event(
            schema.returns,
            at,
            spender=spender,
            program_id=program_id,
            treasury=address(f"treasury{program_id}"),
            amount=amount,
        )

    def redeem(self, vendor: str, amount: int, at=None) -> dict:
        return self._event(schema.redemptions, at, vendor=vendor, settlement_ref=hex32(self.block), amount=amount)

    def claw_back(self, spender: str, program_id: int, amount: int, at=None) -> dict:
        return self._event(
            schema.clawbacks,
            at,
            spender=spender,
            program_id=program_id,
            officer=address("officer"),
            amount=amount,
            reason="misuse",
        )

    def sweep(self, spender: str, program_id: int, amount: int, at=None) -> dict:
        return self._event(
            schema.sweeps, at, spender=spender, program_id=program_id, caller=address("anyone"), amount=amount
        )

    def approve(self, owner: str, spender: str, amount: int, at=None) -> dict:
        return self._event(schema.approvals, at, owner=owner, spender=spender, amount=amount)

    def checkpoint(self) -> None:
        with self.engine.begin() as conn:
            conn.execute(
                insert(schema.blocks),
                [
                    {
                        "number": self.block,
                        "hash": hex32(self.block),
                        "parent_hash": hex32(self.block - 1),
                        "timestamp": self.now,
                    }
                ],
            )
            conn.execute(
                insert(schema.checkpoint),
                [
                    {
                        "id": 1,
                        "block_number": self.block,
                        "block_hash": hex32(self.block),
                        "updated_at": datetime.now(UTC),
                    }
                ],
            )


@contextmanager
def sqlite_engine(path) -> Iterator[Engine]:
    engine = create_engine(f"sqlite:///{path}")
    schema.metadata.create_all(engine)
    try:
        yield engine
    finally:
        engine.dispose()


@contextmanager
def postgres_engine(pg_url: str) -> Iterator[tuple[Engine, str]]:
    """An engine whose every connection works in a fresh schema of `pg_url`'s database (dropped afterwards);
    yields (engine, url). `pg_url` comes from the `pg_url` fixture, which made sure the server answers."""
    name = f"audit_test_{uuid.uuid4().hex[:12]}"
    admin = create_engine(pg_url)
    with admin.begin() as conn:
        conn.execute(text(f'CREATE SCHEMA "{name}"'))
    url = f"{pg_url}{'&' if '?' in pg_url else '?'}options=-csearch_path%3D{name}"
    engine = create_engine(url)
    try:
        schema.metadata.create_all(engine)
        yield engine, url
    finally:
        engine.dispose()
        with admin.begin() as conn:
            conn.execute(text(f'DROP SCHEMA "{name}" CASCADE'))
        admin.dispose()


BACKENDS = ("sqlite", "postgresql")


@contextmanager
def backend_engine(request: Any, tmp_path: Path) -> Iterator[Engine]:
    """An empty audit database of the backend a fixture is parametrised with (``params=BACKENDS``): a SQLite file
    in `tmp_path`, or a fresh schema of the `pg_url` fixture's server (asked for only then)."""
    if request.param == "sqlite":
        with sqlite_engine(tmp_path / "audit.sqlite") as engine:
            yield engine
        return
    with postgres_engine(request.getfixturevalue("pg_url")) as (engine, _url):
        yield engine


def load_cli():
    """The `ape run audit` click group, loaded from scripts/audit.py as `ape run` loads it."""
    module = importlib.import_module("deposit_token.cli.audit")
    return module.cli

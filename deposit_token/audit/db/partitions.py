"""Monthly partitions of the big event tables on PostgreSQL (migration 0006), created as rows arrive.

``payments`` is partitioned by ``period`` (``yyyymm`` in the program's time zone): every report, flag and console
question names months by it (``Filters.payment_clause``, ``PaymentFilter``), so a one-month question reads one
partition. ``transfers`` and ``allocations`` carry no period: they are partitioned by ``block_timestamp``, one
partition per UTC month (a month in KST then touches two partitions: ``program_time_clause`` bounds the time).
Each table also has a DEFAULT partition, the safety net for a row whose month has no partition yet (a writer
that inserts without :func:`ensure`); :func:`ensure` moves such rows into the month's partition when it
creates it.

SQLite keeps plain tables; every function here is a no-op there, and on a PostgreSQL table that is not
partitioned (a database built with ``metadata.create_all``, as some tests do).
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import Connection, text


@dataclass(frozen=True)
class Partitioning:
    key: str  # the partition key column
    by_period: bool  # the key is a yyyymm period (else unix seconds, months in UTC)


PARTITIONED: dict[str, Partitioning] = {
    "payments": Partitioning("period", True),
    "transfers": Partitioning("block_timestamp", False),
    "allocations": Partitioning("block_timestamp", False),
}

# one writer creates a month's partition at a time (two indexers on one database are refused anyway, but a
# migration and the bench may meet the indexer); the number is arbitrary, only this module takes it
_LOCK_KEY = 0x6175646974_706172  # "audit" "par"


def utc_month(timestamp: int) -> int:
    """``yyyymm`` of a unix time in UTC."""
    moment = datetime.fromtimestamp(timestamp, UTC)
    return moment.year * 100 + moment.month


def next_month(month: int) -> int:
    year, m = divmod(month, 100)
    return (year + 1) * 100 + 1 if m == 12 else month + 1


def months_between(first: int, last: int) -> list[int]:
    """Every ``yyyymm`` from `first` to `last` inclusive."""
    out = []
    month = first
    while month <= last:
        out.append(month)
        month = next_month(month)
    return out


def bounds(table: str, month: int) -> tuple[int, int]:
    """[from, to) of `month`'s partition of `table`, in the key's unit."""
    if PARTITIONED[table].by_period:
        return month, next_month(month)
    start = int(datetime(month // 100, month % 100, 1, tzinfo=UTC).timestamp())
    end_month = next_month(month)
    return start, int(datetime(end_month // 100, end_month % 100, 1, tzinfo=UTC).timestamp())


def partition_name(table: str, month: int) -> str:
    return f"{table}_p{month}"


def default_name(table: str) -> str:
    return f"{table}_default"


def month_of(table: str, key: int) -> int:
    """The month whose partition holds a row with partition key `key`."""
    return int(key) if PARTITIONED[table].by_period else utc_month(int(key))


def existing(conn: Connection, table: str) -> set[int] | None:
    """The months with a partition of `table` (in the search path), or None when `table` is not partitioned."""
    rows = conn.execute(
        text(
            "SELECT c.relname FROM pg_partitioned_table pt "
            "LEFT JOIN pg_inherits i ON i.inhparent = pt.partrelid "
            "LEFT JOIN pg_class c ON c.oid = i.inhrelid "
            "WHERE pt.partrelid = to_regclass(:t)"
        ),
        {"t": table},
    ).all()
    if not rows:
        return None
    prefix = f"{table}_p"
    return {int(name[len(prefix) :]) for (name,) in rows if name and name.startswith(prefix)}


def create_month(conn: Connection, table: str, month: int) -> None:
    """Creates `month`'s partition of `table`, moving rows of that month out of the DEFAULT partition first
    (ATTACH checks that the default holds none). ATTACH takes a lighter lock on the table than ``CREATE TABLE
    ... PARTITION OF`` (readers go on; only the default partition is locked exclusively for the moment)."""
    quote = conn.dialect.identifier_preparer.quote
    key = PARTITIONED[table].key
    lo, hi = bounds(table, month)
    name, parent, default = quote(partition_name(table, month)), quote(table), quote(default_name(table))
    conn.exec_driver_sql(f"CREATE TABLE {name} (LIKE {parent} INCLUDING DEFAULTS)")
    conn.exec_driver_sql(
        f"WITH moved AS (DELETE FROM {default} WHERE {quote(key)} >= {lo} AND {quote(key)} < {hi} RETURNING *) "
        f"INSERT INTO {name} SELECT * FROM moved"
    )
    conn.exec_driver_sql(f"ALTER TABLE {parent} ATTACH PARTITION {name} FOR VALUES FROM ({lo}) TO ({hi})")


def ensure(conn: Connection, table: str, months: Iterable[int]) -> list[int]:
    """Makes sure `table` has a partition for each of `months` and for the month after the last of them (so that
    the next month's first rows find theirs), in the connection's transaction. Returns the months created.
    A no-op on SQLite, for tables not partitioned, and when every partition exists (one catalog query)."""
    if conn.dialect.name != "postgresql" or table not in PARTITIONED:
        return []
    wanted = set(months)
    if not wanted:
        return []
    wanted.add(next_month(max(wanted)))
    have = existing(conn, table)
    if have is None or wanted <= have:
        return []
    conn.execute(text("SELECT pg_advisory_xact_lock(:k)"), {"k": _LOCK_KEY})
    have = existing(conn, table) or set()
    created = sorted(wanted - have)
    for month in created:
        create_month(conn, table, month)
    return created


def ensure_for_rows(conn: Connection, table: str, columns: Sequence[str], rows: Sequence[Sequence[Any]]) -> None:
    """:func:`ensure` for the months of rows about to be inserted into `table` (``store.insert_rows``' shape)."""
    if conn.dialect.name != "postgresql" or table not in PARTITIONED or not rows:
        return
    i = list(columns).index(PARTITIONED[table].key)
    keys = [row[i] for row in rows]
    first, last = month_of(table, min(keys)), month_of(table, max(keys))
    # a batch spans a few consecutive months at most: every month between its first and last row
    ensure(conn, table, months_between(first, last))

"""Export of every table of the audit database, for the government's finance systems: one file per table, CSV
(with a header row) or JSON Lines (one object per row), plus ``manifest.json`` naming each file with its row
count, columns and SHA-256, and the indexer's checkpoint the export reflects.

All tables are read in one snapshot (``common.snapshot``), so an export taken while the indexer runs is
consistent. Rows come in primary-key order (chain order for event tables). Values: integers as integers (token
amounts are exact, never floats; JSON numbers may exceed 2**53), addresses and hashes as text, booleans as
``true``/``false``, NULL as an empty CSV field / JSON null, timestamps as ISO 8601. Files are written to a
temporary name and renamed, so a reader never sees half a file.
"""

from __future__ import annotations

import csv
import hashlib
import io
import json
import os
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass
from datetime import UTC, date, datetime
from decimal import Decimal
from pathlib import Path
from typing import Any

import orjson
from sqlalchemy import Connection, MetaData, Table, inspect, select

from deposit_token.audit.db import schema
from deposit_token.audit.query.common import checkpoint_info

FORMATS = {"csv": "csv", "jsonl": "jsonl"}
SKIPPED_TABLES = frozenset({"alembic_version"})  # migration bookkeeping, not audit data
BATCH = 5_000


@dataclass(frozen=True)
class ExportedTable:
    name: str
    file: str
    rows: int
    columns: tuple[str, ...]
    sha256: str


def tables_to_export(conn: Connection, names: Iterable[str] | None = None) -> list[Table]:
    """The database's tables: those of the shared schema (typed: amounts read as int), then any other table
    found in the database (reflected), except migration bookkeeping; `names` limits the choice."""
    present = set(inspect(conn).get_table_names())
    chosen = [t for t in schema.metadata.sorted_tables if t.name in present]
    extra = sorted(present - {t.name for t in chosen} - SKIPPED_TABLES)
    if extra:
        reflected = MetaData()
        reflected.reflect(conn, only=extra)
        chosen += [reflected.tables[name] for name in extra]
    if names is not None:
        wanted = list(dict.fromkeys(names))
        known = {t.name: t for t in chosen}
        missing = [n for n in wanted if n not in known]
        if missing:
            raise ValueError(
                f"no table(s) {', '.join(missing)} in the database (there are: {', '.join(sorted(known))})"
            )
        chosen = [known[n] for n in wanted]
    return chosen


def _plain(value: Any) -> Any:
    if isinstance(value, Decimal):
        return int(value) if value == value.to_integral_value() else str(value)
    if isinstance(value, datetime):
        return value.isoformat()
    if isinstance(value, date):
        return value.isoformat()
    if isinstance(value, (bytes, bytearray, memoryview)):
        return "0x" + bytes(value).hex()
    return value


def _csv_field(value: Any) -> Any:
    value = _plain(value)
    if value is None:
        return ""
    if isinstance(value, bool):
        return "true" if value else "false"
    return value


def _json_line(columns: tuple[str, ...], row: Sequence[Any]) -> bytes:
    record = {c: _plain(v) for c, v in zip(columns, row)}
    try:
        return orjson.dumps(record) + b"\n"
    except TypeError:  # an integer beyond 64 bits (e.g. an unlimited approval): the standard library writes it
        return json.dumps(record, separators=(",", ":"), ensure_ascii=False).encode() + b"\n"


def _rows(conn: Connection, table: Table) -> Iterator[Sequence[Any]]:
    order = list(table.primary_key.columns) or list(table.columns)
    result = conn.execution_options(yield_per=BATCH).execute(select(table).order_by(*order))
    for partition in result.partitions():
        yield from partition


def export_table(conn: Connection, table: Table, directory: Path, fmt: str) -> ExportedTable:
    if fmt not in FORMATS:
        raise ValueError(f"unknown export format {fmt!r} (known: {', '.join(FORMATS)})")
    columns = tuple(c.name for c in table.columns)
    file_name = f"{table.name}.{FORMATS[fmt]}"
    final = directory / file_name
    temporary = directory / f".{file_name}.tmp"
    digest = hashlib.sha256()
    count = 0
    with open(temporary, "wb") as out:
        if fmt == "csv":
            text = io.StringIO()
            writer = csv.writer(text, lineterminator="\n")
            writer.writerow(columns)
            for row in _rows(conn, table):
                writer.writerow([_csv_field(v) for v in row])
                count += 1
                if count % BATCH == 0:
                    chunk = text.getvalue().encode()
                    out.write(chunk)
                    digest.update(chunk)
                    text.seek(0)
                    text.truncate()
            chunk = text.getvalue().encode()
            out.write(chunk)
            digest.update(chunk)
        else:
            for row in _rows(conn, table):
                line = _json_line(columns, tuple(row))
                out.write(line)
                digest.update(line)
                count += 1
        out.flush()
        os.fsync(out.fileno())
    os.replace(temporary, final)
    return ExportedTable(table.name, file_name, count, columns, digest.hexdigest())


def planned_files(tables: Iterable[Table], fmt: str) -> list[str]:
    return [f"{t.name}.{FORMATS[fmt]}" for t in tables] + ["manifest.json"]


def export_all(
    conn: Connection,
    directory: str | Path,
    fmt: str = "csv",
    tables: Iterable[str] | None = None,
    overwrite: bool = False,
) -> list[ExportedTable]:
    """Writes each table to `directory` (created if missing) and a manifest; returns what was written.

    Refuses (ValueError) to replace files of an earlier export unless `overwrite`."""
    if fmt not in FORMATS:
        raise ValueError(f"unknown export format {fmt!r} (known: {', '.join(FORMATS)})")
    target = Path(directory)
    if target.exists() and not target.is_dir():
        raise ValueError(f"{target} exists and is not a directory")
    chosen = tables_to_export(conn, tables)
    existing = [name for name in planned_files(chosen, fmt) if (target / name).exists()]
    if existing and not overwrite:
        shown = ", ".join(existing[:5]) + (", ..." if len(existing) > 5 else "")
        raise ValueError(f"{target} already holds an export ({shown}): choose another directory or overwrite")
    target.mkdir(parents=True, exist_ok=True)
    written = [export_table(conn, table, target, fmt) for table in chosen]
    manifest = {
        "format": fmt,
        "exported_at": datetime.now(UTC).isoformat(timespec="seconds"),
        "database": conn.engine.dialect.name,
        "checkpoint": checkpoint_info(conn),
        "tables": [
            {"name": t.name, "file": t.file, "rows": t.rows, "columns": list(t.columns), "sha256": t.sha256}
            for t in written
        ],
    }
    temporary = target / ".manifest.json.tmp"
    temporary.write_bytes(orjson.dumps(manifest, option=orjson.OPT_INDENT_2) + b"\n")
    os.replace(temporary, target / "manifest.json")
    return written

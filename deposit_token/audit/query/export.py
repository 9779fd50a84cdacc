"""Export of every table of the audit database, for the government's finance systems: one file per table, CSV
(with a header row) or JSON Lines (one object per row), plus ``manifest.json`` naming each file with its row
count, columns and SHA-256, and the indexer's checkpoint the export reflects. The console's filtered views
(a payments list, the flag queue, the dispositions) go through the same writer (``export_views``: the manifest
also names each view's filter; ``write_rows`` streams one view to any binary file, e.g. a download).

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
from typing import Any, BinaryIO, Protocol

import orjson
from sqlalchemy import Connection, MetaData, Table, inspect, select

from deposit_token.audit.db import schema
from deposit_token.audit.query import export_copy
from deposit_token.audit.query.cases import FlagFilter, iter_dispositions, iter_flags
from deposit_token.audit.query.common import checkpoint_info
from deposit_token.audit.query.payments import PAYMENT_VALUES, PaymentFilter, stream_payment_values

FORMATS = {"csv": "csv", "jsonl": "jsonl"}
# migration bookkeeping and the web console's accounts and sessions (password hashes, TOTP secrets): not audit
# data, and secrets must never leave in an export
SKIPPED_TABLES = frozenset({"alembic_version", "web_users", "web_sessions"})
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


def csv_header(columns: Sequence[str]) -> bytes:
    """The header line ``write_rows`` writes for `columns`."""
    text = io.StringIO()
    csv.writer(text, lineterminator="\n").writerow(columns)
    return text.getvalue().encode()


def write_rows(out: BinaryIO, columns: Sequence[str], rows: Iterable[Sequence[Any]], fmt: str) -> tuple[int, str]:
    """Writes `rows` to `out` as CSV (header first) or JSON Lines; returns (rows written, SHA-256 of the bytes).
    The one writer of every export: tables, filtered views, streamed downloads."""
    if fmt not in FORMATS:
        raise ValueError(f"unknown export format {fmt!r} (known: {', '.join(FORMATS)})")
    names = tuple(columns)
    digest = hashlib.sha256()
    count = 0
    if fmt == "csv":
        header = csv_header(names)
        out.write(header)
        digest.update(header)
        text = io.StringIO()
        writer = csv.writer(text, lineterminator="\n")
        for row in rows:
            # text and integers are written as they are: only other types need converting (a call per field
            # was a third of a month's export)
            writer.writerow([v if type(v) is str or type(v) is int else _csv_field(v) for v in row])
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
        for row in rows:
            line = _json_line(names, tuple(row))
            out.write(line)
            digest.update(line)
            count += 1
    return count, digest.hexdigest()


class CsvWriter(Protocol):
    """A faster writer of a view's CSV file (the header given, then the rows): (rows, SHA-256 of all it wrote),
    or None, having written nothing, when it cannot give ``write_rows``' bytes (``write_rows`` then writes)."""

    def __call__(self, out: BinaryIO, header: bytes) -> tuple[int, str] | None: ...


def _write_file(
    directory: Path,
    name: str,
    columns: Sequence[str],
    rows: Iterable[Sequence[Any]],
    fmt: str,
    fast_csv: CsvWriter | None = None,
) -> ExportedTable:
    """One file of an export, written under a temporary name and renamed when complete."""
    if fmt not in FORMATS:
        raise ValueError(f"unknown export format {fmt!r} (known: {', '.join(FORMATS)})")
    file_name = f"{name}.{FORMATS[fmt]}"
    final = directory / file_name
    temporary = directory / f".{file_name}.tmp"
    with open(temporary, "wb") as out:
        written = fast_csv(out, csv_header(columns)) if fast_csv is not None and fmt == "csv" else None
        count, sha256 = written if written is not None else write_rows(out, columns, rows, fmt)
        out.flush()
        os.fsync(out.fileno())
    os.replace(temporary, final)
    return ExportedTable(name, file_name, count, tuple(columns), sha256)


def export_table(conn: Connection, table: Table, directory: Path, fmt: str) -> ExportedTable:
    return _write_file(directory, table.name, [c.name for c in table.columns], _rows(conn, table), fmt)


def planned_files(tables: Iterable[Table], fmt: str) -> list[str]:
    return [f"{t.name}.{FORMATS[fmt]}" for t in tables] + ["manifest.json"]


def _prepare(directory: str | Path, planned: Sequence[str], overwrite: bool) -> Path:
    target = Path(directory)
    if target.exists() and not target.is_dir():
        raise ValueError(f"{target} exists and is not a directory")
    existing = [name for name in planned if (target / name).exists()]
    if existing and not overwrite:
        shown = ", ".join(existing[:5]) + (", ..." if len(existing) > 5 else "")
        raise ValueError(f"{target} already holds an export ({shown}): choose another directory or overwrite")
    target.mkdir(parents=True, exist_ok=True)
    return target


def _write_manifest(
    conn: Connection, target: Path, fmt: str, written: Sequence[ExportedTable], extra: dict[str, Any] | None = None
) -> None:
    manifest = {
        "format": fmt,
        "exported_at": datetime.now(UTC).isoformat(timespec="seconds"),
        "database": conn.engine.dialect.name,
        "checkpoint": checkpoint_info(conn),
        **(extra or {}),
        "tables": [
            {"name": t.name, "file": t.file, "rows": t.rows, "columns": list(t.columns), "sha256": t.sha256}
            for t in written
        ],
    }
    temporary = target / ".manifest.json.tmp"
    temporary.write_bytes(orjson.dumps(manifest, option=orjson.OPT_INDENT_2) + b"\n")
    os.replace(temporary, target / "manifest.json")


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
    chosen = tables_to_export(conn, tables)
    target = _prepare(directory, planned_files(chosen, fmt), overwrite)
    written = [export_table(conn, table, target, fmt) for table in chosen]
    _write_manifest(conn, target, fmt, written)
    return written


# --- filtered views --------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class View:
    """A filtered list as an export file: `name` (file stem), columns, rows, and what was filtered (``filter``
    in the manifest, so that the file says which view it is)."""

    name: str
    columns: tuple[str, ...]
    rows: Iterable[Sequence[Any]]
    filter: dict[str, Any]
    fast_csv: CsvWriter | None = None  # e.g. the payments' COPY on PostgreSQL; `rows` is read only if it declines


def export_views(
    conn: Connection, directory: str | Path, views: Sequence[View], fmt: str = "csv", overwrite: bool = False
) -> list[ExportedTable]:
    """Writes each view to `directory` with a manifest like ``export_all``'s (plus each view's filter); call it
    inside one ``common.snapshot`` so that the files agree with each other and with the checkpoint named."""
    if fmt not in FORMATS:
        raise ValueError(f"unknown export format {fmt!r} (known: {', '.join(FORMATS)})")
    names = [v.name for v in views]
    if len(set(names)) != len(names):
        raise ValueError("two views of one export need different names")
    target = _prepare(directory, [f"{n}.{FORMATS[fmt]}" for n in names] + ["manifest.json"], overwrite)
    written = [_write_file(target, v.name, v.columns, v.rows, fmt, v.fast_csv) for v in views]
    _write_manifest(conn, target, fmt, written, {"filters": {v.name: v.filter for v in views}})
    return written


PAYMENT_COLUMNS = PAYMENT_VALUES


def payments_view(conn: Connection, filt: PaymentFilter | None = None, name: str = "payments") -> View:
    """The payments list of `filt` (newest first, as the console's pages show it) as a view; flags as
    ``rule;rule``. One streamed query (``payments.stream_payment_values``), not the console's pages; as CSV on
    PostgreSQL, the database writes the file itself (``export_copy``: same bytes, ~10x faster)."""
    chosen = filt or PaymentFilter()

    def fast_csv(out: BinaryIO, header: bytes) -> tuple[int, str] | None:
        return export_copy.write_payments_csv(conn, chosen, header, out)

    return View(name, PAYMENT_COLUMNS, stream_payment_values(conn, chosen), chosen.as_params(), fast_csv)


FLAG_COLUMNS = (
    "flag",
    "rule",
    "detail",
    "local_time",
    "payment",
    "tx_hash",
    "program_id",
    "payer",
    "department",
    "vendor",
    "vendor_name",
    "category_name",
    "amount",
    "status",
    "decided_by",
    "decided_at",
    "note",
    "dispositions",
)


def flags_view(conn: Connection, filt: FlagFilter | None = None, name: str = "flags") -> View:
    """The flag queue of `filt` (newest first) with each flag's latest disposition, as a view."""
    filt = filt or FlagFilter()

    def rows() -> Iterator[tuple[Any, ...]]:
        for flag in iter_flags(conn, filt):
            pay, latest = flag.payment, flag.latest
            yield (
                flag.key,
                flag.rule,
                flag.detail,
                flag.local_time,
                pay.key,
                pay.tx_hash,
                pay.program_id,
                pay.payer,
                pay.department,
                pay.vendor,
                pay.vendor_name,
                pay.category_name,
                pay.amount,
                "open" if latest is None else latest.disposition,
                None if latest is None else latest.decided_by,
                None if latest is None else latest.decided_at,
                None if latest is None else latest.note,
                flag.dispositions,
            )

    return View(
        name,
        FLAG_COLUMNS,
        rows(),
        {"rules": list(filt.rules), "status": filt.status, "payments": filt.payments.as_params()},
    )


DISPOSITION_COLUMNS = (
    "id",
    "flag",
    "block_number",
    "log_index",
    "rule",
    "tx_hash",
    "disposition",
    "note",
    "decided_by",
    "decided_at",
)


def dispositions_view(conn: Connection, name: str = "dispositions") -> View:
    """Every disposition in the order recorded, as a view."""

    def rows() -> Iterator[tuple[Any, ...]]:
        for d in iter_dispositions(conn):
            yield tuple(getattr(d, c) for c in DISPOSITION_COLUMNS)

    return View(name, DISPOSITION_COLUMNS, rows(), {})


def export_payments(
    conn: Connection,
    directory: str | Path,
    filt: PaymentFilter | None = None,
    fmt: str = "csv",
    overwrite: bool = False,
) -> list[ExportedTable]:
    """The filtered payments list as ``payments.<fmt>`` + ``manifest.json`` in `directory`."""
    return export_views(conn, directory, [payments_view(conn, filt)], fmt, overwrite)

"""Rendering of the auditors' results: rich tables for people, CSV and JSON for machines.

A command builds :class:`Section` s (a name, a title, typed columns, rows of dataclasses or dicts) and calls
:func:`render`. JSON is one object: ``{"meta": {...}, "<section>": [rows...], ...}``, amounts as exact
integers. CSV holds one table, so it takes exactly one section.
"""

from __future__ import annotations

import csv
import json
import sys
from collections.abc import Iterable, Sequence
from dataclasses import asdict, dataclass, field, is_dataclass
from typing import Any, TextIO

from rich.console import Console
from rich.table import Table

FORMATS = ("table", "csv", "json")


@dataclass(frozen=True)
class Col:
    key: str
    header: str
    kind: str = "text"  # text | int | amount | pct
    wrap: bool = False  # long text (details) may wrap in a table; addresses and hashes never do
    same_as: str | None = None  # tables only: hidden when it equals that column in every row of a table
    in_table: bool = True  # False: only in CSV and JSON (keeps wide tables readable)

    @property
    def numeric(self) -> bool:
        return self.kind in ("int", "amount", "pct")


@dataclass
class Section:
    name: str
    title: str
    columns: Sequence[Col]
    rows: Sequence[Any]
    group_by: str | None = None  # tables: one table per value of this field (which is then not shown)
    empty: str = "nothing to show"
    notes: list[str] = field(default_factory=list)


def as_dict(row: Any) -> dict[str, Any]:
    if is_dataclass(row) and not isinstance(row, type):
        return asdict(row)
    return dict(row)


def _cell(value: Any, kind: str) -> str:
    if value is None:
        return "-"
    if kind == "amount" or kind == "int":
        return f"{value:,}"
    if kind == "pct":
        return f"{value:.2f}%"
    if isinstance(value, bool):
        return "yes" if value else "no"
    return str(value)


def console(file: TextIO | None = None) -> Console:
    out = file or sys.stdout
    # Off a terminal (pipes, CI logs, CliRunner) keep addresses and hashes on one line.
    return Console(file=out, width=None if out.isatty() else 240, soft_wrap=False)


def render_tables(sections: Iterable[Section], meta: dict[str, Any], out: Console) -> None:
    for section in sections:
        rows = [as_dict(r) for r in section.rows]
        groups: dict[Any, list[dict[str, Any]]] = {}
        if section.group_by:
            for row in rows:
                groups.setdefault(row[section.group_by], []).append(row)
        else:
            groups[None] = rows
        if not rows:
            out.print(f"[bold]{section.title}[/bold]: {section.empty}")
            continue
        for group, group_rows in groups.items():
            columns = [
                c
                for c in section.columns
                if c.key != section.group_by
                and c.in_table
                and not (c.same_as and all(r.get(c.key) == r.get(c.same_as) for r in group_rows))
            ]
            title = section.title if group is None else f"{section.title} by {group}"
            table = Table(title=title, title_justify="left", header_style="bold")
            for col in columns:
                header = col.header.replace("{group}", str(group))
                table.add_column(
                    header, justify="right" if col.numeric else "left", no_wrap=not col.wrap, overflow="fold"
                )
            for row in group_rows:
                table.add_row(*(_cell(row.get(c.key), c.kind) for c in columns))
            out.print(table)
        for note in section.notes:
            out.print(f"[dim]{note}[/dim]")
    caption = meta_caption(meta)
    if caption:
        out.print(f"[dim]{caption}[/dim]")


def meta_caption(meta: dict[str, Any]) -> str | None:
    checkpoint = meta.get("checkpoint")
    if not checkpoint:
        return None
    text = f"database indexed to block {checkpoint['block_number']}"
    if checkpoint.get("block_time"):
        text += f" ({checkpoint['block_time']})"
    return text


def render_csv(section: Section, out: TextIO) -> None:
    writer = csv.writer(out, lineterminator="\n")
    keys = [c.key for c in section.columns]
    writer.writerow(keys)
    for row in section.rows:
        values = as_dict(row)
        writer.writerow([_csv_value(values.get(k)) for k in keys])


def _csv_value(value: Any) -> Any:
    if value is None:
        return ""
    if isinstance(value, bool):
        return "true" if value else "false"
    return value


def render_json(sections: Iterable[Section], meta: dict[str, Any], out: TextIO) -> None:
    document: dict[str, Any] = {"meta": meta}
    for section in sections:
        keys = [c.key for c in section.columns]
        document[section.name] = [{k: as_dict(r).get(k) for k in keys} for r in section.rows]
    # The standard library writes integers of any size exactly (orjson stops at 64 bits).
    out.write(json.dumps(document, indent=2, ensure_ascii=False, default=str))
    out.write("\n")


def render(
    sections: Sequence[Section], fmt: str, meta: dict[str, Any] | None = None, out: TextIO | None = None
) -> None:
    """Writes `sections` to `out` (stdout) as rich tables, CSV (exactly one section) or JSON."""
    meta = meta or {}
    stream = out or sys.stdout
    if fmt == "table":
        render_tables(sections, meta, console(stream))
    elif fmt == "csv":
        if len(sections) != 1:
            names = ", ".join(s.name for s in sections)
            raise ValueError(f"CSV holds one table, and this output has {len(sections)} ({names}): choose one")
        render_csv(sections[0], stream)
    elif fmt == "json":
        render_json(sections, meta, stream)
    else:
        raise ValueError(f"unknown format {fmt!r} (known: {', '.join(FORMATS)})")

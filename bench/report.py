"""Shared output of the benchmarks: a rich table on the terminal and ``bench/results/<name>.json``.

A benchmark measures a flat dict of figures (``{"pay_gas": 48213, "pay_ratio": 1.12, ...}``), names the
targets some of them must meet (``{"pay_ratio": Target.at_most(1.35)}``) and picks the rows to show. ``report``
prints one row per figure (metric, value, target, pass/fail) and writes the JSON file: the figures at the top
level, then ``targets`` (each ``{"max": x}`` or ``{"min": x}``), ``targets_met`` (figure -> bool) and ``meta``
(when and how it was measured), pretty-printed with sorted keys. A missed target is shown in red and listed
under the table; it never raises: whether a miss fails a build is the caller's decision.
"""

from __future__ import annotations

import json
import math
import os
import sys
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from rich.console import Console
from rich.table import Table

from deposit_token import paths

RESULTS_DIR = paths.BENCH_RESULTS_DIR


@dataclass(frozen=True)
class Target:
    """A bound one figure must meet: ``value <= maximum`` and/or ``value >= minimum``."""

    maximum: float | None = None
    minimum: float | None = None

    @classmethod
    def at_most(cls, maximum: float) -> Target:
        return cls(maximum=maximum)

    @classmethod
    def at_least(cls, minimum: float) -> Target:
        return cls(minimum=minimum)

    def met(self, value: float) -> bool:
        return (self.maximum is None or value <= self.maximum) and (self.minimum is None or value >= self.minimum)

    def margin(self, value: float) -> str:
        """How far a value misses the bound, e.g. "+0.12 (+8.9%) over 1.35"; empty when it is met."""
        if self.met(value):
            return ""
        if self.maximum is not None and value > self.maximum:
            bound, word = self.maximum, "over"
        else:
            bound, word = self.minimum, "under"
        gap = value - bound
        relative = f" ({gap / bound:+.1%})" if bound else ""
        return f"{gap:+.4g}{relative} {word} {_fmt(bound)}"

    def as_json(self) -> dict[str, float]:
        out: dict[str, float] = {}
        if self.maximum is not None:
            out["max"] = self.maximum
        if self.minimum is not None:
            out["min"] = self.minimum
        return out

    def __str__(self) -> str:
        parts = []
        if self.minimum is not None:
            parts.append(f">= {_fmt(self.minimum)}")
        if self.maximum is not None:
            parts.append(f"<= {_fmt(self.maximum)}")
        return ", ".join(parts)


@dataclass(frozen=True)
class Row:
    """One line of the table: the figure ``key`` shown as ``label`` (default: the key) with a ``unit``."""

    key: str
    label: str = ""
    unit: str = ""
    note: str = ""


TargetLike = Target | Mapping[str, float]


def as_target(spec: TargetLike) -> Target:
    """A Target from a Target or a ``{"max": x}`` / ``{"min": x}`` mapping."""
    if isinstance(spec, Target):
        return spec
    unknown = set(spec) - {"max", "min"}
    if unknown:
        raise ValueError(f"a target takes 'max' and/or 'min', not {sorted(unknown)}")
    return Target(maximum=spec.get("max"), minimum=spec.get("min"))


def _fmt(value: Any) -> str:
    if isinstance(value, bool):
        return str(value)
    if isinstance(value, int):
        return f"{value:,}"
    if isinstance(value, float):
        if math.isnan(value) or math.isinf(value):
            return str(value)
        if value.is_integer() and abs(value) >= 1000:
            return f"{value:,.0f}"
        return f"{value:,.4g}" if abs(value) < 1000 else f"{value:,.1f}"
    return str(value)


def wide_console() -> Console:
    """A console for the reports: the terminal's width, or 120 columns when output is not a terminal
    (rich's default of 80 wraps the tables of a `make bench` log)."""
    console = Console()
    if not console.is_terminal and "COLUMNS" not in os.environ:
        console = Console(width=120)
    return console


def results_path(name: str, results_dir: Path | None = None) -> Path:
    return (results_dir or RESULTS_DIR) / f"{name}.json"


def write_json(path: Path, data: Mapping[str, Any]) -> None:
    """Writes ``data`` pretty-printed with sorted keys, through a ``.tmp`` file (a crash leaves no half file)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(json.dumps(data, indent=2, sort_keys=True, ensure_ascii=False) + "\n", encoding="utf-8")
    os.replace(tmp, path)


def report(
    name: str,
    rows: Sequence[Row | str] | None,
    figures: Mapping[str, Any],
    targets: Mapping[str, TargetLike],
    meta: Mapping[str, Any] | None = None,
    *,
    title: str | None = None,
    results_dir: Path | None = None,
    console: Console | None = None,
) -> dict[str, Any]:
    """Prints the table and writes ``bench/results/<name>.json``; returns what was written.

    ``rows`` picks and orders the figures shown (a Row or a figure key each; None = every figure, sorted).
    Every target must name a figure; a target whose figure has no row still gets one, so no target goes
    unshown.
    """
    console = console or wide_console()
    checked = {key: as_target(spec) for key, spec in targets.items()}
    missing = sorted(set(checked) - set(figures))
    if missing:
        raise KeyError(f"targets for figures that were not measured: {missing}")
    reserved = {"targets", "targets_met", "meta"} & set(figures)
    if reserved:
        raise KeyError(f"figure names {sorted(reserved)} are reserved for the report itself")

    shown = [r if isinstance(r, Row) else Row(r) for r in (rows if rows is not None else sorted(figures))]
    for key in checked:
        if key not in {r.key for r in shown}:
            shown.append(Row(key))

    met = {key: target.met(figures[key]) for key, target in checked.items()}
    table = Table(title=title or f"benchmark: {name}", title_justify="left")
    table.add_column("metric")
    table.add_column("value", justify="right")
    table.add_column("unit")
    table.add_column("target", justify="right")
    table.add_column("result")
    table.add_column("note", overflow="fold")
    for row in shown:
        value = figures[row.key]
        target = checked.get(row.key)
        if target is None:
            result, target_text = "", ""
        else:
            target_text = str(target)
            result = "[bold green]PASS[/]" if met[row.key] else "[bold red]FAIL[/]"
        table.add_row(row.label or row.key, _fmt(value), row.unit, target_text, result, row.note)
    console.print(table)

    failed = [key for key, ok in met.items() if not ok]
    if failed:
        for key in failed:
            console.print(
                f"[bold red]target missed[/]: {key} = {_fmt(figures[key])}, "
                f"target {checked[key]}: {checked[key].margin(figures[key])}"
            )
    elif checked:
        console.print(f"[bold green]all {len(checked)} targets met[/]")

    data: dict[str, Any] = dict(figures)
    data["targets"] = {key: target.as_json() for key, target in checked.items()}
    data["targets_met"] = met
    data["meta"] = {"date": datetime.now(UTC).isoformat(timespec="seconds"), **(meta or {})}
    path = results_path(name, results_dir)
    write_json(path, data)
    try:
        shown_path = path.relative_to(Path.cwd())
    except ValueError:
        shown_path = path
    console.print(f"wrote {shown_path}")
    return data


def run_meta(name: str, started: float, load_before: float) -> dict[str, Any]:
    """What every benchmark's ``meta`` says of its run: the command, the interpreter, the machine's cores and its
    load before and after (other work shares the cores), and how long it took since ``started`` (monotonic)."""
    return {
        "command": f"python -m bench.{name}",
        "python": sys.version.split()[0],
        "cpu_count": os.cpu_count(),
        "load_average_1m_before": round(load_before, 2),
        "load_average_1m_after": round(os.getloadavg()[0], 2),
        "duration_seconds": round(time.monotonic() - started, 1),
    }


def compiler_meta() -> dict[str, Any]:
    """The Solidity compiler and its settings from the compiled project (``.build``), for ``meta``."""
    from ape import project  # imported here: the report itself does not need ape

    compilers = project.manifest.compilers or []
    out: dict[str, Any] = {}
    for compiler in compilers:
        if compiler.name != "solidity":
            continue
        settings = compiler.settings or {}
        out = {
            "solc_version": compiler.version,
            "optimizer": settings.get("optimizer"),
            "via_ir": settings.get("viaIR"),
            "evm_version": settings.get("evmVersion"),
        }
    return out

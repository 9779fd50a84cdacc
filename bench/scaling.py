"""National-scale arithmetic for docs/SCALING.md (`make scaling`): the figures the document derives, computed from
the measured bench/results/*.json and the assumptions named below, each printed with its formula and sources.

Run from the repository root with ``python -m bench.scaling``. It measures nothing and starts nothing: it reads
gas.json, network.json, gateway.json, indexer.json and storage.json, so that after the benchmarks are re-run
(on a quiet machine, or with the contracts changed) the document's derived figures are one command away. A
results file or key that is missing is shown as missing, never guessed.
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from rich.table import Table

from bench.report import RESULTS_DIR, wide_console

# --- population (docs/SCALING.md cites the sources) ------------------------------------------------------------
OFFICIALS = 1_156_952  # public officials at the end of 2021 (Ministry of the Interior and Safety)
VENDORS_UPPER = 660_000  # restaurants and eateries in Korea, 2015 (Ministry of Agriculture, Food and Rural Affairs)
VENDORS_PER_OFFICIAL = 0.2  # the planning estimate: bench-audit-scale's 20,000 vendors for 100,000 spenders

# --- behaviour (assumptions, not measurements) ----------------------------------------------------------------
SCENARIOS = {
    # share of officials who pay on a working day, payments each
    "base": (0.20, 1.0),  # one payer per team of five (a team's lunch goes on one card)
    "high": (0.50, 2.0),  # every other official pays twice a day (lunch and coffee): a stress case
}
WORKING_DAYS = 248  # 365 - 104 weekend days - ~13 public holidays on weekdays
LUNCH_SHARE = 0.60  # of a day's payments made 11:30-13:30 KST
LUNCH_SECONDS = 2 * 3600
PEAK_FACTOR = 3.0  # the busiest minute of the lunch window against the window's mean (bills paid as lunches end)
SECONDS_PER_YEAR = 365 * 86_400
PERIOD_S = 1  # Clique period (deposit_token/chain/geth/genesis.py)


def load(name: str, results_dir: Path) -> dict[str, Any]:
    path = results_dir / f"{name}.json"
    return dict(json.loads(path.read_text(encoding="utf-8"))) if path.exists() else {}


@dataclass
class Figure:
    name: str
    value: float | None
    unit: str
    how: str


def derive(results_dir: Path = RESULTS_DIR) -> list[Figure]:
    """Every derived figure, in the document's order (value None: an input is missing)."""
    gas, network, gateway = load("gas", results_dir), load("network", results_dir), load("gateway", results_dir)
    indexer, storage = load("indexer", results_dir), load("storage", results_dir)
    out: list[Figure] = []

    def add(name: str, value: float | None, unit: str, how: str) -> float | None:
        out.append(Figure(name, value, unit, how))
        return value

    def mul(*xs: float | None) -> float | None:
        result = 1.0
        for x in xs:
            if x is None:
                return None
            result *= x
        return result

    def div(a: float | None, b: float | None) -> float | None:
        return None if a is None or not b else a / b

    add("officials", OFFICIALS, "people", "MOIS, end of 2021 (cited in docs/SCALING.md)")
    add("vendors (planning)", OFFICIALS * VENDORS_PER_OFFICIAL, "vendors", "officials x 0.2")
    add("vendors (upper bound)", VENDORS_UPPER, "vendors", "every restaurant and eatery (MAFRA, 2015)")
    peaks: dict[str, float] = {}
    per_year: dict[str, float] = {}
    for scenario, (share, each) in SCENARIOS.items():
        day = add(
            f"{scenario}: payments per working day", OFFICIALS * share * each, "tx", f"officials x {share} x {each}"
        )
        assert day is not None
        per_year[scenario] = day * WORKING_DAYS
        add(f"{scenario}: payments per year", per_year[scenario], "tx", f"per day x {WORKING_DAYS} working days")
        mean = day * LUNCH_SHARE / LUNCH_SECONDS
        add(f"{scenario}: lunch mean", mean, "tx/s", f"per day x {LUNCH_SHARE} / {LUNCH_SECONDS:,} s (11:30-13:30)")
        peaks[scenario] = mean * PEAK_FACTOR
        add(f"{scenario}: lunch peak", peaks[scenario], "tx/s", f"lunch mean x {PEAK_FACTOR:g} (busiest minute)")

    limit = network.get("block_gas_limit")
    for key in (
        "pay_second_in_period_gas",
        "pay_first_in_period_gas",
        "pay_with_new_receipt_word_gas",
        "pay_first_in_category_gas",
    ):
        add(
            f"payments per block ({key})",
            div(limit, gas.get(key)),
            "tx",
            f"network.json block_gas_limit / gas.json {key}",
        )
    ingest = add(
        "sealers + archive sustain", network.get("geth_ingest_per_s"), "tx/s", "network.json geth_ingest_per_s"
    )
    through = add("through the gateway", network.get("payments_per_s"), "tx/s", "network.json payments_per_s")
    cpu = network.get("meta", {}).get("cpu", {})
    geth_ms = cpu.get("ingest", {}).get("geth_cpu_ms_per_payment")
    add("geth CPU per payment (4 nodes)", geth_ms, "ms", "network.json meta.cpu.ingest.geth_cpu_ms_per_payment")
    add("geth CPU per payment per node", div(geth_ms, 4), "ms", "the same / 4 nodes")
    gw_ms = cpu.get("gateway", {}).get("gateway_cpu_ms_per_payment")
    add("gateway CPU per payment", gw_ms, "ms", "network.json meta.cpu.gateway.gateway_cpu_ms_per_payment")
    add("gateway payments per core-second", div(1000.0, gw_ms), "tx/s", "1000 / gateway CPU ms per payment")
    add(
        "gateway per-tx overhead (batch of 1,000)",
        gateway.get("batch_overhead_per_tx_us"),
        "us",
        "gateway.json batch_overhead_per_tx_us",
    )
    for scenario, peak in peaks.items():
        add(f"{scenario}: peak / sealers' sustained", div(peak, ingest), "x", "lunch peak / geth_ingest_per_s")
        add(f"{scenario}: peak / through the gateway", div(peak, through), "x", "lunch peak / payments_per_s")

    blocks = SECONDS_PER_YEAR / PERIOD_S
    for node in ("sealer", "archive"):
        idle = mul(storage.get(f"{node}_bytes_per_empty_block"), blocks)
        add(
            f"{node}: empty blocks per year",
            div(idle, 1e9),
            "GB",
            f"storage.json {node}_bytes_per_empty_block x {blocks:,.0f}",
        )
        for scenario, count in per_year.items():
            paid = mul(storage.get(f"{node}_bytes_per_payment"), count)
            add(
                f"{node}: {scenario} year",
                div(None if idle is None or paid is None else idle + paid, 1e9),
                "GB",
                f"empty blocks + storage.json {node}_bytes_per_payment x payments per year",
            )
    for db in ("sqlite", "postgres"):
        for scenario, count in per_year.items():
            add(
                f"{db}: {scenario} year",
                div(mul(storage.get(f"{db}_bytes_per_payment"), count), 1e9),
                "GB",
                f"storage.json {db}_bytes_per_payment x payments per year",
            )

    events_per_payment = storage.get("audit_events_per_payment")
    rates = {
        "postgres, Anvil": ("indexer.json postgres_events_per_s", indexer.get("postgres_events_per_s")),
        "sqlite, Anvil": ("indexer.json sqlite_events_per_s", indexer.get("sqlite_events_per_s")),
        "sqlite, Geth archive": ("network.json indexer_events_per_s", network.get("indexer_events_per_s")),
        "1M run": ("indexer.json events_per_s_1m", indexer.get("events_per_s_1m")),
    }
    for scenario, count in per_year.items():
        events = mul(count, events_per_payment)
        add(
            f"{scenario}: events per year",
            events,
            "events",
            "payments per year x storage.json audit_events_per_payment",
        )
        for label, (source, rate) in rates.items():
            add(f"{scenario}: backfill a year ({label})", div(div(events, rate), 3600), "h", f"events / {source}")
    return out


def _fmt(value: float | None) -> str:
    if value is None:
        return "[red]missing[/]"
    if abs(value) >= 100:
        return f"{value:,.0f}"
    return f"{value:,.3g}"


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.scaling", description=(__doc__ or "").split("\n\n")[0])
    parser.add_argument("--results", type=Path, default=RESULTS_DIR, help="the results folder (default bench/results)")
    args = parser.parse_args(argv)
    if not args.results.is_dir():
        parser.exit(2, f"{args.results} is not a folder of benchmark results.\n")
    table = Table(title="docs/SCALING.md: derived figures", title_justify="left")
    for column in ("figure", "value", "unit", "how"):
        table.add_column(column, justify="right" if column == "value" else "left", overflow="fold")
    for figure in derive(args.results):
        table.add_row(figure.name, _fmt(figure.value), figure.unit, figure.how)
    wide_console().print(table)
    return 0


if __name__ == "__main__":
    sys.exit(main())

"""bench.scaling, docs/SCALING.md's arithmetic: each derived figure from the results files it names, and a missing
input shown as missing rather than guessed."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from bench import scaling


def figures(results: Path) -> dict[str, float | None]:
    return {f.name: f.value for f in scaling.derive(results)}


def write(results: Path, name: str, data: dict[str, object]) -> None:
    (results / f"{name}.json").write_text(json.dumps(data), encoding="utf-8")


def test_derived_figures_follow_the_results_and_the_assumptions(tmp_path: Path) -> None:
    write(tmp_path, "gas", {"pay_second_in_period_gas": 50_000})
    write(
        tmp_path,
        "network",
        {"block_gas_limit": 1_000_000_000, "geth_ingest_per_s": 100.0, "indexer_events_per_s": 10_000.0},
    )
    write(tmp_path, "indexer", {"postgres_events_per_s": 20_000.0})
    write(
        tmp_path,
        "storage",
        {
            "archive_bytes_per_payment": 2_000,
            "archive_bytes_per_empty_block": 100,
            "postgres_bytes_per_payment": 1_000,
            "audit_events_per_payment": 2,
        },
    )
    got = figures(tmp_path)
    share, each = scaling.SCENARIOS["base"]
    per_day = scaling.OFFICIALS * share * each
    per_year = per_day * scaling.WORKING_DAYS
    peak = per_day * scaling.LUNCH_SHARE / scaling.LUNCH_SECONDS * scaling.PEAK_FACTOR

    assert got["base: payments per working day"] == pytest.approx(per_day)
    assert got["base: lunch peak"] == pytest.approx(peak)
    assert got["payments per block (pay_second_in_period_gas)"] == pytest.approx(20_000)
    assert got["base: peak / sealers' sustained"] == pytest.approx(peak / 100.0)
    assert got["archive: base year"] == pytest.approx((100 * 365 * 86_400 + 2_000 * per_year) / 1e9)
    assert got["postgres: base year"] == pytest.approx(1_000 * per_year / 1e9)
    assert got["base: backfill a year (postgres, Anvil)"] == pytest.approx(2 * per_year / 20_000 / 3600)
    assert got["base: backfill a year (sqlite, Geth archive)"] == pytest.approx(2 * per_year / 10_000 / 3600)


def test_a_missing_input_is_missing_not_guessed(tmp_path: Path) -> None:
    write(tmp_path, "indexer", {"postgres_events_per_s": 20_000.0})  # no events_per_s_1m, no storage.json
    got = figures(tmp_path)
    assert got["base: backfill a year (1M run)"] is None
    assert got["sealer: base year"] is None
    assert got["base: payments per year"] is not None  # the assumptions alone


def test_the_committed_results_give_every_figure() -> None:
    missing = {name for name, value in figures(scaling.RESULTS_DIR).items() if value is None}
    assert missing == set()


def test_an_unusable_results_folder_is_one_sentence(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exit_:
        scaling.main(["--results", str(tmp_path / "nowhere")])
    assert exit_.value.code == 2
    assert capsys.readouterr().err.strip() == f"{tmp_path / 'nowhere'} is not a folder of benchmark results."

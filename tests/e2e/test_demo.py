"""The pilot demo runs end to end (a shortened month; `make demo` plays all of December 2026), on any date.

The demo chain's clock starts a few days before the simulated month (a genesis timestamp chosen by the run), so
neither the default month nor one years ahead of or before the machine's date depends on the wall clock.
"""

from __future__ import annotations

import importlib
import re
from datetime import date

import pytest
from click.testing import CliRunner
from rich.console import Console

from deposit_token.chain import node
from deposit_token.sim.demo import DEFAULT_MONTH, Month, MonthError, parse_month, run


def load_cli():
    module = importlib.import_module("deposit_token.cli.demo")
    return module.cli


def assert_it_ran(demo, out: str) -> None:
    tally = demo.tally
    assert tally.attempts > 150
    assert tally.by_reason["accepted"] > 50
    for reason in ("outside allowed hours", "category not allowed"):
        assert tally.by_reason[reason] > 0, out
    assert sum(tally.refused_on_chain.values()) > 0  # unchecked wallets were refused by the chain itself
    assert "Spent per program" in out and "swept back" in out
    assert demo.swept > 0 and demo.redeemed > 0
    assert "private" not in out.lower()
    # Four eyes: the mint and the freeze and claw-back went through 2-of-3 Safes, the story says who approved.
    assert "mint approved in the issuer Safe (nonce 0" in out and "by bank_officer_001 and bank_officer_002" in out
    assert "clawback approved in the compliance Safe (nonce 1" in out
    # The indexer followed the role Safes: the report names the approvers, verify checked the Safes' nonces.
    assert "Privileged actions and their approvers" in out
    assert re.search(r"verify: [0-9,]+ database facts checked against the chain at block [0-9]+: no mismatch", out)


def test_demo_plays_a_few_days_and_enforces_the_rules(tmp_path):
    console = Console(record=True, width=200)
    demo = run(console, tmp_path / "demo", days=4)
    out = console.export_text()
    assert_it_ran(demo, out)
    assert "Payment attempts, December 2026 (KST)" in out and "BP-2026-MOEF" in out


@pytest.mark.parametrize("month", ["2031-03", "2025-06"])  # years after today's date; and before it
def test_demo_runs_in_any_month_whatever_the_machines_date(tmp_path, month):
    """Regression: the demo played December 2026 on a chain whose clock started at the machine's clock, and
    from 2026-11-29 on it could not set a block time in the past. Its chain now starts before the month."""
    console = Console(record=True, width=200)
    chosen = Month(parse_month(month))
    demo = run(console, tmp_path / "demo", days=4, month=chosen.first_day, keep_running=True)
    try:
        rpc = demo.rpc
        genesis, head = (
            int(rpc.call("eth_getBlockByNumber", [tag, False])["timestamp"], 16) for tag in ("0x0", "latest")
        )
    finally:
        demo.submitter.close()
        node.stop(demo.config)
    out = console.export_text()
    assert_it_ran(demo, out)
    assert genesis == chosen.genesis < chosen.start.timestamp()  # the chain's clock, not the machine's
    assert head >= chosen.end.timestamp()  # it went on to the redemptions after the month
    assert f"Payment attempts, {chosen.name} (KST)" in out
    assert f"BP-{chosen.year}-MOEF" in out and f"EV-{chosen.year}-MOE" in out
    assert "December 2026" not in out and "BP-2026" not in out


@pytest.mark.parametrize(
    "text, problem",
    [
        ("2026-13", "has no month 13"),
        ("2026-1", "is not written YYYY-MM"),
        ("December", "is not written YYYY-MM"),
        ("1969-12", "is out of range"),
        ("", "is not written YYYY-MM"),
    ],
)
def test_a_bad_month_gets_one_sentence_and_no_run(text, problem, tmp_path):
    with pytest.raises(MonthError, match=problem):
        parse_month(text)
    result = CliRunner().invoke(load_cli(), ["--month", text, "--data-dir", str(tmp_path / "demo")])
    assert result.exit_code == 1
    assert result.output.startswith(f"Error: --month {text!r} {problem}")
    assert len(result.output.strip().splitlines()) == 1 and "Traceback" not in result.output
    assert not (tmp_path / "demo").exists()


def test_months_and_their_names():
    december = Month(parse_month(DEFAULT_MONTH))
    assert december.first_day == date(2026, 12, 1) and december.name == "December 2026"
    assert december.end.year == 2027 and december.end.month == 1 and december.period == "2026-12"
    assert december.start.timestamp() - december.genesis == 3 * 86_400
    assert Month(date(2031, 3, 1)).program_names() == {
        1: "BP-2031-MOEF",
        2: "BP-2031-MOIS",
        3: "BP-2031-MOLIT",
        4: "EV-2031-MOE",
    }
    assert Month(date(2031, 3, 1)).end.month == 4


def test_demo_help():
    result = CliRunner().invoke(load_cli(), ["--help"])
    assert result.exit_code == 0 and "--month" in result.output and "YYYY-MM" in result.output

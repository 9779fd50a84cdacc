"""The pilot demo runs end to end (a shortened month; `make demo` plays all of December)."""

from __future__ import annotations

from rich.console import Console

from deposit_token.demo import run


def test_demo_plays_a_few_days_and_enforces_the_rules(tmp_path):
    console = Console(record=True, width=200)
    demo = run(console, tmp_path / "demo", days=4)
    out = console.export_text()
    tally = demo.tally
    assert tally.attempts > 150
    assert tally.by_reason["accepted"] > 50
    for reason in ("outside allowed hours", "category not allowed"):
        assert tally.by_reason[reason] > 0, out
    assert sum(tally.refused_on_chain.values()) > 0  # unchecked wallets were refused by the chain itself
    assert "Spent per program" in out and "swept back" in out
    assert demo.swept > 0 and demo.redeemed > 0
    assert "private" not in out.lower()

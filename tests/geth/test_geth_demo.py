"""`ape run demo --engine geth`: a short live day on the module's Geth network (three Clique sealers and an
archive node, tests/geth/conftest.py), end to end through the indexer report, the flags and verify.

Geth's clock is real time, so the demo plays at whatever time and date the test runs: its programs' hours are
widened around the current hour and the weekend or a holiday only changes how many officials pay per round.
Nothing asserted here depends on the date or the hour: the demo plays rounds until it made its attempts, and the
first refused attempt is always sent anyway, so the chain's own refusal (with its rule's sentence, found
without traces) shows on any day.
"""

from __future__ import annotations

import importlib
import re
from datetime import datetime, timedelta

from click.testing import CliRunner

from deposit_token.domain.presets import EVERY_DAY_06_TO_23, WORKING_DAYS_09_TO_18
from deposit_token.sim.demo import KST, live_hours

ATTEMPTS = 80  # the CLI's minimum is 20; a few rounds of ~25 attempts on a working day, ~10 on a weekend


def demo_cli():
    return importlib.import_module("deposit_token.cli.demo").cli


def test_a_live_day_on_geth_end_to_end(geth_network, tmp_path):
    args = ["--engine", "geth", "--data-dir", str(geth_network.data_dir), "--work-dir", str(tmp_path / "demo")]
    result = CliRunner().invoke(demo_cli(), [*args, "--attempts", str(ATTEMPTS)])
    out = result.output
    assert result.exit_code == 0, out[-5000:]
    assert "Traceback" not in out and "private" not in out.lower()
    assert f"live network: chain 20261 at {geth_network.rpc_url}" in out
    played = re.search(r"([0-9,]+) payment attempts in ([0-9]+) rounds from [0-9]{2}:[0-9]{2} KST \(live\)", out)
    assert played and int(played[1].replace(",", "")) >= ATTEMPTS, out[-3000:]
    assert "Payment attempts, live on" in out and "accepted" in out
    assert "refused on chain (" in out  # the chain's own refusal, its sentence from a replayed call
    assert "closed the live day's programs" in out and "swept back" in out
    assert "Audit: indexed" in out and "Audit flags" in out
    # The mint and the claw-back went through the issuer's and compliance's 2-of-3 Safes (Paris EVM).
    assert "mint approved in the issuer Safe (nonce 0" in out and "clawback approved in the compliance Safe" in out
    assert re.search(r"verify: [0-9,]+ database facts checked against the chain at block [0-9]+: no mismatch", out)


def test_live_hours_cover_the_session_at_any_hour():
    """Every hour of a day, on a working day and on a Sunday: the session's hours are open, and the windows
    stay valid ([opening, closing) within one day), also across midnight."""
    for day in (datetime(2026, 12, 7, tzinfo=KST), datetime(2026, 12, 13, tzinfo=KST)):  # a Monday, a Sunday
        for hour in range(24):
            now = day + timedelta(hours=hour, minutes=59)
            for base in (EVERY_DAY_06_TO_23, WORKING_DAYS_09_TO_18):
                windows = live_hours(base, now)
                assert all(0 <= opening <= closing <= 24 for opening, closing in windows)
                for moment in (now, now + timedelta(minutes=30), now + timedelta(hours=1)):
                    opening, closing = windows[moment.weekday()]
                    assert opening <= moment.hour < closing, (now, moment, windows)


def test_engine_options_and_a_missing_network_are_one_sentence(tmp_path):
    for args, words in (
        (["--engine", "geth", "--month", "2026-12"], "--month does not apply to --engine geth"),
        (["--attempts", "50"], "--attempts does not apply to --engine anvil"),
        (["--engine", "geth", "--data-dir", str(tmp_path)], "holds no Geth network"),
        (["--engine", "geth", "--rpc-url", "ws://127.0.0.1:1"], "is not an http(s):// URL"),
    ):
        result = CliRunner().invoke(demo_cli(), args)
        assert result.exit_code == 1, (args, result.output)
        assert words in result.output and "Traceback" not in result.output, (args, result.output)
        assert len(result.output.strip().splitlines()) == 1, result.output

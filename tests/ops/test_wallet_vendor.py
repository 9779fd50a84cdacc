"""The official's wallet and the vendor's terminal, end to end through their commands on a real Anvil."""

from __future__ import annotations

import importlib
import json

import pytest
from click.testing import CliRunner
from support.system import pay

LOCAL = "ethereum:local:foundry"


def test_balance_shows_program_hours_and_caps(run, system):
    p = system.people
    pay(system, p.spenders[0], p.cafe, 50_000)
    result = run("wallet", "balance", account=p.spenders[0])
    assert result.returncode == 0, result.stdout + result.stderr
    assert "2,950,000 KRW" in (result.stdout + result.stderr) and "BP-2030-MOEF" in (result.stdout + result.stderr)
    assert "Mon 06-23" in (result.stdout + result.stderr)
    assert "CAFE_BAKERY" in (result.stdout + result.stderr) and "250,000" in (result.stdout + result.stderr)
    result = run("wallet", "balance", account=p.restaurant)
    assert result.returncode == 1 and "not an enrolled spender" in (result.stdout + result.stderr)


def test_pay_sends_or_explains_and_sends_nothing(run, system, chain):
    p = system.people
    result = run("wallet", "pay", p.restaurant.address, "45,000", "--receipt", "1001", account=p.spenders[0])
    assert result.returncode == 0, result.stdout + result.stderr
    assert "paid 45,000 KRW" in (result.stdout + result.stderr)
    height, balance = chain.blocks.height, system.token.balanceOf(p.spenders[0])
    result = run("wallet", "pay", p.bar.address, "10000", account=p.spenders[0])
    assert result.returncode == 1
    assert (
        "not sent: vendor" in (result.stdout + result.stderr)
        and "ENTERTAINMENT_BAR" in (result.stdout + result.stderr)
        and "BP-2030-MOEF" in (result.stdout + result.stderr)
    )
    result = run("wallet", "pay", p.restaurant.address, "10000", "--receipt", "1001", account=p.spenders[0])
    assert "already been paid" in (result.stdout + result.stderr)
    result = run("wallet", "pay", p.restaurant.address, "600000", account=p.spenders[0])
    assert "evidence" in (result.stdout + result.stderr)
    assert (chain.blocks.height, system.token.balanceOf(p.spenders[0])) == (height, balance)


@pytest.mark.parametrize(
    "args, problem",
    [
        (["0x1234", "100"], "is malformed"),
        (["0xbDA5747bFD65F08deb54cb465eB87D40e51B197F", "100"], "checksum"),
        (["{vendor}", "-5"], "amount -5 is negative"),
        (["{vendor}", "1.5"], "not a whole"),
        (["{vendor}", "0"], "amount is zero"),
        (["{vendor}", "100", "--receipt", "0x12"], "not 0x followed by 64 hex digits"),
        (["{vendor}", "100", "--evidence", "missing.pdf"], "neither a file"),
    ],
)
def test_bad_input_is_refused_before_anything_is_sent(system, chain, args, problem):
    """Parsed in-process: the arguments fail before the command connects or sends anything."""
    module = importlib.import_module("deposit_token.cli.wallet")
    height = chain.blocks.height
    vendor = system.people.restaurant.address
    result = CliRunner().invoke(module.cli, ["pay", "--network", LOCAL, *[a.format(vendor=vendor) for a in args]])
    assert result.exit_code == 2, result.output
    assert problem in result.output and "Traceback" not in result.output
    assert chain.blocks.height == height


def test_signed_payment_collected_by_the_vendor_only_once(run, system, tmp_path):
    p, t = system.people, system.token
    signed = tmp_path / "pay.json"
    result = run(
        "wallet",
        "authorize",
        p.restaurant.address,
        "30000",
        "--receipt",
        "77",
        "--out",
        str(signed),
        account=p.spenders[1],
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert json.loads(signed.read_text())["amount"] == 30_000
    before = t.balanceOf(p.spenders[1])
    result = run("vendor", "collect", str(signed), account=p.cafe)
    assert result.returncode == 1 and "only that vendor can collect it" in (result.stdout + result.stderr)
    result = run("vendor", "collect", str(signed), account=p.restaurant)
    assert result.returncode == 0, result.stdout + result.stderr
    assert t.balanceOf(p.spenders[1]) == before - 30_000
    result = run("vendor", "collect", str(signed), account=p.restaurant)
    assert result.returncode == 1 and "already been used" in (result.stdout + result.stderr)
    result = run("vendor", "payments", account=p.restaurant)
    assert "30,000" in (result.stdout + result.stderr) and "total received: 30,000 KRW" in (
        result.stdout + result.stderr
    )


def test_official_cancels_a_signed_payment(run, system, tmp_path):
    p = system.people
    signed = tmp_path / "pay.json"
    run("wallet", "authorize", p.cafe.address, "5000", "--out", str(signed), account=p.spenders[2])
    result = run("wallet", "cancel", str(signed), account=p.spenders[3])
    assert result.returncode == 1 and "was signed by" in (result.stdout + result.stderr)
    result = run("wallet", "cancel", str(signed), account=p.spenders[2])
    assert result.returncode == 0, result.stdout + result.stderr
    result = run("vendor", "collect", str(signed), account=p.cafe)
    assert result.returncode == 1 and "already been used or cancelled" in (result.stdout + result.stderr)


def test_vendor_redeems(run, system):
    p, t = system.people, system.token
    pay(system, p.spenders[0], p.restaurant, 80_000)
    supply = t.totalSupply()
    result = run("vendor", "redeem", "50000", "--reference", "KB-0012-3456", account=p.restaurant)
    assert result.returncode == 0, result.stdout + result.stderr
    assert t.totalSupply() == supply - 50_000
    result = run("vendor", "redeem", "50000", "--reference", "KB-0012-3457", account=p.restaurant)
    assert result.returncode == 1 and "has 30,000 KRW" in (result.stdout + result.stderr)

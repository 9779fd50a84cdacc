"""End to end: real payments on Anvil (conftest's `system`, at chosen KST times), indexed by the audit indexer
into a SQLite file, then `report`, `flags`, `public` and `export` run through the `ape run audit` click group.
Every flag rule fires on the payment built for it, and on no other."""

from __future__ import annotations

import json
from dataclasses import replace
from datetime import datetime

from click.testing import CliRunner
from support.audit_rows import load_cli
from support.system import KST, b32, pay, set_time

from deposit_token.audit.db import store
from deposit_token.audit.sync.indexer import Indexer, IndexerConfig
from deposit_token.chain.rpc import RpcClient
from deposit_token.domain import presets
from deposit_token.domain.categories import Category


def at(*args: int) -> datetime:
    return datetime(*args, tzinfo=KST)


def test_report_and_flags_on_indexed_chain(system, chain, tmp_path):
    t, p = system.token, system.people
    s0, s1, s2, s3, s4, s5 = p.spenders
    evidence = b32("minutes.pdf")
    expected: set[tuple[str, str]] = set()

    def paid(receipt, *rules: str) -> str:
        tx = receipt.txn_hash if isinstance(receipt.txn_hash, str) else receipt.txn_hash.hex()
        tx = tx if tx.startswith("0x") else "0x" + tx
        expected.update((rule, tx) for rule in rules)
        return tx

    # A program open around the clock (the business-promotion preset closes 23:00-06:00, as the rule wants).
    night_spec = replace(
        presets.business_promotion(
            "NIGHT-2030", p.treasury.address, int(at(2030, 1, 1).timestamp()), int(at(2030, 7, 1).timestamp())
        ),
        hours=((0, 24),) * 7,
    )
    t.createProgram(night_spec.as_params(), sender=p.manager)
    night_program = int(t.programCount())
    t.enrol([p.outsider], night_program, [b32("NIGHT-DESK")], sender=p.manager)
    t.allocate(b32(3), night_program, [p.outsider], [1_000_000], sender=p.manager)

    # Monday 2030-01-07 10:00 (the fixture's time): an ordinary payment, no flag.
    quiet = paid(pay(system, s5, p.restaurant, 30_000))
    # Tuesday 2030-01-08 12:00: s4 pays the restaurant 4 x 50,000 and the cafe 50,000 -> concentration (80%).
    set_time(chain, at(2030, 1, 8, 12))
    for _ in range(4):
        paid(pay(system, s4, p.restaurant, 50_000), "concentration")
    paid(pay(system, s4, p.cafe, 50_000))
    # Tuesday 23:30: the around-the-clock program's official pays -> night.
    set_time(chain, at(2030, 1, 8, 23, 30))
    paid(pay(system, p.outsider, p.restaurant, 30_000), "night")
    # Saturday 2030-01-12 12:00: 300,000 + 250,000 to the same restaurant -> weekend, split-evidence.
    set_time(chain, at(2030, 1, 12, 12))
    paid(pay(system, s0, p.restaurant, 300_000), "weekend", "split-evidence")
    paid(pay(system, s0, p.restaurant, 250_000), "weekend", "split-evidence")
    # Monday 01-14: 480,000 without evidence -> near-evidence-threshold; Tuesday 960,000 -> near-payment-limit.
    set_time(chain, at(2030, 1, 14, 12))
    paid(pay(system, s2, p.restaurant, 480_000), "near-evidence-threshold")
    set_time(chain, at(2030, 1, 15, 12))
    paid(pay(system, s2, p.restaurant, 960_000, evidence=evidence), "near-payment-limit")
    # Wednesday 01-16: 600,000 + 500,000 with evidence, same vendor and day -> split-limit.
    set_time(chain, at(2030, 1, 16, 12))
    paid(pay(system, s3, p.restaurant, 600_000, evidence=evidence), "split-limit")
    paid(pay(system, s3, p.restaurant, 500_000, evidence=evidence), "split-limit")
    # Friday 2030-03-01, Independence Movement Day -> holiday.
    set_time(chain, at(2030, 3, 1, 12))
    paid(pay(system, s1, p.cafe, 20_000), "holiday")
    t.returnToTreasury(100_000, sender=s5)
    t.redeem(1_000_000, "KB-0001", sender=p.restaurant)

    url = f"sqlite:///{tmp_path / 'audit.sqlite'}"
    engine = store.open_database(url)
    rpc = RpcClient(getattr(chain.provider, "http_uri", None) or chain.provider.uri)
    try:
        Indexer(rpc, engine, IndexerConfig(token=t.address, start_block=0)).run()
    finally:
        rpc.close()
        engine.dispose()

    cli = load_cli()
    runner = CliRunner()
    db = str(tmp_path / "audit.sqlite")

    result = runner.invoke(cli, ["flags", "--db", db, "--format", "json"], catch_exceptions=False)
    assert result.exit_code == 0, result.output
    flags = json.loads(result.output)["flags"]
    assert {(f["rule"], f["tx_hash"]) for f in flags} == expected
    assert quiet not in {f["tx_hash"] for f in flags}
    assert {f["rule"] for f in flags} == {
        "night",
        "weekend",
        "holiday",
        "split-evidence",
        "split-limit",
        "near-evidence-threshold",
        "near-payment-limit",
        "concentration",
    }
    night = next(f for f in flags if f["rule"] == "night")
    assert night["local_time"].startswith("2030-01-08T23:30") and night["payer"] == p.outsider.address

    result = runner.invoke(cli, ["report", "--db", db, "--format", "json", "--top", "0"], catch_exceptions=False)
    assert result.exit_code == 0, result.output
    report = json.loads(result.output)
    spent = 30_000 + 4 * 50_000 + 50_000 + 30_000 + 550_000 + 480_000 + 960_000 + 1_100_000 + 20_000
    total = report["flows"][-1]
    assert total["spent"] == spent and total["returned"] == 100_000 and total["redeemed"] == 1_000_000
    assert total["allocated"] == 6 * 3_000_000 + 3 * 100_000_000 + 1_000_000
    departments = {r["key"]: r["amount"] for r in report["spend"] if r["dimension"] == "department"}
    assert departments == {"MOEF-BUDGET": spent - 30_000, "NIGHT-DESK": 30_000}
    months = {r["key"]: r["payments"] for r in report["spend"] if r["dimension"] == "month"}
    assert months == {"2030-01": 13, "2030-03": 1}
    vendors = {v["name"]: v for v in report["vendors"]}
    assert vendors["Hanok Table"]["received"] == spent - 70_000 and vendors["Hanok Table"]["redeemed"] == 1_000_000
    assert vendors["Bean Brothers"]["category"] == Category.CAFE_BAKERY.name

    table = runner.invoke(cli, ["report", "--db", db], catch_exceptions=False)
    assert table.exit_code == 0 and "Hanok Table" in table.output and "BP-2030-MOEF" in table.output

    public = runner.invoke(cli, ["public", "--db", db, "--format", "json"], catch_exceptions=False)
    cells = json.loads(public.output)["cells"]
    assert {(c["department"], c["category"], c["month"], c["payments"]) for c in cells if not c["suppressed"]} == {
        ("MOEF-BUDGET", "RESTAURANT", "2030-01", 11)
    }
    assert "0x" not in public.output

    exported = runner.invoke(cli, ["export", str(tmp_path / "export"), "--db", db], catch_exceptions=False)
    assert exported.exit_code == 0, exported.output
    manifest = json.loads((tmp_path / "export" / "manifest.json").read_text())
    assert {m["name"]: m["rows"] for m in manifest["tables"]}["payments"] == 14

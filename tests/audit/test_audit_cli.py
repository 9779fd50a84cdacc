"""`ape run audit report | flags | export | public` through click (CliRunner), on a SQLite file and on PostgreSQL:
help texts, formats, filters, and the messages for bad input. No chain is needed: these commands only read."""

from __future__ import annotations

import csv
import io
import json

import pytest
from click.testing import CliRunner
from support.audit_rows import Ledger, kst, load_cli, postgres_engine, sqlite_engine

from deposit_token.domain.categories import Category

READ_COMMANDS = ("report", "flags", "export", "public")


@pytest.fixture(scope="module")
def cli():
    return load_cli()


def fill(engine) -> dict:
    book = Ledger(engine)
    book.program(1, "BP-2030-MOEF")
    kim, lee = book.enrol("kim", 1, "MOEF-BUDGET"), book.enrol("lee", 1, "MOEF-TAX")
    shop = book.vendor("restaurant", name="Hanok Table")
    cafe = book.vendor("cafe", Category.CAFE_BAKERY, name="Bean Brothers")
    book.allocate(kim, 1, 3_000_000)
    book.allocate(lee, 1, 3_000_000)
    for day in (7, 8, 9, 10, 11):
        book.pay(kim, shop, 60_000, kst(2030, 1, day, 12))
    split = [
        book.pay(lee, cafe, 300_000, kst(2030, 1, 14, 10), category=Category.CAFE_BAKERY),
        book.pay(lee, cafe, 250_000, kst(2030, 1, 14, 11), category=Category.CAFE_BAKERY),
    ]
    weekend = book.pay(kim, shop, 40_000, kst(2030, 2, 2, 12))  # Saturday, also Seollal eve (holiday)
    book.redeem(shop, 200_000)
    book.checkpoint()
    return {"kim": kim, "lee": lee, "shop": shop, "cafe": cafe, "split": split, "weekend": weekend}


@pytest.fixture
def sqlite_db(tmp_path):
    path = tmp_path / "audit.sqlite"
    with sqlite_engine(path) as engine:
        facts = fill(engine)
    return str(path), facts


def run(cli, *args: str, ok: bool = True):
    result = CliRunner().invoke(cli, list(args), catch_exceptions=False)
    if ok:
        assert result.exit_code == 0, result.output
    return result


def test_help_of_every_command(cli):
    top = run(cli, "--help").output
    for name in READ_COMMANDS:
        assert name in top
        text = run(cli, name, "--help").output
        assert "--db" in text and "Usage:" in text
        if name != "export":
            assert "--format" in text and "--since" in text
    flags_help = run(cli, "flags", "--help").output
    for rule in (
        "night",
        "weekend",
        "holiday",
        "split-evidence",
        "split-limit",
        "near-evidence-threshold",
        "near-payment-limit",
        "concentration",
    ):
        assert rule in flags_help


def test_report_formats(cli, sqlite_db):
    db, facts = sqlite_db
    table = run(cli, "report", "--db", db).output
    for text in (
        "Spend by department",
        "MOEF-BUDGET",
        "Hanok Table",
        "Allocated vs spent",
        "Top vendors",
        "all programs",
        "database indexed to block",
    ):
        assert text in table
    document = json.loads(run(cli, "report", "--db", db, "--format", "json").output)
    assert set(document) == {"meta", "spend", "flows", "vendors", "approvals"}
    assert document["approvals"] == []  # no Safe holds a role in this chain
    total = document["flows"][-1]
    assert (total["allocated"], total["spent"], total["redeemed"]) == (6_000_000, 890_000, 200_000)
    assert document["vendors"][0]["vendor"] == facts["cafe"] and document["vendors"][0]["received"] == 550_000
    rows = list(
        csv.DictReader(
            io.StringIO(run(cli, "report", "--db", db, "--section", "spend", "--by", "month", "--format", "csv").output)
        )
    )
    assert [(r["key"], int(r["payments"]), int(r["amount"])) for r in rows] == [
        ("2030-01", 7, 850_000),
        ("2030-02", 1, 40_000),
    ]
    filtered = json.loads(run(cli, "report", "--db", db, "--since", "2030-02", "--format", "json").output)
    assert {r["key"] for r in filtered["spend"] if r["dimension"] == "month"} == {"2030-02"}
    assert filtered["meta"]["filters"]["since"] == "2030-02"


def test_flags_formats(cli, sqlite_db):
    db, facts = sqlite_db
    document = json.loads(run(cli, "flags", "--db", db, "--format", "json").output)
    got = {(f["rule"], f["tx_hash"]) for f in document["flags"]}
    assert {("split-evidence", p["tx_hash"]) for p in facts["split"]} <= got
    assert ("weekend", facts["weekend"]["tx_hash"]) in got and ("holiday", facts["weekend"]["tx_hash"]) in got
    assert document["meta"]["counts"]["split-evidence"] == 2
    only = list(
        csv.DictReader(io.StringIO(run(cli, "flags", "--db", db, "--rule", "weekend", "--format", "csv").output))
    )
    assert [(r["rule"], r["tx_hash"], r["payer"]) for r in only] == [
        ("weekend", facts["weekend"]["tx_hash"], facts["kim"])
    ]
    table = run(cli, "flags", "--db", db).output
    assert "split-evidence" in table and facts["split"][0]["tx_hash"] in table and "flag(s) on" in table
    failing = run(cli, "flags", "--db", db, "--fail-on-flags", ok=False)
    assert failing.exit_code == 2
    assert run(cli, "flags", "--db", db, "--until", "2029-12", "--fail-on-flags").exit_code == 0


def test_public_has_no_addresses(cli, sqlite_db):
    db, facts = sqlite_db
    output = run(cli, "public", "--db", db, "--format", "json").output
    document = json.loads(output)
    cells = {(c["department"], c["category"], c["month"]): c for c in document["cells"]}
    assert cells[("MOEF-BUDGET", "RESTAURANT", "2030-01")]["payments"] == 5
    assert cells[("MOEF-TAX", "CAFE_BAKERY", "2030-01")]["suppressed"] is True
    assert cells[("MOEF-TAX", "CAFE_BAKERY", "2030-01")]["amount"] is None
    assert "0x" not in output and all(address not in output for address in (facts["kim"], facts["shop"]))
    rows = list(csv.DictReader(io.StringIO(run(cli, "public", "--db", db, "--format", "csv").output)))
    assert list(rows[0]) == ["month", "department", "category", "payments", "amount", "suppressed"]
    hidden = next(r for r in rows if r["department"] == "MOEF-TAX")
    assert (hidden["payments"], hidden["amount"], hidden["suppressed"]) == ("", "", "true")


def test_export(cli, sqlite_db, tmp_path):
    db, _ = sqlite_db
    out = tmp_path / "export"
    text = run(cli, "export", str(out), "--db", db, "--format", "jsonl").output
    assert "payments.jsonl" in text and "manifest.json" in text
    manifest = json.loads((out / "manifest.json").read_text())
    assert {t["name"]: t["rows"] for t in manifest["tables"]}["payments"] == 8
    again = run(cli, "export", str(out), "--db", db, "--format", "jsonl", ok=False)
    assert again.exit_code == 1 and "already holds an export" in again.output
    run(cli, "export", str(out), "--db", db, "--format", "jsonl", "--force")
    run(cli, "export", str(tmp_path / "csv"), "--db", db, "--table", "payments", "--table", "enrolments")
    assert sorted(p.name for p in (tmp_path / "csv").iterdir()) == ["enrolments.csv", "manifest.json", "payments.csv"]
    bad = run(cli, "export", str(tmp_path / "x"), "--db", db, "--table", "nope", ok=False)
    assert bad.exit_code == 1 and "no table(s) nope" in bad.output


@pytest.mark.parametrize("command", READ_COMMANDS)
def test_missing_database(cli, tmp_path, command):
    missing = tmp_path / "nothing-here.sqlite"
    extra = [str(tmp_path / "out")] if command == "export" else []
    result = run(cli, command, *extra, "--db", str(missing), ok=False)
    assert result.exit_code == 1
    assert f"no audit database at {missing}" in result.output and "ape run audit index" in result.output
    assert not missing.exists()  # a reader never creates the database


def test_bad_input(cli, sqlite_db, tmp_path):
    db, _ = sqlite_db
    cases = [
        (["report", "--db", db, "--format", "xml"], "'xml' is not one of"),
        (["flags", "--db", db, "--format", "yaml"], "'yaml' is not one of"),
        (["public", "--db", db, "--format", "pdf"], "'pdf' is not one of"),
        (["export", str(tmp_path / "e"), "--db", db, "--format", "parquet"], "'parquet' is not one of"),
        (["report", "--db", db, "--format", "csv"], "CSV holds one table"),
        (["report", "--db", db, "--since", "2030-13"], "is not a month"),
        (["report", "--db", db, "--since", "2030-03", "--until", "2030-01"], "is after --until"),
        (["flags", "--db", db, "--rule", "nightly"], "'nightly' is not one of"),
        (["flags", "--db", db, "--near-pct", "0"], "--near-pct"),
        (["public", "--db", db, "--min-count", "2"], "--min-count"),
        (["report", "--db", "mysql://root@localhost/audit"], "unsupported database"),
        (["report", "--db", "postgresql://nobody@127.0.0.1:1/none"], "cannot open the audit database"),
    ]
    for args, message in cases:
        result = run(cli, *args, ok=False)
        assert result.exit_code in (1, 2), (args, result.output)
        assert message in result.output, (args, result.output)
        assert "Traceback" not in result.output
    empty = tmp_path / "empty.sqlite"
    empty.write_bytes(b"")
    result = run(cli, "report", "--db", str(empty), ok=False)
    assert result.exit_code == 1 and "no audit index" in result.output


def test_postgresql(cli, pg_url):
    with postgres_engine(pg_url) as (engine, sqlalchemy_url):
        facts = fill(engine)
        # what a user types: a plain postgresql:// URL (the CLI picks the psycopg driver)
        url = sqlalchemy_url.replace("postgresql+psycopg://", "postgresql://", 1)
        report = json.loads(run(cli, "report", "--db", url, "--format", "json").output)
        assert report["flows"][-1]["spent"] == 890_000
        flags = json.loads(run(cli, "flags", "--db", url, "--format", "json", "--rule", "split-evidence").output)
        assert {f["tx_hash"] for f in flags["flags"]} == {p["tx_hash"] for p in facts["split"]}
        public = json.loads(run(cli, "public", "--db", url, "--format", "json").output)
        assert any(c["payments"] == 5 for c in public["cells"])

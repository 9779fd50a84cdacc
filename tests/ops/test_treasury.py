"""`ape run treasury ...` end to end against the test session's Anvil (no mocked chain).

Most commands run in-process through click's CliRunner, reaching the session's Anvil by its URI (an ad-hoc
network: accounts are given as TEST::n), so their effects are undone by ape's per-test isolation. One runs as
a subprocess on ``ethereum:local:foundry`` (APE_FOUNDRY_HOST points ape-foundry at the session's Anvil) to show
the default test account of a development network. Refusals must name the problem and send nothing: no block
is produced and no balance changes.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from datetime import timedelta
from pathlib import Path

import pytest
from click.testing import CliRunner
from support.system import PROGRAM_END, set_time, ts
from support.treasury import ADMIN, COMPLIANCE, ISSUER, MANAGER, OUTSIDER, REGISTRAR, SCRIPT, fresh

from deposit_token.chain import deployment
from deposit_token.domain.categories import Category
from deposit_token.paths import ROOT


def write(path: Path, text: str) -> Path:
    path.write_text(text)
    return path


# --- help and bad input -----------------------------------------------------------------------------------------

COMMANDS = [
    ["issue"],
    ["allowance"],
    ["treasury", "register"],
    ["program", "create"],
    ["program", "update"],
    ["vendor", "register"],
    ["vendor", "suspend"],
    ["vendor", "reactivate"],
    ["enrol"],
    ["allocate"],
    ["disburse"],
    ["freeze"],
    ["unfreeze"],
    ["clawback"],
    ["sweep"],
    ["pause"],
    ["unpause"],
    ["role", "grant"],
    ["role", "revoke"],
    ["role", "handover", "begin"],
    ["role", "handover", "accept"],
    ["role", "handover", "cancel"],
]  # the listings (read-only, no --account) are checked in test_treasury_roles.py


@pytest.mark.parametrize("command", COMMANDS, ids=" ".join)
def test_every_command_has_help_with_network_and_account(command):
    result = CliRunner().invoke(SCRIPT.cli, [*command, "--help"])
    assert result.exit_code == 0, result.output
    assert "--network" in result.output and "--account" in result.output
    assert "Alias of the ape account" in result.output


def test_unknown_alias_bad_address_and_bad_amount_are_clear(cli, system):
    p = system.people

    def balance():
        return system.token.balanceOf(p.treasury)

    out = cli.refused("issue", "100", "--to", p.treasury.address, account="nobody", code=2, balances=[balance])
    assert "Account with alias 'nobody' not found" in out
    out = cli.refused("issue", "100", "--to", "treasury-office", account=ISSUER, code=2, balances=[balance])
    assert "'treasury-office' is neither an address" in out and "ape accounts list" in out
    out = cli.refused(
        "issue",
        "100",
        "--to",
        "0x" + "9965507d1a55bcc2695c58ba16fb37d819b0a4DC",
        account=ISSUER,
        code=2,
        balances=[balance],
    )
    assert "wrong EIP-55 checksum" in out
    out = cli.refused("issue", "100", "--to", "0x1234", account=ISSUER, code=2)
    assert "malformed" in out
    for amount, problem in (
        ("-5", "is negative"),
        ("1.5", "not a whole number"),
        ("0", "is zero"),
        ("lots", "not a whole number"),
    ):
        out = cli.refused(
            "issue",
            "--to",
            p.treasury.address,
            "--network",
            cli.uri,
            "--",
            amount,
            account=ISSUER,
            code=2,
            balances=[balance],
            network=False,
        )
        assert problem in out, (amount, out)


def test_missing_deployment_is_named(cli, system, tmp_path, monkeypatch):
    monkeypatch.setenv(deployment.DEPLOYMENTS_ENV, str(tmp_path / "nowhere"))
    out = cli.refused("pause", account=COMPLIANCE)
    assert "no deployment for network" in out and "ape run deploy" in out


def test_a_missing_role_is_a_sentence_and_nothing_is_sent(cli, system):
    p = system.people
    out = cli.refused("pause", account=OUTSIDER)
    assert f"{p.outsider.address} does not hold COMPLIANCE_ROLE" in out
    out = cli.refused(
        "issue",
        "100",
        "--to",
        p.treasury.address,
        account=OUTSIDER,
        balances=[lambda: system.token.balanceOf(p.treasury)],
    )
    assert "does not hold ISSUER_ROLE" in out


# --- issuance -----------------------------------------------------------------------------------------------------


def test_allowance_and_issue_within_it(cli, system):
    t, p = system.token, system.people
    new_treasury = fresh("treasury-3")
    cli.ok("treasury", "register", new_treasury, account=ADMIN)
    assert t.accountOf(new_treasury).kind == 1
    out = cli.refused("treasury", "register", new_treasury, account=ADMIN)
    assert "already registered as a treasury" in out

    cli.ok("allowance", p.issuer.address, "1,000,000", account=ADMIN)
    assert t.mintAllowance(p.issuer) == 1_000_000
    result = cli.ok("issue", "400000", "--to", new_treasury, account=ISSUER)
    assert t.balanceOf(new_treasury) == 400_000 and t.mintAllowance(p.issuer) == 600_000
    assert "Issued 400,000 KRW" in result.output and "600,000 KRW" in result.output

    out = cli.refused(
        "issue",
        "600001",
        "--to",
        new_treasury,
        account=ISSUER,
        balances=[lambda: t.balanceOf(new_treasury), lambda: t.mintAllowance(p.issuer)],
    )
    assert f"issuer {p.issuer.address} may mint 600,000 KRW more, not 600,001 KRW" in out
    out = cli.refused("issue", "5", "--to", p.restaurant.address, account=ISSUER)
    assert f"{p.restaurant.address} is a vendor, not a treasury" in out
    out = cli.refused("issue", "5", "--to", fresh("nobody"), account=ISSUER)
    assert "unknown treasury" in out and "is not registered" in out


# --- programs -------------------------------------------------------------------------------------------------------


def test_program_create_from_preset_update_from_file_and_list(cli, system, tmp_path):
    t, p = system.token, system.people
    result = cli.ok(
        "program",
        "create",
        "--preset",
        "business-promotion",
        "--name",
        "BP-2030-MOIS",
        "--treasury",
        p.treasury2.address,
        "--start",
        "2030-01-01",
        "--end",
        "2031-01-01",
        "--working-hours",
        account=MANAGER,
    )
    assert "Program #3 created" in result.output
    assert "2030-01-01 00:00 KST" in result.output and "2031-01-01 00:00 KST" in result.output  # dates, not unix
    assert t.programName(3) == "BP-2030-MOIS" and t.programConfig(3).treasury == p.treasury2.address
    assert t.programRules(3).start == ts(PROGRAM_END.replace(month=1, day=1))

    spec = write(
        tmp_path / "program.yaml",
        f"""
name: BP-2030-MOIS
treasury: {p.treasury2.address}
start: 2030-01-01
end: 2030-12-01T00:00:00+09:00
hours: {{Mon: "08-20", Tue: "08-20", Wed: "08-20", Thu: "08-20", Fri: [8, 20], Sat: closed}}
per_payment_limit: 300000
evidence_threshold: 500000
caps: {{RESTAURANT: 1000000, cafe_bakery: null, 4: 2000000}}
utc_offset_minutes: 540
""",
    )
    result = cli.ok("program", "update", "BP-2030-MOIS", "--file", str(spec), account=MANAGER)
    assert "Program #3 updated (version 2)" in result.output
    rules = t.programRules(3)
    assert rules.version == 2 and rules.end == ts(PROGRAM_END.replace(month=12))
    assert t.programConfig(3).perPaymentLimit == 300_000
    assert t.categoryCap(3, int(Category.CAFE_BAKERY)) == 2**48 - 1
    listing = " ".join(cli.ok("program", "list").output.split())
    assert "BP-2030-MOEF" in listing and "EV-2030-MOE" in listing and "BP-2030-MOIS" in listing


def test_program_specs_are_checked_completely_before_sending(cli, system, tmp_path):
    p = system.people
    bad = write(
        tmp_path / "bad.yaml",
        f"""
name: BP-BAD
treasury: {p.treasury2.address}
start: 2031-01-01
end: 2030-01-01
hours: [[9, 18], [20, 18], [9, 25], [9, 18], [9, 18], closed, closed]
per_payment_limit: -5
evidence_threshold: 500000
caps: {{RESTAURANT: 1000, CASINO: 5}}
colour: blue
""",
    )
    out = cli.refused("program", "create", "--file", str(bad), account=MANAGER)
    for problem in (
        "unknown field(s) colour",
        "unknown merchant category 'CASINO'",
        "Tue: 20-18",
        "Wed: 9-25",
        "per_payment_limit -5 is negative",
        "start (2031-01-01 00:00 KST) must be before end (2030-01-01 00:00 KST)",
    ):
        assert problem in out, problem
    assert system.token.programCount() == 2

    out = cli.refused(
        "program",
        "create",
        "--preset",
        "ev-charger",
        "--name",
        "EV-X",
        "--treasury",
        p.treasury2.address,
        "--start",
        "2031-01-01",
        "--end",
        "2030-01-01",
        account=MANAGER,
    )
    assert "must be before end" in out
    out = cli.refused(
        "program",
        "create",
        "--preset",
        "ev-charger",
        "--name",
        "EV-X",
        "--treasury",
        p.restaurant.address,
        "--start",
        "2030-01-01",
        "--end",
        "2031-01-01",
        account=MANAGER,
    )
    assert f"treasury {p.restaurant.address} is a vendor, not a registered treasury" in out
    out = cli.refused(
        "program",
        "create",
        "--preset",
        "ev-charger",
        "--name",
        "EV-X",
        "--treasury",
        p.treasury2.address,
        "--start",
        "next week",
        "--end",
        "2031-01-01",
        account=MANAGER,
    )
    assert "start 'next week' is neither unix seconds nor an ISO date" in out
    broken = write(tmp_path / "broken.json", "{ not json")
    out = cli.refused("program", "update", "1", "--file", str(broken), account=MANAGER)
    assert "is not valid JSON" in out
    good = write(
        tmp_path / "good.json",
        json.dumps(
            {
                "name": "X",
                "treasury": p.treasury2.address,
                "start": 1,
                "end": 2,
                "hours": ["09-18"] * 7,
                "per_payment_limit": 1,
                "evidence_threshold": 1,
                "caps": {"RESTAURANT": 5},
            }
        ),
    )
    out = cli.refused("program", "update", "9", "--file", str(good), account=MANAGER)
    assert "there is no program #9" in out
    out = cli.refused("program", "create", "--preset", "ev-charger", "--file", str(good), account=MANAGER, code=2)
    assert "either --preset" in out


# --- vendors ----------------------------------------------------------------------------------------------------------


def test_vendors_single_and_from_csv(cli, system, tmp_path):
    t, p = system.token, system.people
    one = fresh("vendor-one")
    result = cli.ok("vendor", "register", one, "--category", "restaurant", "--name", "Gukbap House", account=REGISTRAR)
    assert "Vendor registered" in result.output and t.accountOf(one).category == int(Category.RESTAURANT)

    vendors = [fresh(f"vendor-{i}") for i in range(3)]
    good = write(
        tmp_path / "vendors.csv",
        "address,category,name\n"
        f"{vendors[0]},CAFE_BAKERY,Morning Bakery\n{vendors[1]},7,Paper & Pens\n"
        f'{vendors[2].lower()},karaoke,"Star, Karaoke"\n',
    )
    result = cli.ok("vendor", "register", "--csv", str(good), account=REGISTRAR)
    assert "3 of 3 transactions succeeded" in result.output
    assert [t.accountOf(v).category for v in vendors] == [2, 7, int(Category.KARAOKE)]

    result = cli.ok("vendor", "suspend", "--csv", str(good), "--reason", "licence check", account=COMPLIANCE)
    assert all(t.accountOf(v).suspended for v in vendors)
    cli.ok("vendor", "reactivate", vendors[1], "--reason", "licence renewed", account=COMPLIANCE)
    assert not t.accountOf(vendors[1]).suspended and t.accountOf(vendors[0]).suspended
    cli.ok("vendor", "reactivate", "--csv", str(good), "--reason", "all clear", account=COMPLIANCE)
    assert not any(t.accountOf(v).suspended for v in vendors)

    out = cli.refused("vendor", "suspend", fresh("ghost"), "--reason", "x", account=COMPLIANCE)
    assert f"unknown vendor: {fresh('ghost')} is not registered" in out
    out = cli.refused("vendor", "suspend", p.spenders[0].address, "--reason", "x", account=COMPLIANCE)
    assert "is a spender, not a vendor" in out
    out = cli.refused(
        "vendor", "register", fresh("x"), "--category", "CASINO", "--name", "x", account=REGISTRAR, code=2
    )
    assert "unknown merchant category 'CASINO'" in out


def test_a_bad_vendor_csv_reports_every_row_and_sends_nothing(cli, system, tmp_path):
    p = system.people
    new = [fresh(f"v-{i}") for i in range(3)]
    bad = write(
        tmp_path / "bad_vendors.csv",
        "address,category,name\n"
        f"{new[0]},RESTAURANT,Good One\n"  # 2 fine
        "0x1234,RESTAURANT,Short\n"  # 3 malformed
        f"{new[1]},CASINO,Lucky\n"  # 4 unknown category
        f"{new[2]},RESTAURANT,\n"  # 5 empty name
        f"{new[0]},CAFE_BAKERY,Again\n"  # 6 duplicate of 2
        f"{p.spenders[0].address},RESTAURANT,Official\n"  # 7 a spender
        "just,two\n"  # 8 wrong columns? (2 columns are allowed: name missing)
        f"{new[1]},RESTAURANT,Fine,extra\n",
    )  # 9 too many columns
    out = cli.refused("vendor", "register", "--csv", str(bad), account=REGISTRAR)
    for line, problem in (
        (3, "malformed"),
        (4, "unknown merchant category 'CASINO'"),
        (5, "name is empty"),
        (6, "duplicate address (also on line 2)"),
        (7, "already registered as a spender"),
        (8, "malformed"),
        (9, "found 4"),
    ):
        assert f"line {line}" in out and problem in out, (line, problem, out)
    assert "nothing was sent" in out
    assert system.token.accountOf(new[0]).kind == 0


# --- spenders, allocation -------------------------------------------------------------------------------------------


def test_enrol_single_and_from_csv(cli, system, tmp_path):
    t, p = system.token, system.people
    single = fresh("official-single")
    result = cli.ok("enrol", single, "--program", "BP-2030-MOEF", "--department", "MOEF-TAX", account=MANAGER)
    assert "Spender enrolled" in result.output
    assert t.accountOf(single).programId == 1 and t.departmentOf(single) == b"MOEF-TAX".ljust(32, b"\0")

    people = [fresh(f"official-{i}") for i in range(5)]
    rows = [f"{a},{'1' if i < 3 else 'EV-2030-MOE'},DEPT-{i}" for i, a in enumerate(people)]
    good = write(tmp_path / "officials.csv", "address,program,department\n" + "\n".join(rows) + "\n")
    result = cli.ok("enrol", "--csv", str(good), account=MANAGER)
    assert "2 of 2 transactions succeeded" in result.output  # one per program
    assert [t.accountOf(a).programId for a in people] == [1, 1, 1, 2, 2]

    bad = write(
        tmp_path / "bad_officials.csv",
        "address,program,department\n"
        f"{fresh('ok')},1,OK\n"
        f"{fresh('a')},99,X\n"
        f"{fresh('b')},1,{'D' * 33}\n"
        f"{p.restaurant.address},1,VENDOR\n"
        f"{p.spenders[0].address},2,MOVE\n"
        f"{fresh('ok')},1,AGAIN\n",
    )
    out = cli.refused("enrol", "--csv", str(bad), account=MANAGER)
    for line, problem in (
        (3, "unknown program '99'"),
        (4, "longer than 32 bytes"),
        (5, "is a vendor; only new addresses or spenders can be enrolled"),
        (6, "already enrolled in program #1, not #2"),
        (7, "duplicate address (also on line 2)"),
    ):
        assert f"line {line}" in out and problem in out, (line, problem, out)
    assert t.accountOf(fresh("ok")).kind == 0


def test_allocate_once_per_reference(cli, system):
    t, p = system.token, system.people
    spender = p.spenders[0]
    before, treasury = t.balanceOf(spender), t.balanceOf(p.treasury)
    result = cli.ok(
        "allocate", spender.address, "5000", "--program", "BP-2030-MOEF", "--ref", "DEC-2030-001", account=MANAGER
    )
    assert "Allocated 5,000 KRW" in result.output
    assert t.balanceOf(spender) == before + 5000 and t.balanceOf(p.treasury) == treasury - 5000
    out = cli.refused(
        "allocate",
        spender.address,
        "5000",
        "--program",
        "1",
        "--ref",
        "DEC-2030-001",
        account=MANAGER,
        balances=[lambda: t.balanceOf(spender)],
    )
    assert "has already been applied; nobody is paid twice" in out
    out = cli.refused(
        "allocate", p.ev_recipients[0].address, "5000", "--program", "1", "--ref", "DEC-2030-002", account=MANAGER
    )
    assert f"spender {p.ev_recipients[0].address} is enrolled in program 'EV-2030-MOE', not 'BP-2030-MOEF'" in out
    out = cli.refused("allocate", spender.address, "5000", "--program", "NO-SUCH", "--ref", "x", account=MANAGER)
    assert "there is no program named 'NO-SUCH'" in out


# --- compliance ---------------------------------------------------------------------------------------------------


def test_freeze_clawback_unfreeze(cli, system):
    t, p = system.token, system.people
    spender = p.spenders[1]
    balance, treasury = t.balanceOf(spender), t.balanceOf(p.treasury)
    cli.ok("freeze", spender.address, "--reason", "lost phone", account=COMPLIANCE)
    assert t.accountOf(spender).frozen
    result = cli.ok("clawback", spender.address, "250000", "--reason", "misuse under review", account=COMPLIANCE)
    assert "Clawed back 250,000 KRW" in result.output
    assert t.balanceOf(spender) == balance - 250_000 and t.balanceOf(p.treasury) == treasury + 250_000
    cli.ok("unfreeze", spender.address, "--reason", "phone found", account=COMPLIANCE)
    assert not t.accountOf(spender).frozen

    out = cli.refused("clawback", spender.address, "1", account=COMPLIANCE, code=2)
    assert "Missing option '--reason'" in out
    out = cli.refused(
        "clawback",
        spender.address,
        str(balance),
        "--reason",
        "x",
        account=COMPLIANCE,
        balances=[lambda: t.balanceOf(spender)],
    )
    assert f"{spender.address} has {balance - 250_000:,} KRW, {balance:,} KRW needed" in out
    out = cli.refused("freeze", fresh("ghost"), "--reason", "x", account=COMPLIANCE)
    assert "is not registered" in out


def test_pause_and_unpause_token_and_program(cli, system):
    t = system.token
    cli.ok("pause", "--program", "EV-2030-MOE", account=COMPLIANCE)
    assert t.programPaused(2) and not t.paused()
    cli.ok("unpause", "--program", "2", account=COMPLIANCE)
    assert not t.programPaused(2)
    result = cli.ok("pause", account=COMPLIANCE)
    assert "Token paused" in result.output and t.paused()
    out = cli.refused("issue", "5", "--to", system.people.treasury.address, account=ISSUER)
    assert "the token is paused by compliance" in out
    cli.ok("unpause", account=COMPLIANCE)
    assert not t.paused()


def test_sweep_expired_balances_by_program_and_from_csv(cli, system, chain, tmp_path):
    t, p = system.token, system.people
    out = cli.refused("sweep", "--program", "1", account=OUTSIDER)
    assert "'BP-2030-MOEF' (#1) runs until 2030-07-01 00:00 KST" in out

    set_time(chain, PROGRAM_END + timedelta(days=1))
    chain.mine()
    balances = sum(t.balanceOf(s) for s in p.spenders)
    treasury = t.balanceOf(p.treasury)
    result = cli.ok("sweep", "--program", "BP-2030-MOEF", "--from-block", "0", account=OUTSIDER)
    assert f"{len(p.spenders)} spender(s) with a balance, {balances:,} KRW to sweep" in result.output
    assert all(t.balanceOf(s) == 0 for s in p.spenders)
    assert t.balanceOf(p.treasury) == treasury + balances

    listed = write(tmp_path / "ev.csv", "address\n" + "\n".join(a.address for a in p.ev_recipients) + "\n")
    cli.ok("sweep", "--csv", str(listed), account=OUTSIDER)
    assert all(t.balanceOf(a) == 0 for a in p.ev_recipients)
    bad = write(tmp_path / "bad.csv", f"address\n{p.restaurant.address}\n0xnope\n")
    out = cli.refused("sweep", "--csv", str(bad), account=OUTSIDER)
    assert "line 2" in out and "not a spender (the address is vendor)" in out and "line 3" in out


# --- as an operator runs it ----------------------------------------------------------------------------------------


def ape_run(*args: str, env: dict[str, str], timeout: int = 180) -> subprocess.CompletedProcess:
    ape = Path(sys.executable).with_name("ape")
    return subprocess.run(
        [str(ape if ape.exists() else "ape"), "run", "treasury", *args],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=timeout,
    )


def test_subprocess_on_a_dev_network_uses_the_test_account_holding_the_role(cli, system, networks, tmp_path):
    env = dict(
        os.environ,
        APE_FOUNDRY_HOST=networks.provider.uri,
        APE_DATA_FOLDER=str(tmp_path / "ape"),
        **{deployment.DEPLOYMENTS_ENV: str(cli.deployments)},
    )
    result = ape_run("pause", "--program", "1", "--network", "ethereum:local:foundry", env=env)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "Program 'BP-2030-MOEF' (#1) paused" in result.stdout
    assert system.token.programPaused(1)
    tx = re.search(r"transaction\s*\S\s*(0x[0-9a-f]{64})", result.stdout).group(1)
    assert cli.chain.get_receipt(tx).sender == system.people.compliance.address  # TEST::4, found by its role

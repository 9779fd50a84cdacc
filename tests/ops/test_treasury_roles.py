"""`ape run treasury role ...` (grant, revoke, list, the admin's two-step handover) and the listings
(`vendors`, `spenders`, `programs`, `treasuries`, `roles`) end to end against the test session's Anvil.

Commands run in-process through click's CliRunner exactly as tests/test_treasury.py runs them (its `cli`
fixture: the session's Anvil by its URI, accounts as TEST::n). Refusals must name the problem in one sentence,
exit non-zero, produce no block and change no role. Chain time is set by the test, never taken from the clock.
"""

from __future__ import annotations

import csv
import io
import json
import re
from datetime import timedelta

import pytest
from eth_utils import keccak
from support.system import MONDAY_10, PROGRAM_END, set_time
from support.treasury import ADMIN, COMPLIANCE, MANAGER, OUTSIDER, SCRIPT, Cli, fresh

from deposit_token.chain import deployment
from deposit_token.chain.contracts import deploy_system

ISSUER_ID = keccak(text="ISSUER_ROLE")
COMPLIANCE_ID = keccak(text="COMPLIANCE_ROLE")
ADMIN_ID = b"\0" * 32
DELAY = 3 * 86400
KST_MOMENT = re.compile(r"\d{4}-\d{2}-\d{2} \d{2}:\d{2} KST")


def rows_of(cli: Cli, *args: str) -> list[dict]:
    """The rows of a listing, read back from its JSON output (which must be nothing but JSON)."""
    return json.loads(cli.ok(*args, "--format", "json").output)


def flat(result) -> str:
    return " ".join(result.output.split())


# --- grant, revoke, list ----------------------------------------------------------------------------------------


def test_grant_and_revoke_by_readable_or_contract_name(cli, system):
    t = system.token
    newcomer = fresh("new-issuer")
    result = cli.ok("role", "grant", "issuer", newcomer, account=ADMIN)
    assert "Role granted" in result.output and "issuer (ISSUER_ROLE)" in result.output
    assert t.hasRole(ISSUER_ID, newcomer)
    holders = rows_of(cli, "roles")
    assert {"role": "ISSUER_ROLE", "account": newcomer} in [{k: r[k] for k in ("role", "account")} for r in holders]

    height = cli.chain.blocks.height
    again = cli.ok("role", "grant", "ISSUER_ROLE", newcomer, account=ADMIN)
    assert f"{newcomer} already holds issuer (ISSUER_ROLE); nothing was sent" in flat(again)
    assert cli.chain.blocks.height == height

    cli.ok("role", "grant", "program-manager", newcomer, account=ADMIN)
    cli.ok("role", "revoke", "ISSUER_ROLE", newcomer, account=ADMIN)
    assert not t.hasRole(ISSUER_ID, newcomer) and t.hasRole(keccak(text="PROGRAM_MANAGER_ROLE"), newcomer)
    listed = {(r["role"], r["account"]) for r in rows_of(cli, "role", "list")}
    assert ("ISSUER_ROLE", newcomer) not in listed and ("PROGRAM_MANAGER_ROLE", newcomer) in listed
    gone = cli.ok("role", "revoke", "issuer", newcomer, account=ADMIN)
    assert "does not hold issuer (ISSUER_ROLE); nothing was sent" in flat(gone)


def test_an_outsider_cannot_grant_revoke_or_hand_over(cli, system):
    t, p = system.token, system.people
    target = fresh("would-be-officer")
    for args in (
        ("role", "grant", "compliance", target),
        ("role", "revoke", "compliance", p.compliance.address),
        ("role", "handover", "begin", target),
        ("role", "handover", "cancel"),
    ):
        out = cli.refused(*args, account=OUTSIDER)
        assert f"{p.outsider.address} does not hold DEFAULT_ADMIN_ROLE" in out, (args, out)
    # a role holder other than the admin is an outsider here too
    out = cli.refused("role", "grant", "issuer", target, account=MANAGER)
    assert f"{p.manager.address} does not hold DEFAULT_ADMIN_ROLE" in out
    assert not t.hasRole(COMPLIANCE_ID, target) and t.hasRole(COMPLIANCE_ID, p.compliance)
    assert t.pendingDefaultAdmin()[0] == "0x" + "00" * 20 and t.defaultAdmin() == p.admin.address


def test_unknown_role_and_the_admin_role_are_refused_with_a_sentence(cli, system):
    target = fresh("someone")
    out = cli.refused("role", "grant", "auditor", target, account=ADMIN, code=2)
    assert "unknown role 'auditor'" in out
    for name in ("admin", "issuer", "program-manager", "vendor-registrar", "compliance", "ISSUER_ROLE"):
        assert name in out
    for verb, name, done in (
        ("grant", "admin", "granted"),
        ("grant", "DEFAULT_ADMIN_ROLE", "granted"),
        ("revoke", "default-admin", "revoked"),
    ):
        out = cli.refused("role", verb, name, target, account=ADMIN)
        assert f"the admin role cannot be {done}" in out and "role handover begin NEW_ADMIN" in out, out
    out = cli.refused("role", "grant", "issuer", "0x" + "00" * 20, account=ADMIN, code=2)
    assert "zero address" in out
    assert not system.token.hasRole(ADMIN_ID, target)


def test_role_listing_in_every_format(cli, system):
    p = system.people
    table = flat(cli.ok("roles"))
    for label, who in (
        ("admin (DEFAULT_ADMIN_ROLE)", p.admin),
        ("issuer (ISSUER_ROLE)", p.issuer),
        ("program-manager (PROGRAM_MANAGER_ROLE)", p.manager),
        ("vendor-registrar (VENDOR_REGISTRAR_ROLE)", p.registrar),
        ("compliance (COMPLIANCE_ROLE)", p.compliance),
    ):
        assert label in table and who.address in table
    assert KST_MOMENT.search(table)
    assert f"admin: {p.admin.address}; no handover pending" in table

    rows = list(csv.DictReader(io.StringIO(cli.ok("roles", "--format", "csv").output)))
    assert [r["role"] for r in rows] == [
        "DEFAULT_ADMIN_ROLE",
        "ISSUER_ROLE",
        "PROGRAM_MANAGER_ROLE",
        "VENDOR_REGISTRAR_ROLE",
        "COMPLIANCE_ROLE",
    ]
    assert rows[1] == {
        "role": "ISSUER_ROLE",
        "account": p.issuer.address,
        "granted": rows[1]["granted"],
        "granted_by": p.admin.address,
    }
    assert rows[1]["granted"].endswith("+09:00")

    cli.ok("role", "revoke", "vendor-registrar", p.registrar.address, account=ADMIN)
    assert "nobody holds: vendor-registrar (VENDOR_REGISTRAR_ROLE)" in flat(cli.ok("role", "list"))


# --- the admin handover -------------------------------------------------------------------------------------------


@pytest.fixture
def delayed(cli, accounts, chain):
    """A second token whose admin (TEST::30) hands over only after a 3-day delay; `cli` points at it."""
    admin = accounts[30]
    set_time(chain, MONDAY_10)
    deployed = deploy_system(admin, admin_transfer_delay=DELAY)
    deployment.write_record(
        deployment.record_path(cli.uri, cli.deployments),
        {
            "token": deployed.token.address,
            "chain_id": chain.chain_id,
            "network": cli.uri,
            "block": {"number": deployed.block},
        },
    )
    return deployed.token


def test_handover_begin_show_accept_after_the_delay(cli, delayed, accounts, chain):
    token, old, new = delayed, accounts[30], accounts[31]
    result = cli.ok("role", "handover", "begin", new.address, account="TEST::30")
    assert "Admin handover begun" in result.output and new.address in result.output
    schedule = int(token.pendingDefaultAdmin()[1])
    assert token.pendingDefaultAdmin()[0] == new.address and token.defaultAdmin() == old.address

    shown = json.loads(cli.ok("role", "handover", "show", "--format", "json").output)[0]
    assert shown["admin"] == old.address and shown["pending_admin"] == new.address
    assert shown["delay_seconds"] == DELAY and shown["accept_after"].endswith("+09:00")
    table = flat(cli.ok("role", "handover", "show"))
    assert "3 days" in table and f"after {_kst(schedule)}" in table

    out = cli.refused("role", "handover", "accept", account="TEST::31")
    assert f"can be accepted only after {_kst(schedule)}" in out and "to go" in out
    out = cli.refused("role", "handover", "accept", account="TEST::32")
    assert f"only the pending admin {new.address} can accept the handover, not {accounts[32].address}" in out

    set_time(chain, schedule + 60)  # three days pass on the chain
    chain.mine()
    result = cli.ok("role", "handover", "accept", account="TEST::31")
    assert "Admin handover accepted" in result.output
    assert token.defaultAdmin() == new.address and not token.hasRole(ADMIN_ID, old)
    out = cli.refused("role", "grant", "issuer", fresh("x"), account="TEST::30")
    assert f"{old.address} does not hold DEFAULT_ADMIN_ROLE" in out
    cli.ok("role", "grant", "issuer", fresh("x"), account="TEST::31")
    admins = [r["account"] for r in rows_of(cli, "roles") if r["role"] == "DEFAULT_ADMIN_ROLE"]
    assert admins == [new.address]


def test_handover_cancel(cli, delayed, accounts):
    token = delayed
    cli.ok("role", "handover", "begin", accounts[31].address, account="TEST::30")
    replaced = cli.ok("role", "handover", "begin", accounts[33].address, account="TEST::30")
    assert f"the handover to {accounts[31].address}" in flat(replaced)
    result = cli.ok("role", "handover", "cancel", account="TEST::30")
    assert f"the handover to {accounts[33].address}" in flat(result)
    assert token.pendingDefaultAdmin()[0] == "0x" + "00" * 20
    assert "no admin handover is pending; nothing was sent" in flat(
        cli.ok("role", "handover", "cancel", account="TEST::30")
    )
    out = cli.refused("role", "handover", "accept", account="TEST::31")
    assert "no admin handover is pending" in out
    out = cli.refused("role", "handover", "begin", "0x" + "00" * 20, account="TEST::30", code=2)
    assert "zero address" in out


def _kst(timestamp: int) -> str:
    from deposit_token.domain import display

    return display.moment(timestamp)


# --- listings -------------------------------------------------------------------------------------------------------


def test_vendor_listing_shows_names_categories_state_and_balances(cli, system):
    p = system.people
    cli.ok("vendor", "suspend", p.bar.address, "--reason", "licence check", account=COMPLIANCE)
    rows = {r["address"]: r for r in rows_of(cli, "vendors")}
    assert list(rows) == [v.address for v in (p.restaurant, p.cafe, p.bar, p.installer, p.supplier)]
    bar = rows[p.bar.address]
    assert (bar["name"], bar["category"], bar["state"], bar["suspended"], bar["balance_krw"]) == (
        "Night Owl Bar",
        "ENTERTAINMENT_BAR",
        "suspended",
        True,
        0,
    )
    assert rows[p.restaurant.address]["state"] == "active"
    assert rows[p.restaurant.address]["registered"].startswith("2029-12-28T10:00")

    table = flat(cli.ok("vendors"))
    assert "Vendors (5)" in table and "Hanok Table" in table and "RESTAURANT" in table
    assert "2029-12-28 10:00 KST" in table and "0 KRW" in table and "suspended" in table
    parsed = list(csv.DictReader(io.StringIO(cli.ok("vendors", "--format", "csv").output)))
    assert parsed[2]["name"] == "Night Owl Bar" and parsed[2]["suspended"] == "true"


def test_spender_listing_filters_by_program(cli, system):
    p = system.people
    cli.ok("freeze", p.spenders[1].address, "--reason", "lost phone", account=COMPLIANCE)
    everyone = rows_of(cli, "spenders")
    assert [r["address"] for r in everyone] == [a.address for a in (*p.spenders, *p.ev_recipients)]
    first = everyone[0]
    assert (first["program"], first["program_id"], first["department"], first["balance_krw"], first["state"]) == (
        "BP-2030-MOEF",
        1,
        "MOEF-BUDGET",
        3_000_000,
        "active",
    )
    assert everyone[1]["state"] == "frozen" and everyone[1]["frozen"] is True
    ev = rows_of(cli, "spenders", "--program", "EV-2030-MOE")
    assert [r["address"] for r in ev] == [a.address for a in p.ev_recipients]
    assert {r["department"] for r in ev} == {"EV-BIZ"}
    table = flat(cli.ok("spenders", "--program", "1"))
    assert "Spenders of 'BP-2030-MOEF' (#1) (6)" in table and "3,000,000 KRW" in table and "frozen" in table
    out = cli.refused("spenders", "--program", "NO-SUCH")
    assert "there is no program named 'NO-SUCH'" in out


def test_program_and_treasury_listings(cli, system, chain):
    p = system.people
    cli.ok("pause", "--program", "2", account=COMPLIANCE)
    programs = rows_of(cli, "programs")
    assert [(r["id"], r["name"], r["state"]) for r in programs] == [
        (1, "BP-2030-MOEF", "active"),
        (2, "EV-2030-MOE", "paused"),
    ]
    assert programs[0]["start"] == "2030-01-01T00:00:00+09:00" and programs[0]["treasury"] == p.treasury.address
    assert programs[0]["treasury_balance_krw"] == system.token.balanceOf(p.treasury)
    assert rows_of(cli, "program", "list") == programs  # the older name lists the same
    table = flat(cli.ok("programs"))
    assert "2030-01-01 00:00 KST" in table and "2030-07-01 00:00 KST" in table and "RESTAURANT" in table

    treasuries = rows_of(cli, "treasuries")
    assert [(r["address"], r["programs"]) for r in treasuries] == [
        (p.treasury.address, ["BP-2030-MOEF"]),
        (p.treasury2.address, ["EV-2030-MOE"]),
    ]
    set_time(chain, PROGRAM_END + timedelta(days=1))
    chain.mine()
    assert rows_of(cli, "programs")[0]["state"] == "ended"


def test_listings_have_help_with_network_and_format():
    from click.testing import CliRunner

    for command in (
        ["vendors"],
        ["spenders"],
        ["programs"],
        ["treasuries"],
        ["roles"],
        ["program", "list"],
        ["role", "list"],
        ["role", "handover", "show"],
    ):
        result = CliRunner().invoke(SCRIPT.cli, [*command, "--help"])
        assert result.exit_code == 0 and "--network" in result.output and "--format" in result.output, command
    for command in (
        ["role", "grant"],
        ["role", "revoke"],
        ["role", "handover", "begin"],
        ["role", "handover", "accept"],
        ["role", "handover", "cancel"],
    ):
        result = CliRunner().invoke(SCRIPT.cli, [*command, "--help"])
        assert result.exit_code == 0 and "--account" in result.output, command

"""Fixtures: a deployed token system on ape-foundry's Anvil, with roles, two programs, vendors and spenders.

Tests run at fixed local times after the chain's genesis (2030, KST) and rely on ape's per-test chain
isolation (snapshot / revert) to start each test from the same state.

PostgreSQL: the `pg_url` fixture is a server for the whole session: the one named by DEPOSIT_TOKEN_TEST_PG_URL
(or its older name AUDIT_TEST_PG_URL) when set, else a throwaway server started on first use (deposit_token.audit.db.pgserver)
and stopped at the end. Under CI (CI=true) an unusable PostgreSQL fails the tests that need it instead of
skipping them.
"""

from __future__ import annotations

import os
import shutil
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import NoReturn

import ape
import pytest
from sqlalchemy.exc import ArgumentError

from deposit_token.audit.db import pgserver
from deposit_token.chain.contracts import deploy_system
from deposit_token.domain import presets
from deposit_token.domain.categories import Category

# A recompile leaves OpenZeppelin's ~700 files in contracts/.cache; ape lists at most 500 files of the contracts
# folder, so our own contracts would vanish from `project` (see the Makefile's compile target).
shutil.rmtree(Path(__file__).resolve().parent.parent / "contracts" / ".cache", ignore_errors=True)

KST = timezone(timedelta(hours=9))
PROGRAM_START = datetime(2030, 1, 1, tzinfo=KST)
PROGRAM_END = datetime(2030, 7, 1, tzinfo=KST)
MONDAY_10 = datetime(2030, 1, 7, 10, 0, tzinfo=KST)  # a working Monday morning in the program
ROLES = ("ISSUER_ROLE", "PROGRAM_MANAGER_ROLE", "VENDOR_REGISTRAR_ROLE", "COMPLIANCE_ROLE")


def ts(moment: datetime) -> int:
    return int(moment.timestamp())


@dataclass
class People:
    admin: object
    issuer: object
    manager: object
    registrar: object
    compliance: object
    treasury: object
    treasury2: object
    outsider: object
    spenders: list
    ev_recipients: list
    restaurant: object
    cafe: object
    bar: object
    installer: object
    supplier: object


@dataclass
class System:
    token: object
    people: People
    bp: int  # business-promotion program id
    ev: int  # EV-charger subsidy program id


@pytest.fixture(scope="session")
def people(accounts) -> People:
    a = list(accounts)
    return People(
        admin=a[0], issuer=a[1], manager=a[2], registrar=a[3], compliance=a[4], treasury=a[5], treasury2=a[6],
        outsider=a[7], spenders=a[8:14], ev_recipients=a[14:17], restaurant=a[17], cafe=a[18], bar=a[19],
        installer=a[20], supplier=a[21],
    )


def set_time(chain, moment: datetime | int) -> None:
    """The next block is mined at `moment`."""
    chain.pending_timestamp = moment if isinstance(moment, int) else ts(moment)


@pytest.fixture(scope="session")
def system(chain, people) -> System:
    p = people
    # ape-foundry starts Anvil at the machine's clock (it has no genesis-timestamp setting) and the tests' dates
    # are fixed: put the chain's clock before them, back or forward, so the suite runs the same on any date.
    chain.provider.make_request("anvil_setTime", [ts(MONDAY_10 - timedelta(days=11))])
    set_time(chain, MONDAY_10 - timedelta(days=10))
    token = deploy_system(p.admin).token
    for role, who in zip(ROLES, (p.issuer, p.manager, p.registrar, p.compliance)):
        token.grantRole(getattr(token, role)(), who, sender=p.admin)
    token.setMintAllowance(p.issuer, 10**12, sender=p.admin)
    for t in (p.treasury, p.treasury2):
        token.registerTreasury(t, sender=p.admin)
    token.mint(p.treasury, 500_000_000, sender=p.issuer)
    token.mint(p.treasury2, 500_000_000, sender=p.issuer)
    bp = presets.business_promotion("BP-2030-MOEF", p.treasury.address, ts(PROGRAM_START), ts(PROGRAM_END))
    ev = presets.ev_charger_subsidy("EV-2030-MOE", p.treasury2.address, ts(PROGRAM_START), ts(PROGRAM_END))
    token.createProgram(bp.as_params(), sender=p.manager)
    token.createProgram(ev.as_params(), sender=p.manager)
    for vendor, category, label in (
        (p.restaurant, Category.RESTAURANT, "Hanok Table"),
        (p.cafe, Category.CAFE_BAKERY, "Bean Brothers"),
        (p.bar, Category.ENTERTAINMENT_BAR, "Night Owl Bar"),
        (p.installer, Category.EV_CHARGER_INSTALLER, "ChargeUp Install"),
        (p.supplier, Category.EV_CHARGER_SUPPLIER, "Volt Supply"),
    ):
        token.registerVendor(vendor, int(category), label, sender=p.registrar)
    token.enrol(p.spenders, 1, [b"MOEF-BUDGET".ljust(32, b"\0")] * len(p.spenders), sender=p.manager)
    token.enrol(p.ev_recipients, 2, [b"EV-BIZ".ljust(32, b"\0")] * len(p.ev_recipients), sender=p.manager)
    token.allocate(b"\x01".rjust(32, b"\0"), 1, p.spenders, [3_000_000] * len(p.spenders), sender=p.manager)
    token.allocate(b"\x02".rjust(32, b"\0"), 2, p.ev_recipients, [100_000_000] * 3, sender=p.manager)
    set_time(chain, MONDAY_10)
    chain.mine()
    return System(token=token, people=p, bp=1, ev=2)


# --- PostgreSQL --------------------------------------------------------------------------------------------------

PG_URL_ENVS = ("DEPOSIT_TOKEN_TEST_PG_URL", "AUDIT_TEST_PG_URL")


def in_ci() -> bool:
    return os.environ.get("CI", "").strip().lower() in ("true", "1", "yes")


def postgres_unusable(reason: str) -> NoReturn:
    """Skip the test with `reason`, or fail it under CI, where every PostgreSQL test must run."""
    if in_ci():
        pytest.fail(f"{reason} (CI=true: PostgreSQL tests fail rather than skip)", pytrace=False)
    pytest.skip(reason)


# chain_isolation=False: the server holds no chain state, so ape need not re-snapshot the chain (a costly "rebase")
# when a test first asks for it in the middle of a module.
@ape.fixture(scope="session", chain_isolation=False)
def pg_url() -> Iterator[str]:
    """URL of a PostgreSQL database whose user may create schemas and databases (tests make their own)."""
    given = next(((name, os.environ[name]) for name in PG_URL_ENVS if os.environ.get(name)), None)
    if given:
        name, given = given
        try:
            given = pgserver.psycopg_url(given)
        except ArgumentError:
            postgres_unusable(f"{name} is not a database URL (postgresql://user@host:port/database)")
        reason = pgserver.unreachable(given)
        if reason:
            postgres_unusable(reason)
        yield given
        return
    try:
        server = pgserver.start_server()
    except pgserver.PgServerError as err:
        postgres_unusable(str(err))
    try:
        yield server.url()
    finally:
        pgserver.stop_server(server)


ZERO = b"\0" * 32


def b32(value: int | str | bytes) -> bytes:
    """A bytes32 from an int (big-endian), text (left-aligned) or bytes."""
    if isinstance(value, int):
        return value.to_bytes(32, "big")
    raw = value.encode() if isinstance(value, str) else value
    return raw.ljust(32, b"\0")


def pay(system: System, spender, vendor, amount: int, receipt: int | bytes = 0, evidence: bytes = ZERO):
    """`pay` with the receipt id given as an invoice number (0 = none)."""
    receipt_id = b32(receipt) if isinstance(receipt, int) else receipt
    return system.token.pay(vendor, amount, receipt_id, evidence, sender=spender)

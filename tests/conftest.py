"""Fixtures: a deployed token system on ape-foundry's Anvil, with roles, two programs, vendors and spenders.

Tests run at fixed local times after the chain's genesis (2030, KST) and rely on ape's per-test chain
isolation (snapshot / revert) to start each test from the same state.

PostgreSQL: the `pg_url` fixture is a server for the whole session: the one named by DEPOSIT_TOKEN_TEST_PG_URL
(or its older name AUDIT_TEST_PG_URL) when set, else a throwaway server started on first use
(deposit_token.audit.db.pgserver) and stopped at the end. Under CI (CI=true) an unusable PostgreSQL fails the tests
that need it instead of skipping them.
"""

from __future__ import annotations

import os
import shutil
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path

import ape
import pytest
from _pytest._code import Traceback  # pytest exports no name for the type of ExceptionInfo.traceback
from sqlalchemy.exc import ArgumentError
from support.postgres import PG_URL_ENVS, postgres_unusable
from support.system import MONDAY_10, PROGRAM_END, PROGRAM_START, ROLES, People, System, set_time, ts

from deposit_token.audit.db import pgserver
from deposit_token.chain.contracts import deploy_system
from deposit_token.domain import presets
from deposit_token.domain.categories import Category
from deposit_token.paths import CONTRACTS_DIR
from deposit_token.processes import free_port

# A recompile leaves OpenZeppelin's ~700 files in contracts/.cache; ape lists at most 500 files of the contracts
# folder, so our own contracts would vanish from `project` (see the Makefile's compile target).
shutil.rmtree(CONTRACTS_DIR / ".cache", ignore_errors=True)


# The session's own Anvil: ape-foundry would draw its port at random from 49152-60999 without checking it (a port
# held by another lane's server or connection makes Anvil exit and the whole lane fail). A free port instead, through
# the one setting ape-foundry reads for it; taken back once connected, so that the tests' subprocesses still start
# Anvils of their own or are pointed at this one explicitly.
ANVIL_HOST_ENV = "APE_FOUNDRY_HOST"
PINNED_ANVIL_HOST = pytest.StashKey[bool]()


def pytest_configure(config: pytest.Config) -> None:
    config.stash[PINNED_ANVIL_HOST] = ANVIL_HOST_ENV not in os.environ
    if config.stash[PINNED_ANVIL_HOST]:
        os.environ[ANVIL_HOST_ENV] = f"http://127.0.0.1:{free_port()}"


@pytest.fixture(scope="session", autouse=True)
def _anvil_host_taken_back(request: pytest.FixtureRequest) -> None:
    if request.config.stash[PINNED_ANVIL_HOST]:
        os.environ.pop(ANVIL_HOST_ENV, None)


@pytest.fixture(scope="session")
def people(accounts) -> People:
    a = list(accounts)
    return People(
        admin=a[0],
        issuer=a[1],
        manager=a[2],
        registrar=a[3],
        compliance=a[4],
        treasury=a[5],
        treasury2=a[6],
        outsider=a[7],
        spenders=a[8:14],
        ev_recipients=a[14:17],
        restaurant=a[17],
        cafe=a[18],
        bar=a[19],
        installer=a[20],
        supplier=a[21],
    )


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


# --- markers ------------------------------------------------------------------------------------------------------
# Registered in pyproject.toml (--strict-markers); applied here so that a new test file gets them from where it
# lives and what it uses, and the fast tier (`make test-fast`: -m "not slow") needs no list of files.

CHAIN_FIXTURES = {"chain", "accounts", "networks", "project", "provider", "people", "system"}
CHAIN_DIRS = {"chain", "ops", "e2e", "gateway", "geth"}  # every test there runs a node (Anvil or Geth)
GETH_DIRS = {"geth"}  # a Geth Clique network of its own (sealers + archive node): slow by nature
POSTGRES_MODULES = {"test_pgserver"}  # start PostgreSQL servers of their own
SLOW_MODULES = {  # module -> why it is left out of the fast tier
    "test_demo": "plays the demo month on its own chain",
    "test_readme_pilot": "runs the README's walkthrough verbatim (ape commands in subprocesses)",
    "test_invariants": "Hypothesis state machine against a Python model",
    "test_static_analysis": "slither over a forge build",
    "test_fast_path_equivalence": "forge differential fuzzing and halmos proofs",
    "test_audit_naming_verify": "a pilot deployed, indexed and restarted on Anvil nodes of its own",
    "test_network": "starts and stops Anvil processes",
    "test_treasury": "every treasury command end to end through click, several transactions each",
    "test_treasury_roles": "role and listing commands end to end through click, several transactions each",
    "test_accounts": "keystores at ape's default scrypt cost (~0.85 s per key) and `ape accounts` subprocesses",
}
SLOW_PREFIXES = {"test_script_": "`ape run deploy` in a subprocess (tests/chain/test_deploy.py)"}
SLOW_FIXTURES = {"run": "`ape run <script>` in a subprocess per call (tests/ops/conftest.py)"}
SLOW_TESTS = {  # test function -> why
    "test_killed_and_interrupted_disbursal_pays_every_row_exactly_once": "kill -9 and re-runs of a disbursal",
    "test_killed_and_interrupted_referenced_disbursal_pays_every_row_exactly_once": "kill -9 and re-runs",
    "test_gas_per_row_with_and_without_a_reference": "a measurement over full groups of rows",
    "test_kill_9_at_random_moments_leaves_no_duplicate_and_no_gap": "kill -9 of the indexer many times",
    "test_a_killed_owner_leaves_no_server_behind": "starts and kills a PostgreSQL server's owner",
    "test_a_killed_node_keeps_what_was_dumped_and_refuses_another_chain_id": "kill -9 of an Anvil node",
    "test_ape_run_audit_index_and_verify": "`ape run audit` subprocesses",
    "test_script_deploys_on_its_own_anvil": "an Anvil of its own and `ape run deploy`",
    "test_an_own_anvil_gets_a_free_port_and_another_start_if_it_does_not_answer": "Anvils of its own, one waited 20 s",
    "test_script_off_dev_networks_needs_an_account_and_warns_of_no_delay": "`ape run deploy` subprocesses",
    "test_subprocess_on_a_dev_network_uses_the_test_account_holding_the_role": "`ape run treasury` subprocess",
}


def pytest_collection_modifyitems(config, items) -> None:
    tests = Path(__file__).resolve().parent
    for item in items:
        path = Path(str(item.path)).resolve()
        folder = path.relative_to(tests).parts[0] if path.is_relative_to(tests) else ""
        used = set(item.fixturenames)
        if folder in CHAIN_DIRS or used & CHAIN_FIXTURES:
            item.add_marker(pytest.mark.chain)
        params = getattr(getattr(item, "callspec", None), "params", {})
        if (
            "pg_url" in used
            or path.stem in POSTGRES_MODULES
            or any(value in ("postgres", "postgresql") for value in params.values())
        ):
            item.add_marker(pytest.mark.postgres)
        if folder in GETH_DIRS:
            item.add_marker(pytest.mark.geth)
        if (
            folder in GETH_DIRS
            or path.stem in SLOW_MODULES
            or getattr(item, "originalname", item.name) in SLOW_TESTS
            or item.name.startswith(tuple(SLOW_PREFIXES))
            or used & set(SLOW_FIXTURES)
        ):
            item.add_marker(pytest.mark.slow)


@pytest.hookimpl(trylast=True)
def pytest_exception_interact(node: pytest.Item, call: pytest.CallInfo[object], report: pytest.TestReport) -> None:
    """A failure's report in pytest's short form without local variables.

    ape's runner keeps the frames under the project folder, which holds .venv, and prints each frame's locals:
    one failure then fills CI's excerpt of the log and hides the next failure and even the reason for this one.
    Here: the frames outside site-packages (all of them if none is), each in a line or two.
    """
    if call.excinfo is None or not report.failed:
        return
    ours = [entry for entry in call.excinfo.traceback if "site-packages" not in str(entry.path)]
    if ours:
        call.excinfo.traceback = Traceback(ours)
    report.longrepr = call.excinfo.getrepr(style="short", showlocals=False, chain=False)

"""The audit indexer and `verify`, against the test session's Anvil and real SQLite / PostgreSQL (no mocks).

* every event of a varied history lands in its typed table, once; SQLite and PostgreSQL hold the same rows;
* reorgs driven on Anvil (evm_snapshot/evm_revert, anvil_reorg, anvil_rollback): after each, the database
  equals a fresh full re-index;
* a provider with range and result-count limits (a real HTTP proxy in front of Anvil) makes the backfill split;
* `kill -9` of the indexer subprocess at random moments: the database is always an exact prefix of the full
  index (no duplicate, no gap), and a restart completes it;
* `verify` passes on an honest database and names each tampered row;
* `ape run audit index` / `verify` end to end, and bad input (database URL, missing record) changes nothing.

PostgreSQL: the session's server (the `pg_url` fixture of conftest.py); each test gets a database of its own
(dropped afterwards) so that parallel sessions never share tables.
"""

from __future__ import annotations

import os
import random
import signal
import subprocess
import sys
import threading
import time
import uuid
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path

import pytest
from sqlalchemy import delete, func, select, update
from support.rpc_proxy import RpcProxy
from support.system import MONDAY_10, PROGRAM_END, b32, pay, set_time

from deposit_token.audit.db import pgserver, schema, store
from deposit_token.audit.sync.indexer import Indexer, IndexerConfig
from deposit_token.audit.verify import verify
from deposit_token.chain import deployment
from deposit_token.chain.rpc import RpcClient
from deposit_token.domain import presets
from deposit_token.domain.categories import Category
from deposit_token.paths import ROOT

BACKENDS = ["sqlite", "postgresql"]


# --- databases ------------------------------------------------------------------------------------------------


class Databases:
    """Fresh databases of one backend: SQLite files in tmp_path, or PostgreSQL databases (on the server of
    `pg_url`) dropped at the end."""

    def __init__(self, backend: str, folder: Path, pg_url: str | None = None):
        self.backend, self.folder, self.pg_url = backend, folder, pg_url
        self.engines, self.pg_names = [], []

    def url(self) -> str:
        if self.backend == "sqlite":
            return f"sqlite:///{self.folder / f'audit-{uuid.uuid4().hex[:8]}.sqlite'}"
        name = f"audit_test_{uuid.uuid4().hex[:12]}"
        url = pgserver.create_database(self.pg_url, name)
        self.pg_names.append(name)
        return url

    def engine(self, url: str | None = None):
        engine = store.open_database(url or self.url())
        self.engines.append(engine)
        return engine

    def close(self) -> None:
        for engine in self.engines:
            engine.dispose()
        for name in self.pg_names:
            pgserver.drop_database(self.pg_url, name)


@pytest.fixture(params=BACKENDS)
def dbs(request, tmp_path):
    pg_url = request.getfixturevalue("pg_url") if request.param == "postgresql" else None
    databases = Databases(request.param, tmp_path, pg_url)
    yield databases
    databases.close()


@pytest.fixture
def sqlite_dbs(tmp_path):
    databases = Databases("sqlite", tmp_path)
    yield databases
    databases.close()


# --- the chain ---------------------------------------------------------------------------------------------------


@dataclass
class Audited:
    token: object
    address: str
    rpc_url: str
    people: object
    system: object

    def config(self, **kwargs) -> IndexerConfig:
        return IndexerConfig(token=self.address, start_block=0, **kwargs)


def rpc_url_of(provider) -> str:
    return getattr(provider, "http_uri", None) or provider.uri


@pytest.fixture(scope="module")
def audited(system, chain, accounts, networks) -> Audited:
    """A history with every kind of event the schema has a table for (on top of conftest's `system`)."""
    t, p = system.token, system.people
    s0, s1, s2, s3, s4, s5 = p.spenders
    pay(system, s0, p.restaurant, 50_000, receipt=1)
    pay(system, s1, p.cafe, 20_000)
    pay(system, s0, p.restaurant, 600_000, receipt=2, evidence=b32("minutes-2030-01-07.pdf"))
    t.transfer(p.restaurant, 12_000, sender=s0)  # a payment through ERC-20 transfer
    t.returnToTreasury(100_000, sender=s1)
    t.redeem(30_000, "KB-0001", sender=p.restaurant)
    t.freeze(s2, "document check", sender=p.compliance)
    t.unfreeze(s2, "documents received", sender=p.compliance)
    t.freeze(s4, "fraud case 2030-01", sender=p.compliance)
    t.clawback(s4, 1_000_000, "fraud case 2030-01", sender=p.compliance)
    t.suspendVendor(p.cafe, "licence review", sender=p.compliance)
    t.setProgramPaused(system.bp, True, sender=p.compliance)
    t.setProgramPaused(system.bp, False, sender=p.compliance)
    t.pause(sender=p.compliance)
    t.unpause(sender=p.compliance)
    t.setCapOverride(s0, int(Category.RESTAURANT), 5_000_000, sender=p.manager)
    t.setCapOverride(s1, int(Category.CAFE_BAKERY), 100_000, sender=p.manager)
    t.clearCapOverride(s1, int(Category.CAFE_BAKERY), sender=p.manager)
    t.approve(p.outsider, 1_000, sender=s3)
    t.setMintAllowance(p.issuer, 2**256 - 1, sender=p.admin)  # "unlimited": exercises the >64-bit amounts
    t.mint(p.treasury, 1_000_000, sender=p.issuer)
    officer = accounts[30]
    role = t.COMPLIANCE_ROLE()
    t.grantRole(role, officer, sender=p.admin)
    t.revokeRole(role, officer, sender=p.admin)
    newcomer = accounts[31]
    t.enrol([newcomer], system.bp, [b32("KDI-Research")], sender=p.manager)
    t.transfer(newcomer, 200_000, sender=p.treasury)  # a single allocation
    set_time(chain, MONDAY_10 + timedelta(days=35))  # next month: a new spending period
    pay(system, s0, p.restaurant, 70_000, receipt=3)
    pay(system, newcomer, p.restaurant, 30_000)
    stricter = presets.business_promotion(
        "BP-2030-MOEF",
        p.treasury.address,
        int(MONDAY_10.timestamp()) - 86400 * 30,
        int(PROGRAM_END.timestamp()),
        working_hours_only=True,
    )
    t.updateProgram(system.bp, stricter.as_params(), sender=p.manager)
    set_time(chain, PROGRAM_END + timedelta(days=1))
    t.sweepExpired([s5], sender=p.outsider)
    chain.mine()
    return Audited(token=t, address=t.address, rpc_url=rpc_url_of(networks.provider), people=p, system=system)


def full_index(audited: Audited, engine, **config) -> Indexer:
    indexer = Indexer(RpcClient(audited.rpc_url), engine, audited.config(**config))
    indexer.run()
    return indexer


def dump(engine) -> dict:
    """Every event row in chain order, the checkpoint, and the blocks with events: what must not depend on
    how (in how many runs, through which reorgs) the database was filled."""
    out: dict = {}
    with engine.connect() as conn:
        for table in schema.EVENT_TABLES:
            rows = conn.execute(select(table).order_by(table.c.block_number, table.c.log_index)).all()
            out[table.name] = [tuple(r) for r in rows]
        out["checkpoint"] = store.read_checkpoint(conn)
        b = schema.blocks
        out["event_blocks"] = [
            tuple(r)
            for r in conn.execute(
                select(b.c.number, b.c.hash, b.c.parent_hash, b.c.timestamp, b.c.event_count)
                .where(b.c.event_count > 0)
                .order_by(b.c.number)
            )
        ]
    return out


def prefix(reference: dict, block: int) -> dict:
    """The reference dump cut at `block` (what a database checkpointed there must hold)."""
    out = {
        name: [r for r in rows if r[0] <= block]
        for name, rows in reference.items()
        if name not in ("checkpoint", "event_blocks")
    }
    out["event_blocks"] = [r for r in reference["event_blocks"] if r[0] <= block]
    return out


def chain_logs(audited: Audited) -> list[dict]:
    rpc = RpcClient(audited.rpc_url)
    return rpc.get_logs(audited.address, 0, rpc.block_number())


def assert_verified(audited: Audited, engine) -> None:
    result = verify(RpcClient(audited.rpc_url), engine, audited.address)
    assert result.ok, "\n".join(map(str, result.mismatches))


def raw(audited: Audited, method: str, *params):
    return RpcClient(audited.rpc_url).call(method, list(params))


# --- loading ----------------------------------------------------------------------------------------------------


def test_index_loads_every_event_once(audited, dbs):
    engine = dbs.engine()
    indexer = full_index(audited, engine)
    logs = chain_logs(audited)
    p = audited.people
    with engine.connect() as conn:
        assert store.count_events(conn) == len(logs) == indexer.stats.events
        assert store.read_checkpoint(conn)[0] == RpcClient(audited.rpc_url).block_number()
        payments = conn.execute(select(schema.payments).order_by(schema.payments.c.block_number)).all()
        assert [(r.payer, r.vendor, r.amount, r.period) for r in payments] == [
            (p.spenders[0].address, p.restaurant.address, 50_000, 203001),
            (p.spenders[1].address, p.cafe.address, 20_000, 203001),
            (p.spenders[0].address, p.restaurant.address, 600_000, 203001),
            (p.spenders[0].address, p.restaurant.address, 12_000, 203001),
            (p.spenders[0].address, p.restaurant.address, 70_000, 203002),
            (payments[-1].payer, p.restaurant.address, 30_000, 203002),
        ]
        assert payments[0].receipt_id == "0x" + "00" * 31 + "01"
        assert payments[2].evidence_hash == "0x" + b32("minutes-2030-01-07.pdf").hex()
        assert isinstance(payments[0].amount, int) and isinstance(payments[0].block_timestamp, int)
        enrolled = {r.department_text for r in conn.execute(select(schema.enrolments))}
        assert enrolled == {"MOEF-BUDGET", "EV-BIZ", "KDI-Research"}
        assert [r.paused for r in conn.execute(select(schema.pauses).order_by(schema.pauses.c.block_number))] == [
            True,
            False,
        ]
        assert conn.execute(select(func.max(schema.mint_allowances.c.allowance))).scalar_one() == 2**256 - 1
        assert {r.event_name for r in conn.execute(select(schema.role_events))} == {"RoleGranted", "RoleRevoked"}
        assert conn.execute(select(schema.clawbacks.c.reason)).scalar_one() == "fraud case 2030-01"
        versions = [
            r.version
            for r in conn.execute(select(schema.program_configs).where(schema.program_configs.c.program_id == 1))
        ]
        assert versions == [1, 2]
        assert conn.execute(select(func.count()).select_from(schema.sweeps)).scalar_one() == 1
        assert conn.execute(select(func.count()).select_from(schema.redemptions)).scalar_one() == 1
        # ``cap_overrides``: set, set, clear
        assert [r.active for r in conn.execute(select(schema.cap_overrides))] == [True, True, False]
        tables_with_rows = {
            t.name for t in schema.EVENT_TABLES if conn.execute(select(func.count()).select_from(t)).scalar_one()
        }
    assert tables_with_rows == {t.name for t in schema.EVENT_TABLES} - {"allocation_batches"} or tables_with_rows == {
        t.name for t in schema.EVENT_TABLES
    }
    before = dump(engine)
    again = full_index(audited, engine)  # nothing new: no duplicate, nothing written but no error
    assert again.stats.events == 0 and dump(engine) == before
    assert_verified(audited, engine)


def secondary_indexes(engine) -> set[str]:
    with engine.connect() as conn:
        return {
            name
            for (name,) in conn.exec_driver_sql(
                "SELECT name FROM sqlite_master WHERE type = 'index' AND sql IS NOT NULL AND tbl_name = 'payments'"
            )
        }


def test_a_fresh_backfill_builds_its_indexes_once_caught_up(audited, sqlite_dbs, tmp_path):
    reference = sqlite_dbs.engine()
    full_index(audited, reference, defer_indexes=False)
    wanted = secondary_indexes(reference)
    assert wanted  # the migrations index payments by payer, vendor, period

    url = sqlite_dbs.url()
    engine = sqlite_dbs.engine(url)
    during: list[set[str]] = []
    indexer = Indexer(
        RpcClient(audited.rpc_url),
        engine,
        audited.config(initial_range=3, max_range=3),
        on_commit=lambda _commit: during.append(secondary_indexes(engine)),
    )
    indexer.run()
    assert during and all(not found for found in during)  # none while it backfilled
    assert secondary_indexes(engine) == wanted and dump(engine) == dump(reference)
    with engine.connect() as conn:
        assert store.DEFERRED_INDEXES_KEY not in {k for (k,) in conn.exec_driver_sql("SELECT key FROM index_meta")}

    # a backfill stopped before catching up keeps them deferred; the next run builds them
    url2 = sqlite_dbs.url()
    stopped = sqlite_dbs.engine(url2)
    stop = threading.Event()
    Indexer(
        RpcClient(audited.rpc_url),
        stopped,
        audited.config(initial_range=3, max_range=3),
        on_commit=lambda _commit: stop.set(),
    ).run(stop=stop)
    assert not secondary_indexes(stopped)
    assert store.open_database(url2).dispose() is None and not secondary_indexes(stopped)  # at head: no rebuild
    full_index(audited, stopped)
    assert secondary_indexes(stopped) == wanted and dump(stopped) == dump(reference)

    # a reset builds them before it empties index_meta (where their definitions wait)
    url3 = sqlite_dbs.url()
    reset = sqlite_dbs.engine(url3)
    stop3 = threading.Event()
    Indexer(RpcClient(audited.rpc_url), reset, audited.config(initial_range=3), on_commit=lambda _c: stop3.set()).run(
        stop=stop3
    )
    store.reset(reset)
    assert secondary_indexes(reset) == wanted


def test_sqlite_and_postgresql_hold_the_same_rows(audited, tmp_path, pg_url):
    sqlite, postgres = Databases("sqlite", tmp_path), Databases("postgresql", tmp_path, pg_url)
    try:
        a, b = sqlite.engine(), postgres.engine()
        full_index(audited, a, initial_range=7, max_range=7)
        full_index(audited, b)
        assert dump(a) == dump(b)
    finally:
        sqlite.close()
        postgres.close()


def test_bad_database_url_is_refused_and_creates_nothing(tmp_path):
    for text, words in (
        ("mysql://u@h/db", "unsupported database"),
        ("not a url://x", "not a database URL"),
        ("sqlite://", "in-memory"),
    ):
        with pytest.raises(store.DatabaseError, match=words):
            store.open_database(text)
    with pytest.raises(store.DatabaseError, match="cannot connect"):
        store.open_database("postgresql://nobody@127.0.0.1:1/none?connect_timeout=2")
    assert list(tmp_path.iterdir()) == []


def test_database_of_another_token_is_refused(audited, sqlite_dbs):
    engine = sqlite_dbs.engine()
    store.bind_to_chain(engine, 31337, audited.address, 0)
    with pytest.raises(store.IndexMismatchError, match="another deployment"):
        store.bind_to_chain(engine, 31337, "0x" + "11" * 20, 0)


# --- verify -------------------------------------------------------------------------------------------------------


def test_verify_names_each_tampered_row(audited, dbs):
    engine = dbs.engine()
    full_index(audited, engine)
    rpc = RpcClient(audited.rpc_url)
    honest = verify(rpc, engine, audited.address)
    assert honest.ok and honest.checks > 50
    p = audited.people
    paid = schema.payments.c
    with engine.begin() as conn:
        # a January payment (a past period: checked at the block of its last payment) and a February one
        conn.execute(update(schema.payments).where(paid.amount == 600_000).values(amount=600_001))
        conn.execute(update(schema.payments).where(paid.amount == 70_000).values(amount=70_500))
        conn.execute(update(schema.transfers).where(schema.transfers.c.amount == 20_000).values(amount=21_000))
        conn.execute(
            update(schema.vendor_registrations)
            .where(schema.vendor_registrations.c.vendor == p.bar.address)
            .values(category=1)
        )
        conn.execute(delete(schema.freezes).where(schema.freezes.c.account == p.spenders[4].address))
        conn.execute(
            update(schema.program_configs)
            .where(schema.program_configs.c.version == 2)
            .values(per_payment_limit=2_000_000)
        )
    result = verify(rpc, engine, audited.address)
    found = {(m.check, m.subject): (m.database, m.chain) for m in result.mismatches}
    restaurant = f"{p.spenders[0].address} category {int(Category.RESTAURANT)}"
    assert found[("spendingOf.spent", f"{restaurant} period 203001")] == (662_001, 662_000)
    assert found[("spendingOf.spent", f"{restaurant} period 203002")] == (70_500, 70_000)
    cafe, payer = found[("balance", p.cafe.address)], found[("balance", p.spenders[1].address)]
    assert cafe[0] == cafe[1] + 1_000 and payer[0] == payer[1] - 1_000
    assert found[("vendor.category", p.bar.address)] == (1, int(Category.ENTERTAINMENT_BAR))
    assert found[("spender.frozen", p.spenders[4].address)] == (False, True)
    assert found[("programConfig.perPaymentLimit", "program 1")] == (2_000_000, 1_000_000)
    assert len(result.mismatches) == 7, "\n".join(map(str, result.mismatches))
    assert not result.ok


# --- reorgs ---------------------------------------------------------------------------------------------------


def _tx(audited: Audited, method: str, *args, sender) -> dict:
    """An unsigned transaction request (Anvil signs for its dev accounts) calling the token."""
    data = getattr(audited.token, method).encode_input(*args)
    return {"from": sender.address, "to": audited.address, "data": "0x" + bytes(data).hex(), "gas": hex(500_000)}


def test_reorgs_roll_back_to_the_common_ancestor(audited, dbs, chain, accounts):
    t, p = audited.token, audited.people
    rpc = RpcClient(audited.rpc_url)
    chain.mine(6)  # reorgs below stay above the block this test started at (ape reverts to it afterwards)
    engine = dbs.engine()
    indexer = Indexer(rpc, engine, audited.config())

    def index_and_compare(note: str) -> None:
        indexer.run()
        fresh = dbs.engine()
        full_index(audited, fresh)
        assert dump(engine) == dump(fresh), note
        fresh.dispose()

    index_and_compare("initial")
    # 1. evm_snapshot / evm_revert: indexed blocks disappear, other blocks take their numbers
    snap = raw(audited, "evm_snapshot")
    t.registerVendor(accounts[32], int(Category.RESTAURANT), "Doomed Diner", sender=p.registrar)
    t.mint(p.treasury, 5_000, sender=p.issuer)
    indexer.run()
    assert raw(audited, "evm_revert", snap) is True
    t.registerVendor(accounts[33], int(Category.CAFE_BAKERY), "Survivor Cafe", sender=p.registrar)
    index_and_compare("after evm_revert")
    assert indexer.stats.rollbacks and indexer.stats.rollbacks[-1].rows_removed >= 2
    with engine.connect() as conn:
        names = {r.name for r in conn.execute(select(schema.vendor_registrations))}
    assert "Survivor Cafe" in names and "Doomed Diner" not in names
    # 2. anvil_reorg: the last 3 blocks replaced by blocks with other transactions
    t.freeze(p.spenders[2], "reorged away", sender=p.compliance)
    t.mint(p.treasury, 7_000, sender=p.issuer)
    t.unfreeze(p.spenders[2], "reorged away", sender=p.compliance)
    indexer.run()
    replacement = [
        [_tx(audited, "mint", p.treasury.address, 9_000, sender=p.issuer), 0],
        [_tx(audited, "freeze", p.spenders[3].address, "new branch", sender=p.compliance), 2],
    ]
    raw(audited, "anvil_reorg", 3, replacement)
    index_and_compare("after anvil_reorg")
    with engine.connect() as conn:
        reasons = [r.reason for r in conn.execute(select(schema.freezes))]
    assert "new branch" in reasons and "reorged away" not in reasons
    # 3. anvil_rollback: the chain gets shorter than the checkpoint
    t.mint(p.treasury, 11_000, sender=p.issuer)
    indexer.run()
    raw(audited, "anvil_rollback", 2)
    index_and_compare("after anvil_rollback")
    t.mint(p.treasury, 13_000, sender=p.issuer)
    index_and_compare("after new blocks on the shortened chain")
    assert_verified(audited, engine)


# --- provider limits ----------------------------------------------------------------------------------------------


class LimitingProxy(RpcProxy):
    """An HTTP JSON-RPC proxy in front of Anvil that refuses eth_getLogs over `max_blocks` blocks or with more
    than `max_logs` results, with the errors real providers send."""

    def __init__(self, upstream: str, max_blocks: int, max_logs: int):
        super().__init__(upstream)
        self.max_blocks, self.max_logs, self.refused = max_blocks, max_logs, 0

    def handle(self, payload):
        if isinstance(payload, dict) and payload.get("method") == "eth_getLogs":
            query = payload["params"][0]
            span = int(query["toBlock"], 16) - int(query["fromBlock"], 16) + 1
            if span > self.max_blocks:
                self.refused += 1
                return {
                    "jsonrpc": "2.0",
                    "id": payload["id"],
                    "error": {"code": -32602, "message": f"block range too large, max {self.max_blocks}"},
                }
            answer = self.forward(payload)
            if len(answer.get("result") or []) > self.max_logs:
                self.refused += 1
                return {
                    "jsonrpc": "2.0",
                    "id": payload["id"],
                    "error": {"code": -32005, "message": f"query returned more than {self.max_logs} results"},
                }
            return answer
        return self.forward(payload)


def test_backfill_splits_ranges_the_provider_refuses(audited, sqlite_dbs):
    proxy = LimitingProxy(audited.rpc_url, max_blocks=40, max_logs=20)
    try:
        engine = sqlite_dbs.engine()
        indexer = Indexer(RpcClient(proxy.url), engine, audited.config(initial_range=1_000))
        indexer.run()
        reference = sqlite_dbs.engine()
        full_index(audited, reference)
        assert dump(engine) == dump(reference)
        assert proxy.refused > 0 and indexer.stats.splits > 0
    finally:
        proxy.close()


# --- following the head ----------------------------------------------------------------------------------------


def test_follow_commits_new_blocks_as_they_come(audited, sqlite_dbs, chain):
    t, p = audited.token, audited.people
    engine = sqlite_dbs.engine()
    commits = []
    indexer = Indexer(RpcClient(audited.rpc_url), engine, audited.config(poll_interval=0.02), on_commit=commits.append)
    stop = threading.Event()
    worker = threading.Thread(target=indexer.run, kwargs={"follow": True, "stop": stop})
    worker.start()
    try:
        rpc = RpcClient(audited.rpc_url)

        def wait_for(block: int) -> None:
            deadline = time.monotonic() + 20
            while (indexer.checkpoint() or (0,))[0] < block:
                assert time.monotonic() < deadline, f"follow did not reach block {block}"
                time.sleep(0.02)

        wait_for(rpc.block_number())
        for amount in (1_000, 2_000, 3_000):
            t.mint(p.treasury, amount, sender=p.issuer)
            wait_for(rpc.block_number())
        chain.mine(3)  # empty blocks move the checkpoint too
        wait_for(rpc.block_number())
    finally:
        stop.set()
        worker.join(10)
    assert not worker.is_alive()
    with engine.connect() as conn:
        minted = [r.amount for r in conn.execute(select(schema.mints).order_by(schema.mints.c.block_number))]
    assert minted[-3:] == [1_000, 2_000, 3_000]
    assert_verified(audited, engine)


# --- crashes -----------------------------------------------------------------------------------------------------


def test_kill_9_at_random_moments_leaves_no_duplicate_and_no_gap(audited, dbs, chain):
    chain.mine(250)  # empty blocks: with one block per commit, a run is long enough to be killed many times
    reference_engine = dbs.engine()
    full_index(audited, reference_engine)
    reference = dump(reference_engine)
    head = reference["checkpoint"][0]
    url = dbs.url()
    engine = dbs.engine(url)  # migrated once here, so that kills land in indexing rather than in set-up
    seed = int(time.time())
    rng = random.Random(seed)
    command = [
        sys.executable,
        "-m",
        "deposit_token.audit",
        "index",
        "--rpc-url",
        audited.rpc_url,
        "--db",
        url,
        "--token",
        audited.address,
        "--start-block",
        "0",
        "--max-range",
        "1",
    ]
    checkpoints = []
    for attempt in range(4):
        # a random block to reach, then a random few milliseconds: the kill lands anywhere in the next step
        # (fetching, decoding, inside the transaction or committing), independent of the machine's speed
        with engine.connect() as conn:
            done = (store.read_checkpoint(conn) or (-1,))[0]
        aim = rng.randint(done + 1, done + (head - done) // 3)
        proc = subprocess.Popen(command, cwd=ROOT, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
        deadline = time.monotonic() + 60
        while proc.poll() is None and time.monotonic() < deadline:
            with engine.connect() as conn:
                if (store.read_checkpoint(conn) or (-1,))[0] >= aim:
                    break
            time.sleep(0.003)
        time.sleep(rng.uniform(0, 0.03))
        if proc.poll() is not None:
            assert proc.returncode == 0, proc.stderr.read().decode()
            break
        proc.send_signal(signal.SIGKILL)
        proc.wait()
        state = dump(engine)
        cp = state.pop("checkpoint")
        block = cp[0] if cp else -1
        checkpoints.append(block)
        assert state == prefix(reference, block), f"seed {seed}, kill {attempt} at checkpoint {block}"
    finished = subprocess.run(command, cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert finished.returncode == 0, finished.stderr
    assert dump(engine) == reference, f"seed {seed}"
    assert len(checkpoints) >= 3 and all(0 < b < head for b in checkpoints), (
        f"kills did not land mid-way (checkpoints {checkpoints}, seed {seed})"
    )


# --- the ape command --------------------------------------------------------------------------------------------


def ape_audit(*args: str, deployments_dir: Path, host: str, wait: bool = True):
    ape = Path(sys.executable).with_name("ape")
    env = dict(os.environ, **{deployment.DEPLOYMENTS_ENV: str(deployments_dir)}, APE_FOUNDRY_HOST=host)
    proc = subprocess.Popen(
        [str(ape), "run", "audit", *args], cwd=ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
    )
    return (*proc.communicate(timeout=180), proc.returncode) if wait else proc


def test_ape_run_audit_index_and_verify(audited, tmp_path, networks):
    host = audited.rpc_url
    records = tmp_path / "deployments"
    choice = "ethereum:local:foundry"
    deployment.write_record(
        deployment.record_path(choice, records),
        {
            "format": 1,
            "network": choice,
            "chain_id": networks.provider.chain_id,
            "token": audited.address,
            "block": {"number": 0, "timestamp": 0, "time": ""},
        },
    )
    db = tmp_path / "cli.sqlite"
    missing_dir = tmp_path / "no-records"
    missing_dir.mkdir()
    # bad input (each must fail with its reason and leave nothing behind) and a good run, in parallel
    good_db = tmp_path / "good.sqlite"
    runs = {
        "bad url": ape_audit(
            "index", "--network", choice, "--db", "mysql://x@y/z", deployments_dir=records, host=host, wait=False
        ),
        "no record": ape_audit(
            "index", "--network", choice, "--db", f"sqlite:///{db}", deployments_dir=missing_dir, host=host, wait=False
        ),
        "index": ape_audit(
            "index", "--network", choice, "--db", f"sqlite:///{good_db}", deployments_dir=records, host=host, wait=False
        ),
    }
    done = {name: (*proc.communicate(timeout=180), proc.returncode) for name, proc in runs.items()}
    out, err, code = done["bad url"]
    assert code == 2 and "unsupported database" in out + err and "Traceback" not in out + err
    out, err, code = done["no record"]
    assert code == 1 and "no deployment record" in out + err and "Traceback" not in out + err
    assert not db.exists()
    out, err, code = done["index"]
    assert code == 0, out + err
    assert "checkpoint block" in out
    db = good_db
    engine = store.open_database(f"sqlite:///{db}")
    try:
        with engine.connect() as conn:
            assert store.count_events(conn) == len(chain_logs(audited))
        with engine.begin() as conn:
            conn.execute(update(schema.transfers).where(schema.transfers.c.amount == 30_000).values(amount=31_000))
    finally:
        engine.dispose()
    out, err, code = ape_audit(
        "verify", "--network", choice, "--db", f"sqlite:///{db}", deployments_dir=records, host=host
    )
    assert code == 1, out + err
    assert "mismatches" in out and "FAILED" in out and "balance" in out

"""Storage benchmark (`make bench-storage`): bytes on disk per payment and per empty block, on the Geth network's
nodes and in the audit database (SQLite and PostgreSQL), for docs/SCALING.md's storage per year.

Run from the repository root with ``python -m bench.storage``. It makes a fresh permissioned network in a
temporary directory on free ports (`bench.network.start_network`: three Clique sealers and the archive node, 1 s
blocks; every node runs ``--gcmode archive``, see `deposit_token.chain.geth.nodes`), deploys the token system and
sets it up straight on the archive node (`bench.network.Bench`: 40 vendors, SPENDERS officials enrolled and
funded), and indexes that chain into a fresh SQLite database and a fresh PostgreSQL database (a throwaway server,
or the one DEPOSIT_TOKEN_TEST_PG_URL names). Then, in three phases, each ending with every node stopped (geth
flushes its database on SIGTERM), each node's database compacted (``geth db compact``: without it, du measures
wherever pebble's background compaction stood; a trial run's four nodes shrank from 24 to 10 MB across an idle
restart) and its ``geth/chaindata`` (key-value store and freezer, pebble's write-ahead logs left out) measured
with ``du -sb`` and ``geth db inspect``:

* A, the set-up: stop, measure.
* B, idle: start, IDLE_S seconds with no transaction (Clique seals an empty block every second), stop, measure.
  ``*_bytes_per_empty_block`` = growth / blocks sealed; it also carries the restart's own writes (a new WAL,
  manifest and options file), so it is an upper bound.
* C, payments: start, PAYMENTS payments (ROUNDS rounds, every spender pays once per round, pre-signed and sent in
  batches of BATCH straight to the archive node, each round mined before the next is sent, vendors' balances
  checked afterwards), index the new events into both databases, stop, measure.
  ``*_bytes_per_payment`` = (growth in C - growth in B x blocks of C / blocks of B) / PAYMENTS: the empty
  blocks' share and the restart's writes taken out with phase B's rate.

``sqlite_bytes_per_payment`` / ``postgres_bytes_per_payment``: growth of the audit database across phase C's
indexing over the payments (SQLite: the file after its write-ahead log is checkpointed; PostgreSQL: the sum of
``pg_total_relation_size`` of every table and partition in the schema: rows, indexes and TOAST). ``meta.inspect``
has ``geth db inspect``'s categories (logical key + value bytes, before compression) per node and phase, which
split the growth into block history (headers, bodies, receipts, indexes) and state (trie nodes, snapshot).

Caveat: the run is short, so every block stays in geth's key-value store; a chain older than 90,000 blocks
(25 hours at 1 s) moves the older blocks to the freezer (flat files, receipts and bodies compressed), so a year's
figure from these rates is an estimate, not a measurement. Other engineers' work shares this machine's two cores;
bytes do not depend on load, except that blocks are fuller when the nodes keep up (fewer, fuller blocks share
trie nodes), so ``meta`` records the blocks and payments per block. The run exits 0; it has no targets.
"""

from __future__ import annotations

import argparse
import os
import re
import shutil
import sqlite3
import subprocess
import sys
import tempfile
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from rich.console import Console
from sqlalchemy import text

from bench import throughput
from bench.network import Bench, Endpoint, start_network
from bench.report import Row, report, run_meta, wide_console
from deposit_token.audit.db import pgserver, store
from deposit_token.audit.sync.indexer import Indexer, IndexerConfig
from deposit_token.chain.geth import GethNetwork
from deposit_token.chain.geth.binary import find_geth
from deposit_token.chain.rpc import RpcClient

SPENDERS = 2_000
ROUNDS = 10  # payments per spender; 10 x at most 5,000 KRW stays within each spender's 100,000 KRW
PAYMENTS = SPENDERS * ROUNDS
assert ROUNDS * 5_000 <= throughput.SPENDER_ALLOCATION
BATCH = 500
IDLE_S = 90.0  # about as long as phase C takes, so that the restart's writes cancel out (see the docstring)
ROUND_TIMEOUT = 180.0
PG_URL_ENV = "DEPOSIT_TOKEN_TEST_PG_URL"

ROWS = [
    Row("sealer_bytes_per_payment", unit="B", note="a sealer's chaindata growth per payment (du -sb, all 3 mean)"),
    Row("archive_bytes_per_payment", unit="B", note="the archive node's chaindata growth per payment (du -sb)"),
    Row("sealer_bytes_per_empty_block", unit="B", note="a sealer's growth per idle 1 s block (upper bound)"),
    Row("archive_bytes_per_empty_block", unit="B", note="the archive node's growth per idle block (upper bound)"),
    Row("sqlite_bytes_per_payment", unit="B", note="audit database file growth per payment indexed"),
    Row("postgres_bytes_per_payment", unit="B", note="sum of pg_total_relation_size growth per payment indexed"),
    Row("archive_history_bytes_per_payment", unit="B", note="geth db inspect: block history categories (logical)"),
    Row("archive_state_bytes_per_payment", unit="B", note="geth db inspect: trie nodes + snapshot (logical)"),
    Row("archive_logical_bytes_per_payment", unit="B", note="geth db inspect: every category (logical)"),
    Row("payments", unit="tx", note="payments of phase C, all succeeded"),
    Row("payment_blocks", unit="blocks", note="blocks sealed during phase C"),
    Row("idle_blocks", unit="blocks", note="empty blocks sealed during phase B"),
    Row("payments_per_s", unit="tx/s", note="phase C's payments over its sending and mining time"),
    Row("audit_events_per_payment", unit="events", note="audit rows written per payment (phase C, SQLite)"),
]

# geth db inspect's categories (v1.13): block history vs state; the rest (metadata, codes, clique snapshots) is
# neither and stays out of both.
HISTORY = {
    "Headers",
    "Bodies",
    "Receipt lists",
    "Receipts",
    "Difficulties",
    "Block number->hash",
    "Block hash->number",
    "Transaction index",
    "Bloombit index",
    "Hashes",
    "Diffs",
}
STATE = {
    "Hash trie nodes",
    "Path trie state lookups",
    "Path trie account nodes",
    "Path trie storage nodes",
    "Account snapshot",
    "Storage snapshot",
    "Trie preimages",
}
UNITS = {"B": 1, "KIB": 1024, "MIB": 1024**2, "GIB": 1024**3, "TIB": 1024**4}
INSPECT_ROW = re.compile(
    r"^\|\s*([^|]+?)\s*\|\s*([^|]+?)\s*\|\s*([\d.]+)\s*([KMGT]?I?B)\s*\|\s*(\d*)\s*\|$", re.IGNORECASE
)


def chaindata_bytes(directory: Path, wal: bool = True) -> int:
    """``du -sb`` of a node's chain database (key-value store and freezer): apparent size in bytes; without `wal`,
    leaving out pebble's write-ahead logs (``*.log``: emptied into tables when geth stops, kept for reuse)."""
    exclude = [] if wal else ["--exclude=*.log"]
    out = subprocess.run(
        ["du", "-sb", *exclude, str(directory / "geth" / "chaindata")], check=True, capture_output=True, text=True
    ).stdout
    return int(out.split()[0])


def compact(geth: str, directory: Path) -> None:
    """``geth db compact`` of a stopped node: every level rewritten, so that what du measures is the live data,
    compressed, rather than wherever pebble's background compaction happened to be when geth stopped."""
    done = subprocess.run(
        [geth, "db", "compact", "--datadir", str(directory)], capture_output=True, text=True, timeout=600
    )
    if done.returncode != 0:
        raise RuntimeError(f"geth db compact failed for {directory}: {done.stderr.strip()[-300:]}")


def inspect(geth: str, directory: Path) -> dict[str, int]:
    """``geth db inspect`` of a stopped node: {"<database>/<category>": bytes}, logical sizes (2 decimals of the
    unit geth prints)."""
    done = subprocess.run(
        [geth, "db", "inspect", "--datadir", str(directory)], capture_output=True, text=True, timeout=300
    )
    sizes: dict[str, int] = {}
    for line in (done.stdout + done.stderr).splitlines():
        match = INSPECT_ROW.match(line.strip())
        if match and match.group(1) != "DATABASE":
            database, category, number, unit = match.group(1), match.group(2), match.group(3), match.group(4)
            sizes[f"{database}/{category}"] = round(float(number) * UNITS[unit.upper()])
    if not sizes:
        raise RuntimeError(f"geth db inspect printed no table for {directory}: {done.stderr.strip()[-300:]}")
    return sizes


def split(sizes: dict[str, int]) -> tuple[int, int]:
    """(block history, state) bytes of one inspection."""
    history = sum(v for k, v in sizes.items() if k.split("/", 1)[1] in HISTORY)
    state = sum(v for k, v in sizes.items() if k.split("/", 1)[1] in STATE)
    return history, state


class AuditDatabases:
    """The SQLite and PostgreSQL audit databases, indexed from the archive node, and their sizes."""

    def __init__(self, directory: Path, url: str, chain_id: int, token: str, start_block: int) -> None:
        self.url, self.token, self.start_block = url, token, start_block
        self.sqlite_path = directory / "audit.sqlite"
        self.server: pgserver.PgServer | None = None
        admin = os.environ.get(PG_URL_ENV)
        if not admin:
            self.server = pgserver.start_server()
            admin = self.server.url()
        self.admin, self.pg_name = admin, f"bench_storage_{os.getpid()}"
        self.pg_url = pgserver.create_database(admin, self.pg_name)
        self.engines = {
            "sqlite": store.open_database(f"sqlite:///{self.sqlite_path}"),
            "postgres": store.open_database(self.pg_url),
        }
        for engine in self.engines.values():
            store.bind_to_chain(engine, chain_id, token, start_block)

    def index(self) -> dict[str, int]:
        """Indexes both databases up to the head; the events each wrote."""
        written = {}
        for name, engine in self.engines.items():
            rpc = RpcClient(self.url, timeout=600)
            try:
                stats = Indexer(rpc, engine, IndexerConfig(token=self.token, start_block=self.start_block)).run()
            finally:
                rpc.close()
            written[name] = stats.events
        return written

    def sizes(self) -> dict[str, int]:
        """Bytes of each database: the SQLite file with its log checkpointed, the PostgreSQL tables' total."""
        self.engines["sqlite"].dispose()
        with sqlite3.connect(self.sqlite_path) as conn:
            conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")
        sqlite_bytes = sum(
            p.stat().st_size for p in self.sqlite_path.parent.glob(self.sqlite_path.name + "*") if p.is_file()
        )
        with self.engines["postgres"].connect() as conn:
            # Leaf tables only (a partitioned table holds nothing itself): rows, indexes, TOAST of each.
            postgres_bytes = conn.execute(
                text(
                    "SELECT coalesce(sum(pg_total_relation_size(c.oid)), 0) FROM pg_class c "
                    "JOIN pg_namespace n ON n.oid = c.relnamespace "
                    "WHERE n.nspname = current_schema() AND c.relkind IN ('r', 'm')"
                )
            ).scalar_one()
        return {"sqlite": sqlite_bytes, "postgres": int(postgres_bytes)}

    def revisions(self) -> dict[str, str]:
        """Each database's Alembic revision: the schema the bytes were measured with."""
        out = {}
        for name, engine in self.engines.items():
            with engine.connect() as conn:
                out[name] = str(conn.execute(text("SELECT version_num FROM alembic_version")).scalar_one())
        return out

    def events(self) -> int:
        with self.engines["sqlite"].connect() as conn:
            return store.count_events(conn)

    def close(self) -> None:
        for engine in self.engines.values():
            engine.dispose()
        try:
            if self.server is None:
                pgserver.drop_database(self.admin, self.pg_name)
        finally:
            if self.server is not None:
                pgserver.stop_server(self.server)


class StorageBench:
    """One run: the network, the token, the audit databases and the three phases' measurements."""

    def __init__(self, network: GethNetwork, directory: Path, console: Console) -> None:
        self.network, self.directory, self.console = network, directory, console
        self.geth = find_geth()
        self.rpc = RpcClient(network.rpc_url, timeout=120)
        self.bench = Bench(Endpoint(network.rpc_url, network.chain_id), console, spenders=SPENDERS, recipients=0)
        self.disk: dict[str, dict[str, int]] = {}  # phase -> node -> du bytes, compacted, without the WAL
        self.disk_raw: dict[str, dict[str, int]] = {}  # the same as geth left it (WAL included)
        self.inspected: dict[str, dict[str, dict[str, int]]] = {}  # phase -> node -> category -> bytes
        self.heads: dict[str, int] = {}
        self.revisions: dict[str, str] = {}

    def log(self, message: str) -> None:
        self.console.log(message)

    def stop_and_measure(self, phase: str) -> None:
        self.heads[phase] = self.rpc.block_number()
        stops = self.network.stop()
        if not all(s.graceful for s in stops):
            raise RuntimeError(f"a node did not stop within its timeout in phase {phase}: {stops}")
        self.disk_raw[phase] = {n.name: chaindata_bytes(n.directory) for n in self.network.nodes}
        for node in self.network.nodes:
            compact(self.geth, node.directory)
        self.disk[phase] = {n.name: chaindata_bytes(n.directory, wal=False) for n in self.network.nodes}
        self.inspected[phase] = {
            n.name: inspect(self.geth, n.directory) for n in (self.network.sealers[0], self.network.archive)
        }
        total = sum(self.disk[phase].values())
        self.log(f"phase {phase}: head {self.heads[phase]:,}, nodes stopped, chaindata {total / 1e6:,.1f} MB in all")

    def restart(self, last_phase: str) -> None:
        self.network.start()
        self.network.wait_for_block(self.heads[last_phase] + 1, timeout=60)
        # New connections: the old ones' server went away with the nodes.
        for client in (self.rpc, self.bench.rpc):
            client.close()
        self.rpc = self.bench.rpc = RpcClient(self.network.rpc_url, timeout=120)

    def pay(self) -> float:
        """PAYMENTS pre-signed payments, round by round; seconds from the first send to the last round mined."""
        before = self.bench.vendor_total()
        total, seconds = 0, 0.0
        for round_ in range(ROUNDS):
            nonces = self.bench.nonces("pending")
            raws = []
            for k, spender in enumerate(self.bench.spenders):
                data, amount = self.bench.payment(round_, k)
                total += amount
                raw, _ = throughput.sign_payment(
                    spender, nonces[spender.address], self.bench.token.address, data, self.network.chain_id
                )
                nonces[spender.address] += 1
                raws.append(raw)
            began = time.perf_counter()
            for i in range(0, len(raws), BATCH):
                answers = self.rpc.batch([("eth_sendRawTransaction", [raw]) for raw in raws[i : i + BATCH]])
                refused = [a for a in answers if isinstance(a, Exception)]
                if refused:
                    raise RuntimeError(f"geth refused {len(refused)} payments, e.g. {refused[0]}")
            self.bench.wait_until_mined(nonces, timeout=ROUND_TIMEOUT)
            seconds += time.perf_counter() - began
            self.log(f"round {round_ + 1}/{ROUNDS}: {len(raws):,} payments mined")
        paid = self.bench.vendor_total() - before
        if paid != total:
            raise RuntimeError(f"not every payment succeeded: vendors received {paid:,} of {total:,} KRW")
        return seconds

    def run(self) -> tuple[dict[str, Any], dict[str, Any]]:
        start_block = self.rpc.block_number()
        self.log(f"set-up straight on the archive node: deploy, program, vendors, {SPENDERS:,} spenders")
        self.bench.set_up()
        audit = AuditDatabases(
            self.directory, self.network.rpc_url, self.network.chain_id, self.bench.token.address, start_block
        )
        try:
            audit.index()
            audit_before = audit.sizes()
            self.stop_and_measure("A")

            self.restart("A")
            self.log(f"phase B: {IDLE_S:g} s idle")
            time.sleep(IDLE_S)
            self.stop_and_measure("B")

            self.restart("B")
            self.log(f"phase C: {PAYMENTS:,} payments ({ROUNDS} rounds of {SPENDERS:,})")
            seconds = self.pay()
            events_before = audit.events()
            indexed = audit.index()
            audit_after = audit.sizes()
            events = audit.events() - events_before
            self.revisions = audit.revisions()
            self.stop_and_measure("C")
        finally:
            audit.close()
        return self.figures(seconds, audit_before, audit_after, events, indexed)

    def figures(
        self,
        seconds: float,
        audit_before: dict[str, int],
        audit_after: dict[str, int],
        events: int,
        indexed: dict[str, int],
    ) -> tuple[dict[str, Any], dict[str, Any]]:
        idle_blocks = self.heads["B"] - self.heads["A"]
        payment_blocks = self.heads["C"] - self.heads["B"]
        per_payment, per_block = {}, {}
        for name in self.network.names:
            grew_b = self.disk["B"][name] - self.disk["A"][name]
            grew_c = self.disk["C"][name] - self.disk["B"][name]
            per_block[name] = grew_b / idle_blocks
            per_payment[name] = (grew_c - per_block[name] * payment_blocks) / PAYMENTS
        sealers = [n.name for n in self.network.sealers]
        archive = self.network.archive.name
        history_c, state_c = split(self.inspected["C"][archive])
        history_b, state_b = split(self.inspected["B"][archive])
        history_a, state_a = split(self.inspected["A"][archive])
        history_idle = (history_b - history_a) / idle_blocks
        logical = {phase: sum(self.inspected[phase][archive].values()) for phase in "ABC"}
        logical_idle = (logical["B"] - logical["A"]) / idle_blocks
        state_idle = (state_b - state_a) / idle_blocks
        figures: dict[str, Any] = {
            "sealer_bytes_per_payment": round(sum(per_payment[s] for s in sealers) / len(sealers)),
            "archive_bytes_per_payment": round(per_payment[archive]),
            "sealer_bytes_per_empty_block": round(sum(per_block[s] for s in sealers) / len(sealers)),
            "archive_bytes_per_empty_block": round(per_block[archive]),
            "sqlite_bytes_per_payment": round((audit_after["sqlite"] - audit_before["sqlite"]) / PAYMENTS),
            "postgres_bytes_per_payment": round((audit_after["postgres"] - audit_before["postgres"]) / PAYMENTS),
            "archive_history_bytes_per_payment": round(
                (history_c - history_b - history_idle * payment_blocks) / PAYMENTS
            ),
            "archive_state_bytes_per_payment": round((state_c - state_b - state_idle * payment_blocks) / PAYMENTS),
            "archive_logical_bytes_per_payment": round(
                (logical["C"] - logical["B"] - logical_idle * payment_blocks) / PAYMENTS
            ),
            "payments": PAYMENTS,
            "payment_blocks": payment_blocks,
            "idle_blocks": idle_blocks,
            "payments_per_s": round(PAYMENTS / seconds, 1),
            "audit_events_per_payment": round(events / PAYMENTS, 3),
        }
        meta = {
            "heads": self.heads,
            "chaindata_du_bytes": self.disk,
            "chaindata_du_bytes_as_left_by_geth": self.disk_raw,
            "bytes_per_payment_by_node": {k: round(v) for k, v in per_payment.items()},
            "bytes_per_empty_block_by_node": {k: round(v) for k, v in per_block.items()},
            "inspect": self.inspected,
            "audit_bytes": {"before_payments": audit_before, "after_payments": audit_after},
            "audit_events_indexed_in_c": indexed,
            "audit_schema_revision": self.revisions,
            "payments_per_block_mean": round(PAYMENTS / payment_blocks, 1),
            "spenders": SPENDERS,
            "rounds": ROUNDS,
            "idle_s": IDLE_S,
            "gcmode": "archive on every node (deposit_token.chain.geth.nodes), state.scheme hash",
            "method": "every node stopped after each phase, geth db compact, du -sb --exclude=*.log "
            "<node>/geth/chaindata; per payment = (growth in C - growth per idle block in B x blocks of C) / payments",
        }
        return figures, meta


def main(argv: Sequence[str] | None = None) -> int:
    argparse.ArgumentParser(
        prog="python -m bench.storage",
        description=(__doc__ or "").split("\n\n")[0] + " Writes bench/results/storage.json; takes no options.",
    ).parse_args(argv)
    started = time.monotonic()
    console = wide_console()
    from ape.logging import logger

    logger.set_level("WARNING")
    load_before = os.getloadavg()[0]
    # A short path: the nodes' IPC sockets live in it (unix socket paths are limited to ~107 bytes).
    directory = Path(tempfile.mkdtemp(prefix="dt-bench-st-"))
    try:
        network = start_network(directory, console)
        try:
            figures, meta = StorageBench(network, directory, console).run()
            meta["geth_version"] = (
                subprocess.run([find_geth(), "version"], capture_output=True, text=True, check=False)
                .stdout.partition("Version: ")[2]
                .split("\n")[0]
            )
        finally:
            network.stop()
    finally:
        shutil.rmtree(directory, ignore_errors=True)
    meta.update(run_meta("storage", started, load_before))
    report(
        "storage",
        ROWS,
        figures,
        {},
        meta,
        title="storage benchmark: bytes per payment and per empty block (Geth nodes, SQLite, PostgreSQL)",
        console=console,
    )
    console.print(f"run time {time.monotonic() - started:.1f} s")
    return 0


if __name__ == "__main__":
    sys.exit(main())

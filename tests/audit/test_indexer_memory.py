"""The indexer's memory does not grow with the chain's length (issue 12): a backfill of 3N events peaks at the
same resident memory as one of N, and the default configuration stays under the 150 MB bound even where the
adaptive block range would step from sparse set-up blocks into blocks of 2,000 events each.

A dedicated Anvil holds a dense chain built the benchmark's way (``bench.indexer``: multicalls of 50 payments,
1,000 payments per block); each backfill runs in a subprocess of its own into a fresh SQLite file, and reports
its peak resident set size (VmHWM), so that neither pytest's nor the chain builder's memory counts.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from bench.indexer import FIRST_VENDOR, VENDORS, BenchChain, Node, build_chain
from deposit_token.paths import ROOT

PAYMENTS = 9_000  # 9 blocks of 2,000 events after the set-up blocks: 3N; the first 3 blocks N
GROWTH_TOLERANCE_MB = 8  # 1.2 KB kept per event (the figure) would add ~14 MB between N and 3N
BOUND_MB = 150

CHILD = """
import json, sys
from deposit_token.audit.db import store
from deposit_token.audit.sync.indexer import Indexer, IndexerConfig
from deposit_token.chain.rpc import RpcClient

url, db, token, start, last, settings = sys.argv[1:7]
rpc = RpcClient(url, timeout=120)
engine = store.open_database(db)
store.bind_to_chain(engine, rpc.chain_id(), token, int(start))
head = rpc.block_number()
config = IndexerConfig(token=token, start_block=int(start), confirmations=head - int(last), **json.loads(settings))
stats = Indexer(rpc, engine, config).run()
with engine.connect() as conn:
    assert store.count_events(conn) == stats.events
hwm = next(int(line.split()[1]) for line in open("/proc/self/status") if line.startswith("VmHWM:"))
print(json.dumps({"events": stats.events, "commits": stats.commits, "peak_rss_mb": hwm / 1024}))
"""


@pytest.fixture(scope="module")
def dense_chain() -> tuple[str, BenchChain]:
    node = Node(accounts=FIRST_VENDOR + VENDORS + 5)
    try:
        yield node.url, build_chain(node, PAYMENTS, lambda *_: None)
    finally:
        node.stop()


def backfill(tmp_path: Path, url: str, chain: BenchChain, last: int, name: str, **settings: int) -> dict:
    """(events, commits, peak_rss_mb) of indexing blocks start..`last` in a fresh process and database."""
    done = subprocess.run(
        [
            sys.executable,
            "-c",
            CHILD,
            url,
            f"sqlite:///{tmp_path / name}",
            chain.token,
            str(chain.start_block),
            str(last),
            json.dumps(settings),
        ],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 0, done.stderr[-2000:]
    return json.loads(done.stdout.strip().splitlines()[-1])


def test_peak_memory_does_not_grow_with_the_chain(dense_chain, tmp_path):
    url, chain = dense_chain
    third = chain.head - 2 * PAYMENTS // 1_000 // 3  # bench.indexer puts 1,000 payments in a block
    # small ranges (about 1,000 logs): many steps, so whatever a step left behind would add up
    small = dict(target_logs=1_000, initial_range=1)
    n = backfill(tmp_path, url, chain, third, "n.sqlite", **small)
    n3 = backfill(tmp_path, url, chain, chain.head, "3n.sqlite", **small)
    assert n3["events"] > 2.5 * n["events"] > 12_000, (n, n3)
    assert n3["commits"] >= 9, n3
    assert n3["peak_rss_mb"] - n["peak_rss_mb"] < GROWTH_TOLERANCE_MB, (n, n3)


def test_default_configuration_stays_within_the_bound(dense_chain, tmp_path):
    """The CLI's configuration (first range 10 blocks, then adapting): the range doubles over the sparse
    set-up blocks and then meets 2,000 events per block; the answer cap makes it split instead of reading
    tens of thousands of logs at once."""
    url, chain = dense_chain
    run = backfill(tmp_path, url, chain, chain.head, "default.sqlite", initial_range=10)
    assert run["events"] > 18_000, run
    assert run["peak_rss_mb"] <= BOUND_MB, run

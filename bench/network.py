"""Network benchmark (`make bench-network`): the pilot on the real Geth Clique network, through the gateway.

Run from the repository root with ``python -m bench.network``. It makes a fresh permissioned network in a
temporary directory on free ports (`deposit_token.chain.geth.GethNetwork`: three Clique sealers and the archive
node, 1 s blocks, the genesis' gas limit, zero gas price), deploys the token system and sets it up straight on the
archive node through the Submitter (`bench.throughput.Bench.set_up`: 40 vendors, SPENDERS officials enrolled and
funded), then starts the authenticated gateway as a process of its own in front of the archive node, following
the token, with a wallet client's key. A live chain's clock is real time: the program opens an hour before now
and closes a day after, and its hours cover the whole day, so the run works on any date at any hour. Then, all in
the same run:

* three kinds of burst of BURST payments each (every spender pays ROUNDS vendors), taking turns HALVES times so
  that all see the shared machine's load alike; each figure is its kind's payments over its kind's time:
* ``payments_per_s``: end to end through the gateway: `Submitter.submit` with the gateway's URL and the wallet
  client's key (nonces fetched, signed, sent in batches of BATCH, every sender recovered and checked by the
  gateway, confirmed by each new block's receipts through the gateway), timed from the call to its return; only
  payments whose receipts, fetched afterwards (untimed) from the archive node, show success count.
* ``geth_ingest_per_s``, geth's ceiling: the payments pre-signed (untimed), then timed from the first batched
  ``eth_sendRawTransaction`` straight to the archive node until every one of them is mined and its receipt read
  on the archive node (``eth_getBlockReceipts`` and the header of each new block, as the Submitter confirms on
  Geth) showing success. Sent over CONNECTIONS concurrent keep-alive connections (each carrying its share of the
  spenders in nonce order): geth runs the calls of one JSON-RPC batch one after another, and on a busy machine
  each ``eth_sendRawTransaction`` waits its turn, so a single sender leaves geth idle part of the time.
  ``ratio_to_ceiling`` = payments_per_s / geth_ingest_per_s.
* ``geth_ingest_one_connection_per_s``: the same over one connection, the way the Submitter sends;
  ``ratio_to_one_connection`` = payments_per_s / that.
* ``confirm_p50_s`` / ``confirm_p95_s``: a steady stream of STEADY_PAYMENTS payments through the gateway, one
  every STEADY_INTERVAL s (each from another spender), from each ``eth_sendRawTransaction``'s answer to the first
  moment its block is the archive node's head (a watcher thread polls ``eth_blockNumber`` every WATCH_INTERVAL
  s). The same measured within the bursts (``*_burst_confirm_*``, from the answer of the batch that carried the
  payment) shows the queueing a burst adds.
* ``gateway_overhead_p50_ms`` / ``gateway_overhead_p95_ms``: ``eth_blockNumber`` and ``eth_call`` (balanceOf)
  REQUESTS times each way, straight to the archive node and through the gateway, in alternating rounds
  (`bench.gateway.bench_latency`); the larger overhead of the two methods.
* ``indexer_events_per_s``: `deposit_token.audit`'s indexer filling a fresh SQLite database with every event
  of the run from the archive node, timed from its first request to its last commit.

``meta.cpu`` has the CPU seconds the four geth nodes, the gateway and this process spent in each kind of burst
(per payment, and their share of the machine's cores). Other engineers' work shares this machine's two cores
with the four geth nodes (every block is executed by each sealer that builds one and imported by the other
nodes), so figures vary from run to run; `meta` records the load average before and after. The run exits 0
whether or not a target is met.
"""

from __future__ import annotations

import argparse
import os
import shutil
import statistics
import sys
import tempfile
import threading
import time
from collections.abc import Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import requests
from rich.console import Console

from bench import throughput
from bench.gateway import bench_latency, percentile, send_batch
from bench.report import Row, Target, report, run_meta, wide_console
from deposit_token.audit.db import store
from deposit_token.audit.sync.indexer import Indexer, IndexerConfig
from deposit_token.chain.geth import GethNetwork, GethNetworkError, Ports
from deposit_token.chain.rpc import DEFAULT_CHUNK, Call, RpcClient
from deposit_token.chain.submit import Submitter, TxRequest, encode_call
from deposit_token.domain import presets
from deposit_token.domain.rules import ProgramSpec
from deposit_token.gateway import GatewayConfig, KeyStore, RunningGateway, start_process, stop_process

ALL_DAY = ((0, 24),) * 7
SPENDERS = 1_500
ROUNDS = 2  # payments per spender in each burst; every spender pays 3 x HALVES x ROUNDS + 1 times in all
BURST = SPENDERS * ROUNDS
HALVES = 2  # each kind of burst twice, taking turns
PAYMENTS = BURST * HALVES  # per kind
# A burst stays well below what one node's transaction pool holds: geth's default --txpool.globalslots (5,120)
# + --txpool.globalqueue (1,024). A sealer whose pool is full refuses further transactions priced 0 from its
# peers as underpriced and is never offered them again: they stay in the archive node's pool, never mined.
assert BURST <= 4_000
assert (3 * HALVES * ROUNDS + 1) * 5_000 <= throughput.SPENDER_ALLOCATION  # payments are 1,000-5,000 KRW
BATCH = 500  # transactions per JSON-RPC batch
CONNECTIONS = 4  # concurrent connections of the ceiling's sender
CLIENT = "bench-wallet"
STEADY_PAYMENTS = 100
STEADY_INTERVAL = 0.1
REQUESTS = 1_000  # per method and way for the overhead
WATCH_INTERVAL = 0.01
RECEIPT_POLL = 0.1  # as the Submitter's poll_interval
REWIND = 8  # blocks read again after a fork
CONFIRM_TIMEOUT = 180.0

TARGETS = {
    "ratio_to_ceiling": Target.at_least(0.8),
    "gateway_overhead_p95_ms": Target.at_most(5.0),
}

ROWS = [
    Row(
        "payments_per_s",
        unit="tx/s",
        note=f"{PAYMENTS:,} payments ({HALVES} bursts of {BURST:,}) through the gateway by the Submitter "
        "(wallet key), first send to last confirmation, receipts checked",
    ),
    Row(
        "geth_ingest_per_s",
        unit="tx/s",
        note=f"{PAYMENTS:,} pre-signed payments straight to the archive node over {CONNECTIONS} connections, "
        "first send to last receipt seen",
    ),
    Row("ratio_to_ceiling", unit="x", note="payments_per_s / geth_ingest_per_s"),
    Row("geth_ingest_one_connection_per_s", unit="tx/s", note="the same over one connection (as the Submitter)"),
    Row("ratio_to_one_connection", unit="x", note="payments_per_s / geth_ingest_one_connection_per_s"),
    Row("gateway_overhead_p50_ms", unit="ms", note="the larger p50 overhead of eth_blockNumber and eth_call"),
    Row("gateway_overhead_p95_ms", unit="ms", note=f"{REQUESTS:,} requests per method each way, interleaved"),
    Row(
        "confirm_p50_s",
        unit="s",
        note=f"{STEADY_PAYMENTS} payments through the gateway, one per {STEADY_INTERVAL:g} s: "
        "send answered -> block on the archive node",
    ),
    Row("confirm_p95_s", unit="s"),
    Row("payments_burst_confirm_p50_s", unit="s", note="the same within the gateway bursts (from the batch's answer)"),
    Row("payments_burst_confirm_p95_s", unit="s"),
    Row("ingest_burst_confirm_p50_s", unit="s", note="the same within the pre-signed bursts"),
    Row("ingest_burst_confirm_p95_s", unit="s"),
    Row("indexer_events_per_s", unit="events/s", note="audit indexer, archive node -> fresh SQLite, every event"),
    Row("indexer_events", unit="events"),
    Row("payments_seconds", unit="s"),
    Row("geth_ingest_seconds", unit="s"),
    Row("geth_ingest_send_seconds", unit="s", note="of which sending (the node's eth_sendRawTransaction answers)"),
    Row("geth_ingest_one_connection_send_seconds", unit="s", note="the same over one connection"),
    Row("max_block_payments", unit="tx", note="the fullest block of the run"),
    Row("payments", unit="tx", note="payments of the run that succeeded (all four kinds and the steady stream)"),
    Row("geth_version", note="web3_clientVersion of the archive node"),
    Row("sealers", unit="nodes", note="Clique signers (+ 1 archive node)"),
    Row("period_s", unit="s", note="Clique block period"),
    Row("block_gas_limit", unit="gas"),
]


@dataclass(frozen=True)
class Endpoint:
    """What `throughput.Bench` needs of a node: its JSON-RPC URL and chain id."""

    rpc_url: str
    chain_id: int


class Bench(throughput.Bench):
    """`throughput.Bench` (set-up, payments, helpers) on the Geth network: the program covers now, all day."""

    def program_spec(self, treasury: str) -> ProgramSpec:
        now = int(time.time())
        spec = presets.business_promotion("BP-LIVE-BENCH", treasury, now - 3_600, now + 86_400)
        return replace(spec, hours=ALL_DAY)


class BlockWatcher:
    """Notes when each block number first appears as the archive node's head (a thread polling eth_blockNumber)."""

    def __init__(self, url: str) -> None:
        self.rpc = RpcClient(url, timeout=30)
        self.seen: dict[int, float] = {}
        self._stop = threading.Event()
        self._head = self.rpc.block_number()
        self._thread = threading.Thread(target=self._run, name="block-watcher", daemon=True)

    def __enter__(self) -> BlockWatcher:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join(timeout=10)
        self.rpc.close()

    def _run(self) -> None:
        while not self._stop.wait(WATCH_INTERVAL):
            head = self.rpc.block_number()
            now = time.perf_counter()
            for number in range(self._head + 1, head + 1):
                self.seen[number] = now
            self._head = max(self._head, head)

    def latencies(self, sent: Sequence[float], blocks: Sequence[int | None]) -> list[float]:
        """Seconds from each send to its block's first sighting (transactions without a block are left out)."""
        return [self.seen[b] - t for t, b in zip(sent, blocks) if b is not None and b in self.seen]


class CpuClock:
    """CPU seconds (user + system, from /proc) of the geth nodes, the gateway and this process, per phase."""

    def __init__(self, groups: dict[str, list[int]]) -> None:
        self.groups = groups
        self.spent: dict[str, dict[str, float]] = {}

    def _now(self) -> dict[str, float]:
        tick = os.sysconf("SC_CLK_TCK")
        out = {}
        for name, pids in self.groups.items():
            total = 0.0
            for pid in pids:
                try:
                    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
                except OSError:  # not Linux, or the process is gone: the figure is left out
                    continue
                total += (int(fields[11]) + int(fields[12])) / tick
            out[name] = total
        return out

    @contextmanager
    def phase(self, name: str) -> Iterator[None]:
        before, began = self._now(), time.perf_counter()
        yield
        after = self._now()
        spent = self.spent.setdefault(name, {})
        for group in self.groups:
            spent[group] = spent.get(group, 0.0) + after[group] - before[group]
        spent["wall"] = spent.get("wall", 0.0) + time.perf_counter() - began


class ClockedRpc(RpcClient):
    """An RpcClient that notes when each batch of eth_sendRawTransaction was answered, and its length."""

    def __init__(self, url: str) -> None:
        super().__init__(url)
        self.sends: list[tuple[float, int]] = []

    def batch_results(self, calls: Sequence[Call], chunk: int | None = DEFAULT_CHUNK) -> list[Any]:
        results = super().batch_results(calls, chunk)
        if calls and calls[0][0] == "eth_sendRawTransaction":
            self.sends.append((time.perf_counter(), len(calls)))
        return results


class ClockedSubmitter(Submitter):
    """A Submitter whose raw-transaction batches are timed (ClockedRpc)."""

    def __init__(self, url: str, chain_id: int, **settings: Any) -> None:
        super().__init__(url, chain_id, **settings)
        self.rpc = self.clock = ClockedRpc(url)

    def sent_times(self) -> list[float]:
        """When each request's batch was answered (requests in order; no transaction was refused here)."""
        times: list[float] = []
        for moment, count in self.clock.sends:
            times += [moment] * count
        return times


def quantiles(prefix: str, values: Sequence[float]) -> dict[str, float]:
    return {
        f"{prefix}_p50_s": round(percentile(values, 0.50), 3),
        f"{prefix}_p95_s": round(percentile(values, 0.95), 3),
    }


@dataclass
class Burst:
    """What one kind of burst added up to over its rounds."""

    payments: int = 0
    seconds: float = 0.0
    send_seconds: float = 0.0
    blocks: set[int] = field(default_factory=set)
    latencies: list[float] = field(default_factory=list)
    rounds: list[dict[str, Any]] = field(default_factory=list)

    def add(self, payments: int, seconds: float, blocks: Sequence[int], latencies: list[float], **extra: Any) -> None:
        self.payments += payments
        self.seconds += seconds
        self.blocks |= set(blocks)
        self.latencies += latencies
        self.rounds.append(
            {"payments": payments, "seconds": round(seconds, 3), "per_s": round(payments / seconds, 1), **extra}
        )

    @property
    def per_s(self) -> float:
        return round(self.payments / self.seconds, 1)


KINDS = ("ingest", "gateway", "ingest_one")  # the order within each turn


class NetworkBench:
    """One run: the network, the token, the gateway and the measurements."""

    def __init__(self, network: GethNetwork, console: Console) -> None:
        self.network, self.console = network, console
        self.url = network.rpc_url
        self.rpc = RpcClient(self.url, timeout=120)
        self.bench = Bench(Endpoint(self.url, network.chain_id), console, spenders=SPENDERS, recipients=0)
        self.gateway: RunningGateway | None = None
        self.block_payments: dict[int, int] = {}  # block -> payments of ours in it (bursts and steady stream)
        self.bursts = {kind: Burst() for kind in KINDS}

    def log(self, text: str) -> None:
        self.console.log(text)

    def set_up(self) -> None:
        self.start_block = self.rpc.block_number()
        self.bench.set_up()
        self.token = self.bench.token

    def start_gateway(self, data_dir: Path) -> None:
        self.key = KeyStore(data_dir / "keys.json").add(CLIENT, "wallet", rate=1e9, burst=10**6)
        config = GatewayConfig(
            upstream=self.url, data_dir=data_dir, port=0, token=self.token.address, from_block=self.start_block
        )
        self.gateway = start_process(config)
        self.client_url = self.gateway.url_for(CLIENT, self.key)
        self.log(f"gateway process {self.gateway.pid} on {self.gateway.url}, following {self.token.address}")

    def cpu_clock(self) -> CpuClock:
        assert self.gateway is not None and self.gateway.pid is not None
        geth = [pid for pid in self.network.running().values() if pid is not None]
        return CpuClock({"geth": geth, "gateway": [self.gateway.pid], "bench": [os.getpid()]})

    def shares(self, count: int, parts: int) -> list[list[int]]:
        """The indexes (round-major, as `payment_data` orders them) of each part's share of the spenders."""
        spenders = len(self.bench.spenders)
        return [[i for i in range(count) if i % spenders % parts == j] for j in range(parts)]

    def payment_data(self) -> list[bytes]:
        """BURST payments' calldata: ROUNDS rounds over the spenders."""
        return [self.bench.payment(r, k)[0] for r in range(ROUNDS) for k in range(len(self.bench.spenders))]

    def signer(self, index: int) -> Any:
        return self.bench.spenders[index % len(self.bench.spenders)]

    # --- the ceiling: pre-signed, straight to the archive node ------------------------------------------------

    def presigned(self) -> tuple[list[str], list[str]]:
        """BURST payments signed now: (raw transactions, hashes), consecutive nonces per spender."""
        nonces = self.bench.nonces("pending")
        raws, hashes = [], []
        for i, data in enumerate(self.payment_data()):
            spender = self.signer(i)
            raw, tx_hash = throughput.sign_payment(
                spender, nonces[spender.address], self.token.address, data, self.network.chain_id
            )
            nonces[spender.address] += 1
            raws.append(raw)
            hashes.append(tx_hash)
        return raws, hashes

    def geth_ingest(self, kind: str, connections: int, watcher: BlockWatcher, cpu: CpuClock) -> None:
        """A burst of pre-signed payments straight to the archive node over `connections` concurrent keep-alive
        connections, each carrying every payment of its share of the spenders in nonce order."""
        raws, hashes = self.presigned()
        shares = self.shares(len(raws), connections)
        sent: dict[int, float] = {}
        head = self.rpc.block_number()
        sessions = [requests.Session() for _ in range(connections)]
        for session in sessions:
            session.trust_env = False
            session.headers["Content-Type"] = "application/json"

        def send(j: int) -> None:
            share = shares[j]
            for start in range(0, len(share), BATCH):
                part = share[start : start + BATCH]
                _, answers = send_batch(sessions[j], self.url, [raws[i] for i in part])
                refused = [a for a in answers if "error" in a]
                if refused:
                    raise RuntimeError(f"geth refused {len(refused)} pre-signed payments, e.g. {refused[0]['error']}")
                sent.update(dict.fromkeys(part, time.perf_counter()))

        with cpu.phase(kind), ThreadPoolExecutor(connections, thread_name_prefix="send") as pool:
            began = time.perf_counter()
            list(pool.map(send, range(connections)))
            send_seconds = time.perf_counter() - began
            found = self.confirm_by_blocks(set(hashes), head + 1)
            seconds = time.perf_counter() - began
        for session in sessions:
            session.close()
        failed = [h for h in hashes if not found[h][1]]
        if failed:
            raise RuntimeError(f"{len(failed)} pre-signed payments failed on-chain, e.g. {failed[0]}")
        blocks = [found[h][0] for h in hashes]
        self.log(
            f"{len(raws):,} sent over {connections} connection(s) in {send_seconds:.2f} s, all mined and confirmed "
            f"after {seconds:.2f} s ({len(raws) / seconds:,.0f}/s), blocks {min(blocks)}-{max(blocks)}"
        )
        burst = self.bursts[kind]
        burst.send_seconds += send_seconds
        burst.add(
            len(raws),
            seconds,
            blocks,
            watcher.latencies([sent[i] for i in range(len(raws))], blocks),
            send_seconds=round(send_seconds, 3),
        )

    def confirm_by_blocks(self, hashes: set[str], first: int) -> dict[str, tuple[int, bool]]:
        """Reads each new block's header and receipts (as the Submitter's "blocks" mode) until every one of
        `hashes` was seen: {hash: (block, succeeded)}. Clique forks briefly (an out-of-turn block replaced by the
        in-turn one): a block whose parent is not the block read before sends the scan back REWIND blocks."""
        found: dict[str, tuple[int, bool]] = {}
        known: dict[int, str] = {}  # block number -> hash, as read
        deadline = time.monotonic() + CONFIRM_TIMEOUT
        following = first
        while len(found) < len(hashes):
            head = self.rpc.block_number()
            number = following
            while number <= head:
                part = list(range(number, min(head, number + 15) + 1))
                calls: list[Call] = []
                for n in part:
                    calls += [("eth_getBlockByNumber", [hex(n), False]), ("eth_getBlockReceipts", [hex(n)])]
                answers = self.rpc.batch(calls)
                for k, n in enumerate(part):
                    block, receipts = answers[2 * k], answers[2 * k + 1]
                    parent = known.get(n - 1)
                    if (
                        not isinstance(block, dict)
                        or not isinstance(receipts, list)
                        or any(r["blockHash"] != block["hash"] for r in receipts)
                    ):  # gone, or replaced between the two reads: read it again
                        head = n - 1
                        break
                    if parent is not None and block["parentHash"] != parent:
                        head = -1  # forked: read again from REWIND blocks back
                        following = max(first, n - REWIND)
                        found = {h: seen for h, seen in found.items() if seen[0] < following}
                        break
                    known[n] = block["hash"]
                    for receipt in receipts:
                        if receipt["transactionHash"] in hashes:
                            found[receipt["transactionHash"]] = (n, receipt["status"] == "0x1")
                    number = n + 1
                    following = n + 1
                if head < number:
                    break
            if len(found) < len(hashes):
                if time.monotonic() > deadline:
                    raise RuntimeError(self.stuck(hashes - set(found)))
                time.sleep(RECEIPT_POLL)
        for number, _ok in found.values():
            self.block_payments[number] = self.block_payments.get(number, 0) + 1
        return found

    def stuck(self, missing: set[str]) -> str:
        """Why payments were not seen mined: their receipts, and each node's transaction pool."""
        receipts = self.rpc.batch([("eth_getTransactionReceipt", [h]) for h in sorted(missing)])
        pools = {}
        for name in self.network.names:
            with self.network.ipc(name) as client:
                pools[name] = {k: int(v, 16) for k, v in client.call("txpool_status").items()}
        return (
            f"{len(missing):,} payments were not seen mined within {CONFIRM_TIMEOUT:g} s "
            f"({sum(r is not None for r in receipts)} of them have a receipt); the nodes' pools: {pools}"
        )

    # --- end to end, through the gateway ------------------------------------------------------------------

    def payments(self, watcher: BlockWatcher, cpu: CpuClock) -> None:
        """A burst through the gateway by the Submitter with the wallet client's key."""
        data = self.payment_data()
        requests_ = [TxRequest(self.signer(i), self.token.address, d, throughput.PAY_GAS) for i, d in enumerate(data)]
        submitter = ClockedSubmitter(self.client_url, self.network.chain_id, batch_size=BATCH, gas_price=0)
        with cpu.phase("gateway"):
            began = time.perf_counter()
            outcomes = submitter.submit(requests_)
            seconds = time.perf_counter() - began
        submitter.close()
        # Counted from the receipts on the archive node, fetched after the clock stopped.
        ok = sum(self.bench.receipt_statuses([o.tx_hash if o.status else None for o in outcomes]))
        if ok != len(requests_):
            failed = [o for o in outcomes if not o.status]
            example = f", e.g. {failed[0].error}" if failed else ""
            self.log(f"[red]only {ok:,} of {len(requests_):,} payments through the gateway succeeded{example}[/]")
        blocks = [o.block_number for o in outcomes]
        mined = [b for b in blocks if b is not None]
        for number in mined:
            self.block_payments[number] = self.block_payments.get(number, 0) + 1
        self.log(f"{ok:,} payments in {seconds:.2f} s ({ok / seconds:,.0f}/s), blocks {min(mined)}-{max(mined)}")
        self.bursts["gateway"].add(
            ok, seconds, mined, watcher.latencies(submitter.sent_times(), blocks), submitted=len(requests_)
        )

    def steady(self, watcher: BlockWatcher) -> dict[str, Any]:
        """One payment every STEADY_INTERVAL s through the gateway, each from another spender."""
        spenders = self.bench.spenders[:STEADY_PAYMENTS]
        nonces = self.bench.nonces("pending")
        raws = []
        for k, spender in enumerate(spenders):
            data, _ = self.bench.payment(ROUNDS, k)
            raw, _ = throughput.sign_payment(
                spender, nonces[spender.address], self.token.address, data, self.network.chain_id
            )
            raws.append(raw)
        client = RpcClient(self.client_url, timeout=30)
        head = self.rpc.block_number()
        hashes, sent = [], []
        began = time.perf_counter()
        for i, raw in enumerate(raws):
            pause = began + i * STEADY_INTERVAL - time.perf_counter()
            if pause > 0:
                time.sleep(pause)
            hashes.append(client.call("eth_sendRawTransaction", [raw]))
            sent.append(time.perf_counter())
        client.close()
        found = self.confirm_by_blocks(set(hashes), head + 1)
        if not all(ok for _, ok in found.values()):
            raise RuntimeError("a payment of the steady stream failed on-chain")
        latencies = watcher.latencies(sent, [found[h][0] for h in hashes])
        return {
            **quantiles("confirm", latencies),
            "confirm_mean_s": round(statistics.fmean(latencies), 3),
            "confirm_max_s": round(max(latencies), 3),
        }

    def figures(self) -> dict[str, Any]:
        """The bursts, each kind over all its rounds."""
        ingest, through, ingest_one = (self.bursts[kind] for kind in KINDS)
        return {
            "payments_per_s": through.per_s,
            "payments_ok": through.payments,
            "payments_seconds": round(through.seconds, 3),
            "payments_blocks": len(through.blocks),
            **quantiles("payments_burst_confirm", through.latencies),
            "geth_ingest_per_s": ingest.per_s,
            "geth_ingest_payments": ingest.payments,
            "geth_ingest_seconds": round(ingest.seconds, 3),
            "geth_ingest_send_seconds": round(ingest.send_seconds, 3),
            "geth_ingest_blocks": len(ingest.blocks),
            **quantiles("ingest_burst_confirm", ingest.latencies),
            "ratio_to_ceiling": round(through.per_s / ingest.per_s, 3),
            "geth_ingest_one_connection_per_s": ingest_one.per_s,
            "geth_ingest_one_connection_send_seconds": round(ingest_one.send_seconds, 3),
            "ratio_to_one_connection": round(through.per_s / ingest_one.per_s, 3),
            "max_block_payments": max(self.block_payments.values()),
            "payments": sum(self.block_payments.values()),
        }

    # --- gateway overhead, indexer ----------------------------------------------------------------------

    def overhead(self) -> dict[str, Any]:
        assert self.gateway is not None
        data = "0x" + encode_call(self.token.abi, "balanceOf", [self.bench.spenders[0].address]).hex()
        payloads = {
            "block_number": {"jsonrpc": "2.0", "id": 1, "method": "eth_blockNumber", "params": []},
            "call": {
                "jsonrpc": "2.0",
                "id": 1,
                "method": "eth_call",
                "params": [{"to": self.token.address, "data": data}, "latest"],
            },
        }
        figures: dict[str, Any] = {}
        for method, payload in payloads.items():
            result = bench_latency(self.url, self.gateway.url, payload, (CLIENT, self.key), requests_each=REQUESTS)
            figures.update({f"{method}_{k}": v for k, v in result.items()})
        figures["gateway_overhead_p95_ms"] = max(
            figures["block_number_overhead_p95_ms"], figures["call_overhead_p95_ms"]
        )
        figures["gateway_overhead_p50_ms"] = max(
            figures["block_number_overhead_p50_ms"], figures["call_overhead_p50_ms"]
        )
        return figures

    def indexer(self, directory: Path) -> dict[str, Any]:
        engine = store.open_database(f"sqlite:///{directory / 'audit.sqlite'}")
        rpc = RpcClient(self.url, timeout=600)
        store.bind_to_chain(engine, self.network.chain_id, self.token.address, self.start_block)
        indexer = Indexer(rpc, engine, IndexerConfig(token=self.token.address, start_block=self.start_block))
        began = time.perf_counter()
        stats = indexer.run()
        seconds = time.perf_counter() - began
        rpc.close()
        with engine.connect() as conn:
            rows = store.count_events(conn)
        engine.dispose()
        if rows != stats.events:
            raise RuntimeError(f"the indexer counted {stats.events:,} events but wrote {rows:,} rows")
        return {
            "indexer_events_per_s": round(stats.events / seconds, 1),
            "indexer_events": stats.events,
            "indexer_seconds": round(seconds, 3),
        }


def cpu_meta(cpu: CpuClock, bursts: dict[str, Burst]) -> dict[str, Any]:
    """CPU seconds per kind of burst and per payment (ms), and what share of the machine's cores it had."""
    cores = os.cpu_count() or 1
    out: dict[str, Any] = {}
    for kind, spent in cpu.spent.items():
        groups = {group: value for group, value in spent.items() if group != "wall"}
        payments = max(1, bursts[kind].payments)
        out[kind] = {
            **{f"{group}_cpu_s": round(value, 2) for group, value in groups.items()},
            **{f"{group}_cpu_ms_per_payment": round(value * 1000 / payments, 3) for group, value in groups.items()},
            "wall_s": round(spent["wall"], 2),
            "share_of_machine": round(sum(groups.values()) / (spent["wall"] * cores), 3),
        }
    return out


def measure(network: GethNetwork, directory: Path, console: Console) -> tuple[dict[str, Any], dict[str, Any]]:
    run = NetworkBench(network, console)
    run.log(f"setting up straight on the archive node: deploy, program, vendors, {SPENDERS:,} spenders")
    run.set_up()
    run.start_gateway(directory / "gateway")
    figures: dict[str, Any] = {}
    try:
        cpu = run.cpu_clock()
        with BlockWatcher(run.url) as watcher:
            for turn in range(1, HALVES + 1):
                for kind in KINDS:
                    if kind == "gateway":
                        run.log(f"turn {turn}/{HALVES}: {BURST:,} payments through the gateway by the Submitter")
                        run.payments(watcher, cpu)
                    else:
                        connections = CONNECTIONS if kind == "ingest" else 1
                        run.log(
                            f"turn {turn}/{HALVES}: {BURST:,} pre-signed payments straight to the node over "
                            f"{connections} connection(s)"
                        )
                        run.geth_ingest(kind, connections, watcher, cpu)
            run.log(f"steady stream: {STEADY_PAYMENTS} payments through the gateway, one per {STEADY_INTERVAL:g} s")
            figures.update(run.steady(watcher))
            figures.update(run.figures())
        run.log(f"gateway overhead: eth_blockNumber and eth_call, {REQUESTS:,} requests each way")
        figures.update(run.overhead())
    finally:
        stop_process(directory / "gateway")
    run.log("indexer: every event of the run, archive node -> SQLite")
    figures.update(run.indexer(directory))
    figures["geth_version"] = run.rpc.call("web3_clientVersion")
    meta = {
        "rounds": {kind: burst.rounds for kind, burst in run.bursts.items()},
        "cpu": cpu_meta(cpu, run.bursts),
        "block_payments": {str(k): v for k, v in sorted(run.block_payments.items())},
        "start_block": run.start_block,
        "end_block": run.rpc.block_number(),
    }
    run.rpc.close()
    run.bench.submitter.close()
    return figures, meta


def start_network(directory: Path, console: Console, attempts: int = 3) -> GethNetwork:
    """A new network in `directory`, started. Its free ports are chosen when it is made and bound when it
    starts: another program may take one in between (other test runs share the machine), so a start that
    fails makes a new network and tries again."""
    for attempt in range(1, attempts + 1):
        network = GethNetwork.init(directory / f"net{attempt}", ports=Ports(free=True), light_kdf=True)
        try:
            start = network.start()
            network.wait_for_block(1, timeout=30)
        except GethNetworkError as err:
            network.stop()
            if attempt == attempts:
                raise
            console.log(f"[yellow]the network did not start ({str(err).splitlines()[-1]}); making another[/]")
            continue
        console.log(
            f"own Geth network in {network.data_dir}: {len(network.sealers)} sealers + archive at "
            f"{network.rpc_url} (started in {start.seconds:.1f} s, peered: {start.peered})"
        )
        return network
    raise AssertionError("unreachable")


def main(argv: Sequence[str] | None = None) -> int:
    argparse.ArgumentParser(
        prog="python -m bench.network",
        description=(__doc__ or "").split("\n\n")[0] + " Writes bench/results/network.json; takes no options.",
    ).parse_args(argv)
    started = time.monotonic()
    console = wide_console()
    from ape.logging import logger

    logger.set_level("WARNING")
    load_before = os.getloadavg()[0]
    # A short path: the nodes' IPC sockets live in it (unix socket paths are limited to ~107 bytes).
    directory = Path(tempfile.mkdtemp(prefix="dt-bench-net-"))
    try:
        network = start_network(directory, console)
        try:
            figures, meta = measure(network, directory, console)
            record = network.record
        finally:
            network.stop()
    finally:
        shutil.rmtree(directory, ignore_errors=True)
    meta.update(
        {
            **run_meta("network", started, load_before),
            "chain_id": record["chain_id"],
            "spenders": SPENDERS,
            "burst": BURST,
            "bursts_per_kind": HALVES,
            "ceiling_connections": CONNECTIONS,
            "steady_payments": STEADY_PAYMENTS,
            "json_rpc_batch": BATCH,
            "gateway_client_role": "wallet",
            "confirmation": "Submitter confirm='auto' through the gateway: eth_getBlockReceipts per new block "
            "(geth serves no trace_ methods); receipts re-fetched afterwards from the archive node",
            "txpool": "geth defaults (globalslots 5,120, globalqueue 1,024, accountslots 16)",
        }
    )
    figures.update(
        sealers=len([n for n in record["nodes"] if n["role"] == "sealer"]),
        period_s=record["period"],
        block_gas_limit=record["gas_limit"],
    )
    report(
        "network",
        ROWS,
        figures,
        TARGETS,
        meta,
        title="network benchmark: the pilot on Geth Clique (3 sealers + archive) through the authenticated gateway",
        console=console,
    )
    console.print(f"run time {time.monotonic() - started:.1f} s")
    return 0


if __name__ == "__main__":
    sys.exit(main())

"""The indexer: backfills the token's events in adaptive block ranges, then follows the head.

One step = one block range = one database transaction (rows + blocks + checkpoint, see ``store.commit_range``),
so the database is always exactly "every event up to the checkpoint". A step:

1. asks for the head and, in the same JSON-RPC batch, the block at the checkpoint; a different hash means a
   reorg: roll back to the common ancestor (``reorg``) and go on from there;
2. takes the next range up to ``head - confirmations``; ``eth_getLogs`` for it, and if the provider refuses
   (range or result-count limit) halves the range until it passes; the range then grows or shrinks so that
   each request returns about ``target_logs`` logs;
3. fetches the headers of the blocks with logs, of the range's last block and, near the head, of every block
   of the range; checks that the logs' block hashes are those headers' and that near the head the headers
   chain (parent hashes) onto the checkpoint - a reorg *during* the step makes it start over;
4. checks the answer against those headers' logsBloom (``bloom``): an answer the blooms contradict is a
   provider fault, and the range is asked for again (``bloom_retries`` times, then `bloom.BloomMismatch`);
5. decodes and commits.

The Safes that hold the token's roles (issue 11) are indexed over the same ranges into ``safe_events``
(`deposit_token.audit.sync.safe`): the ones given in the config (the deployment record's) and every contract a
``RoleGranted`` or ``DefaultAdminTransferScheduled`` names (found from the range's own logs, one ``eth_getCode``
per new name). Their events are written just before the range's commit (idempotently: a range done again
changes nothing) and rolled back with the token's rows on a reorg.

The next range is fetched and checked against its headers on a second thread while the current one is
decoded and written, so the node and the database work at the same time (SQLite and PostgreSQL's drivers
release the GIL while they write).

Memory is bounded by design, whatever the chain's length: at any moment the process holds at most one range
being decoded (its parsed logs, dropped before its rows are written) or written (its rows), and the next
range's answer being read and parsed, each about ``target_logs`` events; an answer longer than
``max_response_bytes`` is dropped half-read and the range halved (the range adapts to the chain's density, and
a sparse stretch followed by a dense one would otherwise return an answer of any size). Nothing of a range
outlives its commit: across a backfill the only state that grows is the set of role Safes found (a few
addresses) and the decoder's bounded caches.
"""

from __future__ import annotations

import contextlib
import gc
import json
import threading
import time
from collections.abc import Callable, Mapping, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any, Protocol

from eth_utils import keccak, to_checksum_address
from sqlalchemy import Engine, text

from deposit_token.audit.db import store
from deposit_token.audit.sync import bloom, reorg
from deposit_token.audit.sync import safe as safe_sync
from deposit_token.audit.sync.decode import LogDecoder
from deposit_token.chain.rpc import RpcClient, RpcConnectionError, RpcError
from deposit_token.errors import DepositTokenError

# Token events that name a possible Safe role holder (topic -> index of the holder's topic).
_HOLDER_TOPICS = {
    "0x" + keccak(text="RoleGranted(bytes32,address,address)").hex(): 2,
    "0x" + keccak(text="DefaultAdminTransferScheduled(address,uint48)").hex(): 1,
}


# New container objects between two collections of the youngest generation while the indexer runs (Python's
# default is 700). A range's logs are tens of thousands of dicts and lists that live until the range is decoded,
# and the default makes the cyclic collector scan them again and again: 30% of the parse-and-decode time. None
# of them forms a cycle (they are freed by reference counting), so fewer collections free nothing later.
GC_THRESHOLD = 50_000
RESPONSE_BYTES_PER_TARGET_LOG = 2_000  # the default answer cap: ~2.4 times a target-sized answer


@dataclass
class IndexerConfig:
    """What to index and how.

    confirmations: blocks below the head that are indexed (0 on a local chain; a few on a real network so
        that most reorgs happen before the rows are written - deeper ones are still rolled back).
    reorg_window: how many recent blocks keep their headers in the database (and are hash-chain checked).
    initial_range / max_range: block range of the first ``eth_getLogs`` and the largest one tried.
    target_logs: logs per request the range adapts to (memory per step stays bounded).
    max_response_bytes: the largest ``eth_getLogs`` answer read for a range of several blocks (a log takes
        about 830 bytes; default `RESPONSE_BYTES_PER_TARGET_LOG` x `target_logs`, 10 MB); a longer one is
        abandoned and its range halved, so that a range that suddenly holds far more logs than `target_logs`
        cannot take the memory of its whole answer. A single block is always read whole (it cannot be split;
        its size is bounded by the block gas limit, not by the chain's length).
    check_blooms: check each answer against the headers' logsBloom (``bloom``); off only for a chain whose
        headers carry no real bloom (an all-zero logsBloom would make every log look altered).
    bloom_retries: how often a range the blooms contradict is asked for again before giving up.
    defer_indexes: on a SQLite database still empty, drop the event tables' secondary indexes for the backfill
        and build them once it has caught up (``store.defer_indexes``: a third faster on a 1M-event backfill).
    safes: Safes whose events are indexed too (the deployment record's); role holders that are contracts are
        found and added by the indexer itself when `find_safes` is on.
    """

    token: str
    start_block: int
    confirmations: int = 0
    reorg_window: int = 128
    initial_range: int = 10
    max_range: int = 50_000
    target_logs: int = 5_000
    max_response_bytes: int | None = None
    poll_interval: float = 0.1
    check_blooms: bool = True
    bloom_retries: int = 3
    defer_indexes: bool = True
    safes: tuple[str, ...] = ()
    find_safes: bool = True

    def __post_init__(self) -> None:
        if self.confirmations < 0:
            raise ValueError("confirmations cannot be negative")
        if self.start_block < 0:
            raise ValueError("start block cannot be negative")
        if not 1 <= self.initial_range <= self.max_range:
            raise ValueError("need 1 <= initial_range <= max_range")
        if self.bloom_retries < 0:
            raise ValueError("bloom_retries cannot be negative")
        if self.target_logs < 1:
            raise ValueError("need target_logs >= 1")
        if self.max_response_bytes is None:
            self.max_response_bytes = RESPONSE_BYTES_PER_TARGET_LOG * self.target_logs
        if self.max_response_bytes < 1_000:
            raise ValueError("need max_response_bytes >= 1000")


class Progress(Protocol):
    """Receives the indexer's progress (the CLI shows a bar; tests and services may ignore it)."""

    def update(self, checkpoint: int, target: int, events: int) -> None: ...


@dataclass(frozen=True)
class Commit:
    """One committed step: the range, how many events, and when (wall clock) it became durable."""

    first_block: int
    last_block: int
    events: int
    committed_at: float


@dataclass
class Stats:
    events: int = 0
    commits: int = 0
    rollbacks: list[reorg.Rollback] = field(default_factory=list)
    splits: int = 0
    bloom_retries: int = 0


class _StartOver(DepositTokenError):
    """The chain changed under a step (reorg while fetching): drop the step, check again."""


class _BloomFault(DepositTokenError):
    """The answer contradicts the headers' logsBloom (see ``bloom``): ask for the range again."""


@dataclass
class _Fetched:
    first: int
    last: int
    logs: list[dict[str, Any]]


@dataclass
class _Scan:
    """What the one pass over a range's logs finds (``_scan``)."""

    counts: dict[str, int]  # logs per block, by the logs' own hex block number: one int() per block, not per log
    hashes: dict[str, str]  # the block hash the logs of each block carry (all the same, or _StartOver)
    items: dict[str, set[str]]  # each block's distinct log addresses and topics (``bloom.masks``)

    def names_holders(self) -> bool:
        """Whether a role event (`_HOLDER_TOPICS`) may be among the logs; checked per block, not per log."""
        return any(not distinct.isdisjoint(_HOLDER_TOPICS) for distinct in self.items.values())


def _scan(logs: Sequence[Mapping[str, Any]]) -> _Scan:
    """One pass over a range's logs for every check of `Indexer._prepare` (removed logs, one hash per block,
    counts, the bloom items). It runs on the fetch thread, whose time is the backfill's critical path: a log is
    looked at once, while it is in the cache, instead of once per check (a third of the checking time)."""
    counts: dict[str, int] = {}
    hashes: dict[str, str] = {}
    items: dict[str, set[str]] = {}
    key, block_hash = "", ""  # a log's blockNumber is never empty
    seen: set[str] = set()
    for log_entry in logs:
        if log_entry.get("removed"):
            raise _StartOver(f"removed log in block {int(log_entry['blockNumber'], 16)}")
        if log_entry["blockNumber"] != key:  # logs come block by block
            key = log_entry["blockNumber"]
            if key not in counts:
                counts[key], hashes[key], items[key] = 0, log_entry["blockHash"], set()
            block_hash, seen = hashes[key], items[key]
        if log_entry["blockHash"] != block_hash:
            raise _StartOver(f"block {int(key, 16)} changed while it was being read")
        counts[key] += 1
        seen.add(log_entry["address"])
        seen.update(log_entry["topics"])
    return _Scan(counts, hashes, items)


@dataclass
class _Step:
    """A range ready to be decoded and written: its logs checked against the headers."""

    first: int
    last: int
    events: int
    logs: list[dict[str, Any]]  # dropped once decoded (`_write`), before the rows are written
    timestamps: dict[int, int]
    blocks: list[dict[str, Any]]
    last_hash: str
    near_head: bool
    links: list[tuple[int, str, str]]  # near the head: (number, hash, parent hash) of every block of the range
    holders: list[str]  # role holders the range's logs name (possible Safes)


class Indexer:
    """Indexes one token into one database; see the module docstring for a step."""

    def __init__(
        self,
        rpc: RpcClient,
        engine: Engine,
        config: IndexerConfig,
        decoder: LogDecoder | None = None,
        progress: Progress | None = None,
        on_commit: Callable[[Commit], None] | None = None,
        log: Callable[[str], None] = lambda message: None,
    ):
        self.rpc = rpc
        self.engine = engine
        self.config = config
        self.decoder = decoder or LogDecoder()
        self.progress = progress
        self.on_commit = on_commit
        self.log = log
        self.stats = Stats()
        self._range = config.initial_range
        self._fetch_rpc: RpcClient | None = None  # the prefetch thread's own connection
        self._blooms = bloom.Expectation(config.token, self.decoder.by_topic) if config.check_blooms else None
        self.safes: set[str] = {to_checksum_address(a) for a in config.safes}
        self._not_safes: set[str] = set()  # role holders already looked at that have no code
        self._safes_loaded = False

    # --- the loop -------------------------------------------------------------------------------------------

    def checkpoint(self) -> tuple[int, str] | None:
        with self.engine.connect() as conn:
            return store.read_checkpoint(conn)

    def run(self, follow: bool = False, stop: threading.Event | None = None) -> Stats:
        """Indexes up to the head (``head - confirmations``); with `follow`, keeps following it until `stop`."""
        stop = stop or threading.Event()
        retry_in = 1.0
        thresholds = gc.get_threshold()
        if thresholds[0] < GC_THRESHOLD:
            gc.set_threshold(GC_THRESHOLD, *thresholds[1:])
        if self.config.defer_indexes:
            deferred = store.defer_indexes(self.engine)
            if deferred:
                self.log(f"backfill into an empty database: {deferred} indexes are built once it has caught up")
        restore = True  # indexes deferred now or by an earlier run that stopped before catching up
        try:
            with ThreadPoolExecutor(max_workers=1, thread_name_prefix="getlogs") as pool:
                while not stop.is_set():
                    try:
                        caught_up = self._catch_up(pool, stop)
                        if caught_up and restore:
                            restored = store.restore_indexes(self.engine)
                            if restored:
                                self.log(f"caught up: {restored} deferred indexes built")
                            restore = False
                    except RpcConnectionError as err:
                        if not follow:
                            raise
                        # a follower is a service: a node restart should not end it
                        self.log(f"{err}; retrying in {retry_in:.0f} s")
                        stop.wait(retry_in)
                        retry_in = min(30.0, retry_in * 2)
                        continue
                    retry_in = 1.0
                    if caught_up is None:  # the chain moved under the step: check again shortly
                        stop.wait(self.config.poll_interval)
                    elif caught_up:
                        if not follow:
                            break
                        stop.wait(self.config.poll_interval)
        finally:
            gc.set_threshold(*thresholds)
            if self._fetch_rpc is not None:
                self._fetch_rpc.close()
                self._fetch_rpc = None
        return self.stats

    def _safe_head_and_check(self) -> tuple[int, int]:
        """(target block, checkpoint block) after rolling back a reorg if there was one."""
        cp = self.checkpoint()
        calls: list[tuple[str, Sequence[Any]]] = [("eth_blockNumber", [])]
        if cp is not None:
            calls.append(("eth_getBlockByNumber", [hex(cp[0]), False]))
        answers = self.rpc.batch(calls)
        head = int(answers[0], 16)
        if cp is not None:
            header = answers[1]
            rolled = reorg.check_and_rollback(
                self.rpc, self.engine, cp, header and header["hash"], self.config.start_block
            )
            if rolled is not None:
                safe_sync.rollback(self.engine, rolled.ancestor)
                self.stats.rollbacks.append(rolled)
                self.log(str(rolled))
                cp = self.checkpoint()
        done = cp[0] if cp is not None else self.config.start_block - 1
        return head - self.config.confirmations, done

    def _catch_up(self, pool: ThreadPoolExecutor, stop: threading.Event) -> bool | None:
        """Runs steps until the checkpoint reaches the safe head. True: there was nothing (more) to do; False:
        it indexed up to the head seen at the start; None: a step was dropped (reorg while fetching)."""
        target, done = self._safe_head_and_check()
        if done >= target:
            if self.progress:
                self.progress.update(done, target, self.stats.events)
            return True
        pending: Future[_Step] | None = None
        try:
            while done < target and not stop.is_set():
                step = pending.result() if pending is not None else self._load(self.rpc, done + 1, target)
                pending = None
                if step.last < target:
                    # load the next range while this one is written (safe near the head too: _write checks
                    # the range's parent links against the checkpoint before writing)
                    pending = pool.submit(self._load, self._prefetch_client(), step.last + 1, target)
                self._write(step)
                done = step.last
                del step  # its rows go now, not when the next range's logs are in
                if self.progress:
                    self.progress.update(done, target, self.stats.events)
        except _StartOver as why:
            self.log(f"starting the step over: {why}")
            return None
        finally:
            if pending is not None:
                pending.cancel()
                with contextlib.suppress(Exception):  # the step is abandoned anyway
                    pending.result()
        return False

    def _prefetch_client(self) -> RpcClient:
        if self._fetch_rpc is None:
            self._fetch_rpc = RpcClient(self.rpc.url, self.rpc.timeout)
        return self._fetch_rpc

    # --- fetching -------------------------------------------------------------------------------------------

    def _fetch(self, rpc: RpcClient, first: int, target: int) -> _Fetched:
        """Logs of [first, last] with last <= target, as large a range as the provider accepts."""
        last = min(target, first + self._range - 1)
        while True:
            try:
                logs = rpc.get_logs(self.config.token, first, last, self._max_bytes(first, last))
                break
            except RpcConnectionError:
                raise
            except RpcError as err:
                if not err.is_limit:
                    if "out of range" in err.message.lower() or "height" in err.message.lower():
                        raise _StartOver(f"the chain is shorter than block {last} now") from err
                    raise
                if last == first:
                    raise RpcError(err.method, err.code, f"{err.message} - even for the single block {first}") from err
                last = first + (last - first) // 2
                self._range = last - first + 1
                self.stats.splits += 1
                self.log(f"provider limit ({err.message}); block range now {self._range}")
        span = last - first + 1
        if len(logs) < self.config.target_logs // 2 and span >= self._range:
            self._range = min(self.config.max_range, self._range * 2)
        elif len(logs) > self.config.target_logs:
            self._range = max(1, span * self.config.target_logs // len(logs))
        return _Fetched(first, last, logs)

    def _max_bytes(self, first: int, last: int) -> int | None:
        return self.config.max_response_bytes if last > first else None

    # --- checking (on the prefetch thread) -----------------------------------------------------------------

    def _load(self, rpc: RpcClient, first: int, target: int) -> _Step:
        """The next range from `first`, fetched and checked; asks for it again while the answer
        contradicts the blooms (backing off: a provider's log index that lags its blocks catches up within
        moments)."""
        fetched = self._fetch(rpc, first, target)
        near_head = target - fetched.last <= self.config.reorg_window
        for attempt in range(self.config.bloom_retries + 1):
            try:
                return self._prepare(rpc, fetched, near_head)
            except _BloomFault as fault:
                if attempt == self.config.bloom_retries:
                    raise bloom.BloomMismatch(
                        f"the node's eth_getLogs answer for blocks {fetched.first}-{fetched.last} contradicts the "
                        f"block headers after {attempt + 1} tries: {fault}; nothing of the range was written. Use "
                        "another provider, or check_blooms=False for a chain without real logsBloom"
                    ) from None
                self.stats.bloom_retries += 1
                self.log(f"provider fault ({fault}); asking for blocks {fetched.first}-{fetched.last} again")
                time.sleep(0.2 * 2**attempt)
                logs = rpc.get_logs(
                    self.config.token, fetched.first, fetched.last, self._max_bytes(fetched.first, fetched.last)
                )
                fetched = _Fetched(fetched.first, fetched.last, logs)
        raise AssertionError("unreachable")  # the loop returns or raises

    def _prepare(self, rpc: RpcClient, fetched: _Fetched, near_head: bool) -> _Step:
        first, last, logs = fetched.first, fetched.last, fetched.logs
        scan = _scan(logs)
        by_number = {int(key, 16): n for key, n in scan.counts.items()}
        wanted = set(by_number) | {last}
        if near_head:
            wanted |= set(range(max(first, last - self.config.reorg_window + 1), last + 1))
        numbers = sorted(wanted)
        answers = dict(zip(numbers, rpc.headers(numbers)))
        missing = [n for n, h in answers.items() if h is None]
        if missing:
            raise _StartOver(f"block {missing[0]} is gone")
        headers = {n: h for n, h in answers.items() if h is not None}
        for key, block_hash in scan.hashes.items():
            if block_hash != headers[int(key, 16)]["hash"]:
                raise _StartOver(f"block {int(key, 16)} changed while it was being read")
        fault = self._blooms.fault(headers, bloom.masks(scan.items)) if self._blooms is not None else None
        if fault is not None:
            raise _BloomFault(fault)
        timestamps = {n: int(h["timestamp"], 16) for n, h in headers.items()}
        return _Step(
            first=first,
            last=last,
            events=len(logs),
            logs=logs,
            timestamps=timestamps,
            blocks=[
                {
                    "number": n,
                    "hash": h["hash"],
                    "parent_hash": h["parentHash"],
                    "timestamp": timestamps[n],
                    "event_count": by_number.get(n, 0),
                }
                for n, h in headers.items()
            ],
            last_hash=headers[last]["hash"],
            near_head=near_head,
            links=[(n, headers[n]["hash"], headers[n]["parentHash"]) for n in numbers] if near_head else [],
            holders=self._holders_named(logs) if self.config.find_safes and scan.names_holders() else [],
        )

    @staticmethod
    def _holders_named(logs: Sequence[Mapping[str, Any]]) -> list[str]:
        """Role holders and pending admins the logs name (possible Safes)."""
        return [
            str(to_checksum_address("0x" + topics[index][-40:]))
            for log_entry in logs
            if (topics := log_entry.get("topics") or [])
            and (index := _HOLDER_TOPICS.get(topics[0])) is not None
            and len(topics) > index
        ]

    # --- writing --------------------------------------------------------------------------------------------

    def _write(self, step: _Step) -> None:
        # Decoded here rather than on the prefetch thread: that thread's work (waiting for the node, parsing
        # its answer) is the fetch ceiling itself, and decoding after it would add to every range's fetch.
        rows = self.decoder.decode_all(step.logs, step.timestamps)
        step.logs = []  # the parsed logs (~1.7 KB each) go before the writing, leaving the rows (~0.3 KB)
        if step.near_head:
            self._check_links(step.links)
        self._sync_safes(step.first, step.last, step.holders)
        store.commit_range(
            self.engine,
            rows,
            step.blocks,
            (step.last, step.last_hash),
            prune_below=step.last - self.config.reorg_window if step.near_head else None,
        )
        self.stats.events += step.events
        self.stats.commits += 1
        if self.on_commit:
            self.on_commit(Commit(step.first, step.last, step.events, time.time()))

    def _check_links(self, links: Sequence[tuple[int, str, str]]) -> None:
        """Near the head every block of the range was fetched: they must form one chain, starting on the
        checkpoint (a reorg between two requests of this step, or since the range was loaded, breaks it)."""
        previous = self.checkpoint()
        hashes = {n: h for n, h, _parent in links}
        for n, _hash, parent_hash in links:
            expected = hashes.get(n - 1)
            if expected is None and previous is not None and previous[0] == n - 1:
                expected = previous[1]
            if expected is not None and parent_hash != expected:
                raise _StartOver(f"block {n} does not build on block {n - 1} any more")

    # --- the role Safes -------------------------------------------------------------------------------------

    def _sync_safes(self, first: int, last: int, holders: Sequence[str]) -> None:
        """Indexes the role Safes' events of [first, last] (before the token's commit of the range, so that a
        crash between the two only makes the idempotent Safe sync run again). A Safe first named in this range
        (`holders`: the role holders its logs name) is read from the start block, in case it acted before it
        got the role."""
        if self.config.find_safes:
            named = list(holders)
            if not self._safes_loaded:
                named += self._holders_indexed()
                self._safes_loaded = True
            new = self._contracts({a for a in named if a not in self.safes and a not in self._not_safes})
            if new:
                safe_sync.sync(self.engine, self.rpc, new, self.config.start_block, first - 1)
                self.safes |= new
        if self.safes:
            safe_sync.sync(self.engine, self.rpc, self.safes, first, last)

    def _holders_indexed(self) -> list[str]:
        """Role holders and pending admins already in the database (an indexer resumed on it)."""
        with self.engine.connect() as conn:
            holders = [str(a) for (a,) in conn.execute(text("SELECT DISTINCT account FROM role_events"))]
            for (data,) in conn.execute(
                text("SELECT data FROM admin_events WHERE event_name = 'DefaultAdminTransferScheduled'")
            ):
                with contextlib.suppress(ValueError, KeyError, TypeError):
                    holders.append(str(json.loads(data)["newAdmin"]))
        return [to_checksum_address(a) for a in holders]

    def _contracts(self, addresses: set[str]) -> set[str]:
        """Those of `addresses` with code (one batch); the others are remembered as not Safes."""
        ordered = sorted(addresses)
        if not ordered:
            return set()
        codes = self.rpc.batch([("eth_getCode", [a, "latest"]) for a in ordered])
        found = {a for a, code in zip(ordered, codes, strict=True) if code not in (None, "0x", "0x0")}
        self._not_safes |= set(ordered) - found
        return found

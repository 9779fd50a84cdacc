"""Faults of the permissioned Geth network under the pilot's load (issue 9, section 4): real geth processes
(three Clique sealers and an archive node, tests/geth/conftest.py), the token deployed and set up through the
Submitter (support.geth_pilot), payments, the audit indexer and `verify`. Nothing is simulated: sealers are
killed with SIGKILL, the archive node is killed and restarted, and a real fork is made by cutting the peer links.

* one sealer of three killed under a stream of payments: the two others go on sealing, every payment whose
  receipt showed success is still in the canonical chain afterwards (receipts read again from the archive node),
  and the restarted sealer catches up and seals again;
* two sealers killed: the chain halts (Clique needs more than half of the signers), the Submitter says in one
  sentence how many transactions are pending, that no block comes, and that sending them again sends them twice;
  once the sealers are restarted the chain resumes, the pending payments are mined and the earlier ones are all
  still there;
* the archive node killed and restarted under a following indexer, with payments sealed while it was down: the
  indexer resumes with every log of the chain once (count, and (block, log index) unique) and `verify` passes,
  reading state at every block it asks for. (Past months: verify checks a past period at the block of its last
  payment, but a live chain's clock cannot be moved, so here every payment falls in the current month unless the
  run spans a month's end; tests/audit covers past periods on Anvil.)
* a Clique fork: one sealer with the archive node cut off from the two others seals a block with payments in it
  on its side while they go on; when the links are restored the archive node reorganises onto the heavier chain.
  An indexer with the default confirmations (`audit index` on the clique network: 12) and one with none follow
  the archive node throughout; afterwards both hold exactly what a full re-index into a fresh database holds, and
  the one without confirmations shows that it rolled the fork block's rows back.

The kill tests make a network each (a killed node must not disturb the others' tests); the archive restart and
the fork share the module's network and one deployment.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import Engine, select
from support.geth import block_signer, wait_for
from support.geth_pilot import Pilot, deploy_pilot

from deposit_token.audit.db import schema, store
from deposit_token.audit.sync.indexer import Indexer, IndexerConfig
from deposit_token.audit.verify import verify
from deposit_token.chain.geth import GethNetwork
from deposit_token.chain.geth.nodes import start_sealing
from deposit_token.chain.rpc import RpcClient
from deposit_token.chain.submit import SubmitTimeout, TxOutcome
from deposit_token.cli.audit.index import PUBLIC_NETWORK_CONFIRMATIONS

AMOUNT = 1_000  # every payment of these tests; the vendors' total / AMOUNT counts the successful ones


def address_of(network: GethNetwork, name: str) -> str:
    return str(network.node(name).spec.address).lower()


def signers_of(network: GethNetwork, first: int, last: int) -> list[str]:
    return [block_signer(network, n) for n in range(first, last + 1)]


def canonical_receipts(rpc: RpcClient, hashes: list[str]) -> list[dict[str, Any]]:
    """The receipts of `hashes` on the node's canonical chain (asserted: each exists, succeeded, and its block is
    the one the chain holds at that height now)."""
    receipts = rpc.batch([("eth_getTransactionReceipt", [h]) for h in hashes])
    missing = [h for h, r in zip(hashes, receipts) if r is None]
    assert not missing, f"{len(missing)} of {len(hashes)} transactions are not in the chain, e.g. {missing[0]}"
    blocks = rpc.headers(sorted({int(r["blockNumber"], 16) for r in receipts}))
    canonical = {int(b["number"], 16): b["hash"] for b in blocks if b}
    for receipt in receipts:
        assert receipt["status"] == "0x1", receipt
        assert canonical[int(receipt["blockNumber"], 16)] == receipt["blockHash"], receipt
    return receipts


def mined(rpc: RpcClient, hashes: list[str]) -> bool:
    return all(rpc.batch([("eth_getTransactionReceipt", [h]) for h in hashes]))


# --- a stream of payments --------------------------------------------------------------------------------------


class PaymentStream:
    """Rounds of `per_round` payments through the Submitter on a thread of its own, until stopped: what the
    officials keep doing while a node fails."""

    def __init__(self, pilot: Pilot, per_round: int) -> None:
        self.pilot, self.per_round = pilot, per_round
        self.outcomes: list[TxOutcome] = []
        self.rounds = 0
        self.error: BaseException | None = None
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="payments", daemon=True)

    def _run(self) -> None:
        try:
            with self.pilot.submitter(receipt_timeout=30.0) as submitter:
                while not self._stop.is_set():
                    self.outcomes += submitter.submit(self.pilot.payments(self.per_round, AMOUNT))
                    self.rounds += 1
        except BaseException as err:  # noqa: BLE001 - reported by the test
            self.error = err

    def wait_rounds(self, rounds: int, timeout: float = 30.0) -> None:
        wait_for(lambda: self.rounds >= rounds or self.error, timeout, f"{rounds} rounds of payments")
        assert self.error is None, self.error

    def __enter__(self) -> PaymentStream:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join(60)


@pytest.fixture
def own_network(new_geth_network) -> Iterator[GethNetwork]:
    """A network of the test's own (a killed node must not disturb other tests), stopped when the test ends:
    four more geth processes running through the module's later tests would slow them down."""
    network = new_geth_network("own")
    try:
        yield network
    finally:
        network.stop()


def test_one_sealer_of_three_killed_under_payments_loses_nothing_and_catches_up(own_network):
    network = own_network
    pilot = deploy_pilot(network.rpc_url, label="kill-one")
    victim = "central-bank"
    with PaymentStream(pilot, per_round=16) as stream:
        stream.wait_rounds(1)
        network.kill(victim)  # SIGKILL: a crash, nothing flushed
        killed_at = network.head()
        rounds = stream.rounds
        # The two others go on: blocks and confirmed payments; none of the blocks is the dead sealer's.
        network.wait_for_block(killed_at + 5, timeout=20)
        stream.wait_rounds(rounds + 2)
        down = signers_of(network, killed_at + 2, network.head())
        assert address_of(network, victim) not in down and len(set(down)) == 2, down
        network.start_node(victim)
        restarted_at = network.head()
        # It catches up with the others and seals again.
        network.wait_for_block(restarted_at, timeout=30, name=victim)
        wait_for(
            lambda: address_of(network, victim) in signers_of(network, restarted_at + 1, network.head()),
            15,
            f"a block sealed by the restarted {victim}",
            every=0.5,
        )
    assert stream.error is None, stream.error
    succeeded = [o for o in stream.outcomes if o.status]
    assert len(succeeded) == len(stream.outcomes) == 16 * stream.rounds, [o.error for o in stream.outcomes][:3]
    with network.rpc() as rpc:
        canonical_receipts(rpc, [str(o.tx_hash) for o in succeeded])
    assert pilot.spent() == AMOUNT * len(succeeded)  # each once: none lost, none doubled by a reorganisation
    lag = network.status()
    assert all(node.answering and node.lag is not None and node.lag <= 2 for node in lag.nodes), lag.nodes


def wait_for_halt(network: GethNetwork, quiet: float, timeout: float) -> int:
    """The head once it has not moved for `quiet` seconds (asserted within `timeout`)."""
    deadline = time.monotonic() + timeout
    head, since = network.head(), time.monotonic()
    while time.monotonic() - since < quiet:
        assert time.monotonic() < deadline, f"the chain did not halt within {timeout:g} s (head {head})"
        time.sleep(0.2)
        now = network.head()
        if now != head:
            head, since = now, time.monotonic()
    return head


def test_two_sealers_killed_halt_the_chain_the_submitter_names_the_pending_and_nothing_is_lost(own_network):
    network = own_network
    pilot = deploy_pilot(network.rpc_url, label="kill-two")
    with pilot.submitter() as submitter:
        earlier = submitter.submit(pilot.payments(16, AMOUNT))
    assert all(o.status for o in earlier)

    victims = ["treasury", "central-bank"]
    for victim in victims:
        network.kill(victim)
    # The survivor may seal one more block; then Clique's rule (a signer seals at most one of every two blocks)
    # stops it: no block for several periods.
    halted_at = wait_for_halt(network, quiet=4.0, timeout=15.0)

    waiting = pilot.payments(10, AMOUNT)
    with pilot.submitter(receipt_timeout=4.0) as submitter, pytest.raises(SubmitTimeout) as timeout:
        submitter.submit(waiting)
    message = str(timeout.value)
    assert message.startswith("10 of 10 transactions are still pending, not mined within 4 s: "), message
    assert "no new block for " in message and f"(head: block {halted_at};" in message, message
    assert "would send them twice" in message and timeout.value.pending[0] in message, message
    assert len(timeout.value.pending) == 10 and timeout.value.outcomes == [None] * 10
    assert network.head() == halted_at

    network.start(names=victims)
    network.wait_for_block(halted_at + 3, timeout=30)
    with network.rpc() as rpc:
        wait_for(lambda: mined(rpc, timeout.value.pending), 30, "the pending payments mined after the restart")
        canonical_receipts(rpc, timeout.value.pending + [str(o.tx_hash) for o in earlier])
    assert pilot.spent() == AMOUNT * (len(earlier) + len(waiting))


# --- the indexer through an archive restart and a fork ---------------------------------------------------------


@pytest.fixture(scope="module")
def pilot(geth_network) -> Pilot:
    return deploy_pilot(geth_network.rpc_url, label="faults")


def open_db(path: Path, pilot: Pilot) -> Engine:
    engine = store.open_database(f"sqlite:///{path}")
    store.bind_to_chain(engine, pilot.chain_id, pilot.token.address, pilot.start_block)
    return engine


class Follower:
    """`Indexer.run(follow=True)` on a thread of its own, as `ape run audit index --follow` runs it."""

    def __init__(self, pilot: Pilot, engine: Engine, confirmations: int) -> None:
        config = IndexerConfig(
            token=pilot.token.address, start_block=pilot.start_block, confirmations=confirmations, poll_interval=0.1
        )
        self.messages: list[str] = []
        self.indexer = Indexer(RpcClient(pilot.rpc_url, timeout=5.0), engine, config, log=self.messages.append)
        self.error: BaseException | None = None
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name=f"indexer-{confirmations}", daemon=True)
        self._thread.start()

    def _run(self) -> None:
        try:
            self.indexer.run(follow=True, stop=self._stop)
        except BaseException as err:  # noqa: BLE001 - reported by the test
            self.error = err

    def checkpoint(self) -> tuple[int, str] | None:
        assert self.error is None, self.error
        return self.indexer.checkpoint()

    def wait_past(self, block: int, timeout: float = 30.0) -> None:
        wait_for(lambda: (self.checkpoint() or (-1, ""))[0] >= block, timeout, f"the indexer past block {block}")

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(30)
        assert not self._thread.is_alive()
        assert self.error is None, self.error


def positions(engine: Engine) -> list[tuple[int, int]]:
    """(block, log index) of every event row, all tables together."""
    with engine.connect() as conn:
        return [
            (int(b), int(i))
            for table in schema.EVENT_TABLES
            for b, i in conn.execute(select(table.c.block_number, table.c.log_index))
        ]


def test_archive_node_restarted_under_a_following_indexer(geth_network, pilot, tmp_path):
    network = geth_network
    engine = open_db(tmp_path / "follow.sqlite", pilot)
    spent_before = pilot.spent()
    follower = Follower(pilot, engine, confirmations=0)
    try:
        with pilot.submitter() as submitter:
            assert all(o.status for o in submitter.submit(pilot.payments(12, AMOUNT)))
        follower.wait_past(network.head())

        # The archive node crashes; the sealers go on, and take payments sent to one of them directly.
        signed = pilot.sign(pilot.payments(12, AMOUNT))
        network.kill("archive")
        with network.ipc("treasury") as sealer:
            for raw, _hash in signed:
                sealer.call("eth_sendRawTransaction", [raw])
            wait_for(
                lambda: all(sealer.call("eth_getTransactionReceipt", [h]) for _raw, h in signed),
                15,
                "the payments sealed while the archive node is down",
            )
            sealed_without_archive = int(sealer.call("eth_blockNumber"), 16)
        assert not network.running()["archive"]

        network.start_node("archive")
        network.wait_for_block(sealed_without_archive, timeout=30)
        with pilot.submitter() as submitter:
            assert all(o.status for o in submitter.submit(pilot.payments(12, AMOUNT)))
        head = network.head()
        follower.wait_past(head)
    finally:
        follower.stop()
    assert any("retrying" in message for message in follower.messages), follower.messages  # it met the outage

    checkpoint = follower.checkpoint()
    assert checkpoint is not None
    with network.rpc() as rpc:
        canonical_receipts(rpc, [h for _raw, h in signed])
        logs = rpc.get_logs(pilot.token.address, pilot.start_block, checkpoint[0])
        rows = positions(engine)
        assert len(rows) == len(set(rows)) == len(logs)  # no duplicate
        assert sorted(rows) == sorted((int(log["blockNumber"], 16), int(log["logIndex"], 16)) for log in logs)  # no gap
        result = verify(rpc, engine, pilot.token.address)
    assert result.ok, "\n".join(map(str, result.mismatches))
    # The archive node, restarted after a crash, still answers state at every block verify asks for.
    assert result.skipped == 0 and result.earliest_state is None, result.skipped_note
    assert pilot.spent() == spent_before + AMOUNT * 36


def link(network: GethNetwork, a: str, b: str, connect: bool) -> None:
    """admin_addPeer / admin_removePeer of `b` on `a` (removal also drops `b` from `a`'s static peers, so `a`
    does not dial it again)."""
    with network.ipc(a) as client:
        client.call("admin_addPeer" if connect else "admin_removePeer", [network.node(b).spec.enode])


def cut_off(network: GethNetwork, side: list[str]) -> None:
    """A partition: the nodes of `side` keep their links with each other and lose those with the rest (cut on
    both ends, or the other end would dial again: static and trusted peers)."""
    rest = [name for name in network.names if name not in side]
    for a in side:
        for b in rest:
            link(network, a, b, False)
            link(network, b, a, False)
    wanted = {name: len(side) - 1 if name in side else len(rest) - 1 for name in network.names}
    wait_for(lambda: network.peer_counts() == wanted, 10, f"the partition {side} | {rest}")


def heal(network: GethNetwork, side: list[str]) -> None:
    """Ends the partition by restarting the nodes of `side`: a new geth process dials every listed peer at
    once, where a running one dials a peer it dialled in the last 35 s only after that (geth's dial history),
    so re-adding the peers over IPC could take that long. Then the rest list them as static peers again."""
    network.stop(names=side)
    network.start(names=side)
    assert network.wait_peered(15), network.peer_counts()
    for b in (name for name in network.names if name not in side):
        for a in side:
            link(network, b, a, True)


def dump(engine: Engine, upto: int) -> dict[str, list[tuple[Any, ...]]]:
    """Every event row up to block `upto` in chain order, and the blocks with events (with their hashes)."""
    out: dict[str, list[tuple[Any, ...]]] = {}
    with engine.connect() as conn:
        for table in schema.EVENT_TABLES:
            query = select(table).where(table.c.block_number <= upto)
            out[table.name] = [tuple(r) for r in conn.execute(query.order_by(table.c.block_number, table.c.log_index))]
        b = schema.blocks
        query = select(b.c.number, b.c.hash, b.c.parent_hash, b.c.timestamp, b.c.event_count)
        out["event_blocks"] = [
            tuple(r) for r in conn.execute(query.where(b.c.event_count > 0, b.c.number <= upto).order_by(b.c.number))
        ]
    return out


def test_a_clique_fork_is_met_by_the_indexer_as_a_full_reindex_sees_the_chain(geth_network, pilot, tmp_path):
    network = geth_network
    lone, others = "settlement-bank", ["treasury", "central-bank"]
    side = [lone, "archive"]
    spent_before = pilot.spent()
    default = Follower(pilot, open_db(tmp_path / "default.sqlite", pilot), PUBLIC_NETWORK_CONFIRMATIONS)
    eager = Follower(pilot, open_db(tmp_path / "eager.sqlite", pilot), confirmations=0)
    try:
        # The lone sealer stops sealing for two blocks: then none of the last blocks is its own, and Clique lets
        # it seal the next one on its side of the partition (a signer seals at most one of every two blocks).
        with network.ipc(lone) as client:
            client.call("miner_stop")
        stopped_at = network.head()
        network.wait_for_block(stopped_at + 2, timeout=15)
        cut_off(network, side)
        forked_from = network.head()

        # Payments reach the archive node and the lone sealer only; it seals them into its fork block.
        signed = pilot.sign(pilot.payments(6, AMOUNT))
        with network.rpc() as rpc, network.ipc(lone) as client:
            for raw, _hash in signed:
                rpc.call("eth_sendRawTransaction", [raw])
            wait_for(lambda: int(client.call("txpool_status")["pending"], 16) >= 6, 10, "the payments at the sealer")
            start_sealing(client)
            fork_block = wait_for(lambda: rpc.call("eth_getTransactionReceipt", [signed[0][1]]), 15, "the fork block")
        fork = int(fork_block["blockNumber"], 16)
        assert block_signer(network, fork) == address_of(network, lone)
        # The two others seal a longer, heavier chain meanwhile.
        network.wait_for_block(fork + 2, timeout=15, name=others[0])
        with network.ipc(others[0]) as client:
            majority = client.call("eth_getBlockByNumber", [hex(fork), False])["hash"]
        assert majority != fork_block["blockHash"]
        # The eager indexer takes the fork block's rows.
        eager.wait_past(fork)
        assert eager.indexer.stats.events >= 12 and not eager.indexer.stats.rollbacks

        heal(network, side)
        with network.rpc() as rpc:
            wait_for(
                lambda: rpc.call("eth_getBlockByNumber", [hex(fork), False])["hash"] == majority,
                30,
                "the archive node on the majority's chain",
            )
            wait_for(lambda: mined(rpc, [h for _raw, h in signed]), 30, "the fork's payments mined again")
            receipts = canonical_receipts(rpc, [h for _raw, h in signed])
        settled = max(int(r["blockNumber"], 16) for r in receipts)
        default.wait_past(settled, timeout=40)
        eager.wait_past(settled)
    finally:
        default.stop()
        eager.stop()
    assert forked_from <= fork and pilot.spent() == spent_before + AMOUNT * 6

    # The eager indexer met the fork for real: it rolled the fork block's rows back (a payment is a Transfer and a
    # Payment event). The default confirmations kept the fork out of the other one's way.
    rollbacks = eager.indexer.stats.rollbacks
    assert any(r.ancestor < fork <= r.from_block and r.rows_removed >= 12 for r in rollbacks), rollbacks
    assert not default.indexer.stats.rollbacks

    fresh = open_db(tmp_path / "fresh.sqlite", pilot)
    Indexer(network.rpc(), fresh, IndexerConfig(token=pilot.token.address, start_block=pilot.start_block)).run()
    for follower in (default, eager):
        upto = follower.checkpoint()[0]
        assert dump(follower.indexer.engine, upto) == dump(fresh, upto)

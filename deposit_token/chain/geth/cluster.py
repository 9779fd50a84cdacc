"""The permissioned Geth network as one object: `GethNetwork(data_dir)` makes it, starts it, stops it, inspects it.

Layout of a network's data directory (default ``.geth/pilot``, gitignored; ``$DEPOSIT_TOKEN_GETH_DIR`` moves it)::

    network.json       the record: chain id, every node's name, role, institution, ports, node id and (sealers)
                       account address, and where the sealers' passphrase comes from (never the passphrase)
    genesis.json       the Clique genesis every node was initialised with
    passphrase         the generated keystore passphrase (mode 0600), unless the operator named his own
    treasury/          sealer of the treasury (MOEF)          \
    central-bank/      sealer of the central bank              |  one directory per node: see
    settlement-bank/   sealer of the settlement bank           |  deposit_token.chain.geth.nodes
    archive/           archive node, the only HTTP JSON-RPC   /
    .lock              serialises start and stop

Ports, all on 127.0.0.1 and fixed at ``init`` (the static peer lists name them): the archive node's HTTP JSON-RPC
(default 8645; the authenticated gateway listens on 8600 in front of it), each node's p2p port (default 30311..)
and engine-API port (default 8651..), or free ports chosen by the OS (tests).

Start: every node that does not run is spawned at once (detached; each in its own session), then each one's IPC
answers, each sealer has unlocked its key and been told to seal with a zero minimum tip (see ``nodes``). A node
that already runs is left alone (``up`` twice says so). Stop: SIGTERM to all, then wait (geth flushes and closes
its database; SIGKILL after a timeout). State and history live in the node directories across restarts.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import signal as signals
import subprocess
import time
from collections.abc import Iterable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from eth_utils import is_hex_address, to_checksum_address

from deposit_token import paths
from deposit_token.chain.geth import genesis as genesis_mod
from deposit_token.chain.geth import keys, nodes
from deposit_token.chain.geth.binary import find_geth, geth_version
from deposit_token.chain.geth.ipc import IpcClient
from deposit_token.chain.geth.nodes import STOP_TIMEOUT, Node, NodeError, NodeSpec
from deposit_token.chain.rpc import RpcClient, RpcError
from deposit_token.errors import DepositTokenError
from deposit_token.processes import directory_lock, free_port, process_alive, wait_for_exit

GETH_DIR_ENV = "DEPOSIT_TOKEN_GETH_DIR"
DEFAULT_DATA_DIR = Path(os.environ.get(GETH_DIR_ENV, "").strip() or paths.ROOT / ".geth" / "pilot").expanduser()
RECORD_FILE = "network.json"
GENESIS_FILE = "genesis.json"
LOCK_FILE = ".lock"
RECORD_FORMAT = 1

#: The sealers, one per institution: (node name, institution).
SEALERS: tuple[tuple[str, str], ...] = (
    ("treasury", "Treasury (Ministry of Economy and Finance)"),
    ("central-bank", "Central bank"),
    ("settlement-bank", "Settlement bank"),
)
ARCHIVE = "archive"
ARCHIVE_INSTITUTION = "Archive RPC node (clients and auditors, behind the gateway)"
DEFAULT_ARCHIVE_PORT = 8645
DEFAULT_GATEWAY_PORT = 8600  # where ape-config.yaml's clique network points: the authenticated gateway
DEFAULT_P2P_BASE = 30311
DEFAULT_AUTHRPC_BASE = 8651
START_TIMEOUT = 60.0
NODE_NAME = re.compile(r"[a-z0-9][a-z0-9-]{0,31}")
PEERING_WAIT = 10.0  # how long `start` waits for the running nodes to peer with each other (it reports, not fails)


class GethNetworkError(DepositTokenError):
    """The Geth network cannot be made, started, stopped or inspected; the message says why and what to do."""


class NotInitialisedError(GethNetworkError):
    """The data directory holds no network."""


@dataclass(frozen=True)
class Ports:
    """Where the nodes listen: the archive's HTTP port and the first p2p and engine-API ports (one per node, in
    the order treasury, central bank, settlement bank, archive), or OS-chosen free ports (`free`: tests)."""

    archive_http: int = DEFAULT_ARCHIVE_PORT
    p2p_base: int = DEFAULT_P2P_BASE
    authrpc_base: int = DEFAULT_AUTHRPC_BASE
    free: bool = False

    def p2p(self, index: int) -> int:
        return free_port() if self.free else self.p2p_base + index

    def authrpc(self, index: int) -> int:
        return free_port() if self.free else self.authrpc_base + index

    def http(self) -> int:
        return free_port() if self.free else self.archive_http


@dataclass(frozen=True)
class NodeStart:
    name: str
    pid: int
    started: bool  # False: it already ran
    seconds: float


@dataclass(frozen=True)
class StartReport:
    nodes: list[NodeStart]
    head: int  # the archive node's head block once everything answered
    seconds: float
    peered: bool = True  # every running node peers with every other one

    @property
    def already_running(self) -> bool:
        return not any(node.started for node in self.nodes)


@dataclass(frozen=True)
class NodeStop:
    name: str
    pid: int | None  # None: it was not running
    graceful: bool


@dataclass
class NodeState:
    """One node as `status` sees it (through its IPC socket)."""

    name: str
    role: str
    institution: str
    address: str | None
    pid: int | None
    answering: bool = False
    head: int | None = None
    head_timestamp: int | None = None
    peers: int | None = None
    syncing: bool | None = None
    sealing: bool | None = None
    signers: list[str] | None = None
    proposals: dict[str, bool] | None = None
    error: str | None = None
    lag: int | None = None  # blocks behind the most advanced node

    @property
    def running(self) -> bool:
        return self.pid is not None


@dataclass
class NetworkState:
    data_dir: Path
    chain_id: int
    rpc_url: str
    nodes: list[NodeState] = field(default_factory=list)

    @property
    def head(self) -> int | None:
        heads = [node.head for node in self.nodes if node.head is not None]
        return max(heads) if heads else None

    @property
    def signers(self) -> list[str] | None:
        """The signer set as the most advanced answering node sees it."""
        best = max(
            (node for node in self.nodes if node.signers is not None and node.head is not None),
            key=lambda node: node.head or 0,
            default=None,
        )
        return best.signers if best else None


def _utc_now() -> str:
    # When the network was made, for the operator; not chain time.
    return datetime.now(UTC).isoformat(timespec="seconds").replace("+00:00", "Z")


def _checked_address(address: str) -> str:
    if not is_hex_address(address):
        raise GethNetworkError(f"{address!r} is not an address (0x and 40 hex digits)")
    return to_checksum_address(address)


class GethNetwork:
    """The network recorded in `data_dir` (see the module docstring); `init` makes a new one."""

    def __init__(self, data_dir: Path | str = DEFAULT_DATA_DIR) -> None:
        self.data_dir = Path(data_dir).expanduser().resolve()
        self._record: dict[str, Any] | None = None
        self._record_stamp: int | None = None

    def __repr__(self) -> str:
        return f"GethNetwork({str(self.data_dir)!r})"

    # --- making a network ------------------------------------------------------------------------------------

    @classmethod
    def init(
        cls,
        data_dir: Path | str = DEFAULT_DATA_DIR,
        *,
        ports: Ports | None = None,
        chain_id: int = genesis_mod.CHAIN_ID,
        period: int = genesis_mod.PERIOD,
        gas_limit: int = genesis_mod.GAS_LIMIT,
        passphrase_env: str | None = None,
        passphrase_file: Path | None = None,
        light_kdf: bool = False,
        sealers: Sequence[tuple[str, str]] = SEALERS,
    ) -> GethNetwork:
        """Makes a new network in `data_dir`: node keys, sealer keystores, the Clique genesis with the sealers
        as signers, each node's config.toml and its database initialised with the genesis. Refuses a data
        directory that already holds one. `light_kdf` (tests) encrypts the sealer keys with geth's --lightkdf
        cost instead of the standard one."""
        network = cls(data_dir)
        ports = ports or Ports()
        if network.record_file.exists():
            raise GethNetworkError(
                f"{network.data_dir} already holds a Geth network: `network up --engine geth` starts it "
                "(or choose another --data-dir)"
            )
        if chain_id <= 0:
            raise GethNetworkError(f"chain id {chain_id} must be positive")
        geth = find_geth()
        version = geth_version(geth)
        members = [(name, institution, "sealer") for name, institution in sealers]
        members.append((ARCHIVE, ARCHIVE_INSTITUTION, "archive"))
        for name, _institution, _role in members:
            nodes.check_socket_path(Node(NodeSpec(name, "archive", 0, 0, ""), network.data_dir / name))
        with directory_lock(network.data_dir, LOCK_FILE):
            os.chmod(network.data_dir, 0o700)
            made: list[Path] = []
            try:
                network._make(
                    geth,
                    version,
                    members,
                    ports,
                    chain_id,
                    period,
                    gas_limit,
                    made,
                    passphrase_env,
                    passphrase_file,
                    light_kdf,
                )
            except BaseException:
                # Leave the directory as it was: a half-made network could be neither started nor made again.
                for path in reversed(made):
                    if path.is_dir():
                        shutil.rmtree(path)
                    else:
                        path.unlink(missing_ok=True)
                network._record = None
                raise
        return network

    def _make(
        self,
        geth: str,
        version: str,
        members: list[tuple[str, str, str]],
        ports: Ports,
        chain_id: int,
        period: int,
        gas_limit: int,
        made: list[Path],
        passphrase_env: str | None,
        passphrase_file: Path | None,
        light_kdf: bool,
    ) -> None:
        generated = self.data_dir / keys.GENERATED_PASSPHRASE_FILE
        if not generated.exists():
            made.append(generated)
        try:
            source = keys.choose_source(self.data_dir, passphrase_env, passphrase_file)
            passphrase = source.read()
        except keys.KeyMaterialError as err:
            raise GethNetworkError(str(err)) from None
        scrypt_n = keys.LIGHT_SCRYPT_N if light_kdf else keys.STANDARD_SCRYPT_N
        specs: list[NodeSpec] = []
        for index, (name, institution, role) in enumerate(members):
            directory = self.data_dir / name
            if directory.exists():
                raise GethNetworkError(f"{directory} exists already: use an empty --data-dir")
            directory.mkdir(mode=0o700)
            made.append(directory)
            node_id = keys.write_node_key(directory)
            address = keys.write_keystore(directory / "keystore", passphrase, scrypt_n) if role == "sealer" else None
            specs.append(
                NodeSpec(
                    name=name,
                    role="sealer" if role == "sealer" else "archive",
                    p2p_port=ports.p2p(index),
                    authrpc_port=ports.authrpc(index),
                    node_id=node_id,
                    institution=institution,
                    address=address,
                    http_port=ports.http() if role == "archive" else None,
                )
            )
        genesis = genesis_mod.clique_genesis(
            [spec.address for spec in specs if spec.address],
            chain_id=chain_id,
            period=period,
            gas_limit=gas_limit,
            # Real time: a live chain's clock (its first block comes `period` seconds after this).
            timestamp=int(time.time()),
        )
        made.append(self.data_dir / GENESIS_FILE)
        (self.data_dir / GENESIS_FILE).write_text(json.dumps(genesis, indent=2) + "\n", encoding="utf-8")
        made.append(self.record_file)
        self._write_record(
            {
                "engine": "geth",
                "format": RECORD_FORMAT,
                "chain_id": chain_id,
                "period": period,
                "gas_limit": gas_limit,
                "geth_version": version,
                "created_at": _utc_now(),
                "passphrase": source.as_dict(),
                "scrypt_n": scrypt_n,
                "ports": {"free": ports.free, "p2p_base": ports.p2p_base, "authrpc_base": ports.authrpc_base},
                "nodes": [spec.as_dict() for spec in specs],
            }
        )
        for node in self.nodes:
            nodes.write_config(node, self.peers_of(node.name))
            nodes.init_database(geth, node, genesis)

    # --- the record ------------------------------------------------------------------------------------------

    @property
    def record_file(self) -> Path:
        return self.data_dir / RECORD_FILE

    @property
    def exists(self) -> bool:
        return self.record_file.is_file()

    @property
    def record(self) -> dict[str, Any]:
        """The network's record, read again whenever the file changed (another process may add a node)."""
        try:
            stamp = self.record_file.stat().st_mtime_ns
        except OSError:
            stamp = None
        if self._record is None or stamp != self._record_stamp:
            self._record_stamp = stamp
            try:
                record = json.loads(self.record_file.read_text(encoding="utf-8"))
            except FileNotFoundError:
                raise NotInitialisedError(
                    f"{self.data_dir} holds no Geth network: run `ape run network init --engine geth` first"
                ) from None
            except (OSError, ValueError) as err:
                raise GethNetworkError(f"{self.record_file} cannot be read: {err}") from None
            if not isinstance(record, dict) or record.get("engine") != "geth" or not record.get("nodes"):
                raise GethNetworkError(f"{self.record_file} is not a Geth network's record")
            self._record = record
        return self._record

    def _write_record(self, record: dict[str, Any]) -> None:
        temporary = self.record_file.with_name(RECORD_FILE + ".tmp")
        temporary.write_text(json.dumps(record, indent=2) + "\n", encoding="utf-8")
        os.replace(temporary, self.record_file)
        self._record, self._record_stamp = record, self.record_file.stat().st_mtime_ns

    @property
    def genesis(self) -> dict[str, Any]:
        genesis: dict[str, Any] = json.loads((self.data_dir / GENESIS_FILE).read_text(encoding="utf-8"))
        return genesis

    @property
    def chain_id(self) -> int:
        return int(self.record["chain_id"])

    @property
    def nodes(self) -> list[Node]:
        return [Node(NodeSpec.from_dict(item), self.data_dir / item["name"]) for item in self.record["nodes"]]

    @property
    def names(self) -> list[str]:
        return [node.name for node in self.nodes]

    def node(self, name: str) -> Node:
        for node in self.nodes:
            if node.name == name:
                return node
        raise GethNetworkError(f"the network has no node {name!r} (its nodes: {', '.join(self.names)})")

    @property
    def sealers(self) -> list[Node]:
        return [node for node in self.nodes if node.spec.role == "sealer"]

    @property
    def archive(self) -> Node:
        for node in self.nodes:
            if node.spec.role == "archive":
                return node
        raise GethNetworkError(f"{self.record_file} names no archive node")

    @property
    def rpc_url(self) -> str:
        """The archive node's HTTP JSON-RPC (eth, net, web3): what the gateway forwards to."""
        url = self.archive.rpc_url
        if url is None:
            raise GethNetworkError("the archive node has no HTTP port")
        return url

    def rpc(self, timeout: float = 10.0) -> RpcClient:
        return RpcClient(self.rpc_url, timeout=timeout)

    def ipc(self, name: str, timeout: float = 10.0) -> IpcClient:
        return self.node(name).ipc(timeout)

    def peers_of(self, name: str) -> list[str]:
        """The enode URLs node `name` peers with: every other listed node."""
        return [node.spec.enode for node in self.nodes if node.name != name]

    @property
    def passphrase_source(self) -> keys.PassphraseSource:
        return keys.PassphraseSource.from_dict(self.record.get("passphrase"))

    # --- processes -------------------------------------------------------------------------------------------

    @contextmanager
    def _locked(self) -> Iterator[None]:
        self.record  # noqa: B018 (refuses a directory without a network before taking its lock)
        with directory_lock(self.data_dir, LOCK_FILE):
            yield

    def pid(self, name: str) -> int | None:
        """The pid of node `name` if it runs."""
        return nodes.running_pid(self.node(name))

    def start(
        self, timeout: float = START_TIMEOUT, names: Iterable[str] | None = None, wait_peering: bool = True
    ) -> StartReport:
        """Starts every node (or those of `names`) that does not run (see the module docstring); then, with
        `wait_peering`, waits a little for the running nodes to peer with each other (`StartReport.peered`)."""
        began = time.monotonic()
        with self._locked():
            report = self._start(list(names) if names is not None else self.names, timeout)
        peered = wait_peering and self.wait_peered(min(PEERING_WAIT, max(0.0, began + timeout - time.monotonic())))
        return StartReport(report, self._archive_head(), time.monotonic() - began, peered)

    def _start(self, names: list[str], timeout: float) -> list[NodeStart]:
        chosen = [self.node(name) for name in names]
        to_start = [node for node in chosen if nodes.running_pid(node) is None]
        geth = find_geth() if to_start else ""
        passphrase = None
        if any(node.spec.role == "sealer" for node in to_start):
            try:
                passphrase = self.passphrase_source.read()
            except keys.KeyMaterialError as err:
                raise GethNetworkError(str(err)) from None
        for node in to_start:
            busy = nodes.busy_ports(node.spec)
            if busy:
                raise GethNetworkError(
                    f"port {busy[0]} of node {node.name} is in use by another program: stop it first "
                    "(or make the network again with other ports)"
                )
        began = time.monotonic()
        deadline = began + timeout
        processes: dict[str, subprocess.Popen[bytes]] = {}
        results: list[NodeStart] = []
        try:
            # One after the other, each listening before the next starts: two nodes that dial each other at the
            # same moment both drop the duplicate connection and may end up with none, and geth redials a static
            # peer only ~35 s later. A node dials the ones already up; the ones still down get dialled by it.
            for node in to_start:
                processes[node.name] = nodes.spawn(geth, node, passphrase, self.chain_id, int(self.record["gas_limit"]))
                nodes.wait_for_ipc(node, processes[node.name], deadline).close()
            to_seal: list[nodes.Node] = []
            for node in chosen:
                process = processes.get(node.name)
                pid = process.pid if process is not None else nodes.running_pid(node)
                if pid is None:  # it stopped between our look and now
                    raise GethNetworkError(f"node {node.name} stopped while the network was starting")
                with nodes.wait_for_ipc(node, process or pid, deadline) as client:
                    # Also a sealer that already ran: a start interrupted before its miner_start left it idle.
                    if node.spec.role == "sealer" and (process is not None or not client.call("eth_mining")):
                        nodes.wait_until_unlocked(node, client, process or pid, deadline)
                        to_seal.append(node)
                results.append(NodeStart(node.name, pid, process is not None, time.monotonic() - began))
            # Sealing starts once the nodes peer, and the sealer in turn for the next block starts last. Until a
            # geth node seals (or has finished a sync) it discards the blocks peers propagate ("Syncing, discarded
            # propagated block"), and a discarded block is never offered again (a broadcast raises the peer's
            # known difficulty only to its parent's). So if the in-turn sealer sealed first (at once: it waits for
            # no wiggle), the others, a few ms from sealing themselves, dropped its block, each sealed a block of
            # their own at the same height, and Clique's recent-signer rule then let none of the forks grow: the
            # chain stood still (seen at start-up, also with all sealers started within 4 ms). Started last, the
            # in-turn sealer's block reaches sealers that already seal, and its higher difficulty wins.
            if to_seal:
                self.wait_peered(max(0.0, min(PEERING_WAIT, deadline - time.monotonic())))
                for node in self._in_turn_last(to_seal):
                    with node.ipc() as client:
                        nodes.start_sealing(client)
        except (NodeError, RpcError) as err:
            for process in processes.values():
                if process.poll() is None:
                    process.kill()
                    process.wait(timeout=10)
            for node in to_start:
                node.pid_file.unlink(missing_ok=True)
            raise GethNetworkError(str(err)) from None
        return results

    def _in_turn_last(self, sealers: list[Node]) -> list[Node]:
        """`sealers` with the one in turn for the next block last (Clique: signer index (head + 1) mod the number
        of signers, signers sorted by address)."""
        with sealers[0].ipc() as client:
            head = int(client.call("eth_blockNumber"), 16)
            signers = sorted(str(address).lower() for address in client.call("clique_getSigners", []))
        in_turn = signers[(head + 1) % len(signers)] if signers else None
        return sorted(sealers, key=lambda node: (node.spec.address or "").lower() == in_turn)

    def peer_counts(self) -> dict[str, int | None]:
        """How many peers each node has (None: not running or not answering)."""
        counts: dict[str, int | None] = {}
        for node in self.nodes:
            counts[node.name] = None
            if nodes.running_pid(node) is None:
                continue
            try:
                with node.ipc(3.0) as client:
                    counts[node.name] = len(client.call("admin_peers"))
            except RpcError:
                pass
        return counts

    def wait_peered(self, timeout: float = 15.0) -> bool:
        """Waits until every running node peers with every other running node; False if that took too long."""
        deadline = time.monotonic() + timeout
        while True:
            counts = self.peer_counts()
            running = [count for count in counts.values() if count is not None]
            if all(count == len(running) - 1 for count in running):
                return True
            if time.monotonic() > deadline:
                return False
            time.sleep(0.1)

    def _archive_head(self) -> int:
        try:
            with self.archive.ipc(3.0) as client:
                return int(client.call("eth_blockNumber"), 16)
        except RpcError:
            return -1

    def stop(self, timeout: float = STOP_TIMEOUT, names: Iterable[str] | None = None) -> list[NodeStop]:
        """SIGTERM to every node (or those of `names`) at once, then waits for each; not running is no error."""
        with self._locked():
            chosen = [self.node(name) for name in (names if names is not None else self.names)]
            pids = {node.name: nodes.running_pid(node) for node in chosen}
            for pid in pids.values():
                if pid is not None:
                    os.kill(pid, signals.SIGTERM)
            deadline = time.monotonic() + timeout
            stops = []
            for node in chosen:
                pid = pids[node.name]
                graceful = True
                if pid is not None:
                    graceful = wait_for_exit(pid, max(0.0, deadline - time.monotonic()))
                    if not graceful:
                        os.kill(pid, signals.SIGKILL)
                        wait_for_exit(pid, 10.0)
                node.pid_file.unlink(missing_ok=True)
                stops.append(NodeStop(node.name, pid, graceful))
            return stops

    def start_node(self, name: str, timeout: float = START_TIMEOUT) -> NodeStart:
        return self.start(timeout, [name]).nodes[0]

    def stop_node(self, name: str, timeout: float = STOP_TIMEOUT) -> NodeStop:
        return self.stop(timeout, [name])[0]

    def restart(self, name: str, timeout: float = START_TIMEOUT) -> NodeStart:
        """Stops node `name` gracefully and starts it again (a sealer resumes sealing)."""
        self.stop_node(name)
        return self.start_node(name, timeout)

    def kill(self, name: str, signal: int = signals.SIGKILL, wait: float = 10.0) -> int:
        """Sends `signal` (default SIGKILL: a crash) to node `name`; returns its pid. For SIGKILL and SIGTERM,
        waits up to `wait` seconds for it to be gone. The pid file stays: `start` sees the node is not running."""
        pid = self.pid(name)
        if pid is None:
            raise GethNetworkError(f"node {name} is not running")
        os.kill(pid, signal)
        if signal in (signals.SIGKILL, signals.SIGTERM) and not wait_for_exit(pid, wait):
            raise GethNetworkError(f"node {name} (pid {pid}) did not exit within {wait:g} s of signal {signal}")
        return pid

    def running(self) -> dict[str, int | None]:
        return {node.name: nodes.running_pid(node) for node in self.nodes}

    # --- the chain -------------------------------------------------------------------------------------------

    def head(self, name: str | None = None) -> int:
        """The head block number of node `name` (default: the archive node)."""
        with self.ipc(name or self.archive.name, 5.0) as client:
            return int(client.call("eth_blockNumber"), 16)

    def wait_for_block(self, number: int, timeout: float = 30.0, name: str | None = None) -> int:
        """Waits until node `name` (default: the archive node) has block `number`; returns its head."""
        deadline = time.monotonic() + timeout
        while True:
            try:
                head = self.head(name)
            except RpcError:
                head = -1
            if head >= number:
                return head
            if time.monotonic() > deadline:
                raise GethNetworkError(
                    f"node {name or self.archive.name} did not reach block {number} within {timeout:g} s "
                    f"(its head: {head})"
                )
            time.sleep(0.1)

    def status(self) -> NetworkState:
        """What every node says about itself (head, peers, sync, sealing, signer set); never raises for a
        node that does not run or answer."""
        state = NetworkState(self.data_dir, self.chain_id, self.rpc_url)
        for node in self.nodes:
            item = NodeState(
                node.name,
                node.spec.role,
                node.spec.institution,
                node.spec.address,
                nodes.running_pid(node),
            )
            state.nodes.append(item)
            if item.pid is None:
                continue
            try:
                with node.ipc(3.0) as client:
                    item.head = int(client.call("eth_blockNumber"), 16)
                    block = client.call("eth_getBlockByNumber", [hex(item.head), False])
                    item.head_timestamp = int(block["timestamp"], 16) if block else None
                    item.peers = len(client.call("admin_peers"))
                    item.syncing = client.call("eth_syncing") is not False
                    item.signers = [to_checksum_address(s) for s in client.call("clique_getSigners", ["latest"])]
                    if node.spec.role == "sealer":
                        item.sealing = bool(client.call("eth_mining"))
                        item.proposals = {
                            to_checksum_address(a): bool(v) for a, v in client.call("clique_proposals").items()
                        }
                    item.answering = True
            except (RpcError, KeyError, TypeError, ValueError, AttributeError) as err:
                item.error = str(err)
        best = state.head
        for item in state.nodes:
            if item.head is not None and best is not None:
                item.lag = best - item.head
        return state

    # --- a new sealer ----------------------------------------------------------------------------------------

    def add_sealer(self, name: str, institution: str, timeout: float = START_TIMEOUT) -> Node:
        """Makes a sealer node for a new institution (node key, keystore with the network's passphrase, the
        genesis) and lists it in every node's static and trusted peers. If the network runs, restarts the running
        nodes one at a time (geth reads its peer lists at start; the chain keeps sealing meanwhile, a majority of
        the signers being up), so that they accept it, and then starts the new node. The node seals once the
        current signers voted it in (`propose`); until then geth refuses its blocks ("unauthorized signer")."""
        if not NODE_NAME.fullmatch(name):
            raise GethNetworkError(f"{name!r} is not a node name (lower-case letters, digits and '-', up to 32)")
        if name in self.names:
            raise GethNetworkError(f"the network already has a node {name!r}")
        with self._locked():
            record = dict(self.record)
            saved = record.get("ports") or {}
            index = len(self.nodes)
            ports = Ports(
                p2p_base=int(saved.get("p2p_base", DEFAULT_P2P_BASE)),
                authrpc_base=int(saved.get("authrpc_base", DEFAULT_AUTHRPC_BASE)),
                free=bool(saved.get("free", False)),
            )
            directory = self.data_dir / name
            nodes.check_socket_path(Node(NodeSpec(name, "sealer", 0, 0, ""), directory))
            if directory.exists():
                raise GethNetworkError(f"{directory} exists already")
            try:
                passphrase = self.passphrase_source.read()
            except keys.KeyMaterialError as err:
                raise GethNetworkError(str(err)) from None
            geth = find_geth()
            directory.mkdir(mode=0o700)
            try:
                spec = NodeSpec(
                    name=name,
                    role="sealer",
                    p2p_port=ports.p2p(index),
                    authrpc_port=ports.authrpc(index),
                    node_id=keys.write_node_key(directory),
                    institution=institution,
                    address=keys.write_keystore(directory / "keystore", passphrase, int(record["scrypt_n"])),
                )
                busy = nodes.busy_ports(spec)
                if busy:
                    raise GethNetworkError(f"port {busy[0]} for node {name} is in use by another program")
                node = Node(spec, directory)
                nodes.init_database(geth, node, self.genesis)
            except BaseException:
                shutil.rmtree(directory)
                raise
            was_running = [other.name for other in self.nodes if nodes.running_pid(other) is not None]
            record["nodes"] = [*record["nodes"], spec.as_dict()]
            self._write_record(record)
            for each in self.nodes:
                nodes.write_config(each, self.peers_of(each.name))
        if was_running:
            # The running nodes first, one at a time, so that each comes back with the new lists; the new node
            # last, when every node accepts it (started before, it would wait for peers nobody lets in yet).
            for other in was_running:
                self.stop_node(other)
                self.start(timeout, [other], wait_peering=False)
            self.start(timeout, [name])
        return self.node(name)

    # --- validator governance (Clique votes) ----------------------------------------------------------------

    def signers(self, name: str | None = None) -> list[str]:
        """The current signer set as node `name` (default: the archive node) sees it at its head."""
        with self.ipc(name or self.archive.name, 5.0) as client:
            return [to_checksum_address(s) for s in client.call("clique_getSigners", ["latest"])]

    def proposals(self) -> dict[str, dict[str, bool]]:
        """Each running sealer's pending votes: {sealer: {address: True to add / False to remove}}."""
        found: dict[str, dict[str, bool]] = {}
        for node in self.sealers:
            if nodes.running_pid(node) is None:
                continue
            with node.ipc(5.0) as client:
                found[node.name] = {to_checksum_address(a): bool(v) for a, v in client.call("clique_proposals").items()}
        return found

    def _voters(self, on: Iterable[str] | None) -> list[Node]:
        chosen = [self.node(name) for name in on] if on is not None else self.sealers
        for node in chosen:
            if node.spec.role != "sealer":
                raise GethNetworkError(f"node {node.name} is not a sealer: only sealers vote")
            if nodes.running_pid(node) is None:
                raise GethNetworkError(f"sealer {node.name} is not running: start it to vote through it")
        if not chosen:
            raise GethNetworkError("no sealer to vote through")
        return chosen

    def tidy_votes(self) -> dict[str, list[str]]:
        """Discards, on every running sealer, the votes already in effect (to add a signer that is one, to
        remove one that is not); returns {sealer: [addresses discarded]}.

        Why: geth keeps a sealer's votes in memory until they are discarded, and skips a vote only while it is
        in effect. A stale "add X" would vote X back in the moment X were removed, a stale "remove X" would vote
        against X as soon as X were added again."""
        signers = {address.lower() for address in self.signers()}
        done: dict[str, list[str]] = {}
        for sealer, pending in self.proposals().items():
            stale = [address for address, add in pending.items() if (address.lower() in signers) == add]
            if stale:
                with self.ipc(sealer, 5.0) as client:
                    for address in stale:
                        client.call("clique_discard", [address])
                done[sealer] = stale
        return done

    def propose(self, address: str, authorize: bool = True, on: Iterable[str] | None = None) -> list[str]:
        """Casts a vote to add (`authorize`) or remove `address` as a signer through the sealers `on` (default:
        every sealer), after discarding votes already in effect (`tidy_votes`). Each sealer puts its vote into
        the blocks it seals until the vote passes or is discarded; the signer set changes once more than half of
        the current signers voted. Votes live in the sealers' memory: a restarted sealer has forgotten its
        votes. Returns the sealers that voted."""
        address = _checked_address(address)
        voters = self._voters(on)
        self.tidy_votes()
        for node in voters:
            with node.ipc(5.0) as client:
                client.call("clique_propose", [address, authorize])
        return [node.name for node in voters]

    def discard(self, address: str, on: Iterable[str] | None = None) -> list[str]:
        """Withdraws the pending vote about `address` from the sealers `on` (default: every sealer)."""
        address = _checked_address(address)
        voters = self._voters(on)
        for node in voters:
            with node.ipc(5.0) as client:
                client.call("clique_discard", [address])
        return [node.name for node in voters]


def any_running(data_dir: Path | str) -> bool:
    """True if a node of the network in `data_dir` runs (False if there is no network there)."""
    network = GethNetwork(data_dir)
    if not network.exists:
        return False
    return any(pid is not None and process_alive(pid) for pid in network.running().values())


__all__ = [
    "ARCHIVE",
    "DEFAULT_ARCHIVE_PORT",
    "DEFAULT_DATA_DIR",
    "DEFAULT_GATEWAY_PORT",
    "GETH_DIR_ENV",
    "SEALERS",
    "START_TIMEOUT",
    "STOP_TIMEOUT",
    "GethNetwork",
    "GethNetworkError",
    "NetworkState",
    "NodeStart",
    "NodeState",
    "NodeStop",
    "NotInitialisedError",
    "Ports",
    "StartReport",
    "any_running",
]

"""One geth node of the network: its files, its configuration, its command line, and its process.

Files of a node, in ``<data dir>/<name>/``::

    geth/            geth's database (chaindata, the node key ``geth/nodekey``, the engine API's jwtsecret)
    keystore/        a sealer's encrypted account key (sealers only)
    config.toml      the p2p settings: listen address, static and trusted peers, peer limits; the gas price oracle
    geth.ipc         the IPC socket (the CLI's control channel: admin, clique, miner, eth)
    geth.log         geth's output (the previous run's is kept as geth.log.1)
    geth.pid         the process id of the running node

Node permissioning with vanilla geth (which, unlike Besu or GoQuorum, has no node allow list):

* no discovery (``--nodiscover``) and ``--netrestrict 127.0.0.0/8``: a node dials nobody it is not told of,
  and accepts connections from loopback only (in production: the institutions' addresses);
* every listed node is both a *static* peer (dialled, and redialled after a disconnect) and a *trusted* peer of
  every other (config.toml ``[Node.P2P] StaticNodes`` / ``TrustedNodes``);
* ``MaxPeers`` is the number of listed peers and ``DialRatio`` 1, so geth's inbound allowance
  (``MaxPeers - MaxPeers / DialRatio``) is 0: every inbound connection that is not from a trusted node is
  refused ("too many peers"), even while a listed peer is down, and all static peers can be dialled at once.

Zero gas price (officials hold no ether), found by experiment and in geth's source (docs/NETWORK.md):

* ``--txpool.pricelimit 0``: the pool's minimum tip for transactions from peers starts at 0 (geth logs that it
  "sanitizes" 0 to 1, but passes the raw 0 to the pool);
* the miner's minimum tip cannot be 0 from the command line (``--miner.gasprice 0`` becomes 1 gwei) and
  ``--mine`` would raise the pool's minimum to it, dropping every zero-price transaction already received from a
  peer (and a transaction refused by a peer is never offered to it again). So sealers start *without*
  ``--mine``; once their key is unlocked, the network's control sets ``miner_setGasPrice 0`` and then
  ``miner_start`` over IPC (`GethNetwork.start` does this on every start);
* the gas price oracle answers 0 (``eth_gasPrice``, ``eth_maxPriorityFeePerGas``): its default is 0 and it
  ignores every observed price (``IgnorePrice`` set to the largest value), so wallets that ask price at 0.
"""

from __future__ import annotations

import itertools
import json
import os
import signal
import subprocess
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any, Literal

from deposit_token.chain.geth import genesis as genesis_mod
from deposit_token.chain.geth.ipc import MAX_SOCKET_PATH, IpcClient
from deposit_token.chain.rpc import RpcError
from deposit_token.errors import DepositTokenError
from deposit_token.processes import command_line, log_tail, port_in_use, process_alive, wait_for_exit

Role = Literal["sealer", "archive"]

HOST = "127.0.0.1"
NETRESTRICT = "127.0.0.0/8"
LOG_FILE = "geth.log"
PID_FILE = "geth.pid"
CONFIG_FILE = "config.toml"
IPC_FILE = "geth.ipc"
CACHE_MB = 256  # geth's default 1024 MB per node is more than four nodes on a small machine need
TXPOOL_GLOBAL_SLOTS = 20_000
TXPOOL_GLOBAL_QUEUE = 5_000
HTTP_APIS = "eth,net,web3"  # the archive node's HTTP: reads and eth_sendRawTransaction, nothing else
IGNORE_PRICE = 2**63 - 1  # the gas price oracle ignores every price below it, i.e. all: it answers its default 0
STOP_TIMEOUT = 60.0


class NodeError(DepositTokenError):
    """A geth node cannot be set up, started or stopped; the message says which and why."""


@dataclass(frozen=True)
class NodeSpec:
    """What the network's record says about one node."""

    name: str
    role: Role
    p2p_port: int
    authrpc_port: int
    node_id: str
    institution: str = ""
    address: str | None = None  # the sealer's signing account
    http_port: int | None = None  # the archive node's JSON-RPC over HTTP

    def as_dict(self) -> dict[str, Any]:
        return {key: value for key, value in asdict(self).items() if value is not None}

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> NodeSpec:
        return cls(**{key: data[key] for key in cls.__dataclass_fields__ if key in data})

    @property
    def enode(self) -> str:
        return f"enode://{self.node_id}@{HOST}:{self.p2p_port}"

    @property
    def ports(self) -> list[int]:
        return [port for port in (self.p2p_port, self.authrpc_port, self.http_port) if port is not None]


@dataclass(frozen=True)
class Node:
    """A node's spec and the directory its files live in."""

    spec: NodeSpec
    directory: Path

    @property
    def name(self) -> str:
        return self.spec.name

    @property
    def ipc_path(self) -> Path:
        return self.directory / IPC_FILE

    @property
    def log_file(self) -> Path:
        return self.directory / LOG_FILE

    @property
    def pid_file(self) -> Path:
        return self.directory / PID_FILE

    @property
    def config_file(self) -> Path:
        return self.directory / CONFIG_FILE

    @property
    def rpc_url(self) -> str | None:
        return f"http://{HOST}:{self.spec.http_port}" if self.spec.http_port else None

    def ipc(self, timeout: float = 10.0) -> IpcClient:
        return IpcClient(self.ipc_path, timeout)


# --- files ---------------------------------------------------------------------------------------------------


def _toml_list(items: list[str]) -> str:
    return "[" + ", ".join(json.dumps(item) for item in items) + "]"


def render_config(node: NodeSpec, peers: list[str]) -> str:
    """The node's config.toml: p2p permissioning (see the module docstring) and the gas price oracle."""
    return (
        "# Written by `ape run network init --engine geth` (deposit_token.chain.geth.nodes.render_config).\n"
        "[Eth.GPO]\n"
        "Blocks = 20\n"
        "Percentile = 60\n"
        "MaxHeaderHistory = 1024\n"
        "MaxBlockHistory = 1024\n"
        "MaxPrice = 500000000000\n"
        f"IgnorePrice = {IGNORE_PRICE}\n"
        "Default = 0\n"
        "\n"
        "[Node.P2P]\n"
        f"MaxPeers = {max(len(peers), 1)}\n"
        "DialRatio = 1\n"
        "NoDiscovery = true\n"
        "DiscoveryV4 = false\n"
        f'ListenAddr = "{HOST}:{node.p2p_port}"\n'
        f"StaticNodes = {_toml_list(peers)}\n"
        f"TrustedNodes = {_toml_list(peers)}\n"
    )


def write_config(node: Node, peers: list[str]) -> None:
    node.config_file.write_text(render_config(node.spec, peers), encoding="utf-8")


def check_socket_path(node: Node) -> None:
    if len(str(node.ipc_path)) > MAX_SOCKET_PATH:
        raise NodeError(
            f"the IPC socket path {node.ipc_path} is longer than a unix socket allows ({MAX_SOCKET_PATH}): "
            "use a shorter --data-dir"
        )


def init_database(geth: str, node: Node, genesis: dict[str, Any]) -> None:
    """``geth init``: writes the genesis block into the node's new database."""
    genesis_file = node.directory / "genesis.json"
    genesis_file.write_text(json.dumps(genesis, indent=2) + "\n", encoding="utf-8")
    result = subprocess.run(
        [geth, "--datadir", str(node.directory), "--state.scheme", "hash", "init", str(genesis_file)],
        capture_output=True,
        text=True,
        timeout=120,
    )
    if result.returncode != 0:
        tail = "\n".join((result.stdout + result.stderr).strip().splitlines()[-5:])
        raise NodeError(f"`geth init` failed for node {node.name}:\n{tail}")


# --- the command line ----------------------------------------------------------------------------------------


def geth_command(
    geth: str,
    node: Node,
    chain_id: int = genesis_mod.CHAIN_ID,
    gas_limit: int = genesis_mod.GAS_LIMIT,
    password_fd: int | None = None,
) -> list[str]:
    """The node's command line. A sealer unlocks its key from the keystore (the passphrase read from the pipe
    `password_fd`) but does not mine until told to over IPC (the module docstring says why)."""
    spec = node.spec
    command = [
        geth,
        "--datadir",
        str(node.directory),
        "--config",
        str(node.config_file),
        "--networkid",
        str(chain_id),
        "--syncmode",
        "full",
        # Every node keeps every block's state on disk: the archive node so that audits read any past block, the
        # sealers so that a crash (kill -9) loses nothing written (hash-scheme full nodes keep recent state in
        # memory and rewind on an unclean restart).
        "--gcmode",
        "archive",
        "--state.scheme",
        "hash",
        "--nodiscover",
        "--netrestrict",
        NETRESTRICT,
        "--nat",
        "none",
        "--ipcpath",
        str(node.ipc_path),
        # The engine API (JWT-authenticated, for a beacon client this chain never has) cannot be switched off in
        # geth 1.13: it listens on loopback, on a port of its own per node.
        "--authrpc.addr",
        HOST,
        "--authrpc.port",
        str(spec.authrpc_port),
        "--txpool.pricelimit",
        "0",
        # geth's default pool (5,120 executable + 1,024 queued) fills under a disbursal-sized burst, and a full
        # sealer refuses further zero-price transactions from its peers, which never offer them again: they would
        # sit on the archive node unmined (measured: 872 of 7,200 with the defaults, none with these).
        "--txpool.globalslots",
        str(TXPOOL_GLOBAL_SLOTS),
        "--txpool.globalqueue",
        str(TXPOOL_GLOBAL_QUEUE),
        "--miner.gaslimit",
        str(gas_limit),
        "--cache",
        str(CACHE_MB),
    ]
    if spec.role == "sealer":
        if spec.address is None or password_fd is None:
            raise NodeError(f"sealer {spec.name} needs its account and the passphrase pipe")
        command += [
            "--miner.etherbase",
            spec.address,
            "--unlock",
            spec.address,
            "--password",
            f"/dev/fd/{password_fd}",
        ]
    if spec.http_port is not None:
        command += [
            "--http",
            "--http.addr",
            HOST,
            "--http.port",
            str(spec.http_port),
            "--http.api",
            HTTP_APIS,
            "--http.vhosts",
            "localhost,127.0.0.1",
        ]
    return command


# --- processes -----------------------------------------------------------------------------------------------


def read_pid(node: Node) -> int | None:
    try:
        text = node.pid_file.read_text(encoding="utf-8").strip()
    except OSError:
        return None
    return int(text) if text.isdigit() else None


def process_is_ours(pid: int, node: Node) -> bool:
    """True if `pid` is a geth serving this node's directory (guards against a stale pid reused by another)."""
    args = command_line(pid)
    if not args or "geth" not in Path(args[0]).name:
        return False
    return any(a == "--datadir" and b == str(node.directory) for a, b in itertools.pairwise(args))


def running_pid(node: Node) -> int | None:
    pid = read_pid(node)
    if pid is not None and process_alive(pid) and process_is_ours(pid, node):
        return pid
    return None


def busy_ports(spec: NodeSpec) -> list[int]:
    return [port for port in spec.ports if port_in_use(HOST, port)]


def spawn(geth: str, node: Node, passphrase: str | None, chain_id: int, gas_limit: int) -> subprocess.Popen[bytes]:
    """Starts geth detached (its own session: it outlives us, and a Ctrl-C in our terminal does not reach it)."""
    check_socket_path(node)
    if node.log_file.exists():
        os.replace(node.log_file, node.log_file.with_name(LOG_FILE + ".1"))
    read_end = None
    if node.spec.role == "sealer":
        if passphrase is None:
            raise NodeError(f"sealer {node.name} needs the keystore passphrase")
        read_end, write_end = os.pipe()
        # One line, well under a pipe's buffer: the write cannot block before geth reads it.
        os.write(write_end, (passphrase + "\n").encode("utf-8"))
        os.close(write_end)
    command = geth_command(geth, node, chain_id, gas_limit, read_end)
    try:
        with open(node.log_file, "ab") as log:
            process = subprocess.Popen(
                command,
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
                start_new_session=True,
                close_fds=True,
                pass_fds=(read_end,) if read_end is not None else (),
                cwd=node.directory,
            )
    finally:
        if read_end is not None:
            os.close(read_end)
    node.pid_file.write_text(f"{process.pid}\n", encoding="utf-8")
    return process


def _alive(process: subprocess.Popen[bytes] | int) -> bool:
    if isinstance(process, int):
        return process_alive(process)
    return process.poll() is None


def _exit_text(node: Node) -> str:
    return f"geth ({node.name}) exited while starting; last lines of {node.log_file}:\n{log_tail(node.log_file)}"


def wait_for_ipc(node: Node, process: subprocess.Popen[bytes] | int, deadline: float) -> IpcClient:
    """Waits until the node answers on its IPC socket; NodeError if it exits or the deadline passes."""
    client = node.ipc()
    while True:
        if not _alive(process):
            raise NodeError(_exit_text(node))
        try:
            client.call("web3_clientVersion")
            return client
        except RpcError:
            if time.monotonic() > deadline:
                raise NodeError(f"geth ({node.name}) did not answer on {node.ipc_path}; see {node.log_file}") from None
            time.sleep(0.05)


def wait_until_unlocked(node: Node, client: IpcClient, process: subprocess.Popen[bytes] | int, deadline: float) -> None:
    """Waits until geth has unlocked the sealer's key (it does so after opening IPC, scrypt takes ~1 s).

    geth 1.13 has no method that reports a key's lock state without the (disabled) personal namespace; signing a
    probe message with eth_sign succeeds exactly when the key is unlocked. The signature is thrown away."""
    while True:
        if not _alive(process):
            raise NodeError(_exit_text(node))
        try:
            client.call("eth_sign", [node.spec.address, "0x00"])
            return
        except RpcError as err:
            if "authentication needed" not in err.message and "unlock" not in err.message:
                raise NodeError(f"sealer {node.name} cannot sign with its key: {err.message}") from None
            if time.monotonic() > deadline:
                raise NodeError(f"sealer {node.name} did not unlock its key in time; see {node.log_file}") from None
            time.sleep(0.05)


def start_sealing(client: IpcClient) -> None:
    """Zero minimum tip first (pool and miner), then sealing: the order matters (see the module docstring)."""
    client.call("miner_setGasPrice", ["0x0"])
    client.call("miner_start", [])


def stop_process(node: Node, timeout: float = STOP_TIMEOUT) -> tuple[int | None, bool]:
    """SIGTERM (geth writes its caches and closes its database), then SIGKILL after `timeout` seconds.
    (pid or None if it did not run, True if it exited on SIGTERM)."""
    pid = running_pid(node)
    if pid is None:
        node.pid_file.unlink(missing_ok=True)
        return None, True
    os.kill(pid, signal.SIGTERM)
    graceful = wait_for_exit(pid, timeout)
    if not graceful:
        os.kill(pid, signal.SIGKILL)
        wait_for_exit(pid, 10.0)
    node.pid_file.unlink(missing_ok=True)
    return pid, graceful


__all__ = [
    "HOST",
    "STOP_TIMEOUT",
    "Node",
    "NodeError",
    "NodeSpec",
    "Role",
    "busy_ports",
    "geth_command",
    "init_database",
    "read_pid",
    "render_config",
    "running_pid",
    "spawn",
    "start_sealing",
    "stop_process",
    "wait_for_ipc",
    "wait_until_unlocked",
    "write_config",
]

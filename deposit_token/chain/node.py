"""The local permissioned pilot chain: Anvil run in the background as a persistent node (``ape run network``).

The chain is ape's named network ``ethereum:pilot:node`` (ape-config.yaml): chain id 20261, bound to
127.0.0.1, interval mining (1 s by default), zero gas price and base fee (officials hold no ether), a 1e9 block
gas limit, and no funded dev accounts (everyone signs with keys from ape's keystore). Its state lives in a
data directory (default ``.anvil/pilot/``, gitignored)::

    state.json    Anvil's state, loaded on start and dumped on exit and every --state-interval seconds
    anvil.log     Anvil's output (the previous run's is kept as anvil.log.1)
    anvil.pid     the process id of the running node
    network.json  the settings it was started with (port, chain id, block time, ...) for `status` and `down`

Anvil is started detached (its own session, no controlling terminal), so it outlives the command that started
it and a Ctrl-C in that terminal does not reach it. ``stop`` sends SIGTERM, on which Anvil dumps its state;
a node killed harder loses at most the last --state-interval seconds.

Chain time. A new chain's clock starts at `NetworkConfig.genesis_timestamp` if given (Anvil's ``--timestamp``;
simulations choose it so that they run the same on any date), else at the machine's clock. Anvil (1.x) does
not restore its clock from a state file: a resumed chain would start again at the machine's clock, before the
last block if that chain had been time-travelled ahead, and block times would go backwards. So `start` reads
the newest block's timestamp from the state file and starts the clock at the later of that + 1 and now.

Everything here speaks standard JSON-RPC only (eth_chainId, eth_blockNumber, eth_getBlockByNumber,
eth_getCode, through `deposit_token.chain.rpc.RpcClient`), so ``status`` works the same against any node; a
Geth or Besu network needs no code here.
"""

from __future__ import annotations

import json
import os
import platform
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from deposit_token import paths
from deposit_token.chain import deployment
from deposit_token.chain.rpc import RpcClient, RpcError
from deposit_token.errors import DepositTokenError
from deposit_token.processes import directory_lock, port_in_use, process_alive
from deposit_token.processes import log_tail as _log_tail
from deposit_token.processes import wait_for_exit as _wait_for_exit

NETWORK_DIR_ENV = "DEPOSIT_TOKEN_NETWORK_DIR"  # moves the default data directory (rehearsals, the README's test)
DEFAULT_DATA_DIR = Path(os.environ.get(NETWORK_DIR_ENV, "").strip() or paths.ANVIL_DIR / "pilot").expanduser()
DEFAULT_HOST = "127.0.0.1"
DEFAULT_PORT = 8545
DEFAULT_CHAIN_ID = 20261
DEFAULT_BLOCK_TIME = 1.0
DEFAULT_GAS_LIMIT = 1_000_000_000
DEFAULT_STATE_INTERVAL = 5
DEFAULT_NETWORK_CHOICE = "ethereum:pilot:node"
ANVIL_ENV = "DEPOSIT_TOKEN_ANVIL"  # path of the anvil binary to run (default: the npm package's native binary)

STATE_FILE = "state.json"
LOG_FILE = "anvil.log"
PID_FILE = "anvil.pid"
INFO_FILE = "network.json"
LOCK_FILE = ".lock"

START_TIMEOUT = 30.0
STOP_TIMEOUT = 30.0
PORT_RELEASE_TIMEOUT = 2.0  # a node that was just stopped may hold its port that much longer
BLOCK_TIME_SAMPLE = 10  # blocks over which `status` measures the block time


# --- errors --------------------------------------------------------------------------------------------------


class NetworkError(DepositTokenError):
    """The pilot chain cannot be started, stopped or inspected; the message says why and what to do."""


class AnvilNotFoundError(NetworkError):
    """No anvil binary."""


class PortBusyError(NetworkError):
    """Something else already listens on the port."""


class AlreadyRunningError(NetworkError):
    """The data directory's node is already running."""


class StartFailedError(NetworkError):
    """Anvil exited or did not answer in time."""


# --- settings and files --------------------------------------------------------------------------------------


@dataclass(frozen=True)
class NetworkConfig:
    """How the pilot node is run; the files of one node live in `data_dir`."""

    data_dir: Path = DEFAULT_DATA_DIR
    port: int = DEFAULT_PORT
    chain_id: int = DEFAULT_CHAIN_ID
    block_time: float = DEFAULT_BLOCK_TIME
    gas_limit: int = DEFAULT_GAS_LIMIT
    state_interval: int = DEFAULT_STATE_INTERVAL
    host: str = DEFAULT_HOST
    genesis_timestamp: int | None = None  # unix seconds of a new chain's first block; None: the machine's clock

    def __post_init__(self) -> None:
        object.__setattr__(self, "data_dir", Path(self.data_dir).expanduser().resolve())
        if not 1 <= self.port <= 65535:
            raise NetworkError(f"port {self.port} is not a TCP port (1-65535)")
        if self.chain_id <= 0:
            raise NetworkError(f"chain id {self.chain_id} must be positive")
        if self.block_time <= 0:
            raise NetworkError(f"block time {self.block_time} s must be positive")
        if self.state_interval <= 0:
            raise NetworkError(f"state interval {self.state_interval} s must be positive")
        if self.genesis_timestamp is not None and not 0 <= self.genesis_timestamp < 2**63:
            raise NetworkError(f"genesis timestamp {self.genesis_timestamp} is not unix seconds (0 or more)")

    @property
    def rpc_url(self) -> str:
        return f"http://{self.host}:{self.port}"

    @property
    def state_file(self) -> Path:
        return self.data_dir / STATE_FILE

    @property
    def log_file(self) -> Path:
        return self.data_dir / LOG_FILE

    @property
    def pid_file(self) -> Path:
        return self.data_dir / PID_FILE

    @property
    def info_file(self) -> Path:
        return self.data_dir / INFO_FILE


def saved_settings(data_dir: Path | str) -> dict[str, Any]:
    """The settings the data directory's node was last started with ({} if none or unreadable)."""
    try:
        info = json.loads((Path(data_dir).expanduser() / INFO_FILE).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return {}
    return info if isinstance(info, dict) else {}


def config_for(data_dir: Path | str = DEFAULT_DATA_DIR, **overrides: Any) -> NetworkConfig:
    """The settings of the node in `data_dir`: explicit `overrides` (None = not given) win, then what the node
    was last started with (network.json), then the defaults. Used by `status` and `down`, which should find a
    node started with `--port 9000` without being told the port again."""
    saved = saved_settings(data_dir)
    values: dict[str, Any] = {}
    for name in ("port", "chain_id", "block_time", "gas_limit", "state_interval"):
        if overrides.get(name) is not None:
            values[name] = overrides[name]
        elif name in saved:
            values[name] = saved[name]
    return NetworkConfig(data_dir=Path(data_dir), **values)


def find_anvil() -> str:
    """The anvil executable: $DEPOSIT_TOKEN_ANVIL, else the native binary of the npm package (not its node.js
    wrapper, so that the pid we record and signal is Anvil itself), else `anvil` on PATH."""
    configured = os.environ.get(ANVIL_ENV, "").strip()
    if configured:
        if not os.access(configured, os.X_OK):
            raise AnvilNotFoundError(f"${ANVIL_ENV} names {configured}, which is not an executable")
        return configured
    arch = {"x86_64": "amd64", "amd64": "amd64", "aarch64": "arm64", "arm64": "arm64"}.get(platform.machine().lower())
    system = {"linux": "linux", "darwin": "darwin"}.get(sys.platform)
    if arch and system:
        native = paths.NODE_MODULES / "@foundry-rs" / f"anvil-{system}-{arch}" / "bin" / "anvil"
        if os.access(native, os.X_OK):
            return str(native)
    found = shutil.which("anvil")
    if found:
        return found
    raise AnvilNotFoundError(
        "anvil not found: run `make setup` (it installs Anvil from npm into node_modules/) "
        f"or set ${ANVIL_ENV} to an anvil binary"
    )


def last_block_timestamp(state_file: Path) -> int | None:
    """The timestamp of the newest block saved in an Anvil state file (None if the file holds none or cannot
    be read; Anvil then reports the problem itself when it loads the file)."""
    try:
        state = json.loads(state_file.read_text(encoding="utf-8"))
        stamps = [(state.get("block") or {}).get("timestamp")]
        stamps += [(block.get("header") or {}).get("timestamp") for block in state.get("blocks") or ()]
        values = [int(stamp, 16) if isinstance(stamp, str) else int(stamp) for stamp in stamps if stamp is not None]
    except (OSError, ValueError, TypeError, AttributeError):
        return None
    return max(values) if values else None


def clock_start(config: NetworkConfig, resumed: bool, now: float | None = None) -> int | None:
    """The timestamp Anvil's clock starts at (its --timestamp), or None for the machine's clock.

    A resumed chain continues after its last block: Anvil would otherwise restart at the machine's clock and a
    chain that had been time-travelled ahead would see time go backwards. It does not stay behind the machine's
    clock either, so a live pilot chain keeps following real time across a restart. (Reading the wall clock is
    the point here: this is the clock of a live node, not a simulation's.)"""
    if not resumed:
        return config.genesis_timestamp
    last = last_block_timestamp(config.state_file)
    if last is None:
        return None
    return max(last + 1, int(time.time() if now is None else now))


def anvil_command(config: NetworkConfig, anvil: str | None = None, timestamp: int | None = None) -> list[str]:
    """The command line of the pilot node; `timestamp` starts its clock (see `clock_start`)."""
    block_time = f"{config.block_time:g}"
    clock = ["--timestamp", str(timestamp)] if timestamp is not None else []
    return [
        anvil or find_anvil(),
        "--host",
        config.host,
        "--port",
        str(config.port),
        "--chain-id",
        str(config.chain_id),
        "--block-time",
        block_time,
        "--gas-price",
        "0",
        "--base-fee",
        "0",
        # Without it Anvil suggests a 1 gwei gas price / priority fee, which accounts without ether cannot pay.
        "--disable-min-priority-fee",
        "--gas-limit",
        str(config.gas_limit),
        # No funded dev accounts: on a permissioned chain every participant signs with its own keystore key.
        "--accounts",
        "0",
        "--state",
        str(config.state_file),
        "--state-interval",
        str(config.state_interval),
        *clock,
    ]


# --- processes -----------------------------------------------------------------------------------------------


def read_pid(config: NetworkConfig) -> int | None:
    try:
        text = config.pid_file.read_text(encoding="utf-8").strip()
    except OSError:
        return None
    return int(text) if text.isdigit() else None


def process_is_ours(pid: int, config: NetworkConfig) -> bool:
    """True if `pid` is an Anvil serving this data directory (its command line names our state file): guards
    against signalling an unrelated process that reused a stale pid."""
    try:
        args = Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\0")
    except OSError:
        return False
    if not args or "anvil" not in Path(os.fsdecode(args[0])).name:
        return False
    return os.fsencode(str(config.state_file)) in args


def running_pid(config: NetworkConfig) -> int | None:
    """The pid of this data directory's running node, or None."""
    pid = read_pid(config)
    if pid is not None and process_alive(pid) and process_is_ours(pid, config):
        return pid
    return None


@contextmanager
def _data_dir_lock(config: NetworkConfig) -> Iterator[None]:
    """Serialises `start` and `stop` on one data directory (two `up`s at once must not start two nodes)."""
    with directory_lock(config.data_dir, LOCK_FILE):
        yield


def _utc_now() -> str:
    # When the node process was started, in real time, for the operator (network.json); not chain time.
    return datetime.now(UTC).isoformat(timespec="seconds").replace("+00:00", "Z")


# --- start / stop --------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class StartResult:
    config: NetworkConfig
    pid: int
    chain_id: int
    head_block: int
    resumed: bool  # the chain was loaded from the data directory's state file
    seconds: float  # until the node answered
    clock_start: int | None = None  # the timestamp the node's clock was started at (None: the machine's clock)


@dataclass(frozen=True)
class StopResult:
    config: NetworkConfig
    pid: int | None  # None: nothing was running
    graceful: bool  # exited on SIGTERM (state dumped), not killed
    seconds: float


def start(config: NetworkConfig, timeout: float = START_TIMEOUT) -> StartResult:
    """Starts the node in the background and returns once it answers JSON-RPC with the right chain id.

    Refuses (AlreadyRunningError) if the data directory's node runs, (PortBusyError) if anything else holds the
    port, (NetworkError) if the data directory holds a chain with another chain id."""
    anvil = find_anvil()
    with _data_dir_lock(config):
        pid = running_pid(config)
        if pid is not None:
            saved = saved_settings(config.data_dir)
            raise AlreadyRunningError(
                f"the pilot node of {config.data_dir} is already running (pid {pid}, "
                f"http://{saved.get('host', config.host)}:{saved.get('port', '?')}); "
                "`ape run network down` stops it"
            )
        if not _wait_for_free_port(config, PORT_RELEASE_TIMEOUT):
            raise PortBusyError(
                f"port {config.port} on {config.host} is already in use by another process (not the node of "
                f"{config.data_dir}); stop that process or choose another port with --port"
            )
        saved = saved_settings(config.data_dir)
        resumed = config.state_file.exists()
        if resumed and saved.get("chain_id") not in (None, config.chain_id):
            raise NetworkError(
                f"{config.data_dir} holds the state of chain id {saved['chain_id']}, not {config.chain_id}: "
                f"start it with --chain-id {saved['chain_id']} or use another --data-dir"
            )
        if resumed and config.genesis_timestamp is not None:
            raise NetworkError(
                f"{config.data_dir} holds a saved chain, which keeps its own clock: a genesis timestamp applies "
                "only to a new chain (use another --data-dir)"
            )
        clock = clock_start(config, resumed)
        if config.log_file.exists():
            os.replace(config.log_file, config.log_file.with_name(LOG_FILE + ".1"))
        command = anvil_command(config, anvil, clock)
        with open(config.log_file, "ab") as log:
            process = subprocess.Popen(
                command,
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
                start_new_session=True,  # outlives us; Ctrl-C in our terminal does not reach it
                close_fds=True,
                cwd=config.data_dir,
            )
        config.pid_file.write_text(f"{process.pid}\n", encoding="utf-8")
        info = {
            **asdict(config),
            "data_dir": str(config.data_dir),
            "pid": process.pid,
            "started_at": _utc_now(),
            "clock_start": clock,
            "command": command,
        }
        config.info_file.write_text(json.dumps(info, indent=2) + "\n", encoding="utf-8")
        began = time.monotonic()
        try:
            chain_id, head = _wait_until_ready(config, process, timeout)
        except StartFailedError:
            if process.poll() is None:
                process.kill()
                process.wait(timeout=10)
            config.pid_file.unlink(missing_ok=True)
            raise
        return StartResult(config, process.pid, chain_id, head, resumed, time.monotonic() - began, clock)


def _wait_until_ready(config: NetworkConfig, process: subprocess.Popen[bytes], timeout: float) -> tuple[int, int]:
    rpc = RpcClient(config.rpc_url, timeout=2.0)
    deadline = time.monotonic() + timeout
    while True:
        code = process.poll()
        if code is not None:
            raise StartFailedError(
                f"anvil exited with code {code} while starting; last lines of "
                f"{config.log_file}:\n{_log_tail(config.log_file)}"
            )
        try:
            chain_id = rpc.chain_id()
            head = rpc.block_number()
        except RpcError:
            if time.monotonic() > deadline:
                raise StartFailedError(
                    f"anvil did not answer on {config.rpc_url} within {timeout:g} s; see {config.log_file}"
                ) from None
            time.sleep(0.1)
            continue
        if chain_id != config.chain_id:
            raise StartFailedError(f"{config.rpc_url} answers with chain id {chain_id}, expected {config.chain_id}")
        return chain_id, head


def stop(config: NetworkConfig, timeout: float = STOP_TIMEOUT) -> StopResult:
    """Stops the data directory's node with SIGTERM (Anvil dumps its state on it) and waits for it to exit;
    after `timeout` seconds it is killed (the state is then as of the last periodic dump). Does nothing if the
    node is not running."""
    began = time.monotonic()
    with _data_dir_lock(config):
        pid = running_pid(config)
        if pid is None:
            config.pid_file.unlink(missing_ok=True)
            return StopResult(config, None, True, 0.0)
        os.kill(pid, signal.SIGTERM)
        graceful = _wait_for_exit(pid, timeout)
        if not graceful:
            os.kill(pid, signal.SIGKILL)
            _wait_for_exit(pid, 10.0)
        config.pid_file.unlink(missing_ok=True)
        _wait_for_free_port(config, PORT_RELEASE_TIMEOUT)
        return StopResult(config, pid, graceful, time.monotonic() - began)


def _wait_for_free_port(config: NetworkConfig, timeout: float) -> bool:
    """Waits until nothing holds the port. A multi-threaded process can look dead (its main thread is a
    zombie) a moment before its other threads have exited and its listening socket is closed."""
    deadline = time.monotonic() + timeout
    while port_in_use(config.host, config.port):
        if time.monotonic() > deadline:
            return False
        time.sleep(0.05)
    return True


# --- status --------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class DeploymentStatus:
    """A deployment record of the network and what the chain says about it."""

    path: Path
    network: str
    recorded_chain_id: int | None
    token: str | None
    admin_module: str | None
    block: int | None
    token_has_code: bool | None  # None: not checked (chain not answering, or another chain id)
    module_has_code: bool | None
    note: str


@dataclass(frozen=True)
class NetworkStatus:
    config: NetworkConfig
    answering: bool
    chain_id: int | None
    head_block: int | None
    head_timestamp: int | None
    block_time: float | None  # measured over the last `blocks_measured` blocks
    blocks_measured: int
    pid: int | None  # from the pid file
    running: bool  # that pid runs
    ours: bool  # and it is an Anvil serving this data directory
    error: str | None  # why the node did not answer
    deployments: list[DeploymentStatus] = field(default_factory=list)

    @property
    def process_text(self) -> str:
        if self.pid is None:
            return "not running" + (" (something else answers on the port)" if self.answering else "")
        if not self.running:
            return f"not running (stale pid file: {self.pid})"
        if not self.ours:
            return f"pid {self.pid} runs but is not this data directory's Anvil"
        return f"running, ours (pid {self.pid})"


def measure_block_time(
    rpc: RpcClient, head: int, sample: int = BLOCK_TIME_SAMPLE
) -> tuple[float | None, int, int | None]:
    """(average seconds between the last `sample` blocks, blocks measured, head timestamp)."""
    count = min(sample, head)
    numbers = [head - count, head] if count else [head]
    blocks = rpc.batch([("eth_getBlockByNumber", [hex(n), False]) for n in numbers])
    stamps = [int(b["timestamp"], 16) for b in blocks if b]
    if count == 0 or len(stamps) != 2:
        return None, 0, stamps[-1] if stamps else None
    return (stamps[1] - stamps[0]) / count, count, stamps[1]


def deployment_status(
    rpc: RpcClient | None, chain_id: int | None, network_choice: str, directory: Path | str | None = None
) -> list[DeploymentStatus]:
    """The network's deployment record (deposit_token.chain.deployment's file naming), checked against the chain."""
    path = deployment.record_path(network_choice, directory)
    try:
        record = deployment.load_record(path)
    except deployment.DeploymentRecordError as err:
        return [DeploymentStatus(path, network_choice, None, None, None, None, None, None, str(err))]
    if record is None:
        return []
    recorded_chain = record.get("chain_id")
    token, module = record.get("token"), record.get("admin_module")
    block = (record.get("block") or {}).get("number")
    token_code = module_code = None
    if rpc is None or chain_id is None:
        note = "chain not answering: code not checked"
    elif recorded_chain != chain_id:
        note = f"recorded on chain id {recorded_chain}, this chain is {chain_id}"
    else:
        try:
            token_code = rpc.has_code(str(token))
            module_code = rpc.has_code(module) if module else None
        except RpcError as err:
            note = f"code not checked: {err}"
        else:
            note = "live" if token_code else "no code at the token address (chain restarted without its state?)"
    return [
        DeploymentStatus(
            path,
            str(record.get("network", network_choice)),
            recorded_chain,
            token,
            module,
            block,
            token_code,
            module_code,
            note,
        )
    ]


def status(
    config: NetworkConfig, network_choice: str = DEFAULT_NETWORK_CHOICE, deployments_dir: Path | str | None = None
) -> NetworkStatus:
    """What runs on the configured port, whether it is this data directory's node, and the deployments."""
    pid = read_pid(config)
    running = pid is not None and process_alive(pid)
    ours = pid is not None and running and process_is_ours(pid, config)
    rpc = RpcClient(config.rpc_url, timeout=3.0)
    try:
        chain_id = rpc.chain_id()
        head = rpc.block_number()
        block_time, measured, head_ts = measure_block_time(rpc, head)
    except (RpcError, KeyError, TypeError, ValueError) as err:
        return NetworkStatus(
            config,
            False,
            None,
            None,
            None,
            None,
            0,
            pid,
            running,
            ours,
            str(err),
            deployment_status(None, None, network_choice, deployments_dir),
        )
    return NetworkStatus(
        config,
        True,
        chain_id,
        head,
        head_ts,
        block_time,
        measured,
        pid,
        running,
        ours,
        None,
        deployment_status(rpc, chain_id, network_choice, deployments_dir),
    )


__all__ = [
    "AlreadyRunningError",
    "AnvilNotFoundError",
    "DeploymentStatus",
    "NetworkConfig",
    "NetworkError",
    "NetworkStatus",
    "PortBusyError",
    "StartFailedError",
    "StartResult",
    "StopResult",
    "config_for",
    "find_anvil",
    "port_in_use",
    "running_pid",
    "start",
    "status",
    "stop",
]

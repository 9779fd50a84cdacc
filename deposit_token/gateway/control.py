"""Running a gateway: in the foreground (`run`, what `ape run gateway serve` does), in a thread of the calling
process (`running`, for tests), or as a detached process (`start_process` / `stop_process`, what `ape run
gateway start | stop` do, and what a benchmark uses so that the gateway has a process of its own).

    from deposit_token.gateway import GatewayConfig, KeyStore, running

    key = KeyStore(data_dir / "keys.json").add("treasury", "operator")
    with running(GatewayConfig(upstream=node_url, data_dir=data_dir, port=0, token=token, from_block=n)) as gw:
        web3 = Web3(Web3.HTTPProvider(gw.url_for("treasury", key)))

A detached gateway reads its settings from ``<data_dir>/gateway.json`` (written by `start_process`, mode 0600:
the upstream URL may hold the node's password, which must not appear in a process list), writes its output to
``<data_dir>/gateway.log`` and its pid to ``<data_dir>/gateway.pid``.
"""

from __future__ import annotations

import asyncio
import json
import os
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, replace
from pathlib import Path
from urllib.parse import quote

import requests

from deposit_token.errors import DepositTokenError
from deposit_token.gateway.server import Gateway, GatewayConfig
from deposit_token.processes import free_port, process_alive

CONFIG_FILE = "gateway.json"
PID_FILE = "gateway.pid"
LOG_FILE = "gateway.log"
START_TIMEOUT = 60.0


class GatewayError(DepositTokenError):
    """A gateway could not be started or stopped."""


@dataclass(frozen=True)
class RunningGateway:
    """A gateway that answers: its URL and, in-process, the Gateway object itself."""

    url: str
    config: GatewayConfig
    gateway: Gateway | None = None
    pid: int | None = None

    def url_for(self, name: str, key: str) -> str:
        """The URL with a client's credentials (HTTP Basic: the name, then the key as password), as web3.py's
        HTTPProvider, requests and aiohttp take it."""
        scheme, rest = self.url.split("://", 1)
        return f"{scheme}://{quote(name, safe='')}:{quote(key, safe='')}@{rest}"


# --- foreground / in-process ------------------------------------------------------------------------------


async def _serve(config: GatewayConfig, ready: Callable[[Gateway], None], stop: asyncio.Event) -> None:
    gateway = Gateway(config)
    await gateway.start()
    try:
        ready(gateway)
        await stop.wait()
    finally:
        await gateway.stop()


def run(config: GatewayConfig, ready: Callable[[Gateway], None] | None = None) -> None:
    """Serves until SIGINT or SIGTERM (then closes connections and the access log cleanly)."""

    async def main() -> None:
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for signum in (signal.SIGINT, signal.SIGTERM):
            loop.add_signal_handler(signum, stop.set)
        await _serve(config, ready or (lambda gateway: None), stop)

    asyncio.run(main())


@contextmanager
def running(config: GatewayConfig, timeout: float = START_TIMEOUT) -> Iterator[RunningGateway]:
    """A gateway serving from a thread of this process for the `with` block (port 0: a free port)."""
    loop = asyncio.new_event_loop()
    stop = asyncio.Event()
    started = threading.Event()
    box: dict[str, object] = {}

    def ready(gateway: Gateway) -> None:
        box["gateway"] = gateway
        started.set()

    def main() -> None:
        try:
            loop.run_until_complete(_serve(config, ready, stop))
        except BaseException as err:  # noqa: BLE001 - handed to the caller's thread below
            box["error"] = err
            started.set()
        finally:
            loop.close()

    thread = threading.Thread(target=main, name="gateway", daemon=True)
    thread.start()
    if not started.wait(timeout):
        raise GatewayError(f"the gateway did not start within {timeout:g} s")
    error = box.get("error")
    if isinstance(error, BaseException):
        raise error
    gateway = box["gateway"]
    assert isinstance(gateway, Gateway)
    try:
        yield RunningGateway(gateway.url, config, gateway)
    finally:
        loop.call_soon_threadsafe(stop.set)
        thread.join(timeout=30)


# --- detached process -------------------------------------------------------------------------------------


def _pid_file(data_dir: Path) -> Path:
    return data_dir / PID_FILE


def _config_file(data_dir: Path) -> Path:
    return data_dir / CONFIG_FILE


def read_config(data_dir: Path) -> GatewayConfig:
    """The settings a detached gateway of `data_dir` runs with."""
    try:
        return GatewayConfig.from_json(json.loads(_config_file(data_dir).read_text(encoding="utf-8")))
    except (OSError, ValueError, TypeError) as err:
        raise GatewayError(f"cannot read the gateway settings {_config_file(data_dir)}: {err}") from err


def running_pid(data_dir: Path) -> int | None:
    """The pid of `data_dir`'s detached gateway if it runs, else None."""
    try:
        pid = int(_pid_file(data_dir).read_text(encoding="utf-8").strip())
    except (OSError, ValueError):
        return None
    if not process_alive(pid):
        return None
    try:
        args = Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\0")
    except OSError:
        return None
    return pid if os.fsencode(str(_config_file(data_dir))) in args else None


def _last_error(path: Path) -> str:
    """The last sentence the gateway process wrote (its one-line error), without the "gateway: " prefix."""
    try:
        lines = path.read_text(encoding="utf-8", errors="replace").strip().splitlines()
    except OSError:
        return ""
    said = [line.removeprefix("gateway: ") for line in lines if line.startswith("gateway: ")]
    return said[-1] if said else (lines[-1] if lines else "")


def start_process(config: GatewayConfig, timeout: float = START_TIMEOUT) -> RunningGateway:
    """Starts a detached gateway (port 0: a free port chosen now) and returns once it answers /health."""
    data_dir = config.data_dir
    data_dir.mkdir(parents=True, exist_ok=True)
    pid = running_pid(data_dir)
    if pid is not None:
        raise GatewayError(f"the gateway of {data_dir} is already running (pid {pid}); `gateway stop` stops it")
    if config.port == 0:
        config = replace(config, port=free_port(config.host))
    config_file = _config_file(data_dir)
    fd = os.open(config_file, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w", encoding="utf-8") as out:
        json.dump(config.as_json(), out, indent=2)
    log_file = data_dir / LOG_FILE
    with open(log_file, "ab") as log:
        process = subprocess.Popen(
            [sys.executable, "-m", "deposit_token.gateway", str(config_file)],
            stdin=subprocess.DEVNULL,
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,  # outlives the command that started it; Ctrl-C there does not reach it
            close_fds=True,
        )
    _pid_file(data_dir).write_text(f"{process.pid}\n", encoding="utf-8")
    url = f"http://{config.host}:{config.port}"
    deadline = time.monotonic() + timeout
    with requests.Session() as session:
        session.trust_env = False
        while True:
            code = process.poll()
            if code is not None:
                _pid_file(data_dir).unlink(missing_ok=True)
                raise GatewayError(f"the gateway did not start: {_last_error(log_file) or f'exit code {code}'}")
            try:
                if session.get(url + "/health", timeout=1).status_code == 200:
                    return RunningGateway(url, config, None, process.pid)
            except requests.RequestException:
                pass
            if time.monotonic() > deadline:
                process.kill()
                process.wait(timeout=10)
                _pid_file(data_dir).unlink(missing_ok=True)
                raise GatewayError(f"the gateway did not answer on {url} within {timeout:g} s; see {log_file}")
            time.sleep(0.1)


def stop_process(data_dir: Path, timeout: float = 10.0) -> int | None:
    """Stops `data_dir`'s detached gateway (SIGTERM, then SIGKILL after `timeout`); its pid, or None if none
    was running."""
    pid = running_pid(data_dir)
    if pid is None:
        _pid_file(data_dir).unlink(missing_ok=True)
        return None
    os.kill(pid, signal.SIGTERM)
    deadline = time.monotonic() + timeout
    while process_alive(pid):
        if time.monotonic() > deadline:
            os.kill(pid, signal.SIGKILL)
            break
        time.sleep(0.05)
    _pid_file(data_dir).unlink(missing_ok=True)
    return pid

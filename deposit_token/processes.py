"""Operating-system processes and ports: the one place that says whether a process runs and finds a free port.

Used by the local chain's node control (``deposit_token.chain.node``, ``deposit_token.chain.sandbox``), the Geth
network's (``deposit_token.chain.geth``) and the throwaway PostgreSQL server (``deposit_token.audit.db.pgserver``).
Part of the base: it imports nothing of ours.
"""

from __future__ import annotations

import contextlib
import errno
import fcntl
import os
import socket
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path


def free_port(host: str = "127.0.0.1") -> int:
    """A TCP port nothing listens on right now (the OS picks it)."""
    with socket.socket() as sock:
        sock.bind((host, 0))
        port: int = sock.getsockname()[1]  # an AF_INET address is (host, port)
        return port


def _reap(pid: int) -> None:
    """Collects `pid`'s exit status if it is our own child (a process started and stopped in one process)."""
    with contextlib.suppress(ChildProcessError):
        os.waitpid(pid, os.WNOHANG)


def process_alive(pid: int) -> bool:
    """True if `pid` runs (a zombie, dead but not yet collected, does not count)."""
    _reap(pid)
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
        return stat.rsplit(")", 1)[1].split()[0] != "Z"
    except (OSError, IndexError):
        return True


def port_in_use(host: str, port: int) -> bool:
    """True if something accepts connections on host:port or the port cannot be bound."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.settimeout(0.5)
        if probe.connect_ex((host, port)) == 0:
            return True
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        # As servers (Anvil, geth) do: connections of a stopped server in TIME_WAIT do not block the port.
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            probe.bind((host, port))
        except OSError as err:
            return err.errno in (errno.EADDRINUSE, errno.EACCES)
    return False


def wait_for_exit(pid: int, timeout: float) -> bool:
    """Waits up to `timeout` seconds for `pid` to exit; True if it did."""
    deadline = time.monotonic() + timeout
    while process_alive(pid):
        if time.monotonic() > deadline:
            return False
        time.sleep(0.05)
    return True


def command_line(pid: int) -> list[str]:
    """The arguments `pid` was started with ([] if it is gone or not ours to read)."""
    try:
        return [os.fsdecode(arg) for arg in Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\0") if arg]
    except OSError:
        return []


def log_tail(path: Path, lines: int = 8) -> str:
    """The last `lines` lines of a log file ("" if it cannot be read)."""
    try:
        text = path.read_text(encoding="utf-8", errors="replace")
    except OSError:
        return ""
    return "\n".join(text.strip().splitlines()[-lines:])


@contextmanager
def directory_lock(directory: Path, name: str = ".lock") -> Iterator[None]:
    """Serialises whoever starts or stops the processes of one data directory (two `up`s at once must not start
    two nodes); an exclusive flock on `directory/name`, released when the block ends or the process dies."""
    directory.mkdir(parents=True, exist_ok=True)
    with open(directory / name, "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(lock, fcntl.LOCK_UN)

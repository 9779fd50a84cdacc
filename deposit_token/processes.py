"""Operating-system processes and ports: the one place that says whether a process runs and finds a free port.

Used by the local chain's node control (``deposit_token.chain.node``, ``deposit_token.chain.sandbox``) and by the
throwaway PostgreSQL server (``deposit_token.audit.db.pgserver``). Part of the base: it imports nothing of ours.
"""

from __future__ import annotations

import contextlib
import os
import socket
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

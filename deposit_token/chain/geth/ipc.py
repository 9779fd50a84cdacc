"""JSON-RPC over a Geth node's IPC endpoint (the unix socket ``geth.ipc`` in its data directory).

Why IPC: the sealers expose no HTTP RPC at all, and the namespaces the network's control needs (``admin``,
``clique``, ``miner``, ``personal``) are served on IPC only, to whoever may open the socket (the operating system
account that owns the data directory). The archive node's HTTP endpoint serves eth/net/web3 and nothing else.

The protocol is geth's: each request is one JSON object written to the stream, each answer one JSON value
followed by a newline. Requests are written without newlines inside them (compact JSON), so the answer's newline
is the only delimiter we rely on. Errors are the package's `RpcError` (an answer) and `RpcConnectionError` (no
socket, refused, closed, or no answer in time), as for the HTTP client, so callers handle both alike.
"""

from __future__ import annotations

import itertools
import socket
import threading
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import orjson

from deposit_token.chain.rpc import RpcConnectionError, RpcError

DEFAULT_TIMEOUT = 10.0
# sockaddr_un.sun_path is 108 bytes on Linux (104 on macOS) including the terminating NUL.
MAX_SOCKET_PATH = 103


class IpcClient:
    """One persistent connection to a node's IPC socket; thread-safe (calls take turns on it)."""

    def __init__(self, path: Path | str, timeout: float = DEFAULT_TIMEOUT) -> None:
        self.path = Path(path)
        self.timeout = timeout
        self._ids = itertools.count(1)
        self._lock = threading.Lock()
        self._sock: socket.socket | None = None
        self._buffer = b""

    @property
    def url(self) -> str:
        return f"ipc:{self.path}"

    def close(self) -> None:
        with self._lock:
            self._drop()

    def __enter__(self) -> IpcClient:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def _drop(self) -> None:
        if self._sock is not None:
            self._sock.close()
        self._sock = None
        self._buffer = b""

    def _connect(self) -> socket.socket:
        if self._sock is None:
            if len(str(self.path)) > MAX_SOCKET_PATH:
                raise RpcConnectionError(self.url, f"the socket path is longer than {MAX_SOCKET_PATH} characters")
            sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
            sock.settimeout(self.timeout)
            try:
                sock.connect(str(self.path))
            except OSError as err:
                sock.close()
                raise RpcConnectionError(self.url, err.strerror or str(err)) from err
            self._sock = sock
        return self._sock

    def _exchange(self, payload: Any, what: str) -> Any:
        with self._lock:
            sock = self._connect()
            try:
                sock.sendall(orjson.dumps(payload))
                while b"\n" not in self._buffer:
                    chunk = sock.recv(1 << 16)
                    if not chunk:
                        raise RpcConnectionError(self.url, "the node closed the connection")
                    self._buffer += chunk
            except TimeoutError as err:
                self._drop()  # a late answer would be read as the next call's
                raise RpcConnectionError(self.url, f"no answer within {self.timeout:g} s") from err
            except OSError as err:
                self._drop()
                raise RpcConnectionError(self.url, err.strerror or str(err)) from err
            except RpcConnectionError:
                self._drop()
                raise
            line, self._buffer = self._buffer.split(b"\n", 1)
        try:
            return orjson.loads(line)
        except orjson.JSONDecodeError as err:
            raise RpcError(what, None, f"the node's answer is not JSON: {line[:200]!r}") from err

    def call(self, method: str, params: Sequence[Any] = ()) -> Any:
        """The result of one call; raises its RpcError."""
        ident = next(self._ids)
        answer = self._exchange({"jsonrpc": "2.0", "id": ident, "method": method, "params": list(params)}, method)
        if not isinstance(answer, dict) or answer.get("id") != ident:
            raise RpcError(method, None, f"unexpected answer to {method}: {str(answer)[:200]}")
        error = answer.get("error")
        if error is not None:
            if isinstance(error, dict):
                raise RpcError(method, error.get("code"), str(error.get("message", error)), data=error.get("data"))
            raise RpcError(method, None, str(error))
        return answer.get("result")


def answers(path: Path | str, timeout: float = 2.0) -> bool:
    """True if a node answers JSON-RPC on the socket at `path`."""
    try:
        with IpcClient(path, timeout) as client:
            client.call("web3_clientVersion")
    except RpcError:
        return False
    return True


__all__ = ["IpcClient", "answers"]

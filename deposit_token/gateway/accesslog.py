"""The access log: one JSON line per JSON-RPC call (a batch of 1,000 calls writes 1,000 lines) with the time,
the client's name and role, the remote address, the method, the transaction's sender and hash (for
eth_sendRawTransaction), the outcome and the request's latency.

Never in it: a key (authentication happens before anything is logged, and only the client's name is kept), a
request or answer body, or call parameters (an eth_call's data may be personal). Refusals carry their reason tag
and the JSON-RPC error code; upstream errors (the node refused a transaction) their code and message.
"""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path
from typing import IO, Any

import orjson


class AccessLog:
    """Appends JSON lines to `path` (None: nowhere), flushed once per HTTP request."""

    def __init__(self, path: Path | None) -> None:
        self.path = path
        self._file: IO[bytes] | None = None
        if path is not None:
            path.parent.mkdir(parents=True, exist_ok=True)
            self._file = open(path, "ab")  # noqa: SIM115 - held open for the gateway's lifetime, closed in close()

    def write(self, entries: list[dict[str, Any]]) -> None:
        if self._file is None or not entries:
            return
        stamp = datetime.now(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")
        self._file.write(b"".join(orjson.dumps({"time": stamp, **entry}) + b"\n" for entry in entries))
        self._file.flush()

    def close(self) -> None:
        if self._file is not None:
            self._file.close()
            self._file = None

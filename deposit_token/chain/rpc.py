"""The one JSON-RPC client of the package: submission, batched reads, node control, the indexer and verify.

Why not web3.py/ape: those decode every answer into Python objects that the hot paths (signing thousands of
transactions, indexing hundreds of thousands of logs) would throw away. Here answers stay plain dicts parsed by
orjson, many calls travel as one JSON-RPC batch (a JSON array, one HTTP request), and one persistent HTTP
session keeps the connection open between requests.

Errors: every failure is an `RpcError`. `RpcConnectionError` (a subclass) means the node could not be reached
or did not answer in time, so a service may retry later; any other `RpcError` is an answer: a JSON-RPC error
object (`code`, `message`, `data`), an HTTP error status (`http_status`) or a malformed answer.

Batches, two semantics, as callers need them:

* `batch` returns the results in call order and raises the first item's error (reads that need all answers);
* `batch_results` returns per-item outcomes: a result, or the item's `RpcError` instance (submission, where
  one refused transaction must not hide the others' fate).

Both raise for what concerns the whole batch (transport errors, a batch refused as a whole, an answer that is
not a list). Long call lists are split into requests of `chunk` calls (None: all in one request).

Proxies: the environment's HTTP(S)_PROXY is ignored for a node on the loopback interface (the pilot node, test
nodes, Anvil): a proxy there would only get in the way. Remote providers go through it as usual.
"""

from __future__ import annotations

import ipaddress
import itertools
import threading
from collections.abc import Mapping, Sequence
from typing import Any
from urllib.parse import urlsplit

import orjson
import requests
from eth_utils import keccak

from deposit_token.errors import DepositTokenError

# Messages providers use when a getLogs request covers too many blocks or returns too many logs (Infura,
# Alchemy, QuickNode, geth/erigon/reth, nginx in front of a node, ...). Matched case-insensitively.
LIMIT_MARKERS = (
    "query returned more than",
    "block range",
    "range too large",
    "range is too large",
    "too many blocks",
    "too many logs",
    "too many results",
    "response size",
    "response is too big",
    "limit exceeded",
    "exceed",
    "query timeout",
    "max results",
    "log response size",
)
LIMIT_CODES = (-32005,)  # EIP-1474 "limit exceeded"
LIMIT_HTTP_STATUSES = (413, 502, 503, 504)
DEFAULT_TIMEOUT = 60.0
CONNECT_TIMEOUT = 5.0  # a node that does not accept a connection within this is down, whatever the read timeout
DEFAULT_CHUNK = 500  # calls per HTTP request in a batch: providers cap batches (Alchemy 1000, Infura 1000...)

Call = tuple[str, Sequence[Any]]


class RpcError(DepositTokenError):
    """A JSON-RPC request failed: the node answered with an error object, an HTTP error status or nonsense."""

    def __init__(
        self, method: str, code: int | None, message: str, http_status: int | None = None, data: Any = None
    ) -> None:
        super().__init__(f"{method}: {message} (code {code})" if code is not None else f"{method}: {message}")
        self.method = method
        self.code = code
        self.message = message
        self.http_status = http_status
        self.data = data

    @property
    def is_limit(self) -> bool:
        """True if the error says the request was too big (so a smaller block range may succeed)."""
        if self.http_status in LIMIT_HTTP_STATUSES or self.code in LIMIT_CODES:
            return True
        text = self.message.lower()
        return any(marker in text for marker in LIMIT_MARKERS)

    def revert_data(self) -> bytes | None:
        """The revert data of an eth_call / eth_estimateGas error (`data` is a hex string on Anvil and Geth,
        {"data": hex} on others); b"" for a revert without data; None if the error is not a revert."""
        data = self.data
        if isinstance(data, Mapping):
            data = data.get("data") or data.get("result")
        if isinstance(data, str) and data.startswith("0x"):
            try:
                return bytes.fromhex(data[2:])
            except ValueError:
                return None
        return b"" if "revert" in self.message.lower() else None


class RpcConnectionError(RpcError):
    """The node cannot be reached, or did not answer within the timeout."""

    def __init__(self, url: str, reason: str) -> None:
        super().__init__("connect", None, f"cannot reach the node at {url}: {reason}")


def _error_of(method: str, error: Any) -> RpcError:
    if isinstance(error, Mapping):
        return RpcError(method, error.get("code"), str(error.get("message", error)), data=error.get("data"))
    return RpcError(method, None, str(error))


def is_loopback(url: str) -> bool:
    """True if `url`'s host is this machine (localhost, 127.0.0.0/8, ::1)."""
    host = urlsplit(url).hostname or ""
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


class RpcClient:
    """JSON-RPC over one persistent HTTP(S) connection (see the module docstring). Thread-safe: requests from
    several threads take turns on the connection (give each thread its own client to overlap them)."""

    def __init__(self, url: str, timeout: float = DEFAULT_TIMEOUT) -> None:
        if not url.startswith(("http://", "https://")):
            raise ValueError(f"need an HTTP(S) JSON-RPC URL, not {url!r}")
        self.url = url
        self.timeout = timeout
        self._ids = itertools.count(1)
        self._lock = threading.Lock()
        self._session = requests.Session()
        self._session.headers["Content-Type"] = "application/json"
        self._session.trust_env = not is_loopback(url)  # no proxy (nor .netrc) for a local node

    def close(self) -> None:
        self._session.close()

    def __enter__(self) -> RpcClient:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # --- transport ----------------------------------------------------------------------------------------

    def _post(self, payload: Any, what: str) -> Any:
        body = orjson.dumps(payload)
        try:
            with self._lock:
                response = self._session.post(
                    self.url, data=body, timeout=(min(CONNECT_TIMEOUT, self.timeout), self.timeout)
                )
        except requests.Timeout as err:
            raise RpcConnectionError(self.url, f"no answer within {self.timeout:g} s") from err
        except requests.RequestException as err:
            raise RpcConnectionError(self.url, str(err)) from err
        if response.status_code != 200:
            raise RpcError(
                what, None, f"HTTP {response.status_code}: {response.text[:200]}", http_status=response.status_code
            )
        try:
            return orjson.loads(response.content)
        except orjson.JSONDecodeError as err:
            raise RpcError(what, None, f"the node's answer is not JSON: {response.text[:200]}") from err

    @staticmethod
    def _outcome(method: str, answer: Any) -> Any:
        """The result of one answer object, or its error as an RpcError instance (returned, not raised)."""
        if not isinstance(answer, dict) or ("result" not in answer and "error" not in answer):
            return RpcError(method, None, f"no answer to {method}: {str(answer)[:200]}")
        if answer.get("error") is not None:
            return _error_of(method, answer["error"])
        return answer.get("result")

    # --- calls --------------------------------------------------------------------------------------------

    def call(self, method: str, params: Sequence[Any] = ()) -> Any:
        """The result of one call; raises its RpcError."""
        payload = {"jsonrpc": "2.0", "id": next(self._ids), "method": method, "params": list(params)}
        outcome = self._outcome(method, self._post(payload, method))
        if isinstance(outcome, RpcError):
            raise outcome
        return outcome

    def batch_results(self, calls: Sequence[Call], chunk: int | None = DEFAULT_CHUNK) -> list[Any]:
        """Per-item outcomes of `calls` in order: the result, or that item's RpcError (returned, not raised)."""
        size = chunk or max(1, len(calls))
        outcomes: list[Any] = []
        for start in range(0, len(calls), size):
            outcomes += self._batch_request(calls[start : start + size])
        return outcomes

    def batch(self, calls: Sequence[Call], chunk: int | None = DEFAULT_CHUNK) -> list[Any]:
        """Results of `calls` in order; raises the first item's RpcError."""
        outcomes = self.batch_results(calls, chunk)
        for outcome in outcomes:
            if isinstance(outcome, RpcError):
                raise outcome
        return outcomes

    def _batch_request(self, part: Sequence[Call]) -> list[Any]:
        if not part:
            return []
        first = next(self._ids)
        self._ids = itertools.count(first + len(part))
        payload = [{"jsonrpc": "2.0", "id": first + i, "method": m, "params": list(p)} for i, (m, p) in enumerate(part)]
        what = part[0][0]
        answer = self._post(payload, what)
        if isinstance(answer, dict):  # the whole batch refused with one error object (e.g. too large)
            outcome = self._outcome(what, answer)
            raise (
                outcome
                if isinstance(outcome, RpcError)
                else RpcError(what, None, "the node does not support JSON-RPC batches")
            )
        if not isinstance(answer, list):
            raise RpcError(what, None, f"the node did not answer the batch with a list: {str(answer)[:200]}")
        by_id = {item.get("id"): item for item in answer if isinstance(item, dict)}
        return [self._outcome(method, by_id.get(first + i)) for i, (method, _params) in enumerate(part)]

    # --- the standard methods the package uses ------------------------------------------------------------

    def chain_id(self) -> int:
        return int(self.call("eth_chainId"), 16)

    def block_number(self) -> int:
        return int(self.call("eth_blockNumber"), 16)

    def get_logs(self, address: str, from_block: int, to_block: int) -> list[dict[str, Any]]:
        logs: list[dict[str, Any]] = self.call(
            "eth_getLogs", [{"address": address, "fromBlock": hex(from_block), "toBlock": hex(to_block)}]
        )
        return logs

    def headers(self, numbers: Sequence[int]) -> list[dict[str, Any] | None]:
        """Block headers (no transactions) of `numbers`, None for a block the chain does not have."""
        return self.batch([("eth_getBlockByNumber", [hex(n), False]) for n in numbers])

    def code(self, address: str, block: int | str = "latest") -> bytes:
        text = self.call("eth_getCode", [address, hex(block) if isinstance(block, int) else block]) or "0x"
        return bytes.fromhex(text[2:])

    def code_hash(self, address: str, block: int | str = "latest") -> str:
        """keccak256 of the code at `address` (0x-hex), as EXTCODEHASH gives it for a contract."""
        return "0x" + keccak(self.code(address, block)).hex()

    def code_size(self, address: str, block: int | str = "latest") -> int:
        return len(self.code(address, block))

    def has_code(self, address: str) -> bool:
        return self.code_size(address) > 0

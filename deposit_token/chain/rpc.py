"""A small JSON-RPC client over HTTP, for the indexer's hot path.

The indexer needs a handful of methods (eth_getLogs, eth_getBlockByNumber, eth_call, eth_blockNumber) in
bulk. Going through web3.py/ape would decode every log into Python objects we then throw away; here logs stay
plain dicts parsed by orjson, and headers and calls go out as JSON-RPC batches (one HTTP request for hundreds of
blocks). A persistent session keeps the connection open between requests.
"""

from __future__ import annotations

import itertools
from collections.abc import Sequence
from typing import Any

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


class RpcError(DepositTokenError):
    """The node answered with a JSON-RPC error (or an HTTP error status)."""

    def __init__(self, method: str, code: int | None, message: str, http_status: int | None = None):
        super().__init__(f"{method}: {message} (code {code})" if code is not None else f"{method}: {message}")
        self.method = method
        self.code = code
        self.message = message
        self.http_status = http_status

    @property
    def is_limit(self) -> bool:
        """True if the error says the request was too big (so a smaller block range may succeed)."""
        if self.http_status in LIMIT_HTTP_STATUSES or self.code in LIMIT_CODES:
            return True
        text = self.message.lower()
        return any(marker in text for marker in LIMIT_MARKERS)


class RpcConnectionError(DepositTokenError):
    """The node cannot be reached."""


class RpcClient:
    """JSON-RPC over one persistent HTTP connection; `batch` sends many calls in one request."""

    def __init__(self, url: str, timeout: float = 60.0):
        if not url.startswith(("http://", "https://")):
            raise ValueError(f"the indexer needs an HTTP(S) JSON-RPC URL, not {url!r}")
        self.url = url
        self.timeout = timeout
        self._ids = itertools.count(1)
        self._session = requests.Session()
        self._session.headers["Content-Type"] = "application/json"

    def close(self) -> None:
        self._session.close()

    def _post(self, payload: Any, what: str) -> Any:
        try:
            response = self._session.post(self.url, data=orjson.dumps(payload), timeout=self.timeout)
        except requests.RequestException as err:
            raise RpcConnectionError(f"cannot reach the node at {self.url}: {err}") from err
        if response.status_code != 200:
            raise RpcError(what, None, f"HTTP {response.status_code}: {response.text[:200]}",
                           http_status=response.status_code)
        try:
            return orjson.loads(response.content)
        except orjson.JSONDecodeError as err:
            raise RpcError(what, None, f"the node's answer is not JSON: {response.text[:200]}") from err

    @staticmethod
    def _result(method: str, answer: Any) -> Any:
        if not isinstance(answer, dict):
            raise RpcError(method, None, f"unexpected answer {str(answer)[:200]}")
        if "error" in answer and answer["error"] is not None:
            error = answer["error"]
            if isinstance(error, dict):
                raise RpcError(method, error.get("code"), str(error.get("message", error)))
            raise RpcError(method, None, str(error))
        return answer.get("result")

    def call(self, method: str, params: Sequence[Any] = ()) -> Any:
        payload = {"jsonrpc": "2.0", "id": next(self._ids), "method": method, "params": list(params)}
        return self._result(method, self._post(payload, method))

    def batch(self, calls: Sequence[tuple[str, Sequence[Any]]], chunk: int = 500) -> list[Any]:
        """Results of `calls` in order; raises the first error. Sent `chunk` calls per HTTP request."""
        results: list[Any] = []
        for start in range(0, len(calls), chunk):
            part = calls[start:start + chunk]
            first = next(self._ids)
            payload = [{"jsonrpc": "2.0", "id": first + i, "method": m, "params": list(p)}
                       for i, (m, p) in enumerate(part)]
            self._ids = itertools.count(first + len(part))
            answer = self._post(payload, part[0][0] if part else "batch")
            if isinstance(answer, dict):  # some nodes answer a whole batch with one error object
                self._result(part[0][0], answer)
                raise RpcError(part[0][0], None, "the node does not support JSON-RPC batches")
            by_id = {item.get("id"): item for item in answer}
            for i, (method, _params) in enumerate(part):
                results.append(self._result(method, by_id.get(first + i)))
        return results

    # --- the methods the indexer uses ---------------------------------------------------------------------

    def chain_id(self) -> int:
        return int(self.call("eth_chainId"), 16)

    def block_number(self) -> int:
        return int(self.call("eth_blockNumber"), 16)

    def get_logs(self, address: str, from_block: int, to_block: int) -> list[dict[str, Any]]:
        return self.call("eth_getLogs", [{"address": address, "fromBlock": hex(from_block),
                                          "toBlock": hex(to_block)}])

    def headers(self, numbers: Sequence[int]) -> list[dict[str, Any] | None]:
        """Block headers (no transactions) of `numbers`, None for a block the chain does not have."""
        return self.batch([("eth_getBlockByNumber", [hex(n), False]) for n in numbers])

    def code_hash(self, address: str, block: int | str = "latest") -> str:
        """keccak256 of the code at `address` (0x-hex), as EXTCODEHASH gives it for a contract."""
        code = self.call("eth_getCode", [address, hex(block) if isinstance(block, int) else block])
        return "0x" + keccak(bytes.fromhex(code[2:])).hex()

    def code_size(self, address: str, block: int | str = "latest") -> int:
        code = self.call("eth_getCode", [address, hex(block) if isinstance(block, int) else block])
        return (len(code) - 2) // 2

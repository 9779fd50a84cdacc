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

Batches longer than `MAX_BATCH` calls are always split: geth (``--rpc.batch-request-limit``, 1,000 by default)
and the project's gateway refuse a longer batch as a whole.

Authentication (the gateway in front of the Geth network, or any provider that wants a key): with
``$DEPOSIT_TOKEN_RPC_KEY`` set, every request carries ``Authorization: Bearer <key>``; a URL with user-info
(``http://name:key@host:port``) is sent as HTTP Basic authentication instead, and its user-info is taken out of
the URL the requests go to. Neither is ever shown: messages name the endpoint by `mask_url` (user-info
replaced by ``***``), and any error text that would contain a secret has it replaced too. A gateway's rate
limit (HTTP 429 with Retry-After) is waited out a few times before it becomes an error.

Proxies: the environment's HTTP(S)_PROXY is ignored for a node on the loopback interface (the pilot node, test
nodes, Anvil): a proxy there would only get in the way. Remote providers go through it as usual.
"""

from __future__ import annotations

import ipaddress
import itertools
import os
import threading
import time
from collections.abc import Mapping, Sequence
from typing import Any
from urllib.parse import unquote, urlsplit, urlunsplit

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
MAX_BATCH = 1000  # geth's default --rpc.batch-request-limit, and the gateway's: a longer batch is refused whole
API_KEY_ENV = "DEPOSIT_TOKEN_RPC_KEY"  # sent as a Bearer token when set (see the module docstring)
RATE_LIMIT_RETRIES = 3  # HTTP 429 answers waited out before the rate limit becomes an error
MAX_RETRY_AFTER = 10.0  # seconds: a longer Retry-After is not waited for (the error says to come back later)
MASK = "***"

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
    """The node cannot be reached, or did not answer within the timeout. `url` is shown masked."""

    def __init__(self, url: str, reason: str) -> None:
        super().__init__("connect", None, f"cannot reach the node at {mask_url(url)}: {reason}")


def _error_of(method: str, error: Any, http_status: int | None = None) -> RpcError:
    if isinstance(error, Mapping):
        code = error.get("code")
        message = str(error.get("message", error))
        if http_status is not None:
            message = f"HTTP {http_status}: {message}"
        return RpcError(method, code, message, http_status=http_status, data=error.get("data"))
    return RpcError(method, None, str(error), http_status=http_status)


def mask_url(url: str) -> str:
    """`url` with its user-info (``name:key@``) replaced by ``***@``: the form of a URL that may be shown."""
    parts = urlsplit(url)
    if "@" not in parts.netloc:
        return url
    return urlunsplit(parts._replace(netloc=MASK + "@" + parts.netloc.rsplit("@", 1)[1]))


def split_credentials(url: str) -> tuple[str, tuple[str, str] | None]:
    """(`url` without user-info, (name, key) of its user-info or None), percent-escapes decoded."""
    parts = urlsplit(url)
    if "@" not in parts.netloc:
        return url, None
    userinfo, host = parts.netloc.rsplit("@", 1)
    name, _, key = userinfo.partition(":")
    return urlunsplit(parts._replace(netloc=host)), (unquote(name), unquote(key))


def is_loopback(url: str) -> bool:
    """True if `url`'s host is this machine (localhost, 127.0.0.0/8, ::1)."""
    host = urlsplit(url).hostname or ""
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def _retry_after(response: requests.Response) -> float | None:
    """Seconds to wait before sending again, for a rate-limited answer (HTTP 429) that says how long; else None."""
    if response.status_code != 429:
        return None
    try:
        wait = float(response.headers.get("Retry-After", ""))
    except ValueError:
        return None
    return wait if 0 <= wait <= MAX_RETRY_AFTER else None


class RpcClient:
    """JSON-RPC over one persistent HTTP(S) connection (see the module docstring). Thread-safe: requests from
    several threads take turns on the connection (give each thread its own client to overlap them)."""

    def __init__(self, url: str, timeout: float = DEFAULT_TIMEOUT, api_key: str | None = None) -> None:
        """`api_key` (default ``$DEPOSIT_TOKEN_RPC_KEY``) is sent as a Bearer token, unless `url` carries
        user-info, which is sent as Basic authentication (see the module docstring)."""
        if not url.startswith(("http://", "https://")):
            raise ValueError(f"need an HTTP(S) JSON-RPC URL, not {mask_url(url)!r}")
        self.url = url  # as given, credentials included (to open another client to the same endpoint); never shown
        self.timeout = timeout
        self._endpoint, credentials = split_credentials(url)
        self._ids = itertools.count(1)
        self._lock = threading.Lock()
        self._session = requests.Session()
        self._session.headers["Content-Type"] = "application/json"
        self._session.trust_env = not is_loopback(url)  # no proxy (nor .netrc) for a local node
        key = api_key if api_key is not None else os.environ.get(API_KEY_ENV, "").strip()
        self._secrets = [secret for secret in (key, *(credentials or ())) if len(secret) >= 4]
        if credentials is not None:
            self._session.auth = credentials
        elif key:
            self._session.headers["Authorization"] = f"Bearer {key}"

    @property
    def display_url(self) -> str:
        """The endpoint as it may be shown (user-info masked)."""
        return mask_url(self.url)

    def __repr__(self) -> str:
        return f"RpcClient({self.display_url})"

    def _clean(self, text: str) -> str:
        """`text` with every secret of this client (key, Basic credentials) replaced by ***."""
        for secret in self._secrets:
            text = text.replace(secret, MASK)
        return text

    def close(self) -> None:
        self._session.close()

    def __enter__(self) -> RpcClient:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # --- transport ----------------------------------------------------------------------------------------

    def _post(self, payload: Any, what: str, max_bytes: int | None = None) -> Any:
        """The parsed answer; with `max_bytes`, an answer body longer than that is abandoned half-read and
        raises a limit RpcError (`is_limit`: the caller asks for less), so that memory stays bounded."""
        body = orjson.dumps(payload)
        for attempt in range(RATE_LIMIT_RETRIES + 1):
            response, content = self._send(body, what, max_bytes)
            wait = _retry_after(response)
            if wait is None or attempt == RATE_LIMIT_RETRIES:
                break
            time.sleep(wait)
        if response.status_code != 200:
            raise self._http_error(what, response)
        try:
            return orjson.loads(content)
        except orjson.JSONDecodeError as err:
            start = bytes(content[:200]).decode(errors="replace")
            raise RpcError(what, None, self._clean(f"the node's answer is not JSON: {start}")) from err

    def _send(
        self, body: bytes, what: str, max_bytes: int | None = None
    ) -> tuple[requests.Response, bytes | bytearray]:
        try:
            with self._lock:
                timeout = (min(CONNECT_TIMEOUT, self.timeout), self.timeout)
                if max_bytes is None:
                    response = self._session.post(self._endpoint, data=body, timeout=timeout)
                    return response, response.content
                response = self._session.post(self._endpoint, data=body, timeout=timeout, stream=True)
                if response.status_code != 200:  # an error's body is small, and _http_error reads it
                    return response, response.content
                return response, self._read_capped(response, what, max_bytes)
        except requests.Timeout as err:
            raise RpcConnectionError(self.url, f"no answer within {self.timeout:g} s") from err
        except requests.RequestException as err:
            raise RpcConnectionError(self.url, self._clean(str(err))) from err

    @staticmethod
    def _read_capped(response: requests.Response, what: str, max_bytes: int) -> bytearray:
        """The body of a streamed `response` in one buffer (requests' ``content`` would hold the chunks and
        their join at once: twice the body), or a limit RpcError once it passes `max_bytes`."""
        declared = response.headers.get("Content-Length", "")
        size = int(declared) if declared.isdigit() else 0
        content = bytearray()
        if size > max_bytes:
            response.close()  # the connection is dropped with the unread body; the next request opens another
            raise RpcError(what, None, f"response is too big: {size:,} bytes, more than {max_bytes:,}")
        for chunk in response.iter_content(1 << 16):
            content += chunk
            if len(content) > max_bytes:
                response.close()
                raise RpcError(what, None, f"response is too big: more than {max_bytes:,} bytes")
        return content

    def _http_error(self, what: str, response: requests.Response) -> RpcError:
        """An HTTP error status as an RpcError; a JSON-RPC error object in the body (what the gateway and most
        providers send with 401, 413, 429...) gives its code and message."""
        status = response.status_code
        try:
            answer = orjson.loads(response.content)
        except orjson.JSONDecodeError:
            answer = None
        error = answer.get("error") if isinstance(answer, dict) else None
        if isinstance(error, Mapping) and "message" in error:
            return _error_of(what, {**error, "message": self._clean(str(error["message"]))}, http_status=status)
        return RpcError(what, None, self._clean(f"HTTP {status}: {response.text[:200]}"), http_status=status)

    def _outcome(self, method: str, answer: Any) -> Any:
        """The result of one answer object, or its error as an RpcError instance (returned, not raised)."""
        if not isinstance(answer, dict) or ("result" not in answer and "error" not in answer):
            return RpcError(method, None, self._clean(f"no answer to {method}: {str(answer)[:200]}"))
        error = answer.get("error")
        if error is not None:
            if isinstance(error, Mapping) and self._secrets:
                error = {**error, "message": self._clean(str(error.get("message", error)))}
            return _error_of(method, error)
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
        """Per-item outcomes of `calls` in order: the result, or that item's RpcError (returned, not raised).
        `chunk` None sends as few requests as `MAX_BATCH` allows."""
        size = min(chunk or MAX_BATCH, MAX_BATCH)
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

    def get_logs(
        self, address: str, from_block: int, to_block: int, max_bytes: int | None = None
    ) -> list[dict[str, Any]]:
        """The logs of `address` in [from_block, to_block]. With `max_bytes`, an answer longer than that raises
        a limit RpcError (``is_limit``) instead of being read whole: ask for a smaller range."""
        method = "eth_getLogs"
        params = [{"address": address, "fromBlock": hex(from_block), "toBlock": hex(to_block)}]
        payload = {"jsonrpc": "2.0", "id": next(self._ids), "method": method, "params": params}
        outcome = self._outcome(method, self._post(payload, method, max_bytes))
        if isinstance(outcome, RpcError):
            raise outcome
        logs: list[dict[str, Any]] = outcome
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

"""The node behind the gateway: one pooled aiohttp client session (keep-alive connections, so forwarding a call
costs no TCP handshake) that forwards clients' request bodies and makes the gateway's own calls (the registry's
eth_getLogs polling). Engine-agnostic: plain JSON-RPC over HTTP, which Geth, Anvil, Besu and GoQuorum all
speak. Credentials in the upstream URL (``http://user:pass@node:8545``) become its Basic authorization.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any
from urllib.parse import urlsplit, urlunsplit

import aiohttp
import orjson

from deposit_token.errors import DepositTokenError

CONNECTIONS = 64  # concurrent requests to the node; more wait for a free connection


class UpstreamError(DepositTokenError):
    """The node did not answer, answered with an HTTP error, or answered a call of ours with an error."""

    def __init__(self, message: str, code: int | None = None, answered: bool = False) -> None:
        super().__init__(message)
        self.code = code
        self.answered = answered  # the node answered (with an error), as opposed to not at all


def redacted(url: str) -> str:
    """`url` without its password, for messages and logs."""
    parts = urlsplit(url)
    if parts.password is None:
        return url
    host = parts.hostname or ""
    netloc = f"{parts.username}:***@{host}" + (f":{parts.port}" if parts.port else "")
    return urlunsplit(parts._replace(netloc=netloc))


class Upstream:
    """JSON-RPC to `url` over a pooled session; create and use it inside the gateway's event loop."""

    def __init__(self, url: str, timeout: float = 120.0) -> None:
        parts = urlsplit(url)
        if parts.scheme not in ("http", "https") or not parts.hostname:
            raise ValueError(f"the upstream node must be an http(s) URL, not {redacted(url)!r}")
        auth = None
        if parts.username is not None:
            auth = aiohttp.BasicAuth(parts.username, parts.password or "")
            netloc = parts.hostname + (f":{parts.port}" if parts.port else "")
            url = urlunsplit(parts._replace(netloc=netloc))
        self.url = url
        self.shown = redacted(url)
        self._next_id = 1
        self._session = aiohttp.ClientSession(
            connector=aiohttp.TCPConnector(limit=CONNECTIONS, keepalive_timeout=60),
            timeout=aiohttp.ClientTimeout(total=timeout, sock_connect=5),
            auth=auth,
            headers={"Content-Type": "application/json"},
            skip_auto_headers=("User-Agent",),
            trust_env=False,  # a proxy between the gateway and its node would only add latency and exposure
        )

    async def close(self) -> None:
        await self._session.close()

    async def post(self, body: bytes) -> tuple[int, bytes]:
        """(HTTP status, body) of the node's answer to `body`; UpstreamError if it cannot be reached."""
        try:
            async with self._session.post(self.url, data=body) as response:
                return response.status, await response.read()
        except (aiohttp.ClientError, TimeoutError, OSError) as err:
            raise UpstreamError(f"the node at {self.shown} did not answer: {err or type(err).__name__}") from err

    async def batch(self, calls: Sequence[tuple[str, Sequence[Any]]]) -> list[Any]:
        """Results of `calls` (one JSON-RPC batch), in order; UpstreamError for the first error."""
        first, self._next_id = self._next_id, self._next_id + len(calls)
        payload = [
            {"jsonrpc": "2.0", "id": first + i, "method": method, "params": list(params)}
            for i, (method, params) in enumerate(calls)
        ]
        status, body = await self.post(orjson.dumps(payload))
        if status != 200:
            raise UpstreamError(f"the node at {self.shown} answered HTTP {status}: {body[:200]!r}", answered=True)
        try:
            answers = orjson.loads(body)
        except orjson.JSONDecodeError as err:
            raise UpstreamError(
                f"the node at {self.shown} answered with something that is not JSON", answered=True
            ) from err
        if isinstance(answers, dict):  # a batch refused as a whole
            answers = [answers] * len(calls)
        by_id = {a.get("id"): a for a in answers if isinstance(a, dict)}
        results = []
        for i, (method, _) in enumerate(calls):
            answer = by_id.get(first + i) or {}
            error = answer.get("error")
            if error is not None or "result" not in answer:
                message = error.get("message", error) if isinstance(error, dict) else error or "no answer"
                code = error.get("code") if isinstance(error, dict) else None
                raise UpstreamError(f"{method}: {message}", code, answered=True)
            results.append(answer["result"])
        return results

    async def call(self, method: str, params: Sequence[Any] = ()) -> Any:
        (result,) = await self.batch([(method, params)])
        return result

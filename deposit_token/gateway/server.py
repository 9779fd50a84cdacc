"""The gateway's HTTP server: authenticate, check size and rate, check every call (method for the role; sender
for raw transactions), forward what passes to the node in one request, answer what does not with a JSON-RPC
error, log every call.

The stack: aiohttp's server and a pooled aiohttp client to the node (both installed with web3.py), orjson for
JSON. A single request the gateway lets through is forwarded as the client's own bytes and the node's answer
is returned as its bytes: no re-encoding on the common path. Batches are rebuilt with the gateway's own ids
(0..n-1, so duplicate or missing client ids cannot confuse the answers) and answered in the client's order.

HTTP statuses: 401 (no, unknown or revoked key), 413 (body above --max-body, batch above --max-batch), 429
(rate limit, with Retry-After), 400 (not JSON or not JSON-RPC), 502 (the node did not answer); refusals of
single calls (a method, a sender) are JSON-RPC errors in a 200 answer, per call in a batch.
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import math
import time
from collections.abc import Mapping
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import orjson
from aiohttp import web

from deposit_token import paths
from deposit_token.errors import DepositTokenError
from deposit_token.gateway.accesslog import AccessLog
from deposit_token.gateway.keys import KEY_FILE, Client, KeyStore
from deposit_token.gateway.limits import RateLimits
from deposit_token.gateway.policy import LOCAL_ANSWERS, SEND_RAW, Code, Refusal, Role, method_refusal
from deposit_token.gateway.registry import Follower, Source, parse_address
from deposit_token.gateway.transactions import RawTransaction, decode
from deposit_token.gateway.upstream import Upstream, UpstreamError, redacted

DATA_DIR_ENV = "DEPOSIT_TOKEN_GATEWAY_DIR"
DEFAULT_DATA_DIR = paths.ROOT / ".gateway"
DEFAULT_PORT = 8600
DEFAULT_UPSTREAM = "http://127.0.0.1:8545"  # the pilot node (ape-config.yaml's ethereum:pilot:node)
MAX_BODY = 5 * 1024 * 1024  # Geth's own limit on a request body
MAX_BATCH = 1000  # Geth's own limit on a batch's calls (BatchRequestLimit)
RATE = 1000.0  # calls per second per client
BURST = 5000  # calls at once per client: a disbursal's batch of 1,000 fits
MAX_KEY_TEXT = 256  # an Authorization header longer than this is no key of ours; not hashed
LOG_FIELD = 64  # method names in the log are cut here (a client chooses them)
PIPELINE_CHUNK = 100  # calls per upstream request when a long batch is pipelined (see Gateway._pipelined)
PARSE_ANSWERS_UP_TO = 1 << 20  # single answers above this are not parsed for the log's outcome (large getLogs)
AUTH_CHALLENGE = 'Basic realm="deposit-token gateway", Bearer realm="deposit-token gateway"'


class ListenError(DepositTokenError):
    """The gateway cannot listen on its address (the port is taken, the address is not this machine's)."""


@dataclass(frozen=True)
class GatewayConfig:
    """Everything a gateway needs; `port` 0 picks a free port (read it from the running gateway)."""

    upstream: str = DEFAULT_UPSTREAM
    data_dir: Path = DEFAULT_DATA_DIR
    host: str = "127.0.0.1"
    port: int = DEFAULT_PORT
    token: str | None = None  # the token to follow (or `deployment`)
    from_block: int = 0  # where the token's events start (its deployment block)
    deployment: Path | None = None  # a deployment record to follow instead of `token` (re-read when it changes)
    allow_senders: tuple[str, ...] = ()  # accounts operator clients may always send from (the deployer)
    rate: float = RATE
    burst: int = BURST
    max_body: int = MAX_BODY
    max_batch: int = MAX_BATCH
    poll_interval: float = 1.0
    upstream_timeout: float = 120.0
    access_log: Path | None = None  # default: <data_dir>/access.log
    key_file: Path | None = None  # default: <data_dir>/keys.json

    @property
    def keys_path(self) -> Path:
        return self.key_file or self.data_dir / KEY_FILE

    @property
    def access_log_path(self) -> Path:
        return self.access_log or self.data_dir / "access.log"

    def as_json(self) -> dict[str, Any]:
        out: dict[str, Any] = {}
        for name in self.__dataclass_fields__:
            value = getattr(self, name)
            out[name] = str(value) if isinstance(value, Path) else list(value) if isinstance(value, tuple) else value
        return out

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> GatewayConfig:
        fields = cls.__dataclass_fields__
        kwargs: dict[str, Any] = {}
        for name, value in data.items():
            if name not in fields or value is None:
                continue
            if name in ("data_dir", "deployment", "access_log", "key_file"):
                value = Path(value)
            elif name == "allow_senders":
                value = tuple(value)
            kwargs[name] = value
        return cls(**kwargs)


@dataclass
class _Call:
    """One call of a request and what becomes of it."""

    index: int
    request: Any
    method: str = ""
    tx: RawTransaction | None = None
    answer: dict[str, Any] | None = None  # set when the gateway answers itself (refusal or local answer)
    log: dict[str, Any] = field(default_factory=dict)


def _error(call_id: Any, refusal: Refusal) -> dict[str, Any]:
    return {"jsonrpc": "2.0", "id": call_id, "error": refusal.error()}


class Gateway:
    """One gateway; `await start()` inside an event loop, `await stop()` to end it."""

    def __init__(self, config: GatewayConfig) -> None:
        self.config = config
        self.keys = KeyStore(config.keys_path)
        self.limits = RateLimits(config.rate, config.burst)
        self.port = config.port
        self._runner: web.AppRunner | None = None
        self._poller: asyncio.Task[None] | None = None
        self.upstream: Upstream | None = None
        self.follower: Follower | None = None
        self.log = AccessLog(None)
        self._pool = ThreadPoolExecutor(max_workers=1, thread_name_prefix="gateway-senders")

    @property
    def url(self) -> str:
        return f"http://{self.config.host}:{self.port}"

    # --- lifecycle ----------------------------------------------------------------------------------------------

    async def start(self) -> None:
        """Reads the keys and the sender registry, then listens; on any failure nothing is left open."""
        try:
            await self._start()
        except BaseException:
            await self.stop()
            raise

    async def _start(self) -> None:
        config = self.config
        config.data_dir.mkdir(parents=True, exist_ok=True)
        self.keys.current()  # a broken key file stops the start, not the first request
        self.upstream = Upstream(config.upstream, config.upstream_timeout)
        source = Source(config.token, config.from_block) if config.token else None
        allow = [parse_address(a) for a in config.allow_senders]
        self.follower = Follower(self.upstream, source, config.deployment, allow, config.poll_interval)
        await self.follower.start()
        self.log = AccessLog(config.access_log_path)
        app = web.Application(client_max_size=config.max_body)
        app.router.add_post("/", self.handle)
        app.router.add_get("/health", self.health)
        self._runner = web.AppRunner(app, access_log=None, handle_signals=False)
        await self._runner.setup()
        site = web.TCPSite(self._runner, config.host, config.port, backlog=1024, reuse_address=True)
        try:
            await site.start()
        except OSError as err:
            raise ListenError(f"cannot listen on {config.host}:{config.port}: {err.strerror or err}") from None
        server = getattr(site, "_server", None)
        sockets = getattr(server, "sockets", None) or []
        if sockets:
            self.port = sockets[0].getsockname()[1]
        self._poller = asyncio.create_task(self.follower.run())

    async def stop(self) -> None:
        if self._poller is not None:
            self._poller.cancel()
            await asyncio.gather(self._poller, return_exceptions=True)
        if self._runner is not None:
            await self._runner.cleanup()
        if self.upstream is not None:
            await self.upstream.close()
        self._pool.shutdown(wait=False)
        self.log.close()

    def describe(self) -> str:
        follower = self.follower
        registry = follower.registry if follower else None
        token = registry.token if registry and registry.token else "no token yet"
        chain_id = follower.chain_id if follower else "?"
        return (
            f"gateway on {self.url} -> {redacted(self.config.upstream)} (chain id {chain_id}); "
            f"senders from {token}; {len(self.keys.current())} active client keys; access log "
            f"{self.config.access_log_path}"
        )

    # --- HTTP -------------------------------------------------------------------------------------------------

    async def health(self, request: web.Request) -> web.Response:
        follower = self.follower
        body = {
            "status": "ok",
            "chain_id": follower.chain_id if follower else None,
            "token": follower.registry.token if follower else None,
            "registry_block": follower.synced[0] if follower and follower.synced else None,
        }
        return web.Response(body=orjson.dumps(body), content_type="application/json")

    def _authenticate(self, header: str | None) -> Client:
        key = None
        if header:
            scheme, _, value = header.strip().partition(" ")
            value = value.strip()
            if scheme.lower() == "bearer":
                key = value
            elif scheme.lower() == "basic":
                try:
                    key = base64.b64decode(value, validate=True).decode("utf-8").partition(":")[2]
                except (binascii.Error, UnicodeDecodeError):
                    key = None
        if not key:
            raise Refusal(
                Code.UNAUTHENTICATED,
                "authentication required: send the client's API key as 'Authorization: Bearer <key>' or as the "
                "password of HTTP Basic authentication (http://name:<key>@host:port)",
                http=401,
                reason="unauthenticated",
            )
        if len(key) <= MAX_KEY_TEXT:
            client = self.keys.authenticate(key)
            if client is not None:
                return client
            revoked = self.keys.revoked_name(key)
            if revoked is not None:
                raise Refusal(
                    Code.UNAUTHENTICATED, f"the API key of client {revoked} was revoked", http=401, reason="revoked"
                )
        raise Refusal(Code.UNAUTHENTICATED, "the API key is not valid", http=401, reason="bad-key")

    def _parse(self, body: bytes) -> tuple[list[Any], bool]:
        try:
            payload = orjson.loads(body)
        except orjson.JSONDecodeError:
            raise Refusal(Code.PARSE_ERROR, "the request body is not JSON", http=400, reason="parse") from None
        if isinstance(payload, dict):
            return [payload], False
        if isinstance(payload, list):
            if not payload:
                raise Refusal(Code.INVALID_REQUEST, "the batch is empty", http=400, reason="request")
            if len(payload) > self.config.max_batch:
                raise Refusal(
                    Code.LIMIT_EXCEEDED,
                    f"a batch of {len(payload):,} calls is longer than the gateway's limit of "
                    f"{self.config.max_batch:,} calls; split it",
                    http=413,
                    reason="size",
                )
            return payload, True
        raise Refusal(
            Code.INVALID_REQUEST,
            "the body must be a JSON-RPC request object or a batch (array) of them",
            http=400,
            reason="request",
        )

    def _refuse(self, refusal: Refusal, started: float, client: Client | None, remote: str | None) -> web.Response:
        entry: dict[str, Any] = {
            "client": client.name if client else None,
            "role": client.role.value if client else None,
            "remote": remote,
            "outcome": "refused",
            "reason": refusal.reason,
            "code": int(refusal.code),
            "latency_ms": round((time.perf_counter() - started) * 1000, 3),
        }
        self.log.write([entry])
        headers = {"WWW-Authenticate": AUTH_CHALLENGE} if refusal.http == 401 else {}
        if refusal.reason == "rate":
            headers["Retry-After"] = str(max(1, math.ceil(refusal.retry_after)))
        return web.Response(
            status=refusal.http,
            body=orjson.dumps(_error(None, refusal)),
            content_type="application/json",
            headers=headers,
        )

    async def handle(self, request: web.Request) -> web.Response:
        started = time.perf_counter()
        client: Client | None = None
        try:
            client = self._authenticate(request.headers.get("Authorization"))
            if request.content_length is not None and request.content_length > self.config.max_body:
                raise self._too_large(request.content_length)
            try:
                body = await request.read()
            except web.HTTPRequestEntityTooLarge:
                raise self._too_large(None) from None
            calls, is_batch = self._parse(body)
            wait = self.limits.take(client.name, len(calls), client.rate, client.burst)
            if wait:
                rate, burst = client.rate or self.config.rate, client.burst or self.config.burst
                if math.isinf(wait):
                    message = (
                        f"client {client.name} sent {len(calls):,} calls at once, more than its burst of "
                        f"{burst:,}: split the batch"
                    )
                else:
                    message = (
                        f"client {client.name} is over its rate limit ({rate:g} calls/s, bursts of {burst:,}); "
                        f"retry in {wait:.2f} s"
                    )
                raise Refusal(
                    Code.LIMIT_EXCEEDED, message, http=429, reason="rate", retry_after=1 if math.isinf(wait) else wait
                )
        except Refusal as refusal:
            return self._refuse(refusal, started, client, request.remote)
        return await self._serve(client, body, calls, is_batch, started, request.remote)

    def _too_large(self, size: int | None) -> Refusal:
        shown = f"{size:,} bytes" if size is not None else "the request body"
        return Refusal(
            Code.LIMIT_EXCEEDED,
            f"{shown} is above the gateway's limit of {self.config.max_body:,} bytes per request; send smaller batches",
            http=413,
            reason="size",
        )

    # --- the calls ------------------------------------------------------------------------------------------

    def _check(self, client: Client, call: _Call) -> None:
        """Sets `call.answer` if the gateway answers the call itself; decodes a raw transaction."""
        request = call.request
        call_id = request.get("id") if isinstance(request, dict) else None
        method = request.get("method") if isinstance(request, dict) else None
        if not isinstance(method, str):
            invalid = Refusal(
                Code.INVALID_REQUEST, "not a JSON-RPC request object (it needs a method name)", reason="request"
            )
            call.answer, call.log = _error(call_id, invalid), {"outcome": "refused", "reason": invalid.reason}
            return
        call.method = method
        refusal: Refusal | None = method_refusal(method, client.role, client.name)
        if refusal is None and method in LOCAL_ANSWERS:
            call.answer = {"jsonrpc": "2.0", "id": call_id, "result": LOCAL_ANSWERS[method]}
            call.log = {"outcome": "ok"}
            return
        if refusal is None and method == SEND_RAW:
            params = request.get("params")
            try:
                if not isinstance(params, list) or len(params) != 1:
                    raise Refusal(
                        Code.INVALID_PARAMS,
                        "eth_sendRawTransaction takes one parameter: the signed transaction as 0x-hex",
                        reason="params",
                    )
                call.tx = decode(params[0])
            except Refusal as bad:
                refusal = bad
        if refusal is not None:
            call.answer = _error(call_id, refusal)
            call.log = {"outcome": "refused", "reason": refusal.reason, "code": int(refusal.code)}

    async def _check_senders(self, client: Client, calls: list[_Call]) -> None:
        """Refuses the raw transactions among `calls` whose sender may not transact."""
        assert self.follower is not None
        sending = [call for call in calls if call.tx is not None and call.answer is None]
        if not sending:
            return
        operator = client.role is Role.OPERATOR
        reasons = await self.follower.refusals([(call.tx.sender, operator) for call in sending if call.tx])
        for call, reason in zip(sending, reasons):
            if reason is not None:
                refusal = Refusal(Code.SENDER_REFUSED, reason, reason="sender")
                call.answer = _error(call.request.get("id"), refusal)
                call.log = {"outcome": "refused", "reason": "sender", "code": int(refusal.code)}

    def _check_all(self, client: Client, calls: list[_Call]) -> None:
        for call in calls:
            self._check(client, call)

    async def _forward_or_fail(self, calls: list[_Call]) -> bool:
        """Forwards `calls` as one batch; True if the node answered, else each call gets the node's failure."""
        try:
            await self._forward_batch(calls)
            return True
        except UpstreamError as err:
            refusal = Refusal(Code.NODE_UNAVAILABLE, str(err), reason="node")
            for call in calls:
                call.answer = _error(call.request.get("id"), refusal)
                call.log = {"outcome": "error", "reason": "node", "code": int(refusal.code)}
            return False

    async def _pipelined(self, client: Client, calls: list[_Call]) -> bool:
        """A long batch in chunks of PIPELINE_CHUNK: while the node takes one chunk, the next one's senders are
        recovered (in a worker thread: libsecp256k1 and keccak run without the GIL), so the node's time hides
        most of the gateway's. Chunks reach the node in order, one after the other (a sender's nonces stay in
        order). False if the node failed on a chunk."""
        loop = asyncio.get_running_loop()
        previous: asyncio.Task[bool] | None = None
        answered = True
        for start in range(0, len(calls), PIPELINE_CHUNK):
            chunk = calls[start : start + PIPELINE_CHUNK]
            await loop.run_in_executor(self._pool, self._check_all, client, chunk)
            await self._check_senders(client, chunk)
            if previous is not None:
                answered = await previous and answered
            forward = [call for call in chunk if call.answer is None]
            previous = asyncio.create_task(self._forward_or_fail(forward)) if forward else None
        if previous is not None:
            answered = await previous and answered
        return answered

    async def _serve(
        self, client: Client, body: bytes, requests: list[Any], is_batch: bool, started: float, remote: str | None
    ) -> web.Response:
        calls = [_Call(i, request) for i, request in enumerate(requests)]
        status = 200
        passthrough: bytes | None = None
        if is_batch and len(calls) > PIPELINE_CHUNK:
            if not await self._pipelined(client, calls):
                status = 502
        else:
            self._check_all(client, calls)
            await self._check_senders(client, calls)
            forward = [call for call in calls if call.answer is None]
            if forward and not is_batch:
                try:
                    status, passthrough = await self._forward_single(forward[0], body)
                except UpstreamError as err:
                    status = 502
                    refusal = Refusal(Code.NODE_UNAVAILABLE, str(err), reason="node")
                    calls[0].answer = _error(calls[0].request.get("id"), refusal)
                    calls[0].log = {"outcome": "error", "reason": "node", "code": int(refusal.code)}
            elif forward and not await self._forward_or_fail(forward):
                status = 502
        latency = round((time.perf_counter() - started) * 1000, 3)
        base = {"client": client.name, "role": client.role.value, "remote": remote, "latency_ms": latency}
        if is_batch:
            base["batch"] = len(calls)
        entries = []
        for call in calls:
            entry = {**base, "method": call.method[:LOG_FIELD] or None, **call.log}
            if call.tx is not None:
                entry["sender"] = call.tx.sender_text
                entry["tx"] = call.tx.tx_hash
            entries.append(entry)
        self.log.write(entries)
        if passthrough is not None:
            return web.Response(status=status, body=passthrough, content_type="application/json")
        out = [call.answer for call in calls] if is_batch else calls[0].answer
        return web.Response(status=status, body=orjson.dumps(out), content_type="application/json")

    async def _forward_single(self, call: _Call, body: bytes) -> tuple[int, bytes]:
        assert self.upstream is not None
        status, answer = await self.upstream.post(body)
        parsed: Any = None
        if status != 200 or len(answer) <= PARSE_ANSWERS_UP_TO:
            try:
                parsed = orjson.loads(answer)
            except orjson.JSONDecodeError:
                parsed = None
        if status != 200 and not (isinstance(parsed, dict) and "error" in parsed):
            raise UpstreamError(f"the node answered HTTP {status}")
        call.log = _outcome(parsed)
        return status, answer

    async def _forward_batch(self, calls: list[_Call]) -> None:
        assert self.upstream is not None
        payload = []
        for k, call in enumerate(calls):
            request = dict(call.request)
            request["id"] = k
            payload.append(request)
        status, answer = await self.upstream.post(orjson.dumps(payload))
        try:
            parsed = orjson.loads(answer)
        except orjson.JSONDecodeError:
            raise UpstreamError(f"the node answered HTTP {status} with something that is not JSON") from None
        if isinstance(parsed, dict):  # the node refused the batch as a whole: that answer for each call
            parsed = [{**parsed, "id": k} for k in range(len(calls))]
        if not isinstance(parsed, list):
            raise UpstreamError(f"the node answered HTTP {status} with something that is not a JSON-RPC answer")
        by_id = {a.get("id"): a for a in parsed if isinstance(a, dict)}
        for k, call in enumerate(calls):
            answer_k = by_id.get(k)
            if answer_k is None:
                missing = {"code": int(Code.NODE_UNAVAILABLE), "message": "the node gave no answer to this call"}
                answer_k = {"error": missing}
            answer_k["id"] = call.request.get("id")
            answer_k.setdefault("jsonrpc", "2.0")
            call.answer = answer_k
            call.log = _outcome(answer_k)


def _outcome(answer: Any) -> dict[str, Any]:
    """The log fields of the node's answer to one call (its error's code and message, never its result)."""
    if isinstance(answer, dict) and isinstance(answer.get("error"), dict):
        error = answer["error"]
        return {"outcome": "error", "code": error.get("code"), "message": str(error.get("message", ""))[:200]}
    return {"outcome": "ok"}

"""The fast submission path: sign locally, send in JSON-RPC batches, confirm in batches.

Sending one transaction at a time through web3.py (build, sign, send, wait) spends almost all its time on
round trips and on Python-side transaction building: about 140 payments/s against Anvil on this machine. The
treasury's disbursal and the pilot demo send thousands, so this module does the minimum per transaction:

* keys are held in memory by `LocalSigner` and transactions are signed with coincurve (libsecp256k1), RLP
  encoded by hand (the fields a submission repeats encoded once) and hashed with pysha3's keccak
  (`LegacyEncoder`, `sign_legacy`); the signed bytes are identical to eth_account's (RFC 6979 nonces, low-s),
  which `tests/chain/test_submit.py` checks;
* nonces are managed locally: one batched ``eth_getTransactionCount(sender, "pending")`` per distinct sender
  at the start of each `Submitter.submit` (why not later: `Submitter._prepare`), then counted up;
* transactions are EIP-155 legacy transactions with one gas price for the whole submission (explicit, or the
  node's ``eth_gasPrice``): zero on the pilot network, above the base fee on ape-foundry's test Anvil;
* they are sent as JSON-RPC batches (a JSON array) over one persistent HTTP connection, encoded and decoded
  with orjson; the next batch is signed while the node ingests the previous one, and the first batches are
  small (16, then doubling up to the batch size) so that the node is not kept waiting for 500 signatures;
* each time the head block advances, the new blocks are checked for the sent transactions, by the cheapest
  means the node serves: their call traces (``trace_block``, one call per block: Anvil, Erigon, Besu,
  Nethermind; why: `Submitter._confirm_blocks`), else the block's receipts (``eth_getBlockReceipts``, one call
  per block: Geth), else batched ``eth_getTransactionReceipt`` (any node). Geth serves no ``trace_`` methods,
  and the gateway in front of the Geth network exposes neither ``trace_`` nor ``debug_``: the fallback is the
  normal path there, not an error. The block modes check that each new block follows the last one seen and
  sweep the remaining transactions by receipt after a reorganisation (Clique forks briefly) and every
  `SWEEP_INTERVAL` seconds, so a transaction re-mined in another block is never waited for in vain;
* a transaction that reverted is replayed with ``eth_call`` from the same sender at its block's parent, then
  (where the node serves them) its own trace, then at its block; the revert data is decoded into a sentence by
  `deposit_token.chain.reverts` (see `Submitter._explain_failures`).

JSON-RPC goes through `deposit_token.chain.rpc.RpcClient` (orjson, keep-alive, `batch_results` so that one
refused transaction does not hide the others' fate). `encode_call` builds calldata from an ABI: the token
system's merged one (`deposit_token.chain.abi.system_abi()`) or an ape contract type.
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any, NoReturn

import coincurve
from eth_abi import decode as abi_decode
from eth_abi import encode as abi_encode
from eth_utils import keccak, to_checksum_address
from sha3 import keccak_256 as _keccak_256

from deposit_token.chain import abi
from deposit_token.chain.reverts import describe_revert
from deposit_token.chain.rpc import RpcClient, RpcConnectionError, RpcError
from deposit_token.domain.sentences import NameLookup
from deposit_token.errors import DepositTokenError

DEFAULT_BATCH_SIZE = 500
DEFAULT_RECEIPT_TIMEOUT = 120.0
SWEEP_INTERVAL = 10.0  # seconds between receipt sweeps of what the block scans have not found (see the docstring)
CONFIRM_MODES = ("auto", "traces", "blocks", "receipts")
_FILLER_GAS = 21_000
_FIRST_BATCH = 16  # transactions in the first JSON-RPC batch; the next ones double up to the batch size
_BLOCKS_PER_REQUEST = 16  # eth_getBlockReceipts per batch: keeps an answer of busy blocks under geth's 25 MB
# How nodes and gateways say that they do not serve a method (geth: "the method x does not exist/is not
# available"; the gateway: "method x is not available through the gateway"; others: "method not found").
_NOT_SERVED = ("not available", "does not exist", "not found", "not supported", "unsupported", "not allowed")

#: ``progress(phase, done, total)``: phase "sent" while signing and sending, then "mined" while receipts arrive.
Progress = Callable[[str, int, int], None]


class SubmitError(DepositTokenError):
    """The submission could not go on (node unreachable, wrong chain, malformed answer, timeout).

    `outcomes` holds what is known so far (same order as the requests; None where nothing is known)."""

    def __init__(self, message: str, outcomes: list[TxOutcome | None] | None = None) -> None:
        super().__init__(message)
        self.outcomes = outcomes or []


class SubmitTimeout(SubmitError):
    """Some transactions were sent but not mined within the receipt timeout.

    `pending` holds their hashes (in request order). They stay in the node's pool and may still be mined: sending
    the same requests again would sign them with new nonces, i.e. pay twice."""

    def __init__(
        self, message: str, outcomes: list[TxOutcome | None] | None = None, pending: Sequence[str] = ()
    ) -> None:
        super().__init__(message, outcomes)
        self.pending = list(pending)


# --------------------------------------------------------------------------------------------------- signer


class LocalSigner:
    """An address and its private key, held in memory only; signs transaction hashes with coincurve.

    The key never appears in `repr`/`str` (so not in logs or tracebacks that print locals' reprs)."""

    __slots__ = ("_key", "address")

    def __init__(self, private_key: bytes | str) -> None:
        raw = bytes.fromhex(private_key.removeprefix("0x")) if isinstance(private_key, str) else bytes(private_key)
        if len(raw) != 32:
            raise ValueError("a private key is 32 bytes")
        self._key = coincurve.PrivateKey(raw)
        public = self._key.public_key.format(compressed=False)[1:]
        self.address: str = to_checksum_address(keccak(public)[12:])

    @classmethod
    def from_account(cls, account: Any) -> LocalSigner:
        """From an object with `address` and `private_key` (an ape test account, an eth_account LocalAccount)."""
        key = account.private_key
        signer = cls(key if isinstance(key, (bytes, str)) else bytes(key))
        if signer.address != to_checksum_address(str(account.address)):
            raise ValueError(f"the private key of {account.address} does not match its address")
        return signer

    @classmethod
    def from_keyfile(cls, keyfile: Mapping[str, Any], passphrase: str) -> LocalSigner:
        """From an encrypted JSON keyfile (what `ape accounts` stores) and its passphrase."""
        from eth_account import Account

        try:
            key = Account.decrypt(dict(keyfile), passphrase)
        except ValueError as exc:
            raise ValueError("the passphrase does not unlock this keyfile") from exc
        return cls(bytes(key))

    @classmethod
    def from_ape_account(cls, account: Any, passphrase: str | None = None) -> LocalSigner:
        """From an ape account: a test account (which exposes its key) or a keyfile account from `ape accounts`.

        A keyfile account's passphrase comes from `passphrase`, else from ape's documented environment variable
        ``APE_ACCOUNTS_<alias>_PASSPHRASE``, else it is asked for on the terminal (hidden)."""
        if getattr(account, "private_key", None) is not None and not hasattr(account, "keyfile"):
            return cls.from_account(account)
        alias = account.alias
        if passphrase is None:
            passphrase = os.environ.get(f"APE_ACCOUNTS_{alias}_PASSPHRASE")
        if passphrase is None:
            import click

            passphrase = click.prompt(f"Enter passphrase to unlock '{alias}'", hide_input=True)
        try:
            return cls.from_keyfile(account.keyfile, passphrase)
        except ValueError as exc:
            raise ValueError(f"the passphrase does not unlock ape account '{alias}'") from exc

    def sign_hash(self, message_hash: bytes) -> bytes:
        """65 bytes r || s || recovery id (0/1) over a 32-byte hash."""
        return self._key.sign_recoverable(message_hash, hasher=None)

    def __repr__(self) -> str:
        return f"LocalSigner({self.address})"

    __str__ = __repr__

    def __reduce__(self) -> NoReturn:  # never pickle (and so never copy to another process or file) a key
        raise TypeError("a LocalSigner cannot be pickled")

    def __copy__(self) -> LocalSigner:  # immutable: copies (e.g. dataclasses.asdict of a TxOutcome) share it
        return self

    def __deepcopy__(self, memo: dict[int, Any]) -> LocalSigner:
        return self


def _rlp_int(value: int) -> bytes:
    """RLP of an integer: its minimal big-endian bytes as a string item (0 is the empty string)."""
    if 0 < value < 0x80:
        return bytes((value,))
    return _rlp_bytes(value.to_bytes((value.bit_length() + 7) // 8, "big"))


def _rlp_bytes(value: bytes) -> bytes:
    """RLP of one string item."""
    n = len(value)
    if n == 1 and value[0] < 0x80:
        return value
    if n < 56:
        return bytes((0x80 + n,)) + value
    length = n.to_bytes((n.bit_length() + 7) // 8, "big")
    return bytes((0xB7 + len(length),)) + length + value


def _rlp_wrap(body: bytes) -> bytes:
    """RLP list header + `body` (the items' encodings, concatenated)."""
    n = len(body)
    if n < 56:
        return bytes((0xC0 + n,)) + body
    length = n.to_bytes((n.bit_length() + 7) // 8, "big")
    return bytes((0xF7 + len(length),)) + length + body


class LegacyEncoder:
    """Signs EIP-155 legacy transactions that share a gas price and a chain id (one submission's).

    Hand-written RLP and pysha3's keccak: this is the submission's per-transaction CPU cost, and on a 2-core
    machine it competes with the node's ingestion. pyrlp's generic encoder and eth_utils' keccak (through
    eth_hash and pycryptodome, about 15 us a call) made up half of it; libsecp256k1's signature (about 30 us)
    is most of what is left. The fields that repeat from one transaction to the next (gas price, gas, recipient,
    value; the chain id and the two possible v values) are encoded once, not per transaction: a submission pays
    thousands of times the same contract with the same gas. tests/chain/test_submit.py checks the bytes against
    eth_account's."""

    __slots__ = ("_fields", "_price", "_suffix", "_v")

    def __init__(self, gas_price: int, chain_id: int) -> None:
        self._price = _rlp_int(gas_price)
        self._suffix = _rlp_int(chain_id) + b"\x80\x80"  # EIP-155: chain id, 0, 0 in place of v, r, s
        self._v = (_rlp_int(35 + 2 * chain_id), _rlp_int(36 + 2 * chain_id))
        self._fields: dict[tuple[int, str | None, int], tuple[bytes, bytes]] = {}

    def sign(
        self, signer: LocalSigner, nonce: int, gas: int, to: str | None, value: int, data: bytes
    ) -> tuple[bytes, bytes]:
        """(raw signed transaction, its hash)."""
        key = (gas, to, value)
        fields = self._fields.get(key)
        if fields is None:
            # gas price, gas, to / value: the items between the nonce and the data
            fields = (self._price + _rlp_int(gas) + _rlp_bytes(bytes.fromhex(to[2:]) if to else b""), _rlp_int(value))
            if len(self._fields) < 4096:  # one submission rarely has more than a handful of distinct ones
                self._fields[key] = fields
        head = _rlp_int(nonce) + fields[0] + fields[1] + _rlp_bytes(data)
        signature = signer.sign_hash(_keccak_256(_rlp_wrap(head + self._suffix)).digest())
        # r and s as RLP integers: their 32 bytes without leading zeros
        raw = _rlp_wrap(
            head
            + self._v[signature[64]]
            + _rlp_bytes(signature[:32].lstrip(b"\0"))
            + _rlp_bytes(signature[32:64].lstrip(b"\0"))
        )
        return raw, _keccak_256(raw).digest()


def sign_legacy(
    signer: LocalSigner, *, nonce: int, gas_price: int, gas: int, to: str | None, value: int, data: bytes, chain_id: int
) -> tuple[bytes, bytes]:
    """(raw signed transaction, its hash) for one EIP-155 legacy transaction (see `LegacyEncoder`)."""
    return LegacyEncoder(gas_price, chain_id).sign(signer, nonce, gas, to, value, data)


# --------------------------------------------------------------------------------------------------- calldata

_METHOD_CACHE: dict[tuple[int, str, int], tuple[bytes, list[str]]] = {}


def _method(contract: Any, fn_name: str, n_args: int) -> tuple[bytes, list[str]]:
    key = (id(contract), fn_name, n_args)
    cached = _METHOD_CACHE.get(key)
    if cached is None:
        matches = [
            item
            for item in abi.items_of(contract)
            if item["type"] == "function" and item["name"] == fn_name and len(item["inputs"]) == n_args
        ]
        if not matches:
            raise ValueError(f"the contract has no function {fn_name} taking {n_args} argument(s)")
        if len(matches) > 1:
            raise ValueError(f"{fn_name} is overloaded with {n_args} arguments; cannot choose")
        cached = abi.selector(matches[0]), [abi.abi_type(arg) for arg in matches[0]["inputs"]]
        _METHOD_CACHE[key] = cached
    return cached


def _abi_value(value: Any) -> Any:
    """ape accounts and contracts stand for their address; tuples/lists are converted element-wise."""
    if isinstance(value, (list, tuple)):
        return type(value)(_abi_value(v) for v in value)
    address = getattr(value, "address", None)
    if address is not None and not isinstance(value, (str, bytes, int)):
        return str(address)
    return value


def encode_call(contract_type: Any, fn_name: str, args: Sequence[Any]) -> bytes:
    """Calldata for `fn_name(*args)` of `contract_type` (`abi.system_abi()`, `system_contract_type()` or any
    ape contract type): selector + ABI args."""
    selector, types = _method(contract_type, fn_name, len(args))
    return selector + abi_encode(types, [_abi_value(a) for a in args])


def encode_deploy(contract_type: Any, args: Sequence[Any]) -> bytes:
    """Init code for deploying `contract_type` with constructor `args` (a TxRequest with `to=None`)."""
    bytecode = contract_type.deployment_bytecode.bytecode
    code = bytes.fromhex(bytecode.removeprefix("0x"))
    constructor = next((item for item in contract_type.abi if item.type == "constructor"), None)
    if constructor is None or not constructor.inputs:
        return code
    return code + abi_encode([arg.canonical_type for arg in constructor.inputs], [_abi_value(a) for a in args])


# --------------------------------------------------------------------------------------------------- requests


@dataclass(frozen=True)
class TxRequest:
    """One transaction to send: `signer` calls `to` (None = deploy `data` as init code) with `data`."""

    signer: LocalSigner
    to: str | None
    data: bytes
    gas: int
    value: int = 0


@dataclass(frozen=True)
class TxOutcome:
    """What became of a TxRequest. `error` is a sentence when `status` is False.

    `tx_hash` is None when the node refused the transaction outright (then `error` quotes the node).
    `gas_used` comes from the receipt; it is None for successful transactions confirmed by block traces,
    which do not carry it (failed ones always get their receipt, whatever the confirmation mode)."""

    request: TxRequest
    tx_hash: str | None
    status: bool
    block_number: int | None
    gas_used: int | None
    error: str | None = None
    nonce: int | None = None
    contract_address: str | None = None


@dataclass(slots=True)
class _Sent:
    index: int
    nonce: int
    tx_hash: str


def _check(result: Any, what: str) -> Any:
    if isinstance(result, RpcError):
        raise SubmitError(f"{what} failed: {result.message}")
    return result


def not_served(error: RpcError) -> bool:
    """True if `error` says the node (or a gateway in front of it) does not serve the method at all."""
    if error.code == -32601 or error.http_status in (404, 405):
        return True
    text = error.message.lower()
    return error.code in (-32000, -32004, None) and any(marker in text for marker in _NOT_SERVED)


@dataclass
class _Scan:
    """What a scan of new blocks saw: the first block's parent hash, the last block's hash, and whether every
    block could be read completely (if not, the remaining transactions are swept by receipt)."""

    parent: str | None
    tip: str | None
    complete: bool


# --------------------------------------------------------------------------------------------------- submitter


class Submitter:
    """Signs, sends and confirms many transactions fast (see the module docstring).

    `gas_price` None asks the node (``eth_gasPrice``) once per submission; give 0 on the zero-fee pilot network
    to save the call. `batch_size` is the number of transactions per JSON-RPC batch (Anvil refuses request
    bodies above 2 MB, geth above 5 MB: keep batch_size x calldata size well below that). `confirm` says how
    mined transactions are found: "receipts" (batched eth_getTransactionReceipt, any node), "blocks" (each new
    block's eth_getBlockReceipts), "traces" (each new block's `trace_block`, see `_confirm_blocks`) or "auto"
    (the first of traces, blocks, receipts that the node serves; asked once per Submitter). Revert data of
    failed transactions is decoded with the token system's errors (`deposit_token.chain.reverts`)."""

    def __init__(
        self,
        rpc_url: str,
        chain_id: int | None = None,
        *,
        batch_size: int = DEFAULT_BATCH_SIZE,
        gas_price: int | None = None,
        receipt_timeout: float = DEFAULT_RECEIPT_TIMEOUT,
        poll_interval: float = 0.1,
        confirm: str = "auto",
    ) -> None:
        if batch_size < 1:
            raise ValueError("batch_size must be at least 1")
        if confirm not in CONFIRM_MODES:
            raise ValueError(f"confirm is one of {', '.join(CONFIRM_MODES)}")
        self.rpc = RpcClient(rpc_url)
        self.chain_id = chain_id
        self.batch_size = batch_size
        self.gas_price = gas_price
        self.receipt_timeout = receipt_timeout
        self.poll_interval = poll_interval
        self.confirm = confirm
        self._mode: str | None = None  # the confirmation mode "auto" resolved to
        self._client: str | None = None  # web3_clientVersion
        self._unserved: set[str] = set()  # methods the node answered "not available"
        self._program_names: dict[tuple[str, int], str] = {}

    def __enter__(self) -> Submitter:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        self.rpc.close()

    # -- the whole submission

    def submit(self, requests: Sequence[TxRequest], progress: Progress | None = None) -> list[TxOutcome]:
        """Sends every request and waits until every one is mined; outcomes are in request order.

        A transaction the node refuses (e.g. gas above the block limit) gets an outcome with the node's
        message and no hash; one that reverts gets the decoded reason. Raises SubmitError when the node is
        unreachable or on another chain, SubmitTimeout when transactions stay unmined past the timeout."""
        requests = list(requests)
        if not requests:
            return []
        for request in requests:
            if not isinstance(request.signer, LocalSigner):
                raise TypeError(f"TxRequest.signer must be a LocalSigner, not {type(request.signer).__name__}")
        outcomes: list[TxOutcome | None] = [None] * len(requests)
        try:
            nonces, gas_price, head = self._prepare(requests)
            sent = self._send_all(requests, nonces, gas_price, outcomes, progress)
            self._await_receipts(requests, sent, head, outcomes, progress)
        except RpcConnectionError as exc:
            raise SubmitError(
                f"cannot reach the JSON-RPC endpoint {self.rpc.display_url} (is the node running?): {exc.message}",
                outcomes,
            ) from exc
        except RpcError as exc:  # a whole batch refused, a malformed answer: the submission cannot go on
            raise SubmitError(f"the JSON-RPC endpoint {self.rpc.display_url} failed: {exc}", outcomes) from exc
        return outcomes  # type: ignore[return-value]  # every slot is filled by now

    def _prepare(self, requests: Sequence[TxRequest]) -> tuple[dict[str, int], int, tuple[int, str | None]]:
        """One batch: chain id, gas price, the head block (number, hash) and every sender's pending nonce.

        Every nonce is asked before anything is sent: with its pool empty, Anvil 1.7.1 answers 500 of them with
        about 10 ms of its CPU, but once our earlier batches wait in the pool a pending nonce costs far more (500
        took 0.2 s of CPU with 2,500 transactions pending), so asking for later senders' nonces while the first
        batches are sent cost the node more than it saved."""
        senders = list(dict.fromkeys(r.signer.address for r in requests))
        calls: list[tuple[str, list[Any]]] = [
            ("eth_chainId", []),
            ("eth_getBlockByNumber", ["latest", False]),
            ("eth_gasPrice", []),
        ]
        calls += [("eth_getTransactionCount", [s, "pending"]) for s in senders]
        results = self.rpc.batch_results(calls, chunk=None)
        chain_id = int(_check(results[0], "eth_chainId"), 16)
        if self.chain_id is None:
            self.chain_id = chain_id
        elif chain_id != self.chain_id:
            raise SubmitError(f"the node at {self.rpc.display_url} serves chain id {chain_id}, not {self.chain_id}")
        block = _check(results[1], "eth_getBlockByNumber(latest)")
        if not isinstance(block, dict):
            raise SubmitError(f"the node at {self.rpc.display_url} returned no latest block")
        head = (int(block["number"], 16), block.get("hash"))
        gas_price = self.gas_price if self.gas_price is not None else int(_check(results[2], "eth_gasPrice"), 16)
        nonces = {s: int(_check(n, f"eth_getTransactionCount({s})"), 16) for s, n in zip(senders, results[3:])}
        return nonces, gas_price, head

    # -- signing and sending

    def _send_all(
        self,
        requests: Sequence[TxRequest],
        nonces: dict[str, int],
        gas_price: int,
        outcomes: list[TxOutcome | None],
        progress: Progress | None,
    ) -> list[_Sent]:
        """Signs batch k+1 while the node ingests batch k; refused transactions get their outcome here.

        The batches start small and double up to `batch_size` (`_FIRST_BATCH`): the node idles until the first
        batch is signed, and a full first batch kept it waiting about 40 ms (500 signatures) for nothing."""
        chain_id = self.chain_id
        assert chain_id is not None
        encoder = LegacyEncoder(gas_price, chain_id)
        sent: list[_Sent] = []
        holes: list[tuple[LocalSigner, int]] = []  # (sender, nonce) the node refused while later nonces were sent

        def sign_batch(start: int, size: int) -> list[tuple[_Sent, str]]:
            batch = []
            sign = encoder.sign
            for index in range(start, min(start + size, len(requests))):
                r = requests[index]
                signer = r.signer
                nonce = nonces[signer.address]
                nonces[signer.address] = nonce + 1
                raw, tx_hash = sign(signer, nonce, r.gas, r.to, r.value, r.data)
                batch.append((_Sent(index, nonce, "0x" + tx_hash.hex()), "0x" + raw.hex()))
            return batch

        def post(batch: list[tuple[_Sent, str]]) -> list[Any]:
            return self.rpc.batch_results([("eth_sendRawTransaction", [raw]) for _, raw in batch], chunk=None)

        with ThreadPoolExecutor(max_workers=1, thread_name_prefix="submit") as pool:
            size = min(_FIRST_BATCH, self.batch_size)
            batch = sign_batch(0, size)
            start = len(batch)
            future = pool.submit(post, batch)
            while batch:
                size = min(2 * size, self.batch_size)
                following = sign_batch(start, size) if start < len(requests) else []
                start += len(following)
                results = future.result()
                if following:  # the node gets the next batch before this one's answers are read
                    future = pool.submit(post, following)
                for (item, _), result in zip(batch, results):
                    if isinstance(result, RpcError):
                        self._refused(requests, item, result, nonces, holes, outcomes)
                    else:
                        sent.append(item)
                if progress:
                    progress("sent", start - len(following), len(requests))
                batch = following
        if holes:
            self._fill_holes(holes, gas_price, requests, sent, outcomes)
        return sent

    def _refused(
        self,
        requests: Sequence[TxRequest],
        item: _Sent,
        error: RpcError,
        nonces: dict[str, int],
        holes: list[tuple[LocalSigner, int]],
        outcomes: list[TxOutcome | None],
    ) -> None:
        request = requests[item.index]
        outcomes[item.index] = TxOutcome(
            request, None, False, None, None, f"the node refused the transaction: {error.message}", item.nonce
        )
        address = request.signer.address
        if nonces[address] == item.nonce + 1:
            nonces[address] = item.nonce  # nothing later was signed: reuse the nonce
        else:
            holes.append((request.signer, item.nonce))  # later nonces are out: they wait for this one

    def _fill_holes(
        self,
        holes: list[tuple[LocalSigner, int]],
        gas_price: int,
        requests: Sequence[TxRequest],
        sent: list[_Sent],
        outcomes: list[TxOutcome | None],
    ) -> None:
        """A refused nonce would hold back the sender's later transactions forever: each hole is filled with a
        zero-value transfer to the sender itself. If the node refuses that too, those later transactions are
        reported as held back (they stay in the node's pool) instead of timing out."""
        calls = []
        for signer, nonce in holes:
            raw, _ = sign_legacy(
                signer,
                nonce=nonce,
                gas_price=gas_price,
                gas=_FILLER_GAS,
                to=signer.address,
                value=0,
                data=b"",
                chain_id=self.chain_id or 0,
            )
            calls.append(("eth_sendRawTransaction", ["0x" + raw.hex()]))
        for (signer, nonce), result in zip(holes, self.rpc.batch_results(calls, chunk=None)):
            if not isinstance(result, RpcError):
                continue
            held = [s for s in sent if requests[s.index].signer.address == signer.address and s.nonce > nonce]
            for s in held:
                outcomes[s.index] = TxOutcome(
                    requests[s.index],
                    s.tx_hash,
                    False,
                    None,
                    None,
                    f"not mined: the node refused nonce {nonce} of {signer.address} ({result.message}), so it "
                    "holds this later transaction back",
                    s.nonce,
                )
                sent.remove(s)

    # -- confirmation

    def _client_version(self) -> str:
        """The node's web3_clientVersion ("" if it does not say): Geth serves no trace_ methods at all."""
        if self._client is None:
            try:
                self._client = str(self.rpc.call("web3_clientVersion") or "")
            except RpcConnectionError:
                raise
            except RpcError:
                self._client = ""
        return self._client

    def _may_serve(self, method: str) -> bool:
        """False once the node said it does not serve `method` (and for trace_ methods on Geth, without asking)."""
        if method in self._unserved:
            return False
        return not (method.startswith("trace_") and self._client_version().lower().startswith("geth/"))

    def _probe(self, method: str, params: list[Any]) -> bool:
        """Whether the node serves `method` (asked once with harmless `params`)."""
        if not self._may_serve(method):
            return False
        try:
            self.rpc.call(method, params)
        except RpcConnectionError:
            raise
        except RpcError:
            self._unserved.add(method)
            return False
        return True

    def confirm_mode(self) -> str:
        """How mined transactions are found on this node: "traces", "blocks" or "receipts" (see the class)."""
        if self._mode is None:
            if self.confirm == "traces" and not self._probe("trace_block", ["earliest"]):
                raise SubmitError(f"the node at {self.rpc.display_url} does not serve trace_block")
            if self.confirm == "blocks" and not self._probe("eth_getBlockReceipts", ["earliest"]):
                raise SubmitError(f"the node at {self.rpc.display_url} does not serve eth_getBlockReceipts")
            if self.confirm != "auto":
                self._mode = self.confirm
            elif self._probe("trace_block", ["earliest"]):
                self._mode = "traces"
            elif self._probe("eth_getBlockReceipts", ["earliest"]):
                self._mode = "blocks"
            else:
                self._mode = "receipts"
        return self._mode

    def _await_receipts(
        self,
        requests: Sequence[TxRequest],
        sent: list[_Sent],
        head: tuple[int, str | None],
        outcomes: list[TxOutcome | None],
        progress: Progress | None,
    ) -> None:
        """Each time the head advances, confirms what the new blocks hold, until every transaction is in or the
        timeout passes; then explains the failures."""
        pending = {s.tx_hash: s for s in sent}
        failed: list[_Sent] = []
        mode = self.confirm_mode() if pending else "receipts"
        deadline = time.monotonic() + self.receipt_timeout
        next_block, last_hash = head[0] + 1, head[1]
        last_sweep = last_advance = time.monotonic()
        while pending:
            current = self.rpc.block_number()
            if current >= next_block:
                last_advance = time.monotonic()
                blocks = range(next_block, current + 1)
                if mode == "receipts":
                    self._confirm_receipts(list(pending), requests, pending, outcomes, failed)
                else:
                    scan = (self._confirm_blocks if mode == "traces" else self._confirm_block_receipts)(
                        blocks, requests, pending, outcomes, failed
                    )
                    forked = last_hash is not None and scan.parent is not None and scan.parent != last_hash
                    if pending and (forked or not scan.complete or time.monotonic() - last_sweep > SWEEP_INTERVAL):
                        self._confirm_receipts(list(pending), requests, pending, outcomes, failed)
                        last_sweep = time.monotonic()
                    last_hash = scan.tip
                next_block = current + 1
                if progress:
                    progress("mined", len(requests) - len(pending), len(requests))
                if not pending:
                    break
            if time.monotonic() > deadline:
                raise SubmitTimeout(
                    self._pending_sentence(pending, sent, current, last_advance), outcomes, list(pending)
                )
            time.sleep(self.poll_interval)
        if failed:
            self._explain_failures(requests, failed, outcomes)

    def _pending_sentence(self, pending: dict[str, _Sent], sent: list[_Sent], head: int, last_advance: float) -> str:
        """One sentence for a timeout: how many are pending, whether the chain stopped making blocks, and that they
        stay in the pool (the same requests sent again would be new transactions, with new nonces)."""
        quiet = time.monotonic() - last_advance
        if quiet >= max(1.0, self.receipt_timeout / 2):
            why = (
                f"the chain has made no new block for {quiet:.0f} s (head: block {head}; is it sealing?) and they wait "
                "in the node's pool until blocks resume"
            )
        else:
            why = f"blocks came (head: block {head}) without them and they wait in the node's pool"
        return (
            f"{len(pending)} of {len(sent)} transactions are still pending, not mined within "
            f"{self.receipt_timeout:.0f} s: {why}; sending the same requests again would send them twice "
            f"(first: {next(iter(pending))})"
        )

    def _confirm_receipts(
        self,
        hashes: list[str],
        requests: Sequence[TxRequest],
        pending: dict[str, _Sent],
        outcomes: list[TxOutcome | None],
        failed: list[_Sent],
    ) -> None:
        """Batched eth_getTransactionReceipt for `hashes`; records the mined ones."""
        step = self.batch_size * 4
        for i in range(0, len(hashes), step):
            chunk = hashes[i : i + step]
            calls = [("eth_getTransactionReceipt", [h]) for h in chunk]
            for tx_hash, receipt in zip(chunk, self.rpc.batch_results(calls, chunk=None)):
                if receipt is None or isinstance(receipt, RpcError):
                    continue
                self._record_receipt(receipt, requests, pending, outcomes, failed, tx_hash)

    @staticmethod
    def _record_receipt(
        receipt: Mapping[str, Any],
        requests: Sequence[TxRequest],
        pending: dict[str, _Sent],
        outcomes: list[TxOutcome | None],
        failed: list[_Sent],
        tx_hash: str | None = None,
    ) -> None:
        """Records the outcome a receipt gives for one of our pending transactions (others are ignored)."""
        item = pending.pop(tx_hash or str(receipt.get("transactionHash")).lower(), None)
        if item is None:
            return
        ok = int(receipt["status"], 16) == 1
        created = receipt.get("contractAddress")
        outcomes[item.index] = TxOutcome(
            requests[item.index],
            item.tx_hash,
            ok,
            int(receipt["blockNumber"], 16),
            int(receipt["gasUsed"], 16),
            None,
            item.nonce,
            to_checksum_address(created) if created else None,
        )
        if not ok:
            failed.append(item)

    def _confirm_block_receipts(
        self,
        blocks: range,
        requests: Sequence[TxRequest],
        pending: dict[str, _Sent],
        outcomes: list[TxOutcome | None],
        failed: list[_Sent],
    ) -> _Scan:
        """Confirms from each block's receipts (``eth_getBlockReceipts``, one call per block, the node's own
        receipts encoding), with the block's header for the hash chain. A block or receipts list that cannot be
        read (a limit, a block gone in a reorganisation) leaves the scan incomplete: a sweep by receipt follows."""
        scan = _Scan(None, None, True)
        numbers = list(blocks)
        for start in range(0, len(numbers), _BLOCKS_PER_REQUEST):
            part = numbers[start : start + _BLOCKS_PER_REQUEST]
            calls: list[tuple[str, list[Any]]] = []
            for number in part:
                calls += [("eth_getBlockByNumber", [hex(number), False]), ("eth_getBlockReceipts", [hex(number)])]
            results = self.rpc.batch_results(calls, chunk=None)
            for k, _number in enumerate(part):
                block, receipts = results[2 * k], results[2 * k + 1]
                if not isinstance(block, dict) or not isinstance(receipts, list):
                    scan.complete = False
                    continue
                if scan.parent is None and scan.tip is None:
                    scan.parent = block.get("parentHash")
                elif scan.tip is not None and block.get("parentHash") != scan.tip:
                    scan.complete = False  # the chain changed between two of these reads
                scan.tip = block.get("hash")
                if any(receipt.get("blockHash") != scan.tip for receipt in receipts):
                    scan.complete = False
                for receipt in receipts:
                    self._record_receipt(receipt, requests, pending, outcomes, failed)
        return scan

    def _confirm_blocks(
        self,
        blocks: range,
        requests: Sequence[TxRequest],
        pending: dict[str, _Sent],
        outcomes: list[TxOutcome | None],
        failed: list[_Sent],
    ) -> _Scan:
        """Confirms from each block's transaction list and its top-level call traces (`trace_block`).

        Why not receipts: Anvil (1.7.1) builds each receipt by copying the whole block and every earlier
        receipt, so fetching a block's receipts costs the square of its size (about 2 s for a block of 3,000
        transactions; fixed upstream in foundry PRs #16063 and #16245, not yet released). A top-level trace
        has what a receipt says about success (its `error`) and the revert output, at a linear cost. Traces do
        not give the receipt's gas used: successful outcomes confirmed this way have `gas_used` None; failed
        ones, and any transaction of ours in the block without a trace, get their receipt."""
        calls: list[tuple[str, list[Any]]] = []
        for number in blocks:
            calls += [("eth_getBlockByNumber", [hex(number), False]), ("trace_block", [hex(number)])]
        results = self.rpc.batch_results(calls, chunk=None)
        need_receipt: list[str] = []
        scan = _Scan(None, None, True)
        for k, number in enumerate(blocks):
            block = _check(results[2 * k], f"eth_getBlockByNumber({number})")
            traces = _check(results[2 * k + 1], f"trace_block({number})") or []
            if not isinstance(block, dict):
                scan.complete = False
                continue
            if scan.parent is None and scan.tip is None:
                scan.parent = block.get("parentHash")
            scan.tip = block.get("hash")
            ours = [h for h in block.get("transactions", []) if h in pending]
            if not ours:
                continue
            top = {t["transactionHash"]: t for t in traces if not t.get("traceAddress") and t.get("transactionHash")}
            for tx_hash in ours:
                trace = top.get(tx_hash)
                if trace is None or trace.get("error"):
                    need_receipt.append(tx_hash)  # failures get the full receipt (gas used) before explaining
                    continue
                item = pending.pop(tx_hash)
                created = (trace.get("result") or {}).get("address") if trace.get("type") == "create" else None
                outcomes[item.index] = TxOutcome(
                    requests[item.index],
                    tx_hash,
                    True,
                    number,
                    None,
                    None,
                    item.nonce,
                    to_checksum_address(created) if created else None,
                )
        if need_receipt:
            self._confirm_receipts(need_receipt, requests, pending, outcomes, failed)
        return scan

    # -- why a transaction failed

    def _explain_failures(
        self, requests: Sequence[TxRequest], failed: list[_Sent], outcomes: list[TxOutcome | None]
    ) -> None:
        """Finds each failed transaction's revert data and turns it into a sentence.

        1. Replay with eth_call (same sender, calldata, gas) at the block's parent: the block's state minus the
           transactions before it in the same block. Any node serves this, Geth through the gateway included.
        2. If that does not revert (a transaction earlier in the same block caused the failure, e.g. it used up
           the cap), the transaction's own call trace, where the node serves one (trace_transaction, or
           debug_traceTransaction's callTracer): its output is the exact revert data.
        3. Else (Geth without its debug API, any node behind the gateway) replay at the block itself: after
           the whole block, what an earlier transaction changed (a used-up cap, a receipt now taken) still holds,
           so the call reverts for the same rule."""
        replies = self._replay(requests, failed, outcomes, parent=True)
        data = {item.tx_hash: _revert_of(reply) for item, reply in zip(failed, replies)}
        trace_of = self._traces([item.tx_hash for item in failed if not data[item.tx_hash]])
        for tx_hash, trace in trace_of.items():
            if trace.get("output") not in (None, "", "0x"):
                data[tx_hash] = _hex_bytes(trace["output"])
        later = [item for item in failed if not data[item.tx_hash]]
        after = dict(zip((item.tx_hash for item in later), self._replay(requests, later, outcomes, parent=False)))
        for item, reply in zip(failed, replies):
            r = requests[item.index]
            old = outcomes[item.index]
            assert old is not None  # a failed item has its outcome
            refused = reply if isinstance(reply, RpcError) else after.get(item.tx_hash)
            revert = data[item.tx_hash] or _revert_of(after.get(item.tx_hash))
            if (old.gas_used or 0) >= r.gas:
                reason = f"the transaction ran out of gas (all {r.gas:,} gas units used); give it more gas"
            elif revert:
                reason = self.describe_revert(revert, r.to)
            elif isinstance(refused, RpcError):
                reason = f"the transaction failed without a reason: {refused.message}"
            else:
                error = (trace_of.get(item.tx_hash) or {}).get("error")
                reason = (
                    "the transaction reverted" + (f" ({error})" if error else "") + ", but not when replayed "
                    "before or after its block: a transaction in the same block caused it and then undid the cause"
                )
            outcomes[item.index] = TxOutcome(
                r, old.tx_hash, False, old.block_number, old.gas_used, reason, old.nonce, old.contract_address
            )

    def _replay(
        self, requests: Sequence[TxRequest], items: list[_Sent], outcomes: list[TxOutcome | None], *, parent: bool
    ) -> list[Any]:
        """eth_call of each item's transaction at its block's parent (`parent`) or at its block."""
        calls = []
        for item in items:
            r, outcome = requests[item.index], outcomes[item.index]
            assert outcome is not None and outcome.block_number is not None
            call = {"from": r.signer.address, "data": "0x" + r.data.hex(), "gas": hex(r.gas), "value": hex(r.value)}
            if r.to:
                call["to"] = r.to
            calls.append(("eth_call", [call, hex(outcome.block_number - 1 if parent else outcome.block_number)]))
        return self.rpc.batch_results(calls, chunk=None) if calls else []

    def _traces(self, hashes: list[str]) -> dict[str, dict[str, Any]]:
        """The top-level call trace of each transaction: {"output", "error"} from trace_transaction (Anvil, Erigon,
        Nethermind, Besu), else from debug_traceTransaction's callTracer (Geth with its debug API). A method the
        node does not serve is not asked again (Geth's public RPC and the gateway serve neither)."""
        out: dict[str, dict[str, Any]] = {}
        missing = list(hashes)
        if missing and self._may_serve("trace_transaction"):
            replies = self.rpc.batch_results([("trace_transaction", [h]) for h in missing], chunk=None)
            left = []
            for tx_hash, reply in zip(missing, replies):
                top = next((t for t in reply if not t.get("traceAddress")), None) if isinstance(reply, list) else None
                if top is None:
                    left.append(tx_hash)
                    if isinstance(reply, RpcError) and not_served(reply):
                        self._unserved.add("trace_transaction")
                else:
                    out[tx_hash] = {"output": (top.get("result") or {}).get("output"), "error": top.get("error")}
            missing = left
        if missing and self._may_serve("debug_traceTransaction"):
            calls = [("debug_traceTransaction", [h, {"tracer": "callTracer"}]) for h in missing]
            for tx_hash, reply in zip(missing, self.rpc.batch_results(calls, chunk=None)):
                if isinstance(reply, dict):
                    out[tx_hash] = {"output": reply.get("output"), "error": reply.get("error")}
                elif isinstance(reply, RpcError) and not_served(reply):
                    self._unserved.add("debug_traceTransaction")
        return out

    def describe_revert(self, data: bytes, contract: str | None = None) -> str:
        """A sentence for raw revert data (`deposit_token.chain.reverts.describe_revert`), program names read
        from the token at `contract`."""
        sentence = describe_revert(data, self._names(contract))
        return sentence or f"the contract reverted with unknown error data 0x{data.hex()}"

    def _names(self, contract: str | None) -> NameLookup | None:
        """Program names read from the token at `contract` (only when a sentence needs one)."""
        if contract is None:
            return None

        def program(program_id: int) -> str:
            key = (contract, program_id)
            if key not in self._program_names:
                try:
                    data = encode_call(abi.system_abi(), "programName", [program_id])
                    result = self.rpc.call("eth_call", [{"to": contract, "data": "0x" + data.hex()}, "latest"])
                    name = abi_decode(["string"], _hex_bytes(result))[0]
                except Exception:  # noqa: BLE001 - a failed lookup must not hide the original error
                    return f"#{program_id}"
                self._program_names[key] = f"'{name}'" if name else f"#{program_id}"
            return self._program_names[key]

        return NameLookup(program=program)


def _hex_bytes(text: str) -> bytes:
    return bytes.fromhex(text.removeprefix("0x"))


def _revert_of(reply: Any) -> bytes:
    """The revert data of an eth_call reply (b"" if it did not revert or said nothing)."""
    return (reply.revert_data() or b"") if isinstance(reply, RpcError) else b""


def successes(outcomes: Iterable[TxOutcome]) -> int:
    """How many outcomes show a successful receipt."""
    return sum(1 for o in outcomes if o.status)

"""The fast submission path: sign locally, send in JSON-RPC batches, confirm in batches.

Sending one transaction at a time through web3.py (build, sign, send, wait) spends almost all its time on
round trips and on Python-side transaction building: about 140 payments/s against Anvil on this machine. The
treasury's disbursal and the pilot demo send thousands, so this module does the minimum per transaction:

* keys are held in memory by `LocalSigner` and transactions are signed with coincurve (libsecp256k1); the
  signature is byte-identical to eth_account's (RFC 6979 nonces, low-s), which `tests/chain/test_submit.py` checks;
* nonces are managed locally: one batched ``eth_getTransactionCount(sender, "pending")`` per distinct sender
  at the start of each `Submitter.submit`, then counted up;
* transactions are EIP-155 legacy transactions with one gas price for the whole submission (explicit, or the
  node's ``eth_gasPrice``): zero on the pilot network, above the base fee on ape-foundry's test Anvil;
* they are sent as JSON-RPC batches (a JSON array) over one persistent HTTP connection, encoded and decoded
  with orjson; the next batch is signed while the node ingests the previous one;
* each time the head block advances, the new blocks are checked for the sent transactions: by their call
  traces (``trace_block``, one call per block) where the node serves them, as Anvil does, else by batched
  ``eth_getTransactionReceipt`` (why: `Submitter._confirm_blocks`);
* a transaction that reverted is replayed with ``eth_call`` from the same sender at its block's parent, and
  the revert data is decoded into a sentence by `deposit_token.chain.reverts` (see `Submitter._explain_failures`).

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

from deposit_token.chain import abi
from deposit_token.chain.reverts import describe_revert
from deposit_token.chain.rpc import RpcClient, RpcConnectionError, RpcError
from deposit_token.domain.sentences import NameLookup
from deposit_token.errors import DepositTokenError

DEFAULT_BATCH_SIZE = 500
DEFAULT_RECEIPT_TIMEOUT = 120.0
_FILLER_GAS = 21_000

#: ``progress(phase, done, total)``: phase "sent" while signing and sending, then "mined" while receipts arrive.
Progress = Callable[[str, int, int], None]


class SubmitError(DepositTokenError):
    """The submission could not go on (node unreachable, wrong chain, malformed answer, timeout).

    `outcomes` holds what is known so far (same order as the requests; None where nothing is known)."""

    def __init__(self, message: str, outcomes: list[TxOutcome | None] | None = None) -> None:
        super().__init__(message)
        self.outcomes = outcomes or []


class SubmitTimeout(SubmitError):
    """Some transactions were sent but not mined within the receipt timeout."""


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


def _rlp_item(value: int | bytes) -> bytes:
    """RLP of one string item (ints as minimal big-endian bytes). Hand-written: pyrlp's generic encoder is
    about half of the signing time; tests/chain/test_submit.py checks the signed bytes against eth_account's."""
    if isinstance(value, int):
        value = value.to_bytes((value.bit_length() + 7) // 8, "big")
    n = len(value)
    if n == 1 and value[0] < 0x80:
        return value
    if n < 56:
        return bytes((0x80 + n,)) + value
    length = n.to_bytes((n.bit_length() + 7) // 8, "big")
    return bytes((0xB7 + len(length),)) + length + value


def _rlp_list(items: Iterable[int | bytes]) -> bytes:
    body = b"".join(_rlp_item(item) for item in items)
    n = len(body)
    if n < 56:
        return bytes((0xC0 + n,)) + body
    length = n.to_bytes((n.bit_length() + 7) // 8, "big")
    return bytes((0xF7 + len(length),)) + length + body


def sign_legacy(
    signer: LocalSigner, *, nonce: int, gas_price: int, gas: int, to: str | None, value: int, data: bytes, chain_id: int
) -> tuple[bytes, bytes]:
    """(raw signed transaction, its hash) for an EIP-155 legacy transaction."""
    to_raw = bytes.fromhex(to[2:]) if to else b""
    fields: list[int | bytes] = [nonce, gas_price, gas, to_raw, value, data]
    signature = signer.sign_hash(keccak(_rlp_list([*fields, chain_id, 0, 0])))
    v = signature[64] + 35 + 2 * chain_id
    r = int.from_bytes(signature[:32], "big")
    s = int.from_bytes(signature[32:64], "big")
    raw = _rlp_list([*fields, v, r, s])
    return raw, keccak(raw)


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
    which do not carry it (failed ones always get their receipt)."""

    request: TxRequest
    tx_hash: str | None
    status: bool
    block_number: int | None
    gas_used: int | None
    error: str | None = None
    nonce: int | None = None
    contract_address: str | None = None


@dataclass
class _Sent:
    index: int
    nonce: int
    tx_hash: str


def _check(result: Any, what: str) -> Any:
    if isinstance(result, RpcError):
        raise SubmitError(f"{what} failed: {result.message}")
    return result


# --------------------------------------------------------------------------------------------------- submitter


class Submitter:
    """Signs, sends and confirms many transactions fast (see the module docstring).

    `gas_price` None asks the node (``eth_gasPrice``) once per submission; give 0 on the zero-fee pilot network
    to save the call. `batch_size` is the number of transactions per JSON-RPC batch (Anvil refuses request
    bodies above 2 MB: keep batch_size x calldata size well below that). `confirm` says how mined
    transactions are found: "receipts" (batched eth_getTransactionReceipt, any node), "traces" (each new
    block's `trace_block`, see `_confirm_blocks`) or "auto" (traces when the node serves them). Revert data of
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
        if confirm not in ("auto", "receipts", "traces"):
            raise ValueError("confirm is 'auto', 'receipts' or 'traces'")
        self.rpc = RpcClient(rpc_url)
        self.chain_id = chain_id
        self.batch_size = batch_size
        self.gas_price = gas_price
        self.receipt_timeout = receipt_timeout
        self.poll_interval = poll_interval
        self.confirm = confirm
        self._use_traces: bool | None = None
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
                f"cannot reach the JSON-RPC endpoint {self.rpc.url} (is the node running?): {exc.message}", outcomes
            ) from exc
        except RpcError as exc:  # a whole batch refused, a malformed answer: the submission cannot go on
            raise SubmitError(f"the JSON-RPC endpoint {self.rpc.url} failed: {exc}", outcomes) from exc
        return outcomes  # type: ignore[return-value]  # every slot is filled by now

    def _prepare(self, requests: Sequence[TxRequest]) -> tuple[dict[str, int], int, int]:
        """One batch: chain id, gas price, head block and every sender's pending nonce."""
        senders = list(dict.fromkeys(r.signer.address for r in requests))
        calls: list[tuple[str, list[Any]]] = [("eth_chainId", []), ("eth_blockNumber", []), ("eth_gasPrice", [])]
        calls += [("eth_getTransactionCount", [s, "pending"]) for s in senders]
        results = []
        for i in range(0, len(calls), 2000):
            results += self.rpc.batch_results(calls[i : i + 2000], chunk=None)
        chain_id = int(_check(results[0], "eth_chainId"), 16)
        if self.chain_id is None:
            self.chain_id = chain_id
        elif chain_id != self.chain_id:
            raise SubmitError(f"the node at {self.rpc.url} serves chain id {chain_id}, not {self.chain_id}")
        head = int(_check(results[1], "eth_blockNumber"), 16)
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
        """Signs batch k+1 while the node ingests batch k; refused transactions get their outcome here."""
        chain_id = self.chain_id
        assert chain_id is not None
        sent: list[_Sent] = []
        holes: list[tuple[LocalSigner, int]] = []  # (sender, nonce) the node refused while later nonces were sent

        def sign_batch(start: int) -> list[tuple[_Sent, str]]:
            batch = []
            for index in range(start, min(start + self.batch_size, len(requests))):
                r = requests[index]
                nonce = nonces[r.signer.address]
                nonces[r.signer.address] = nonce + 1
                raw, tx_hash = sign_legacy(
                    r.signer,
                    nonce=nonce,
                    gas_price=gas_price,
                    gas=r.gas,
                    to=r.to,
                    value=r.value,
                    data=r.data,
                    chain_id=chain_id,
                )
                batch.append((_Sent(index, nonce, "0x" + tx_hash.hex()), "0x" + raw.hex()))
            return batch

        def post(batch: list[tuple[_Sent, str]]) -> list[Any]:
            return self.rpc.batch_results([("eth_sendRawTransaction", [raw]) for _, raw in batch], chunk=None)

        with ThreadPoolExecutor(max_workers=1, thread_name_prefix="submit") as pool:
            batch = sign_batch(0)
            start = len(batch)
            while batch:
                future = pool.submit(post, batch)
                following = sign_batch(start) if start < len(requests) else []
                start += len(following)
                for (item, _), result in zip(batch, future.result()):
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

    def _confirm_by_traces(self) -> bool:
        """Whether to confirm through `trace_block` (see `_confirm_blocks`) rather than per-transaction receipts."""
        if self._use_traces is None:
            if self.confirm == "receipts":
                self._use_traces = False
            else:
                try:
                    self.rpc.call("trace_block", ["earliest"])
                    self._use_traces = True
                except RpcConnectionError:
                    raise
                except RpcError as exc:
                    if self.confirm == "traces":
                        raise SubmitError(f"the node at {self.rpc.url} does not serve trace_block: {exc}") from exc
                    self._use_traces = False
        return self._use_traces

    def _await_receipts(
        self,
        requests: Sequence[TxRequest],
        sent: list[_Sent],
        head: int,
        outcomes: list[TxOutcome | None],
        progress: Progress | None,
    ) -> None:
        """Each time the head advances, confirms what the new blocks hold, until every transaction is in or the
        timeout passes; then explains the failures."""
        pending = {s.tx_hash: s for s in sent}
        failed: list[_Sent] = []
        by_traces = self._confirm_by_traces()
        deadline = time.monotonic() + self.receipt_timeout
        next_block = head + 1
        while pending:
            current = self.rpc.block_number()
            if current >= next_block:
                if by_traces:
                    self._confirm_blocks(range(next_block, current + 1), requests, pending, outcomes, failed)
                else:
                    self._confirm_receipts(list(pending), requests, pending, outcomes, failed)
                next_block = current + 1
                if progress:
                    progress("mined", len(requests) - len(pending), len(requests))
                if not pending:
                    break
            if time.monotonic() > deadline:
                first = next(iter(pending))
                raise SubmitTimeout(
                    f"{len(pending)} of {len(sent)} transactions were not mined within {self.receipt_timeout:.0f} s "
                    f"(first: {first}); is the node mining?",
                    outcomes,
                )
            time.sleep(self.poll_interval)
        if failed:
            self._explain_failures(requests, failed, outcomes)

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
                item = pending.pop(tx_hash)
                ok = int(receipt["status"], 16) == 1
                outcomes[item.index] = TxOutcome(
                    requests[item.index],
                    tx_hash,
                    ok,
                    int(receipt["blockNumber"], 16),
                    int(receipt["gasUsed"], 16),
                    None,
                    item.nonce,
                    receipt.get("contractAddress"),
                )
                if not ok:
                    failed.append(item)

    def _confirm_blocks(
        self,
        blocks: range,
        requests: Sequence[TxRequest],
        pending: dict[str, _Sent],
        outcomes: list[TxOutcome | None],
        failed: list[_Sent],
    ) -> None:
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
        for k, number in enumerate(blocks):
            block = _check(results[2 * k], f"eth_getBlockByNumber({number})")
            traces = _check(results[2 * k + 1], f"trace_block({number})") or []
            ours = [h for h in (block or {}).get("transactions", []) if h in pending]
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

    # -- why a transaction failed

    def _explain_failures(
        self, requests: Sequence[TxRequest], failed: list[_Sent], outcomes: list[TxOutcome | None]
    ) -> None:
        """Replays each failed transaction with eth_call (same sender, calldata, gas) at its block's parent.

        The parent's state is the block's state minus the transactions before it in the same block, so a
        failure caused by one of those (e.g. a cap used up by an earlier payment) may not reproduce; the
        node's call trace of the transaction itself (debug_traceTransaction) is asked for then."""
        calls = []
        for item in failed:
            r, outcome = requests[item.index], outcomes[item.index]
            assert outcome is not None and outcome.block_number is not None
            call = {"from": r.signer.address, "data": "0x" + r.data.hex(), "gas": hex(r.gas), "value": hex(r.value)}
            if r.to:
                call["to"] = r.to
            calls.append(("eth_call", [call, hex(outcome.block_number - 1)]))
        replies = self.rpc.batch_results(calls, chunk=None)
        data = [(reply.revert_data() or b"") if isinstance(reply, RpcError) else b"" for reply in replies]
        trace_of = self._traces([item.tx_hash for item, d in zip(failed, data) if not d])
        for item, reply, revert in zip(failed, replies, data):
            r = requests[item.index]
            trace = trace_of.get(item.tx_hash) or {}
            if not revert and trace.get("output") not in (None, "", "0x"):
                revert = _hex_bytes(trace["output"])
            if (outcomes[item.index].gas_used or 0) >= r.gas:  # type: ignore[union-attr]  # a failed item has its outcome
                reason = f"the transaction ran out of gas (all {r.gas:,} gas units used); give it more gas"
            elif revert:
                reason = self.describe_revert(revert, r.to)
            elif isinstance(reply, RpcError):
                reason = f"the transaction failed without a reason: {reply.message}"
            else:
                error = trace.get("error")
                reason = (
                    "the transaction reverted" + (f" ({error})" if error else "") + ", but not when replayed "
                    "at the parent block: an earlier transaction in the same block caused it"
                )
            old = outcomes[item.index]
            assert old is not None
            outcomes[item.index] = TxOutcome(
                r, old.tx_hash, False, old.block_number, old.gas_used, reason, old.nonce, old.contract_address
            )

    def _traces(self, hashes: list[str]) -> dict[str, dict[str, Any]]:
        """The top-level call trace of each transaction: {"output", "error"} from trace_transaction (Anvil, Erigon,
        Nethermind, Besu), else from debug_traceTransaction's callTracer (Geth)."""
        out: dict[str, dict[str, Any]] = {}
        missing = []
        for tx_hash, reply in zip(
            hashes, self.rpc.batch_results([("trace_transaction", [h]) for h in hashes], chunk=None)
        ):
            top = next((t for t in reply if not t.get("traceAddress")), None) if isinstance(reply, list) else None
            if top is None:
                missing.append(tx_hash)
            else:
                out[tx_hash] = {"output": (top.get("result") or {}).get("output"), "error": top.get("error")}
        calls = [("debug_traceTransaction", [h, {"tracer": "callTracer"}]) for h in missing]
        for tx_hash, reply in zip(missing, self.rpc.batch_results(calls, chunk=None)):
            if isinstance(reply, dict):
                out[tx_hash] = {"output": reply.get("output"), "error": reply.get("error")}
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


def successes(outcomes: Iterable[TxOutcome]) -> int:
    """How many outcomes show a successful receipt."""
    return sum(1 for o in outcomes if o.status)

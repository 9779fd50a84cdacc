"""Safes on chain: deploying the Safe v1.4.1 contracts and one Safe per role, reading a Safe (owners,
threshold, nonce), simulating a proposal and executing it. Everything goes through JSON-RPC
(`deposit_token.chain.rpc`) and the Submitter, so it runs the same on Anvil and on the Geth network.

Simulation is Safe's own: ``simulateAndRevert`` of the Safe delegatecalls ``SimulateTxAccessor.simulate`` with
the SafeTx, so the call runs exactly as ``execTransaction`` would run it (from the Safe, CALL or DELEGATECALL),
then reverts with its outcome; no signatures are needed, so a proposal that would fail is refused before anyone
signs it, with the token's sentence for the refusal.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from eth_abi import decode as abi_decode
from eth_abi import encode as abi_encode
from eth_utils import keccak, to_checksum_address

from deposit_token.chain.reverts import describe_revert
from deposit_token.chain.rpc import RpcClient, RpcError
from deposit_token.chain.submit import LocalSigner, Submitter, TxOutcome, TxRequest
from deposit_token.domain.sentences import NameLookup
from deposit_token.errors import DepositTokenError
from deposit_token.ops.multisig import artifacts
from deposit_token.ops.multisig.proposal import CALL, ZERO_ADDRESS, Proposal, SafeTx, approved_by, pack

DEPLOY_GAS = 8_000_000
SENTINEL_OWNERS = "0x0000000000000000000000000000000000000001"  # the head of Safe's owner list

# Safe v1.4.1's revert codes (docs: safe-global/safe-smart-account, docs/error_codes.md) in words.
SAFE_ERRORS = {
    "GS000": "the Safe could not finish its set-up",
    "GS001": "the Safe has no threshold set",
    "GS010": "not enough gas was given for the Safe transaction",
    "GS011": "the Safe could not pay the gas refund in ether",
    "GS012": "the Safe could not pay the gas refund in its token",
    "GS013": "the Safe transaction's call failed",
    "GS020": "fewer owners signed than the Safe's threshold requires",
    "GS021": "a contract signature points outside the signatures",
    "GS022": "a contract signature is cut short",
    "GS023": "a contract signature is out of bounds",
    "GS024": "a contract owner's signature is invalid",
    "GS025": "an owner's approval of this transaction is missing",
    "GS026": "a signature is not from a current owner of the Safe (or the signatures are duplicated or out of order)",
    "GS030": "only owners can approve a transaction hash",
    "GS031": "only the Safe itself can change its owners, threshold or modules",
    "GS200": "the Safe is already set up",
    "GS201": "the threshold is higher than the number of owners",
    "GS202": "the threshold must be at least 1",
    "GS203": "an owner is invalid (zero, the sentinel, or the Safe itself)",
    "GS204": "an owner is listed twice",
    "GS205": "the owner to remove does not follow the given previous owner",
}


class SafeError(DepositTokenError):
    """A Safe refuses, or would refuse, a transaction (the message says why in words), or cannot be read."""


def _selector(signature: str) -> bytes:
    return keccak(text=signature)[:4]


def call_data(signature: str, *args: Any) -> bytes:
    """Calldata of `signature` (e.g. ``"getThreshold()"``) with `args`."""
    types = signature[signature.index("(") + 1 : -1]
    return _selector(signature) + (abi_encode(_split(types), list(args)) if types else b"")


def _split(types: str) -> list[str]:
    parts, depth, current = [], 0, ""
    for char in types:
        if char == "," and depth == 0:
            parts.append(current)
            current = ""
            continue
        depth += char == "("
        depth -= char == ")"
        current += char
    return [*parts, current] if current else parts


EXEC = "execTransaction(address,uint256,bytes,uint8,uint256,uint256,uint256,address,address,bytes)"
SETUP = "setup(address[],uint256,address,bytes,address,address,uint256,address)"
CREATE_PROXY = "createProxyWithNonce(address,bytes,uint256)"
SIMULATE = "simulate(address,uint256,bytes,uint8)"
SIMULATE_AND_REVERT = "simulateAndRevert(address,bytes)"


def safe_sentence(data: bytes, names: NameLookup | None = None) -> str:
    """A Safe's or the token's revert data in words."""
    sentence = describe_revert(data, names)
    if sentence is None:
        return f"the call reverted with data 0x{data.hex()}" if data else "the call reverted without a reason"
    for code, words in SAFE_ERRORS.items():
        if sentence.endswith(f": {code}"):
            return f"{words} ({code})"
    return sentence


# --- reading a Safe -----------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class SafeState:
    address: str
    owners: tuple[str, ...]
    threshold: int
    nonce: int
    version: str


def _eth_call(rpc: RpcClient, to: str, data: bytes, sender: str | None = None, block: str = "latest") -> bytes:
    call: dict[str, Any] = {"to": to, "data": "0x" + data.hex()}
    if sender is not None:
        call["from"] = sender
    return bytes.fromhex(str(rpc.call("eth_call", [call, block]))[2:])


def read_safe(rpc: RpcClient, address: str) -> SafeState:
    """Owners, threshold, nonce and version of the Safe at `address` (SafeError if it is not a Safe)."""
    address = to_checksum_address(address)
    if not rpc.has_code(address):
        raise SafeError(f"there is no contract at {address}, so no Safe")
    calls = [
        ("eth_call", [{"to": address, "data": "0x" + call_data(f"{fn}()").hex()}, "latest"])
        for fn in ("getOwners", "getThreshold", "nonce", "VERSION")
    ]
    answers = rpc.batch_results(calls)
    if any(isinstance(a, RpcError) for a in answers):
        raise SafeError(f"{address} does not answer as a Safe (getOwners, getThreshold, nonce)")
    raw = [bytes.fromhex(str(a)[2:]) for a in answers]
    try:
        (owners,) = abi_decode(["address[]"], raw[0])
        (version,) = abi_decode(["string"], raw[3])
    except Exception:  # noqa: BLE001 - eth_abi raises several kinds for data that is not what a Safe returns
        raise SafeError(f"{address} does not answer as a Safe") from None
    return SafeState(
        address=address,
        owners=tuple(to_checksum_address(o) for o in owners),
        threshold=int.from_bytes(raw[1], "big"),
        nonce=int.from_bytes(raw[2], "big"),
        version=str(version),
    )


def contract_tx_hash(rpc: RpcClient, tx: SafeTx) -> bytes:
    """The Safe's own getTransactionHash of `tx` (what the tests compare `SafeTx.hash` with)."""
    data = call_data(
        "getTransactionHash(address,uint256,bytes,uint8,uint256,uint256,uint256,address,address,uint256)",
        tx.to,
        tx.value,
        tx.data,
        tx.operation,
        tx.safe_tx_gas,
        tx.base_gas,
        tx.gas_price,
        tx.gas_token,
        tx.refund_receiver,
        tx.nonce,
    )
    return _eth_call(rpc, tx.safe, data)


# --- simulating and executing ----------------------------------------------------------------------------------


def simulate(rpc: RpcClient, tx: SafeTx, accessor: str | None, names: NameLookup | None = None) -> str | None:
    """None if the SafeTx's call would succeed from the Safe now, else why not (the token's sentence). No
    signature is needed: the Safe runs it through SimulateTxAccessor (`accessor`) and reverts with the outcome.
    Without an accessor, a CALL is simulated as an eth_call from the Safe's address (a DELEGATECALL cannot be)."""
    if accessor is None:
        if tx.operation != CALL:
            raise SafeError("a DELEGATECALL proposal can only be simulated with the SimulateTxAccessor of the record")
        call = {"from": tx.safe, "to": tx.to, "value": hex(tx.value), "data": "0x" + tx.data.hex()}
        try:
            rpc.call("eth_call", [call, "pending"])
        except RpcError as error:
            reverted = error.revert_data()
            if reverted is None:
                raise SafeError(f"simulating the proposal failed: {error.message}") from None
            return safe_sentence(reverted, names)
        return None
    inner = call_data(SIMULATE, tx.to, tx.value, tx.data, tx.operation)
    data = call_data(SIMULATE_AND_REVERT, accessor, inner)
    try:
        _eth_call(rpc, tx.safe, data, block="pending")
    except RpcError as error:
        reverted = error.revert_data()
        if reverted is None:
            raise SafeError(f"simulating the proposal failed: {error.message}") from None
        return _simulation_outcome(reverted, names)
    raise SafeError(f"{tx.safe} did not simulate the call (is it a Safe v{artifacts.SAFE_VERSION}?)")


def _simulation_outcome(reverted: bytes, names: NameLookup | None) -> str | None:
    # simulateAndRevert: success (32 bytes) | length (32) | SimulateTxAccessor.simulate's return data.
    if len(reverted) < 64:
        return safe_sentence(reverted, names)
    if int.from_bytes(reverted[:32], "big") != 1:
        return safe_sentence(reverted[64:], names)
    _estimate, success, returned = abi_decode(["uint256", "bool", "bytes"], reverted[64:])
    return None if success else safe_sentence(bytes(returned), names)


def signatures_for(tx: SafeTx, proposal: Proposal, state: SafeState, executor: str | None) -> bytes:
    """The packed signatures of the proposal's current owners, plus the executor's own approval when it is an
    owner that has not signed (Safe counts msg.sender as approving). Signatures of former owners are left out
    (Safe would refuse the whole set); whether enough remain is the caller's check."""
    owners = set(state.owners)
    valid = [s for s in proposal.signatures if s.owner in owners]
    if executor is not None and executor in owners and executor not in {s.owner for s in valid}:
        valid.append(approved_by(executor))
    return pack(valid)


def counted_signers(proposal: Proposal, state: SafeState, executor: str | None = None) -> list[str]:
    signers = [s.owner for s in proposal.signatures if s.owner in state.owners]
    if executor is not None and executor in state.owners and executor not in signers:
        signers.append(executor)
    return signers


def check_executable(rpc: RpcClient, proposal: Proposal, executor: str, names: NameLookup | None = None) -> bytes:
    """The packed signatures if `executor` can execute the proposal now; SafeError saying why not otherwise
    (stale nonce, below threshold, the call would fail, the Safe refuses the signatures)."""
    tx = proposal.tx
    state = read_safe(rpc, tx.safe)
    if tx.nonce != state.nonce:
        if tx.nonce < state.nonce:
            raise SafeError(
                f"the proposal has Safe nonce {tx.nonce}, but the Safe is at nonce {state.nonce}: it was executed "
                "already or replaced by another transaction with that nonce (it cannot run twice)"
            )
        raise SafeError(
            f"the proposal has Safe nonce {tx.nonce}; the Safe's transactions {state.nonce}..{tx.nonce - 1} "
            "must be executed first"
        )
    signers = counted_signers(proposal, state, executor)
    if len(signers) < state.threshold:
        former = [s.owner for s in proposal.signatures if s.owner not in state.owners]
        note = f" ({', '.join(former)} signed but no longer own the Safe)" if former else ""
        raise SafeError(
            f"{len(signers)} of the Safe's owners approved, its threshold is {state.threshold}{note}: "
            f"{state.threshold - len(signers)} more signature(s) needed"
        )
    signatures = signatures_for(tx, proposal, state, executor)
    try:
        _eth_call(rpc, tx.safe, call_data(EXEC, *tx.exec_args(signatures)), sender=executor, block="pending")
    except RpcError as error:
        reverted = error.revert_data()
        if reverted is None:
            raise SafeError(f"checking the execution failed: {error.message}") from None
        raise SafeError(safe_sentence(reverted, names)) from None
    return signatures


def execute(
    rpc_url: str,
    proposal: Proposal,
    executor: LocalSigner,
    names: NameLookup | None = None,
    gas_price: int | None = None,
    receipt_timeout: float = 60.0,
) -> TxOutcome:
    """Checks (`check_executable`) and sends the Safe's execTransaction from `executor`; the outcome."""
    with RpcClient(rpc_url) as rpc:
        signatures = check_executable(rpc, proposal, executor.address, names)
        data = call_data(EXEC, *proposal.tx.exec_args(signatures))
        estimate = int(
            rpc.call(
                "eth_estimateGas", [{"from": executor.address, "to": proposal.tx.safe, "data": "0x" + data.hex()}]
            ),
            16,
        )
        chain_id = rpc.chain_id()
    # Safe passes on only 63/64 of the gas left to the call: a margin keeps a deep call from running short.
    request = TxRequest(executor, proposal.tx.safe, data, estimate * 3 // 2 + 100_000)
    with Submitter(rpc_url, chain_id, gas_price=gas_price, receipt_timeout=receipt_timeout) as submitter:
        (outcome,) = submitter.submit([request])
    if not outcome.status:
        raise SafeError(f"the Safe transaction failed on chain: {outcome.error} (transaction {outcome.tx_hash})")
    return outcome


# --- deploying ------------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class SafeInfrastructure:
    """Addresses of the Safe contracts deployed on a chain (deployment record key ``safe_contracts``)."""

    singleton: str
    proxy_factory: str
    fallback_handler: str
    multi_send_call_only: str
    simulate_tx_accessor: str

    def as_record(self, rpc: RpcClient) -> dict[str, Any]:
        addresses = {name: getattr(self, name) for name in artifacts.CONTRACTS}
        return {
            "version": artifacts.SAFE_VERSION,
            "package": f"{artifacts.PACKAGE}@{artifacts.SAFE_VERSION}",
            **addresses,
            "code_hashes": {name: rpc.code_hash(address) for name, address in addresses.items()},
        }

    @classmethod
    def from_record(cls, record: dict[str, Any]) -> SafeInfrastructure:
        try:
            return cls(**{name: to_checksum_address(record[name]) for name in artifacts.CONTRACTS})
        except (KeyError, TypeError, ValueError):
            raise SafeError("the deployment record's safe_contracts are incomplete") from None


def _checked(outcomes: Sequence[TxOutcome], what: str) -> list[TxOutcome]:
    for outcome in outcomes:
        if not outcome.status:
            raise SafeError(f"{what} failed: {outcome.error}")
    return list(outcomes)


def deploy_infrastructure(submitter: Submitter, deployer: LocalSigner) -> SafeInfrastructure:
    """Deploys the Safe singleton (SafeL2), proxy factory, fallback handler, MultiSendCallOnly and
    SimulateTxAccessor from the npm artifacts, after checking that their code runs on Paris."""
    artifacts.check_paris()
    names = list(artifacts.CONTRACTS)
    outcomes = _checked(
        submitter.submit([TxRequest(deployer, None, artifacts.init_code(n), DEPLOY_GAS) for n in names]),
        "deploying the Safe contracts",
    )
    addresses = {n: to_checksum_address(str(o.contract_address)) for n, o in zip(names, outcomes, strict=True)}
    for name, address in addresses.items():
        if not artifacts.is_release_code(name, submitter.rpc.code(address), address):
            raise SafeError(f"the Safe {name} at {address} does not have the code of the npm release")
    return SafeInfrastructure(**addresses)


def create_safe(
    submitter: Submitter,
    deployer: LocalSigner,
    infra: SafeInfrastructure,
    owners: Sequence[str],
    threshold: int,
    salt: int,
) -> str:
    """Creates a Safe proxy with `owners` and `threshold`; its address."""
    if not 1 <= threshold <= len(owners):
        raise SafeError(f"a threshold of {threshold} is impossible with {len(owners)} owner(s)")
    initializer = call_data(
        SETUP, list(owners), threshold, ZERO_ADDRESS, b"", infra.fallback_handler, ZERO_ADDRESS, 0, ZERO_ADDRESS
    )
    data = call_data(CREATE_PROXY, infra.singleton, initializer, salt)
    # CREATE2: the address the factory returns to an eth_call is the one the transaction creates.
    predicted = _eth_call(submitter.rpc, infra.proxy_factory, data, sender=deployer.address)
    (address,) = abi_decode(["address"], predicted)
    _checked(submitter.submit([TxRequest(deployer, infra.proxy_factory, data, 1_000_000)]), "creating a Safe")
    state = read_safe(submitter.rpc, address)
    if sorted(state.owners) != sorted(to_checksum_address(o) for o in owners) or state.threshold != threshold:
        raise SafeError(f"the Safe created at {address} does not have the owners and threshold asked for")
    return to_checksum_address(address)


__all__ = [
    "SAFE_ERRORS",
    "SafeError",
    "SafeInfrastructure",
    "SafeState",
    "call_data",
    "check_executable",
    "contract_tx_hash",
    "create_safe",
    "deploy_infrastructure",
    "execute",
    "read_safe",
    "simulate",
]

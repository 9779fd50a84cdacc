"""The operator's connection to the token: the deployed contract and a JSON-RPC client to its node (`Chain`),
the contract's own verdict on an action before it is sent (`refusal`, `transact`), and the reads every action
checks its input against (accounts, roles, programs).

Each action first asks the contract itself whether it would succeed (an ``eth_call`` from the operator's
account against the pending block): a refusal becomes `ActionError` with the revert as a sentence
(`deposit_token.chain.reverts`) and nothing is sent. The actions are `deposit_token.ops.actions` (one at a time,
through ape) and `deposit_token.ops.bulk` (from CSV files, through the fast submission path).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from eth_utils import keccak

from deposit_token.chain import reads
from deposit_token.chain.contracts import system_contract_type
from deposit_token.chain.reads import AccountState, ReadError
from deposit_token.chain.reverts import describe_revert, explain
from deposit_token.chain.rpc import RpcClient, RpcError
from deposit_token.chain.submit import Submitter, encode_call
from deposit_token.domain.inputs import InputError
from deposit_token.domain.kinds import Kind
from deposit_token.domain.rules import unpack_hours
from deposit_token.domain.sentences import NameLookup
from deposit_token.errors import DepositTokenError

if TYPE_CHECKING:  # ape is imported only by the callers that connect
    from ape.api import AccountAPI, ReceiptAPI

ROLES = ("DEFAULT_ADMIN_ROLE", "ISSUER_ROLE", "PROGRAM_MANAGER_ROLE", "VENDOR_REGISTRAR_ROLE", "COMPLIANCE_ROLE")
REQUEST_BYTES = 1_000_000  # per JSON-RPC request: Anvil refuses bodies above 2 MB


class ActionError(DepositTokenError):
    """The contract refuses the action (the message is the revert as a sentence); nothing was sent, unless
    the message says the transaction failed on-chain."""


def role_id(role: str) -> bytes:
    """The bytes32 id of an AccessControl role name."""
    if role not in ROLES:
        raise ValueError(f"unknown role {role!r}")
    return b"\0" * 32 if role == "DEFAULT_ADMIN_ROLE" else keccak(text=role)


@dataclass
class Chain:
    """The deployed token (ape contract with the merged ABI) and a raw JSON-RPC connection to its node, for
    batched reads and the submission path."""

    token: Any
    rpc: RpcClient
    rpc_url: str
    chain_id: int

    @classmethod
    def connect(cls, token: Any, rpc_url: str, chain_id: int) -> Chain:
        return cls(token=token, rpc=RpcClient(rpc_url), rpc_url=rpc_url, chain_id=int(chain_id))

    @property
    def address(self) -> str:
        return str(self.token.address)

    def names(self) -> NameLookup:
        return NameLookup.for_token(self.token)

    def submitter(self, largest_calldata: int = 0) -> Submitter:
        """A Submitter whose JSON-RPC batches stay under REQUEST_BYTES for transactions of this calldata size."""
        per_tx = 2 * largest_calldata + 400  # hex, plus the signed envelope and the JSON around it
        return Submitter(self.rpc_url, self.chain_id, batch_size=max(1, min(500, REQUEST_BYTES // per_tx)))


def revert_sentence(data: bytes, chain: Chain | None = None) -> str:
    """The sentence for raw revert data (custom error, Error(string) or Panic)."""
    sentence = describe_revert(data, chain.names() if chain is not None else None)
    if sentence is None:
        return f"the contract refused with unknown error data 0x{data.hex()}" if data else "the contract refused"
    return sentence


def refusal_of(answer: Any, chain: Chain, what: str) -> str | None:
    """None if a batched eth_call / eth_estimateGas `answer` is a result, else the sentence of its revert;
    ReadError if the node failed for another reason (`what` says what was being done)."""
    if not isinstance(answer, RpcError):
        return None
    data = answer.revert_data()
    if data is None:
        raise ReadError(f"{what}: the node answered {answer.message}")
    return revert_sentence(data, chain)


def calldata(fn: str, *args: Any) -> bytes:
    return encode_call(system_contract_type(), fn, list(args))


def refusal(chain: Chain, fn: str, args: Sequence[Any], sender: str) -> str | None:
    """None if `fn(*args)` sent by `sender` would succeed in the next block, else why the contract refuses."""
    call = {"from": sender, "to": chain.address, "data": "0x" + calldata(fn, *args).hex()}
    return refusal_of(chain.rpc.batch_results([("eth_call", [call, "pending"])])[0], chain, f"checking {fn}")


def transact(chain: Chain, fn: str, args: Sequence[Any], account: AccountAPI) -> ReceiptAPI:
    """Checks `fn(*args)` with an eth_call, then sends it through ape from `account`; returns ape's receipt.
    Raises ActionError with the sentence if the contract refuses (before sending, or on-chain). An account with
    `propose_call` (a Safe's `SafeProposer`) gets the checked call instead, and ends the action itself."""
    reason = refusal(chain, fn, args, str(account.address))
    if reason is not None:
        raise ActionError(reason)
    propose = getattr(account, "propose_call", None)
    if propose is not None:  # a Safe's proposer (ops.multisig.propose): written for its owners, not sent
        propose(chain, fn, args)
    from ape.exceptions import ApeException
    from web3.exceptions import Web3Exception

    try:
        return getattr(chain.token, fn)(*args, sender=account)
    except (ApeException, Web3Exception) as err:
        raise ActionError(explain(err, chain.token)) from None


def account_state(chain: Chain, address: str) -> AccountState:
    return reads.accounts_of(chain.rpc, chain.address, [address])[0]


def has_role(chain: Chain, role: str, address: str) -> bool:
    return bool(chain.token.hasRole(role_id(role), address))


def require_kind(chain: Chain, address: str, kind: int, what: str) -> AccountState:
    """The account of `address`, which must be of `kind` (else InputError naming what it is)."""
    state = account_state(chain, address)
    if state.kind == Kind.NONE:
        raise InputError(f"unknown {what}: {address} is not registered")
    if state.kind != kind:
        raise InputError(f"{address} is a {state.kind_label}, not a {what}")
    return state


@dataclass(frozen=True)
class ProgramInfo:
    id: int
    name: str
    treasury: str
    start: int
    end: int
    utc_offset_minutes: int
    paused: bool  # paused on its own (setProgramPaused); the rules word's `halted` bit
    token_paused: bool  # the token-wide pause (`paused()`), a flag of its own that every movement reads
    version: int
    categories: tuple[int, ...]
    hours: tuple[tuple[int, int], ...]
    per_payment_limit: int
    evidence_threshold: int

    @property
    def label(self) -> str:
        return f"'{self.name}' (#{self.id})"

    @property
    def halted(self) -> bool:
        """No payment, return or allocation of the program can happen: it or the whole token is paused."""
        return self.paused or self.token_paused


def program_count(chain: Chain) -> int:
    return int(chain.token.programCount())


def program_info(chain: Chain, program_id: int) -> ProgramInfo:
    """A program's rules and configuration; InputError if there is no such program."""
    count = program_count(chain)
    if not 1 <= program_id <= count:
        known = f"1..{count}" if count else "none yet"
        raise InputError(f"there is no program #{program_id} (programs: {known})")
    rules = chain.token.programRules(program_id)
    config = chain.token.programConfig(program_id)
    mask = int(rules.categories)
    return ProgramInfo(
        id=program_id,
        name=str(chain.token.programName(program_id)),
        treasury=str(config.treasury),
        start=int(rules.start),
        end=int(rules.end),
        utc_offset_minutes=int(rules.utcOffsetMinutes),
        # `halted` is the program's own pause (= programPaused); the token-wide pause is not mirrored into it.
        paused=bool(rules.halted),
        token_paused=bool(chain.token.paused()),
        version=int(rules.version),
        categories=tuple(c for c in range(64) if mask >> c & 1),
        hours=tuple(unpack_hours(int(rules.openingHours))),
        per_payment_limit=int(config.perPaymentLimit),
        evidence_threshold=int(config.evidenceThreshold),
    )


def list_programs(chain: Chain) -> list[ProgramInfo]:
    return [program_info(chain, i) for i in range(1, program_count(chain) + 1)]


def resolve_program(chain: Chain, text: str | int) -> ProgramInfo:
    """A program by id (``3`` or ``#3``) or by its exact name."""
    value = str(text).strip().lstrip("#")
    if value.isdigit():
        return program_info(chain, int(value))
    matches = [p for p in list_programs(chain) if p.name == str(text).strip()]
    if not matches:
        raise InputError(f"there is no program named {str(text).strip()!r}")
    if len(matches) > 1:
        raise InputError(
            f"several programs are named {str(text).strip()!r}: use the id ({', '.join(str(p.id) for p in matches)})"
        )
    return matches[0]


def latest_timestamp(chain: Chain) -> int:
    return reads.head(chain.rpc)[1]

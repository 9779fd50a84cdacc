"""Single treasury actions: issuance, treasuries, programs, vendors, enrolment, allocation and compliance.

Each one checks its input against the chain (`deposit_token.ops.context`), asks the contract whether it would
accept, and is then sent through ape from the operator's keystore account; a refusal is `ActionError` with the
revert as a sentence. Actions from CSV files are `deposit_token.ops.bulk`; the CSV disbursal (tens of thousands
of allocations, crash-safe) is `deposit_token.ops.disburse`.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from deposit_token.domain.categories import Category
from deposit_token.domain.inputs import InputError
from deposit_token.domain.kinds import Kind
from deposit_token.domain.rules import ProgramSpec
from deposit_token.ops.context import (
    ActionError,
    Chain,
    account_state,
    program_count,
    program_info,
    require_kind,
    transact,
)
from deposit_token.ops.program_spec import SpecError, spec_chain_problems, spec_problems

if TYPE_CHECKING:  # ape is imported only by the callers that connect
    from ape.api import AccountAPI, ReceiptAPI


def issue(chain: Chain, issuer: AccountAPI, treasury: str, amount: int) -> ReceiptAPI:
    """Mints `amount` into a registered treasury, within the issuer's allowance."""
    require_kind(chain, treasury, Kind.TREASURY, "treasury")
    return transact(chain, "mint", (treasury, amount), issuer)


def set_allowance(chain: Chain, admin: AccountAPI, issuer: str, amount: int) -> ReceiptAPI:
    return transact(chain, "setMintAllowance", (issuer, amount), admin)


def register_treasury(chain: Chain, admin: AccountAPI, treasury: str) -> ReceiptAPI:
    return transact(chain, "registerTreasury", (treasury,), admin)


def create_program(chain: Chain, manager: AccountAPI, spec: ProgramSpec) -> tuple[int, ReceiptAPI]:
    """(new program id, receipt)."""
    problems = spec_problems(spec) + spec_chain_problems(chain, spec)
    if problems:
        raise SpecError(problems)
    receipt = transact(chain, "createProgram", (spec.as_params(),), manager)
    configured = [e for e in receipt.events if e.event_name == "ProgramConfigured"]
    return (int(configured[0].programId) if configured else program_count(chain)), receipt


def update_program(chain: Chain, manager: AccountAPI, program_id: int, spec: ProgramSpec) -> ReceiptAPI:
    program_info(chain, program_id)
    problems = spec_problems(spec) + spec_chain_problems(chain, spec)
    if problems:
        raise SpecError(problems)
    return transact(chain, "updateProgram", (program_id, spec.as_params()), manager)


def register_vendor(chain: Chain, registrar: AccountAPI, vendor: str, category: Category, name: str) -> ReceiptAPI:
    if not name.strip():
        raise InputError("the vendor's name is empty")
    return transact(chain, "registerVendor", (vendor, int(category), name.strip()), registrar)


def set_vendor_suspended(chain: Chain, officer: AccountAPI, vendor: str, suspended: bool, reason: str) -> ReceiptAPI:
    require_kind(chain, vendor, Kind.VENDOR, "vendor")
    return transact(chain, "suspendVendor" if suspended else "reactivateVendor", (vendor, reason), officer)


def enrol_one(chain: Chain, manager: AccountAPI, spender: str, program_id: int, department: bytes) -> ReceiptAPI:
    program_info(chain, program_id)
    return transact(chain, "enrol", ([spender], program_id, [department]), manager)


def allocate_one(
    chain: Chain, manager: AccountAPI, ref: bytes, program_id: int, spender: str, amount: int
) -> ReceiptAPI:
    program_info(chain, program_id)
    if bool(chain.token.batchApplied(ref)):
        raise ActionError(f"allocation reference 0x{ref.hex()} has already been applied; nobody is paid twice")
    return transact(chain, "allocate", (ref, program_id, [spender], [amount]), manager)


def set_frozen(chain: Chain, officer: AccountAPI, account: str, frozen: bool, reason: str) -> ReceiptAPI:
    state = account_state(chain, account)
    if state.kind == Kind.NONE:
        raise InputError(f"{account} is not registered (not a treasury, spender or vendor)")
    return transact(chain, "freeze" if frozen else "unfreeze", (account, reason), officer)


def clawback(chain: Chain, officer: AccountAPI, spender: str, amount: int, reason: str) -> ReceiptAPI:
    if not reason.strip():
        raise InputError("a clawback needs a reason (it is recorded on-chain)")
    require_kind(chain, spender, Kind.SPENDER, "spender")
    return transact(chain, "clawback", (spender, amount, reason.strip()), officer)


def set_paused(chain: Chain, officer: AccountAPI, paused: bool, program_id: int | None = None) -> ReceiptAPI:
    if program_id is None:
        return transact(chain, "pause" if paused else "unpause", (), officer)
    program_info(chain, program_id)
    return transact(chain, "setProgramPaused", (program_id, paused), officer)

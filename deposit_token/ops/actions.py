"""Single treasury actions: issuance, treasuries, programs, vendors, enrolment, allocation and compliance.

Each one checks its input against the chain (`deposit_token.ops.context`), asks the contract whether it would
accept, and is then sent through ape from the operator's keystore account; a refusal is `ActionError` with the
revert as a sentence. Actions from CSV files are `deposit_token.ops.bulk`; the CSV disbursal (tens of thousands
of allocations, crash-safe) is `deposit_token.ops.disburse`.
"""

from __future__ import annotations

from typing import Any

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


def issue(chain: Chain, issuer: Any, treasury: str, amount: int):
    """Mints `amount` into a registered treasury, within the issuer's allowance."""
    require_kind(chain, treasury, Kind.TREASURY, "treasury")
    return transact(chain, "mint", (treasury, amount), issuer)


def set_allowance(chain: Chain, admin: Any, issuer: str, amount: int):
    return transact(chain, "setMintAllowance", (issuer, amount), admin)


def register_treasury(chain: Chain, admin: Any, treasury: str):
    return transact(chain, "registerTreasury", (treasury,), admin)


def create_program(chain: Chain, manager: Any, spec: ProgramSpec) -> tuple[int, Any]:
    """(new program id, receipt)."""
    problems = spec_problems(spec) + spec_chain_problems(chain, spec)
    if problems:
        raise SpecError(problems)
    receipt = transact(chain, "createProgram", (spec.as_params(),), manager)
    configured = [e for e in receipt.events if e.event_name == "ProgramConfigured"]
    return (int(configured[0].programId) if configured else program_count(chain)), receipt


def update_program(chain: Chain, manager: Any, program_id: int, spec: ProgramSpec):
    program_info(chain, program_id)
    problems = spec_problems(spec) + spec_chain_problems(chain, spec)
    if problems:
        raise SpecError(problems)
    return transact(chain, "updateProgram", (program_id, spec.as_params()), manager)


def register_vendor(chain: Chain, registrar: Any, vendor: str, category: Category, name: str):
    if not name.strip():
        raise InputError("the vendor's name is empty")
    return transact(chain, "registerVendor", (vendor, int(category), name.strip()), registrar)


def set_vendor_suspended(chain: Chain, officer: Any, vendor: str, suspended: bool, reason: str):
    require_kind(chain, vendor, Kind.VENDOR, "vendor")
    return transact(chain, "suspendVendor" if suspended else "reactivateVendor", (vendor, reason), officer)


def enrol_one(chain: Chain, manager: Any, spender: str, program_id: int, department: bytes):
    program_info(chain, program_id)
    return transact(chain, "enrol", ([spender], program_id, [department]), manager)


def allocate_one(chain: Chain, manager: Any, ref: bytes, program_id: int, spender: str, amount: int):
    program_info(chain, program_id)
    if bool(chain.token.batchApplied(ref)):
        raise ActionError(f"allocation reference 0x{ref.hex()} has already been applied; nobody is paid twice")
    return transact(chain, "allocate", (ref, program_id, [spender], [amount]), manager)


def set_frozen(chain: Chain, officer: Any, account: str, frozen: bool, reason: str):
    state = account_state(chain, account)
    if state.kind == Kind.NONE:
        raise InputError(f"{account} is not registered (not a treasury, spender or vendor)")
    return transact(chain, "freeze" if frozen else "unfreeze", (account, reason), officer)


def clawback(chain: Chain, officer: Any, spender: str, amount: int, reason: str):
    if not reason.strip():
        raise InputError("a clawback needs a reason (it is recorded on-chain)")
    require_kind(chain, spender, Kind.SPENDER, "spender")
    return transact(chain, "clawback", (spender, amount, reason.strip()), officer)


def set_paused(chain: Chain, officer: Any, paused: bool, program_id: int | None = None):
    if program_id is None:
        return transact(chain, "pause" if paused else "unpause", (), officer)
    program_info(chain, program_id)
    return transact(chain, "setProgramPaused", (program_id, paused), officer)

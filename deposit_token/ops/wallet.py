"""An official's view of their wallet and the pre-check that explains a payment before it is sent."""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from web3.exceptions import ContractCustomError

from deposit_token.chain.contracts import system_contract_type
from deposit_token.chain.reverts import decode_revert
from deposit_token.domain.categories import category_name
from deposit_token.domain.kinds import Kind
from deposit_token.domain.rules import unpack_hours
from deposit_token.domain.sentences import NameLookup, describe

if TYPE_CHECKING:  # ape is imported only by the callers that connect
    from ape.contracts import ContractInstance


@dataclass(frozen=True)
class CategoryLimit:
    category: str
    spent: int
    cap: int

    @property
    def left(self) -> int:
        return max(self.cap - self.spent, 0)


@dataclass(frozen=True)
class WalletView:
    address: str
    balance: int
    frozen: bool
    program_id: int
    program_name: str
    department: str
    start: int
    end: int
    utc_offset_minutes: int
    hours: list[tuple[int, int]]
    period: int
    per_payment_limit: int
    evidence_threshold: int
    limits: list[CategoryLimit]


def wallet_view(token: ContractInstance, spender: str) -> WalletView:
    """Balance, program, validity, hours and the cap left per category this period (program time zone)."""
    account = token.accountOf(spender)
    if account.kind != Kind.SPENDER:
        raise ValueError(f"{spender} is not an enrolled spender")
    rules = token.programRules(account.programId)
    config = token.programConfig(account.programId)
    limits = []
    period = 0
    for category in range(1, 64):
        if not rules.categories >> category & 1:
            continue
        period, spent, cap = token.spendingThisPeriod(spender, category, block_id="pending")
        limits.append(CategoryLimit(category_name(category), spent, cap))
    department = bytes(token.departmentOf(spender)).rstrip(b"\0").decode("utf-8", "replace")
    return WalletView(
        address=spender,
        balance=account.balance,
        frozen=account.frozen,
        program_id=account.programId,
        program_name=token.programName(account.programId),
        department=department,
        start=rules.start,
        end=rules.end,
        utc_offset_minutes=rules.utcOffsetMinutes,
        hours=unpack_hours(rules.openingHours),
        period=period,
        per_payment_limit=config.perPaymentLimit,
        evidence_threshold=config.evidenceThreshold,
        limits=limits,
    )


def why_not(token: ContractInstance, function: str, args: tuple[Any, ...], sender: str) -> str | None:
    """None if `function(*args)` from `sender` would succeed in the next block, else the sentence naming the
    rule it breaks (the call runs on the contract itself, so the answer is the contract's, not a guess)."""
    web3 = token.provider.web3 if hasattr(token, "provider") else None
    if web3 is None:
        from ape import chain

        web3 = chain.provider.web3
    data = getattr(token, function).encode_input(*args)
    try:
        web3.eth.call({"from": sender, "to": token.address, "data": data}, "pending")
    except ContractCustomError as error:
        abis = [item for item in system_contract_type().abi if item.type == "error"]
        decoded = decode_revert(bytes.fromhex(str(error.data)[2:]), abis)
        if decoded is None:
            return f"the contract refused (revert data {error.data})"
        return describe(*decoded, NameLookup.for_token(token))
    return None

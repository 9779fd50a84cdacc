"""Reverts of the deposit token as sentences that name the rule and the values that broke it.

Every custom error of the token, its admin module and the OpenZeppelin parts they use has a sentence here;
`tests/contracts/test_errors.py` checks that none is missing. Decoding revert data into an error name and
its inputs is `deposit_token.chain.reverts`. Program names and categories are looked up through an
optional `NameLookup` so a sentence can say "program 'BP-2026-MOEF'" rather than "program 1".
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any, Protocol

from eth_utils import keccak

from deposit_token.domain import display
from deposit_token.domain.categories import category_name
from deposit_token.domain.display import krw
from deposit_token.domain.kinds import kind_phrase
from deposit_token.domain.receipts import receipt_text
from deposit_token.domain.rules import WEEKDAYS

ROLE_NAMES = {
    "0x" + "00" * 32: "DEFAULT_ADMIN_ROLE",
    **{
        "0x" + keccak(text=name).hex(): name
        for name in ("ISSUER_ROLE", "PROGRAM_MANAGER_ROLE", "VENDOR_REGISTRAR_ROLE", "COMPLIANCE_ROLE")
    },
}


class ProgramNameSource(Protocol):
    """What NameLookup.for_token reads: the token contract's `programName(uint256)` view (an ape contract)."""

    def programName(self, program_id: int, /) -> str: ...


@dataclass
class NameLookup:
    """How to name things in sentences; defaults show raw ids."""

    program: Callable[[int], str] = lambda program_id: f"#{program_id}"

    @classmethod
    def for_token(cls, token: ProgramNameSource) -> NameLookup:
        """Names programs by reading `programName` from the chain (errors are rare; no cache needed)."""

        def program(program_id: int) -> str:
            try:
                name = token.programName(program_id)
            except Exception:  # noqa: BLE001 - a lookup failure must not hide the original error
                return f"#{program_id}"
            return f"'{name}'" if name else f"#{program_id}"

        return cls(program=program)


def _role(value: Any) -> str:
    key = value.hex() if isinstance(value, bytes) else str(value)
    key = key if key.startswith("0x") else "0x" + key
    return ROLE_NAMES.get(key.lower(), key)


def _moment(value: int) -> str:
    # Reverts do not carry the program's time zone; the pilot's programs run on KST (display's default).
    return display.moment(value)


Sentence = Callable[[Mapping[str, Any], NameLookup], str]

SENTENCES: dict[str, Sentence] = {
    "TokenPaused": lambda a, n: "the token is paused by compliance; no tokens can move until it is unpaused",
    "ProgramHalted": lambda a, n: f"program {n.program(a['programId'])} is paused by compliance",
    "NotRegistered": lambda a, n: f"{a['account']} is not a registered treasury, spender or vendor",
    "TransferPathNotAllowed": lambda a, n: (
        f"tokens cannot move from {kind_phrase(a['fromKind'], 'an account')} ({a['from']}) to "
        f"{kind_phrase(a['toKind'], 'an account')} ({a['to']}): only treasury to its spenders, spender to "
        "vendor, and spender back to its treasury are allowed"
    ),
    "AccountFrozen": lambda a, n: f"wallet {a['account']} is frozen by compliance",
    "VendorIsSuspended": lambda a, n: f"vendor {a['vendor']} is suspended and cannot be paid",
    "ProgramNotStarted": lambda a, n: (
        f"program {n.program(a['programId'])} starts at {_moment(a['start'])}; it cannot be spent yet"
    ),
    "ProgramEnded": lambda a, n: (
        f"program {n.program(a['programId'])} ended at {_moment(a['end'])}; its budget has lapsed"
    ),
    "OutsideAllowedHours": lambda a, n: (
        f"program {n.program(a['programId'])} does not allow payments on "
        f"{WEEKDAYS[a['weekday']] if a['weekday'] < 7 else a['weekday']} at {a['hour']:02d}:00-{a['hour']:02d}:59 "
        "(program time zone)"
    ),
    "CategoryNotAllowed": lambda a, n: (
        f"vendor {a['vendor']} is in category {category_name(a['category'])}, which program "
        f"{n.program(a['programId'])} does not allow"
    ),
    "PaymentLimitExceeded": lambda a, n: (
        f"{krw(a['amount'])} is above the per-payment limit of {krw(a['limit'])} in program {n.program(a['programId'])}"
    ),
    "CategoryCapExceeded": lambda a, n: (
        f"{krw(a['amount'])} is above what spender {a['spender']} has left in category "
        f"{category_name(a['category'])} for {display.period(a['period'])}: {krw(a['capLeft'])}"
    ),
    "EvidenceRequired": lambda a, n: (
        f"a payment of {krw(a['amount'])} is at or above {krw(a['threshold'])} and must carry the hash of "
        "the evidence document (who attended, why)"
    ),
    "ReceiptAlreadyUsed": lambda a, n: (
        f"receipt {receipt_text(a['receiptId'])} has already been paid to vendor {a['vendor']} (one invoice, one "
        "payment)"
    ),
    "InsufficientBalance": lambda a, n: f"{a['account']} has {krw(a['balance'])}, {krw(a['needed'])} needed",
    "ERC20InsufficientAllowance": lambda a, n: (
        f"{a['spender']} may move {krw(a['allowance'])} on the holder's behalf, {krw(a['needed'])} needed"
    ),
    "ProgramVersionExhausted": lambda a, n: (
        f"program {n.program(a['programId'])} has been updated the most times its rules version can count; "
        "create a new program instead"
    ),
    "ZeroAmount": lambda a, n: "the amount must be greater than zero",
    "NotProgramTreasury": lambda a, n: f"{a['account']} is not the treasury of program {n.program(a['programId'])}",
    "CallerNotPayee": lambda a, n: (
        f"only the vendor named in the authorization ({a['vendor']}) can submit it, not {a['caller']}"
    ),
    "AuthorizationNotYetValid": lambda a, n: (
        f"the payment authorization is valid only after {_moment(a['validAfter'])}"
    ),
    "AuthorizationExpired": lambda a, n: f"the payment authorization expired at {_moment(a['validBefore'])}",
    "AuthorizationAlreadyUsed": lambda a, n: (
        f"authorization {_hex(a['nonce'])} of {a['payer']} has already been used or cancelled"
    ),
    "InvalidAuthorizationSigner": lambda a, n: (
        f"the authorization was signed by {a['signer']}, not by the payer {a['payer']} (or its terms were changed)"
    ),
    "ZeroAddress": lambda a, n: "the zero address is not allowed here",
    "AmountTooLarge": lambda a, n: f"{krw(a['amount'])} would take the total supply above 2^96 - 1",
    "MintAllowanceExceeded": lambda a, n: (
        f"issuer {a['issuer']} may mint {krw(a['allowance'])} more, not {krw(a['amount'])}"
    ),
    "AlreadyRegistered": lambda a, n: f"{a['account']} is already registered as {kind_phrase(a['kind'])}",
    "WrongKind": lambda a, n: f"{a['account']} is {kind_phrase(a['actual'])}, not {kind_phrase(a['expected'])}",
    "UnknownProgram": lambda a, n: f"there is no program #{a['programId']}",
    "SpenderInOtherProgram": lambda a, n: (
        f"spender {a['spender']} is enrolled in program {n.program(a['enrolledIn'])}, not {n.program(a['requested'])}"
    ),
    "InvalidCategory": lambda a, n: f"merchant category {a['category']} is not between 1 and 63",
    "InvalidHours": lambda a, n: (
        f"opening hours {a['opening']}-{a['closing']} on "
        f"{WEEKDAYS[a['weekday']] if a['weekday'] < 7 else 'an 8th day'} are not a window within 0-24"
    ),
    "InvalidWindow": lambda a, n: f"the validity window starts ({a['start']}) at or after it ends ({a['end']})",
    "InvalidUtcOffset": lambda a, n: f"UTC offset {a['utcOffsetMinutes']} minutes is outside -720..+840",
    "InvalidEvidenceThreshold": lambda a, n: f"evidence threshold {krw(a['threshold'])} is not valid",
    "LengthMismatch": lambda a, n: f"the lists have different lengths ({a['expected']} and {a['actual']})",
    "EmptyBatch": lambda a, n: "the batch is empty",
    "BatchAlreadyApplied": lambda a, n: (
        f"allocation batch {_hex(a['batchRef'])} has already been applied; nobody is paid twice"
    ),
    "MissingReference": lambda a, n: "a non-zero reference is required",
    "SettlementReferenceUsed": lambda a, n: (
        f"vendor {a['vendor']} has already redeemed against settlement reference {_hex(a['settlementRef'])}: "
        "a payout instruction is redeemed once"
    ),
    "ProgramNotEnded": lambda a, n: (
        f"program {n.program(a['programId'])} runs until {_moment(a['end'])}; balances can be swept only after"
    ),
    "TooManyPrograms": lambda a, n: "the token already has 65,535 programs",
    "AdminModuleMismatch": lambda a, n: f"{a['module']} is not an admin module built for this token",
    "ERC2612ExpiredSignature": lambda a, n: f"the permit expired at {_moment(a['deadline'])}",
    "ERC2612InvalidSigner": lambda a, n: f"the permit was signed by {a['signer']}, not by the owner {a['owner']}",
    # OpenZeppelin
    "AccessControlUnauthorizedAccount": lambda a, n: f"{a['account']} does not hold {_role(a['neededRole'])}",
    "AccessControlBadConfirmation": lambda a, n: "renouncing a role must be confirmed with the caller's own address",
    "AccessControlEnforcedDefaultAdminRules": lambda a, n: (
        "the admin role changes hands only by the two-step transfer (begin, wait, accept)"
    ),
    "AccessControlEnforcedDefaultAdminDelay": lambda a, n: (
        f"the admin transfer can be accepted only after {_moment(a['schedule'])}"
    ),
    "AccessControlInvalidDefaultAdmin": lambda a, n: f"{a['defaultAdmin']} cannot become the admin",
    "InvalidInitialization": lambda a, n: "the token's admin was already initialised",
    "NotInitializing": lambda a, n: "this can only run while the token is being initialised",
    "ECDSAInvalidSignature": lambda a, n: "the signature is not valid",
    "ECDSAInvalidSignatureLength": lambda a, n: f"the signature has {a['length']} bytes, not 65",
    "ECDSAInvalidSignatureS": lambda a, n: "the signature's s value is not in the lower half order",
    "InvalidAccountNonce": lambda a, n: f"nonce {a['currentNonce']} of {a['account']} was expected",
    "SafeCastOverflowedUintDowncast": lambda a, n: f"{a['value']} does not fit in {a['bits']} bits",
    "AddressEmptyCode": lambda a, n: f"{a['target']} has no code",
    "FailedCall": lambda a, n: "an internal call failed",
    "InvalidShortString": lambda a, n: "the EIP-712 name is not a valid short string",
    "StringTooLong": lambda a, n: f"the text {a['str']!r} is longer than 31 bytes",
}


def _hex(value: Any) -> str:
    return "0x" + value.hex() if isinstance(value, bytes) else str(value)


def _checksummed(value: Any) -> Any:
    return display.address(value) if isinstance(value, str) and _ADDRESS.match(value) else value


_ADDRESS = re.compile(r"^0x[0-9a-fA-F]{40}$")


def describe(name: str, inputs: Mapping[str, Any], names: NameLookup | None = None) -> str:
    """The sentence for custom error `name` with decoded `inputs`."""
    sentence = SENTENCES.get(name)
    inputs = {key: _checksummed(value) for key, value in inputs.items()}  # decoders give lower-case hex
    if sentence is None:
        args = ", ".join(f"{k}={_hex(v)}" for k, v in inputs.items())
        return f"the contract refused with {name}({args})"
    return sentence(inputs, names or NameLookup())

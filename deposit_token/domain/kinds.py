"""The contracts' small numbers with names: account kinds and ERC-1404 restriction codes, in one place.

``Kind`` is ``IDepositTokenTypes.Kind`` (what ``accountOf(..).kind`` and the ``WrongKind`` /
``TransferPathNotAllowed`` error arguments hold); ``Restriction`` is the constants of
``contracts/libraries/Restrictions.sol`` (what ``detectTransferRestriction`` / ``detectPaymentRestriction``
return). Both are ``IntEnum``: they compare equal to the raw numbers the chain returns, so callers need no
conversion. tests/unit/test_kinds.py parses the Solidity and fails if either side changes alone.
"""

from __future__ import annotations

from enum import IntEnum
from typing import TypeVar

E = TypeVar("E", bound=IntEnum)


class Kind(IntEnum):
    """What an account is registered as (the Solidity enum's order)."""

    NONE = 0
    TREASURY = 1
    SPENDER = 2
    VENDOR = 3

    @property
    def label(self) -> str:
        """A bare noun for lists and messages: "unregistered", "treasury", ..."""
        return "unregistered" if self is Kind.NONE else self.name.lower()

    @property
    def phrase(self) -> str:
        """The noun with its article, for sentences: "an unregistered address", "a treasury", ..."""
        return "an unregistered address" if self is Kind.NONE else f"a {self.label}"


class Restriction(IntEnum):
    """An ERC-1404 restriction code (``Restrictions.sol``); ``OK`` means the transfer or payment may go."""

    OK = 0
    PAUSED = 1
    SENDER_NOT_REGISTERED = 2
    RECIPIENT_NOT_REGISTERED = 3
    PATH_NOT_ALLOWED = 4
    SENDER_FROZEN = 5
    RECIPIENT_FROZEN = 6
    VENDOR_SUSPENDED = 7
    PROGRAM_NOT_STARTED = 8
    PROGRAM_ENDED = 9
    OUTSIDE_HOURS = 10
    CATEGORY_NOT_ALLOWED = 11
    OVER_PAYMENT_LIMIT = 12
    OVER_CATEGORY_CAP = 13
    EVIDENCE_REQUIRED = 14
    RECEIPT_USED = 15
    INSUFFICIENT_BALANCE = 16
    ZERO_AMOUNT = 17
    NOT_PROGRAM_TREASURY = 18

    @property
    def label(self) -> str:
        """A short reason for tallies and tables ("over category cap"); the contract's
        ``messageForTransferRestriction`` has the full sentence."""
        return _RESTRICTION_LABELS[self]


# Worded for payments (the sender is the payer, the recipient the vendor): where these labels are shown.
_RESTRICTION_LABELS: dict[Restriction, str] = {
    Restriction.OK: "accepted",
    Restriction.PAUSED: "paused",
    Restriction.SENDER_NOT_REGISTERED: "sender not registered",
    Restriction.RECIPIENT_NOT_REGISTERED: "recipient not registered",
    Restriction.PATH_NOT_ALLOWED: "path not allowed",
    Restriction.SENDER_FROZEN: "payer frozen",
    Restriction.RECIPIENT_FROZEN: "vendor frozen",
    Restriction.VENDOR_SUSPENDED: "vendor suspended",
    Restriction.PROGRAM_NOT_STARTED: "program not started",
    Restriction.PROGRAM_ENDED: "program ended",
    Restriction.OUTSIDE_HOURS: "outside allowed hours",
    Restriction.CATEGORY_NOT_ALLOWED: "category not allowed",
    Restriction.OVER_PAYMENT_LIMIT: "over per-payment limit",
    Restriction.OVER_CATEGORY_CAP: "over category cap",
    Restriction.EVIDENCE_REQUIRED: "evidence missing",
    Restriction.RECEIPT_USED: "receipt already paid",
    Restriction.INSUFFICIENT_BALANCE: "balance too low",
    Restriction.ZERO_AMOUNT: "zero amount",
    Restriction.NOT_PROGRAM_TREASURY: "not the program's treasury",
}


def _member(enum: type[E], value: int) -> E | None:
    """The member of `enum` for a raw number from the chain, or None when the enum has no such value."""
    try:
        return enum(value)
    except ValueError:
        return None


def kind_label(value: int) -> str:
    """`Kind.label` of a raw number; a number the enum does not know is shown as "kind N"."""
    kind = _member(Kind, value)
    return kind.label if kind is not None else f"kind {value}"


def kind_phrase(value: int, unknown: str | None = None) -> str:
    """`Kind.phrase` of a raw number; an unknown one is `unknown` (default: the number)."""
    kind = _member(Kind, value)
    if kind is not None:
        return kind.phrase
    return unknown if unknown is not None else str(value)


def restriction_label(value: int) -> str:
    """`Restriction.label` of a raw code; an unknown code is shown as its number."""
    restriction = _member(Restriction, value)
    return restriction.label if restriction is not None else str(value)

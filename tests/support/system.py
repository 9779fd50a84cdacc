"""The test chain's fixed world: dates (KST, 2030), the people and the token system the ``system`` fixture of
tests/conftest.py deploys, and helpers to move the chain's clock and to pay."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta, timezone

KST = timezone(timedelta(hours=9))
PROGRAM_START = datetime(2030, 1, 1, tzinfo=KST)
PROGRAM_END = datetime(2030, 7, 1, tzinfo=KST)
MONDAY_10 = datetime(2030, 1, 7, 10, 0, tzinfo=KST)  # a working Monday morning in the program
ROLES = ("ISSUER_ROLE", "PROGRAM_MANAGER_ROLE", "VENDOR_REGISTRAR_ROLE", "COMPLIANCE_ROLE")


def ts(moment: datetime) -> int:
    return int(moment.timestamp())


@dataclass
class People:
    admin: object
    issuer: object
    manager: object
    registrar: object
    compliance: object
    treasury: object
    treasury2: object
    outsider: object
    spenders: list
    ev_recipients: list
    restaurant: object
    cafe: object
    bar: object
    installer: object
    supplier: object


@dataclass
class System:
    token: object
    people: People
    bp: int  # business-promotion program id
    ev: int  # EV-charger subsidy program id


def set_time(chain, moment: datetime | int) -> None:
    """The next block is mined at `moment`."""
    chain.pending_timestamp = moment if isinstance(moment, int) else ts(moment)


ZERO = b"\0" * 32


def b32(value: int | str | bytes) -> bytes:
    """A bytes32 from an int (big-endian), text (left-aligned) or bytes."""
    if isinstance(value, int):
        return value.to_bytes(32, "big")
    raw = value.encode() if isinstance(value, str) else value
    return raw.ljust(32, b"\0")


def pay(system: System, spender, vendor, amount: int, receipt: int | bytes = 0, evidence: bytes = ZERO):
    """`pay` with the receipt id given as an invoice number (0 = none)."""
    receipt_id = b32(receipt) if isinstance(receipt, int) else receipt
    return system.token.pay(vendor, amount, receipt_id, evidence, sender=spender)

"""How values are shown to people: one rule per kind of value, used by every command.

Addresses are EIP-55 checksummed, amounts carry thousands separators and their unit, moments are shown in a
program's own time zone (KST unless told otherwise) with the zone's name, calendar periods as ``YYYY-MM``,
and dates as dates, never unix seconds.
"""

from __future__ import annotations

from datetime import datetime, timedelta, timezone

from eth_utils import to_checksum_address

from deposit_token.domain.rules import KST_OFFSET_MINUTES

_ZONE_NAMES = {KST_OFFSET_MINUTES: "KST", 0: "UTC"}


def address(value: str | bytes) -> str:
    """The EIP-55 checksummed form of an address given as hex text or 20 bytes."""
    return to_checksum_address(value)


def krw(amount: int) -> str:
    """``1,234,000 KRW`` (the token has 0 decimals: 1 token = 1 KRW)."""
    return f"{int(amount):,} KRW"


def zone(offset_minutes: int = KST_OFFSET_MINUTES) -> timezone:
    """The fixed-offset time zone of a program (Korea has no daylight saving)."""
    return timezone(timedelta(minutes=offset_minutes))


def zone_name(offset_minutes: int = KST_OFFSET_MINUTES) -> str:
    """``KST`` / ``UTC``, else ``UTC+05:30`` style."""
    if offset_minutes in _ZONE_NAMES:
        return _ZONE_NAMES[offset_minutes]
    sign = "+" if offset_minutes >= 0 else "-"
    hours, minutes = divmod(abs(offset_minutes), 60)
    return f"UTC{sign}{hours:02d}:{minutes:02d}"


def moment(timestamp: int, offset_minutes: int = KST_OFFSET_MINUTES) -> str:
    """``2026-12-01 09:00 KST`` for unix seconds, in the given UTC offset (KST by default)."""
    local = datetime.fromtimestamp(int(timestamp), zone(offset_minutes))
    return f"{local:%Y-%m-%d %H:%M} {zone_name(offset_minutes)}"


def day(timestamp: int, offset_minutes: int = KST_OFFSET_MINUTES) -> str:
    """``2026-12-01``: the local calendar date of unix seconds."""
    return f"{datetime.fromtimestamp(int(timestamp), zone(offset_minutes)):%Y-%m-%d}"


def period(yyyymm: int) -> str:
    """``2026-12`` for the on-chain calendar period ``202612``."""
    return f"{int(yyyymm) // 100:04d}-{int(yyyymm) % 100:02d}"

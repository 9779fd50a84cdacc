"""Program rules as the contract stores them: hour windows per weekday, category masks, time zones."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta

KST_OFFSET_MINUTES = 540
NO_CAP = 2**48 - 1  # caps and spending are uint48 on-chain

# The contract's ProgramParams struct, in field order: name, treasury, start, end, utcOffsetMinutes, packed hours,
# per-payment limit, evidence threshold, categories, caps.
ProgramParams = tuple[str, str, int, int, int, int, int, int, list[int], list[int]]
MAX_AMOUNT_40 = 2**40 - 1  # per-payment limit and evidence threshold are uint40 on-chain
WEEKDAYS = ("Mon", "Tue", "Wed", "Thu", "Fri", "Sat", "Sun")

HourWindow = tuple[int, int]  # [opening, closing) in local hours, closing <= 24; (0, 0) = closed


def pack_hours(windows: Sequence[HourWindow]) -> int:
    """Packs seven [opening, closing) windows (Monday first) into the contract's 70-bit field."""
    if len(windows) != 7:
        raise ValueError(f"need 7 hour windows (Monday to Sunday), got {len(windows)}")
    packed = 0
    for day, (opening, closing) in enumerate(windows):
        if not 0 <= opening <= closing <= 24:
            raise ValueError(f"{WEEKDAYS[day]}: hours {opening}-{closing} are not a window within 0-24")
        packed |= (opening | closing << 5) << (10 * day)
    return packed


def unpack_hours(packed: int) -> list[HourWindow]:
    """The seven windows of a packed hours field."""
    return [((packed >> (10 * d)) & 31, (packed >> (10 * d + 5)) & 31) for d in range(7)]


def local_time(timestamp: int, utc_offset_minutes: int) -> tuple[int, int, int]:
    """(period yyyymm, weekday 0=Monday, hour) of a UTC timestamp in a fixed offset, as the contract computes."""
    local = datetime.fromtimestamp(timestamp, UTC) + timedelta(minutes=utc_offset_minutes)
    return local.year * 100 + local.month, local.weekday(), local.hour


@dataclass(frozen=True)
class ProgramSpec:
    """Everything `createProgram` takes, in Python terms."""

    name: str
    treasury: str
    start: int
    end: int
    hours: tuple[HourWindow, ...]
    per_payment_limit: int
    evidence_threshold: int
    caps: Mapping[int, int] = field(default_factory=dict)  # category -> cap per period (NO_CAP = none)
    utc_offset_minutes: int = KST_OFFSET_MINUTES

    def as_params(self) -> ProgramParams:
        """The ProgramParams tuple for the contract."""
        categories = sorted(int(c) for c in self.caps)
        return (
            self.name,
            self.treasury,
            self.start,
            self.end,
            self.utc_offset_minutes,
            pack_hours(self.hours),
            self.per_payment_limit,
            self.evidence_threshold,
            categories,
            [int(self.caps[c]) for c in categories],
        )

    def allows(self, category: int) -> bool:
        return category in self.caps

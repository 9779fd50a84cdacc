"""Checking what an operator types or puts in a file, before anything is sent.

Every check raises `InputError` with a message that names the problem in the operator's terms (the value,
what is wrong with it, what was expected); CSV readers collect one `RowProblem` per bad row, with the row's
line number in the file, so a whole file can be fixed in one pass.
"""

from __future__ import annotations

import csv
import hashlib
import re
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import date, datetime
from pathlib import Path

from eth_utils import is_checksum_address, keccak, to_checksum_address

from deposit_token.domain import display
from deposit_token.domain.rules import KST_OFFSET_MINUTES
from deposit_token.errors import DepositTokenError

ZERO_ADDRESS = "0x" + "00" * 20
MAX_AMOUNT = 2**96 - 1  # balances and the total supply are uint96 on-chain
_HEX_ADDRESS = re.compile(r"^0x[0-9a-fA-F]{40}$")
_HEX32 = re.compile(r"^0x[0-9a-fA-F]{64}$")
_DIGITS = re.compile(r"^[0-9]+$")
_GROUPED = re.compile(r"^[1-9][0-9]{0,2}(,[0-9]{3})+$")  # 1,000 and 1,000,000; not 10,00 or 1,0000
_SIGNED = re.compile(r"^[0-9,]+$")  # what follows a sign or surrounds a point, to name that problem


class InputError(DepositTokenError, ValueError):
    """Bad operator input: the message says what is wrong; nothing has been sent."""


# --- single values --------------------------------------------------------------------------------------------


def check_address(text: str, what: str = "address") -> str:
    """The checksummed address; refuses malformed text, the zero address and a wrong EIP-55 checksum.

    All-lower or all-upper hex carries no checksum and is accepted; mixed case must match EIP-55, because a
    mixed-case address with a wrong checksum is almost always a typo.
    """
    value = str(text).strip()
    if not _HEX_ADDRESS.match(value):
        raise InputError(f"{what} {value!r} is malformed (expected 0x followed by 40 hex digits)")
    if int(value, 16) == 0:
        raise InputError(f"{what} is the zero address")
    digits = value[2:]
    if digits != digits.lower() and digits != digits.upper() and not is_checksum_address(value):
        raise InputError(f"{what} {value} has a wrong EIP-55 checksum (mistyped?)")
    return to_checksum_address(value)


def check_amount(text: str | int, what: str = "amount", allow_zero: bool = False) -> int:
    """A whole, positive number of KRW (tokens have 0 decimals) that fits the token's uint96 balances.

    The one amount parser of every command and file: plain ASCII digits (``1000000``) or digits in proper
    groups of three separated by commas (``1,000,000``). Anything else is refused, never guessed at: a comma
    in the wrong place (``10,00`` could be 1,000 or 10.00), a decimal point, a sign, underscores, other
    scripts' digits (``²``, full-width ``１``) - because dropping a character silently changes the amount paid.
    """
    if isinstance(text, bool) or not isinstance(text, (int, str)):
        raise InputError(f"{what} {text!r} is not a whole number of KRW")
    value = str(text).strip()
    if _DIGITS.match(value) or _GROUPED.match(value):
        amount = int(value.replace(",", ""))
    else:
        raise InputError(_amount_problem(value, what))
    if amount == 0 and not allow_zero:
        raise InputError(f"{what} is zero (it must be at least 1 KRW)")
    if amount > MAX_AMOUNT:
        raise InputError(f"{what} {amount:,} is above the token's maximum of {MAX_AMOUNT:,}")
    return amount


def _amount_problem(value: str, what: str) -> str:
    """The sentence saying why `value` is not an amount (the most specific reason first)."""
    if not value:
        return f"{what} is empty"
    if value[0] in "-\u2212" and _SIGNED.match(value[1:]):
        return f"{what} {value} is negative"
    if "." in value and _SIGNED.match(value.replace(".", "", 1)):
        return f"{what} {value!r} is not a whole number of KRW: the token has no decimals (1 token = 1 KRW)"
    if "," in value and _SIGNED.match(value):
        return f"{what} {value!r} has misplaced commas: write 1,000,000 (groups of three digits) or 1000000"
    if any(c.isdigit() and not "0" <= c <= "9" for c in value):
        return f"{what} {value!r} is not a whole number of KRW: use the ASCII digits 0-9"
    return f"{what} {value!r} is not a whole number of KRW (digits 0-9, optionally grouped as 1,000,000)"


def bytes32_text(text: str, what: str) -> bytes:
    """A bytes32 from ``0x`` + 64 hex digits, or from text of at most 32 UTF-8 bytes (left-aligned)."""
    value = str(text).strip()
    if _HEX32.match(value):
        return bytes.fromhex(value[2:])
    raw = value.encode("utf-8")
    if not raw:
        raise InputError(f"{what} is empty")
    if len(raw) > 32:
        raise InputError(f"{what} {value!r} is longer than 32 bytes")
    return raw.ljust(32, b"\0")


def reference_bytes(text: str, namespace: str) -> bytes:
    """A non-zero bytes32 reference: ``0x`` + 64 hex digits as given, otherwise keccak of the namespaced
    text, so that a human reference (a decision number) always maps to the same on-chain reference."""
    value = str(text).strip()
    if not value:
        raise InputError("the reference is empty")
    if _HEX32.match(value):
        if int(value, 16) == 0:
            raise InputError("the reference must not be zero")
        return bytes.fromhex(value[2:])
    return keccak(text=f"{namespace}:{value}")


def parse_time(text: str | int, utc_offset_minutes: int = KST_OFFSET_MINUTES, what: str = "time") -> int:
    """Unix seconds from an integer, an ISO date (midnight in the given offset) or an ISO date-time (naive
    date-times are in the given offset, KST by default, like the programs themselves)."""
    if isinstance(text, int) and not isinstance(text, bool):
        return text
    if isinstance(text, datetime):
        moment = text
    elif isinstance(text, date):
        moment = datetime(text.year, text.month, text.day)
    else:
        value = str(text).strip()
        if _DIGITS.match(value):
            return int(value)
        try:
            moment = datetime.fromisoformat(value)
        except ValueError:
            raise InputError(
                f"{what} {value!r} is neither unix seconds nor an ISO date / date-time "
                "(e.g. 2026-01-01 or 2026-01-01T09:00+09:00)"
            ) from None
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=display.zone(utc_offset_minutes))
    return int(moment.timestamp())


def file_sha256(path: Path | str) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


# --- CSV files ------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class RowProblem:
    """One bad row (or, with line 0, a problem of the whole file)."""

    line: int
    reason: str
    value: str = ""

    @property
    def where(self) -> str:
        return f"line {self.line}" if self.line else "file"


@dataclass
class CsvTable:
    """The data rows of a CSV file as {column: text} with their line numbers, and the rows that were not
    even readable (wrong number of columns)."""

    path: Path
    columns: tuple[str, ...]
    rows: list[tuple[int, dict[str, str]]] = field(default_factory=list)
    problems: list[RowProblem] = field(default_factory=list)


def read_csv(path: Path | str, required: Sequence[str], optional: Sequence[str] = ()) -> CsvTable:
    """Reads a CSV whose columns are `required` then `optional` (in that order, optional ones may be
    missing). A header row naming the columns is allowed and recognised by its first cell; blank lines and
    lines starting with ``#`` are skipped. Line numbers are physical lines (the header is line 1)."""
    path = Path(path)
    columns = (*required, *optional)
    table = CsvTable(path=path, columns=columns)
    try:
        # Opened apart from the `with handle` below (which closes it) so only open()'s OSError becomes an InputError.
        handle = open(path, newline="", encoding="utf-8-sig")  # noqa: SIM115 - see the comment above
    except OSError as err:
        raise InputError(f"cannot read {path}: {err.strerror or err}") from None
    with handle:
        reader = csv.reader(handle)
        first = True
        start_line = 1
        try:
            for cells in reader:
                line = start_line
                start_line = reader.line_num + 1
                if not cells or all(not c.strip() for c in cells) or cells[0].lstrip().startswith("#"):
                    continue
                cells = [c.strip() for c in cells]
                if first:
                    first = False
                    if cells[0].lower() == required[0].lower():
                        names = [c.lower() for c in cells]
                        if names != list(columns[: len(names)]) or len(names) < len(required):
                            table.problems.append(
                                RowProblem(
                                    line,
                                    f"header {','.join(cells)!r} does not match the columns "
                                    f"{','.join(required)}{''.join(',[' + o + ']' for o in optional)}",
                                )
                            )
                        continue
                if not len(required) <= len(cells) <= len(columns):
                    expected = ",".join(required) + "".join(f"[,{o}]" for o in optional)
                    table.problems.append(
                        RowProblem(
                            line,
                            f"expected {len(required)}{'-' + str(len(columns)) if optional else ''} columns "
                            f"({expected}), found {len(cells)}",
                            ",".join(cells),
                        )
                    )
                    continue
                table.rows.append((line, dict(zip(columns, cells))))
        except (csv.Error, UnicodeDecodeError) as err:
            table.problems.append(RowProblem(start_line, f"not readable as UTF-8 CSV: {err}"))
    if not table.rows and not table.problems:
        table.problems.append(RowProblem(0, f"{path} has no data rows"))
    return table

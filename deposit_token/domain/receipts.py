"""Receipt ids: how the vendor's invoice number an official types becomes the on-chain ``bytes32 receiptId``.

One mapping, used by every command (``--receipt``), the signed payment authorization and the displays:

* ``0`` (or nothing): no receipt.
* A plain decimal number (ASCII digits, e.g. ``1001``): the number, big-endian. The token keeps used receipts
  as a bitmap per vendor (word = id >> 8, bit = id & 255), so consecutive invoice numbers share one storage
  word: after the first, each costs a cheap update of a warm word (~5k gas) instead of a new one (~22k gas).
  Numbers must be below 2**248, so their first byte is zero.
* ``0x`` followed by 64 hex digits: those 32 bytes as they are (an id computed elsewhere).
* Any other text (e.g. ``INV-2026-0042``), at most 32 bytes of UTF-8 without control characters: the text
  itself, left-aligned and zero-padded. Chosen over a hash so that the invoice number stays readable on-chain
  (an auditor reads it back from the Payment event, without any off-chain list); its first byte is never zero,
  so no text shares an id with a number. Each text invoice takes its own bitmap word (it differs in the
  leading bytes), which costs the new-word price: plain numbers stay the cheap form for sequential invoices.
"""

from __future__ import annotations

import re

from deposit_token.domain.inputs import InputError

ZERO = b"\0" * 32
MAX_NUMBER = 2**248 - 1  # first byte zero: never equal to a text id
_DIGITS = re.compile(r"^[0-9]+$")
_HEX32 = re.compile(r"^0x[0-9a-fA-F]{64}$")


def receipt_id(text: str | int) -> bytes:
    """The on-chain receipt id of an invoice number (see the module docstring for the rule)."""
    value = str(text).strip()
    if value == "":
        return ZERO
    if _DIGITS.match(value):
        number = int(value)
        if number > MAX_NUMBER:
            raise InputError(
                f"receipt number {value} is too large (at most 2^248 - 1): write it as text "
                "with a prefix or as 0x + 64 hex digits"
            )
        return number.to_bytes(32, "big")
    if _HEX32.match(value):
        return bytes.fromhex(value[2:])
    if value.lower().startswith("0x") and all(c in "0123456789abcdefABCDEF" for c in value[2:]):
        raise InputError(f"receipt {value!r} looks like hex but is not 0x followed by 64 hex digits")
    if any(not c.isprintable() for c in value):
        raise InputError(f"receipt {value!r} contains control characters")
    raw = value.encode("utf-8")
    if len(raw) > 32:
        raise InputError(
            f"receipt {value!r} is {len(raw)} bytes of UTF-8; at most 32 fit the on-chain id "
            "(shorten it or give 0x + 64 hex digits)"
        )
    return raw.ljust(32, b"\0")


def receipt_text(receipt: bytes | str) -> str:
    """How a receipt id reads to a person: the number, the invoice text, ``-`` for none, else ``0x`` hex;
    the inverse of `receipt_id`."""
    raw = bytes.fromhex(receipt[2:]) if isinstance(receipt, str) else bytes(receipt)
    if raw == ZERO:
        return "-"
    if raw[0] == 0:
        return str(int.from_bytes(raw, "big"))
    text = raw.rstrip(b"\0")
    try:
        decoded = text.decode("utf-8")
    except UnicodeDecodeError:
        return "0x" + raw.hex()
    if b"\0" in text or not decoded.isprintable() or receipt_id(decoded) != raw:
        return "0x" + raw.hex()
    return decoded

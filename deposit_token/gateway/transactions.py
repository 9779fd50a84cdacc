"""The sender of a signed raw transaction, recovered fast: the gateway checks every eth_sendRawTransaction's
sender against the token's registry before the node sees it.

Why not eth_account (``Account.recover_transaction``): it builds a typed transaction object and re-encodes it,
~260 us per transaction on the pilot's 2-core machine; here the signed payload is cut out of the raw bytes
(an RLP walk that records where each field lies, no re-encoding) and the public key is recovered by
libsecp256k1 (coincurve), ~60 us. tests/gateway checks the result against eth_account for every transaction
type accepted.

Accepted: legacy transactions (EIP-155 with a chain id, or unprotected v = 27/28, which a node may refuse by
itself), EIP-2930 (type 1) and EIP-1559 (type 2). Blob (type 3) and set-code (type 4) transactions are refused:
the pilot's Paris-EVM chain runs neither.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache

from coincurve import PublicKey
from Crypto.Hash import keccak as _keccak
from eth_utils import to_checksum_address

from deposit_token.gateway.policy import Code, Refusal

SECP256K1_N = 0xFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFEBAAEDCE6AF48A03BBFD25E8CD0364141
TYPED_FIELDS = {1: 11, 2: 12}  # fields of the signed envelope, signature (yParity, r, s) last
LEGACY_FIELDS = 9
MAX_RAW_BYTES = 1 << 20  # far above any transaction the pilot sends; a node caps transactions at 128 KiB


def keccak(data: bytes) -> bytes:
    # pycryptodome directly: eth_utils.keccak adds ~2 us of dispatch per call, three calls per transaction
    return _keccak.new(data=data, digest_bits=256).digest()


@lru_cache(maxsize=1 << 16)
def checksum(address: bytes) -> str:
    """EIP-55 text of a 20-byte address (cached: a chain has few senders and many transactions)."""
    return to_checksum_address(address)


@dataclass(frozen=True)
class RawTransaction:
    """What the gateway needs of a signed transaction: who signed it, its hash, and for the log its nonce."""

    sender: bytes  # 20 bytes
    tx_hash: str  # 0x-hex, as the node will name it
    nonce: int
    tx_type: int
    chain_id: int | None  # None: an unprotected legacy transaction

    @property
    def sender_text(self) -> str:
        return checksum(self.sender)


def _bad(why: str) -> Refusal:
    message = f"eth_sendRawTransaction: cannot decode the transaction: {why}"
    return Refusal(Code.INVALID_PARAMS, message, reason="params")


def _item(buf: bytes, pos: int, end: int) -> tuple[bool, int, int]:
    """The RLP item at `pos`: (is_list, payload start, payload end); refuses items that overrun `end` and the
    non-canonical length forms a node refuses too."""
    if pos >= end:
        raise _bad("truncated RLP")
    b = buf[pos]
    if b < 0x80:
        return False, pos, pos + 1
    if b <= 0xB7:
        start, length = pos + 1, b - 0x80
        if length == 1 and start < end and buf[start] < 0x80:
            raise _bad("non-canonical RLP (a single byte below 0x80 with a length prefix)")
    elif b <= 0xBF or b >= 0xF8:
        size = b - (0xB7 if b <= 0xBF else 0xF7)
        if pos + 1 + size > end or buf[pos + 1] == 0:
            raise _bad("bad RLP length")
        length = int.from_bytes(buf[pos + 1 : pos + 1 + size], "big")
        if length < 56:
            raise _bad("non-canonical RLP (a long form for a short length)")
        start = pos + 1 + size
    else:
        start, length = pos + 1, b - 0xC0
    if start + length > end:
        raise _bad("RLP item runs past the end of the transaction")
    return b >= 0xC0, start, start + length


def _fields(buf: bytes, start: int) -> tuple[int, list[tuple[int, int, int]]]:
    """The list at `start`, which must end the buffer: (its payload start, [(item start, payload start, payload
    end)] for each top-level item)."""
    is_list, body, end = _item(buf, start, len(buf))
    if not is_list or end != len(buf):
        raise _bad("not one RLP list")
    items, pos = [], body
    while pos < end:
        _, payload, stop = _item(buf, pos, end)
        items.append((pos, payload, stop))
        pos = stop
    return body, items


def _int(buf: bytes, item: tuple[int, int, int], what: str) -> int:
    _, start, stop = item
    if stop - start > 32:
        raise _bad(f"{what} longer than 32 bytes")
    if stop > start and buf[start] == 0:
        raise _bad(f"{what} has leading zero bytes")
    return int.from_bytes(buf[start:stop], "big")


def _list_header(length: int) -> bytes:
    if length < 56:
        return bytes((0xC0 + length,))
    size = (length.bit_length() + 7) // 8
    return bytes((0xF7 + size,)) + length.to_bytes(size, "big")


def _int_rlp(value: int) -> bytes:
    if value == 0:
        return b"\x80"
    raw = value.to_bytes((value.bit_length() + 7) // 8, "big")
    if len(raw) == 1 and raw[0] < 0x80:
        return raw
    return bytes((0x80 + len(raw),)) + raw


def decode(raw_hex: object) -> RawTransaction:
    """The sender, hash, nonce, type and chain id of a signed raw transaction given as 0x-hex (Refusal with
    code INVALID_PARAMS for anything else)."""
    if not isinstance(raw_hex, str) or not raw_hex.startswith(("0x", "0X")):
        raise _bad("the parameter must be the signed transaction as a 0x-prefixed hex string")
    if len(raw_hex) > 2 + 2 * MAX_RAW_BYTES:
        raise _bad(f"larger than {MAX_RAW_BYTES:,} bytes")
    try:
        raw = bytes.fromhex(raw_hex[2:])
    except ValueError:
        raise _bad("not hex") from None
    if not raw:
        raise _bad("empty")
    first = raw[0]
    if first >= 0xC0:  # an RLP list: a legacy transaction
        _, items = _fields(raw, 0)
        if len(items) != LEGACY_FIELDS:
            raise _bad(f"a legacy transaction has {LEGACY_FIELDS} fields, not {len(items)}")
        v = _int(raw, items[6], "v")
        unsigned = raw[items[0][0] : items[5][2]]
        if v in (27, 28):
            chain_id, parity = None, v - 27
        elif v >= 35:
            chain_id, parity = (v - 35) // 2, (v - 35) % 2
            unsigned += _int_rlp(chain_id) + b"\x80\x80"
        else:
            raise _bad(f"bad signature v {v}")
        message = keccak(_list_header(len(unsigned)) + unsigned)
        tx_type = 0
    elif first in TYPED_FIELDS:
        _, items = _fields(raw, 1)
        if len(items) != TYPED_FIELDS[first]:
            raise _bad(f"a type-{first} transaction has {TYPED_FIELDS[first]} fields, not {len(items)}")
        parity = _int(raw, items[-3], "yParity")
        if parity > 1:
            raise _bad(f"bad signature yParity {parity}")
        unsigned = raw[items[0][0] : items[-4][2]]
        message = keccak(bytes((first,)) + _list_header(len(unsigned)) + unsigned)
        chain_id, tx_type = _int(raw, items[0], "chain id"), first
        items = items[1:]  # the nonce is field 1 of a typed transaction, field 0 of a legacy one
    elif first <= 0x7F:
        raise Refusal(
            Code.INVALID_PARAMS,
            f"eth_sendRawTransaction: transaction type {first} is not accepted (only legacy, type 1 and type 2: "
            "the chain runs the Paris EVM)",
            reason="params",
        )
    else:
        raise _bad("neither an RLP list nor a typed transaction envelope")
    r, s = _int(raw, items[-2] if tx_type else items[7], "r"), _int(raw, items[-1] if tx_type else items[8], "s")
    if not (0 < r < SECP256K1_N and 0 < s < SECP256K1_N):
        raise _bad("signature r or s out of range")
    signature = r.to_bytes(32, "big") + s.to_bytes(32, "big") + bytes((parity,))
    try:
        public = PublicKey.from_signature_and_message(signature, message, hasher=None)
    except Exception:  # noqa: BLE001 - coincurve raises a bare Exception for an unrecoverable signature
        raise _bad("the signature recovers no public key") from None
    sender = keccak(public.format(compressed=False)[1:])[12:]
    nonce = _int(raw, items[0], "nonce")
    return RawTransaction(sender, "0x" + keccak(raw).hex(), nonce, tx_type, chain_id)

"""Payment authorizations: an official signs a payment offline (EIP-712), the vendor's terminal submits it.

In the manner of EIP-3009 `receiveWithAuthorization`: only the vendor named in the authorization can submit it
(`receiveWithAuthorization` checks the caller), so it cannot be front-run; a random nonce makes each one
single-use, and the payer can cancel an unused one (`cancelAuthorization`). The signed authorization travels as
a small JSON document (file, QR code, NFC) that holds no secret.
"""

from __future__ import annotations

import secrets
from dataclasses import asdict, dataclass
from typing import TYPE_CHECKING, Any

import orjson
from eth_account import Account
from eth_account.messages import encode_typed_data
from eth_utils import is_address, to_checksum_address

from deposit_token.domain.receipts import receipt_id

if TYPE_CHECKING:  # ape is imported only by the callers that connect
    from ape.contracts import ContractInstance

DOMAIN_FIELDS = [
    {"name": "name", "type": "string"},
    {"name": "version", "type": "string"},
    {"name": "chainId", "type": "uint256"},
    {"name": "verifyingContract", "type": "address"},
]
PAYMENT_FIELDS = [
    {"name": "payer", "type": "address"},
    {"name": "vendor", "type": "address"},
    {"name": "amount", "type": "uint256"},
    {"name": "receiptId", "type": "bytes32"},
    {"name": "evidenceHash", "type": "bytes32"},
    {"name": "validAfter", "type": "uint256"},
    {"name": "validBefore", "type": "uint256"},
    {"name": "nonce", "type": "bytes32"},
]
CANCEL_FIELDS = [{"name": "payer", "type": "address"}, {"name": "nonce", "type": "bytes32"}]
ZERO32 = "0x" + "00" * 32


@dataclass(frozen=True)
class Domain:
    """The token's EIP-712 domain, as `eip712Domain()` reports it."""

    name: str
    version: str
    chain_id: int
    verifying_contract: str

    @classmethod
    def of(cls, token: ContractInstance) -> Domain:
        _, name, version, chain_id, contract, _, _ = token.eip712Domain()
        return cls(name, version, int(chain_id), to_checksum_address(contract))

    def as_dict(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "version": self.version,
            "chainId": self.chain_id,
            "verifyingContract": self.verifying_contract,
        }


@dataclass(frozen=True)
class PaymentAuthorization:
    """What the payer signs: pay `amount` to `vendor`, between `valid_after` and `valid_before`.

    `receipt_text` is the invoice number as the official typed it (not signed: `receipt_id` is, and must be its
    on-chain id by `receipts.receipt_id`), kept in the file so the vendor and auditors see what was meant."""

    payer: str
    vendor: str
    amount: int
    receipt_id: str
    evidence_hash: str
    valid_after: int
    valid_before: int
    nonce: str
    receipt_text: str = ""

    def __post_init__(self) -> None:
        for field_name in ("payer", "vendor"):
            if not is_address(getattr(self, field_name)):
                raise ValueError(f"{field_name} {getattr(self, field_name)!r} is not an address")
        if self.amount <= 0:
            raise ValueError(f"amount must be a positive whole number of KRW, not {self.amount}")
        if self.valid_before <= self.valid_after:
            raise ValueError("valid_before must be later than valid_after")
        for field_name in ("receipt_id", "evidence_hash", "nonce"):
            value = getattr(self, field_name)
            if not (isinstance(value, str) and value.startswith("0x") and len(value) == 66):
                raise ValueError(f"{field_name} must be a 0x-prefixed 32-byte hex string")
        if self.receipt_text and "0x" + receipt_id(self.receipt_text).hex() != self.receipt_id.lower():
            raise ValueError(f"receipt_text {self.receipt_text!r} does not match receipt_id {self.receipt_id}")

    def message(self) -> dict[str, Any]:
        return {
            "payer": to_checksum_address(self.payer),
            "vendor": to_checksum_address(self.vendor),
            "amount": self.amount,
            "receiptId": bytes.fromhex(self.receipt_id[2:]),
            "evidenceHash": bytes.fromhex(self.evidence_hash[2:]),
            "validAfter": self.valid_after,
            "validBefore": self.valid_before,
            "nonce": bytes.fromhex(self.nonce[2:]),
        }


@dataclass(frozen=True)
class SignedAuthorization:
    """An authorization with the payer's signature: safe to hand to the vendor (it holds no secret)."""

    authorization: PaymentAuthorization
    v: int
    r: str
    s: str

    def contract_args(self) -> tuple[Any, ...]:
        """The arguments of `receiveWithAuthorization`, in order."""
        a = self.authorization
        m = a.message()
        return (
            m["payer"],
            m["vendor"],
            a.amount,
            m["receiptId"],
            m["evidenceHash"],
            a.valid_after,
            a.valid_before,
            m["nonce"],
            self.v,
            _bytes32(self.r),
            _bytes32(self.s),
        )

    def to_json(self) -> bytes:
        return orjson.dumps(
            {**asdict(self.authorization), "v": self.v, "r": self.r, "s": self.s}, option=orjson.OPT_INDENT_2
        )

    @classmethod
    def from_json(cls, raw: bytes | str) -> SignedAuthorization:
        try:
            data = orjson.loads(raw)
            signature = {key: data.pop(key) for key in ("v", "r", "s")}
            return cls(PaymentAuthorization(**data), int(signature["v"]), signature["r"], signature["s"])
        except (orjson.JSONDecodeError, KeyError, TypeError) as error:
            raise ValueError(f"not a signed payment authorization: {error}") from None


def new_nonce() -> str:
    """A random 32-byte nonce: authorizations are not ordered, so any number of them can be outstanding."""
    return "0x" + secrets.token_bytes(32).hex()


Signer = bytes | Any  # a private key, or an ape account (its key stays in ape's encrypted keystore)


def _address_of(signer: Signer) -> str:
    return Account.from_key(signer).address if isinstance(signer, bytes) else to_checksum_address(signer.address)


def _word(value: Any) -> str:
    """A signature's r or s as 0x + 64 hex digits. eth-account gives ints; ape's accounts give minimal big-endian
    bytes, one byte short whenever the value's top byte is zero (about one signature in 128), and a short word
    reached the contract right-padded: "the signature is not valid"."""
    number = value if isinstance(value, int) else int.from_bytes(bytes(value), "big")
    return "0x" + number.to_bytes(32, "big").hex()


def _bytes32(word: str) -> bytes:
    """r or s for the contract; by value, so a file written with a short word (before ``_word`` padded) still
    works."""
    return int(word, 16).to_bytes(32, "big")


def _sign(typed: dict[str, Any], signer: Signer) -> tuple[int, str, str]:
    message = encode_typed_data(full_message=typed)
    signature = Account.sign_message(message, signer) if isinstance(signer, bytes) else signer.sign_message(message)
    if signature is None:
        raise ValueError("the account declined to sign")
    return int(signature.v), _word(signature.r), _word(signature.s)


def sign_authorization(auth: PaymentAuthorization, domain: Domain, signer: Signer) -> SignedAuthorization:
    """Signs offline (no transaction, no gas)."""
    typed = {
        "types": {"EIP712Domain": DOMAIN_FIELDS, "PaymentAuthorization": PAYMENT_FIELDS},
        "primaryType": "PaymentAuthorization",
        "domain": domain.as_dict(),
        "message": auth.message(),
    }
    if _address_of(signer) != to_checksum_address(auth.payer):
        raise ValueError("the signing key does not belong to the payer")
    return SignedAuthorization(auth, *_sign(typed, signer))


def sign_cancellation(payer: str, nonce: str, domain: Domain, signer: Signer) -> tuple[int, bytes, bytes]:
    """(v, r, s) of `CancelAuthorization(payer, nonce)` for `cancelAuthorization`."""
    typed = {
        "types": {"EIP712Domain": DOMAIN_FIELDS, "CancelAuthorization": CANCEL_FIELDS},
        "primaryType": "CancelAuthorization",
        "domain": domain.as_dict(),
        "message": {"payer": to_checksum_address(payer), "nonce": bytes.fromhex(nonce[2:])},
    }
    v, r, s = _sign(typed, signer)
    return v, _bytes32(r), _bytes32(s)

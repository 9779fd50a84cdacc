"""A Safe transaction proposal (SafeTx), its EIP-712 hash and owners' signatures, and its JSON file.

The hash is computed by eth-account's EIP-712 typed-data encoding of Safe v1.4.1's ``SafeTx`` type under the
domain ``{chainId, verifyingContract}`` (the same bytes the Safe's ``getTransactionHash`` returns: the tests
check it against the contract). An owner signs that hash (ECDSA, v = 27/28, which is how Safe reads an EIP-712
signature); nothing here needs a network.

A proposal file holds the SafeTx, the Safe, the chain id, a description in words and the signatures collected
so far. Loading it recomputes the hash from the fields and recovers every signature: a file changed after
signing (amount, recipient, nonce, Safe or chain) is refused in one sentence, so people sign what they read.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import Any

from eth_account import Account
from eth_account.messages import _hash_eip191_message, encode_typed_data
from eth_utils import is_address, to_checksum_address

from deposit_token.chain.submit import LocalSigner
from deposit_token.errors import DepositTokenError

FORMAT = "deposit-token/safe-proposal/v1"
ZERO_ADDRESS = "0x" + "00" * 20
CALL, DELEGATECALL = 0, 1

SAFE_TX_TYPES = {
    "EIP712Domain": [
        {"name": "chainId", "type": "uint256"},
        {"name": "verifyingContract", "type": "address"},
    ],
    "SafeTx": [
        {"name": "to", "type": "address"},
        {"name": "value", "type": "uint256"},
        {"name": "data", "type": "bytes"},
        {"name": "operation", "type": "uint8"},
        {"name": "safeTxGas", "type": "uint256"},
        {"name": "baseGas", "type": "uint256"},
        {"name": "gasPrice", "type": "uint256"},
        {"name": "gasToken", "type": "address"},
        {"name": "refundReceiver", "type": "address"},
        {"name": "nonce", "type": "uint256"},
    ],
}


class ProposalError(DepositTokenError):
    """A proposal file that cannot be used: malformed, changed after signing, or a bad signature."""


@dataclass(frozen=True)
class SafeTx:
    """Safe v1.4.1's SafeTx. Gas fields stay 0 (no refunds: gas is free on the permissioned chain, and
    safeTxGas 0 makes a failing inner call revert the whole execTransaction instead of consuming the nonce)."""

    safe: str
    chain_id: int
    to: str
    data: bytes
    nonce: int
    value: int = 0
    operation: int = CALL
    safe_tx_gas: int = 0
    base_gas: int = 0
    gas_price: int = 0
    gas_token: str = ZERO_ADDRESS
    refund_receiver: str = ZERO_ADDRESS

    def typed_data(self) -> dict[str, Any]:
        return {
            "types": SAFE_TX_TYPES,
            "primaryType": "SafeTx",
            "domain": {"chainId": self.chain_id, "verifyingContract": self.safe},
            "message": {
                "to": self.to,
                "value": self.value,
                "data": self.data,
                "operation": self.operation,
                "safeTxGas": self.safe_tx_gas,
                "baseGas": self.base_gas,
                "gasPrice": self.gas_price,
                "gasToken": self.gas_token,
                "refundReceiver": self.refund_receiver,
                "nonce": self.nonce,
            },
        }

    def hash(self) -> bytes:
        """The safeTxHash owners sign (the Safe's getTransactionHash)."""
        return bytes(_hash_eip191_message(encode_typed_data(full_message=self.typed_data())))

    def exec_args(self, signatures: bytes) -> tuple[Any, ...]:
        """The arguments of the Safe's execTransaction."""
        return (
            self.to,
            self.value,
            self.data,
            self.operation,
            self.safe_tx_gas,
            self.base_gas,
            self.gas_price,
            self.gas_token,
            self.refund_receiver,
            signatures,
        )

    def as_json(self) -> dict[str, Any]:
        fields = asdict(self)
        fields["data"] = "0x" + self.data.hex()
        return fields

    @classmethod
    def from_json(cls, fields: dict[str, Any]) -> SafeTx:
        data = dict(fields)
        for key in ("safe", "to", "gas_token", "refund_receiver"):
            if not isinstance(data.get(key), str) or not is_address(data[key]):
                raise ProposalError(f"the proposal's {key} is not an address: {data.get(key)!r}")
            data[key] = to_checksum_address(data[key])
        text = data.get("data")
        if not isinstance(text, str) or not text.startswith("0x"):
            raise ProposalError("the proposal's data is not 0x-prefixed hex")
        try:
            data["data"] = bytes.fromhex(text[2:])
            for key in ("chain_id", "nonce", "value", "operation", "safe_tx_gas", "base_gas", "gas_price"):
                if not isinstance(data.get(key), int) or isinstance(data.get(key), bool) or data[key] < 0:
                    raise ProposalError(f"the proposal's {key} is not a whole number: {data.get(key)!r}")
            return cls(**data)
        except (TypeError, ValueError) as error:
            raise ProposalError(f"the proposal's transaction is malformed: {error}") from None


@dataclass(frozen=True)
class Signature:
    owner: str
    signature: bytes  # 65 bytes r || s || v, v = 27/28 (an EIP-712 hash signed as it is)


def sign(tx: SafeTx, signer: LocalSigner) -> Signature:
    """`signer`'s signature of the SafeTx's hash (offline)."""
    raw = signer.sign_hash(tx.hash())
    return Signature(signer.address, raw[:64] + bytes([raw[64] + 27]))


def recover(tx: SafeTx, signature: bytes) -> str:
    """The address whose key made `signature` over the SafeTx (ProposalError if it is not a signature)."""
    try:
        return str(Account._recover_hash(tx.hash(), signature=signature))
    except Exception:  # noqa: BLE001 - eth-account raises several kinds for malformed signatures
        raise ProposalError("a signature in the proposal is malformed") from None


def approved_by(owner: str) -> Signature:
    """The signature Safe accepts for an owner that executes the transaction itself (v = 1, r = the owner):
    msg.sender's own approval, no signature needed."""
    return Signature(owner, bytes(12) + bytes.fromhex(owner[2:]) + bytes(32) + b"\x01")


def pack(signatures: list[Signature]) -> bytes:
    """The signatures as execTransaction takes them: ordered by owner address, ascending (Safe refuses any
    other order, which is also how it refuses one owner counted twice)."""
    ordered = sorted(signatures, key=lambda s: int(s.owner, 16))
    return b"".join(s.signature for s in ordered)


@dataclass
class Proposal:
    """What a proposal file holds."""

    tx: SafeTx
    description: list[str]
    network: str
    token: str | None = None
    command: str = ""
    safe_label: str = ""
    signatures: list[Signature] = field(default_factory=list)

    @property
    def hash(self) -> bytes:
        return self.tx.hash()

    def signers(self) -> list[str]:
        return [s.owner for s in self.signatures]

    def add(self, signature: Signature) -> bool:
        """Adds a signature (replacing the same owner's); False if it was already there."""
        if any(s.owner == signature.owner and s.signature == signature.signature for s in self.signatures):
            return False
        self.signatures = [s for s in self.signatures if s.owner != signature.owner] + [signature]
        return True

    def to_json(self) -> str:
        content = {
            "format": FORMAT,
            "description": self.description,
            "command": self.command,
            "network": self.network,
            "safe_label": self.safe_label,
            "token": self.token,
            "safe_tx": self.tx.as_json(),
            "safe_tx_hash": "0x" + self.hash.hex(),
            "signatures": [{"owner": s.owner, "signature": "0x" + s.signature.hex()} for s in self.signatures],
        }
        return json.dumps(content, indent=2) + "\n"

    def write(self, path: Path) -> Path:
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_name(f".{path.name}.tmp")
        tmp.write_text(self.to_json(), encoding="utf-8")
        tmp.replace(path)
        return path

    @classmethod
    def from_json(cls, text: str | bytes, where: str = "the proposal") -> Proposal:
        try:
            content = json.loads(text)
        except ValueError as error:
            raise ProposalError(f"{where} is not JSON: {error}") from None
        if not isinstance(content, dict) or content.get("format") != FORMAT:
            raise ProposalError(f"{where} is not a Safe proposal ({FORMAT}); write one with --propose FILE")
        if not isinstance(content.get("safe_tx"), dict):
            raise ProposalError(f"{where} has no safe_tx")
        tx = SafeTx.from_json(content["safe_tx"])
        if str(content.get("safe_tx_hash", "")).lower() != "0x" + tx.hash().hex():
            raise ProposalError(
                f"{where} was changed after it was written: its transaction no longer has the hash "
                f"{content.get('safe_tx_hash')} that was proposed (write a new proposal)"
            )
        signatures = []
        for entry in content.get("signatures") or []:
            try:
                owner = to_checksum_address(entry["owner"])
                raw = bytes.fromhex(str(entry["signature"]).removeprefix("0x"))
            except (KeyError, TypeError, ValueError):
                raise ProposalError(f"{where} has a malformed signature entry") from None
            if len(raw) != 65 or recover(tx, raw) != owner:
                raise ProposalError(
                    f"the signature of {owner} in {where} is not a signature of this transaction by {owner} "
                    "(the file was changed after signing)"
                )
            signatures.append(Signature(owner, raw))
        description = content.get("description") or []
        return cls(
            tx=tx,
            description=[str(line) for line in description] if isinstance(description, list) else [str(description)],
            network=str(content.get("network") or ""),
            token=content.get("token"),
            command=str(content.get("command") or ""),
            safe_label=str(content.get("safe_label") or ""),
            signatures=signatures,
        )

    @classmethod
    def read(cls, path: Path) -> Proposal:
        try:
            text = path.read_bytes()
        except OSError as error:
            raise ProposalError(f"cannot read the proposal {path}: {error.strerror or error}") from None
        return cls.from_json(text, str(path))


def with_nonce(tx: SafeTx, nonce: int) -> SafeTx:
    return replace(tx, nonce=nonce)

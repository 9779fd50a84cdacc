"""What every command shares: input types that reject bad values before anything is sent, the deployed
token of the connected network, and one-line error reporting with reverts turned into sentences."""

from __future__ import annotations

import hashlib
import sys
from pathlib import Path
from typing import Any, NoReturn

import click
from eth_utils import is_address, is_checksum_address, to_checksum_address
from rich.console import Console

from . import deployment
from .contracts import token_at
from .errors import explain

ZERO32 = b"\0" * 32
# So that `pay VENDOR -5` reaches the amount check ("not a whole, non-negative number") instead of click's
# "no such option".
NEGATIVE_NUMBERS_ARE_ARGUMENTS = {"ignore_unknown_options": True}


def console() -> Console:
    # Off a terminal (CI logs, subprocesses) keep addresses and hashes on one line.
    return Console(width=None if sys.stdout.isatty() else 200)


class AddressType(click.ParamType):
    """A 20-byte hex address; a mixed-case one must carry a correct EIP-55 checksum."""

    name = "ADDRESS"

    def convert(self, value: Any, param, ctx) -> str:
        text = str(value).strip()
        if not is_address(text):
            self.fail(f"{value!r} is not an address (0x followed by 40 hex digits)", param, ctx)
        if text[2:] not in (text[2:].lower(), text[2:].upper()) and not is_checksum_address(text):
            self.fail(f"{value!r} has a wrong EIP-55 checksum (mistyped?)", param, ctx)
        return to_checksum_address(text)


class AmountType(click.ParamType):
    """A positive whole number of KRW (the token has 0 decimals); `1,000` and `1_000` are accepted."""

    name = "KRW"

    def convert(self, value: Any, param, ctx) -> int:
        text = str(value).strip().replace(",", "").replace("_", "")
        if not text.isdigit():
            self.fail(f"{value!r} is not a whole, non-negative number of KRW", param, ctx)
        amount = int(text)
        if amount == 0:
            self.fail("the amount must be greater than zero", param, ctx)
        return amount


class ReceiptType(click.ParamType):
    """A receipt id: an invoice number (stored big-endian, so consecutive invoices share a bitmap word) or
    0x-prefixed 32 bytes."""

    name = "RECEIPT"

    def convert(self, value: Any, param, ctx) -> bytes:
        return bytes32_of(str(value).strip(), self, param, ctx)


class EvidenceType(click.ParamType):
    """Evidence of a large payment: a file (its SHA-256 is recorded on-chain, the file stays off-chain) or
    0x-prefixed 32 bytes."""

    name = "FILE|0xHASH"

    def convert(self, value: Any, param, ctx) -> bytes:
        text = str(value).strip()
        path = Path(text)
        if path.is_file():
            return hashlib.sha256(path.read_bytes()).digest()
        if text.startswith("0x"):
            return bytes32_of(text, self, param, ctx)
        self.fail(f"{value!r} is neither a file nor a 0x-prefixed 32-byte hash", param, ctx)


def bytes32_of(text: str, kind: click.ParamType, param, ctx) -> bytes:
    if text.isdigit():
        number = int(text)
        if number >= 2**256:
            kind.fail(f"{text} does not fit in 32 bytes", param, ctx)
        return number.to_bytes(32, "big")
    if text.startswith("0x") and len(text) == 66:
        try:
            return bytes.fromhex(text[2:])
        except ValueError:
            pass
    kind.fail(f"{text!r} is neither a number nor 0x followed by 64 hex digits", param, ctx)


ADDRESS = AddressType()
AMOUNT = AmountType()
RECEIPT = ReceiptType()
EVIDENCE = EvidenceType()


def deployed_token(ecosystem_network_provider: str | None = None):
    """The token recorded for the connected network in deployments/ (the deploy script wrote it)."""
    from ape import chain, networks

    choice = ecosystem_network_provider or networks.provider.network_choice
    path = deployment.record_path(choice)
    if not path.is_file():
        raise click.ClickException(f"no deployment for network {choice}: {path} is missing (run `ape run deploy`)")
    record = deployment.load_record(path)
    chain_id = chain.provider.web3.eth.chain_id  # what the node says (eth_chainId), not the network's config
    if int(record["chain_id"]) != chain_id:
        raise click.ClickException(
            f"{path} was written for chain {record['chain_id']}, but the connected chain is {chain_id}"
        )
    if not chain.provider.get_code(record["token"]):
        raise click.ClickException(f"{path} records token {record['token']}, which has no code on this chain")
    return token_at(record["token"])


def unattended(account):
    """Lets an ape keystore account sign without a person at the keyboard when its passphrase is in ape's
    documented environment variable (APE_ACCOUNTS_<alias>_PASSPHRASE); otherwise ape asks, as usual."""
    import os

    from ape.exceptions import ApeException

    alias = getattr(account, "alias", None)
    variable = f"APE_ACCOUNTS_{alias}_PASSPHRASE"
    if alias and hasattr(account, "set_autosign") and os.environ.get(variable):
        try:
            account.set_autosign(True, passphrase=os.environ[variable])
        except ApeException:
            raise click.ClickException(f"the passphrase in {variable} does not unlock ape account '{alias}'") from None
    return account


def fail(error: BaseException, token=None) -> NoReturn:
    """Ends a command with one readable line (the revert as a sentence) and exit status 1, no traceback."""
    raise click.ClickException(explain(error, token=token)) from None


def checked_send(token, function: str, args: tuple, account, refused: str):
    """Runs `function(*args)` as `account` only if the contract would accept it in the next block; otherwise
    stops with `refused` and the sentence naming the rule, having sent nothing. Returns the receipt."""
    from .wallet import why_not

    reason = why_not(token, function, args, account.address)
    if reason is not None:
        raise click.ClickException(f"{refused}: {reason}")
    try:
        return getattr(token, function)(*args, sender=account)
    except Exception as error:  # noqa: BLE001 - a rule can change between the check and the block
        fail(error, token)


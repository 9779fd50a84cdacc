"""Revert data of the token system decoded into (error name, inputs), and any exception of an ape call turned
into a sentence (the sentences themselves are `deposit_token.domain.sentences`)."""

from __future__ import annotations

import re
from typing import Any

from eth_abi import decode as abi_decode
from eth_utils import keccak

from deposit_token.domain.sentences import NameLookup, describe

_RAW_CUSTOM_ERROR = re.compile(r"custom error (0x[0-9a-fA-F]{8}):\s*([0-9a-fA-F]*)")


def decode_revert(data: bytes, error_abis) -> tuple[str, dict[str, Any]] | None:
    """(name, inputs) of revert `data` for the first error ABI whose selector matches, else None."""
    for abi in error_abis:
        if data[:4] == keccak(text=abi.selector)[:4]:
            types = [arg.canonical_type for arg in abi.inputs]
            values = abi_decode(types, data[4:]) if types else ()
            return abi.name, {arg.name: value for arg, value in zip(abi.inputs, values, strict=True)}
    return None


def error_of(error: BaseException, error_abis=None) -> tuple[str, dict[str, Any]] | None:
    """(name, inputs) of the custom error behind an ape exception: as ape decoded it, or decoded here from
    the raw revert data ape could not attribute (e.g. a call answered by the admin module's code)."""
    abi = getattr(error, "abi", None)
    inputs = getattr(error, "inputs", None)
    if abi is not None and inputs is not None and getattr(abi, "name", None):
        return abi.name, dict(inputs)
    message = str(getattr(error, "revert_message", None) or "")
    match = _RAW_CUSTOM_ERROR.search(message)
    if match is not None:
        data = bytes.fromhex(match.group(1)[2:] + match.group(2))
    elif len(message) == 4 and not message.isprintable():
        data = message.encode("latin-1")  # an argument-less error whose selector ape took for text
    else:
        return None
    if error_abis is None:
        from deposit_token.chain.contracts import system_contract_type

        error_abis = [item for item in system_contract_type().abi if item.type == "error"]
    return decode_revert(data, error_abis)


def explain(error: BaseException, token=None) -> str:
    """A sentence for any exception raised by an ape call or transaction against the token."""
    names = NameLookup.for_token(token) if token is not None else None
    decoded = error_of(error)
    if decoded is not None:
        return describe(*decoded, names)
    message = getattr(error, "revert_message", None) or str(error)
    return f"the transaction failed: {message}"

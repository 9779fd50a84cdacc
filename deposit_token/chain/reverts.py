"""Revert data decoding, in one place: raw revert data of the token system into (error name, inputs) and into
a sentence, and any exception of an ape call turned into a sentence (the sentences themselves are
`deposit_token.domain.sentences`).

Errors are decoded with the shipped merged ABI (`deposit_token.chain.abi`), so no ape build is needed.
Where revert data comes from: a JSON-RPC error answer (`deposit_token.chain.rpc.RpcError.revert_data`), or an
ape exception (`error_of`).
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from functools import lru_cache
from typing import Any

from eth_abi import decode as abi_decode
from eth_utils import is_address, to_checksum_address

from deposit_token.chain import abi
from deposit_token.domain.sentences import NameLookup, describe

ERROR_STRING = bytes.fromhex("08c379a0")  # Error(string), what `require(cond, "text")` reverts with
PANIC = bytes.fromhex("4e487b71")  # Panic(uint256): assert, overflow, division by zero, ...
_RAW_CUSTOM_ERROR = re.compile(r"custom error (0x[0-9a-fA-F]{8}):\s*([0-9a-fA-F]*)")


@lru_cache(maxsize=1)
def _system_errors() -> dict[bytes, Mapping[str, Any]]:
    return {abi.selector(item): item for item in abi.of_type("error")}


def decode_revert(data: bytes, error_abis: Iterable[Any] | None = None) -> tuple[str, dict[str, Any]] | None:
    """(name, inputs) of revert `data` for the error whose selector matches, else None. `error_abis`
    (default: the token system's errors) are dicts or ape ABI objects; addresses come back checksummed."""
    if error_abis is None:
        error = _system_errors().get(bytes(data[:4]))
    else:
        error = next((e for e in abi.items_of(list(error_abis)) if abi.selector(e) == data[:4]), None)
    if error is None:
        return None
    params = error.get("inputs") or []
    values = abi_decode([abi.abi_type(p) for p in params], data[4:]) if params else ()
    return str(error["name"]), {p["name"]: _plain(v) for p, v in zip(params, values, strict=True)}


def _plain(value: Any) -> Any:
    return to_checksum_address(value) if isinstance(value, str) and is_address(value) else value


def describe_revert(data: bytes, names: NameLookup | None = None) -> str | None:
    """The sentence for raw revert data: Error(string), Panic(uint256) or one of the token system's custom
    errors; None for data none of them explains (the caller says what it was doing)."""
    if data[:4] == ERROR_STRING:
        return f"the contract reverted: {abi_decode(['string'], data[4:])[0]}"
    if data[:4] == PANIC:
        return f"the contract panicked (code {hex(abi_decode(['uint256'], data[4:])[0])})"
    decoded = decode_revert(data)
    return describe(*decoded, names) if decoded is not None else None


def error_of(error: BaseException, error_abis: Iterable[Any] | None = None) -> tuple[str, dict[str, Any]] | None:
    """(name, inputs) of the custom error behind an ape exception: as ape decoded it, or decoded here from
    the raw revert data ape could not attribute (e.g. a call answered by the admin module's code)."""
    error_abi = getattr(error, "abi", None)
    inputs = getattr(error, "inputs", None)
    if error_abi is not None and inputs is not None and getattr(error_abi, "name", None):
        return error_abi.name, dict(inputs)
    message = str(getattr(error, "revert_message", None) or "")
    match = _RAW_CUSTOM_ERROR.search(message)
    if match is not None:
        data = bytes.fromhex(match.group(1)[2:] + match.group(2))
    elif len(message) == 4 and not message.isprintable():
        data = message.encode("latin-1")  # an argument-less error whose selector ape took for text
    else:
        return None
    return decode_revert(data, error_abis)


def explain(error: BaseException, token: Any = None) -> str:
    """A sentence for any exception raised by an ape call or transaction against the token."""
    names = NameLookup.for_token(token) if token is not None else None
    decoded = error_of(error)
    if decoded is not None:
        return describe(*decoded, names)
    message = getattr(error, "revert_message", None) or str(error)
    return f"the transaction failed: {message}"

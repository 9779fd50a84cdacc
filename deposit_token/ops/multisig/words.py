"""What a proposed call does, in words: ``mint 1,000,000,000 KRW into treasury 0x...``. Every person who signs
reads this, decoded from the calldata itself (never from the proposer's description), so a file whose data
was swapped reads differently."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

from eth_abi import decode as abi_decode
from eth_utils import keccak, to_checksum_address

from deposit_token.chain import abi
from deposit_token.domain import display
from deposit_token.domain.sentences import NameLookup
from deposit_token.ops.listing import role_label
from deposit_token.ops.multisig.proposal import DELEGATECALL, SafeTx

ROLE_IDS = {
    "0x" + "00" * 32: "DEFAULT_ADMIN_ROLE",
    **{
        "0x" + keccak(text=r).hex(): r
        for r in ("ISSUER_ROLE", "PROGRAM_MANAGER_ROLE", "VENDOR_REGISTRAR_ROLE", "COMPLIANCE_ROLE")
    },
}


def _role(value: bytes) -> str:
    key = "0x" + bytes(value).hex()
    return role_label(ROLE_IDS[key]) if key in ROLE_IDS else f"role {key}"


def _text(value: Any) -> str:
    return str(value).replace("\n", " ")


def _krw(value: Any) -> str:
    return display.krw(int(value))


def _program(names: NameLookup, program_id: Any) -> str:
    label = names.program(int(program_id))
    return f"program {label}" + (f" (#{int(program_id)})" if not label.startswith("#") else "")


def _allocation(a: Mapping[str, Any], names: NameLookup) -> str:
    amounts = [int(x) for x in a["amounts"]]
    who = a["spenders"]
    target = to_checksum_address(who[0]) if len(who) == 1 else f"{len(who)} spenders"
    return (
        f"allocate {display.krw(sum(amounts))} from {_program(names, a['programId'])}'s treasury to {target} "
        f"(reference 0x{bytes(a['batchRef']).hex()}; a reference is applied once, ever)"
    )


def _params(p: Any) -> str:
    return f"'{_text(p[0])}' paid by treasury {to_checksum_address(p[1])}"


# function name -> words, from the decoded arguments (by the ABI's parameter names, in order as a list too).
TOKEN_WORDS: dict[str, Callable[[Mapping[str, Any], list[Any], NameLookup], str]] = {
    "mint": lambda a, v, n: f"mint {_krw(v[1])} into treasury {to_checksum_address(v[0])}",
    "setMintAllowance": lambda a, v, n: f"set the mint allowance of {to_checksum_address(v[0])} to {_krw(v[1])}",
    "grantRole": lambda a, v, n: f"grant {_role(v[0])} to {to_checksum_address(v[1])}",
    "revokeRole": lambda a, v, n: f"revoke {_role(v[0])} from {to_checksum_address(v[1])}",
    "renounceRole": lambda a, v, n: f"give up {_role(v[0])} held by {to_checksum_address(v[1])}",
    "beginDefaultAdminTransfer": lambda a, v, n: (
        f"begin handing the admin role to {to_checksum_address(v[0])} (it accepts after the token's delay)"
    ),
    "acceptDefaultAdminTransfer": lambda a, v, n: "accept the admin role (the pending handover)",
    "cancelDefaultAdminTransfer": lambda a, v, n: "cancel the pending admin handover",
    "registerTreasury": lambda a, v, n: f"register {to_checksum_address(v[0])} as a treasury",
    "createProgram": lambda a, v, n: f"create program {_params(v[0])}",
    "updateProgram": lambda a, v, n: f"replace the rules of {_program(n, v[0])} with {_params(v[1])}",
    "registerVendor": lambda a, v, n: (
        f"register vendor '{_text(v[2])}' ({to_checksum_address(v[0])}) in merchant category {int(v[1])}"
    ),
    "suspendVendor": lambda a, v, n: f"suspend vendor {to_checksum_address(v[0])} (reason: {_text(v[1])})",
    "reactivateVendor": lambda a, v, n: f"reactivate vendor {to_checksum_address(v[0])} (reason: {_text(v[1])})",
    "enrol": lambda a, v, n: f"enrol {len(v[0])} spender(s) in {_program(n, v[1])}",
    "allocate": lambda a, v, n: _allocation(a, n),
    "freeze": lambda a, v, n: f"freeze the wallet {to_checksum_address(v[0])} (reason: {_text(v[1])})",
    "unfreeze": lambda a, v, n: f"unfreeze the wallet {to_checksum_address(v[0])} (reason: {_text(v[1])})",
    "clawback": lambda a, v, n: (
        f"claw back {_krw(v[1])} from spender {to_checksum_address(v[0])} to its program's treasury "
        f"(reason: {_text(v[2])})"
    ),
    "pause": lambda a, v, n: "pause every movement of the token",
    "unpause": lambda a, v, n: "lift the token-wide pause",
    "setProgramPaused": lambda a, v, n: f"{'pause' if v[1] else 'unpause'} {_program(n, v[0])}",
}

SAFE_WORDS: dict[str, tuple[list[str], Callable[[list[Any]], str]]] = {
    "0x0d582f13": (["address", "uint256"], lambda v: f"add owner {to_checksum_address(v[0])}, threshold {v[1]}"),
    "0xf8dc5dd9": (
        ["address", "address", "uint256"],
        lambda v: f"remove owner {to_checksum_address(v[1])}, threshold {v[2]}",
    ),
    "0xe318b52b": (
        ["address", "address", "address"],
        lambda v: f"replace owner {to_checksum_address(v[1])} by {to_checksum_address(v[2])}",
    ),
    "0x694e80c3": (["uint256"], lambda v: f"change the threshold to {v[0]}"),
}


def _token_function(selector: bytes) -> Mapping[str, Any] | None:
    return next((f for f in abi.of_type("function") if abi.selector(f) == selector), None)


def describe_call(to: str, data: bytes, token: str | None, safe: str, names: NameLookup | None = None) -> str:
    """One call in words (a call the words do not know is named by its function and target)."""
    names = names or NameLookup()
    selector = bytes(data[:4])
    if to.lower() == safe.lower() and "0x" + selector.hex() in SAFE_WORDS:
        types, safe_words = SAFE_WORDS["0x" + selector.hex()]
        return f"Safe {safe}: " + safe_words(list(abi_decode(types, data[4:])))
    function = _token_function(selector) if token is not None and to.lower() == token.lower() else None
    if function is None:
        return f"call {to} with data 0x{bytes(data).hex()[:72]}{'...' if len(data) > 36 else ''}"
    params = function.get("inputs") or []
    values = list(abi_decode([abi.abi_type(p) for p in params], data[4:])) if params else []
    named = {p["name"]: value for p, value in zip(params, values, strict=True)}
    words = TOKEN_WORDS.get(str(function["name"]))
    return words(named, values, names) if words else f"call {function['name']} on the token"


def multi_send_calls(data: bytes) -> list[tuple[str, int, bytes]]:
    """(to, value, data) of each call packed in a MultiSendCallOnly.multiSend(bytes) payload."""
    (packed,) = abi_decode(["bytes"], data[4:])
    calls: list[tuple[str, int, bytes]] = []
    index = 0
    while index < len(packed):
        to = str(to_checksum_address(packed[index + 1 : index + 21]))
        value = int.from_bytes(packed[index + 21 : index + 53], "big")
        length = int.from_bytes(packed[index + 53 : index + 85], "big")
        calls.append((to, value, bytes(packed[index + 85 : index + 85 + length])))
        index += 85 + length
    return calls


def describe(
    tx: SafeTx, token: str | None, names: NameLookup | None = None, multi_send: str | None = None
) -> list[str]:
    """Every call the SafeTx makes, in words, one line each."""
    if tx.operation == DELEGATECALL:
        if multi_send is not None and tx.to.lower() == multi_send.lower():
            return [describe_call(to, data, token, tx.safe, names) for to, _value, data in multi_send_calls(tx.data)]
        return [f"DELEGATECALL into {tx.to} (runs foreign code as the Safe: refuse unless you know it)"]
    line = describe_call(tx.to, tx.data, token, tx.safe, names)
    return [line + (f", sending {tx.value} wei" if tx.value else "")]

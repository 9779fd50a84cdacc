"""The Safe v1.4.1 contracts as the Safe project ships them on npm (``@safe-global/safe-contracts``, pinned in
package.json): the ABI and bytecode of its own build (solc 0.7.6, optimizer off), used as they are.

Compiling them ourselves would need a second compiler (0.7.6) beside the project's 0.8.30, and a bytecode of
our own would differ from the one the Safe project audited and published. Solidity 0.7.6 predates PUSH0
(Shanghai), so this code runs on the Paris EVM of the Geth Clique network; `later_opcodes` checks it anyway
before anything is deployed.
"""

from __future__ import annotations

import json
import re
from functools import cache
from pathlib import Path
from typing import Any

from eth_utils import keccak

from deposit_token import paths
from deposit_token.errors import DepositTokenError

SAFE_VERSION = "1.4.1"
PACKAGE = "@safe-global/safe-contracts"
# What each Safe piece is, by the name a deployment record uses for it.
CONTRACTS = {
    "singleton": "SafeL2.sol/SafeL2.json",  # SafeL2: emits SafeMultiSigTransaction with every signature, for audit
    "proxy_factory": "proxies/SafeProxyFactory.sol/SafeProxyFactory.json",
    "fallback_handler": "handler/CompatibilityFallbackHandler.sol/CompatibilityFallbackHandler.json",
    "multi_send_call_only": "libraries/MultiSendCallOnly.sol/MultiSendCallOnly.json",
    "simulate_tx_accessor": "accessors/SimulateTxAccessor.sol/SimulateTxAccessor.json",
}
# Also checked, not deployed by us: the proxy each Safe is (its creation code is inside the factory).
CHECKED_ONLY = {"proxy": "proxies/SafeProxy.sol/SafeProxy.json"}
# Opcodes newer than Paris, which Geth's Clique sealing refuses (Shanghai: PUSH0; Cancun: the rest).
LATER_OPCODES = {0x5F: "PUSH0", 0x5C: "TLOAD", 0x5D: "TSTORE", 0x5E: "MCOPY", 0x49: "BLOBHASH", 0x4A: "BLOBBASEFEE"}
JUMPDEST = 0x5B
HALTS = {0x00, 0x56, 0xF3, 0xFD, 0xFE, 0xFF}  # STOP, JUMP, RETURN, REVERT, INVALID, SELFDESTRUCT
# solc's CBOR metadata (ipfs hash + compiler version) is data, not code: its bytes may look like any opcode.
_METADATA = re.compile(rb"\xa2\x64ipfs\x58\x22\x12\x20.{32}\x64solc\x43...\x00\x33", re.DOTALL)


class ArtifactError(DepositTokenError):
    """The Safe contracts are missing from node_modules or are not the pinned release."""


def package_dir() -> Path:
    return paths.NODE_MODULES / PACKAGE


@cache
def artifact(name: str) -> dict[str, Any]:
    """The npm build artifact (abi, bytecode, deployedBytecode) of one of `CONTRACTS`."""
    folder = package_dir()
    try:
        version = json.loads((folder / "package.json").read_text(encoding="utf-8"))["version"]
        relative = {**CONTRACTS, **CHECKED_ONLY}[name]
        content = json.loads((folder / "build" / "artifacts" / "contracts" / relative).read_text("utf-8"))
    except (OSError, ValueError, KeyError) as error:
        raise ArtifactError(
            f"the Safe contracts are not installed ({PACKAGE} in {folder}: {error}); run `npm ci`"
        ) from None
    if version != SAFE_VERSION:
        raise ArtifactError(f"{PACKAGE} {version} is installed, but the project uses {SAFE_VERSION}: run `npm ci`")
    return dict(content)


def abi(name: str) -> list[dict[str, Any]]:
    return list(artifact(name)["abi"])


def init_code(name: str) -> bytes:
    return bytes.fromhex(str(artifact(name)["bytecode"]).removeprefix("0x"))


def runtime_code(name: str) -> bytes:
    return bytes.fromhex(str(artifact(name)["deployedBytecode"]).removeprefix("0x"))


def runtime_code_hash(name: str) -> str:
    """keccak256 of the contract's runtime code as the artifact has it (what EXTCODEHASH returns once
    deployed: these contracts have no immutables)."""
    return "0x" + keccak(runtime_code(name)).hex()


def is_release_code(name: str, deployed: bytes, address: str) -> bool:
    """Whether `deployed` (the code at `address`) is the npm release's runtime code. SimulateTxAccessor keeps
    its own address in an immutable, which the artifact leaves as zeros: that word is zeroed before comparing."""
    word = bytes(12) + bytes.fromhex(address.removeprefix("0x"))
    return deployed.replace(word, bytes(32)) == runtime_code(name)


def later_opcodes(code: bytes) -> list[str]:
    """Names of the opcodes newer than Paris that `code` may execute: push data and metadata are skipped, and so
    is whatever follows a halting opcode up to the next JUMPDEST (solc puts string constants there, which no
    jump can reach). An unreachable byte read as code can only add a name: the check errs on refusing."""
    code = _METADATA.sub(b"", code)
    found: set[str] = set()
    index, reachable = 0, True
    while index < len(code):
        op = code[index]
        if not reachable:
            reachable = op == JUMPDEST
        if reachable and op in LATER_OPCODES:
            found.add(LATER_OPCODES[op])
        if reachable and op in HALTS:
            reachable = False
        index += 1 + (op - 0x5F if reachable and 0x60 <= op <= 0x7F else 0)
    return sorted(found)


def check_paris() -> None:
    """ArtifactError unless every Safe contract (init and runtime code) runs on the Paris EVM."""
    for name in [*CONTRACTS, *CHECKED_ONLY]:
        found = later_opcodes(init_code(name)) + later_opcodes(runtime_code(name))
        if found:
            raise ArtifactError(f"the Safe {name} code uses {', '.join(sorted(set(found)))}, which Paris lacks")

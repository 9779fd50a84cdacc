"""The token system's ABI, shipped inside the package: one merged list of the token's and its admin module's
functions, events and errors (the token forwards what it does not implement to the admin module by
DELEGATECALL, so at the token's address the callable surface and the emitted events are the union of both).

``deposit_token.json`` next to this file is written by ``python -m deposit_token.chain.abi export`` from ape's
compiled manifest (``make compile`` runs it) and committed, so an installed package, the audit indexer
(``python -m deposit_token.audit``) and revert decoding need no ape build. ``tests/unit/test_shipped_abi.py``
fails when it differs from what the current build gives. Deployment bytecode still comes from ape's build.

The merge is here and only here: `merge` (token first, then the module's items the token does not declare,
keyed by kind and canonical signature; constructors, fallback and receive are per contract and left out).
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping, Sequence
from functools import lru_cache
from pathlib import Path
from typing import Any

from eth_utils import keccak

from deposit_token import paths
from deposit_token.errors import DepositTokenError

ABI_FILE = Path(__file__).with_name("deposit_token.json")
TOKEN_CONTRACTS = ("DepositToken", "DepositTokenAdmin")  # the token first: its declarations win
SYSTEM_NAME = "DepositTokenSystem"
_PER_CONTRACT = ("constructor", "fallback", "receive")

AbiItem = dict[str, Any]


class AbiError(DepositTokenError):
    """The contracts' ABI cannot be loaded or does not fit what the code expects."""


def abi_type(param: Mapping[str, Any]) -> str:
    """The canonical type string of an ABI parameter, tuples expanded: ``(uint96,uint8,bool)[]``."""
    kind = str(param["type"])
    if kind.startswith("tuple"):
        inner = ",".join(abi_type(c) for c in param["components"])
        return f"({inner}){kind[5:]}"
    return kind


def abi_signature(item: Mapping[str, Any]) -> str:
    """``name(type,...)`` of a function, event or error."""
    return f"{item.get('name', '')}({','.join(abi_type(p) for p in item.get('inputs', []))})"


def selector(item: Mapping[str, Any]) -> bytes:
    """The 4-byte selector of a function or error."""
    return keccak(text=abi_signature(item))[:4]


def items_of(contract: Any) -> list[Mapping[str, Any]]:
    """The ABI items of `contract` as dicts: a list of ABI dicts, or anything with an `.abi` of them or of
    ape's ethpm_types models (a ContractType), so callers holding either get one code path."""
    items = getattr(contract, "abi", contract)
    return [item if isinstance(item, Mapping) else item.model_dump(by_alias=True, mode="json") for item in items]


def merge(parts: Iterable[Sequence[Mapping[str, Any]]]) -> list[AbiItem]:
    """The union of several contracts' ABIs: first declaration of each (kind, signature) wins."""
    merged: list[AbiItem] = []
    seen: set[tuple[str, str]] = set()
    for abi in parts:
        for item in abi:
            if item["type"] in _PER_CONTRACT:
                continue
            key = (str(item["type"]), abi_signature(item))
            if key not in seen:
                seen.add(key)
                merged.append(dict(item))
    return merged


def from_manifest(manifest: Path = paths.BUILD_MANIFEST) -> dict[str, Any]:
    """The shipped file's content as the current ape build (``.build/__local__.json``) gives it."""
    try:
        types = json.loads(manifest.read_text(encoding="utf-8"))["contractTypes"]
        parts = [types[name]["abi"] for name in TOKEN_CONTRACTS]
        source_id = types[TOKEN_CONTRACTS[0]].get("sourceId")
    except FileNotFoundError as err:
        raise AbiError(f"no compiled contracts at {manifest}: run `make compile` first") from err
    except (KeyError, ValueError) as err:
        raise AbiError(f"{manifest} has no ABI for {' and '.join(TOKEN_CONTRACTS)}: recompile") from err
    return {"contractName": SYSTEM_NAME, "sourceId": source_id, "contracts": list(TOKEN_CONTRACTS), "abi": merge(parts)}


def render(content: Mapping[str, Any]) -> str:
    """The shipped file's text (stable: one item per line, so diffs of a contract change are readable)."""
    items = ",\n".join("  " + json.dumps(item, sort_keys=True) for item in content["abi"])
    head = {k: v for k, v in content.items() if k != "abi"}
    return json.dumps(head, sort_keys=True)[:-1] + ', "abi": [\n' + items + "\n]}\n"


@lru_cache(maxsize=1)
def shipped() -> dict[str, Any]:
    """The shipped file's content ({"contractName", "sourceId", "contracts", "abi"})."""
    try:
        content: dict[str, Any] = json.loads(ABI_FILE.read_text(encoding="utf-8"))
    except FileNotFoundError as err:
        raise AbiError(f"{ABI_FILE} is missing: run `python -m deposit_token.chain.abi export`") from err
    except ValueError as err:
        raise AbiError(f"{ABI_FILE} is not JSON ({err}): run `python -m deposit_token.chain.abi export`") from err
    return content


def system_abi() -> list[AbiItem]:
    """The merged ABI (plain dicts, as in a compiler's output). Callers must not modify it."""
    return shipped()["abi"]  # type: ignore[no-any-return]  # parsed JSON: the list `export` wrote


def of_type(kind: str) -> list[AbiItem]:
    """The merged ABI's items of one kind: "function", "event" or "error"."""
    return [item for item in system_abi() if item["type"] == kind]

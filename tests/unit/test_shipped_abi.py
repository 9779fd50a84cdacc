"""The ABI shipped inside the package (deposit_token/chain/abi/deposit_token.json) is what the current build
gives, the merge keeps every error/event/function of both contracts, and everything that decodes reads it."""

from __future__ import annotations

import json

import pytest

from deposit_token import paths
from deposit_token.chain import abi


@pytest.mark.skipif(not paths.BUILD_MANIFEST.exists(), reason="no ape build (run `make compile`)")
def test_shipped_abi_equals_the_current_build() -> None:
    assert abi.ABI_FILE.read_text(encoding="utf-8") == abi.render(abi.from_manifest()), (
        "deposit_token/chain/abi/deposit_token.json is stale: run `python -m deposit_token.chain.abi export` "
        "(make compile does) and commit it"
    )


@pytest.mark.skipif(not paths.BUILD_MANIFEST.exists(), reason="no ape build (run `make compile`)")
def test_merge_is_the_union_of_both_contracts() -> None:
    types = json.loads(paths.BUILD_MANIFEST.read_text(encoding="utf-8"))["contractTypes"]
    merged = {(item["type"], abi.abi_signature(item)) for item in abi.system_abi()}
    for name in abi.TOKEN_CONTRACTS:
        own = {
            (item["type"], abi.abi_signature(item))
            for item in types[name]["abi"]
            if item["type"] in ("function", "event", "error")
        }
        assert own <= merged, f"{name}: {sorted(own - merged)[:5]}"
    assert len(merged) == len(abi.system_abi())  # no duplicates


def test_merge_keeps_the_first_declaration_and_drops_per_contract_items() -> None:
    token = [{"type": "constructor", "inputs": []}, {"type": "error", "name": "E", "inputs": [], "doc": "token"}]
    module = [
        {"type": "fallback"},
        {"type": "error", "name": "E", "inputs": [], "doc": "module"},
        {"type": "event", "name": "E", "inputs": []},
    ]
    assert abi.merge([token, module]) == [token[1], module[2]]


def test_the_package_ships_the_file() -> None:
    pyproject = (paths.ROOT / "pyproject.toml").read_text(encoding="utf-8")
    assert '"deposit_token.chain.abi" = ["*.json"]' in pyproject
    assert abi.of_type("error") and abi.of_type("event") and abi.of_type("function")

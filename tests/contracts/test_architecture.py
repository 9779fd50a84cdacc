"""Contract architecture checks: the token and its admin module (reached by DELEGATECALL from the token's fallback)
fit together, and the packed-slot names of the payment engine match the structs they read.

* Selectors: a function the token declares with the selector of a module function shadows it for good (the
  fallback never sees the call) and the client's merged ABI keeps only one of them. The only shared selectors
  allowed are the public functions both inherit from DepositTokenBase (the same code on the same storage).
* Storage: the module runs on the token's storage, so both contracts must have the same sequential layout; the
  module's own state (OpenZeppelin access control, initializer) lives in ERC-7201 namespaces, not in sequence.
* PackedSlots.sol: every field offset and mask named there equals the field's position and width in solc's
  storage layout of Account, ProgramRules and Spending.

Layouts and selectors come from solc's standard-JSON output (storageLayout, evm.methodIdentifiers) of the
checkout's sources; no bytecode is generated, so this takes a few seconds and needs no chain.
"""

from __future__ import annotations

import re
from pathlib import Path

import pytest
import solcx

ROOT = Path(__file__).resolve().parents[2]
TOKEN = ("contracts/token/DepositToken.sol", "DepositToken")
ADMIN = ("contracts/token/DepositTokenAdmin.sol", "DepositTokenAdmin")
BASE = ("contracts/token/DepositTokenBase.sol", "DepositTokenBase")
SOLC_VERSION = "0.8.30"
REMAPPINGS = [
    "@openzeppelin/contracts/=node_modules/@openzeppelin/contracts/",
    "@openzeppelin/contracts-upgradeable/=node_modules/@openzeppelin/contracts-upgradeable/",
]
# Slots the contract tests write directly with anvil_setStorageAt (tests/contracts/test_payment_engine_findings.py).
PINNED_SLOTS = {"_accounts": 7, "_rules": 9, "_spending": 15}


def _ensure_solc() -> None:
    if not any(str(v) == SOLC_VERSION for v in solcx.get_installed_solc_versions()):
        from deposit_token.chain.toolchain import install_solc

        install_solc()


@pytest.fixture(scope="module")
def solc_output() -> dict:
    _ensure_solc()
    sources = {
        str(path.relative_to(ROOT)): {"urls": [str(path)]}
        for path in (ROOT / "contracts").rglob("*.sol")
        if ".cache" not in path.parts
    }
    wanted = ["storageLayout", "evm.methodIdentifiers"]
    selection: dict[str, dict[str, list[str]]] = {}
    for source, name in (TOKEN, ADMIN, BASE):
        selection.setdefault(source, {})[name] = wanted
    standard_input = {
        "language": "Solidity",
        "sources": sources,
        "settings": {
            "remappings": REMAPPINGS,
            "evmVersion": "paris",
            "viaIR": True,
            "optimizer": {"enabled": True, "runs": 200},
            "outputSelection": selection,
        },
    }
    return solcx.compile_standard(
        standard_input, solc_version=SOLC_VERSION, allow_paths=[str(ROOT)], base_path=str(ROOT)
    )


def _contract(output: dict, which: tuple[str, str]) -> dict:
    source, name = which
    return output["contracts"][source][name]


def _selectors(output: dict, which: tuple[str, str]) -> dict[str, str]:
    """selector -> signature."""
    return {sel: sig for sig, sel in _contract(output, which)["evm"]["methodIdentifiers"].items()}


def _layout(output: dict, which: tuple[str, str]) -> list[tuple[str, str, int, str]]:
    """(label, slot, offset, type without AST ids) in declaration order."""
    return [
        (entry["label"], entry["slot"], entry["offset"], re.sub(r"\)\d+_", ")_", entry["type"]))
        for entry in _contract(output, which)["storageLayout"]["storage"]
    ]


def shadowed(token: dict[str, str], admin: dict[str, str], base: dict[str, str]) -> dict[str, tuple[str, str]]:
    """Module functions the token shadows: shared selectors other than DepositTokenBase's own public functions
    (EIP712.eip712Domain, Nonces.nonces), which are the same code on the same storage in both contracts."""
    return {
        sel: (token[sel], admin[sel])
        for sel in set(token) & set(admin)
        if sel not in base or token[sel] != base[sel] or admin[sel] != base[sel]
    }


def test_token_and_module_selectors_never_overlap(solc_output):
    token, admin, base = (_selectors(solc_output, c) for c in (TOKEN, ADMIN, BASE))
    assert len(token) >= 15 and len(admin) >= 40
    clash = shadowed(token, admin, base)
    assert not clash, f"token functions shadow admin-module functions (the fallback never reaches them): {clash}"
    assert set(token) & set(admin) == set(base), "DepositTokenBase's public functions exist in both contracts"


def test_selector_check_sees_a_clash_of_different_names():
    """Selectors, not names, are compared: a token function with a module function's selector is reported even
    when the names differ, and so is a same-named function both declare outside the shared base."""
    base = {"7ecebe00": "nonces(address)"}
    token = {"7ecebe00": "nonces(address)", "a9059cbb": "transfer(address,uint256)", "12345678": "x()"}
    admin = {"7ecebe00": "nonces(address)", "12345678": "y(uint256)", "a9059cbb": "transfer(address,uint256)"}
    assert shadowed(token, admin, base) == {
        "12345678": ("x()", "y(uint256)"),
        "a9059cbb": ("transfer(address,uint256)", "transfer(address,uint256)"),
    }


def test_token_and_module_share_one_storage_layout(solc_output):
    token, admin, base = (_layout(solc_output, c) for c in (TOKEN, ADMIN, BASE))
    assert token == admin == base, "the module must declare no sequential state of its own (use ERC-7201)"
    slots = {label: int(slot) for label, slot, _, _ in token}
    assert {label: slots[label] for label in PINNED_SLOTS} == PINNED_SLOTS


def test_module_state_is_namespaced():
    """The module's own state (roles, admin handover, initializer) is OpenZeppelin's ERC-7201 storage."""
    source = (ROOT / ADMIN[0]).read_text()
    assert re.search(r"is DepositTokenBase, AccessControlDefaultAdminRulesUpgradeable", source)
    for path in (
        "contracts-upgradeable/access/AccessControlUpgradeable.sol",
        "contracts-upgradeable/access/extensions/AccessControlDefaultAdminRulesUpgradeable.sol",
        "contracts/proxy/utils/Initializable.sol",
    ):
        text = (ROOT / "node_modules/@openzeppelin" / path).read_text()
        assert "@custom:storage-location erc7201:" in text, path


# --- PackedSlots.sol names against solc's struct layout ------------------------------------------------------------

# (offset constant or None for a field at bit 0, mask constant, struct, member)
FIELDS = [
    (None, "ACCOUNT_BALANCE_MASK", "Account", "balance"),
    ("ACCOUNT_KIND", "ACCOUNT_KIND_MASK", "Account", "kind"),
    ("ACCOUNT_FROZEN", "ACCOUNT_FLAG_MASK", "Account", "frozen"),
    ("ACCOUNT_SUSPENDED", "ACCOUNT_FLAG_MASK", "Account", "suspended"),
    ("ACCOUNT_CATEGORY", "ACCOUNT_CATEGORY_MASK", "Account", "category"),
    ("ACCOUNT_PROGRAM", "ACCOUNT_PROGRAM_MASK", "Account", "programId"),
    (None, "RULES_VERSION_MASK", "ProgramRules", "version"),
    ("RULES_HALTED", "RULES_HALTED_MASK", "ProgramRules", "halted"),
    ("RULES_START", "RULES_TIME_MASK", "ProgramRules", "start"),
    ("RULES_END", "RULES_TIME_MASK", "ProgramRules", "end"),
    ("RULES_OFFSET", "RULES_OFFSET_MASK", "ProgramRules", "utcOffsetMinutes"),
    ("RULES_CATEGORIES", "RULES_CATEGORIES_MASK", "ProgramRules", "categories"),
    ("RULES_HOURS", None, "ProgramRules", "openingHours"),
    (None, "SPENDING_PERIOD_MASK", "Spending", "period"),
    ("SPENDING_PERIOD_END", "SPENDING_TIME_MASK", "Spending", "periodEnd"),
    ("SPENDING_VERSION", "SPENDING_VERSION_MASK", "Spending", "version"),
    ("SPENDING_SPENT", "SPENDING_AMOUNT_MASK", "Spending", "spent"),
    ("SPENDING_CAP", "SPENDING_AMOUNT_MASK", "Spending", "cap"),
    ("SPENDING_LIMIT", "SPENDING_LIMIT_MASK", "Spending", "perPaymentLimit"),
    ("SPENDING_THRESHOLD", "SPENDING_LIMIT_MASK", "Spending", "evidenceThreshold"),
]


def _constants(path: str) -> dict[str, int]:
    text = (ROOT / path).read_text()
    return {
        name: int(value, 0)
        for name, value in re.findall(r"^uint256 constant (\w+) = (0x[0-9a-fA-F]+|\d+);", text, re.M)
    }


def _members(output: dict) -> dict[tuple[str, str], tuple[int, int]]:
    """(struct, member) -> (bit offset, bit width)."""
    types = _contract(output, TOKEN)["storageLayout"]["types"]
    result = {}
    for key, entry in types.items():
        match = re.match(r"t_struct\((\w+)\)\d+_storage$", key)
        if not match:
            continue
        for member in entry["members"]:
            assert member["slot"] == "0", f"{match[1]} no longer fits one slot"
            result[match[1], member["label"]] = (8 * member["offset"], 8 * int(types[member["type"]]["numberOfBytes"]))
    return result


def test_packed_slot_names_match_the_struct_layout(solc_output):
    k = _constants("contracts/libraries/PackedSlots.sol")
    members = _members(solc_output)
    named = {name for field in FIELDS for name in field[:2] if name}
    for offset_name, mask_name, struct, member in FIELDS:
        offset, width = members[struct, member]
        assert (k[offset_name] if offset_name else 0) == offset, (struct, member)
        if mask_name:
            assert k[mask_name] == (1 << width) - 1, (struct, member)
    # Every member of the three packed structs is named.
    packed = {(s, m) for (s, m) in members if s in ("Account", "ProgramRules", "Spending")}
    assert packed == {(s, m) for _, _, s, m in FIELDS}
    # Compound status masks: kind | frozen (spender) and kind | frozen | suspended (vendor), contiguous from kind.
    kind, frozen, suspended = (members["Account", m] for m in ("kind", "frozen", "suspended"))
    assert frozen[0] == kind[0] + kind[1] and suspended[0] == frozen[0] + frozen[1]
    assert k["ACCOUNT_SPENDER_STATUS_MASK"] == (1 << (kind[1] + frozen[1])) - 1
    assert k["ACCOUNT_VENDOR_STATUS_MASK"] == (1 << (kind[1] + frozen[1] + suspended[1])) - 1
    # ACTIVE_*: the Kind enum's value with the flags clear.
    enum = re.search(r"enum Kind \{([^}]*)\}", (ROOT / "contracts/interfaces/IDepositTokenTypes.sol").read_text())[1]
    kinds = [name.strip() for name in enum.split(",")]
    assert k["ACTIVE_SPENDER"] == kinds.index("Spender") and k["ACTIVE_VENDOR"] == kinds.index("Vendor")
    # Opening hours: seven 10-bit days of two 5-bit hours fit the field; hours up to 24 fit the hour mask.
    hours_width = members["ProgramRules", "openingHours"][1]
    assert k["HOURS_DAY_BITS"] * k["HOURS_DAYS"] <= hours_width
    assert k["HOURS_CLOSING"] * 2 == k["HOURS_DAY_BITS"] and k["HOURS_FIELD_MASK"] == (1 << k["HOURS_CLOSING"]) - 1
    assert k["HOURS_FIELD_MASK"] >= 24
    # The category set is 64 bits: the highest category a vendor can be registered in is 63.
    assert k["RULES_CATEGORIES_MASK"].bit_length() == 64
    assert named <= set(k)


@pytest.mark.parametrize("path", ["contracts/token/PaymentEngine.sol", "contracts/libraries/PackedSlots.sol"])
def test_no_literal_offsets_or_masks_in_the_payment_engine(path):
    """Shifts and masks of slot fields go through the named constants (a memory offset like 0x20 is not a field)."""
    code = "\n".join(
        line.split("//")[0]
        for line in (ROOT / path).read_text().splitlines()
        if not line.lstrip().startswith(("///", "//", "*"))
    )
    code = re.sub(r"^uint256 constant .*$", "", code, flags=re.M)
    assert not re.findall(r"\b(?:shr|shl)\(\s*\d+", code), "literal shift in assembly"
    assert not re.findall(r"(?:>>|<<)\s*\d+\b", code), "literal shift"
    assert not re.findall(r"&\s*(?:0x[0-9a-fA-F]+|\d+)\b", code.replace("& 1 ", "").replace("& 1)", "")), "literal mask"
    assert not re.findall(r"\band\([^()]*,\s*(?:0x[0-9a-fA-F]+|\d+)\)", code.replace(", 1)", ")")), (
        "literal mask in assembly"
    )
    assert not re.findall(r"\b(?:uint(?:8|16|24|40|48|96)|int16)\(\s*(?:uint16\()?\s*[a-z]\w*\s*>>", code), (
        "cast used as a mask"
    )

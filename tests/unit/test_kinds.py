"""The Python names of the contracts' small numbers match the Solidity that defines them: ``Kind`` against
``enum Kind`` in IDepositTokenTypes.sol, ``Restriction`` against the constants of Restrictions.sol. Renaming,
adding or renumbering on one side only fails here."""

from __future__ import annotations

import re

from deposit_token.domain.kinds import Kind, Restriction, kind_label, kind_phrase, restriction_label
from deposit_token.paths import CONTRACTS_DIR as CONTRACTS


def solidity_kind_enum() -> list[str]:
    source = (CONTRACTS / "interfaces/IDepositTokenTypes.sol").read_text(encoding="utf-8")
    body = re.search(r"enum Kind \{([^}]*)\}", source)
    assert body, "enum Kind not found in IDepositTokenTypes.sol"
    return [name.strip() for name in body[1].split(",") if name.strip()]


def solidity_restriction_codes() -> dict[str, int]:
    source = (CONTRACTS / "libraries/Restrictions.sol").read_text(encoding="utf-8")
    codes = {name: int(value) for name, value in re.findall(r"uint8 internal constant (\w+) = (\d+);", source)}
    assert codes, "no constants found in Restrictions.sol"
    return codes


def test_kind_is_the_solidity_enum():
    assert [(kind.name, kind.value) for kind in Kind] == [
        (name.upper(), index) for index, name in enumerate(solidity_kind_enum())
    ]


def test_restriction_is_the_solidity_constants():
    assert {code.name: code.value for code in Restriction} == solidity_restriction_codes()


def test_every_code_has_a_distinct_label():
    labels = [code.label for code in Restriction]
    assert len(set(labels)) == len(labels) and all(labels)


def test_raw_numbers_from_the_chain_are_named_and_unknown_ones_shown():
    assert kind_label(2) == "spender" and kind_label(0) == "unregistered" and kind_label(9) == "kind 9"
    assert kind_phrase(1) == "a treasury" and kind_phrase(0) == "an unregistered address"
    assert kind_phrase(7) == "7" and kind_phrase(7, "an account") == "an account"
    assert restriction_label(13) == "over category cap" and restriction_label(99) == "99"
    assert Kind.VENDOR == 3 and Restriction.OK == 0  # IntEnum: equal to the raw numbers the chain returns

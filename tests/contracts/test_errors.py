"""Every revert the token can produce has a sentence naming the rule, and real reverts come out readable."""

from __future__ import annotations

import pytest
from support.system import pay

from deposit_token.chain.contracts import system_contract_type
from deposit_token.chain.reverts import explain
from deposit_token.domain.sentences import SENTENCES, describe


def error_abis():
    return [abi for abi in system_contract_type().abi if abi.type == "error"]


def test_every_error_in_the_abi_has_a_sentence():
    missing = sorted({abi.name for abi in error_abis()} - set(SENTENCES))
    assert not missing, f"errors without a sentence: {missing}"


@pytest.mark.parametrize("abi", error_abis(), ids=lambda abi: abi.name)
def test_sentence_renders_with_typical_inputs(abi):
    samples = {"address": "0x" + "ab" * 20, "bool": True, "string": "x", "bytes32": b"\x01" * 32}
    inputs = {}
    for arg in abi.inputs:
        kind = arg.type
        inputs[arg.name] = samples.get(kind, 1 if kind.startswith("uint") or kind.startswith("int") else b"\x01")
    sentence = describe(abi.name, inputs)
    assert sentence and abi.name not in sentence


def test_real_revert_is_explained_with_program_and_category_names(system):
    t, p = system.token, system.people
    with pytest.raises(Exception) as caught:
        pay(system, p.spenders[0], p.bar, 10_000)
    sentence = explain(caught.value, token=t)
    assert sentence == (
        f"vendor {p.bar.address} is in category ENTERTAINMENT_BAR, which program 'BP-2030-MOEF' does not allow"
    )


def test_role_revert_names_the_role(system):
    t, p = system.token, system.people
    with pytest.raises(Exception) as caught:
        t.pause(sender=p.outsider)
    assert explain(caught.value, token=t) == f"{p.outsider.address} does not hold COMPLIANCE_ROLE"

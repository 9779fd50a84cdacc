"""The fast submission path (`deposit_token.chain.submit`) against the test session's Anvil.

ape-foundry's Anvil mines each transaction as it arrives and has a non-zero base fee, so these tests also show
that the Submitter takes its gas price from the node when none is given. Both ways of confirming transactions
(batched receipts; block traces) are exercised.
"""

from __future__ import annotations

import copy
import os
import pickle
from itertools import count
from types import SimpleNamespace

import pytest
from eth_account import Account
from eth_utils import keccak
from support.system import b32

from deposit_token.chain.contracts import system_contract_type
from deposit_token.chain.submit import LocalSigner, SubmitError, Submitter, TxRequest, encode_call, sign_legacy
from deposit_token.processes import free_port

ZERO = b"\0" * 32
PAY_GAS = 200_000
_invoices = count(5000)


@pytest.fixture(scope="module")
def abi():
    return system_contract_type()


@pytest.fixture
def submitter(chain):
    with Submitter(chain.provider.uri, chain.chain_id, batch_size=7, confirm="receipts") as s:
        yield s


def pay(abi, system, signer: LocalSigner, vendor, amount: int) -> TxRequest:
    """A payment with a fresh invoice number as receipt id (one invoice, one payment)."""
    data = encode_call(abi, "pay", [vendor, amount, b32(next(_invoices)), ZERO])
    return TxRequest(signer, system.token.address, data, PAY_GAS)


def node_nonce(chain, address: str) -> int:
    return chain.provider.web3.eth.get_transaction_count(address, "pending")


def tx_nonce(chain, tx_hash: str) -> int:
    return chain.provider.web3.eth.get_transaction(tx_hash)["nonce"]


# --- signing ---------------------------------------------------------------------------------------------------


def test_signatures_are_byte_identical_to_eth_account():
    key = keccak(text="test_submit: a key")
    signer = LocalSigner(key)
    assert signer.address == Account.from_key(key).address
    to = Account.from_key(keccak(text="test_submit: someone")).address
    cases = [
        (0, 0, 21_000, to, 0, b""),
        (1, 10**9 + 7, 200_000, to, 5, b"\x01"),
        (127, 0, 200_000, to, 0, b"\x80" + bytes(54)),
        (128, 3, 90_000, to, 0, os.urandom(56)),
        (70_000, 2**40, 8_000_000, None, 0, os.urandom(5_000)),  # a deployment (no `to`), long init code
    ]
    for chain_id in (1, 31337, 20261):
        for nonce, gas_price, gas, recipient, value, data in cases:
            raw, tx_hash = sign_legacy(
                signer,
                nonce=nonce,
                gas_price=gas_price,
                gas=gas,
                to=recipient,
                value=value,
                data=data,
                chain_id=chain_id,
            )
            tx = {"nonce": nonce, "gasPrice": gas_price, "gas": gas, "value": value, "data": data, "chainId": chain_id}
            if recipient:
                tx["to"] = recipient
            expected = Account.sign_transaction(tx, key)
            assert raw == bytes(expected.raw_transaction)
            assert tx_hash == bytes(expected.hash)


def test_signatures_with_a_short_r_or_s_are_byte_identical_to_eth_account():
    """r or s below 2**248 (1 signature in about 128) is encoded in RLP without its leading zero bytes."""
    key = keccak(text="test_submit: a key")
    signer = LocalSigner(key)
    to = Account.from_key(keccak(text="test_submit: someone")).address
    short = 0
    for nonce in range(400):
        raw, tx_hash = sign_legacy(
            signer, nonce=nonce, gas_price=0, gas=150_000, to=to, value=0, data=b"\x01" * 132, chain_id=20261
        )
        tx = {"nonce": nonce, "gasPrice": 0, "gas": 150_000, "to": to, "value": 0, "data": b"\x01" * 132}
        expected = Account.sign_transaction({**tx, "chainId": 20261}, key)
        assert (raw, tx_hash) == (bytes(expected.raw_transaction), bytes(expected.hash))
        short += expected.r < 2**248 or expected.s < 2**248
    assert short  # the case was covered


def test_signer_never_shows_its_key(accounts):
    key = keccak(text="test_submit: a secret")
    signer = LocalSigner(key)
    for text in (repr(signer), str(signer), f"{signer}", repr([signer])):
        assert key.hex() not in text.lower() and signer.address in text
    with pytest.raises(TypeError):
        pickle.dumps(signer)
    assert copy.deepcopy(signer) is signer  # shared, never duplicated (dataclasses.asdict of an outcome works)
    assert LocalSigner.from_account(accounts[3]).address == accounts[3].address
    with pytest.raises(ValueError, match="32 bytes"):
        LocalSigner(b"\x01" * 31)


def test_signer_from_keyfile_and_ape_passphrase_variable(monkeypatch):
    key = keccak(text="test_submit: keyfile")
    keyfile = Account.encrypt(key, "correct horse", kdf="pbkdf2", iterations=2)
    assert LocalSigner.from_keyfile(keyfile, "correct horse").address == Account.from_key(key).address
    with pytest.raises(ValueError, match="passphrase does not unlock"):
        LocalSigner.from_keyfile(keyfile, "wrong")

    # what ape's keystore account (KeyfileAccount) exposes: an alias and the encrypted keyfile
    account = SimpleNamespace(alias="submit_test_treasury", keyfile=dict(keyfile))
    monkeypatch.setenv("APE_ACCOUNTS_submit_test_treasury_PASSPHRASE", "correct horse")
    assert LocalSigner.from_ape_account(account).address == Account.from_key(key).address
    monkeypatch.setenv("APE_ACCOUNTS_submit_test_treasury_PASSPHRASE", "wrong")
    with pytest.raises(ValueError, match="'submit_test_treasury'"):
        LocalSigner.from_ape_account(account)


def test_encode_call_matches_ape(system, abi):
    p = system.people
    args = (p.restaurant.address, 35_000, b32(1001), b32("evidence"))
    assert encode_call(abi, "pay", args) == bytes(system.token.pay.encode_input(*args))
    args = (b32(7), 1, [s.address for s in p.spenders], [10] * len(p.spenders))
    assert encode_call(abi, "allocate", args) == bytes(system.token.allocate.encode_input(*args))
    with pytest.raises(ValueError, match="no function nonsense"):
        encode_call(abi, "nonsense", [])


# --- submitting ------------------------------------------------------------------------------------------------


# batch_size 500: the first batch is the submitter's small opening one (16), the rest follows in a second
@pytest.mark.parametrize(("confirm", "batch_size"), [("receipts", 7), ("traces", 7), ("traces", 500)])
def test_payments_from_several_spenders_land_with_consecutive_nonces(system, chain, abi, confirm, batch_size):
    p = system.people
    signers = [LocalSigner.from_account(s) for s in p.spenders]
    start = {s.address: node_nonce(chain, s.address) for s in signers}
    vendors = [p.restaurant, p.cafe]
    before = {v.address: system.token.balanceOf(v) for v in vendors}
    requests = [pay(abi, system, signers[i % len(signers)], vendors[i % 2], 1_000 + i) for i in range(30)]
    seen = []
    with Submitter(chain.provider.uri, chain.chain_id, batch_size=batch_size, confirm=confirm) as submitter:
        outcomes = submitter.submit(requests, progress=lambda phase, done, total: seen.append((phase, done, total)))

    assert [o.request for o in outcomes] == requests
    assert all(o.status and o.error is None and o.block_number for o in outcomes), [o.error for o in outcomes]
    for signer in signers:
        mine = [o for o in outcomes if o.request.signer is signer]
        expected = list(range(start[signer.address], start[signer.address] + len(mine)))
        assert [o.nonce for o in mine] == expected
        assert [tx_nonce(chain, o.tx_hash) for o in mine] == expected
        assert node_nonce(chain, signer.address) == expected[-1] + 1
    for v in vendors:
        paid = sum(1_000 + i for i in range(30) if vendors[i % 2] is v)
        assert system.token.balanceOf(v) == before[v.address] + paid
    assert ("sent", 30, 30) in seen and seen[-1] == ("mined", 30, 30)
    sent = [done for phase, done, _ in seen if phase == "sent"]
    assert sent == ([7, 14, 21, 28, 30] if batch_size == 7 else [16, 30])  # batches: full ones, or 16 then the rest
    if confirm == "receipts":
        assert all(o.gas_used and o.gas_used < PAY_GAS for o in outcomes)


@pytest.mark.parametrize("confirm", ["receipts", "traces"])
def test_a_failing_payment_is_explained_and_does_not_block_the_others(system, chain, abi, confirm):
    p = system.people
    first, second = (LocalSigner.from_account(s) for s in p.spenders[:2])
    requests = [
        pay(abi, system, first, p.restaurant, 10_000),
        pay(abi, system, first, p.bar, 10_000),  # a restricted category: the rule refuses it
        pay(abi, system, first, p.restaurant, 20_000),  # the same spender's next nonce still lands
        pay(abi, system, second, p.cafe, 5_000),
        pay(abi, system, second, p.restaurant, 2_000_000),  # above the per-payment limit of 1,000,000
    ]
    before = system.token.balanceOf(p.restaurant)
    with Submitter(chain.provider.uri, chain.chain_id, batch_size=2, confirm=confirm) as submitter:
        outcomes = submitter.submit(requests)

    assert [o.status for o in outcomes] == [True, False, True, True, False]
    refused = outcomes[1]
    assert refused.tx_hash and refused.block_number and refused.gas_used
    assert "category ENTERTAINMENT_BAR" in refused.error and "'BP-2030-MOEF' does not allow" in refused.error
    assert "per-payment limit of 1,000,000 KRW" in outcomes[4].error
    assert system.token.balanceOf(p.restaurant) == before + 30_000
    assert all(o.error is None for o in outcomes if o.status)


def test_nonces_continue_across_submits_and_other_senders(system, chain, abi, submitter):
    p = system.people
    spender = p.spenders[2]
    signer = LocalSigner.from_account(spender)
    start = node_nonce(chain, signer.address)
    first = submitter.submit([pay(abi, system, signer, p.cafe, 1_000 + i) for i in range(3)])
    system.token.pay(p.cafe, 777, ZERO, ZERO, sender=spender)  # the same wallet used elsewhere in between
    second = submitter.submit([pay(abi, system, signer, p.cafe, 2_000 + i) for i in range(3)])
    assert all(o.status for o in first + second)
    assert [o.nonce for o in first] == [start, start + 1, start + 2]
    assert [o.nonce for o in second] == [start + 4, start + 5, start + 6]
    assert node_nonce(chain, signer.address) == start + 7


def test_out_of_gas_is_named(system, chain, abi, submitter):
    signer = LocalSigner.from_account(system.people.spenders[3])
    request = pay(abi, system, signer, system.people.restaurant, 1_000)
    (outcome,) = submitter.submit([TxRequest(request.signer, request.to, request.data, 30_000)])
    assert not outcome.status and "ran out of gas" in outcome.error


def test_a_transaction_the_node_refuses_does_not_hold_back_later_ones(system, chain, abi, submitter):
    p = system.people
    signer = LocalSigner.from_account(p.spenders[4])
    start = node_nonce(chain, signer.address)
    too_big = pay(abi, system, signer, p.restaurant, 1_000)
    too_big = TxRequest(too_big.signer, too_big.to, too_big.data, 10**12)  # above the block gas limit
    later = [pay(abi, system, signer, p.restaurant, 1_500), pay(abi, system, signer, p.cafe, 2_500)]
    outcomes = submitter.submit([too_big, *later])
    assert outcomes[0].status is False and outcomes[0].tx_hash is None
    assert outcomes[0].error.startswith("the node refused the transaction")
    assert all(o.status for o in outcomes[1:]), [o.error for o in outcomes[1:]]
    # the refused nonce was filled by a no-op transfer, so the later payments were not stuck behind it
    assert node_nonce(chain, signer.address) == start + 3


def test_unreachable_node_or_wrong_chain_is_a_clear_error(system, chain, abi):
    signer = LocalSigner.from_account(system.people.spenders[0])
    request = pay(abi, system, signer, system.people.restaurant, 1_000)
    url = f"http://127.0.0.1:{free_port()}"
    with pytest.raises(SubmitError, match=f"cannot reach the JSON-RPC endpoint {url}"):
        Submitter(url, 20261).submit([request])
    with pytest.raises(SubmitError, match=f"serves chain id {chain.chain_id}, not 20261"):
        Submitter(chain.provider.uri, 20261).submit([request])
    assert Submitter(url, 20261).submit([]) == []  # nothing to send: nothing asked

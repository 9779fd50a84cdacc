"""Gasless payment by signature: the official signs offline, only the named vendor can submit, once."""

from __future__ import annotations

from dataclasses import replace
from datetime import timedelta
from itertools import count

import ape
import pytest
from eth_account import Account
from support.system import MONDAY_10, b32, set_time, ts

from deposit_token.ops.authorization import (
    Domain,
    PaymentAuthorization,
    SignedAuthorization,
    new_nonce,
    sign_authorization,
    sign_cancellation,
)

ZERO_HEX = "0x" + "00" * 32


@pytest.fixture
def official(system):
    """An enrolled, funded official whose key exists only here (it never sends a transaction)."""
    t, p = system.token, system.people
    key = Account.create()
    t.enrol([key.address], system.bp, [b32("MOEF")], sender=p.manager)
    t.allocate(b32("auth-official"), system.bp, [key.address], [300_000], sender=p.manager)
    return key


def authorization_of(payer, vendor, amount, receipt=ZERO_HEX, hours=1, nonce=None) -> PaymentAuthorization:
    return PaymentAuthorization(
        payer=payer.address,
        vendor=vendor.address,
        amount=amount,
        receipt_id=receipt,
        evidence_hash=ZERO_HEX,
        valid_after=ts(MONDAY_10) - 60,
        valid_before=ts(MONDAY_10 + timedelta(hours=hours)),
        nonce=nonce or new_nonce(),
    )


def authorize(system, official, vendor, amount, receipt=ZERO_HEX, hours=1, nonce=None):
    auth = authorization_of(official, vendor, amount, receipt, hours, nonce)
    return sign_authorization(auth, Domain.of(system.token), official.key)


def test_vendor_collects_a_signed_payment(system, official):
    t, p = system.token, system.people
    signed = authorize(system, official, p.restaurant, 42_000, receipt="0x" + b32(9001).hex())
    # It travels as JSON (QR code, NFC, file) and holds no secret.
    carried = SignedAuthorization.from_json(signed.to_json())
    assert official.key.hex()[2:] not in signed.to_json().decode()
    receipt = t.receiveWithAuthorization(*carried.contract_args(), sender=p.restaurant)
    assert [e.event_name for e in receipt.events] == ["AuthorizationUsed", "Transfer", "Payment"]
    assert receipt.events[2].payer == official.address and receipt.events[2].receiptId == b32(9001)
    assert t.balanceOf(official.address) == 258_000
    assert t.authorizationState(official.address, bytes.fromhex(signed.authorization.nonce[2:]))
    assert chain_nonce(official.address) == 0  # the official never sent a transaction


def chain_nonce(address):
    from ape import chain

    return chain.provider.get_nonce(address)


def test_replay_and_third_party_submission_fail(system, official):
    t, p = system.token, system.people
    signed = authorize(system, official, p.restaurant, 10_000)
    with ape.reverts(t.CallerNotPayee, caller=p.outsider.address, vendor=p.restaurant.address):
        t.receiveWithAuthorization(*signed.contract_args(), sender=p.outsider)
    with ape.reverts(t.CallerNotPayee):  # not even the payer's other vendor can take it
        t.receiveWithAuthorization(*signed.contract_args(), sender=p.cafe)
    t.receiveWithAuthorization(*signed.contract_args(), sender=p.restaurant)
    nonce = bytes.fromhex(signed.authorization.nonce[2:])
    with ape.reverts(t.AuthorizationAlreadyUsed, payer=official.address, nonce=nonce):
        t.receiveWithAuthorization(*signed.contract_args(), sender=p.restaurant)


def test_tampered_terms_are_refused(system, official):
    t, p = system.token, system.people
    signed = authorize(system, official, p.restaurant, 10_000)
    args = list(signed.contract_args())
    args[2] = 99_000  # the vendor raises the amount
    with ape.reverts(t.InvalidAuthorizationSigner, payer=official.address):
        t.receiveWithAuthorization(*args, sender=p.restaurant)


def test_validity_window(system, official, chain):
    t, p = system.token, system.people
    signed = authorize(system, official, p.restaurant, 10_000, hours=1)
    set_time(chain, MONDAY_10 + timedelta(hours=2))
    with ape.reverts(t.AuthorizationExpired, validBefore=signed.authorization.valid_before):
        t.receiveWithAuthorization(*signed.contract_args(), sender=p.restaurant)
    later = PaymentAuthorization(
        **{
            **signed.authorization.__dict__,
            "valid_after": ts(MONDAY_10 + timedelta(days=1)),
            "valid_before": ts(MONDAY_10 + timedelta(days=2)),
            "nonce": new_nonce(),
        }
    )
    early = sign_authorization(later, Domain.of(t), official.key)
    with ape.reverts(t.AuthorizationNotYetValid, validAfter=later.valid_after):
        t.receiveWithAuthorization(*early.contract_args(), sender=p.restaurant)


def test_same_rules_apply(system, official):
    t, p = system.token, system.people
    signed = authorize(system, official, p.bar, 10_000)
    with ape.reverts(t.CategoryNotAllowed):
        t.receiveWithAuthorization(*signed.contract_args(), sender=p.bar)
    big = authorize(system, official, p.restaurant, 600_000)
    with ape.reverts(t.EvidenceRequired):
        t.receiveWithAuthorization(*big.contract_args(), sender=p.restaurant)
    # A refused authorization is not consumed.
    assert not t.authorizationState(official.address, bytes.fromhex(big.authorization.nonce[2:]))


def test_payer_cancels_an_unused_authorization(system, official):
    t, p = system.token, system.people
    signed = authorize(system, official, p.restaurant, 10_000)
    domain = Domain.of(t)
    nonce = signed.authorization.nonce
    stranger = Account.create()
    with ape.reverts(t.InvalidAuthorizationSigner, signer=stranger.address, payer=official.address):
        t.cancelAuthorization(
            official.address,
            bytes.fromhex(nonce[2:]),
            *sign_cancellation(official.address, nonce, domain, stranger.key),
            sender=p.outsider,
        )
    receipt = t.cancelAuthorization(
        official.address,
        bytes.fromhex(nonce[2:]),
        *sign_cancellation(official.address, nonce, domain, official.key),
        sender=p.outsider,
    )
    assert receipt.events[0].event_name == "AuthorizationCanceled"
    with ape.reverts(t.AuthorizationAlreadyUsed):
        t.receiveWithAuthorization(*signed.contract_args(), sender=p.restaurant)


def short(word: str | bytes) -> bool:
    """Whether a signature's r or s has a zero top byte (the case ape's accounts give as 31 bytes or fewer)."""
    return (int(word, 16) if isinstance(word, str) else int.from_bytes(word, "big")) < 1 << 248


def test_an_ape_accounts_signature_with_a_zero_top_byte_is_collected_and_cancelled(system):
    """The commands sign with ape accounts (keys in ape's keystore), whose r and s come as minimal bytes: about one
    signature in 128 has a zero top byte in one of them. Those must reach the contract as the same 32-byte words
    (before, `vendor collect` said "the signature is not valid")."""
    t, p = system.token, system.people
    payer, domain = p.spenders[0], Domain.of(t)
    for n in count():
        auth = authorization_of(payer, p.restaurant, 10_000, nonce="0x" + b32(n).hex())
        signed = sign_authorization(auth, domain, payer)
        if short(signed.r) or short(signed.s):
            break
    assert len(signed.r) == len(signed.s) == 66
    # a file written before the words were padded holds the short form: it is read by value and works too
    written_before = replace(signed, r=hex(int(signed.r, 16)), s=hex(int(signed.s, 16)))
    assert written_before.contract_args() == signed.contract_args()
    receipt = t.receiveWithAuthorization(*written_before.contract_args(), sender=p.restaurant)
    assert receipt.events[-1].event_name == "Payment" and receipt.events[-1].payer == payer.address
    for m in count(n + 1):
        nonce = "0x" + b32(m).hex()
        v, r, s = sign_cancellation(payer.address, nonce, domain, payer)
        if short(r) or short(s):
            break
    assert len(r) == len(s) == 32
    receipt = t.cancelAuthorization(payer.address, bytes.fromhex(nonce[2:]), v, r, s, sender=p.outsider)
    assert receipt.events[0].event_name == "AuthorizationCanceled"


def test_bad_authorizations_are_rejected_before_signing(official, system):
    p = system.people
    base = dict(
        payer=official.address,
        vendor=p.restaurant.address,
        amount=1,
        receipt_id=ZERO_HEX,
        evidence_hash=ZERO_HEX,
        valid_after=0,
        valid_before=10,
        nonce=new_nonce(),
    )
    for change, message in (
        ({"amount": 0}, "amount"),
        ({"vendor": "0x123"}, "vendor"),
        ({"valid_before": 0}, "valid_before"),
        ({"nonce": "0x12"}, "nonce"),
    ):
        with pytest.raises(ValueError, match=message):
            PaymentAuthorization(**{**base, **change})
    with pytest.raises(ValueError, match="payer"):
        sign_authorization(
            PaymentAuthorization(**base), Domain("x", "1", 1, p.restaurant.address), Account.create().key
        )
    with pytest.raises(ValueError, match="not a signed payment authorization"):
        SignedAuthorization.from_json(b'{"payer": 1}')

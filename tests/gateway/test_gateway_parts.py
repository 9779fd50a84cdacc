"""The gateway's parts that need no node: sender recovery against eth_account, the key file, the rate limit's
bucket, the role policy. (tests/gateway/test_gateway.py runs the whole gateway against Anvil.)"""

from __future__ import annotations

import json
import math
import os
import stat

import pytest
from eth_account import Account

from deposit_token.gateway import policy
from deposit_token.gateway.keys import KeyStore, KeyStoreError, hash_key
from deposit_token.gateway.limits import Bucket
from deposit_token.gateway.policy import Code, Refusal, Role, method_refusal
from deposit_token.gateway.transactions import decode

KEY = bytes.fromhex("4c0883a69102937d6231471b5dbb6204fe5129617082792ae468d01a3f362318")
TO = "0x" + "11" * 20
TRANSACTIONS = {
    "legacy EIP-155": {"nonce": 7, "gasPrice": 0, "gas": 150_000, "to": TO, "value": 0, "data": b"\x12" * 196},
    "legacy, other chain id": {"nonce": 0, "gasPrice": 10, "gas": 21_000, "to": TO, "value": 5, "data": b""},
    "type 1": {"type": 1, "nonce": 1, "gasPrice": 0, "gas": 90_000, "to": TO, "value": 0, "data": b"\x01"}
    | {"accessList": [{"address": TO, "storageKeys": ["0x" + "00" * 32]}]},
    "type 2": {"type": 2, "nonce": 300, "maxFeePerGas": 10, "maxPriorityFeePerGas": 0, "gas": 90_000, "to": TO}
    | {"value": 0, "data": b"\xab" * 40},
    "contract creation, 70 kB": {"nonce": 2, "gasPrice": 0, "gas": 9_000_000, "value": 0, "data": b"\x60" * 70_000},
}


@pytest.mark.parametrize("name", list(TRANSACTIONS))
def test_sender_and_hash_match_eth_account(name):
    tx = dict(TRANSACTIONS[name])
    tx["chainId"] = 1 if "other chain" in name else 20261
    signed = Account.sign_transaction(tx, KEY)
    decoded = decode("0x" + bytes(signed.raw_transaction).hex())
    assert decoded.sender_text == Account.from_key(KEY).address
    assert decoded.tx_hash == "0x" + bytes(signed.hash).hex()
    assert decoded.nonce == tx["nonce"] and decoded.chain_id == tx["chainId"]
    assert decoded.tx_type == tx.get("type", 0)


def test_an_unprotected_legacy_transaction_has_no_chain_id():
    signed = Account.sign_transaction(TRANSACTIONS["legacy EIP-155"], KEY)  # no chainId: v = 27/28
    decoded = decode("0x" + bytes(signed.raw_transaction).hex())
    assert decoded.chain_id is None and decoded.sender_text == Account.from_key(KEY).address


@pytest.mark.parametrize(
    ("raw", "words"),
    [
        (12, "0x-prefixed hex string"),
        ("0x", "empty"),
        ("0xzz", "not hex"),
        ("0x03f8", "type 3 is not accepted"),
        ("0x04c0", "type 4 is not accepted"),
        ("0xc0", "has 9 fields, not 0"),
        ("0xc3808080", "has 9 fields, not 3"),
        ("0xc28100", "non-canonical"),
    ],
)
def test_undecodable_transactions_are_invalid_params(raw, words):
    with pytest.raises(Refusal) as refused:
        decode(raw)
    assert refused.value.code == Code.INVALID_PARAMS and words in refused.value.message


def test_a_truncated_or_padded_transaction_is_refused():
    raw = "0x" + bytes(Account.sign_transaction({**TRANSACTIONS["type 2"], "chainId": 5}, KEY).raw_transaction).hex()
    for bad in (raw[:-2], raw + "00"):
        with pytest.raises(Refusal):
            decode(bad)


def test_the_key_file_holds_hashes_only_and_revocation_is_seen_at_once(tmp_path):
    store = KeyStore(tmp_path / "keys.json")
    key = store.add("kim", "wallet")
    text = (tmp_path / "keys.json").read_text()
    assert key not in text and hash_key(key) in text
    assert stat.S_IMODE(os.stat(tmp_path / "keys.json").st_mode) == 0o600
    client = store.authenticate(key)
    assert client is not None and client.name == "kim" and client.role is Role.WALLET
    assert store.authenticate(key + "x") is None
    with pytest.raises(KeyStoreError, match="already has an active key"):
        store.add("kim", "auditor")
    KeyStore(tmp_path / "keys.json").revoke("kim")  # another process: the first store re-reads the file
    assert store.authenticate(key) is None and store.revoked_name(key) == "kim"
    second = store.add("kim", "operator")  # a new key under the same name once the old one is revoked
    assert store.authenticate(second).role is Role.OPERATOR
    assert [c.active for c in store.clients()] == [False, True]
    assert json.loads(text)["clients"][0]["created"].endswith("Z")


@pytest.mark.parametrize(
    ("name", "role", "words"),
    [("bad name", "wallet", "not usable"), ("kim", "admin", "unknown role"), ("-x", "wallet", "not usable")],
)
def test_bad_key_requests_are_one_sentence(tmp_path, name, role, words):
    with pytest.raises(ValueError, match=words):
        KeyStore(tmp_path / "keys.json").add(name, role)
    assert not (tmp_path / "keys.json").exists()


def test_revoking_an_unknown_client_says_so(tmp_path):
    store = KeyStore(tmp_path / "keys.json")
    store.add("kim", "wallet")
    with pytest.raises(KeyStoreError, match="no client named lee"):
        store.revoke("lee")


def test_a_bucket_allows_bursts_and_holds_the_rate():
    bucket = Bucket(rate=10, burst=20, stamp=0.0)
    assert bucket.take(20, now=0.0) == 0
    assert bucket.take(1, now=0.0) == pytest.approx(0.1)
    assert bucket.take(5, now=0.5) == 0  # 5 tokens came back in 0.5 s
    assert bucket.take(21, now=100.0) == math.inf  # more than the burst: never
    assert bucket.take(20, now=100.0) == 0  # refilled to the burst, not beyond


def test_no_role_reaches_a_never_exposed_method():
    for methods in policy.ALLOWED.values():
        assert not [m for m in methods if policy.never_exposed(m)]
    never = ("admin_peers", "debug_traceTransaction", "personal_unlockAccount", "miner_start", "clique_propose")
    never += ("txpool_content", "eth_sendTransaction", "eth_sign", "eth_signTypedData_v4", "anvil_setBalance")
    for method in never:
        refusal = method_refusal(method, Role.OPERATOR, "treasury")
        assert refusal is not None and refusal.code == Code.METHOD_NOT_AVAILABLE, method
    refusal = method_refusal("eth_sendRawTransaction", Role.AUDITOR, "audit-office")
    assert refusal is not None and refusal.code == Code.ROLE_REFUSED and "wallet, operator" in refusal.message
    assert method_refusal("eth_sendRawTransaction", Role.WALLET, "kim") is None

"""A sealer's keystore always carries the full 16-byte AES IV that geth insists on ("bad IV length" panic
otherwise): eth-keyfile writes the IV as an integer in hex and drops its leading zero bytes, about 1 key in 256."""

from __future__ import annotations

import json
from unittest import mock

import eth_keyfile.keyfile as keyfile
from eth_account import Account

from deposit_token.chain.geth import keys


def _iv_with_a_leading_zero_byte(data: bytes) -> int:
    if len(data) == 16:  # the IV; the salt and the key go through unchanged
        data = b"\x00" + data[1:]
    return int.from_bytes(data, "big")


def test_an_iv_with_leading_zero_bytes_is_written_in_full_and_still_decrypts(tmp_path):
    with mock.patch.object(keyfile, "big_endian_to_int", side_effect=_iv_with_a_leading_zero_byte):
        address = keys.write_keystore(tmp_path, "a passphrase", scrypt_n=2)
    (path,) = tmp_path.glob("UTC--*")
    stored = json.loads(path.read_text())
    iv = stored["crypto"]["cipherparams"]["iv"]
    assert len(iv) == keys.AES_IV_HEX_DIGITS and iv.startswith("00")
    assert Account.from_key(Account.decrypt(stored, "a passphrase")).address == address

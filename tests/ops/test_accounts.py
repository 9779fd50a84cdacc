"""Participants' accounts in ape's encrypted keystore (deposit_token.ops.accounts), in an isolated ape data folder.

Every test points ape's data folder (APE_DATA_FOLDER and the running ape's config manager) at pytest's
tmp_path, so ~/.ape is never read or written. Keys appear here only where the test itself decrypts a keyfile
to check that they never reach any output.
"""

from __future__ import annotations

import json
import logging
import os
import subprocess
import sys
from pathlib import Path

import pytest
from ape.utils.basemodel import ManagerAccessMixin
from eth_account import Account
from eth_account.messages import encode_defunct

from deposit_token.chain.submit import LocalSigner
from deposit_token.ops import accounts as acc
from deposit_token.paths import ROOT

ROLE_PASS = "role passphrase 7!"
DEMO_PASS = "demo passphrase 9?"


@pytest.fixture
def ape_data(tmp_path, monkeypatch) -> Path:
    folder = tmp_path / "ape-data"
    monkeypatch.setenv("APE_DATA_FOLDER", str(folder))
    monkeypatch.setattr(ManagerAccessMixin.config_manager, "DATA_FOLDER", folder)
    for name in list(os.environ):
        if name.startswith("APE_ACCOUNTS_"):
            monkeypatch.delenv(name)
    acc.clear_cache()
    yield folder
    acc.clear_cache()


def key_hex(alias: str, passphrase: str, folder: Path) -> str:
    """The test's own look at a key (to search outputs for it)."""
    keyfile = json.loads((folder / "accounts" / f"{alias}.json").read_text())
    return bytes(Account.decrypt(keyfile, passphrase)).hex()


def test_keyfiles_go_to_apes_isolated_data_folder(ape_data):
    home = Path.home() / ".ape" / "accounts"
    before = sorted(home.glob("*.json")) if home.is_dir() else []
    address = acc.create_account("treasury", ROLE_PASS)
    path = ape_data / "accounts" / "treasury.json"
    assert acc.keystore_dir() == ape_data / "accounts" and path.exists()
    assert (path.stat().st_mode & 0o777) == 0o600
    keyfile = json.loads(path.read_text())
    assert keyfile["version"] == 3 and keyfile["crypto"]["kdf"] == "scrypt"
    assert keyfile["crypto"]["kdfparams"]["n"] == acc.DEFAULT_SCRYPT_N  # role accounts keep ape's default cost
    assert acc.account_address("treasury") == address and acc.list_aliases() == ["treasury"]
    assert (sorted(home.glob("*.json")) if home.is_dir() else []) == before


def test_load_signer_with_apes_environment_variable(ape_data, monkeypatch):
    address = acc.create_account("issuer", ROLE_PASS)
    monkeypatch.setenv("APE_ACCOUNTS_issuer_PASSPHRASE", ROLE_PASS)
    signer = acc.load_signer("issuer")
    assert isinstance(signer, LocalSigner) and signer.address == address
    assert acc.load_signer("issuer") is signer  # unlocked once, kept in memory
    assert acc.load_signer("issuer", ROLE_PASS) is signer


def test_wrong_or_missing_passphrase_and_unknown_alias_are_refused_clearly(ape_data, monkeypatch):
    acc.create_account("compliance", ROLE_PASS)
    with pytest.raises(acc.MissingPassphraseError, match="set APE_ACCOUNTS_compliance_PASSPHRASE"):
        acc.load_signer("compliance")
    with pytest.raises(acc.WrongPassphraseError, match="does not unlock ape account 'compliance'") as wrong:
        acc.load_signer("compliance", "not the passphrase")
    assert "not the passphrase" not in str(wrong.value)
    acc.load_signer("compliance", ROLE_PASS)  # now cached: another passphrase must still be refused
    monkeypatch.setenv("APE_ACCOUNTS_compliance_PASSPHRASE", "guess")
    with pytest.raises(acc.WrongPassphraseError, match=r"\$APE_ACCOUNTS_compliance_PASSPHRASE does not unlock"):
        acc.load_signer("compliance")
    with pytest.raises(acc.UnknownAccountError, match=r"no ape account 'registrar' .*known: compliance"):
        acc.load_signer("registrar", ROLE_PASS)
    with pytest.raises(acc.AliasInUseError, match="'compliance' already exists"):
        acc.create_account("compliance", ROLE_PASS)
    for bad in ("../escape", "", "a b", "0x" + "ab" * 32):
        with pytest.raises(acc.AccountError):
            acc.create_account(bad, ROLE_PASS)
    with pytest.raises(acc.MissingPassphraseError):
        acc.create_account("manager", "")
    assert acc.list_aliases() == ["compliance"]


def test_demo_accounts_are_cheap_idempotent_and_ape_can_use_them(ape_data, monkeypatch):
    made = acc.ensure_demo_accounts("official_", 4, DEMO_PASS)
    assert list(made) == ["official_001", "official_002", "official_003", "official_004"]
    keyfile = json.loads((ape_data / "accounts" / "official_001.json").read_text())
    assert keyfile["crypto"]["kdfparams"]["n"] == acc.DEMO_SCRYPT_N
    progress = []
    again = acc.ensure_demo_accounts("official_", 5, DEMO_PASS, progress=lambda d, t: progress.append((d, t)))
    assert {k: again[k] for k in made} == made and "official_005" in again and progress[-1] == (5, 5)
    signers = acc.load_signers(again, DEMO_PASS)
    assert [s.address for s in signers.values()] == list(again.values())

    # ape itself unlocks the same keyfile (through its environment variable) and signs with it.
    from ape_accounts.accounts import KeyfileAccount

    monkeypatch.setenv("APE_ACCOUNTS_official_002_PASSPHRASE", DEMO_PASS)
    ape_account = KeyfileAccount(keyfile_path=ape_data / "accounts" / "official_002.json")
    ape_account.set_autosign(True)
    signature = ape_account.sign_message("pilot")
    message = encode_defunct(text="pilot")
    assert Account.recover_message(message, vrs=(signature.v, signature.r, signature.s)) == made["official_002"]


def test_no_key_or_passphrase_in_any_output(ape_data, monkeypatch, capfd, caplog):
    caplog.set_level(logging.DEBUG)
    roles = acc.ensure_role_accounts(ROLE_PASS, aliases=("manager",))
    demo = acc.ensure_demo_accounts("vendor_", 2, DEMO_PASS)
    monkeypatch.setenv("APE_ACCOUNTS_manager_PASSPHRASE", ROLE_PASS)
    signer = acc.load_signer("manager")
    shown = [repr(signer), str(signer), repr(acc.load_signers(demo, DEMO_PASS))]
    for attempt in (lambda: acc.load_signer("vendor_001", ROLE_PASS), lambda: acc.load_signer("nobody")):
        with pytest.raises(acc.AccountError) as err:
            attempt()
        shown.append(str(err.value))
    print(*shown)
    env = dict(os.environ, APE_DATA_FOLDER=str(ape_data))
    ape = Path(sys.executable).with_name("ape")
    listed = subprocess.run(
        [str(ape if ape.exists() else "ape"), "accounts", "list"],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert listed.returncode == 0, listed.stderr
    assert "manager" in listed.stdout and "vendor_002" in listed.stdout and roles["manager"] in listed.stdout
    captured = capfd.readouterr()
    output = "\n".join([captured.out, captured.err, caplog.text, listed.stdout, listed.stderr])
    assert signer.address in output
    secrets = [
        key_hex("manager", ROLE_PASS, ape_data),
        key_hex("vendor_001", DEMO_PASS, ape_data),
        key_hex("vendor_002", DEMO_PASS, ape_data),
        ROLE_PASS,
        DEMO_PASS,
    ]
    for secret in secrets:
        assert secret not in output and secret.lower() not in output.lower()

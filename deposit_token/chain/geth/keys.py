"""The network's keys: each node's p2p identity (``nodekey``) and each sealer's signing key (a geth keystore).

Node keys. A node's identity on the p2p network is a secp256k1 key in ``<node>/geth/nodekey`` (hex, as geth
reads and writes it); its public key is the node id in the ``enode://<id>@host:port`` URLs of the static and
trusted lists. It signs the p2p handshake only and holds no value, so it is stored like geth stores it (a 0600
file), not encrypted.

Sealer keys. Each sealer signs blocks with an account key kept in its ``<node>/keystore/`` as a Web3 Secret
Storage (v3) file, encrypted with scrypt (geth's standard cost, n=2^18, unless the network was made with
``light_kdf`` for tests: n=2^12, geth's own --lightkdf). Geth decrypts it at start (``--unlock``); nothing here
prints, logs or writes a key or a passphrase in clear.

Passphrases come from one of three places, chosen at ``network init`` and recorded by *where* (never what):
an environment variable the operator names, a file the operator names (outside the project folder, readable by
its owner only), or a random passphrase generated into ``<data dir>/passphrase`` (0600). The value reaches geth
through a pipe (``--password /dev/fd/N``): never a command-line argument, an environment variable of the node or
a second copy on disk.
"""

from __future__ import annotations

import json
import os
import secrets
import stat
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Literal

import coincurve
from eth_account import Account

from deposit_token import paths
from deposit_token.errors import DepositTokenError

STANDARD_SCRYPT_N = 2**18  # geth's StandardScryptN
LIGHT_SCRYPT_N = 2**12  # geth's LightScryptN (--lightkdf): tests and throwaway networks only
GENERATED_PASSPHRASE_FILE = "passphrase"

PassphraseKind = Literal["env", "file", "generated"]


class KeyMaterialError(DepositTokenError):
    """A key or passphrase cannot be made or read; the message says which and why, never the secret."""


# --- node keys -----------------------------------------------------------------------------------------------


def new_private_key() -> bytes:
    """32 random bytes that are a valid secp256k1 private key."""
    while True:
        key = secrets.token_bytes(32)
        try:
            coincurve.PrivateKey(key)
        except ValueError:  # zero or not below the curve order: astronomically rare
            continue
        return key


def node_id(private_key: bytes) -> str:
    """The enode id (the 64-byte uncompressed public key, hex without 0x) of a node key."""
    public: bytes = coincurve.PrivateKey(private_key).public_key.format(compressed=False)
    return public[1:].hex()


def write_private_file(path: Path, text: str) -> None:
    """Writes `text` to a new file that only its owner can read (created 0600, never briefly wider)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "w", encoding="utf-8") as out:
        out.write(text)


def write_node_key(node_dir: Path) -> str:
    """Creates the node key geth reads from ``<node_dir>/geth/nodekey``; returns the node id."""
    key = new_private_key()
    write_private_file(node_dir / "geth" / "nodekey", key.hex())
    return node_id(key)


def read_node_id(node_dir: Path) -> str:
    """The node id of the key in ``<node_dir>/geth/nodekey``."""
    path = node_dir / "geth" / "nodekey"
    try:
        return node_id(bytes.fromhex(path.read_text(encoding="utf-8").strip()))
    except (OSError, ValueError) as err:
        raise KeyMaterialError(
            f"{path} is missing or is not a node key: run `ape run network init --engine geth`"
        ) from err


# --- sealer keystores ----------------------------------------------------------------------------------------


AES_IV_HEX_DIGITS = 32  # AES-128-CTR's 16-byte IV


def write_keystore(keystore_dir: Path, passphrase: str, scrypt_n: int = STANDARD_SCRYPT_N) -> str:
    """Creates a new account key encrypted with `passphrase` in geth's keystore layout; returns its address."""
    key = new_private_key()
    address: str = Account.from_key(key).address
    keyfile: dict[str, Any] = Account.encrypt(key, passphrase, kdf="scrypt", iterations=scrypt_n)
    # eth-keyfile writes the AES-CTR IV as an integer in hex, dropping leading zero bytes (about 1 key in 256);
    # geth then panics with "bad IV length". The same 16 bytes, written in full:
    params = keyfile["crypto"]["cipherparams"]
    params["iv"] = params["iv"].rjust(AES_IV_HEX_DIGITS, "0")
    # geth's file name: UTC--<creation time>--<address without 0x, lower case>. The time only names the file.
    stamp = datetime.now(UTC).strftime("%Y-%m-%dT%H-%M-%S.%f000Z")
    keystore_dir.mkdir(parents=True, exist_ok=True, mode=0o700)
    write_private_file(keystore_dir / f"UTC--{stamp}--{address[2:].lower()}", json.dumps(keyfile))
    return address


def keystore_address(keystore_dir: Path) -> str:
    """The address of the one account in a sealer's keystore."""
    files = sorted(keystore_dir.glob("UTC--*")) if keystore_dir.is_dir() else []
    if len(files) != 1:
        raise KeyMaterialError(f"{keystore_dir} should hold exactly one account key, it holds {len(files)}")
    try:
        address = json.loads(files[0].read_text(encoding="utf-8"))["address"]
    except (OSError, ValueError, KeyError, TypeError) as err:
        raise KeyMaterialError(f"{files[0]} is not a keystore file") from err
    return "0x" + str(address).lower().removeprefix("0x")


# --- passphrases ---------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class PassphraseSource:
    """Where the sealers' keystore passphrase comes from: an environment variable's name, a file's path, or the
    generated file in the data directory (`where` is then that file)."""

    kind: PassphraseKind
    where: str

    def describe(self) -> str:
        if self.kind == "env":
            return f"environment variable ${self.where}"
        if self.kind == "file":
            return f"file {self.where}"
        return f"generated, in {self.where} (mode 0600)"

    def as_dict(self) -> dict[str, str]:
        return {"kind": self.kind, "where": self.where}

    @classmethod
    def from_dict(cls, data: Any) -> PassphraseSource:
        if not isinstance(data, dict) or data.get("kind") not in ("env", "file", "generated"):
            raise KeyMaterialError("the network's record names no passphrase source: run `network init` again")
        return cls(data["kind"], str(data["where"]))

    def read(self) -> str:
        """The passphrase; KeyMaterialError (one sentence, without the value) if it is missing or unusable."""
        if self.kind == "env":
            value = os.environ.get(self.where)
            if value is None:
                raise KeyMaterialError(f"the sealers' passphrase is read from ${self.where}, which is not set")
        else:
            path = Path(self.where)
            check_private_file(path)
            try:
                value = path.read_text(encoding="utf-8")
            except (OSError, UnicodeDecodeError) as err:
                raise KeyMaterialError(f"cannot read the sealers' passphrase file {path}: {err}") from None
            value = value.removesuffix("\n").removesuffix("\r")
        check_passphrase(value, self.describe())
        return value


def check_passphrase(value: str, source: str) -> None:
    if not value:
        raise KeyMaterialError(f"the sealers' passphrase from {source} is empty")
    if "\n" in value or "\r" in value:
        # geth's --password file holds one passphrase per line
        raise KeyMaterialError(f"the sealers' passphrase from {source} has a line break inside")


def check_private_file(path: Path) -> None:
    """Refuses a passphrase file that is missing or that others than its owner may read."""
    try:
        mode = path.stat().st_mode
    except OSError:
        raise KeyMaterialError(f"the sealers' passphrase file {path} does not exist") from None
    if not stat.S_ISREG(mode):
        raise KeyMaterialError(f"the sealers' passphrase file {path} is not a regular file")
    if mode & 0o077:
        raise KeyMaterialError(f"the sealers' passphrase file {path} may be read by others: chmod 600 {path}")


def choose_source(data_dir: Path, env: str | None = None, file: Path | None = None) -> PassphraseSource:
    """The passphrase source for a new network: the operator's variable or file, else a generated file.

    The operator's file must lie outside the project folder (a checkout is shared, copied and committed); the
    generated one lives in the data directory, which is not part of the repository (.gitignore)."""
    if env and file:
        raise KeyMaterialError("name either a passphrase variable or a passphrase file, not both")
    if env:
        source = PassphraseSource("env", env)
        source.read()
        return source
    if file is not None:
        path = file.expanduser().resolve()
        if path.is_relative_to(paths.ROOT) and not path.is_relative_to(data_dir.resolve()):
            raise KeyMaterialError(
                f"the passphrase file {path} is inside the project folder: keep it outside the repository"
            )
        source = PassphraseSource("file", str(path))
        source.read()
        return source
    path = data_dir.resolve() / GENERATED_PASSPHRASE_FILE
    if not path.exists():
        write_private_file(path, secrets.token_urlsafe(32) + "\n")
    return PassphraseSource("generated", str(path))


__all__ = [
    "LIGHT_SCRYPT_N",
    "STANDARD_SCRYPT_N",
    "KeyMaterialError",
    "PassphraseSource",
    "choose_source",
    "keystore_address",
    "node_id",
    "read_node_id",
    "write_keystore",
    "write_node_key",
    "write_private_file",
]

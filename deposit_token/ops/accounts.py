"""Accounts of the pilot's participants, kept in ape's encrypted keystore (``ape accounts``).

Treasury, issuer, compliance, program manager, vendor registrar, officials and vendors each have an ape
account: a Web3 Secret Storage (v3) JSON keyfile ``<alias>.json`` in ape's accounts folder
(``$APE_DATA_FOLDER/accounts``, default ``~/.ape/accounts``). ``ape accounts list``, ``--account <alias>``
and ape's own signing work on every account made here. Keys are decrypted into memory only, into
`deposit_token.chain.submit.LocalSigner` objects, whose repr shows the address and never the key; nothing here
prints, logs or writes a key or a passphrase in clear.

Passphrases for non-interactive use (demo, CI) come from ape's documented environment variable
``APE_ACCOUNTS_<alias>_PASSPHRASE`` (ape's ``KeyfileAccount.unlock`` reads the same variable), so aliases are
best made of letters, digits and ``_`` (a shell cannot export a variable whose name has ``-``).

Key derivation cost (measured on this 2-core machine, per account): ape's default, scrypt n=2^18 r=8 p=1, takes
about 0.85 s to encrypt and 0.85 s to decrypt. That is right for the few role accounts, which are made with
it. The pilot demo has ~120 officials and vendors: 2 x 120 x 0.85 s would be over half of its 3-minute budget,
so `ensure_demo_accounts` writes their keyfiles with scrypt n=2^14 (16 times cheaper: ~0.04 s each way).
That is still a real memory-hard KDF with a random salt and the same file format (ape and eth_account read
the cost from the file), but a stolen demo keyfile with a weak passphrase is 16 times cheaper to brute-force:
use it for demo accounts only, never for accounts that hold real money.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import secrets
import tempfile
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any

from eth_account import Account
from eth_utils import is_hex, to_checksum_address

from deposit_token.chain.submit import LocalSigner
from deposit_token.errors import DepositTokenError

#: The role accounts of the pilot (created with ape's default KDF cost).
ROLE_ALIASES = ("admin", "treasury", "issuer", "compliance", "manager", "registrar")
PASSPHRASE_ENV = "APE_ACCOUNTS_{alias}_PASSPHRASE"  # ape's own variable (ape_accounts.KeyfileAccount.unlock)
DEFAULT_SCRYPT_N = 2**18  # eth_account's (so ape's) default work factor
DEMO_SCRYPT_N = 2**14  # demo-only accounts: see the module docstring

_ALIAS = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$")

#: ``progress(done, total)`` while creating or unlocking many accounts.
Progress = Callable[[int, int], None]


class AccountError(DepositTokenError):
    """An account cannot be created or unlocked; the message names the alias and the problem (never a key
    or a passphrase)."""


class UnknownAccountError(AccountError):
    pass


class AliasInUseError(AccountError):
    pass


class MissingPassphraseError(AccountError):
    pass


class WrongPassphraseError(AccountError):
    pass


# --- where keyfiles live -------------------------------------------------------------------------------------


def keystore_dir(folder: Path | str | None = None) -> Path:
    """ape's accounts folder: `folder` if given, else ``<ape data folder>/accounts``, where the data folder is
    the one ape uses in this process (``$APE_DATA_FOLDER``, default ``~/.ape``)."""
    if folder is not None:
        return Path(folder).expanduser()
    try:
        from ape.utils.basemodel import ManagerAccessMixin

        data_folder = Path(ManagerAccessMixin.config_manager.DATA_FOLDER)
    except Exception:  # noqa: BLE001 - ape not importable here: follow its documented default
        data_folder = Path(os.environ.get("APE_DATA_FOLDER") or Path.home() / ".ape")
    return data_folder / "accounts"


def validate_alias(alias: str) -> str:
    """An alias is one file name: letters, digits, ``_ . -``, up to 64 characters, and not a long hex string
    (ape refuses those too: a pasted private key must not end up as a file name)."""
    if not isinstance(alias, str) or not _ALIAS.match(alias):
        raise AccountError(
            f"{alias!r} is not a valid account alias (letters, digits, '_', '.', '-'; "
            "at most 64 characters; starting with a letter or digit)"
        )
    if is_hex(alias) and len(alias) >= 42:
        raise AccountError("an account alias cannot be a long hex string (is it a key?)")
    return alias


def keyfile_path(alias: str, folder: Path | str | None = None) -> Path:
    return keystore_dir(folder) / f"{validate_alias(alias)}.json"


def list_aliases(folder: Path | str | None = None) -> list[str]:
    """The aliases in ape's keystore, sorted."""
    directory = keystore_dir(folder)
    return sorted(path.stem for path in directory.glob("*.json")) if directory.is_dir() else []


def _read_keyfile(alias: str, folder: Path | str | None) -> tuple[Path, bytes, dict[str, Any]]:
    path = keyfile_path(alias, folder)
    try:
        raw = path.read_bytes()
    except FileNotFoundError:
        known = list_aliases(folder)
        hint = f"known: {', '.join(known[:10])}{', ...' if len(known) > 10 else ''}" if known else "none yet"
        raise UnknownAccountError(
            f"no ape account '{alias}' in {path.parent} ({hint}); create it with "
            f"`ape accounts generate {alias}` or `ape accounts import {alias}`"
        ) from None
    except OSError as err:
        raise AccountError(f"cannot read the keyfile of account '{alias}' ({path}): {err.strerror}") from None
    try:
        keyfile = json.loads(raw)
        to_checksum_address(keyfile["address"])
    except (ValueError, KeyError, TypeError):
        raise AccountError(f"{path} is not an ape keyfile (encrypted JSON with an address)") from None
    return path, raw, keyfile


def account_address(alias: str, folder: Path | str | None = None) -> str:
    """The checksummed address of `alias`, read from its keyfile without decrypting it."""
    _, _, keyfile = _read_keyfile(alias, folder)
    return to_checksum_address(keyfile["address"])


# --- creating ------------------------------------------------------------------------------------------------


def _write_keyfile(path: Path, keyfile: dict[str, Any]) -> None:
    """Writes a keyfile atomically (temp file + rename), readable by its owner only; never overwrites."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.stem}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as out:
            json.dump(keyfile, out)
            out.flush()
            os.fsync(out.fileno())
        os.chmod(tmp, 0o600)
        os.link(tmp, path)  # fails if the alias appeared meanwhile, unlike a rename
    except FileExistsError:
        raise AliasInUseError(f"ape account '{path.stem}' already exists ({path})") from None
    finally:
        Path(tmp).unlink(missing_ok=True)


def create_account(
    alias: str,
    passphrase: str,
    *,
    folder: Path | str | None = None,
    private_key: bytes | None = None,
    scrypt_n: int = DEFAULT_SCRYPT_N,
) -> str:
    """Creates ape account `alias` (a new random key, or `private_key` to import one) encrypted with
    `passphrase`, and returns its address. The keyfile is what ``ape accounts generate/import`` write
    (eth_account's ``Account.encrypt``); `scrypt_n` below the default is for demo accounts only."""
    validate_alias(alias)
    if not isinstance(passphrase, str) or not passphrase:
        raise MissingPassphraseError(f"a passphrase is needed to encrypt account '{alias}'")
    path = keyfile_path(alias, folder)
    if path.exists():
        raise AliasInUseError(f"ape account '{alias}' already exists ({path})")
    key = private_key if private_key is not None else secrets.token_bytes(32)
    keyfile = Account.encrypt(key, passphrase, kdf="scrypt", iterations=scrypt_n)
    _write_keyfile(path, keyfile)
    return to_checksum_address(keyfile["address"])


def ensure_accounts(
    aliases: Iterable[str],
    passphrase: str,
    *,
    folder: Path | str | None = None,
    scrypt_n: int = DEFAULT_SCRYPT_N,
    progress: Progress | None = None,
) -> dict[str, str]:
    """Creates those of `aliases` that do not exist yet; returns alias -> address for all of them. Existing
    accounts are kept as they are (`load_signer` checks that the passphrase unlocks them)."""
    aliases = [validate_alias(a) for a in aliases]
    addresses: dict[str, str] = {}
    for done, alias in enumerate(aliases, 1):
        if keyfile_path(alias, folder).exists():
            addresses[alias] = account_address(alias, folder)
        else:
            addresses[alias] = create_account(alias, passphrase, folder=folder, scrypt_n=scrypt_n)
        if progress:
            progress(done, len(aliases))
    return addresses


def ensure_role_accounts(
    passphrase: str,
    *,
    aliases: Iterable[str] = ROLE_ALIASES,
    folder: Path | str | None = None,
    progress: Progress | None = None,
) -> dict[str, str]:
    """The role accounts (treasury, issuer, ...), created with ape's default KDF cost where missing."""
    return ensure_accounts(aliases, passphrase, folder=folder, progress=progress)


def demo_aliases(prefix: str, count: int) -> list[str]:
    """``prefix`` + a 3-digit (or wider) number from 1: ``official_001`` ... ``official_050``."""
    if count < 0:
        raise AccountError(f"cannot make {count} accounts")
    width = max(3, len(str(count)))
    return [validate_alias(f"{prefix}{i:0{width}d}") for i in range(1, count + 1)]


def ensure_demo_accounts(
    prefix: str, count: int, passphrase: str, *, folder: Path | str | None = None, progress: Progress | None = None
) -> dict[str, str]:
    """`count` demo accounts ``<prefix>001``... (created where missing, with the cheaper demo KDF: see the
    module docstring); returns alias -> address in order."""
    return ensure_accounts(
        demo_aliases(prefix, count), passphrase, folder=folder, scrypt_n=DEMO_SCRYPT_N, progress=progress
    )


# --- unlocking -----------------------------------------------------------------------------------------------

# Decrypted signers, in memory only, keyed by the keyfile's path and a keyed hash of its bytes and of the
# passphrase: a changed keyfile or another passphrase is decrypted (and checked) again.
_CACHE: dict[tuple[str, bytes], LocalSigner] = {}
_CACHE_SALT = secrets.token_bytes(32)


def _cache_key(path: Path, raw: bytes, passphrase: str) -> tuple[str, bytes]:
    material = raw + b"\0" + passphrase.encode()
    digest = hashlib.blake2b(material, key=_CACHE_SALT, digest_size=32).digest()
    return str(path.resolve()), digest


def clear_cache() -> None:
    """Forgets every decrypted key."""
    _CACHE.clear()


def passphrase_env_var(alias: str) -> str:
    return PASSPHRASE_ENV.format(alias=alias)


def load_signer(alias: str, passphrase: str | None = None, *, folder: Path | str | None = None) -> LocalSigner:
    """The signer of ape account `alias`, decrypted with `passphrase`, else with ape's environment variable
    ``APE_ACCOUNTS_<alias>_PASSPHRASE``. Raises UnknownAccountError, MissingPassphraseError or
    WrongPassphraseError with a message that names the alias (and the variable) but no secret."""
    path, raw, keyfile = _read_keyfile(alias, folder)
    source = "the given passphrase"
    if passphrase is None:
        variable = passphrase_env_var(alias)
        passphrase = os.environ.get(variable)
        source = f"${variable}"
        if passphrase is None:
            raise MissingPassphraseError(f"no passphrase for ape account '{alias}': set {variable} or pass one")
    key = _cache_key(path, raw, passphrase)
    cached = _CACHE.get(key)
    if cached is not None:
        return cached
    try:
        key_bytes = Account.decrypt(keyfile, passphrase)
    except ValueError:
        raise WrongPassphraseError(f"{source} does not unlock ape account '{alias}' ({path})") from None
    signer = LocalSigner(bytes(key_bytes))
    del key_bytes
    if signer.address != to_checksum_address(keyfile["address"]):
        raise AccountError(f"the keyfile of '{alias}' decrypts to another address than it records ({path})")
    _CACHE[key] = signer
    return signer


def load_signers(
    aliases: Iterable[str],
    passphrase: str | None = None,
    *,
    folder: Path | str | None = None,
    progress: Progress | None = None,
) -> dict[str, LocalSigner]:
    """alias -> signer for every alias (each with `passphrase`, else its own environment variable)."""
    aliases = list(aliases)
    signers: dict[str, LocalSigner] = {}
    for done, alias in enumerate(aliases, 1):
        signers[alias] = load_signer(alias, passphrase, folder=folder)
        if progress:
            progress(done, len(aliases))
    return signers


__all__ = [
    "DEMO_SCRYPT_N",
    "ROLE_ALIASES",
    "AccountError",
    "AliasInUseError",
    "MissingPassphraseError",
    "UnknownAccountError",
    "WrongPassphraseError",
    "account_address",
    "clear_cache",
    "create_account",
    "demo_aliases",
    "ensure_accounts",
    "ensure_demo_accounts",
    "ensure_role_accounts",
    "keystore_dir",
    "list_aliases",
    "load_signer",
    "load_signers",
    "passphrase_env_var",
    "validate_alias",
]

"""The key file that encrypts the console's TOTP secrets at rest.

A TOTP secret is all it takes to mint second-factor codes, so the audit database (and its dumps, backups and read
replicas) holds it only encrypted: AES-256-GCM under a key kept in a file outside the database, bound to the
account's name (associated data: a ciphertext copied onto another account does not open).

* The file: ``$DEPOSIT_TOKEN_TOTP_KEY_FILE``, or ``--totp-key-file``, else ``console-totp.key`` in the folder of
  the default audit databases (``store.default_db_dir()``: ``audit/`` or ``$DEPOSIT_TOKEN_AUDIT_DIR``). It is
  created (mode 0600) the first time a secret is stored, unless the database already holds encrypted secrets: then
  a missing file is an error, never a fresh key that would lock every account out. A file readable by other users
  is refused.
* Keys have ids (1, 2, ...) so that they can rotate: a stored value is ``<key id>:<base85 of nonce, ciphertext and
  tag>`` (62 characters for a 160-bit secret: the ``totp_secret`` column is 64 wide). A clear base32 secret (stored
  before encryption) never holds a ``:``, which tells the two apart.
* The key material is never logged, printed or part of a repr or an error message.
"""

from __future__ import annotations

import base64
import binascii
import contextlib
import json
import os
import secrets
import stat
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from deposit_token.errors import DepositTokenError

KEY_FILE_ENV = "DEPOSIT_TOKEN_TOTP_KEY_FILE"
KEY_FILE_NAME = "console-totp.key"
FORMAT = "deposit-token console TOTP keys 1"
MAX_KEY_ID = 999  # three digits: with the 60 characters of a sealed 160-bit secret, the column's 64
COLUMN_WIDTH = 64
_NONCE = 12
_AAD = b"deposit-token totp secret\x00"


class KeyFileError(DepositTokenError):
    """The key file is missing, unreadable, not a key file, or does not open a stored secret (one sentence)."""


def default_path() -> Path:
    """``$DEPOSIT_TOKEN_TOTP_KEY_FILE``, else ``console-totp.key`` beside the default audit databases."""
    configured = os.environ.get(KEY_FILE_ENV, "").strip()
    if configured:
        return Path(configured).expanduser().absolute()
    from deposit_token.audit.db import store

    return (store.default_db_dir() / KEY_FILE_NAME).absolute()


def is_sealed(stored: str) -> bool:
    """Whether a ``totp_secret`` value is encrypted (else it is a clear base32 secret from before)."""
    return ":" in stored


def key_id_of(stored: str) -> int | None:
    head = stored.split(":", 1)[0]
    return int(head) if is_sealed(stored) and head.isdigit() else None


@dataclass(frozen=True)
class _Keys:
    current: int
    keys: Mapping[int, bytes] = field(repr=False)


def _parse(path: Path, text: str) -> _Keys:
    bad = KeyFileError(f"{path} is not a TOTP key file (it was changed, or is another file)")
    try:
        data = json.loads(text)
        if not isinstance(data, dict) or data.get("format") != FORMAT:
            raise bad
        keys = {int(kid): base64.b64decode(value, validate=True) for kid, value in data["keys"].items()}
        current = int(data["current"])
    except (ValueError, KeyError, TypeError, AttributeError, binascii.Error):
        raise bad from None
    if current not in keys or any(len(k) != 32 or not 1 <= kid <= MAX_KEY_ID for kid, k in keys.items()):
        raise bad
    return _Keys(current, keys)


def _text(keys: _Keys) -> str:
    body = {
        "format": FORMAT,
        "current": keys.current,
        "keys": {str(kid): base64.b64encode(k).decode("ascii") for kid, k in sorted(keys.keys.items())},
    }
    return json.dumps(body, indent=1) + "\n"


def _write_new(path: Path, keys: _Keys, replace: bool) -> None:
    """Writes the file whole (never a half-written key file): a private temporary file, then linked in place
    (first creation: fails if another process created it meanwhile) or renamed over the old one (rotation)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    temporary = path.with_name(f".{path.name}.{secrets.token_hex(6)}.tmp")
    fd = os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as out:
            out.write(_text(keys))
            out.flush()
            os.fsync(out.fileno())
        if replace:
            os.replace(temporary, path)
        else:
            # another process may have created it first: then its key is the one
            with contextlib.suppress(FileExistsError):
                os.link(temporary, path)
    finally:
        temporary.unlink(missing_ok=True)


class KeyRing:
    """The keys of one key file: seals secrets under the current key, opens them under the key they name. The
    file is read again when it changes (a rotation by `audit users rotate-key` while the server runs)."""

    def __init__(self, path: Path | str):
        self.path = Path(path).expanduser().absolute()
        self._seen: tuple[int, int, int] | None = None
        self._keys: _Keys | None = None

    def __repr__(self) -> str:
        return f"KeyRing({str(self.path)!r})"

    def exists(self) -> bool:
        return self.path.exists()

    def _load(self) -> _Keys:
        try:
            info = self.path.stat()
        except FileNotFoundError:
            raise KeyFileError(
                f"there is no TOTP key file at {self.path}, but the database holds encrypted second-factor "
                f"secrets: give the key file they were encrypted with (--totp-key-file or ${KEY_FILE_ENV})"
            ) from None
        except OSError as err:
            raise KeyFileError(f"cannot read the TOTP key file {self.path}: {err.strerror}") from None
        seen = (info.st_ino, info.st_mtime_ns, info.st_size)
        if self._keys is not None and seen == self._seen:
            return self._keys
        if not stat.S_ISREG(info.st_mode):
            raise KeyFileError(f"the TOTP key file {self.path} is not a regular file")
        if info.st_mode & 0o077:
            raise KeyFileError(
                f"the TOTP key file {self.path} can be read by other users (mode {stat.S_IMODE(info.st_mode):o}): "
                f"make it private (chmod 600) first"
            )
        try:
            text = self.path.read_text(encoding="utf-8")
        except (OSError, UnicodeDecodeError) as err:
            reason = err.strerror if isinstance(err, OSError) else "not text"
            raise KeyFileError(f"cannot read the TOTP key file {self.path}: {reason}") from None
        self._keys, self._seen = _parse(self.path, text), seen
        return self._keys

    def create(self) -> None:
        """Makes the file with a first key (mode 0600) unless it exists."""
        if not self.path.exists():
            _write_new(self.path, _Keys(1, {1: AESGCM.generate_key(bit_length=256)}), replace=False)
        self._load()

    def current_id(self) -> int:
        return self._load().current

    def key_ids(self) -> list[int]:
        return sorted(self._load().keys)

    def rotate(self, drop_old: bool = False) -> int:
        """Adds a new key and makes it current (the older ones kept to open what they sealed unless `drop_old`);
        returns its id."""
        keys = self._load()
        new = max(keys.keys) + 1
        if new > MAX_KEY_ID:
            raise KeyFileError(f"the TOTP key file {self.path} has used every key id up to {MAX_KEY_ID}")
        kept = {} if drop_old else dict(keys.keys)
        _write_new(self.path, _Keys(new, {**kept, new: AESGCM.generate_key(bit_length=256)}), replace=True)
        self._load()
        return new

    def drop_old(self) -> None:
        """Removes every key but the current one (after everything they sealed was sealed again)."""
        keys = self._load()
        _write_new(self.path, _Keys(keys.current, {keys.current: keys.keys[keys.current]}), replace=True)
        self._load()

    def seal(self, secret: str, name: str) -> str:
        """The stored form of the base32 TOTP `secret` of account `name`."""
        keys = self._load()
        try:
            raw = base64.b32decode(secret.upper() + "=" * (-len(secret) % 8))
        except binascii.Error:
            raise KeyFileError(f"the TOTP secret of {name} is not base32") from None
        nonce = secrets.token_bytes(_NONCE)
        sealed = AESGCM(keys.keys[keys.current]).encrypt(nonce, raw, _AAD + name.encode("utf-8"))
        stored = f"{keys.current}:{base64.b85encode(nonce + sealed).decode('ascii')}"
        if len(stored) > COLUMN_WIDTH:
            raise KeyFileError(f"the TOTP secret of {name} is too long to store encrypted ({len(raw)} bytes)")
        return stored

    def open(self, stored: str, name: str) -> str:
        """The base32 TOTP secret of account `name` from its stored (sealed) form."""
        kid = key_id_of(stored)
        keys = self._load()
        if kid is None or kid not in keys.keys:
            raise KeyFileError(
                f"the TOTP key file {self.path} has no key {stored.split(':', 1)[0]!r}, which encrypted the "
                f"second-factor secret of {name}: give the key file it was encrypted with"
            )
        try:
            blob = base64.b85decode(stored.split(":", 1)[1])
            raw = AESGCM(keys.keys[kid]).decrypt(blob[:_NONCE], blob[_NONCE:], _AAD + name.encode("utf-8"))
        except (ValueError, InvalidTag):
            raise KeyFileError(
                f"the TOTP key file {self.path} does not open the second-factor secret of {name} (key {kid}): "
                "it is another file than the one the secret was encrypted with, or the stored value was changed"
            ) from None
        return base64.b32encode(raw).decode("ascii").rstrip("=")

"""Clients' API keys: one JSON file (``keys.json`` in the gateway's data directory) that holds, per client, its
name, role, the SHA-256 of its key, when it was created and when it was revoked. The key itself is shown once,
by `KeyStore.add`, and stored nowhere.

Why SHA-256 and not a password hash (argon2, scrypt, bcrypt): a key is 32 random bytes (256 bits) made by
`secrets`, not something a person chose, so nobody can guess it or search a dictionary for it and a slow hash
would protect nothing; it would cost milliseconds on every request instead (the gateway authenticates each
HTTP request). A stolen key file gives no key: inverting SHA-256 of a 256-bit random value is infeasible.

Looking a key up: the presented key's SHA-256 is looked up in a dict of the active clients' hashes, and the
stored hash is then compared with `hmac.compare_digest` (constant time). The dict lookup's timing depends on
the hash of what the caller sent, never on a secret the caller does not already hold, so it leaks nothing.

The file is replaced atomically (a temporary file renamed over it, under a lock) so that a running gateway,
which re-reads it whenever it changes (`KeyStore.current`), never sees half a file: `keys revoke` takes effect
on the next request, without a restart.
"""

from __future__ import annotations

import fcntl
import hashlib
import hmac
import json
import os
import re
import secrets
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import asdict, dataclass, replace
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from deposit_token.errors import DepositTokenError
from deposit_token.gateway.policy import Role, parse_role

KEY_FILE = "keys.json"
KEY_PREFIX = "dtgw_"  # lets secret scanners and people recognise a gateway key
KEY_BYTES = 32
FILE_FORMAT = 1
_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$")


class KeyStoreError(DepositTokenError, ValueError):
    """The key file cannot be read or written, or a key operation was refused (a duplicate or unknown name)."""


def hash_key(key: str) -> str:
    """What is stored for `key`: ``sha256:<hex>``."""
    return "sha256:" + hashlib.sha256(key.encode("utf-8")).hexdigest()


def new_key() -> str:
    """A fresh key: the prefix and 32 random bytes, URL-safe base64 (usable as a Basic-auth password in a URL)."""
    return KEY_PREFIX + secrets.token_urlsafe(KEY_BYTES)


def check_name(name: str) -> str:
    """A client name: 1-64 letters, digits, '.', '_' or '-', starting with a letter or digit."""
    if not _NAME.match(name):
        raise KeyStoreError(
            f"client name {name!r} is not usable: use 1-64 letters, digits, '.', '_' or '-' (starting with a "
            "letter or digit)"
        )
    return name


@dataclass(frozen=True)
class Client:
    """One key's record (no secret in it: `key_hash` is the key's SHA-256)."""

    name: str
    role: Role
    key_hash: str
    created: str  # ISO 8601 UTC, when `keys add` ran (a record for people, never compared with a clock)
    revoked: str | None = None
    rate: float | None = None  # calls per second (None: the gateway's --rate)
    burst: int | None = None  # calls at once (None: the gateway's --burst)

    @property
    def active(self) -> bool:
        return self.revoked is None

    @property
    def fingerprint(self) -> str:
        """The first 12 hex digits of the key's hash: tells keys apart in listings, reveals nothing of the key."""
        return self.key_hash.split(":", 1)[-1][:12]

    def as_json(self) -> dict[str, Any]:
        out = asdict(self)
        out["role"] = self.role.value
        return out

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> Client:
        return cls(
            name=str(data["name"]),
            role=parse_role(str(data["role"])),
            key_hash=str(data["key_hash"]),
            created=str(data["created"]),
            revoked=data.get("revoked"),
            rate=None if data.get("rate") is None else float(data["rate"]),
            burst=None if data.get("burst") is None else int(data["burst"]),
        )


def _now() -> str:
    return datetime.now(UTC).isoformat(timespec="seconds").replace("+00:00", "Z")


class KeyStore:
    """The key file at `path` (see the module docstring)."""

    def __init__(self, path: Path | str) -> None:
        self.path = Path(path)
        self._stamp: tuple[int, int, int] | None = None
        self._by_hash: dict[str, Client] = {}
        self._revoked: dict[str, str] = {}  # key hash -> client name

    # --- reading ----------------------------------------------------------------------------------------------

    def clients(self) -> list[Client]:
        """Every record, revoked ones included, in the order they were added."""
        try:
            text = self.path.read_text(encoding="utf-8")
        except FileNotFoundError:
            return []
        except OSError as err:
            raise KeyStoreError(f"cannot read the key file {self.path}: {err}") from err
        try:
            data = json.loads(text)
            return [Client.from_json(entry) for entry in data["clients"]]
        except (ValueError, KeyError, TypeError) as err:
            raise KeyStoreError(f"the key file {self.path} is not a gateway key file: {err}") from err

    def current(self) -> dict[str, Client]:
        """The active clients by key hash, re-read when the file changed (one stat per call: a revocation
        takes effect on the next request)."""
        try:
            st = os.stat(self.path)
            stamp = (st.st_mtime_ns, st.st_size, st.st_ino)
        except FileNotFoundError:
            stamp = (0, 0, 0)
        if stamp != self._stamp:
            clients = self.clients()
            self._by_hash = {c.key_hash: c for c in clients if c.active}
            self._revoked = {c.key_hash: c.name for c in clients if not c.active}
            self._stamp = stamp
        return self._by_hash

    def authenticate(self, key: str) -> Client | None:
        """The active client holding `key`, or None (unknown or revoked)."""
        digest = hash_key(key)
        client = self.current().get(digest)
        if client is None or not hmac.compare_digest(client.key_hash, digest):
            return None
        return client

    def revoked_name(self, key: str) -> str | None:
        """The client name of a revoked `key` (for the refusal's message), or None."""
        self.current()
        return self._revoked.get(hash_key(key))

    # --- writing ----------------------------------------------------------------------------------------------

    @contextmanager
    def _locked(self) -> Iterator[list[Client]]:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        with open(self.path.with_name(self.path.name + ".lock"), "w") as lock:
            fcntl.flock(lock, fcntl.LOCK_EX)
            try:
                yield self.clients()
            finally:
                fcntl.flock(lock, fcntl.LOCK_UN)

    def _write(self, clients: list[Client]) -> None:
        text = json.dumps({"format": FILE_FORMAT, "clients": [c.as_json() for c in clients]}, indent=2) + "\n"
        fd, tmp = tempfile.mkstemp(prefix=f".{self.path.name}.", suffix=".tmp", dir=self.path.parent)
        try:
            with os.fdopen(fd, "w", encoding="utf-8") as out:
                out.write(text)
                out.flush()
                os.fsync(out.fileno())
            os.chmod(tmp, 0o600)  # hashes only, but nobody else needs to read who the clients are
            os.replace(tmp, self.path)
        except BaseException:
            Path(tmp).unlink(missing_ok=True)
            raise

    def add(self, name: str, role: Role | str, rate: float | None = None, burst: int | None = None) -> str:
        """Creates a key for a new client and returns it: the only time the key exists outside the client.
        Refuses a name that has an active key (revoke it first; its records stay, for the log's readers)."""
        check_name(name)
        role = role if isinstance(role, Role) else parse_role(role)
        if (rate is not None and rate <= 0) or (burst is not None and burst < 1):
            raise KeyStoreError("a rate must be above 0 calls/s and a burst at least 1 call")
        with self._locked() as clients:
            if any(c.name == name and c.active for c in clients):
                raise KeyStoreError(f"client {name} already has an active key; `keys revoke {name}` first")
            key = new_key()
            clients.append(Client(name, role, hash_key(key), _now(), None, rate, burst))
            self._write(clients)
        return key

    def revoke(self, name: str) -> Client:
        """Revokes `name`'s active key; KeyStoreError if it has none."""
        with self._locked() as clients:
            for i, client in enumerate(clients):
                if client.name == name and client.active:
                    clients[i] = replace(client, revoked=_now())
                    self._write(clients)
                    return clients[i]
        known = {c.name for c in clients}
        raise KeyStoreError(
            f"client {name} has no active key to revoke" if name in known else f"no client named {name} in {self.path}"
        )

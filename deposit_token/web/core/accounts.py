"""Auditor accounts: adding, disabling, resetting the second factor, listing, and logging in.

* Passwords are stored as Argon2id hashes (argon2-cffi's RFC 9106 "low memory" profile: 64 MiB, 3 passes), and
  re-hashed at the next login when those parameters change.
* TOTP secrets are stored encrypted (AES-GCM under a key file outside the database: ``totpkeys``). Secrets stored
  in clear before that are encrypted by :func:`protect_secrets` (the server runs it at start;
  ``ape run audit users encrypt-secrets`` too); a clear secret is never accepted at login.
* Every login needs the password and a TOTP code (RFC 6238: 6 digits, 30-second steps, one step of clock drift
  either way). A code is accepted once: the step it belongs to is stored and later steps only are accepted,
  atomically, so a code seen over someone's shoulder cannot be replayed even within its 30 seconds.
* Failed logins are throttled per account name and per client address, counted from the access log itself
  (``accesslog``): the count survives restarts and holds across several server processes. An account's count
  starts again after its last successful login.
* An unknown name costs the same Argon2 verification as a known one, and every refusal reads the same, so the
  login form does not tell which names exist.

`now` is unix seconds, passed in by the caller (the web app reads the clock once per request).
"""

from __future__ import annotations

import hmac
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

import pyotp
from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError, VerifyMismatchError
from sqlalchemy import Connection, Engine, insert, select, update

from deposit_token.errors import DepositTokenError
from deposit_token.web.core import accesslog, tables
from deposit_token.web.core.totpkeys import KeyFileError, KeyRing, default_path, is_sealed

AUDITOR = "auditor"
SUPERVISOR = "supervisor"
ROLES = (AUDITOR, SUPERVISOR)
TOTP_ISSUER = "deposit-token audit"
TOTP_STEP = 30
MIN_PASSWORD = 12
MAX_PASSWORD = 1024  # Argon2 takes any length; a megabyte "password" is a denial of service, not a password
_NAME = re.compile(r"^[a-z0-9][a-z0-9._-]{1,63}$")

_hasher = PasswordHasher()
_dummy_hash: str | None = None


class AccountError(DepositTokenError):
    """An account cannot be added or changed (the message says why, in one sentence)."""


@dataclass(frozen=True)
class Limits:
    """Login throttling: at most `per_user` failed logins per account name and `per_ip` per client address in
    `window` seconds; further attempts are refused, even with the right password, until the oldest failure in
    the window is `window` seconds old."""

    per_user: int = 5
    per_ip: int = 20
    window: int = 900


@dataclass(frozen=True)
class Enrolment:
    """A new second factor: shown once (to the supervisor or on the terminal), never stored in any log."""

    name: str
    secret: str
    uri: str  # otpauth:// provisioning URI (what a QR code encodes)


@dataclass(frozen=True)
class Account:
    id: int
    name: str
    role: str
    disabled: bool
    created_at: int
    last_login: int | None = None

    @property
    def is_supervisor(self) -> bool:
        return self.role == SUPERVISOR


class LoginRefused(DepositTokenError):
    """A login was refused: `reason` "credentials" (one message whatever was wrong) or "throttled" (with
    `retry_after` seconds)."""

    def __init__(self, reason: Literal["credentials", "throttled"], retry_after: int | None = None):
        self.reason = reason
        self.retry_after = retry_after
        super().__init__(
            "name, password or code is wrong"
            if reason == "credentials"
            else f"too many failed logins: try again in {max(1, -(-(retry_after or 60) // 60))} min"
        )


# --- checks ----------------------------------------------------------------------------------------------------


def check_name(name: str) -> str:
    """The account name in its stored form (lower case), or AccountError saying what is wrong with it."""
    cleaned = name.strip().lower()
    if not _NAME.match(cleaned):
        raise AccountError(
            f"{name!r} is not an account name: 2-64 characters, letters, digits, '.', '_' or '-', "
            "starting with a letter or digit"
        )
    return cleaned


def check_role(role: str) -> str:
    if role not in ROLES:
        raise AccountError(f"unknown role {role!r} (roles: {', '.join(ROLES)})")
    return role


def check_password(password: str) -> None:
    if len(password) < MIN_PASSWORD:
        raise AccountError(f"the password is too short: at least {MIN_PASSWORD} characters")
    if len(password) > MAX_PASSWORD:
        raise AccountError(f"the password is too long: at most {MAX_PASSWORD} characters")


# --- the TOTP secrets' key -------------------------------------------------------------------------------------


def key_ring(engine: Engine, path: str | Path | None = None) -> KeyRing:
    """The key file at `path` (else :func:`totpkeys.default_path`), created with a first key if it does not exist
    and the database holds no encrypted secret yet; KeyFileError (one sentence) if it is missing while the
    database holds encrypted secrets, unreadable, or readable by other users."""
    ring = KeyRing(path or default_path())
    with engine.connect() as conn:
        stored = _stored_secrets(conn)
    if not ring.exists() and not any(is_sealed(value) for _, _, value in stored):
        ring.create()
    ring.current_id()  # reads it: a missing, unreadable or foreign file is said now
    _check_opens(ring, stored)  # and one that is not the database's before anything is sealed under it
    return ring


def _check_opens(keys: KeyRing, stored: list[tuple[int, str, str]]) -> None:
    refused = []
    for _user_id, name, value in stored:
        if is_sealed(value):
            try:
                keys.open(value, name)
            except KeyFileError as err:
                refused.append((name, err))
    if refused:
        names = ", ".join(name for name, _ in refused[:5]) + (" ..." if len(refused) > 5 else "")
        raise KeyFileError(f"{refused[0][1]} (accounts whose secret does not open: {names})")


@dataclass(frozen=True)
class Protection:
    """What :func:`protect_secrets` did: the accounts whose clear secret it encrypted, and how many secrets the
    database holds (all of them open with the key file)."""

    encrypted: list[str]
    total: int


def _stored_secrets(conn: Connection) -> list[tuple[int, str, str]]:
    u = tables.users
    return [(r.id, r.name, r.totp_secret) for r in conn.execute(select(u.c.id, u.c.name, u.c.totp_secret))]


def _replace_secret(conn: Connection, user_id: int, old: str, new: str) -> bool:
    """Compare and set: another process (a second server worker, a command) may have changed it meanwhile."""
    u = tables.users
    done = conn.execute(update(u).where(u.c.id == user_id, u.c.totp_secret == old).values(totp_secret=new))
    return done.rowcount == 1


def protect_secrets(engine: Engine, keys: KeyRing, now: int) -> Protection:
    """Encrypts every TOTP secret still stored in clear and checks that every encrypted one opens with `keys`;
    KeyFileError naming the accounts whose secret does not (the wrong key file), without changing anything."""
    with engine.begin() as conn:
        stored = _stored_secrets(conn)
        _check_opens(keys, stored)
        encrypted = [
            name
            for user_id, name, value in stored
            if not is_sealed(value) and _replace_secret(conn, user_id, value, keys.seal(value, name))
        ]
        if encrypted:
            accesslog.record(conn, accesslog.SECRETS_ENCRYPTED, now, "system", None, accounts=len(encrypted))
    return Protection(encrypted, len(stored))


def rotate_key(
    engine: Engine, keys: KeyRing, now: int, drop_old: bool = False, actor: str | None = None
) -> tuple[int, int]:
    """A new current key in the key file, and every secret of the database encrypted again under it (clear ones
    too); with `drop_old` the older keys are then removed from the file (databases still encrypted under them,
    such as another network's that shares the file, would no longer open). Returns (new key id, secrets)."""
    protect_secrets(engine, keys, now)  # every secret opens before anything changes
    new = keys.rotate()
    with engine.begin() as conn:
        stored = _stored_secrets(conn)
        for user_id, name, value in stored:
            clear = keys.open(value, name) if is_sealed(value) else value
            _replace_secret(conn, user_id, value, keys.seal(clear, name))
        accesslog.record(conn, accesslog.KEY_ROTATED, now, actor, None, key=new, accounts=len(stored))
    if drop_old:
        keys.drop_old()
    return new, len(stored)


def _ring(engine: Engine, keys: KeyRing | None) -> KeyRing:
    return keys if keys is not None else key_ring(engine)


def _seal(engine: Engine, keys: KeyRing | None, secret: str, name: str) -> str:
    try:
        return _ring(engine, keys).seal(secret, name)
    except KeyFileError as err:
        raise AccountError(str(err)) from None


def _enrolment(name: str) -> Enrolment:
    secret = pyotp.random_base32()
    return Enrolment(name, secret, pyotp.TOTP(secret).provisioning_uri(name=name, issuer_name=TOTP_ISSUER))


# --- managing accounts -----------------------------------------------------------------------------------------


def add_user(
    engine: Engine,
    name: str,
    role: str,
    password: str,
    now: int,
    actor: str | None = None,
    ip: str | None = None,
    keys: KeyRing | None = None,
) -> Enrolment:
    """Creates an account and its second factor (returned, to be shown once; stored encrypted under `keys`, the
    default key file if None); logs who added it."""
    name, role = check_name(name), check_role(role)
    check_password(password)
    enrolment = _enrolment(name)
    sealed = _seal(engine, keys, enrolment.secret, name)
    password_hash = _hasher.hash(password)  # outside the transaction: hashing takes a while
    with engine.begin() as conn:
        if conn.execute(select(tables.users.c.id).where(tables.users.c.name == name)).first():
            raise AccountError(f"there is already an account {name!r}")
        conn.execute(
            insert(tables.users).values(
                name=name,
                role=role,
                password_hash=password_hash,
                totp_secret=sealed,
                totp_last_step=0,
                disabled=False,
                created_at=now,
                changed_at=now,
            )
        )
        accesslog.record(conn, accesslog.USER_ADDED, now, actor, ip, account=name, role=role)
    return enrolment


def _account_id(conn: Connection, name: str) -> int:
    found = conn.execute(select(tables.users.c.id).where(tables.users.c.name == check_name(name))).scalar()
    if found is None:
        raise AccountError(f"there is no account {name.strip()!r}")
    return int(found)


def set_disabled(
    engine: Engine, name: str, disabled: bool, now: int, actor: str | None = None, ip: str | None = None
) -> None:
    """Disables (every session of the account ends at once) or enables an account."""
    with engine.begin() as conn:
        user_id = _account_id(conn, name)
        conn.execute(update(tables.users).where(tables.users.c.id == user_id).values(disabled=disabled, changed_at=now))
        if disabled:
            conn.execute(tables.sessions.delete().where(tables.sessions.c.user_id == user_id))
        event = accesslog.USER_DISABLED if disabled else accesslog.USER_ENABLED
        accesslog.record(conn, event, now, actor, ip, account=check_name(name))


def reset_mfa(
    engine: Engine,
    name: str,
    now: int,
    actor: str | None = None,
    ip: str | None = None,
    keys: KeyRing | None = None,
) -> Enrolment:
    """A new TOTP secret for the account (the old one stops working, its sessions end); returned to be shown
    once, stored encrypted under `keys` (the default key file if None)."""
    enrolment = _enrolment(check_name(name))
    sealed = _seal(engine, keys, enrolment.secret, enrolment.name)
    with engine.begin() as conn:
        user_id = _account_id(conn, name)
        conn.execute(
            update(tables.users)
            .where(tables.users.c.id == user_id)
            .values(totp_secret=sealed, totp_last_step=0, changed_at=now)
        )
        conn.execute(tables.sessions.delete().where(tables.sessions.c.user_id == user_id))
        accesslog.record(conn, accesslog.MFA_RESET, now, actor, ip, account=enrolment.name)
    return enrolment


def list_accounts(engine: Engine) -> list[Account]:
    u = tables.users
    with engine.connect() as conn:
        logins = accesslog.last_logins(conn)
        rows = conn.execute(select(u.c.id, u.c.name, u.c.role, u.c.disabled, u.c.created_at).order_by(u.c.name))
        return [Account(r.id, r.name, r.role, bool(r.disabled), r.created_at, logins.get(r.name)) for r in rows]


# --- logging in ------------------------------------------------------------------------------------------------


def _verify_password(password_hash: str, password: str) -> bool:
    try:
        return _hasher.verify(password_hash, password)
    except (VerifyMismatchError, VerificationError, InvalidHashError):
        return False


def _waste_a_verification(password: str) -> None:
    """The Argon2 work of a real check, for a name that has no account (equal timing)."""
    global _dummy_hash
    if _dummy_hash is None:
        _dummy_hash = _hasher.hash("not the password of any account")
    _verify_password(_dummy_hash, password)


def totp_step(secret: str, code: str, now: int) -> int | None:
    """The 30-second step (within one of `now`'s) whose code `code` is, or None."""
    code = code.strip().replace(" ", "")
    if not (len(code) == 6 and code.isdigit()):
        return None
    totp = pyotp.TOTP(secret)
    current = now // TOTP_STEP
    for step in (current - 1, current, current + 1):
        if step >= 0 and hmac.compare_digest(totp.generate_otp(step), code):
            return step
    return None


def _retry_after(engine: Engine, name: str, ip: str | None, now: int, limits: Limits) -> int | None:
    """Seconds until a login may be tried again, or None if it may be tried now."""
    since = now - limits.window
    failures = (accesslog.LOGIN_FAILED, accesslog.LOGIN_THROTTLED)
    t = tables.access_log
    with engine.connect() as conn:
        user_since = max(since, (accesslog.last_at(conn, accesslog.LOGIN, actor=name) or since - 1) + 1)
        checks = [(accesslog.count_since(conn, failures, user_since, actor=name), limits.per_user, t.c.actor, name)]
        if ip:
            checks.append((accesslog.count_since(conn, failures, since, ip=ip), limits.per_ip, t.c.ip, ip))
        waits = []
        for count, limit, column, value in checks:
            if count >= limit:
                # the window reopens when enough failures have aged out of it
                ages = conn.execute(
                    select(t.c.at)
                    .where(t.c.event.in_(failures), t.c.at >= since, column == value)
                    .order_by(t.c.at.desc())
                    .limit(limit)
                ).scalars()
                oldest = min(ages)
                waits.append(max(1, oldest + limits.window - now))
    return max(waits) if waits else None


def authenticate(
    engine: Engine,
    name: str,
    password: str,
    code: str,
    ip: str | None,
    now: int,
    limits: Limits = Limits(),
    keys: KeyRing | None = None,
) -> Account:
    """The account if `password` and the TOTP `code` are right and the account is enabled; otherwise
    LoginRefused (and the attempt is in the access log, without the password or the code). The stored secret
    opens with `keys` (the default key file if None)."""
    typed = name.strip().lower()[:64]
    wait = _retry_after(engine, typed, ip, now, limits)
    if wait is not None:
        with engine.begin() as conn:
            accesslog.record(conn, accesslog.LOGIN_THROTTLED, now, typed or None, ip)
        raise LoginRefused("throttled", wait)
    u = tables.users
    with engine.connect() as conn:
        row = conn.execute(select(u).where(u.c.name == typed)).first() if _NAME.match(typed) else None
    if row is None:
        _waste_a_verification(password)
        return _refuse(engine, typed, ip, now, "unknown account")
    if not _verify_password(row.password_hash, password):
        return _refuse(engine, typed, ip, now, "wrong password")
    if not is_sealed(row.totp_secret):
        # written in clear behind the server's back (it encrypts every secret at start): not trusted
        return _refuse(engine, typed, ip, now, "second factor secret stored in clear")
    try:
        secret = _ring(engine, keys).open(row.totp_secret, row.name)
    except KeyFileError:
        return _refuse(engine, typed, ip, now, "second factor secret does not open with the key file")
    step = totp_step(secret, code, now)
    if step is None:
        return _refuse(engine, typed, ip, now, "wrong second factor")
    if row.disabled:
        return _refuse(engine, typed, ip, now, "account disabled")
    with engine.begin() as conn:
        taken = conn.execute(
            update(u).where(u.c.id == row.id, u.c.totp_last_step < step).values(totp_last_step=step)
        ).rowcount
        if taken != 1:
            accesslog.record(conn, accesslog.LOGIN_FAILED, now, typed, ip, reason="second factor code used before")
        else:
            if _hasher.check_needs_rehash(row.password_hash):
                conn.execute(update(u).where(u.c.id == row.id).values(password_hash=_hasher.hash(password)))
            accesslog.record(conn, accesslog.LOGIN, now, typed, ip)
    if taken != 1:
        raise LoginRefused("credentials")
    return Account(row.id, row.name, row.role, False, row.created_at, now)


def _refuse(engine: Engine, name: str, ip: str | None, now: int, reason: str) -> Account:
    with engine.begin() as conn:
        accesslog.record(conn, accesslog.LOGIN_FAILED, now, name or None, ip, reason=reason)
    raise LoginRefused("credentials")

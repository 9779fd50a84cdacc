"""``ape run audit users add|disable|enable|reset-mfa|list|encrypt-secrets|rotate-key``: the web console's auditor
accounts, in the audit database (``deposit_token.web.core.accounts``), their TOTP secrets encrypted under a key file
outside it (``deposit_token.web.core.totpkeys``)."""

from __future__ import annotations

import os
import time
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeVar

import click
from sqlalchemy import Engine

from deposit_token.cli.audit._reading import database_options, resolve_db

if TYPE_CHECKING:
    from deposit_token.web.core.totpkeys import KeyRing

F = TypeVar("F", bound=Callable[..., Any])
PASSWORD_ENV = "DEPOSIT_TOKEN_WEB_PASSWORD"
KEY_FILE_ENV = "DEPOSIT_TOKEN_TOTP_KEY_FILE"  # totpkeys.KEY_FILE_ENV (not imported: --help stays fast)

totp_key_option = click.option(
    "--totp-key-file",
    type=click.Path(dir_okay=False, path_type=Path),
    default=None,
    help=f"The key file that encrypts the accounts' TOTP secrets (default: ${KEY_FILE_ENV}, else "
    "console-totp.key beside the default audit databases; created, mode 0600, on first use).",
)


def _engine(db: str | None, network: str | None) -> Engine:
    from deposit_token.web.app import WebError, open_database

    try:
        return open_database(resolve_db(db, network))
    except WebError as err:
        raise click.ClickException(str(err)) from None


def _account_errors(f: F) -> F:
    import functools

    @functools.wraps(f)
    def wrapped(*args: Any, **kwargs: Any) -> Any:
        from deposit_token.web.core.accounts import AccountError
        from deposit_token.web.core.totpkeys import KeyFileError

        try:
            return f(*args, **kwargs)
        except (AccountError, KeyFileError) as err:
            raise click.ClickException(str(err)) from None

    return wrapped  # type: ignore[return-value]  # same signature


def _keys(engine: Engine, path: Path | None) -> KeyRing:
    from deposit_token.web.core.accounts import key_ring

    return key_ring(engine, path)


def _show_enrolment(enrolment: Any) -> None:
    click.echo(f"TOTP secret of {enrolment.name} (shown once; enter it in the authenticator app now):")
    click.echo(f"  secret: {enrolment.secret}")
    click.echo(f"  URI:    {enrolment.uri}")


@click.group("users", short_help="Web console accounts: add, disable, enable, reset-mfa, list, TOTP key")
def command() -> None:
    """Auditor accounts of the web console (`ape run audit serve`): password (Argon2) + TOTP second factor;
    role auditor, or supervisor (who also manages accounts). Every change is in the access log.

    TOTP secrets are stored encrypted (AES-GCM) under a key file outside the database (--totp-key-file): keep
    it private, back it up apart from the database, and give the same file to `audit serve`."""


@command.command("add")
@database_options
@totp_key_option
@click.argument("name")
@click.option(
    "--role",
    type=click.Choice(("auditor", "supervisor")),
    required=True,
    help="auditor, or supervisor (manages users).",
)
@_account_errors
def add(db: str | None, network: str | None, totp_key_file: Path | None, name: str, role: str) -> None:
    """Add account NAME. The password is read hidden from the terminal (twice), or from
    $DEPOSIT_TOKEN_WEB_PASSWORD for scripts; the TOTP secret and its otpauth:// URI are printed once."""
    from deposit_token.web.core.accounts import add_user, check_name, check_password

    check_name(name)  # a bad name is refused before asking for a password
    password = os.environ.get(PASSWORD_ENV)
    if password is None:
        password = click.prompt("Password", hide_input=True, confirmation_prompt=True)
    check_password(password)
    engine = _engine(db, network)
    try:
        enrolment = add_user(engine, name, role, password, int(time.time()), "cli", None, _keys(engine, totp_key_file))
    finally:
        engine.dispose()
    click.echo(f"added {enrolment.name} ({role})")
    _show_enrolment(enrolment)


@command.command("disable")
@database_options
@click.argument("name")
@_account_errors
def disable(db: str | None, network: str | None, name: str) -> None:
    """Disable account NAME: its sessions end now and it cannot log in."""
    from deposit_token.web.core.accounts import set_disabled

    engine = _engine(db, network)
    try:
        set_disabled(engine, name, True, int(time.time()), actor="cli")
    finally:
        engine.dispose()
    click.echo(f"disabled {name.strip().lower()}")


@command.command("enable")
@database_options
@click.argument("name")
@_account_errors
def enable(db: str | None, network: str | None, name: str) -> None:
    """Enable account NAME again."""
    from deposit_token.web.core.accounts import set_disabled

    engine = _engine(db, network)
    try:
        set_disabled(engine, name, False, int(time.time()), actor="cli")
    finally:
        engine.dispose()
    click.echo(f"enabled {name.strip().lower()}")


@command.command("reset-mfa")
@database_options
@totp_key_option
@click.argument("name")
@_account_errors
def reset_mfa(db: str | None, network: str | None, totp_key_file: Path | None, name: str) -> None:
    """Give account NAME a new TOTP secret (printed once); the old one stops working, its sessions end."""
    from deposit_token.web.core.accounts import reset_mfa as reset

    engine = _engine(db, network)
    try:
        enrolment = reset(engine, name, int(time.time()), "cli", None, _keys(engine, totp_key_file))
    finally:
        engine.dispose()
    _show_enrolment(enrolment)


@command.command("list")
@database_options
def list_users(db: str | None, network: str | None) -> None:
    """The accounts: name, role, state, created, last login (KST)."""
    from deposit_token.domain import display
    from deposit_token.web.core.accounts import list_accounts

    engine = _engine(db, network)
    try:
        found = list_accounts(engine)
    finally:
        engine.dispose()
    if not found:
        click.echo("no accounts (add one: ape run audit users add NAME --role supervisor)")
        return
    click.echo(f"{'name':<24} {'role':<11} {'state':<9} {'created':<21} last login")
    for a in found:
        last = display.moment(a.last_login) if a.last_login else "-"
        state = "disabled" if a.disabled else "enabled"
        click.echo(f"{a.name:<24} {a.role:<11} {state:<9} {display.moment(a.created_at):<21} {last}")


@command.command("encrypt-secrets")
@database_options
@totp_key_option
@_account_errors
def encrypt_secrets(db: str | None, network: str | None, totp_key_file: Path | None) -> None:
    """Encrypt the TOTP secrets still stored in clear (by a version before encryption) under the key file, and
    check that every encrypted one opens with it (`audit serve` does the same at start)."""
    from deposit_token.web.core.accounts import protect_secrets

    engine = _engine(db, network)
    try:
        keys = _keys(engine, totp_key_file)
        done = protect_secrets(engine, keys, int(time.time()))
    finally:
        engine.dispose()
    click.echo(
        f"{len(done.encrypted)} secrets encrypted now, {done.total} in all, every one opens with {keys.path} "
        f"(key {keys.current_id()})"
    )


@command.command("rotate-key")
@database_options
@totp_key_option
@click.option(
    "--drop-old",
    is_flag=True,
    default=False,
    help="Then remove the older keys from the key file (only if no other database still uses them).",
)
@_account_errors
def rotate_key(db: str | None, network: str | None, totp_key_file: Path | None, drop_old: bool) -> None:
    """Add a new key to the key file and encrypt every TOTP secret of the database again under it (the codes
    of the authenticator apps do not change). The older keys stay in the file, to open other databases that
    share it, unless --drop-old. A running server reads the changed file by itself."""
    from deposit_token.web.core.accounts import rotate_key as rotate

    engine = _engine(db, network)
    try:
        new, count = rotate(engine, _keys(engine, totp_key_file), int(time.time()), drop_old, actor="cli")
    finally:
        engine.dispose()
    click.echo(
        f"key {new} is current; {count} secrets encrypted under it" + ("; older keys removed" if drop_old else "")
    )

"""The pilot's keystore accounts without Python: create several ape accounts at once and list them.

    ape run accounts create admin treasury issuer manager registrar compliance
    ape run accounts list

Each account is an encrypted keyfile in ape's keystore (``ape accounts list`` shows the same accounts). The
passphrase of alias A comes from ape's own variable ``APE_ACCOUNTS_A_PASSPHRASE`` when it is set (the same
variable unattended signing uses later), otherwise it is asked for once, hidden, and used for every alias the
command creates. No key and no passphrase is ever printed.
"""

from __future__ import annotations

import os

import click
from rich.table import Table

from deposit_token.cli.common import console
from deposit_token.ops import accounts


@click.group()
def cli() -> None:
    """Create and list the pilot participants' ape keystore accounts."""


def _passphrases(aliases: list[str]) -> dict[str, str]:
    """Each new alias's passphrase: ape's variable when set, else one asked for (hidden, confirmed) before
    anything is created, so a refused prompt leaves the keystore as it was."""
    found = {alias: os.environ.get(accounts.passphrase_env_var(alias), "") for alias in aliases}
    missing = [alias for alias, value in found.items() if not value]
    if missing:
        try:
            asked = click.prompt(f"Passphrase for {', '.join(missing)}", hide_input=True, confirmation_prompt=True)
        except click.exceptions.Abort:
            raise click.ClickException(
                f"no passphrase for {', '.join(missing)}: type one at the prompt or set "
                f"{accounts.passphrase_env_var(missing[0])}"
            ) from None
        found.update(dict.fromkeys(missing, asked))
    return found


@cli.command()
@click.argument("aliases", nargs=-1, required=True)
def create(aliases: tuple[str, ...]) -> None:
    """Create ape keystore accounts ALIASES... (existing ones are kept as they are).

    Aliases are letters, digits and '_' (so that APE_ACCOUNTS_<alias>_PASSPHRASE can be exported). Each key is
    new and random, encrypted with ape's default scrypt cost.
    """
    try:
        for alias in aliases:
            accounts.validate_alias(alias)
        new = [alias for alias in dict.fromkeys(aliases) if not accounts.keyfile_path(alias).exists()]
        passphrases = _passphrases(new)
        table = Table(title="ape keystore accounts")
        for column in ("alias", "address", "state"):
            table.add_column(column)
        for alias in dict.fromkeys(aliases):
            if alias in passphrases:
                table.add_row(alias, accounts.create_account(alias, passphrases[alias]), "created")
            else:
                table.add_row(alias, accounts.account_address(alias), "kept (already existed)")
    except accounts.AccountError as err:
        raise click.ClickException(str(err)) from None
    console().print(table)


@cli.command()
@click.argument("alias")
def address(alias: str) -> None:
    """Print the address of ape account ALIAS alone (for scripts and CSV files); no key is decrypted."""
    try:
        click.echo(accounts.account_address(alias))
    except accounts.AccountError as err:
        raise click.ClickException(str(err)) from None


@cli.command(name="list")
def list_accounts() -> None:
    """List the aliases and addresses in ape's keystore (no key is decrypted)."""
    table = Table(title=f"ape keystore accounts ({accounts.keystore_dir()})")
    table.add_column("alias")
    table.add_column("address")
    try:
        for alias in accounts.list_aliases():
            table.add_row(alias, accounts.account_address(alias))
    except accounts.AccountError as err:
        raise click.ClickException(str(err)) from None
    console().print(table)

"""``ape run audit serve``: the auditors' console and the public portal over the audit database."""

from __future__ import annotations

from pathlib import Path

import click

from deposit_token.audit.db import store
from deposit_token.cli.audit._reading import database_options, resolve_db
from deposit_token.cli.audit.index import PUBLIC_NETWORK_CONFIRMATIONS
from deposit_token.cli.audit.users import totp_key_option
from deposit_token.web.server import workers_option


@click.command("serve", short_help="Serve the auditors' console and the public portal (web)")
@database_options
@click.option("--host", default="127.0.0.1", show_default=True, help="Address to listen on.")
@click.option("--port", type=click.IntRange(1, 65535), default=8000, show_default=True, help="Port to listen on.")
@click.option(
    "--secure-cookies",
    is_flag=True,
    default=False,
    help="Mark cookies Secure: the site is reached over HTTPS (directly or through a TLS proxy).",
)
@click.option(
    "--follow",
    is_flag=True,
    default=False,
    help="Also index the network's new blocks while serving (the indexer in the server's process; connects "
    "to --network). Without it, run `ape run audit index --follow` beside the server.",
)
@click.option(
    "--confirmations",
    type=click.IntRange(0),
    default=None,
    metavar="N",
    help=f"With --follow: as `audit index` (0 on local/dev networks, {PUBLIC_NETWORK_CONFIRMATIONS} elsewhere).",
)
@workers_option
@totp_key_option
def command(
    db: str | None,
    network: str | None,
    host: str,
    port: int,
    secure_cookies: bool,
    follow: bool,
    confirmations: int | None,
    workers: int | None,
    totp_key_file: Path | None,
) -> None:
    """Serve the web console (login with password + TOTP: accounts from `ape run audit users add`) and the
    public transparency portal on http://HOST:PORT, over the same database `audit index` fills.

    The database is migrated to the current schema (the console's tables); a SQLite file must exist already.
    Stop with Ctrl-C. docs/WEB.md describes the pages, the API and running it behind a TLS proxy."""
    from deposit_token.web.app import WebError
    from deposit_token.web.core.config import Follow, WebConfig
    from deposit_token.web.server import ListenError, default_workers, serve

    url = resolve_db(db, network)
    key_file = str(totp_key_file) if totp_key_file else None
    processes = workers or default_workers()
    try:
        if not follow:
            serve(WebConfig(url, secure_cookies=secure_cookies, totp_key_file=key_file), host, port, workers=processes)
            return
        from ape import networks
        from ape.exceptions import ApeException

        from deposit_token.cli.audit._reading import default_network
        from deposit_token.cli.audit.common import resolve_target

        try:
            with networks.parse_network_choice(network or default_network()) as provider:
                target = resolve_target(provider)
                chosen = confirmations
                if chosen is None:
                    chosen = 0 if target.is_dev else PUBLIC_NETWORK_CONFIRMATIONS
                click.echo(f"following token {target.token} on {target.network} ({chosen} confirmations)")
                config = WebConfig(
                    url,
                    secure_cookies=secure_cookies,
                    totp_key_file=key_file,
                    follow=Follow(target.rpc_url, target.token, target.start_block, chosen),
                )
                serve(config, host, port, workers=processes)
        except ApeException as err:
            raise click.ClickException(" ".join(str(err).split())) from None
    except (WebError, ListenError, store.DatabaseError) as err:
        raise click.ClickException(str(err)) from None

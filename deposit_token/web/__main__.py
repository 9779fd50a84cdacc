"""``python -m deposit_token.web --db URL [--host 127.0.0.1] [--port 8000]``: the console and the public portal
without ape, for a service manager (systemd, a container). ``ape run audit serve`` is the same server with the
database and the chain found from the network's deployment record.

With ``--rpc-url``, ``--token`` and ``--start-block`` the server also follows the chain (its own indexer in a
thread, see ``deposit_token.web.core.follow``); without them, run ``python -m deposit_token.audit index --follow``
beside it.
"""

from __future__ import annotations

import click

from deposit_token.audit.db import store
from deposit_token.web.app import WebError
from deposit_token.web.core.config import Follow, WebConfig
from deposit_token.web.server import ListenError, default_workers, serve, workers_option


@click.command(context_settings={"help_option_names": ["-h", "--help"]})
@click.option("--db", "db_url", required=True, metavar="PATH|URL", help="The audit database (SQLite path or URL).")
@click.option("--host", default="127.0.0.1", show_default=True, help="Address to listen on.")
@click.option("--port", type=click.IntRange(1, 65535), default=8000, show_default=True, help="Port to listen on.")
@click.option("--secure-cookies", is_flag=True, help="Mark cookies Secure (the site is reached over HTTPS).")
@click.option("--rpc-url", default=None, help="Follow this node's chain while serving (with --token, --start-block).")
@click.option("--token", default=None, help="Address of the deposit token to follow.")
@click.option("--start-block", type=click.IntRange(0), default=None, help="Block the token was deployed in.")
@click.option("--confirmations", type=click.IntRange(0), default=0, show_default=True, help="Blocks below the head.")
@workers_option
@click.option(
    "--totp-key-file",
    default=None,
    metavar="PATH",
    help="Key file of the accounts' TOTP secrets (default: $DEPOSIT_TOKEN_TOTP_KEY_FILE, else console-totp.key "
    "beside the default audit databases; created, mode 0600, on first use).",
)
def main(
    db_url: str,
    host: str,
    port: int,
    secure_cookies: bool,
    rpc_url: str | None,
    token: str | None,
    start_block: int | None,
    confirmations: int,
    workers: int | None,
    totp_key_file: str | None,
) -> None:
    """Serve the auditors' console and the public portal over an audit database."""
    follow_options = (rpc_url, token, start_block)
    if any(v is not None for v in follow_options) and not all(v is not None for v in follow_options):
        raise click.UsageError("--rpc-url, --token and --start-block go together (to follow the chain)")
    try:
        url = store.database_url(db_url)
        follow = (
            Follow(rpc_url, token, start_block, confirmations)
            if rpc_url is not None and token is not None and start_block is not None
            else None
        )
        config = WebConfig(url, secure_cookies=secure_cookies, follow=follow, totp_key_file=totp_key_file)
        serve(config, host, port, workers=workers or default_workers())
    except (WebError, ListenError, store.DatabaseError) as err:
        raise click.ClickException(str(err)) from None


if __name__ == "__main__":
    main()

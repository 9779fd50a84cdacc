"""The authenticated JSON-RPC gateway in front of the node (deposit_token.gateway; docs/GATEWAY.md).

    ape run gateway keys add treasury --role operator      # prints the new key, once
    ape run gateway keys list                              # names, roles, dates: no secret
    ape run gateway keys revoke treasury                   # refused from the next request on
    ape run gateway serve --upstream http://127.0.0.1:8545 --port 8600 --deployment ethereum:pilot:node
    ape run gateway start ... / stop / status              # the same, detached

Clients then use http://<name>:<key>@127.0.0.1:8600 (or the header Authorization: Bearer <key>).
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

import click
from rich.console import Console
from rich.table import Table

from deposit_token.chain.deployment import record_path
from deposit_token.domain.inputs import InputError, check_address
from deposit_token.errors import DepositTokenError
from deposit_token.gateway import control
from deposit_token.gateway.keys import KeyStore
from deposit_token.gateway.policy import ROLE_NAMES
from deposit_token.gateway.server import (
    BURST,
    DATA_DIR_ENV,
    DEFAULT_DATA_DIR,
    DEFAULT_PORT,
    DEFAULT_UPSTREAM,
    MAX_BATCH,
    MAX_BODY,
    RATE,
    Gateway,
    GatewayConfig,
)
from deposit_token.gateway.upstream import redacted


def _console() -> Console:
    return Console(width=None if sys.stdout.isatty() else 200)


data_dir_option = click.option(
    "--data-dir",
    type=click.Path(file_okay=False, path_type=Path),
    default=DEFAULT_DATA_DIR,
    envvar=DATA_DIR_ENV,
    show_default=".gateway",
    help=f"The gateway's folder: keys.json, access.log, gateway.log (or ${DATA_DIR_ENV}).",
)


@click.group(short_help="The authenticated JSON-RPC gateway: API keys, serve, start, stop")
def cli() -> None:
    """The only RPC clients see: per-institution API keys (hashed at rest), a method allowlist per role
    (auditor reads; wallet and operator also send raw transactions), only the token's registered participants
    and role holders may send, rate and size limits, and an access log without secrets."""


# --- keys -----------------------------------------------------------------------------------------------------


@cli.group(short_help="Add, list or revoke clients' API keys")
def keys() -> None:
    """Clients' API keys, in DATA_DIR/keys.json (only their SHA-256 is stored). A running gateway re-reads the
    file on every change: no restart is needed."""


@keys.command("add", short_help="Create a client's key (shown once)")
@click.argument("name")
@click.option("--role", type=click.Choice(ROLE_NAMES), required=True, help="What the client may call.")
@click.option("--rate", type=click.FloatRange(min=0, min_open=True), default=None, help="Calls/s (default: --rate).")
@click.option("--burst", type=click.IntRange(min=1), default=None, help="Calls at once (default: --burst).")
@data_dir_option
def keys_add(name: str, role: str, rate: float | None, burst: int | None, data_dir: Path) -> None:
    """Create an API key for the new client NAME and print it: this is the only time it is shown (give it to
    the client's operator through a secure channel; it cannot be recovered, only revoked and replaced). The
    key alone goes to standard output, so `KEY=$(ape run gateway keys add ...)` captures it."""
    try:
        key = KeyStore(data_dir / "keys.json").add(name, role, rate=rate, burst=burst)
    except (DepositTokenError, OSError) as err:
        raise click.ClickException(str(err)) from None
    click.echo(
        f"API key of client {name} (role {role}); shown only now. Clients send it as "
        f"'Authorization: Bearer <key>' or in the URL http://{name}:<key>@host:port",
        err=True,
    )
    click.echo(key)


@keys.command("list", short_help="List clients (no secrets)")
@data_dir_option
def keys_list(data_dir: Path) -> None:
    """List every client key: name, role, fingerprint (the start of the key's hash), limits, created and
    revoked (UTC). No key is shown: none is stored."""
    try:
        clients = KeyStore(data_dir / "keys.json").clients()
    except (DepositTokenError, OSError) as err:
        raise click.ClickException(str(err)) from None
    if not clients:
        click.echo(f"No client keys in {data_dir / 'keys.json'}; `gateway keys add NAME --role ROLE` creates one.")
        return
    table = Table(title=f"Gateway clients ({data_dir / 'keys.json'})")
    for column in ("name", "role", "fingerprint", "rate", "burst", "created", "revoked"):
        table.add_column(column, no_wrap=True)
    for c in clients:
        table.add_row(
            c.name,
            c.role.value,
            c.fingerprint,
            f"{c.rate:g}/s" if c.rate else "default",
            f"{c.burst:,}" if c.burst else "default",
            c.created,
            c.revoked or ("" if c.active else "?"),
        )
    _console().print(table)


@keys.command("revoke", short_help="Revoke a client's key")
@click.argument("name")
@data_dir_option
def keys_revoke(name: str, data_dir: Path) -> None:
    """Revoke NAME's active key: a running gateway refuses it from its next request on (HTTP 401)."""
    try:
        client = KeyStore(data_dir / "keys.json").revoke(name)
    except (DepositTokenError, OSError) as err:
        raise click.ClickException(str(err)) from None
    click.echo(f"Revoked the key of client {client.name} (role {client.role.value}) at {client.revoked}.")


# --- serving -------------------------------------------------------------------------------------------------


def _serve_options(command: Any) -> Any:
    options = [
        click.option(
            "--upstream",
            default=DEFAULT_UPSTREAM,
            show_default=True,
            metavar="URL",
            help="The node's JSON-RPC URL (Geth's archive node, Anvil, ...); http://user:pass@... for a node "
            "behind Basic authentication.",
        ),
        click.option("--host", default="127.0.0.1", show_default=True, help="Address to listen on."),
        click.option("--port", type=click.IntRange(0, 65535), default=DEFAULT_PORT, show_default=True),
        click.option("--token", default=None, metavar="ADDRESS", help="The token whose participants may send."),
        click.option(
            "--from-block",
            type=click.IntRange(min=0),
            default=0,
            show_default=True,
            help="With --token: the block the token was deployed in (where its events start).",
        ),
        click.option(
            "--deployment",
            default=None,
            metavar="RECORD|NETWORK",
            help="Follow the token of a deployment record (a file, or an ape network such as ethereum:pilot:node "
            "for deployments/<network>.json); re-read when it changes, so the gateway may start before deploy.",
        ),
        click.option(
            "--allow-sender",
            "allow_senders",
            multiple=True,
            metavar="ADDRESS",
            help="An account operator clients may always send from (the deployer, before the token exists). "
            "Repeatable.",
        ),
        click.option("--rate", type=click.FloatRange(min=0, min_open=True), default=RATE, show_default=True),
        click.option("--burst", type=click.IntRange(min=1), default=BURST, show_default=True),
        click.option("--max-body", type=click.IntRange(min=1024), default=MAX_BODY, show_default=True),
        click.option("--max-batch", type=click.IntRange(min=1), default=MAX_BATCH, show_default=True),
        click.option(
            "--poll-interval",
            type=click.FloatRange(min=0.05),
            default=1.0,
            show_default=True,
            metavar="SECONDS",
            help="How often the sender registry reads new events.",
        ),
        data_dir_option,
    ]
    for option in reversed(options):
        command = option(command)
    return command


def _config(
    *,
    upstream: str,
    host: str,
    port: int,
    token: str | None,
    from_block: int,
    deployment: str | None,
    allow_senders: tuple[str, ...],
    rate: float,
    burst: int,
    max_body: int,
    max_batch: int,
    poll_interval: float,
    data_dir: Path,
) -> GatewayConfig:
    if token and deployment:
        raise click.UsageError("give --token or --deployment, not both")
    if not upstream.startswith(("http://", "https://")):
        raise click.BadParameter(f"{redacted(upstream)!r} is not an http(s) URL", param_hint="--upstream")
    try:
        token = check_address(token, "--token") if token else None
        senders = tuple(check_address(a, "--allow-sender") for a in allow_senders)
    except InputError as err:
        raise click.BadParameter(str(err)) from None
    record = None
    if deployment:
        looks_like_file = deployment.endswith(".json") or "/" in deployment
        try:
            record = Path(deployment) if looks_like_file else record_path(deployment)
        except ValueError as err:
            raise click.BadParameter(str(err), param_hint="--deployment") from None
    return GatewayConfig(
        upstream=upstream,
        data_dir=data_dir,
        host=host,
        port=port,
        token=token,
        from_block=from_block,
        deployment=record,
        allow_senders=senders,
        rate=rate,
        burst=burst,
        max_body=max_body,
        max_batch=max_batch,
        poll_interval=poll_interval,
    )


def _fail(err: BaseException, config: GatewayConfig) -> click.ClickException:
    if isinstance(err, OSError) and not isinstance(err, DepositTokenError):
        return click.ClickException(f"the gateway of {config.data_dir} cannot use its files: {err}")
    return click.ClickException(str(err))


@cli.command(short_help="Run the gateway in the foreground")
@_serve_options
def serve(**options: Any) -> None:
    """Run the gateway until Ctrl-C (SIGINT) or SIGTERM. It first reads the token's participants and role
    holders from the node, then listens. Without --token or --deployment only --allow-sender accounts may
    send."""
    config = _config(**options)

    def ready(gateway: Gateway) -> None:
        click.echo(gateway.describe())

    try:
        control.run(config, ready)
    except (DepositTokenError, OSError) as err:
        raise _fail(err, config) from None


@cli.command(short_help="Start the gateway detached")
@_serve_options
def start(**options: Any) -> None:
    """Start the gateway in the background (it keeps running after this command returns) and wait until it
    answers; its output goes to DATA_DIR/gateway.log. `gateway stop` stops it."""
    config = _config(**options)
    try:
        started = control.start_process(config)
    except (DepositTokenError, OSError) as err:
        raise _fail(err, config) from None
    click.echo(f"Gateway started (pid {started.pid}) on {started.url}; log {config.data_dir / control.LOG_FILE}.")


@cli.command(short_help="Stop the detached gateway")
@data_dir_option
def stop(data_dir: Path) -> None:
    """Stop DATA_DIR's detached gateway (SIGTERM). Stopping a gateway that does not run is not an error."""
    pid = control.stop_process(data_dir)
    click.echo(f"Stopped the gateway (pid {pid})." if pid else f"The gateway of {data_dir} is not running.")


@cli.command(short_help="Show whether the detached gateway runs")
@data_dir_option
def status(data_dir: Path) -> None:
    """Show DATA_DIR's detached gateway: pid, URL, upstream, token; exit code 1 if it does not run."""
    pid = control.running_pid(data_dir)
    if pid is None:
        click.echo(f"The gateway of {data_dir} is not running.")
        sys.exit(1)
    config = control.read_config(data_dir)
    token = config.token or (str(config.deployment) if config.deployment else "none (only --allow-sender)")
    click.echo(
        f"Gateway running (pid {pid}) on http://{config.host}:{config.port} -> {redacted(config.upstream)}; "
        f"senders from {token}."
    )

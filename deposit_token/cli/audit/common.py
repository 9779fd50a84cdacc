"""What every ``ape run audit`` subcommand shares: the --network/--db options, finding the deployment record
of the network, opening the database, and turning operational errors into one-line messages.

Order matters for "bad input changes nothing": options and the record are checked before the database is
opened (opening creates a SQLite file and migrates the schema).
"""

from __future__ import annotations

import sys
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

import click
from rich.console import Console

from deposit_token.audit.db import store
from deposit_token.chain import deployment
from deposit_token.chain.abi import AbiError
from deposit_token.chain.rpc import RpcClient, RpcConnectionError, RpcError

F = TypeVar("F", bound=Callable[..., Any])

DB_HELP = (
    "Audit database: a SQLite file path, sqlite:///path/file.sqlite or postgresql://user@host:5432/dbname "
    "(default: audit/<network>.sqlite in the repository, e.g. audit/ethereum-pilot-node.sqlite)."
)
NETWORK_HELP = (
    "Ape network choice ecosystem:network:provider, e.g. ethereum:pilot:node (default: the pilot "
    "network, if its node answers). The token is the one recorded in deployments/<network>.json, e.g. "
    "deployments/ethereum-pilot-node.json, whatever URI the provider uses."
)

# Reported as one line (exit code 1) instead of a traceback.
OPERATIONAL_ERRORS: tuple[type[BaseException], ...] = (
    store.DatabaseError,
    deployment.DeploymentRecordError,
    RpcError,
    RpcConnectionError,
    AbiError,
)


def console() -> Console:
    """Wide when not on a terminal so that addresses and hashes stay on one line in logs."""
    return Console(width=None if sys.stdout.isatty() else 200, highlight=False)


def _connected_command_class() -> type[click.Command]:
    from ape.exceptions import ApeException

    from deposit_token.cli.common import command_class  # one sentence for an unusable network

    return command_class((*OPERATIONAL_ERRORS, ApeException))


AuditCommand = _connected_command_class()


def network_option() -> Callable[[F], F]:
    from deposit_token.cli.common import network_option as ape_network_option  # defaults to the pilot

    return ape_network_option(help=NETWORK_HELP)


def check_db(ctx: click.Context, param: click.Parameter, value: str | None) -> str | None:
    """--db of every audit command, as a URL (a plain path is a SQLite file: ``store.database_url``); a
    malformed one is rejected while the options are parsed, before ape connects (or starts a node)."""
    if value is None:
        return None
    try:
        store.parse_db_url(value)
        return store.database_url(value)
    except store.DatabaseError as err:
        raise click.BadParameter(str(err), ctx, param) from None


def db_option(f: F) -> F:
    return click.option("--db", "db_url", metavar="PATH|URL", default=None, help=DB_HELP, callback=check_db)(f)


@dataclass(frozen=True)
class Target:
    """The deployment an audit command works on: from the network's record, checked against the chain."""

    network: str
    record_path: Path
    chain_id: int
    token: str
    start_block: int
    rpc_url: str
    is_dev: bool


def db_url_for(network_name: str, db_url: str | None) -> str:
    """The --db value, or the default SQLite file of the network (`network_name` as given by
    ``deployment.network_name``); validated (nothing is created here)."""
    text = store.database_url(db_url) if db_url else store.default_db_url(deployment.network_file_stem(network_name))
    store.parse_db_url(text)
    return text


def resolve_target(provider: Any) -> Target:
    """The recorded deployment of the connected network; ClickException if there is none or it does not fit."""
    choice = deployment.network_name(provider)  # the name deploy wrote the record under
    path = deployment.record_path(choice)
    record = deployment.load_record(path)
    if record is None:
        raise click.ClickException(
            f"no deployment record for {choice} at {path}: deploy first (ape run deploy --network {choice}) "
            f"or point ${deployment.DEPLOYMENTS_ENV} at the folder that has it"
        )
    chain_id = int(provider.chain_id)
    if record.get("chain_id") != chain_id:
        raise click.ClickException(
            f"{path} is for chain id {record.get('chain_id')}, the connected chain is {chain_id}"
        )
    rpc_url = getattr(provider, "http_uri", None) or getattr(provider, "uri", None)
    if not rpc_url:
        raise click.ClickException(f"the provider of {choice} has no HTTP JSON-RPC URL")
    rpc = RpcClient(rpc_url)
    try:
        if rpc.code_size(record["token"]) == 0:
            raise click.ClickException(
                f"{path} records token {record['token']} but chain {chain_id} has no code "
                "there (restarted dev chain? deploy again)"
            )
    finally:
        rpc.close()
    return Target(
        network=choice,
        record_path=path,
        chain_id=chain_id,
        token=record["token"],
        start_block=int(record["block"]["number"]),
        rpc_url=rpc_url,
        is_dev=bool(getattr(provider.network, "is_dev", False) or provider.network.name == "local"),
    )


def open_db(url: str, must_exist: bool = False) -> Any:
    """The migrated engine; with `must_exist`, a missing SQLite file is an error (and is not created)."""
    if must_exist:
        parsed = store.parse_db_url(url)
        if parsed.get_backend_name() == "sqlite" and not store.sqlite_file(parsed).exists():
            raise click.ClickException(f"no audit database at {parsed.database}: run `ape run audit index` first")
    return store.open_database(url)


def open_target(provider: Any, db_url: str | None, must_exist: bool = False) -> tuple[Target, Any]:
    """The connected network's deployment and its migrated audit database engine, in the order that keeps bad
    input from changing anything: the --db value is checked, then the record against the chain, and only then
    is the database opened (``open_db``; `must_exist` as there)."""
    url = db_url_for(deployment.network_name(provider), db_url)
    target = resolve_target(provider)
    return target, open_db(url, must_exist=must_exist)

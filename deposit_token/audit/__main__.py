"""``python -m deposit_token.audit index|verify --rpc-url URL --token ADDRESS ...``: the indexer without ape.

The ape script (``ape run audit``) is the auditors' interface: it finds the token in the network's deployment
record. This entry point runs the same library against an explicit node URL and token, for a service manager
(systemd, a container) where loading an ape project on every start is unwanted, and for the crash tests,
which start and ``kill -9`` the indexer many times.

It lives here, not in ``deposit_token.cli.audit``: importing that package builds the ape script's command
group, which imports ape (seconds of start-up, and a dependency this entry point promises to do without). The
contracts' ABI comes with the package (``deposit_token.chain.abi``); ``tests/unit/test_audit_without_ape.py``
checks that nothing here imports ape.
"""

from __future__ import annotations

import sys
from collections.abc import Callable

import click

from deposit_token.audit.db import store
from deposit_token.audit.sync.indexer import Indexer, IndexerConfig
from deposit_token.audit.verify import VerifyError, verify
from deposit_token.chain.rpc import RpcClient, RpcConnectionError, RpcError


def _common(f: Callable[..., None]) -> Callable[..., None]:
    f = click.option("--rpc-url", required=True, help="HTTP JSON-RPC URL of the node.")(f)
    f = click.option("--db", "db_url", required=True, help="sqlite:///file or postgresql://... URL.")(f)
    f = click.option("--token", required=True, help="Address of the deposit token.")(f)
    return f


@click.group()
def main() -> None:
    """Audit indexer without ape (see the module docstring)."""


@main.command("index")
@_common
@click.option("--start-block", type=click.IntRange(0), required=True, help="Block the token was deployed in.")
@click.option("--follow", is_flag=True, help="Keep following the head.")
@click.option("--confirmations", type=click.IntRange(0), default=0, show_default=True)
@click.option("--max-range", type=click.IntRange(1), default=50_000, show_default=True)
def index_command(
    rpc_url: str, db_url: str, token: str, start_block: int, follow: bool, confirmations: int, max_range: int
) -> None:
    """Index the token's events (one transaction per block range, resumable after any crash)."""
    try:
        rpc = RpcClient(rpc_url)
        engine = store.open_database(db_url)
        store.bind_to_chain(engine, rpc.chain_id(), token, start_block)
        config = IndexerConfig(
            token=token,
            start_block=start_block,
            confirmations=confirmations,
            max_range=max_range,
            initial_range=min(10, max_range),
        )
        stats = Indexer(rpc, engine, config, log=lambda m: print(m, file=sys.stderr)).run(follow=follow)
    except (store.DatabaseError, RpcError, RpcConnectionError, ValueError) as err:
        raise click.ClickException(str(err)) from None
    click.echo(f"{stats.events} events, {stats.commits} commits")


@main.command("verify")
@_common
def verify_command(rpc_url: str, db_url: str, token: str) -> None:
    """Reconcile the database with the chain at its checkpoint; exit status 1 on any mismatch."""
    try:
        result = verify(RpcClient(rpc_url), store.open_database(db_url), token)
    except (store.DatabaseError, RpcError, RpcConnectionError, VerifyError) as err:
        raise click.ClickException(str(err)) from None
    click.echo(result.lag_note)
    if result.skipped_note:
        click.echo(result.skipped_note)
    for mismatch in result.mismatches:
        click.echo(str(mismatch))
    click.echo(
        f"{result.checks} checks, {result.skipped} skipped, {len(result.mismatches)} mismatches at block {result.block}"
    )
    sys.exit(1 if result.mismatches else 0)


if __name__ == "__main__":
    main()

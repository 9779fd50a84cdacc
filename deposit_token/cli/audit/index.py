"""``ape run audit index [--follow]``: load the token's events into the audit database."""

from __future__ import annotations

import signal
import threading
from typing import Any

import click

from deposit_token.audit.db import store
from deposit_token.audit.sync.indexer import Indexer, IndexerConfig
from deposit_token.audit.sync.progress import IndexProgress
from deposit_token.chain.rpc import RpcClient
from deposit_token.cli.audit.common import (
    AuditCommand,
    console,
    db_option,
    network_option,
    open_target,
)

PUBLIC_NETWORK_CONFIRMATIONS = 12


@click.command("index", cls=AuditCommand, short_help="Load every event of the token into the audit database")
@network_option()
@db_option
@click.option(
    "--follow", is_flag=True, default=False, help="After catching up, keep following the head (Ctrl-C to stop)."
)
@click.option(
    "--confirmations",
    type=click.IntRange(0),
    default=None,
    metavar="N",
    help=f"Index only blocks N below the head (default: 0 on local/dev networks, "
    f"{PUBLIC_NETWORK_CONFIRMATIONS} elsewhere). Reorgs deeper than N are rolled back anyway.",
)
@click.option(
    "--max-range",
    type=click.IntRange(1),
    default=50_000,
    show_default=True,
    metavar="BLOCKS",
    help="Largest block range of one eth_getLogs request (it shrinks by itself when the provider refuses a range).",
)
@click.option(
    "--poll",
    "poll_interval",
    type=click.FloatRange(0.01),
    default=0.1,
    show_default=True,
    metavar="SECONDS",
    help="With --follow: how often to ask for a new head.",
)
@click.option(
    "--reset",
    is_flag=True,
    default=False,
    help="Delete everything the database holds and index from the deployment block (e.g. after a dev "
    "chain was restarted and the token redeployed).",
)
def command(
    provider: Any,
    db_url: str | None,
    follow: bool,
    confirmations: int | None,
    max_range: int,
    poll_interval: float,
    reset: bool,
) -> None:
    """Index every event of the deployed token (deployments/<network>.json) into SQLite or PostgreSQL.

    Each block range is committed in one transaction together with the checkpoint: an interrupted run
    (even kill -9) resumes where it stopped, without duplicates or gaps. Reorgs are rolled back to the common
    ancestor and re-indexed.
    """
    out = console()
    target, engine = open_target(provider, db_url)
    try:
        if reset:
            store.reset(engine)
            out.print("database emptied (--reset)")
        store.bind_to_chain(engine, target.chain_id, target.token, target.start_block, target.network)
        config = IndexerConfig(
            token=target.token,
            start_block=target.start_block,
            confirmations=confirmations
            if confirmations is not None
            else (0 if target.is_dev else PUBLIC_NETWORK_CONFIRMATIONS),
            max_range=max_range,
            initial_range=min(10, max_range),
            poll_interval=poll_interval,
        )
        out.print(
            f"indexing token {target.token} on {target.network} (chain {target.chain_id}) from block "
            f"{target.start_block} into {store.describe(engine)}, {config.confirmations} confirmations"
        )
        rpc = RpcClient(target.rpc_url)
        stop = threading.Event()
        previous = signal.signal(signal.SIGTERM, lambda *_: stop.set())
        with IndexProgress(out, target.start_block, enabled=out.is_terminal) as bar:
            indexer = Indexer(rpc, engine, config, progress=bar, log=lambda m: out.print(f"[yellow]{m}[/]"))
            try:
                stats = indexer.run(follow=follow, stop=stop)
            except KeyboardInterrupt:
                stats = indexer.stats
                out.print("stopped")
            finally:
                signal.signal(signal.SIGTERM, previous)
                rpc.close()
        checkpoint = indexer.checkpoint()
        out.print(
            f"checkpoint block {checkpoint[0] if checkpoint else '-'}: {stats.events:,} events in "
            f"{stats.commits:,} commits this run, {bar.rate:,.0f} events/s"
            + (f", {len(stats.rollbacks)} reorg rollbacks" if stats.rollbacks else "")
        )
    finally:
        engine.dispose()

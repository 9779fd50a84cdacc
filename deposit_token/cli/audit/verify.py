"""``ape run audit verify``: reconcile the audit database with chain state at its checkpoint block."""

from __future__ import annotations

from typing import Any

import click
from rich.table import Table

from deposit_token.audit.db import store
from deposit_token.audit.verify import VerifyError, verify
from deposit_token.chain import deployment
from deposit_token.chain.rpc import RpcClient
from deposit_token.cli.audit.common import (
    AuditCommand,
    console,
    db_option,
    network_option,
    open_target,
)


@click.command("verify", cls=AuditCommand, short_help="Reconcile the audit database with the chain")
@network_option()
@db_option
def command(provider: Any, db_url: str | None) -> None:
    """Compare the database with chain state at its checkpoint block (eth_call pinned to that block).

    Checks totalSupply, every balance, spent per spender per category per period (spendingOf,
    spendingThisPeriod), vendors, spenders, treasuries, programs, pause, mint allowances, cap overrides, roles
    and allocation batches; the code at the token's and the admin module's addresses against the code hashes of
    the deployment record, and the token's admin module against the record's. Prints how far the database is
    behind the chain's head and each mismatch; exits with status 1 if there is any.

    Works on any node: facts at blocks the node has no state for (a node restarted from a saved state, a
    pruning full node) are skipped and counted in one line; skipped facts are not mismatches.
    """
    out = console()
    target, engine = open_target(provider, db_url, must_exist=True)
    rpc = RpcClient(target.rpc_url)
    try:
        with engine.connect() as conn:
            meta = store.read_meta(conn)
        if meta and (meta.get("token") != target.token or meta.get("chain_id") != str(target.chain_id)):
            raise click.ClickException(
                f"{store.describe(engine)} indexes token {meta.get('token')} on chain "
                f"{meta.get('chain_id')}, not {target.token} on {target.chain_id}"
            )
        try:
            result = verify(rpc, engine, target.token, record=deployment.load_record(target.record_path))
        except VerifyError as err:
            raise click.ClickException(str(err)) from None
    finally:
        rpc.close()
        engine.dispose()
    out.print(result.lag_note)
    if result.skipped_note:
        out.print(f"[yellow]{result.skipped_note}[/]")
    if result.code_note:
        out.print(f"[yellow]{result.code_note}[/]")
    if result.mismatches:
        table = Table(title=f"{len(result.mismatches)} mismatches at block {result.block}", title_justify="left")
        for column in ("check", "subject", "database", "chain"):
            table.add_column(column, overflow="fold")
        for m in result.mismatches:
            table.add_row(m.check, m.subject, repr(m.database), repr(m.chain))
        out.print(table)
        out.print(
            f"[bold red]FAILED[/]: {len(result.mismatches)} of {result.checks:,} checks differ at block "
            f"{result.block} ({result.block_hash})"
        )
        raise SystemExit(1)
    skipped = f", {result.skipped:,} facts skipped" if result.skipped else ""
    out.print(
        f"[bold green]OK[/]: {result.checks:,} checks{skipped}, no mismatch with the chain at block "
        f"{result.block} ({result.block_hash})"
    )

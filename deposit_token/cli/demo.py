"""The pilot demo (the README's main job): starts a local permissioned chain, deploys, and plays one month
(December 2026 unless --month says otherwise) of a business-promotion pilot in three ministries and an
EV-charger subsidy, then prints what happened.

    ape run demo                     # on a fresh machine after `make setup`; under 3 minutes
    ape run demo --month 2031-03     # another month: the chain's clock starts just before it, whatever today is
    ape run demo --keep-running      # leave the demo chain up afterwards (its URL is printed)
"""

from __future__ import annotations

from pathlib import Path

import click

from deposit_token import paths
from deposit_token.chain.node import NetworkError
from deposit_token.cli.common import console
from deposit_token.sim.demo import DEFAULT_MONTH, MonthError, parse_month, run


@click.command()
@click.option(
    "--month",
    default=DEFAULT_MONTH,
    show_default=True,
    metavar="YYYY-MM",
    help="The month to simulate, with that year's Korean public holidays; the demo chain's clock "
    "starts three days before it (the machine's date plays no part).",
)
@click.option(
    "--data-dir",
    type=click.Path(file_okay=False, path_type=Path),
    default=paths.ANVIL_DIR / "demo",
    show_default=True,
    help="Where the demo chain and its keystores live (wiped at every run).",
)
@click.option("--port", type=click.IntRange(1, 65535), default=None, help="RPC port (default: a free one).")
@click.option("--keep-running", is_flag=True, help="Leave the demo chain running afterwards.")
def cli(month: str, data_dir: Path, port: int | None, keep_running: bool) -> None:
    """Play the pilot: 4 programs, 70 spenders, 40 vendors, 2,000+ payment attempts in one simulated month."""
    try:
        first_day = parse_month(month, what="--month")
    except MonthError as err:
        raise click.ClickException(str(err)) from None
    out = console()
    try:
        demo = run(out, data_dir, port, keep_running=keep_running, month=first_day)
    except NetworkError as err:  # no anvil, a busy --port, a node that would not start
        raise click.ClickException(str(err)) from None
    if keep_running:
        out.print(
            f"demo chain left running at {demo.config.rpc_url}; stop it with "
            f"`ape run network down --data-dir {demo.config.data_dir}`"
        )

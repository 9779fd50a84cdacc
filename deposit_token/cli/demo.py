"""The pilot demo (the README's main job): deploys the token system and plays a business-promotion pilot in three
ministries and an EV-charger subsidy, then prints what happened and what the auditors see.

    ape run demo                     # Anvil (the default): a simulated month, December 2026; under 3 minutes
    ape run demo --month 2031-03     # another month: the chain's clock starts just before it, whatever today is
    ape run demo --keep-running      # leave the demo chain up afterwards (its URL is printed)

    ape run demo --engine geth       # a live day, now, on the running Geth network (`network up --engine geth`)
    ape run demo --engine geth --attempts 150 --data-dir /tmp/net   # a smaller day on another Geth network

Anvil: the demo starts a chain of its own whose clock it sets (a whole month in minutes). Geth cannot
time-travel: the demo joins the running network's archive node (or --rpc-url) and plays at the current time,
the programs' hours widened around now.
"""

from __future__ import annotations

import os
from pathlib import Path

import click
from click.core import ParameterSource

from deposit_token import paths
from deposit_token.chain.node import NetworkError
from deposit_token.chain.rpc import mask_url
from deposit_token.cli.common import console
from deposit_token.errors import DepositTokenError
from deposit_token.sim.demo import DEFAULT_LIVE_ATTEMPTS, DEFAULT_MONTH, MonthError, parse_month, run, run_live

ENGINE_ENV = "DEPOSIT_TOKEN_ENGINE"  # as `ape run network`: the engine a shell works with
ANVIL_ONLY = ("month", "port", "keep_running")
GETH_ONLY = ("rpc_url", "attempts", "work_dir")
GETH_WORK_DIR = paths.ROOT / ".geth" / "demo"


def _given(ctx: click.Context, name: str) -> bool:
    return ctx.get_parameter_source(name) not in (ParameterSource.DEFAULT, None)


def _refuse(ctx: click.Context, names: tuple[str, ...], engine: str) -> None:
    """An option of the other engine is an error, not silently ignored."""
    for name in names:
        if _given(ctx, name):
            raise click.ClickException(f"--{name.replace('_', '-')} does not apply to --engine {engine}")


def geth_rpc_url(data_dir: Path | None) -> str:
    """The archive node's JSON-RPC URL of the running Geth network in `data_dir` (default as `ape run network
    --engine geth`: $DEPOSIT_TOKEN_GETH_DIR, else .geth/pilot); one sentence if there is none or it does not run."""
    from deposit_token.chain.geth.cluster import ARCHIVE, DEFAULT_DATA_DIR, GETH_DIR_ENV, GethNetwork

    directory = data_dir or Path(os.environ.get(GETH_DIR_ENV, "").strip() or DEFAULT_DATA_DIR).expanduser()
    network = GethNetwork(directory)
    if not network.exists:
        raise click.ClickException(
            f"{directory} holds no Geth network: make one with `ape run network init --engine geth` and start it "
            "with `ape run network up --engine geth` (or give its --data-dir)"
        )
    try:
        archive = network.archive.name
        running = network.running().get(archive)
        url = network.rpc_url
    except DepositTokenError as err:
        raise click.ClickException(str(err)) from None
    if running is None:
        raise click.ClickException(
            f"the Geth network of {directory} is not running ({ARCHIVE} node down): start it with "
            "`ape run network up --engine geth`"
        )
    return url


@click.command()
@click.option(
    "--engine",
    type=click.Choice(("anvil", "geth")),
    default="anvil",
    envvar=ENGINE_ENV,
    show_default=True,
    help="anvil: a simulated month on a chain of the demo's own; geth: a live day on the running Geth network "
    f"(or ${ENGINE_ENV}).",
)
@click.option(
    "--month",
    default=DEFAULT_MONTH,
    show_default=True,
    metavar="YYYY-MM",
    help="Anvil: the month to simulate, with that year's Korean public holidays; the demo chain's clock "
    "starts three days before it (the machine's date plays no part).",
)
@click.option(
    "--data-dir",
    type=click.Path(file_okay=False, path_type=Path),
    default=None,
    show_default=".anvil/demo, or .geth/pilot with --engine geth",
    help="Anvil: where the demo chain and its keystores live (wiped at every run). Geth: the running network's "
    "directory, as for `ape run network up --engine geth`.",
)
@click.option("--port", type=click.IntRange(1, 65535), default=None, help="Anvil: RPC port (default: a free one).")
@click.option("--keep-running", is_flag=True, help="Anvil: leave the demo chain running afterwards.")
@click.option(
    "--rpc-url",
    default=None,
    metavar="URL",
    help="Geth: another JSON-RPC endpoint of the network than its archive node; a key goes in "
    "$DEPOSIT_TOKEN_RPC_KEY or in the URL (http://name:key@host:port) and is never shown. (A gateway forwards only "
    "known senders' transactions: the demo's freshly made deployer would be refused.)",
)
@click.option(
    "--attempts",
    type=click.IntRange(20, 5_000),
    default=DEFAULT_LIVE_ATTEMPTS,
    show_default=True,
    help="Geth: payment attempts in the live day (played in rounds of 10-30 that each wait for their block).",
)
@click.option(
    "--work-dir",
    type=click.Path(file_okay=False, path_type=Path),
    default=GETH_WORK_DIR,
    show_default=".geth/demo",
    help="Geth: where the live day keeps its keystores and audit database (wiped at every run).",
)
@click.pass_context
def cli(
    ctx: click.Context,
    engine: str,
    month: str,
    data_dir: Path | None,
    port: int | None,
    keep_running: bool,
    rpc_url: str | None,
    attempts: int,
    work_dir: Path,
) -> None:
    """Play the pilot: 4 programs, 70 spenders, 40 vendors; payments the rules allow or refuse as money moves,
    a frozen wallet clawed back, redemptions, the budget lapsing, then the audit (index, report, flags,
    verify). Anvil (default): a simulated month, 2,000+ attempts. Geth: a live day at the current time."""
    out = console()
    if engine == "geth":
        _refuse(ctx, ANVIL_ONLY, engine)
        url = rpc_url or geth_rpc_url(data_dir)
        if not url.startswith(("http://", "https://")):
            raise click.ClickException(f"--rpc-url {mask_url(url)!r} is not an http(s):// URL")
        try:
            run_live(out, url, work_dir, attempts=attempts)
        except DepositTokenError as err:
            raise click.ClickException(str(err)) from None
        return
    _refuse(ctx, GETH_ONLY, engine)
    try:
        first_day = parse_month(month, what="--month")
    except MonthError as err:
        raise click.ClickException(str(err)) from None
    try:
        demo = run(out, data_dir or paths.ANVIL_DIR / "demo", port, keep_running=keep_running, month=first_day)
    except (NetworkError, DepositTokenError) as err:  # no anvil, a busy --port, a node that would not start
        raise click.ClickException(str(err)) from None
    if keep_running:
        out.print(
            f"demo chain left running at {demo.config.rpc_url}; stop it with "
            f"`ape run network down --data-dir {demo.config.data_dir}`"
        )

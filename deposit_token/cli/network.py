"""Starts, stops and inspects the local permissioned pilot chain (Anvil in the background).

    ape run network up                       # chain id 20261 on http://127.0.0.1:8545, a block every second
    ape run network status                   # chain id, head block, measured block time, deployed contracts
    ape run network down                     # SIGTERM: Anvil saves its state, `up` resumes from it
    ape run network up --data-dir /tmp/x --port 9545 --block-time 2   # a second, independent chain
    ape run network up --data-dir /tmp/y --genesis-time 2031-03-01    # a new chain whose clock starts then

Scripts reach the default chain with `--network ethereum:pilot:node` (declared in ape-config.yaml).
"""

from __future__ import annotations

import sys
from pathlib import Path

import click
from rich.console import Console
from rich.table import Table

from deposit_token.chain import node as net
from deposit_token.domain import display
from deposit_token.domain.inputs import InputError, parse_time

DATA_DIR_ENV = "DEPOSIT_TOKEN_NETWORK_DIR"


def _console() -> Console:
    # Off a terminal (CI logs, subprocess), keep addresses and paths on one line.
    return Console(width=None if sys.stdout.isatty() else 200)


def _shown(path: Path) -> str:
    try:
        return str(path.relative_to(Path.cwd()))
    except ValueError:
        return str(path)


def _when(timestamp: int | None) -> str:
    return "-" if timestamp is None else display.moment(timestamp)


def _table(title: str, rows: list[tuple[str, str]]) -> Table:
    table = Table(title=title, show_header=False)
    table.add_column("field", style="cyan", no_wrap=True)
    table.add_column("value", overflow="fold")
    for name, value in rows:
        table.add_row(name, value)
    return table


def _ape_network(config: net.NetworkConfig) -> str:
    """The --network choice that reaches this node from ape scripts."""
    if config.port == net.DEFAULT_PORT and config.chain_id == net.DEFAULT_CHAIN_ID:
        return net.DEFAULT_NETWORK_CHOICE
    if config.chain_id == net.DEFAULT_CHAIN_ID:
        return f"ethereum:pilot:{config.rpc_url}"
    return f"none (ape-config.yaml's pilot network has chain id {net.DEFAULT_CHAIN_ID})"


data_dir_option = click.option(
    "--data-dir",
    type=click.Path(file_okay=False, path_type=Path),
    default=net.DEFAULT_DATA_DIR,
    envvar=DATA_DIR_ENV,
    show_default=".anvil/pilot",
    help=f"Directory with the node's state, log and pid files (or ${DATA_DIR_ENV}).",
)


@click.group(short_help="Start, stop or inspect the local pilot chain (Anvil)")
def cli() -> None:
    """The local permissioned pilot chain: Anvil on 127.0.0.1 with a fixed chain id, interval mining, zero gas
    price and its state kept in a data directory across restarts. Scripts reach it as
    --network ethereum:pilot:node."""


@cli.command(short_help="Start the pilot chain in the background")
@data_dir_option
@click.option(
    "--port",
    type=click.IntRange(1, 65535),
    default=net.DEFAULT_PORT,
    show_default=True,
    help="JSON-RPC port on 127.0.0.1 (ape-config.yaml's pilot network uses 8545).",
)
@click.option(
    "--block-time",
    type=click.FloatRange(min=0, min_open=True),
    default=net.DEFAULT_BLOCK_TIME,
    show_default=True,
    metavar="SECONDS",
    help="Seconds between blocks (interval mining).",
)
@click.option(
    "--chain-id",
    type=click.IntRange(min=1),
    default=net.DEFAULT_CHAIN_ID,
    show_default=True,
    help="Chain id (ape-config.yaml's pilot network expects 20261).",
)
@click.option(
    "--state-interval",
    type=click.IntRange(min=1),
    default=net.DEFAULT_STATE_INTERVAL,
    show_default=True,
    metavar="SECONDS",
    help="Seconds between state dumps (a node that is killed loses at most this much).",
)
@click.option(
    "--timeout",
    type=click.FloatRange(min=1),
    default=net.START_TIMEOUT,
    show_default=True,
    metavar="SECONDS",
    help="How long to wait for the node to answer.",
)
@click.option(
    "--genesis-time",
    metavar="TIME",
    default=None,
    help="Where a NEW chain's clock starts: an ISO date or date-time (KST unless it names an offset) "
    "or unix seconds; default: the machine's clock. A resumed chain always continues after its "
    "last block.",
)
def up(
    data_dir: Path,
    port: int,
    block_time: float,
    chain_id: int,
    state_interval: int,
    timeout: float,
    genesis_time: str | None,
) -> None:
    """Start Anvil detached (it keeps running after this command returns), resuming the chain saved in
    DATA_DIR if there is one, and wait until it answers JSON-RPC. Refuses to start if this data directory's
    node already runs or if the port is taken. Chain time never goes backwards across a restart."""
    try:
        genesis = parse_time(genesis_time, what="--genesis-time") if genesis_time is not None else None
        config = net.NetworkConfig(
            data_dir=data_dir,
            port=port,
            chain_id=chain_id,
            block_time=block_time,
            state_interval=state_interval,
            genesis_timestamp=genesis,
        )
        result = net.start(config, timeout=timeout)
    except (net.NetworkError, InputError) as err:
        raise click.ClickException(str(err)) from None
    _console().print(
        _table(
            "Pilot chain started",
            [
                ("rpc url", config.rpc_url),
                ("ape network", _ape_network(config)),
                ("chain id", str(result.chain_id)),
                ("head block", str(result.head_block)),
                ("chain", "resumed from saved state" if result.resumed else "new (no saved state)"),
                ("block time", f"{config.block_time:g} s"),
                (
                    "clock",
                    f"started at {display.moment(result.clock_start)}"
                    if result.clock_start is not None
                    else "the machine's clock",
                ),
                ("gas price", "0 (accounts need no ether)"),
                ("pid", str(result.pid)),
                ("data dir", _shown(config.data_dir)),
                ("log", _shown(config.log_file)),
                ("answered after", f"{result.seconds:.1f} s"),
            ],
        )
    )


@cli.command(short_help="Stop the pilot chain (its state is saved)")
@data_dir_option
@click.option(
    "--timeout",
    type=click.FloatRange(min=1),
    default=net.STOP_TIMEOUT,
    show_default=True,
    metavar="SECONDS",
    help="How long to wait for Anvil to save its state and exit before killing it.",
)
def down(data_dir: Path, timeout: float) -> None:
    """Stop the node of DATA_DIR with SIGTERM, on which Anvil writes its state, and wait until it has exited.
    Stopping a node that does not run is not an error."""
    console = _console()
    try:
        config = net.config_for(data_dir)
        result = net.stop(config, timeout=timeout)
    except net.NetworkError as err:
        raise click.ClickException(str(err)) from None
    if result.pid is None:
        console.print(f"The pilot chain of {_shown(config.data_dir)} is not running.")
    elif result.graceful:
        console.print(
            f"Stopped the pilot chain (pid {result.pid}) in {result.seconds:.1f} s; state saved to "
            f"{_shown(config.state_file)}."
        )
    else:
        console.print(
            f"[yellow]warning:[/] Anvil (pid {result.pid}) did not exit within {timeout:g} s and was "
            f"killed; its state is as of the last periodic dump ({_shown(config.state_file)})."
        )


@cli.command(short_help="Show the pilot chain and its deployments")
@data_dir_option
@click.option(
    "--port",
    type=click.IntRange(1, 65535),
    default=None,
    help="Port to query (default: the one the node of DATA_DIR was started with, else 8545).",
)
@click.option(
    "--network",
    "network_choice",
    default=net.DEFAULT_NETWORK_CHOICE,
    show_default=True,
    metavar="ECOSYSTEM:NETWORK:PROVIDER",
    help="Ape network whose deployment record (deployments/<network>.json) to show.",
)
def status(data_dir: Path, port: int | None, network_choice: str) -> None:
    """Show chain id, head block, block time measured over the last blocks, whether DATA_DIR's Anvil is
    running, and the deployment recorded for the network with whether its contracts have code on the chain.
    Exits with code 1 if nothing answers on the port."""
    try:
        from deposit_token.chain.deployment import network_name_of_choice

        network_choice = network_name_of_choice(network_choice)  # the name deploy records under (one rule)
        config = net.config_for(data_dir, port=port)
        state = net.status(config, network_choice)
    except (net.NetworkError, ValueError) as err:
        raise click.ClickException(str(err)) from None
    console = _console()
    block_time = (
        f"{state.block_time:.2f} s (last {state.blocks_measured} blocks; configured {config.block_time:g} s)"
        if state.block_time is not None
        else "-"
    )
    saved = config.state_file.stat() if config.state_file.exists() else None
    console.print(
        _table(
            "Pilot chain",
            [
                ("rpc url", config.rpc_url),
                ("answering", "yes" if state.answering else f"no: {state.error}"),
                ("chain id", str(state.chain_id) if state.chain_id is not None else "-"),
                ("head block", f"{state.head_block} at {_when(state.head_timestamp)}" if state.answering else "-"),
                ("block time", block_time),
                ("process", state.process_text),
                ("data dir", _shown(config.data_dir)),
                ("saved state", f"{saved.st_size:,} bytes at {_when(int(saved.st_mtime))}" if saved else "none yet"),
            ],
        )
    )
    deployments = Table(title=f"Deployments ({network_choice})")
    for column in ("record", "chain id", "token", "token code", "admin module", "block", "note"):
        deployments.add_column(column, overflow="fold")
    for item in state.deployments:
        deployments.add_row(
            _shown(item.path),
            str(item.recorded_chain_id or "-"),
            item.token or "-",
            {True: "yes", False: "[red]no[/]", None: "-"}[item.token_has_code],
            item.admin_module or "-",
            str(item.block if item.block is not None else "-"),
            item.note,
        )
    if state.deployments:
        console.print(deployments)
    else:
        from deposit_token.chain import deployment

        console.print(
            f"No deployment recorded for {network_choice} ({_shown(deployment.record_path(network_choice))})."
        )
    if not state.answering:
        sys.exit(1)

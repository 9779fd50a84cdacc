"""Starts, stops and inspects the pilot chain: Anvil in the background (the default engine) or the permissioned
Geth network (three Clique sealers and an archive node, deposit_token.chain.geth).

    ape run network up                       # Anvil: chain id 20261 on http://127.0.0.1:8545, a block every second
    ape run network status                   # chain id, head block, measured block time, deployed contracts
    ape run network down                     # SIGTERM: Anvil saves its state, `up` resumes from it
    ape run network up --data-dir /tmp/x --port 9545 --block-time 2   # a second, independent chain
    ape run network up --data-dir /tmp/y --genesis-time 2031-03-01    # a new chain whose clock starts then

    ape run network init --engine geth       # keys, keystores, Clique genesis in .geth/pilot
    ape run network up --engine geth         # 3 sealers + the archive node (HTTP on 127.0.0.1:8645)
    ape run network status --engine geth     # per node: head, lag, peers, syncing, sealing; signers, votes
    ape run network validators list          # the signer set and pending votes
    ape run network validators propose-add 0x... --on treasury --on central-bank
    ape run network down --engine geth

Scripts reach the Anvil chain with `--network ethereum:pilot:node` and the Geth network with
`--network ethereum:clique:node` (through the gateway on 8600) (both declared in ape-config.yaml).
"""

from __future__ import annotations

import os
import sys
from pathlib import Path
from typing import Any

import click
from click.core import ParameterSource
from rich.console import Console
from rich.table import Table

from deposit_token.chain import node as net
from deposit_token.chain.geth import cluster as geth
from deposit_token.chain.geth.binary import GethNotFoundError
from deposit_token.domain import display
from deposit_token.domain.inputs import InputError, check_address, parse_time
from deposit_token.errors import DepositTokenError

DATA_DIR_ENV = "DEPOSIT_TOKEN_NETWORK_DIR"
ENGINE_ENV = "DEPOSIT_TOKEN_ENGINE"
ENGINES = ("anvil", "geth")
CLIQUE_NETWORK = "ethereum:clique:node"


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
    default=None,
    show_default=".anvil/pilot, or .geth/pilot with --engine geth",
    help=f"Directory with the chain's data (or ${DATA_DIR_ENV} for Anvil, ${geth.GETH_DIR_ENV} for Geth).",
)

engine_option = click.option(
    "--engine",
    type=click.Choice(ENGINES),
    default="anvil",
    envvar=ENGINE_ENV,
    show_default=True,
    help=f"Anvil (one process, the default) or the permissioned Geth network (or ${ENGINE_ENV}).",
)


def _anvil_dir(data_dir: Path | None) -> Path:
    # Read at run time (not import time), so that the variable set for one command applies to it.
    return data_dir or Path(os.environ.get(DATA_DIR_ENV, "").strip() or net.DEFAULT_DATA_DIR).expanduser()


def _geth_dir(data_dir: Path | None) -> Path:
    return data_dir or Path(os.environ.get(geth.GETH_DIR_ENV, "").strip() or geth.DEFAULT_DATA_DIR).expanduser()


def _given(ctx: click.Context, name: str, value: float, geth_default: float) -> float:
    """The option's value if the operator gave it, else Geth's own default (its nodes take longer than Anvil)."""
    return value if ctx.get_parameter_source(name) not in (ParameterSource.DEFAULT, None) else geth_default


def _refuse_anvil_options(ctx: click.Context, names: tuple[str, ...]) -> None:
    """A Geth network's ports, chain id and block time are fixed at `network init`: an Anvil option given with
    --engine geth is an error, not silently ignored."""
    for name in names:
        if ctx.get_parameter_source(name) not in (ParameterSource.DEFAULT, None):
            option = "--" + name.replace("_", "-")
            raise click.ClickException(
                f"{option} applies to Anvil; a Geth network's settings are fixed by `network init --engine geth`"
            )


@click.group(short_help="Start, stop or inspect the pilot chain (Anvil, or the Geth network)")
def cli() -> None:
    """The pilot chain. By default Anvil on 127.0.0.1 with a fixed chain id, interval mining, zero gas price and
    its state kept in a data directory across restarts (scripts: --network ethereum:pilot:node). With
    --engine geth, the permissioned network: three Clique sealers (treasury, central bank, settlement bank) and
    an archive node, peering only with each other on loopback (scripts: --network ethereum:clique:node, through
    the gateway). See docs/NETWORK.md."""


@cli.command(short_help="Start the pilot chain in the background")
@engine_option
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
@click.pass_context
def up(
    ctx: click.Context,
    engine: str,
    data_dir: Path | None,
    port: int,
    block_time: float,
    chain_id: int,
    state_interval: int,
    timeout: float,
    genesis_time: str | None,
) -> None:
    """Start Anvil detached (it keeps running after this command returns), resuming the chain saved in
    DATA_DIR if there is one, and wait until it answers JSON-RPC. Refuses to start if this data directory's
    node already runs or if the port is taken. Chain time never goes backwards across a restart.

    With --engine geth: start every node of the Geth network made by `network init --engine geth` that does not
    run yet (detached), wait until each answers and each sealer seals; a network that already runs is left
    as it is (and says so)."""
    if engine == "geth":
        _refuse_anvil_options(ctx, ("port", "block_time", "chain_id", "state_interval", "genesis_time"))
        _geth_up(_geth_dir(data_dir), _given(ctx, "timeout", timeout, geth.START_TIMEOUT))
        return
    data_dir = _anvil_dir(data_dir)
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
@engine_option
@data_dir_option
@click.option(
    "--timeout",
    type=click.FloatRange(min=1),
    default=net.STOP_TIMEOUT,
    show_default=True,
    metavar="SECONDS",
    help="How long to wait for Anvil to save its state and exit before killing it.",
)
@click.pass_context
def down(ctx: click.Context, engine: str, data_dir: Path | None, timeout: float) -> None:
    """Stop the node of DATA_DIR with SIGTERM, on which Anvil writes its state, and wait until it has exited.
    Stopping a node that does not run is not an error. With --engine geth: every node of the network, at once
    (geth flushes its database on SIGTERM; state and history stay in the node directories)."""
    if engine == "geth":
        _geth_down(_geth_dir(data_dir), _given(ctx, "timeout", timeout, geth.STOP_TIMEOUT))
        return
    data_dir = _anvil_dir(data_dir)
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
@engine_option
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
    default=None,
    show_default=f"{net.DEFAULT_NETWORK_CHOICE}, or {CLIQUE_NETWORK} with --engine geth",
    metavar="ECOSYSTEM:NETWORK:PROVIDER",
    help="Ape network whose deployment record (deployments/<network>.json) to show.",
)
@click.pass_context
def status(
    ctx: click.Context, engine: str, data_dir: Path | None, port: int | None, network_choice: str | None
) -> None:
    """Show chain id, head block, block time measured over the last blocks, whether DATA_DIR's Anvil is
    running, and the deployment recorded for the network with whether its contracts have code on the chain.
    Exits with code 1 if nothing answers on the port.

    With --engine geth: per node its process, head block, lag behind the most advanced node, peers, whether it
    syncs and (sealers) seals; the signer set and pending votes; exits with code 1 if no node answers."""
    if engine == "geth":
        _refuse_anvil_options(ctx, ("port",))
        _geth_status(_geth_dir(data_dir), network_choice or CLIQUE_NETWORK)
        return
    data_dir = _anvil_dir(data_dir)
    network_choice = network_choice or net.DEFAULT_NETWORK_CHOICE
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


# --- the Geth network ----------------------------------------------------------------------------------------


def _geth_fail(error: BaseException | str) -> click.ClickException:
    return click.ClickException(str(error))


def _network(data_dir: Path) -> geth.GethNetwork:
    network = geth.GethNetwork(data_dir)
    try:
        network.record  # noqa: B018 (one sentence if DATA_DIR holds no network, before anything else)
    except DepositTokenError as err:
        raise _geth_fail(err) from None
    return network


def _names_by_address(network: geth.GethNetwork) -> dict[str, str]:
    return {str(node.spec.address).lower(): node.name for node in network.sealers}


def _who(address: str, names: dict[str, str]) -> str:
    name = names.get(address.lower())
    return f"{address} ({name})" if name else f"{address} (not a node of this data directory)"


@cli.command(short_help="Make a new Geth network (keys, keystores, genesis)")
@click.option(
    "--engine",
    type=click.Choice(ENGINES),
    default="geth",
    show_default=True,
    help="Only geth needs this step: `network up` makes a new Anvil chain by itself.",
)
@data_dir_option
@click.option(
    "--archive-port",
    type=click.IntRange(1, 65535),
    default=geth.DEFAULT_ARCHIVE_PORT,
    show_default=True,
    help="The archive node's HTTP JSON-RPC port on 127.0.0.1 (the gateway on 8600 forwards to it).",
)
@click.option(
    "--p2p-port",
    type=click.IntRange(1, 65532),
    default=geth.DEFAULT_P2P_BASE,
    show_default=True,
    help="First of four consecutive p2p ports (treasury, central bank, settlement bank, archive).",
)
@click.option(
    "--authrpc-port",
    type=click.IntRange(1, 65532),
    default=geth.DEFAULT_AUTHRPC_BASE,
    show_default=True,
    help="First of four consecutive engine-API ports (geth 1.13 always opens one, JWT-protected, on loopback).",
)
@click.option("--free-ports", is_flag=True, help="Let the system choose free ports instead (a throwaway network).")
@click.option(
    "--chain-id",
    type=click.IntRange(min=1),
    default=net.DEFAULT_CHAIN_ID,
    show_default=True,
    help="Chain id (ape-config.yaml's clique network expects 20261).",
)
@click.option(
    "--passphrase-env",
    metavar="NAME",
    default=None,
    help="Environment variable holding the sealers' keystore passphrase (its name is recorded, not its value).",
)
@click.option(
    "--passphrase-file",
    type=click.Path(dir_okay=False, path_type=Path),
    default=None,
    help="File holding the sealers' keystore passphrase: outside the project folder, mode 0600. "
    "Default (neither option): a random passphrase generated into DATA_DIR/passphrase (0600).",
)
@click.option(
    "--light-kdf",
    is_flag=True,
    help="Encrypt the sealer keys with geth's light scrypt cost (fast; for throwaway networks only).",
)
def init(
    engine: str,
    data_dir: Path | None,
    archive_port: int,
    p2p_port: int,
    authrpc_port: int,
    free_ports: bool,
    chain_id: int,
    passphrase_env: str | None,
    passphrase_file: Path | None,
    light_kdf: bool,
) -> None:
    """Make a new permissioned Geth network in DATA_DIR: a node key for each of the four nodes, an account key
    for each sealer (treasury, central bank, settlement bank) in an encrypted keystore, the Clique genesis with
    the three sealers as signers (chain id 20261, a block every second, base fee 0 so accounts without ether
    transact), each node's static peer list, and its database. Nothing runs yet: `network up --engine geth`.
    Refuses a DATA_DIR that already holds a network. No key or passphrase is ever printed."""
    if engine != "geth":
        raise click.ClickException("Anvil needs no init: `ape run network up` makes a new chain by itself")
    ports = geth.Ports(archive_port, p2p_port, authrpc_port, free=free_ports)
    try:
        network = geth.GethNetwork.init(
            _geth_dir(data_dir),
            ports=ports,
            chain_id=chain_id,
            passphrase_env=passphrase_env,
            passphrase_file=passphrase_file,
            light_kdf=light_kdf,
        )
    except (DepositTokenError, GethNotFoundError) as err:
        raise _geth_fail(err) from None
    console = _console()
    nodes = Table(title=f"Geth network made in {_shown(network.data_dir)}")
    for column in ("node", "institution", "role", "signer account", "p2p port", "json-rpc"):
        nodes.add_column(column, overflow="fold")
    for node in network.nodes:
        nodes.add_row(
            node.name,
            node.spec.institution,
            node.spec.role,
            node.spec.address or "-",
            str(node.spec.p2p_port),
            node.rpc_url or "IPC only",
        )
    console.print(nodes)
    record = network.record
    console.print(
        _table(
            "Genesis",
            [
                ("chain id", str(network.chain_id)),
                ("consensus", f"Clique, a block every {record['period']} s, signers: the three sealers"),
                ("gas", f"limit {record['gas_limit']:,} per block, base fee 0, gas price 0"),
                ("geth", str(record["geth_version"])),
                ("keystore passphrase", network.passphrase_source.describe()),
                ("next", "ape run network up --engine geth" + _dir_flag(data_dir)),
            ],
        )
    )


def _dir_flag(data_dir: Path | None) -> str:
    return f" --data-dir {data_dir}" if data_dir else ""


def _geth_up(data_dir: Path, timeout: float) -> None:
    network = _network(data_dir)
    try:
        report = network.start(timeout=timeout)
    except DepositTokenError as err:
        raise _geth_fail(err) from None
    console = _console()
    if report.already_running:
        console.print(
            f"The Geth network of {_shown(network.data_dir)} is already running "
            f"(head block {report.head}; `network status --engine geth` shows each node)."
        )
        return
    table = Table(title="Geth network started")
    for column in ("node", "role", "pid", "state", "answered after"):
        table.add_column(column)
    for started in report.nodes:
        node = network.node(started.name)
        table.add_row(
            started.name,
            node.spec.role,
            str(started.pid),
            "started" if started.started else "already running",
            f"{started.seconds:.1f} s" if started.started else "-",
        )
    console.print(table)
    if not report.peered:
        console.print(
            "[yellow]warning:[/] not every node peers with every other yet (geth redials a static peer within "
            "about 35 s); `network status --engine geth` shows each node's peers."
        )
    console.print(
        _table(
            "Reach it",
            [
                ("archive json-rpc", f"{network.rpc_url} (eth, net, web3)"),
                ("ape network", f"{CLIQUE_NETWORK} (through the gateway on 127.0.0.1:{geth.DEFAULT_GATEWAY_PORT})"),
                ("chain id", str(network.chain_id)),
                ("head block", str(report.head)),
                ("gas price", "0 (accounts need no ether)"),
                ("data dir", _shown(network.data_dir)),
                ("logs", _shown(network.data_dir / "<node>" / "geth.log")),
            ],
        )
    )


def _geth_down(data_dir: Path, timeout: float) -> None:
    network = _network(data_dir)
    try:
        stops = network.stop(timeout=timeout)
    except DepositTokenError as err:
        raise _geth_fail(err) from None
    console = _console()
    if all(stop.pid is None for stop in stops):
        console.print(f"The Geth network of {_shown(network.data_dir)} is not running.")
        return
    for stop in stops:
        if stop.pid is None:
            console.print(f"{stop.name}: was not running")
        elif stop.graceful:
            console.print(f"{stop.name}: stopped (pid {stop.pid})")
        else:
            console.print(
                f"[yellow]warning:[/] {stop.name} (pid {stop.pid}) did not exit within {timeout:g} s and was killed"
            )
    console.print(f"State and history are kept in {_shown(network.data_dir)}; `network up --engine geth` resumes.")


def _yes_no(value: bool | None) -> str:
    return {True: "yes", False: "no", None: "-"}[value]


def _geth_status(data_dir: Path, network_choice: str) -> None:
    network = _network(data_dir)
    try:
        from deposit_token.chain.deployment import network_name_of_choice

        network_choice = network_name_of_choice(network_choice)
        state = network.status()
    except (DepositTokenError, ValueError) as err:
        raise _geth_fail(err) from None
    console = _console()
    table = Table(title=f"Geth network {_shown(network.data_dir)} (chain id {state.chain_id})")
    for column in ("node", "role", "process", "head", "lag", "peers", "syncing", "sealing", "note"):
        table.add_column(column, overflow="fold")
    for item in state.nodes:
        if item.pid is None:
            process, note = "not running", ""
        else:
            process = f"pid {item.pid}"
            note = "" if item.answering else f"not answering: {item.error}"
        table.add_row(
            item.name,
            item.role,
            process,
            f"{item.head} at {_when(item.head_timestamp)}" if item.head is not None else "-",
            str(item.lag) if item.lag is not None else "-",
            str(item.peers) if item.peers is not None else "-",
            _yes_no(item.syncing),
            _yes_no(item.sealing) if item.role == "sealer" else "",
            note,
        )
    console.print(table)
    names = _names_by_address(network)
    signers = state.signers
    console.print(
        _table(
            "Validators (Clique signers)",
            [(str(i + 1), _who(address, names)) for i, address in enumerate(signers or [])]
            or [("-", "no node answers")],
        )
    )
    votes = [
        (item.name, f"{'add' if add else 'remove'} {_who(address, names)}")
        for item in state.nodes
        for address, add in (item.proposals or {}).items()
    ]
    if votes:
        console.print(_table("Pending votes (sealer: vote)", votes))
    console.print(_table("Reach it", [("archive json-rpc", state.rpc_url), ("ape network", network_choice)]))
    from deposit_token.chain.rpc import RpcClient

    archive_answers = any(item.answering for item in state.nodes if item.name == network.archive.name)
    with RpcClient(state.rpc_url, timeout=3.0) as rpc:
        records = net.deployment_status(rpc if archive_answers else None, state.chain_id, network_choice)
    for record in records:
        console.print(f"Deployment ({network_choice}): token {record.token or '-'}, {record.note}")
    if not records:
        console.print(f"No deployment recorded for {network_choice}.")
    if not any(item.answering for item in state.nodes):
        sys.exit(1)


@cli.command("add-sealer", short_help="Add a sealer node for a new institution (then vote it in)")
@click.argument("name")
@click.option("--institution", required=True, help="Who runs the new sealer (shown by status and validators list).")
@data_dir_option
@click.option(
    "--timeout",
    type=click.FloatRange(min=1),
    default=geth.START_TIMEOUT,
    show_default=True,
    metavar="SECONDS",
    help="How long to wait for each node to answer.",
)
def add_sealer(name: str, institution: str, data_dir: Path | None, timeout: float) -> None:
    """Make a sealer node NAME for a new institution in the Geth network of DATA_DIR and list it as a static
    and trusted peer of every node. If the network runs, the new node starts and the running nodes restart one
    at a time to accept it (blocks continue meanwhile; pending votes are forgotten by a restarted sealer). The
    node seals only once a majority of the current signers voted it in: `network validators propose-add`."""
    network = _network(_geth_dir(data_dir))
    try:
        node = network.add_sealer(name, institution, timeout)
    except DepositTokenError as err:
        raise _geth_fail(err) from None
    signers = len(network.signers()) if network.pid(network.archive.name) else len(network.sealers) - 1
    _console().print(
        _table(
            f"Sealer {node.name} added",
            [
                ("institution", institution),
                ("signer account", str(node.spec.address)),
                ("p2p port", str(node.spec.p2p_port)),
                ("running", "yes" if network.pid(node.name) else "no (`network up --engine geth` starts it)"),
                (
                    "next",
                    f"a majority of the {signers} signers votes it in: ape run network validators propose-add "
                    f"{node.spec.address}" + _dir_flag(data_dir),
                ),
            ],
        )
    )


# --- validators ----------------------------------------------------------------------------------------------


def _address(ctx: click.Context, param: click.Parameter, value: Any) -> str:
    try:
        return check_address(str(value).strip())
    except InputError as err:
        raise click.BadParameter(str(err), ctx, param) from None


on_option = click.option(
    "--on",
    "on",
    multiple=True,
    metavar="SEALER",
    help="Vote through this sealer (repeatable: treasury, central-bank, settlement-bank). Default: every sealer.",
)


@cli.group(short_help="The Geth network's validators (Clique signers) and votes")
def validators() -> None:
    """The signers of the Geth network and their votes. A signer is added or removed only when more than half
    of the current signers voted for it: each vote is cast through a sealer (`--on`), which puts it into the
    blocks it seals until the change happens or the vote is discarded."""


@validators.command("list", short_help="Show the signer set and pending votes")
@data_dir_option
def list_validators(data_dir: Path | None) -> None:
    """Show the current signers (as the archive node sees them) and each running sealer's pending votes."""
    network = _network(_geth_dir(data_dir))
    try:
        signers = network.signers()
        proposals = network.proposals()
    except DepositTokenError as err:
        raise _geth_fail(f"the network does not answer ({err}): `network up --engine geth`") from None
    names = _names_by_address(network)
    console = _console()
    console.print(_table("Validators (Clique signers)", [(str(i + 1), _who(a, names)) for i, a in enumerate(signers)]))
    needed = len(signers) // 2 + 1
    current = {address.lower() for address in signers}
    votes = [
        (sealer, f"{'add' if add else 'remove'} {_who(address, names)}{_in_effect(address, add, current)}")
        for sealer, pending in proposals.items()
        for address, add in pending.items()
    ]
    if votes:
        console.print(_table(f"Pending votes ({needed} of {len(signers)} signers decide)", votes))
    else:
        console.print(f"No pending votes (a change needs {needed} of the {len(signers)} signers).")


def _in_effect(address: str, add: bool, signers: set[str]) -> str:
    return " (in effect; discarded at the next vote)" if (address.lower() in signers) == add else ""


def _vote(data_dir: Path | None, address: str, on: tuple[str, ...], authorize: bool | None) -> None:
    network = _network(_geth_dir(data_dir))
    try:
        if authorize is None:
            voters = network.discard(address, on or None)
        else:
            voters = network.propose(address, authorize, on or None)
        signers = network.signers()
    except DepositTokenError as err:
        raise _geth_fail(err) from None
    names = _names_by_address(network)
    what = {True: "add", False: "remove", None: "withdraw the vote on"}[authorize]
    needed = len(signers) // 2 + 1
    console = _console()
    if authorize and address.lower() not in names:
        console.print(
            f"[yellow]warning:[/] {address} is not a sealer of this data directory: once added it counts in every "
            "majority, and the chain needs more than half of all signers sealing (run its node before the vote "
            "passes)."
        )
    console.print(
        f"Voted to {what} {_who(address, names)} through {', '.join(voters)}; "
        f"a change needs {needed} of the {len(signers)} current signers "
        "(it takes effect in a block each voter seals; `network validators list` shows it)."
    )


@validators.command("propose-add", short_help="Vote to add a signer")
@click.argument("address", callback=_address)
@on_option
@data_dir_option
def propose_add(address: str, on: tuple[str, ...], data_dir: Path | None) -> None:
    """Vote to make ADDRESS a signer, through the sealers named by --on (default: every sealer)."""
    _vote(data_dir, address, on, True)


@validators.command("propose-remove", short_help="Vote to remove a signer")
@click.argument("address", callback=_address)
@on_option
@data_dir_option
def propose_remove(address: str, on: tuple[str, ...], data_dir: Path | None) -> None:
    """Vote to remove signer ADDRESS, through the sealers named by --on (default: every sealer)."""
    _vote(data_dir, address, on, False)


@validators.command("discard", short_help="Withdraw a pending vote")
@click.argument("address", callback=_address)
@on_option
@data_dir_option
def discard(address: str, on: tuple[str, ...], data_dir: Path | None) -> None:
    """Withdraw the pending vote about ADDRESS from the sealers named by --on (default: every sealer)."""
    _vote(data_dir, address, on, None)

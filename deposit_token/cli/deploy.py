"""Deploys the deposit token system (admin module + token) and writes its record to deployments/<network>.json.

    ape run deploy --network ethereum:local:foundry
    ape run deploy --network ethereum:sepolia:node --account treasury-deployer --admin 0x... --admin-delay 86400

Keys stay in ape's encrypted keystores (`ape accounts import`); ape asks for the passphrase when signing.
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import TYPE_CHECKING, Any

import click
from ape.cli import account_option
from ape.exceptions import ApeException
from eth_utils import is_address, is_checksum_address, to_checksum_address
from rich.console import Console
from rich.table import Table
from web3.exceptions import Web3Exception

from deposit_token.chain import deployment
from deposit_token.chain.contracts import deploy_system
from deposit_token.chain.submit import LocalSigner, Submitter
from deposit_token.cli.common import ape_account_address, command_class, network_option, unattended
from deposit_token.errors import DepositTokenError
from deposit_token.ops.multisig import config as multisig_config
from deposit_token.ops.multisig import safes as multisig_safes

if TYPE_CHECKING:
    from ape.api import AccountAPI, ProviderAPI

MAX_ADMIN_DELAY = 2**48 - 1  # the contract takes a uint48
ZERO_ADDRESS = "0x" + "00" * 20


def _admin_address(ctx: click.Context, param: click.Parameter, value: str | None) -> str | None:
    """Validates --admin: a 20-byte hex address, with a correct EIP-55 checksum if it is mixed-case."""
    if value is None:
        return None
    text = value.strip()
    if not is_address(text):
        raise click.BadParameter(f"{value!r} is not an address (0x followed by 40 hex digits)", ctx, param)
    if text[2:] != text[2:].lower() and text[2:] != text[2:].upper() and not is_checksum_address(text):
        raise click.BadParameter(f"{value!r} has a wrong EIP-55 checksum (mistyped?)", ctx, param)
    address = to_checksum_address(text)
    if address == ZERO_ADDRESS:
        raise click.BadParameter("the zero address cannot be the admin", ctx, param)
    return address


def _console() -> Console:
    # Off a terminal (CI logs, subprocess), keep addresses and hashes on one line.
    return Console(width=None if sys.stdout.isatty() else 200)


def summary_table(record: dict[str, Any], path: Path) -> Table:
    table = Table(title=f"Deposit token deployed: {path}", show_header=True, header_style="bold")
    table.add_column("field", style="cyan", no_wrap=True)
    table.add_column("value", overflow="fold")
    compiler = record["compiler"]
    settings = compiler["settings"]
    rows = [
        ("network", record["network"]),
        ("chain id", str(record["chain_id"])),
        ("token", record["token"]),
        ("admin module", record["admin_module"]),
        ("deployer", record["deployer"]),
        ("admin", record["admin"]),
        ("admin transfer delay", f"{record['admin_transfer_delay']} s"),
        ("admin module tx", record["transactions"]["admin_module"]),
        ("token tx", record["transactions"]["token"]),
        ("block", f"{record['block']['number']} at {record['block']['time']}"),
        ("compiler", f"{compiler['name']} {compiler['version']} ({compiler['build']})"),
        (
            "settings",
            f"via_ir={settings['via_ir']} optimizer={settings['optimizer_enabled']} "
            f"runs={settings['optimizer_runs']} evm={settings['evm_version']}",
        ),
        ("sources", f"{record['sources']['sha256']} ({record['sources']['files']} files)"),
        ("package version", record["package_version"]),
        ("written at", record["written_at"]),
    ]
    for field, value in rows:
        table.add_row(field, value)
    return table


def _one_line(err: BaseException) -> str:
    text = " ".join(str(err).split()) or type(err).__name__
    return f"{type(err).__name__}: {text}"


# Errors of the chain or of the node (reverts, rejected transactions, unreachable RPC) and of writing the
# record: reported as one line, not as a traceback.
OPERATIONAL_ERRORS = (ApeException, Web3Exception, deployment.DeploymentRecordError, OSError)


DeployCommand = command_class(OPERATIONAL_ERRORS, _one_line)


@click.command(cls=DeployCommand, short_help="Deploy the deposit token system and record it")
@network_option(
    help="Ape network choice ecosystem:network:provider, e.g. ethereum:local:foundry "
    "(default: the pilot network ethereum:pilot:node, if its node answers)."
)
@account_option(prompt=False)
@click.option(
    "--admin",
    callback=_admin_address,
    metavar="ADDRESS",
    help="Address that gets DEFAULT_ADMIN_ROLE (default: the deployer).",
)
@click.option(
    "--admin-delay",
    type=click.IntRange(0, MAX_ADMIN_DELAY),
    default=0,
    show_default=True,
    metavar="SECONDS",
    help="Delay before a transfer of the admin role takes effect; 0 on a non-local network is warned about.",
)
@click.option(
    "--safes",
    "safes_file",
    type=click.Path(exists=True, dir_okay=False, path_type=Path),
    help="YAML file of Safes (docs/SAFE.md): deploy the Safe v1.4.1 contracts and one Safe per entry, grant "
    "each its roles and begin handing the admin role to the admin Safe (it accepts after --admin-delay).",
)
@click.option(
    "--force",
    is_flag=True,
    default=False,
    help="Deploy and overwrite the network's record even if the recorded token still has code on this chain.",
)
def cli(
    provider: ProviderAPI,
    account: AccountAPI | None,
    admin: str | None,
    admin_delay: int,
    safes_file: Path | None,
    force: bool,
) -> None:
    """Deploy DepositTokenAdmin + DepositToken and write deployments/<network>.json.

    The record file is named after the network, ecosystem:network:provider (ethereum:local:foundry ->
    ethereum-local-foundry.json, ethereum:pilot:node -> ethereum-pilot-node.json, whatever URI the node
    provider uses; an ad-hoc --network http://host:port is named by its URI) in deployments/ or in
    $DEPOSIT_TOKEN_DEPLOYMENTS_DIR. A deployment whose recorded token still has code on the connected chain is
    not replaced unless --force is given.
    """
    from ape import accounts, chain, project

    console = _console()
    network = provider.network
    name = deployment.network_name(provider)  # the one naming rule: audit and network status read this record
    if account is None:
        if not network.is_dev:
            raise click.UsageError(
                f"--account is required on {name}: give the alias of an account in ape's keystore (`ape accounts list`)"
            )
        account = accounts.test_accounts[0]
    unattended(account)
    if admin_delay == 0 and not network.is_dev:
        console.print("[yellow]warning:[/] --admin-delay is 0: the admin role can be handed over without delay")

    settings = _safes_config(safes_file) if safes_file is not None else None
    if settings is not None and admin is not None and settings.for_role("DEFAULT_ADMIN_ROLE") is not None:
        raise click.UsageError("--admin and an admin Safe in --safes exclude each other: the admin Safe takes it")
    path = deployment.record_path(name)
    try:
        check = deployment.check_can_deploy(path, provider, force=force)
    except deployment.LiveDeploymentError as err:
        raise click.ClickException(str(err)) from None
    console.print(check.reason)

    admin = admin or account.address
    try:
        deployed = deploy_system(account, admin=admin, admin_transfer_delay=admin_delay)
        block_timestamp = chain.blocks[deployed.block].timestamp
        record = deployment.make_record(
            network=name,
            chain_id=provider.chain_id,
            deployed=deployed,
            deployer=account.address,
            admin=admin,
            admin_transfer_delay=admin_delay,
            block_timestamp=block_timestamp,
            project=project,
            contracts_dir=project.contracts_folder,
        )
        if settings is not None:
            record.update(_deploy_safes(provider, account, str(deployed.token.address), settings))
        deployment.write_record(path, record)
    except (*OPERATIONAL_ERRORS, ValueError, DepositTokenError) as err:
        raise click.ClickException(f"deployment failed: {_one_line(err)}") from None
    console.print(summary_table(record, path))
    if settings is not None:
        console.print(safes_table(record))


def _resolve_owner(text: str) -> str:
    """An owner given as an ape account alias (TEST::n for test accounts)."""
    address = ape_account_address(text)
    if address is not None:
        return address
    raise ValueError(f"{text!r} is neither an address nor the alias of an ape account")


def _safes_config(path: Path) -> multisig_config.SafesConfig:
    try:
        return multisig_config.load(path, _resolve_owner)
    except multisig_config.SafeConfigError as error:
        raise click.ClickException(str(error)) from None


def _deploy_safes(
    provider: ProviderAPI, account: AccountAPI, token: str, settings: multisig_config.SafesConfig
) -> dict[str, Any]:
    """Deploys the Safe contracts and Safes, hands the roles over; the record's safe_contracts, safes, policy."""
    from deposit_token.chain.contracts import system_contract_type

    signer = LocalSigner.from_ape_account(account)
    uri = str(getattr(provider, "uri", None) or getattr(provider, "http_uri", ""))
    with Submitter(uri, provider.chain_id) as submitter:
        infra = multisig_safes.deploy_infrastructure(submitter, signer)
        made = [
            multisig_config.DeployedSafe(
                spec, multisig_safes.create_safe(submitter, signer, infra, spec.owners, spec.threshold, salt)
            )
            for salt, spec in enumerate(settings.safes)
        ]
        handover = multisig_config.hand_over(submitter, token, system_contract_type(), signer, made)
        contracts = infra.as_record(submitter.rpc)
    policy = settings.large_disbursal
    return {
        "safe_contracts": contracts,
        "safes": {safe.spec.name: safe.as_record() for safe in made},
        "policy": {"large_disbursal": {"above": policy.above, "safe": policy.safe}} if policy else {},
        "admin_handover_to": handover.admin_to,
    }


def safes_table(record: dict[str, Any]) -> Table:
    table = Table(title="Safes (v1.4.1)", show_header=True, header_style="bold")
    for column in ("safe", "address", "threshold", "roles"):
        table.add_column(column, overflow="fold")
    for name, entry in record["safes"].items():
        threshold = f"{entry['threshold']} of {len(entry['owners'])}"
        table.add_row(name, entry["address"], threshold, ", ".join(entry["roles"]))
    if record.get("admin_handover_to"):
        table.caption = (
            f"admin handover begun to {record['admin_handover_to']}: its owners accept it after the delay with "
            "`ape run treasury role handover accept --propose FILE`, `ape run safe sign`, `ape run safe execute`"
        )
    return table


# ape's account_option has no help text parameter: document it here so that --help covers every option.
for _param in cli.params:
    if isinstance(_param, click.Option) and _param.name == "account" and not _param.help:
        _param.help = (
            "Alias of an ape account to deploy from (keys stay in ape's encrypted keystore). "
            "Default on local/dev networks: the first test account; required on other networks."
        )

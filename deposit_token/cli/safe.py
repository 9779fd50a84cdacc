"""Safe proposals: read one in words, sign it offline, execute it once enough owners signed.

    ape run treasury issue 1,000,000,000 --to 0xTreasury --propose mint-0042.json   (no --account: the Safe acts)
    ape run safe show mint-0042.json
    ape run safe sign mint-0042.json --account bank-officer-1
    ape run safe sign mint-0042.json --account bank-officer-2
    ape run safe execute mint-0042.json --account bank-officer-3
    ape run safe list

The network is the one the proposal was written on (its deployment record names the Safes), unless --network
says otherwise. Before signing and before executing, the Safe simulates the call: a proposal the token would
refuse is refused with the token's sentence, so nobody collects signatures for a transaction that would fail.
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from pathlib import Path
from typing import Any

import click
from rich.table import Table

from deposit_token.chain import deployment
from deposit_token.chain.rpc import RpcClient, RpcError, mask_url
from deposit_token.chain.submit import LocalSigner, encode_call
from deposit_token.cli.common import PILOT_NETWORK, console, one_line
from deposit_token.domain.sentences import NameLookup
from deposit_token.errors import DepositTokenError
from deposit_token.ops.multisig import proposal as proposals
from deposit_token.ops.multisig import safes as onchain
from deposit_token.ops.multisig.propose import (
    Proposed,
    SafeProposer,
    accessor_of,
    multi_send_of,
    recorded_safes,
    safe_for,
)
from deposit_token.ops.multisig.words import describe

PROPOSAL_FILE = click.Path(exists=True, dir_okay=False, path_type=Path)


# --- the shared --propose option of the treasury commands ------------------------------------------------------


def proposable(role: str) -> Callable[[Callable[..., Any]], Callable[..., Any]]:
    """Adds --propose FILE (with --safe and --safe-nonce) to a treasury command whose signer needs `role`:
    the command runs all its checks as the Safe holding `role` and writes the Safe transaction to FILE for the
    Safe's owners instead of sending anything."""

    def decorate(fn: Callable[..., Any]) -> Callable[..., Any]:
        @functools.wraps(fn)
        def run(*args: Any, propose: Path | None, safe: str | None, safe_nonce: int | None, **kw: Any) -> Any:
            if propose is None:
                if safe is not None or safe_nonce is not None:
                    raise click.UsageError("--safe and --safe-nonce go with --propose FILE")
                return fn(*args, **kw)
            if kw.get("account") is not None:
                raise click.UsageError("--propose writes a proposal for the Safe's owners to sign: leave out --account")
            provider = kw["provider"]
            network = deployment.network_name(provider)
            record = deployment.load_record(deployment.record_path(network))
            target = safe_for(record, role, safe)
            command = click.get_current_context().command_path
            kw["account"] = SafeProposer(target, propose, network, command, safe_nonce, accessor_of(record))
            try:
                return fn(*args, **kw)
            except Proposed as done:
                _print_proposal(done.proposal, done.state, f"Proposal written to {done.path}; nothing was sent")
                console().print(
                    f"next: {done.state.threshold} of the Safe's owners sign it (`ape run safe sign {done.path} "
                    f"--account ALIAS`), then anyone runs `ape run safe execute {done.path} --account ALIAS`",
                    highlight=False,
                )
                return None

        options = [
            click.option(
                "--propose",
                type=click.Path(dir_okay=False, path_type=Path),
                help=f"Write this action as a Safe proposal to FILE (JSON) instead of sending it: the Safe holding "
                f"{role} acts, once enough of its owners signed (`ape run safe sign`, `ape run safe execute`).",
            ),
            click.option(
                "--safe",
                metavar="NAME|ADDRESS",
                help="With --propose: the Safe that acts [default: the deployment record's Safe holding the role].",
            ),
            click.option(
                "--safe-nonce",
                type=click.IntRange(0),
                help="With --propose: queue behind other proposals with this Safe nonce [default: the Safe's next].",
            ),
        ]
        for option in reversed(options):
            run = option(run)
        return run

    return decorate


# --- output ----------------------------------------------------------------------------------------------------


def _print_proposal(proposal: proposals.Proposal, state: onchain.SafeState | None, title: str) -> None:
    tx = proposal.tx
    table = Table(title=title, show_header=False, title_justify="left")
    table.add_column("field", style="cyan", no_wrap=True)
    table.add_column("value", overflow="fold")
    for number, line in enumerate(proposal.description, 1):
        table.add_row("does" if number == 1 else "", line)
    label = f" ({proposal.safe_label})" if proposal.safe_label else ""
    table.add_row("Safe", f"{tx.safe}{label} on chain {tx.chain_id}")
    if state is not None:
        table.add_row("threshold", f"{state.threshold} of {len(state.owners)} owners")
        table.add_row("owners", ", ".join(state.owners))
        table.add_row("Safe nonce", f"{tx.nonce} (the Safe is at {state.nonce})")
    else:
        table.add_row("Safe nonce", str(tx.nonce))
    signed = []
    for owner in proposal.signers():
        counts = state is None or owner in state.owners
        signed.append(owner if counts else f"{owner} (no longer an owner: does not count)")
    table.add_row("signed by", ", ".join(signed) or "nobody yet")
    if state is not None:
        counted = len([o for o in proposal.signers() if o in state.owners])
        table.add_row("signatures", f"{counted} of {state.threshold} needed")
    table.add_row("safeTxHash", "0x" + proposal.hash.hex())
    if proposal.command:
        table.add_row("proposed with", proposal.command)
    console().print(table)


# --- connecting --------------------------------------------------------------------------------------------------


class SafeCommand(click.Command):
    """A Safe command: expected failures (a bad file, a refusal, a node that does not answer) are one line."""

    def invoke(self, ctx: click.Context) -> Any:
        try:
            return super().invoke(ctx)
        except (DepositTokenError, RpcError, OSError, ValueError) as error:
            raise click.ClickException(one_line(error)) from None


def _rpc_url(choice: str) -> str:
    if choice.startswith(("http://", "https://")):
        return choice
    from ape import networks

    try:
        uri = getattr(networks.get_provider_from_choice(choice), "uri", None)
    except Exception as error:  # noqa: BLE001 - ape raises several kinds for an unknown choice
        reason = one_line(error).split(" Options:")[0]
        raise click.ClickException(f"{choice!r} is not a network ape knows: {reason}") from None
    if not uri or not str(uri).startswith(("http://", "https://")):
        raise click.ClickException(
            f"network {choice} has no fixed JSON-RPC URL ({uri}): give --network http://HOST:PORT"
        )
    return str(uri)


class Connection:
    def __init__(self, choice: str) -> None:
        self.choice = choice
        self.url = _rpc_url(choice)
        self.rpc = RpcClient(self.url)
        self.record = deployment.load_record(deployment.record_path(deployment.network_name_of_choice(choice)))

    def names(self, token: str | None) -> NameLookup:
        if token is None:
            return NameLookup()
        from deposit_token.chain.contracts import system_contract_type

        def program(program_id: int) -> str:
            try:
                data = encode_call(system_contract_type(), "programName", [program_id])
                raw = bytes.fromhex(
                    str(self.rpc.call("eth_call", [{"to": token, "data": "0x" + data.hex()}, "latest"]))[2:]
                )
                from eth_abi import decode

                (name,) = decode(["string"], raw)
                return f"'{name}'" if name else f"#{program_id}"
            except Exception:  # noqa: BLE001 - a name is a courtesy: an id is still right
                return f"#{program_id}"

        return NameLookup(program=program)

    def check_chain(self, proposal: proposals.Proposal) -> None:
        chain_id = self.rpc.chain_id()
        if chain_id != proposal.tx.chain_id:
            raise click.ClickException(
                f"the proposal is for chain {proposal.tx.chain_id}, but {mask_url(self.url)} is chain {chain_id}"
            )


def _connect(network: str | None, proposal: proposals.Proposal | None) -> Connection:
    return Connection(network or (proposal.network if proposal and proposal.network else PILOT_NETWORK))


def _signer(alias: str) -> LocalSigner:
    from ape import accounts
    from ape.exceptions import ApeException

    try:
        if alias.upper().startswith("TEST::") and alias[6:].isdigit():
            account = accounts.test_accounts[int(alias[6:])]
        elif alias in accounts.aliases:
            account = accounts.load(alias)
        else:
            raise click.ClickException(f"{alias!r} is not an ape account (see `ape accounts list`)")
        return LocalSigner.from_ape_account(account)
    except (ApeException, IndexError, ValueError) as error:
        raise click.ClickException(one_line(error)) from None


def _explained(proposal: proposals.Proposal, connection: Connection) -> list[str]:
    """The proposal's calls in words, decoded from its data (not the description the proposer wrote)."""
    return describe(proposal.tx, proposal.token, connection.names(proposal.token), multi_send_of(connection.record))


network_option = click.option(
    "--network",
    help="Ape network choice or JSON-RPC URL [default: the network the proposal was written on].",
)
account_option = click.option("--account", required=True, help="Alias of the ape account (TEST::n for test accounts).")


# --- the commands -------------------------------------------------------------------------------------------------


@click.group()
def cli() -> None:
    """Safe proposals of privileged treasury actions: show, sign, execute; list the deployment's Safes."""


@cli.command(cls=SafeCommand)
@click.argument("file", type=PROPOSAL_FILE)
@network_option
def show(file: Path, network: str | None) -> None:
    """Print what the proposal in FILE does, in words, with its Safe, threshold, owners and who signed."""
    proposal = proposals.Proposal.read(file)
    connection = _connect(network, proposal)
    connection.check_chain(proposal)
    state = onchain.read_safe(connection.rpc, proposal.tx.safe)
    proposal.description = _explained(proposal, connection)
    _print_proposal(proposal, state, f"Safe proposal {file}")
    reason = onchain.simulate(
        connection.rpc, proposal.tx, accessor_of(connection.record), connection.names(proposal.token)
    )
    if proposal.tx.nonce < state.nonce:
        console().print(f"the Safe is past nonce {proposal.tx.nonce}: this proposal can no longer run")
    elif reason is not None:
        console().print(f"[red]would fail now:[/] {reason}", highlight=False)
    else:
        console().print("simulated now: it would succeed")


@cli.command(cls=SafeCommand)
@click.argument("file", type=PROPOSAL_FILE)
@account_option
@network_option
@click.option("--offline", is_flag=True, help="Sign without a network (no simulation, no owner check).")
def sign(file: Path, account: str, network: str | None, offline: bool) -> None:
    """Sign the proposal in FILE as an owner of its Safe (EIP-712 SafeTx; no transaction, no gas): the
    signature is added to FILE. The call is simulated first; a proposal that would fail is not signed."""
    proposal = proposals.Proposal.read(file)
    signer = _signer(account)
    state = None
    if not offline:
        connection = _connect(network, proposal)
        connection.check_chain(proposal)
        state = onchain.read_safe(connection.rpc, proposal.tx.safe)
        if signer.address not in state.owners:
            raise click.ClickException(
                f"{signer.address} is not an owner of Safe {state.address} (owners: {', '.join(state.owners)})"
            )
        if proposal.tx.nonce < state.nonce:
            raise click.ClickException(
                f"the Safe is at nonce {state.nonce}, past the proposal's {proposal.tx.nonce}: it can no longer "
                "run (executed already, or replaced); nothing was signed"
            )
        names = connection.names(proposal.token)
        reason = onchain.simulate(connection.rpc, proposal.tx, accessor_of(connection.record), names)
        if reason is not None:
            raise click.ClickException(f"not signed: the Safe transaction would fail: {reason}")
        proposal.description = _explained(proposal, connection)
    added = proposal.add(proposals.sign(proposal.tx, signer))
    proposal.write(file)
    _print_proposal(proposal, state, f"Signed by {signer.address}" if added else f"{signer.address} had signed already")
    if offline:
        console().print("--offline: not simulated; `ape run safe show` checks it against the chain")


@cli.command(cls=SafeCommand)
@click.argument("file", type=PROPOSAL_FILE)
@account_option
@network_option
def execute(file: Path, account: str, network: str | None) -> None:
    """Execute the proposal in FILE through its Safe once enough owners signed (any account may send it; an
    owner sending it counts as approving)."""
    proposal = proposals.Proposal.read(file)
    signer = _signer(account)
    connection = _connect(network, proposal)
    connection.check_chain(proposal)
    names = connection.names(proposal.token)
    reason = onchain.simulate(connection.rpc, proposal.tx, accessor_of(connection.record), names)
    state = onchain.read_safe(connection.rpc, proposal.tx.safe)
    if reason is not None and proposal.tx.nonce == state.nonce:
        raise click.ClickException(f"not executed: the Safe transaction would fail: {reason}")
    outcome = onchain.execute(connection.url, proposal, signer, names)
    proposal.description = _explained(proposal, connection)
    after = onchain.read_safe(connection.rpc, proposal.tx.safe)
    _print_proposal(proposal, after, "Executed")
    console().print(f"transaction {outcome.tx_hash} in block {outcome.block_number}", highlight=False)


@cli.command(name="list", cls=SafeCommand)
@click.option("--network", default=PILOT_NETWORK, show_default=True, help="Ape network choice or JSON-RPC URL.")
def list_safes(network: str) -> None:
    """List the deployment's Safes: roles, owners, threshold and nonce (read from the chain)."""
    connection = Connection(network)
    found = recorded_safes(connection.record)
    if not found:
        raise click.ClickException(f"the deployment record of {network} lists no Safes (`ape run deploy --safes FILE`)")
    table = Table(title=f"Safes ({len(found)})", title_justify="left")
    for column in ("name", "address", "roles", "threshold", "owners", "nonce"):
        table.add_column(column, overflow="fold")
    for entry in found:
        state = onchain.read_safe(connection.rpc, entry.address)
        table.add_row(
            entry.name,
            entry.address,
            ", ".join(entry.roles),
            f"{state.threshold} of {len(state.owners)}",
            ", ".join(state.owners),
            str(state.nonce),
        )
    console().print(table)


__all__ = ["cli", "proposable"]

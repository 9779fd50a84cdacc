"""Treasury operations: issue, programs, vendors, enrolment, allocation, CSV disbursal, compliance actions.

    ape run treasury issue 1000000000 --to 0xTreasury --network ethereum:pilot:node --account bank-issuer
    ape run treasury program create --preset business-promotion --name BP-2026-MOEF --treasury 0x... \\
        --start 2026-01-01 --end 2027-01-01 --account budget-office
    ape run treasury vendor register --csv vendors.csv --account budget-office
    ape run treasury enrol --csv officials.csv --account budget-office
    ape run treasury disburse payroll.csv --program BP-2026-MOEF --account budget-office
    ape run treasury freeze 0xWallet --reason "lost phone" --account compliance
    ape run treasury role grant issuer 0xBank --account token-admin
    ape run treasury vendors --format csv

The listings (vendors, spenders, programs, treasuries, roles) read the chain only; they take --network and
--format (table, csv or json).

Every command takes --network and --account (an ape account alias; on local development networks the first
test account holding the role the command needs is used when --account is left out), checks its input and asks
the contract whether it would accept before sending anything, and explains a refusal in one sentence.
Non-interactive use: ape's APE_ACCOUNTS_<alias>_PASSPHRASE environment variable.
"""

from __future__ import annotations

import csv
import functools
import signal
from collections.abc import Callable, Sequence
from operator import itemgetter
from pathlib import Path
from typing import TYPE_CHECKING, Any

import click
from ape.cli import account_option
from rich.markup import escape
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Table

from deposit_token.chain import deployment
from deposit_token.chain.submit import LocalSigner, SubmitError
from deposit_token.cli.common import (
    ADDRESS_OR_ALIAS,
    AMOUNT,
    CATEGORY,
    CSV_FILE,
    ROLE,
    AmountType,
    ConnectedProviderCommand,
    console,
    deployed_token,
    deployment_block,
    network_option,
    one_line,
    unattended,
)
from deposit_token.cli.safe import proposable
from deposit_token.domain import display
from deposit_token.domain.categories import Category
from deposit_token.domain.inputs import RowProblem, bytes32_text, reference_bytes
from deposit_token.domain.presets import PRESETS
from deposit_token.domain.rules import ProgramSpec
from deposit_token.errors import DepositTokenError
from deposit_token.ops import actions, bulk, context, listing, program_spec
from deposit_token.ops import disburse as disbursal
from deposit_token.ops import roles as access
from deposit_token.ops.multisig import policy as large_disbursals
from deposit_token.ops.multisig.propose import SafeProposer, multi_send_of

if TYPE_CHECKING:
    from ape.api import AccountAPI, ProviderAPI, ReceiptAPI

PROBLEMS_SHOWN = 500  # rows of a problem table printed; the full list goes to a file


# --- command plumbing -------------------------------------------------------------------------------------------


class TreasuryCommand(ConnectedProviderCommand):
    """A connected command whose expected failures end in one line (exit 1), never a traceback; a refused
    CSV file also gets its table of problems."""

    def show_details(self, error: DepositTokenError) -> None:
        if isinstance(error, bulk.BulkRefused):
            _print_problems(error.problems, Path(error.source) if Path(error.source).is_file() else None)


def _document_account_option(command: click.Command, role: str | None) -> None:
    for param in command.params:
        if isinstance(param, click.Option) and param.name == "account" and not param.help:
            default = f"the first test account holding {role}" if role else "the first test account"
            param.help = (
                f"Alias of the ape account that signs{f' (it needs {role})' if role else ''}; "
                f"TEST::n for test accounts. Default on local development networks: {default}."
            )


def command(
    group: click.Group, name: str | None = None, role: str | None = None, **kwargs: Any
) -> Callable[[Callable[..., Any]], click.Command]:
    """A subcommand with --network and --account (documented), reporting errors in one line; a command whose
    signer needs a role (or `propose_as`) also takes --propose FILE: the Safe holding it acts, after its owners
    sign (`deposit_token.cli.safe.proposable`)."""
    propose_as = kwargs.pop("propose_as", role)

    def decorate(fn: Callable[..., Any]) -> click.Command:
        if propose_as is not None:
            fn = proposable(propose_as)(fn)
        fn = account_option(prompt=False)(fn)
        fn = _network_option()(fn)
        cmd = group.command(name=name, cls=TreasuryCommand, **kwargs)(fn)
        _document_account_option(cmd, role)
        return cmd

    return decorate


def _network_option() -> Callable[[Callable[..., Any]], Callable[..., Any]]:
    return network_option(
        help="Ape network choice, e.g. ethereum:pilot:node or ethereum:local:foundry "
        "(default: the pilot network ethereum:pilot:node, if its node answers)."
    )


def read_command(
    group: click.Group, name: str | None = None, **kwargs: Any
) -> Callable[[Callable[..., Any]], click.Command]:
    """A subcommand that only reads the chain: --network and --format, no --account."""

    def decorate(fn: Callable[..., Any]) -> click.Command:
        fn = click.option(
            "--format",
            "fmt",
            type=click.Choice(listing.FORMATS),
            default="table",
            show_default=True,
            help="table for people; csv or json for other tools (whole KRW, ISO-8601 times).",
        )(fn)
        fn = _network_option()(fn)
        return group.command(name=name, cls=TreasuryCommand, **kwargs)(fn)

    return decorate


def _signer_account(
    provider: ProviderAPI,
    account: AccountAPI | None,
    role: str | None,
    chain: context.Chain,
    wanted: tuple[str, Callable[[str], bool]] | None = None,
) -> AccountAPI:
    """--account, or on a development network the first test account holding `role` (or, with `wanted`
    = (what, predicate), the first whose address satisfies the predicate)."""
    if account is None:
        if not provider.network.is_dev:
            raise click.UsageError(
                f"--account is required on {provider.network_choice}: give the alias of an "
                "account in ape's keystore (`ape accounts list`)"
            )
        from ape import accounts

        what, fits = wanted or (role, lambda address: role is None or context.has_role(chain, role, address))
        for candidate in list(accounts.test_accounts)[:10]:
            if fits(str(candidate.address)):
                account = candidate
                break
        else:
            raise click.UsageError(
                f"no test account is {what}; give --account"
                if wanted
                else f"no test account holds {role}; give --account"
            )
    return unattended(account)


def _connect(provider: ProviderAPI) -> context.Chain:
    token = deployed_token()
    uri = getattr(provider, "uri", None) or getattr(provider, "http_uri", None)
    if not uri:
        raise click.ClickException(f"the provider of {provider.network_choice} has no JSON-RPC URI")
    return context.Chain.connect(token, uri, provider.chain_id)


def _setup(provider: ProviderAPI, account: AccountAPI | None, role: str | None) -> tuple[context.Chain, AccountAPI]:
    chain = _connect(provider)
    return chain, _signer_account(provider, account, role, chain)


def _local_signer(account: AccountAPI) -> LocalSigner:
    if hasattr(account, "propose_call"):
        raise click.UsageError("--propose takes one action: propose the rows of a CSV file one at a time")
    try:
        return LocalSigner.from_ape_account(account)
    except ValueError as err:
        raise click.ClickException(str(err)) from None


# --- output -----------------------------------------------------------------------------------------------------


def _table(title: str, rows: Sequence[tuple[str, Any]]) -> Table:
    table = Table(title=title, show_header=False, title_justify="left")
    table.add_column("field", style="cyan", no_wrap=True)
    table.add_column("value", overflow="fold")
    for key, value in rows:
        table.add_row(key, str(value))
    return table


def _receipt_rows(receipt: ReceiptAPI) -> list[tuple[str, Any]]:
    return [("transaction", receipt.txn_hash), ("block", receipt.block_number), ("gas used", f"{receipt.gas_used:,}")]


def _done(title: str, rows: Sequence[tuple[str, Any]], receipt: ReceiptAPI | None = None) -> None:
    console().print(_table(title, [*rows, *(_receipt_rows(receipt) if receipt is not None else [])]))


def _print_problems(problems: Sequence[RowProblem], source: Path | None) -> None:
    out = console()
    table = Table(title=f"{len(problems)} problem(s); nothing was sent", title_justify="left")
    table.add_column("where", no_wrap=True, justify="right")
    table.add_column("value", overflow="fold")
    table.add_column("reason", overflow="fold")
    for problem in problems[:PROBLEMS_SHOWN]:
        table.add_row(problem.where, problem.value, problem.reason)
    out.print(table)
    if len(problems) > PROBLEMS_SHOWN and source is not None:
        path = source.with_name(source.name + ".problems.csv")
        with open(path, "w", encoding="utf-8", newline="") as handle:
            writer = csv.writer(handle)
            writer.writerow(("line", "value", "reason"))
            writer.writerows((p.line, p.value, p.reason) for p in problems)
        out.print(f"{len(problems) - PROBLEMS_SHOWN} more not shown; all {len(problems)} are in {path}")


def _progress() -> Progress:
    return Progress(
        TextColumn("{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
        console=console(),
        transient=False,
    )


def _bulk(
    chain: context.Chain, account: AccountAPI, calls: Sequence[bulk.BulkCall], what: str
) -> list[bulk.BulkResult]:
    """Sends bulk calls with a progress bar and prints a table of the outcomes; exit 1 if any failed."""
    if not calls:
        console().print(f"nothing to {what}")
        return []
    signer = _local_signer(account)
    with _progress() as bar:
        task = bar.add_task(f"{what}: sending", total=len(calls))

        def progress(phase: str, done: int, total: int) -> None:
            bar.update(
                task,
                description=f"{what}: {'sending' if phase == 'sent' else 'confirming'}",
                completed=done,
                total=total,
            )

        results = bulk.send_bulk(chain, signer, calls, progress)
    table = Table(
        title=f"{what}: {sum(r.outcome.status for r in results)} of {len(results)} transactions succeeded",
        title_justify="left",
    )
    for column in ("lines", "action", "result", "transaction", "block"):
        table.add_column(column, overflow="fold")
    for r in results:
        status = "ok" if r.outcome.status else f"[red]failed: {r.outcome.error}[/]"
        table.add_row(r.call.where, r.call.label, status, r.outcome.tx_hash or "-", str(r.outcome.block_number or "-"))
    console().print(table)
    if not all(r.outcome.status for r in results):
        raise click.ClickException(f"{sum(not r.outcome.status for r in results)} transaction(s) failed")
    return results


def _print_listing(
    title: str, rows: Sequence[Any], columns: Sequence[listing.Column], fmt: str, notes: Sequence[str] = ()
) -> None:
    """A table for people (notes under it), or CSV / JSON on stdout with nothing else, for other tools."""
    if fmt == "csv":
        click.echo(listing.as_csv(rows, columns), nl=False)
        return
    if fmt == "json":
        click.echo(listing.as_json(rows, columns))
        return
    shown = [c for c in columns if c.in_table]
    table = Table(title=f"{title} ({len(rows)})", title_justify="left")
    for column in shown:
        table.add_column(
            column.name.removesuffix("_krw").replace("_", " "),
            overflow="fold",
            justify="right" if column.name.endswith("_krw") else "left",
        )
    for row in rows:
        table.add_row(*(escape(column.cell(row)) for column in shown))  # names are free text, not markup
    out = console()
    out.print(table)
    for note in notes:
        out.print(note)


def _exclusive(single: Any, csv_path: Path | None, what: str) -> None:
    if (single is None) == (csv_path is None):
        raise click.UsageError(f"give either {what} or --csv FILE")


# --- the commands -------------------------------------------------------------------------------------------------


@click.group()
def cli() -> None:
    """Treasury operations on the deposit token (issuer, budget office, compliance officer)."""


@command(cli, role="ISSUER_ROLE")
@click.argument("amount", type=AMOUNT)
@click.option("--to", "treasury", type=ADDRESS_OR_ALIAS, required=True, help="The registered treasury to mint into.")
def issue(provider: ProviderAPI, account: AccountAPI | None, amount: int, treasury: str) -> None:
    """Mint AMOUNT KRW into a treasury, within the issuer's allowance."""
    chain, account = _setup(provider, account, "ISSUER_ROLE")
    receipt = actions.issue(chain, account, treasury, amount)
    _done(
        f"Issued {amount:,} KRW",
        [
            ("treasury", treasury),
            ("treasury balance", f"{int(chain.token.balanceOf(treasury)):,} KRW"),
            ("issuer", account.address),
            ("allowance left", f"{int(chain.token.mintAllowance(account.address)):,} KRW"),
        ],
        receipt,
    )


@command(cli, role="DEFAULT_ADMIN_ROLE")
@click.argument("issuer", type=ADDRESS_OR_ALIAS)
@click.argument("amount", type=AmountType(allow_zero=True))
def allowance(provider: ProviderAPI, account: AccountAPI | None, issuer: str, amount: int) -> None:
    """Set how much ISSUER may still mint to AMOUNT KRW (0 stops it minting)."""
    chain, account = _setup(provider, account, "DEFAULT_ADMIN_ROLE")
    receipt = context.transact(chain, "setMintAllowance", (issuer, amount), account)
    rows = [("issuer", issuer), ("allowance", f"{amount:,} KRW")]
    if not context.has_role(chain, "ISSUER_ROLE", issuer):
        rows.append(("note", "this address does not hold ISSUER_ROLE yet"))
    _done("Mint allowance set", rows, receipt)


@cli.group(name="treasury")
def treasury_group() -> None:
    """Treasury accounts (the wallets that programs pay from)."""


@command(treasury_group, name="register", role="DEFAULT_ADMIN_ROLE")
@click.argument("address", type=ADDRESS_OR_ALIAS)
def treasury_register(provider: ProviderAPI, account: AccountAPI | None, address: str) -> None:
    """Register ADDRESS as a treasury."""
    chain, account = _setup(provider, account, "DEFAULT_ADMIN_ROLE")
    receipt = actions.register_treasury(chain, account, address)
    _done("Treasury registered", [("treasury", address)], receipt)


# programs


@cli.group(name="program")
def program_group() -> None:
    """Programs (budget lines with their spending rules)."""


def _program_options(fn: Callable[..., Any]) -> Callable[..., Any]:
    """The program rules options (--file, or --preset with its options), handed to the command as one checked
    ``spec: ProgramSpec`` argument (checked before the command body runs)."""

    @functools.wraps(fn)
    def with_spec(
        *args: Any,
        spec_file: Path | None,
        preset: str | None,
        name: str | None,
        treasury_address: str | None,
        start: str | None,
        end: str | None,
        working_hours: bool,
        **kw: Any,
    ) -> Any:
        return fn(*args, spec=_spec(spec_file, preset, name, treasury_address, start, end, working_hours), **kw)

    command_fn: Callable[..., Any] = with_spec
    options = [
        click.option(
            "--file",
            "spec_file",
            type=click.Path(exists=True, dir_okay=False, path_type=Path),
            help="YAML or JSON file with every ProgramSpec field (name, treasury, start, end, hours, "
            "per_payment_limit, evidence_threshold, caps[, utc_offset_minutes]).",
        ),
        click.option("--preset", type=click.Choice(sorted(PRESETS)), help="Start from a preset instead of a file."),
        click.option("--name", help="Program name (with --preset), e.g. BP-2026-MOEF."),
        click.option("--treasury", "treasury_address", type=ADDRESS_OR_ALIAS, help="Paying treasury (with --preset)."),
        click.option(
            "--start", help="Start (with --preset): ISO date/time (KST unless an offset is given) or unix seconds."
        ),
        click.option("--end", help="End (with --preset), exclusive; same formats as --start."),
        click.option(
            "--working-hours",
            is_flag=True,
            help="business-promotion preset: 09:00-18:00 on working days only (the 2026 pilot's rule).",
        ),
    ]
    for option in reversed(options):
        command_fn = option(command_fn)
    return command_fn


def _spec(
    spec_file: Path | None,
    preset: str | None,
    name: str | None,
    treasury_address: str | None,
    start: str | None,
    end: str | None,
    working_hours: bool,
) -> ProgramSpec:
    if (spec_file is None) == (preset is None):
        raise click.UsageError("give either --preset (with --name, --treasury, --start, --end) or --file")
    if spec_file is not None:
        extra = [
            o
            for o, v in (("--name", name), ("--treasury", treasury_address), ("--start", start), ("--end", end))
            if v is not None
        ] + (["--working-hours"] if working_hours else [])
        if extra:
            raise click.UsageError(f"{', '.join(extra)} cannot be combined with --file (put them in the file)")
        return program_spec.load_spec(spec_file)
    missing = [
        o
        for o, v in (("--name", name), ("--treasury", treasury_address), ("--start", start), ("--end", end))
        if v is None
    ]
    if missing:
        raise click.UsageError(f"--preset needs {', '.join(missing)}")
    # checked above: a preset, and none of its options missing
    assert preset is not None and name is not None and treasury_address is not None
    assert start is not None and end is not None
    return program_spec.preset_spec(
        preset, name=name, treasury=treasury_address, start=start, end=end, working_hours_only=working_hours
    )


@command(program_group, name="create", role="PROGRAM_MANAGER_ROLE")
@_program_options
def program_create(
    provider: ProviderAPI,
    account: AccountAPI | None,
    spec: ProgramSpec,
) -> None:
    """Create a program from a preset or a YAML/JSON file; everything is checked before sending."""
    chain, account = _setup(provider, account, "PROGRAM_MANAGER_ROLE")
    program_id, receipt = actions.create_program(chain, account, spec)
    _done(f"Program #{program_id} created", [("program id", program_id), *program_spec.spec_rows(spec)], receipt)


@command(program_group, name="update", role="PROGRAM_MANAGER_ROLE")
@click.argument("program")
@_program_options
def program_update(
    provider: ProviderAPI,
    account: AccountAPI | None,
    program: str,
    spec: ProgramSpec,
) -> None:
    """Replace the rules of PROGRAM (id or name) from a preset or a YAML/JSON file."""
    chain, account = _setup(provider, account, "PROGRAM_MANAGER_ROLE")
    info = context.resolve_program(chain, program)
    receipt = actions.update_program(chain, account, info.id, spec)
    _done(
        f"Program #{info.id} updated (version {info.version + 1})",
        [("program id", info.id), *program_spec.spec_rows(spec)],
        receipt,
    )


def _programs(provider: ProviderAPI, fmt: str) -> None:
    rows = listing.programs(_connect(provider))
    _print_listing("Programs", rows, listing.PROGRAM_COLUMNS, fmt)


@read_command(program_group, name="list")
def program_list(provider: ProviderAPI, fmt: str) -> None:
    """List the programs with their treasury, validity, state and rules (same as `treasury programs`)."""
    _programs(provider, fmt)


# vendors


@cli.group(name="vendor")
def vendor_group() -> None:
    """Vendors: register (or move to another category), suspend, reactivate."""


@command(vendor_group, name="register", role="VENDOR_REGISTRAR_ROLE")
@click.argument("address", type=ADDRESS_OR_ALIAS, required=False)
@click.option("--category", type=CATEGORY, help="Merchant category name or code (e.g. RESTAURANT).")
@click.option("--name", "vendor_name", help="The vendor's business name.")
@click.option("--csv", "csv_path", type=CSV_FILE, help="Register every row of a CSV: address,category,name.")
def vendor_register(
    provider: ProviderAPI,
    account: AccountAPI | None,
    address: str | None,
    category: Category | None,
    vendor_name: str | None,
    csv_path: Path | None,
) -> None:
    """Register ADDRESS as a vendor in a merchant category, or every vendor of a CSV file."""
    _exclusive(address, csv_path, "ADDRESS (with --category and --name)")
    if csv_path is None and (category is None or not vendor_name):
        raise click.UsageError("registering one vendor needs --category and --name")
    chain, account = _setup(provider, account, "VENDOR_REGISTRAR_ROLE")
    if csv_path is not None:
        _bulk(chain, account, bulk.vendor_calls(chain, csv_path, "register"), "register vendors")
        return
    assert address is not None and category is not None and vendor_name is not None  # checked above
    receipt = actions.register_vendor(chain, account, address, category, vendor_name)
    _done("Vendor registered", [("vendor", address), ("category", category.name), ("name", vendor_name)], receipt)


def _vendor_suspension(
    provider: ProviderAPI,
    account: AccountAPI | None,
    address: str | None,
    csv_path: Path | None,
    reason: str,
    suspended: bool,
) -> None:
    _exclusive(address, csv_path, "ADDRESS")
    action = "suspend" if suspended else "reactivate"
    chain, account = _setup(provider, account, "COMPLIANCE_ROLE")
    if csv_path is not None:
        _bulk(chain, account, bulk.vendor_calls(chain, csv_path, action, reason), f"{action} vendors")
        return
    assert address is not None  # _exclusive: the address or the file
    receipt = actions.set_vendor_suspended(chain, account, address, suspended, reason)
    _done(f"Vendor {'suspended' if suspended else 'reactivated'}", [("vendor", address), ("reason", reason)], receipt)


def _suspension_options(verb: str) -> Callable[[Callable[..., Any]], Callable[..., Any]]:
    """ADDRESS | --csv FILE, and --reason: what `vendor suspend` and `vendor reactivate` take."""

    def decorate(fn: Callable[..., Any]) -> Callable[..., Any]:
        fn = click.option("--reason", required=True, help="Why (recorded on-chain).")(fn)
        fn = click.option(
            "--csv", "csv_path", type=CSV_FILE, help=f"{verb} every vendor of a CSV (address[,category,name])."
        )(fn)
        return click.argument("address", type=ADDRESS_OR_ALIAS, required=False)(fn)

    return decorate


@command(vendor_group, name="suspend", role="COMPLIANCE_ROLE")
@_suspension_options("Suspend")
def vendor_suspend(
    provider: ProviderAPI, account: AccountAPI | None, address: str | None, csv_path: Path | None, reason: str
) -> None:
    """Suspend a vendor (or every vendor of a CSV file): it cannot be paid until reactivated."""
    _vendor_suspension(provider, account, address, csv_path, reason, True)


@command(vendor_group, name="reactivate", role="COMPLIANCE_ROLE")
@_suspension_options("Reactivate")
def vendor_reactivate(
    provider: ProviderAPI, account: AccountAPI | None, address: str | None, csv_path: Path | None, reason: str
) -> None:
    """Lift a vendor's suspension (or those of every vendor of a CSV file)."""
    _vendor_suspension(provider, account, address, csv_path, reason, False)


# spenders and money


@command(cli, role="PROGRAM_MANAGER_ROLE")
@click.argument("address", type=ADDRESS_OR_ALIAS, required=False)
@click.option("--program", help="Program id or name.")
@click.option("--department", help="Department code (text of at most 32 bytes, or 0x + 64 hex digits).")
@click.option("--csv", "csv_path", type=CSV_FILE, help="Enrol every row of a CSV: address,program,department.")
def enrol(
    provider: ProviderAPI,
    account: AccountAPI | None,
    address: str | None,
    program: str | None,
    department: str | None,
    csv_path: Path | None,
) -> None:
    """Enrol a spender (official or subsidy recipient) in a program, or every row of a CSV file."""
    _exclusive(address, csv_path, "ADDRESS (with --program and --department)")
    chain, account = _setup(provider, account, "PROGRAM_MANAGER_ROLE")
    if csv_path is not None:
        _bulk(chain, account, bulk.enrol_calls(chain, csv_path), "enrol spenders")
        return
    if program is None or department is None:
        raise click.UsageError("enrolling one spender needs --program and --department")
    assert address is not None  # _exclusive: the address or the file
    info = context.resolve_program(chain, program)
    code = bytes32_text(department, "department code")
    receipt = actions.enrol_one(chain, account, address, info.id, code)
    _done("Spender enrolled", [("spender", address), ("program", info.label), ("department", department)], receipt)


@command(cli, role="PROGRAM_MANAGER_ROLE")
@click.argument("spender", type=ADDRESS_OR_ALIAS)
@click.argument("amount", type=AMOUNT)
@click.option("--program", required=True, help="Program id or name (its treasury pays).")
@click.option(
    "--ref",
    "reference",
    required=True,
    help="Reference of this allocation (e.g. the budget decision number, or 0x + 64 hex digits); a "
    "reference is applied once, ever, so re-running the command cannot pay twice.",
)
def allocate(
    provider: ProviderAPI, account: AccountAPI | None, spender: str, amount: int, program: str, reference: str
) -> None:
    """Allocate AMOUNT KRW from a program's treasury to one enrolled SPENDER."""
    chain, account = _setup(provider, account, "PROGRAM_MANAGER_ROLE")
    info = context.resolve_program(chain, program)
    ref = reference_bytes(reference, "deposit-token/allocate/v1")
    receipt = actions.allocate_one(chain, account, ref, info.id, spender, amount)
    _done(
        f"Allocated {amount:,} KRW",
        [
            ("spender", spender),
            ("program", info.label),
            ("reference", f"{reference} (0x{ref.hex()})"),
            ("spender balance", f"{int(chain.token.balanceOf(spender)):,} KRW"),
        ],
        receipt,
    )


@command(cli, role="PROGRAM_MANAGER_ROLE")
@click.argument("csv_path", metavar="FILE.csv", type=CSV_FILE)
@click.option("--program", required=True, help="Program id or name whose treasury pays.")
@click.option(
    "--batch-size",
    type=click.IntRange(1, disbursal.MAX_BATCH_SIZE),
    default=None,
    help=f"Rows per allocate transaction [default: {disbursal.DEFAULT_BATCH_SIZE}; a resumed run keeps the journal's].",
)
@click.option(
    "--window",
    type=click.IntRange(1, 1000),
    default=disbursal.DEFAULT_WINDOW,
    show_default=True,
    help="Batches sent per round (each round is journalled when its receipts are in).",
)
@click.option(
    "--journal",
    "journal_path",
    type=click.Path(dir_okay=False, path_type=Path),
    help="Journal file [default: FILE.csv.journal.jsonl next to the file].",
)
@click.option("--check", "check_only", is_flag=True, help="Check the file and the chain; send nothing.")
def disburse(
    provider: ProviderAPI,
    account: AccountAPI | None,
    csv_path: Path,
    program: str,
    batch_size: int | None,
    window: int,
    journal_path: Path | None,
    check_only: bool,
) -> None:
    """Pay every row of FILE.csv (address,amount[,reference]) from a program's treasury.

    The whole file is checked first (every bad row reported with its line number; nothing is sent if any).
    Rows go out in batches with references derived from the file, which the contract applies once, ever:
    re-running after a crash or Ctrl-C pays exactly the rows not yet paid.
    """
    chain, account = _setup(provider, account, "PROGRAM_MANAGER_ROLE")
    out = console()
    with out.status(f"checking {csv_path} against the chain"):
        plan = disbursal.prepare(
            chain, csv_path, program, str(account.address), batch_size=batch_size, journal_path=journal_path
        )
    if plan.problems:
        _print_problems(plan.problems, csv_path)
        raise click.ClickException(f"{csv_path}: {len(plan.problems)} problem(s); nothing was sent")
    done_rows = sum(len(b.rows) for b in plan.done)
    history = plan.history
    rows = [
        ("file", f"{csv_path} (sha256 {plan.parsed.sha256[:16]}...)"),
        ("program", plan.program.label),
        ("treasury", f"{plan.program.treasury} ({plan.treasury_balance:,} KRW)"),
        ("rows", f"{len(plan.parsed.rows):,} totalling {plan.total:,} KRW"),
        ("batches", f"{len(plan.batches)} of up to {plan.batch_size} rows"),
        (
            "already applied",
            f"{len(plan.done)} batch(es), {done_rows:,} rows"
            + (
                f" (journal: {len(history.confirmed)} confirmed in {history.runs} earlier run(s))"
                if history.runs
                else ""
            ),
        ),
        (
            "to send",
            f"{len(plan.pending)} batch(es), {sum(len(b.rows) for b in plan.pending):,} rows, "
            f"{sum(b.total for b in plan.pending):,} KRW",
        ),
        ("journal", str(plan.journal.path)),
    ]
    record = deployment.load_record(deployment.record_path(deployment.network_name(provider)))
    policy = large_disbursals.large_disbursal(record)
    if large_disbursals.applies(policy, plan.total) and policy is not None:
        rows.append(("policy", f"above {policy.above:,} KRW: paid only through the {policy.safe} Safe"))
    out.print(_table("Disbursal checked: no problems", rows))
    for note in disbursal.notes(plan):
        out.print(note, highlight=False)
    if check_only:
        out.print("--check: nothing was sent")
        return
    if isinstance(account, SafeProposer):  # --propose: the pending batches as one Safe transaction
        large_disbursals.propose(chain, plan, account, multi_send_of(record), policy)
    refused = large_disbursals.refusal(policy, plan.total, str(account.address))
    if refused is not None and plan.pending:
        raise click.ClickException(refused)
    if not plan.pending:
        disbursal.disburse(chain, plan, _local_signer(account))  # journals "complete"
        out.print(f"every row of {csv_path} was already paid; nothing to send")
        return
    signer = _local_signer(account)
    # ape's SIGINT handler exits at once; while paying, Ctrl-C must reach the journal as KeyboardInterrupt.
    previous = signal.signal(signal.SIGINT, signal.default_int_handler)
    try:
        with _progress() as bar:
            task = bar.add_task("paying", total=sum(len(b.rows) for b in plan.pending))
            report = disbursal.disburse(
                chain,
                plan,
                signer,
                window=window,
                progress=lambda done, total: bar.update(task, completed=done, total=total),
            )
    except KeyboardInterrupt:
        console().print(
            "interrupted; re-run the same command to resume: batches already applied are skipped, so "
            "nobody is paid twice",
            style="yellow",
        )
        raise click.exceptions.Exit(130) from None
    except SubmitError as err:
        raise click.ClickException(
            f"{one_line(err)}; re-run the same command to resume: batches already applied are skipped"
        ) from None
    finally:
        signal.signal(signal.SIGINT, previous)
    missing = disbursal.verify(chain, plan)
    rate = report.rows_paid / report.seconds if report.seconds else 0.0
    summary = [
        (
            "paid in this run",
            f"{len(report.confirmed)} batch(es), {report.rows_paid:,} rows, "
            f"{report.amount_paid:,} KRW in {report.seconds:.1f} s ({rate:,.0f} recipients/s)",
        ),
        ("applied before this run", f"{report.applied_before + len(report.raced)} batch(es)"),
        ("failed", str(len(report.failed))),
        ("treasury balance", f"{int(chain.token.balanceOf(plan.program.treasury)):,} KRW"),
    ]
    for batch, error in report.failed:
        summary.append((f"batch {batch.index} (lines {batch.lines})", f"[red]{error}[/]"))
    out.print(_table("Disbursal", summary))
    if missing:
        raise click.ClickException(
            f"{len(missing)} batch(es) are not applied yet; fix the cause above and re-run "
            "the same command (applied batches are skipped)"
        )
    out.print(f"complete: every row of {csv_path} is paid, each exactly once")


# compliance


def _freeze(provider: ProviderAPI, account: AccountAPI | None, address: str, reason: str, frozen: bool) -> None:
    chain, account = _setup(provider, account, "COMPLIANCE_ROLE")
    receipt = actions.set_frozen(chain, account, address, frozen, reason)
    _done(f"Wallet {'frozen' if frozen else 'unfrozen'}", [("account", address), ("reason", reason)], receipt)


@command(cli, role="COMPLIANCE_ROLE")
@click.argument("address", type=ADDRESS_OR_ALIAS)
@click.option("--reason", required=True, help="Why (recorded on-chain).")
def freeze(provider: ProviderAPI, account: AccountAPI | None, address: str, reason: str) -> None:
    """Freeze a registered account: it can neither send nor receive."""
    _freeze(provider, account, address, reason, True)


@command(cli, role="COMPLIANCE_ROLE")
@click.argument("address", type=ADDRESS_OR_ALIAS)
@click.option("--reason", required=True, help="Why (recorded on-chain).")
def unfreeze(provider: ProviderAPI, account: AccountAPI | None, address: str, reason: str) -> None:
    """Unfreeze an account."""
    _freeze(provider, account, address, reason, False)


@command(cli, role="COMPLIANCE_ROLE")
@click.argument("spender", type=ADDRESS_OR_ALIAS)
@click.argument("amount", type=AMOUNT)
@click.option("--reason", required=True, help="Why (recorded on-chain with the claw-back).")
def clawback(provider: ProviderAPI, account: AccountAPI | None, spender: str, amount: int, reason: str) -> None:
    """Move AMOUNT KRW of a spender's balance back to its program's treasury (works on frozen wallets)."""
    chain, account = _setup(provider, account, "COMPLIANCE_ROLE")
    receipt = actions.clawback(chain, account, spender, amount, reason)
    _done(
        f"Clawed back {amount:,} KRW",
        [
            ("spender", spender),
            ("reason", reason),
            ("spender balance", f"{int(chain.token.balanceOf(spender)):,} KRW"),
        ],
        receipt,
    )


@command(cli)
@click.option("--program", help="Sweep every spender ever enrolled in this program (id or name).")
@click.option("--csv", "csv_path", type=CSV_FILE, help="Sweep the spenders of a CSV (column address).")
@click.option(
    "--from-block",
    type=click.IntRange(0),
    default=None,
    help="First block to read enrolments from [default: the deployment's block].",
)
def sweep(
    provider: ProviderAPI,
    account: AccountAPI | None,
    program: str | None,
    csv_path: Path | None,
    from_block: int | None,
) -> None:
    """Return the balances of spenders of ended programs to their treasuries (anyone may do it)."""
    if (program is None) == (csv_path is None):
        raise click.UsageError("give either --program or --csv FILE")
    chain, account = _setup(provider, account, None)
    if from_block is None:
        from_block = deployment_block(provider)
    program_id = context.resolve_program(chain, program).id if program is not None else None
    targets = bulk.sweep_targets(chain, program_id=program_id, path=csv_path, from_block=from_block)
    total = sum(t.balance for t in targets)
    console().print(f"{len(targets)} spender(s) with a balance, {total:,} KRW to sweep")
    _bulk(chain, account, bulk.sweep_calls(targets), "sweep")


def _pause(provider: ProviderAPI, account: AccountAPI | None, program: str | None, paused: bool) -> None:
    chain, account = _setup(provider, account, "COMPLIANCE_ROLE")
    info = context.resolve_program(chain, program) if program is not None else None
    receipt = actions.set_paused(chain, account, paused, info.id if info else None)
    what = f"Program {info.label}" if info else "Token"
    _done(f"{what} {'paused' if paused else 'unpaused'}", [("scope", what.lower())], receipt)


@command(cli, role="COMPLIANCE_ROLE")
@click.option("--program", help="Pause only this program (id or name); default: the whole token.")
def pause(provider: ProviderAPI, account: AccountAPI | None, program: str | None) -> None:
    """Pause every movement of tokens, or one program's payments and allocations."""
    _pause(provider, account, program, True)


@command(cli, role="COMPLIANCE_ROLE")
@click.option("--program", help="Unpause only this program (id or name); default: the whole token.")
def unpause(provider: ProviderAPI, account: AccountAPI | None, program: str | None) -> None:
    """Lift the token-wide pause, or one program's."""
    _pause(provider, account, program, False)


# listings


@read_command(cli, name="programs")
def programs(provider: ProviderAPI, fmt: str) -> None:
    """List the programs with their treasury, validity (KST), state and rules."""
    _programs(provider, fmt)


@read_command(cli, name="vendors")
def vendors(provider: ProviderAPI, fmt: str) -> None:
    """List the registered vendors: name, merchant category, state (suspended, frozen) and balance."""
    chain = _connect(provider)
    rows = listing.vendors(chain.rpc, chain.address, deployment_block(provider))
    _print_listing("Vendors", rows, listing.VENDOR_COLUMNS, fmt)


@read_command(cli, name="spenders")
@click.option("--program", help="Only the spenders of this program (id or name).")
def spenders(provider: ProviderAPI, fmt: str, program: str | None) -> None:
    """List the enrolled spenders (officials, subsidy recipients): program, department, state and balance."""
    chain = _connect(provider)
    info = context.resolve_program(chain, program) if program is not None else None
    names = {p.id: p.name for p in context.list_programs(chain)}
    rows = listing.spenders(chain.rpc, chain.address, deployment_block(provider), names, info.id if info else None)
    _print_listing(f"Spenders of {info.label}" if info else "Spenders", rows, listing.SPENDER_COLUMNS, fmt)


@read_command(cli, name="treasuries")
def treasuries(provider: ProviderAPI, fmt: str) -> None:
    """List the registered treasuries: the programs each pays, state and balance."""
    chain = _connect(provider)
    rows = listing.treasuries(chain.rpc, chain.address, deployment_block(provider), listing.programs(chain))
    _print_listing("Treasuries", rows, listing.TREASURY_COLUMNS, fmt)


def _roles(provider: ProviderAPI, fmt: str) -> None:
    chain = _connect(provider)
    rows = listing.role_holders(chain.rpc, chain.address, deployment_block(provider))
    notes = [f"nobody holds: {', '.join(listing.role_label(r) for r in listing.roles_without_holder(rows))}"]
    notes = notes if listing.roles_without_holder(rows) else []
    _print_listing("Role holders", rows, listing.ROLE_COLUMNS, fmt, [*notes, _handover_line(access.handover(chain))])


@read_command(cli, name="roles")
def roles(provider: ProviderAPI, fmt: str) -> None:
    """List who holds each role (from the token's RoleGranted/RoleRevoked events, checked with hasRole)."""
    _roles(provider, fmt)


# roles


@cli.group(name="role")
def role_group() -> None:
    """Grant, revoke and list roles; hand the admin role over in two steps.

    ROLE is one of admin, issuer, program-manager, vendor-registrar, compliance (or the contract's name, e.g.
    ISSUER_ROLE). The admin role is not granted: it moves by `role handover begin` and `role handover accept`.
    """


def _role_change(provider: ProviderAPI, account: AccountAPI | None, role: str, address: str, grant: bool) -> None:
    chain, account = _setup(provider, account, "DEFAULT_ADMIN_ROLE")
    receipt = (access.grant if grant else access.revoke)(chain, account, role, address)
    label = listing.role_label(role)
    if receipt is None:
        console().print(f"{address} {'already holds' if grant else 'does not hold'} {label}; nothing was sent")
        return
    verb = "granted" if grant else "revoked"
    _done(f"Role {verb}", [("role", label), ("account", address), (f"{verb} by", account.address)], receipt)


@command(role_group, name="grant", role="DEFAULT_ADMIN_ROLE")
@click.argument("role", type=ROLE)
@click.argument("address", type=ADDRESS_OR_ALIAS)
def role_grant(provider: ProviderAPI, account: AccountAPI | None, role: str, address: str) -> None:
    """Grant ROLE to ADDRESS (an address or an ape account alias); the admin signs."""
    _role_change(provider, account, role, address, grant=True)


@command(role_group, name="revoke", role="DEFAULT_ADMIN_ROLE")
@click.argument("role", type=ROLE)
@click.argument("address", type=ADDRESS_OR_ALIAS)
def role_revoke(provider: ProviderAPI, account: AccountAPI | None, role: str, address: str) -> None:
    """Revoke ROLE from ADDRESS; the admin signs."""
    _role_change(provider, account, role, address, grant=False)


@read_command(role_group, name="list")
def role_list(provider: ProviderAPI, fmt: str) -> None:
    """List who holds each role (same as `treasury roles`)."""
    _roles(provider, fmt)


@role_group.group(name="handover")
def handover_group() -> None:
    """The admin's two-step handover: begin (admin), accept (new admin, after the delay), cancel, show."""


def _handover_line(state: access.Handover) -> str:
    if state.pending is None:
        return f"admin: {state.admin}; no handover pending (handover delay: {access.duration(state.delay)})"
    when = "now" if state.acceptable else f"after {display.moment(state.accept_after)}"
    return f"admin: {state.admin}; handover pending to {state.pending}, who can accept {when}"


def _handover_rows(state: access.Handover) -> list[tuple[str, Any]]:
    rows: list[tuple[str, Any]] = [("admin", state.admin), ("delay", access.duration(state.delay))]
    if state.pending is None:
        return [*rows, ("pending handover", "none")]
    return [
        *rows,
        ("pending admin", state.pending),
        ("can accept", "now" if state.acceptable else f"after {display.moment(state.accept_after)}"),
        ("chain time", display.moment(state.now)),
    ]


@read_command(handover_group, name="show")
def handover_show(provider: ProviderAPI, fmt: str) -> None:
    """Show the admin, the handover delay and the pending handover, if any."""
    state = access.handover(_connect(provider))
    if fmt == "table":
        console().print(_table("Admin handover", _handover_rows(state)))
        return
    fields = {
        "admin": state.admin,
        "delay_seconds": state.delay,
        "pending_admin": state.pending,
        "accept_after": listing.iso(state.accept_after) if state.pending else None,
        "chain_time": listing.iso(state.now),
    }
    columns = [listing.Column(key, itemgetter(key)) for key in fields]
    click.echo(listing.as_json([fields], columns) if fmt == "json" else listing.as_csv([fields], columns), nl=False)


@command(handover_group, name="begin", role="DEFAULT_ADMIN_ROLE")
@click.argument("new_admin", metavar="NEW_ADMIN", type=ADDRESS_OR_ALIAS)
def handover_begin(provider: ProviderAPI, account: AccountAPI | None, new_admin: str) -> None:
    """Start handing the admin role to NEW_ADMIN, who accepts after the token's delay (replaces a pending one)."""
    chain, account = _setup(provider, account, "DEFAULT_ADMIN_ROLE")
    before = access.handover(chain)
    receipt = access.begin_handover(chain, account, new_admin)
    state = access.handover(chain)
    rows = _handover_rows(state)
    if before.pending is not None and before.pending != state.pending:
        rows.append(("replaced", f"the handover to {before.pending}"))
    rows.append(("next", "the new admin runs `ape run treasury role handover accept`"))
    _done("Admin handover begun", rows, receipt)


@command(handover_group, name="accept", propose_as="DEFAULT_ADMIN_ROLE")
def handover_accept(provider: ProviderAPI, account: AccountAPI | None) -> None:
    """Accept the admin role (run by the pending admin, after the delay); the old admin loses it."""
    chain = _connect(provider)
    pending = access.handover(chain).pending
    account = _signer_account(
        provider, account, None, chain, wanted=("the pending admin", lambda address: address == pending)
    )
    receipt = access.accept_handover(chain, account)
    _done("Admin handover accepted", [("admin", access.handover(chain).admin)], receipt)


_ACCEPT_ACCOUNT = next(p for p in handover_accept.params if isinstance(p, click.Option) and p.name == "account")
_ACCEPT_ACCOUNT.help = (
    "Alias of the ape account of the pending admin, which signs; TEST::n for test accounts. "
    "Default on local development networks: the test account that is the pending admin."
)


@command(handover_group, name="cancel", role="DEFAULT_ADMIN_ROLE")
def handover_cancel(provider: ProviderAPI, account: AccountAPI | None) -> None:
    """Cancel the pending admin handover (the admin signs)."""
    chain, account = _setup(provider, account, "DEFAULT_ADMIN_ROLE")
    cancelled, receipt = access.cancel_handover(chain, account)
    if receipt is None:
        console().print("no admin handover is pending; nothing was sent")
        return
    _done(
        "Admin handover cancelled",
        [("cancelled", f"the handover to {cancelled}"), ("admin", access.handover(chain).admin)],
        receipt,
    )

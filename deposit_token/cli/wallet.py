"""An official's wallet: see what is left to spend, pay a vendor (explained if it would fail), or sign a
payment offline for the vendor's terminal to collect.

    ape run wallet balance --account kim-moef
    ape run wallet pay "Hanok Table" 45,000 --receipt INV-2026-0042 --account kim-moef
    ape run wallet authorize 0xVendor 45000 --receipt 1001 --valid-for 15 --out pay.json --account kim-moef
    ape run wallet cancel pay.json --account kim-moef

--network defaults to the pilot network (ethereum:pilot:node) while its node runs.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

import click
from ape.cli import account_option
from rich.table import Table

from deposit_token.cli.common import (
    AMOUNT,
    EVIDENCE,
    RECEIPT,
    VENDOR,
    ZERO32,
    ConnectedProviderCommand,
    Receipt,
    checked_send,
    console,
    deployed_token,
    fail,
    network_option,
    read_authorization,
    unattended,
    vendor_address,
)
from deposit_token.domain import display
from deposit_token.domain.rules import WEEKDAYS
from deposit_token.ops.authorization import (
    Domain,
    PaymentAuthorization,
    new_nonce,
    sign_authorization,
    sign_cancellation,
)
from deposit_token.ops.wallet import wallet_view, why_not

if TYPE_CHECKING:
    from ape.api import AccountAPI

NO_CAP = 2**48 - 1  # a category cap of type(uint48).max means "no cap"
VENDOR_HELP = "VENDOR is the vendor's address, the name it was registered under, or an ape account alias."
RECEIPT_HELP = (
    "The vendor's invoice number: a plain number (cheapest for sequential invoices), text such as "
    "INV-2026-0042 (at most 32 bytes, readable on-chain) or 0x + 64 hex digits."
)


@click.group()
def cli() -> None:
    """An official's wallet: balance and limits, payments, signed (gasless) payments."""


@cli.command(cls=ConnectedProviderCommand)
@network_option()
@account_option()
def balance(account: AccountAPI) -> None:
    """Balance, program, validity, allowed hours and the cap left per category this month."""
    unattended(account)
    token = deployed_token()
    try:
        view = wallet_view(token, account.address)
    except ValueError as error:
        raise click.ClickException(str(error)) from None
    out = console()
    offset = view.utc_offset_minutes
    out.print(
        f"[bold]{display.address(view.address)}[/]  balance [bold]{display.krw(view.balance)}[/]"
        + ("  [red]FROZEN[/]" if view.frozen else "")
    )
    out.print(
        f"program {view.program_name!r} (#{view.program_id}), department {view.department or '-'}, valid "
        f"{display.moment(view.start, offset)} to {display.moment(view.end, offset)}"
    )
    out.print(
        f"hours ({display.zone_name(offset)}): "
        + ", ".join(
            f"{WEEKDAYS[d]} {o:02d}-{c:02d}" if o < c else f"{WEEKDAYS[d]} closed"
            for d, (o, c) in enumerate(view.hours)
        )
    )
    out.print(
        f"per payment up to {display.krw(view.per_payment_limit)}; evidence needed from "
        f"{display.krw(view.evidence_threshold)}"
    )
    table = Table(title=f"Caps in {display.period(view.period)}")
    for column in ("category", "spent", "cap", "left"):
        table.add_column(column, justify="right" if column != "category" else "left")
    for limit in view.limits:
        capped = limit.cap < NO_CAP
        table.add_row(
            limit.category,
            f"{limit.spent:,}",
            f"{limit.cap:,}" if capped else "no cap",
            f"{limit.left:,}" if capped else "-",
        )
    out.print(table)


def _vendor_label(vendor_given: str, vendor: str) -> str:
    """`Hanok Table (0xAb…)` when the official named the vendor, else the checksummed address."""
    address = display.address(vendor)
    return address if vendor_given.lower().startswith("0x") else f"{vendor_given} ({address})"


def _receipt_label(receipt: Receipt) -> str:
    return f" for receipt {receipt.text}" if receipt.given else ""


@cli.command(cls=ConnectedProviderCommand, epilog=VENDOR_HELP)
@network_option()
@account_option()
@click.argument("vendor", type=VENDOR)
@click.argument("amount", type=AMOUNT)
@click.option("--receipt", type=RECEIPT, default="0", help=RECEIPT_HELP + " 0 = none.")
@click.option(
    "--evidence",
    type=EVIDENCE,
    default=None,
    help="Evidence document (its SHA-256 is recorded) or a 0x hash; needed at or above the threshold.",
)
def pay(account: AccountAPI, vendor: str, amount: int, receipt: Receipt, evidence: bytes | None) -> None:
    """Pay VENDOR AMOUNT KRW (AMOUNT: 45000 or 45,000). The payment is checked first; if a rule would refuse
    it, nothing is sent and the rule is explained."""
    unattended(account)
    token = deployed_token()
    address = vendor_address(token, vendor)
    args = (address, amount, receipt.id, evidence or ZERO32)
    receipt_ = checked_send(token, "pay", args, account, "not sent")
    event = next(e for e in receipt_.events if e.event_name == "Payment")
    console().print(
        f"paid {display.krw(amount)} to {_vendor_label(vendor, address)}{_receipt_label(receipt)} "
        f"in tx {receipt_.txn_hash} (block {receipt_.block_number}); left in this category for "
        f"{display.period(event.period)}: {display.krw(event.capLeft)}"
    )


@cli.command(cls=ConnectedProviderCommand, epilog=VENDOR_HELP)
@network_option()
@account_option()
@click.argument("vendor", type=VENDOR)
@click.argument("amount", type=AMOUNT)
@click.option("--receipt", type=RECEIPT, default="0", help=RECEIPT_HELP)
@click.option("--evidence", type=EVIDENCE, default=None, help="Evidence document or 0x hash.")
@click.option(
    "--valid-for",
    type=click.IntRange(1, 7 * 24 * 60),
    default=15,
    show_default=True,
    help="Minutes the vendor has to collect it.",
)
@click.option(
    "--out",
    type=click.Path(dir_okay=False, path_type=Path),
    required=True,
    help="Where to write the signed authorization (JSON; it holds no secret).",
)
def authorize(
    account: AccountAPI, vendor: str, amount: int, receipt: Receipt, evidence: bytes | None, valid_for: int, out: Path
) -> None:
    """Sign a payment offline for VENDOR to collect (`ape run vendor collect`): the official needs no gas,
    only the vendor named can submit it, and it works once."""
    unattended(account)
    from ape import chain

    token = deployed_token()
    address = vendor_address(token, vendor)
    now = chain.pending_timestamp
    auth = PaymentAuthorization(
        payer=account.address,
        vendor=address,
        amount=amount,
        receipt_id="0x" + receipt.id.hex(),
        evidence_hash="0x" + (evidence or ZERO32).hex(),
        valid_after=now - 60,
        valid_before=now + valid_for * 60,
        nonce=new_nonce(),
        receipt_text=receipt.text if receipt.given else "",
    )
    reason = why_not(token, "pay", (address, amount, receipt.id, evidence or ZERO32), account.address)
    if reason is not None:
        raise click.ClickException(f"not signed: {reason}")
    signed = sign_authorization(auth, Domain.of(token), account)
    out.write_bytes(signed.to_json())
    console().print(
        f"signed {display.krw(amount)} to {_vendor_label(vendor, address)}{_receipt_label(receipt)}, "
        f"valid until {display.moment(auth.valid_before)}, nonce {auth.nonce}: {out}"
    )


@cli.command(cls=ConnectedProviderCommand)
@network_option()
@account_option()
@click.argument("authorization", type=click.Path(exists=True, dir_okay=False, path_type=Path))
def cancel(account: AccountAPI, authorization: Path) -> None:
    """Cancel an unused signed payment (AUTHORIZATION is the file `authorize` wrote)."""
    unattended(account)
    token = deployed_token()
    signed = read_authorization(authorization)
    payer, nonce = signed.authorization.payer, signed.authorization.nonce
    if payer != account.address:
        raise click.ClickException(
            f"{authorization} was signed by {display.address(payer)}, not by {display.address(account.address)}"
        )
    # The contract would refuse; asking first keeps ape's trace of the failed transaction off the screen.
    if token.authorizationState(payer, bytes.fromhex(nonce[2:])):
        raise click.ClickException(f"not cancelled: authorization {nonce} has already been used or cancelled")
    try:
        v, r, s = sign_cancellation(payer, nonce, Domain.of(token), account)
        receipt = token.cancelAuthorization(payer, bytes.fromhex(nonce[2:]), v, r, s, sender=account)
    except Exception as error:  # noqa: BLE001 - a rule can change between the check and the block
        fail(error, token)
    console().print(f"cancelled authorization {nonce} in tx {receipt.txn_hash}")

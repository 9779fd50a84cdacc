"""An official's wallet: see what is left to spend, pay a vendor (explained if it would fail), or sign a
payment offline for the vendor's terminal to collect.

    ape run wallet balance --network ethereum:pilot:node --account kim-moef
    ape run wallet pay 0xVendor 45000 --receipt 1001 --account kim-moef
    ape run wallet authorize 0xVendor 45000 --receipt 1001 --valid-for 15 --out pay.json --account kim-moef
    ape run wallet cancel pay.json --account kim-moef
"""

from __future__ import annotations

from datetime import datetime, timedelta, timezone
from pathlib import Path

import click
from ape.cli import account_option
from rich.table import Table

from deposit_token.authorization import (
    Domain, PaymentAuthorization, SignedAuthorization, new_nonce, sign_authorization, sign_cancellation,
)
from deposit_token.cli import (
    ADDRESS, AMOUNT, EVIDENCE, RECEIPT, ZERO32, ConnectedProviderCommand, checked_send, console, deployed_token,
    fail, network_option, unattended,
)
from deposit_token.rules import WEEKDAYS
from deposit_token.wallet import wallet_view, why_not


@click.group()
def cli():
    """An official's wallet: balance and limits, payments, signed (gasless) payments."""


def _local(timestamp: int, offset: int) -> str:
    return datetime.fromtimestamp(timestamp, timezone(timedelta(minutes=offset))).strftime("%Y-%m-%d %H:%M %z")


@cli.command(cls=ConnectedProviderCommand)
@network_option()
@account_option()
def balance(account):
    """Balance, program, validity, allowed hours and the cap left per category this month."""
    unattended(account)
    token = deployed_token()
    try:
        view = wallet_view(token, account.address)
    except ValueError as error:
        raise click.ClickException(str(error)) from None
    out = console()
    out.print(f"[bold]{view.address}[/]  balance [bold]{view.balance:,} KRW[/]"
              + ("  [red]FROZEN[/]" if view.frozen else ""))
    out.print(f"program {view.program_name!r} (#{view.program_id}), department {view.department or '-'}, valid "
              f"{_local(view.start, view.utc_offset_minutes)} to {_local(view.end, view.utc_offset_minutes)}")
    out.print("hours: " + ", ".join(f"{WEEKDAYS[d]} {o:02d}-{c:02d}" if o < c else f"{WEEKDAYS[d]} closed"
                                      for d, (o, c) in enumerate(view.hours)))
    out.print(f"per payment up to {view.per_payment_limit:,} KRW; evidence needed from "
              f"{view.evidence_threshold:,} KRW")
    table = Table(title=f"Caps in {view.period // 100}-{view.period % 100:02d}")
    for column in ("category", "spent", "cap", "left"):
        table.add_column(column, justify="right" if column != "category" else "left")
    for limit in view.limits:
        cap = "no cap" if limit.cap >= 2**48 - 1 else f"{limit.cap:,}"
        left = "-" if limit.cap >= 2**48 - 1 else f"{limit.left:,}"
        table.add_row(limit.category, f"{limit.spent:,}", cap, left)
    out.print(table)


@cli.command(cls=ConnectedProviderCommand)
@network_option()
@account_option()
@click.argument("vendor", type=ADDRESS)
@click.argument("amount", type=AMOUNT)
@click.option("--receipt", type=RECEIPT, default="0", help="The vendor's invoice number (or 0x + 32 bytes); 0 = none.")
@click.option("--evidence", type=EVIDENCE, default=None,
              help="Evidence document (its SHA-256 is recorded) or a 0x hash; needed at or above the threshold.")
def pay(account, vendor, amount, receipt, evidence):
    """Pay VENDOR AMOUNT KRW. The payment is checked first; if a rule would refuse it, nothing is sent and
    the rule is explained."""
    unattended(account)
    token = deployed_token()
    args = (vendor, amount, receipt, evidence or ZERO32)
    receipt_ = checked_send(token, "pay", args, account, "not sent")
    event = next(e for e in receipt_.events if e.event_name == "Payment")
    console().print(f"paid {amount:,} KRW to {vendor} in tx {receipt_.txn_hash} (block {receipt_.block_number}); "
                    f"left in this category for {event.period}: {event.capLeft:,} KRW")


@cli.command(cls=ConnectedProviderCommand)
@network_option()
@account_option()
@click.argument("vendor", type=ADDRESS)
@click.argument("amount", type=AMOUNT)
@click.option("--receipt", type=RECEIPT, default="0", help="The vendor's invoice number (or 0x + 32 bytes).")
@click.option("--evidence", type=EVIDENCE, default=None, help="Evidence document or 0x hash.")
@click.option("--valid-for", type=click.IntRange(1, 7 * 24 * 60), default=15, show_default=True,
              help="Minutes the vendor has to collect it.")
@click.option("--out", type=click.Path(dir_okay=False, path_type=Path), required=True,
              help="Where to write the signed authorization (JSON; it holds no secret).")
def authorize(account, vendor, amount, receipt, evidence, valid_for, out):
    """Sign a payment offline for VENDOR to collect (`ape run vendor collect`): the official needs no gas,
    only the vendor named can submit it, and it works once."""
    unattended(account)
    from ape import chain

    token = deployed_token()
    now = chain.pending_timestamp
    auth = PaymentAuthorization(
        payer=account.address, vendor=vendor, amount=amount, receipt_id="0x" + receipt.hex(),
        evidence_hash="0x" + (evidence or ZERO32).hex(), valid_after=now - 60, valid_before=now + valid_for * 60,
        nonce=new_nonce(),
    )
    reason = why_not(token, "pay", (vendor, amount, receipt, evidence or ZERO32), account.address)
    if reason is not None:
        raise click.ClickException(f"not signed: {reason}")
    signed = sign_authorization(auth, Domain.of(token), account)
    out.write_bytes(signed.to_json())
    console().print(f"signed {amount:,} KRW to {vendor}, valid {valid_for} min, nonce {auth.nonce}: {out}")


@cli.command(cls=ConnectedProviderCommand)
@network_option()
@account_option()
@click.argument("authorization", type=click.Path(exists=True, dir_okay=False, path_type=Path))
def cancel(account, authorization):
    """Cancel an unused signed payment (AUTHORIZATION is the file `authorize` wrote)."""
    unattended(account)
    token = deployed_token()
    try:
        signed = SignedAuthorization.from_json(authorization.read_bytes())
    except ValueError as error:
        raise click.ClickException(str(error)) from None
    payer, nonce = signed.authorization.payer, signed.authorization.nonce
    if payer != account.address:
        raise click.ClickException(f"{authorization} was signed by {payer}, not by {account.address}")
    try:
        v, r, s = sign_cancellation(payer, nonce, Domain.of(token), account)
        receipt = token.cancelAuthorization(payer, bytes.fromhex(nonce[2:]), v, r, s, sender=account)
    except Exception as error:  # noqa: BLE001
        fail(error, token)
    console().print(f"cancelled authorization {nonce} in tx {receipt.txn_hash}")

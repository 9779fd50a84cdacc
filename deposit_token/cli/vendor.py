"""A vendor's terminal: collect a payment the official signed, redeem tokens for money, list what came in.

ape run vendor collect pay.json --network ethereum:pilot:node --account hanok-table
ape run vendor redeem 1500000 --reference KB-0012-3456 --account hanok-table
ape run vendor payments --account hanok-table
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

import click
from ape.cli import account_option
from eth_utils import keccak
from rich.table import Table

from deposit_token.cli.common import (
    AMOUNT,
    NEGATIVE_NUMBERS_ARE_ARGUMENTS,
    ConnectedProviderCommand,
    checked_send,
    console,
    deployed_token,
    network_option,
    read_authorization,
    unattended,
)
from deposit_token.domain import display
from deposit_token.domain.categories import category_name
from deposit_token.domain.receipts import receipt_text

if TYPE_CHECKING:
    from ape.api import AccountAPI
    from ape.contracts import ContractInstance

REDEEMED = "Redeemed(address,bytes32,uint256,string)"


@click.group()
def cli() -> None:
    """A vendor's terminal: collect signed payments, redeem, list payments received."""


@cli.command(cls=ConnectedProviderCommand)
@network_option()
@account_option()
@click.argument("authorization", type=click.Path(exists=True, dir_okay=False, path_type=Path))
def collect(account: AccountAPI, authorization: Path) -> None:
    """Submit a payment the official signed (AUTHORIZATION: the file `ape run wallet authorize` wrote).
    Only the vendor named in it can; it is checked first and explained if a rule would refuse it."""
    unattended(account)
    token = deployed_token()
    signed = read_authorization(authorization)
    if signed.authorization.vendor != account.address:
        raise click.ClickException(
            f"this authorization pays {signed.authorization.vendor}, not {account.address}: only that vendor can "
            "collect it"
        )
    receipt = checked_send(token, "receiveWithAuthorization", signed.contract_args(), account, "not collected")
    console().print(
        f"collected {signed.authorization.amount:,} KRW from {signed.authorization.payer} in tx {receipt.txn_hash}"
    )


@cli.command(cls=ConnectedProviderCommand, context_settings=NEGATIVE_NUMBERS_ARE_ARGUMENTS)
@network_option()
@account_option()
@click.argument("amount", type=AMOUNT)
@click.option(
    "--reference",
    required=True,
    help="The settlement reference the bank pays out on (e.g. the payout instruction's id). Each "
    "reference can be redeemed against once per vendor, ever; the text is recorded on-chain.",
)
def redeem(account: AccountAPI, amount: int, reference: str) -> None:
    """Redeem AMOUNT KRW: the tokens are burned and the bank pays the amount into the vendor's account."""
    unattended(account)
    token = deployed_token()
    text = reference.strip()
    if not text:
        raise click.BadParameter("the settlement reference must not be empty", param_hint="--reference")
    settlement = keccak(text=text)  # what the contract spends: keccak256(bytes(settlementReference))
    if token.settlementReferenceUsed(account.address, settlement):
        raise click.ClickException(
            f"not redeemed: settlement reference {text!r} was already redeemed against by "
            f"{account.address}{_where_redeemed(token, account.address, settlement)}; a "
            "payout instruction is redeemed once (ask the bank for a new reference)"
        )
    receipt = checked_send(token, "redeem", (amount, text), account, "not redeemed")
    console().print(
        f"redeemed {amount:,} KRW (settlement reference {text!r} = 0x{settlement.hex()}) in tx {receipt.txn_hash}"
    )


def _where_redeemed(token: ContractInstance, vendor: str, settlement: bytes) -> str:
    """' in block N (tx 0x...)' of the earlier redemption, or '' if the node cannot say (it is only a hint)."""
    topics = ["0x" + keccak(text=REDEEMED).hex(), "0x" + vendor[2:].lower().rjust(64, "0"), "0x" + settlement.hex()]
    try:
        logs = token.provider.web3.eth.get_logs(
            {"address": token.address, "fromBlock": 0, "toBlock": "latest", "topics": topics}
        )
    except Exception:  # noqa: BLE001 - the refusal stands without the location
        return ""
    if not logs:
        return ""
    return f" in block {logs[0]['blockNumber']} (tx {logs[0]['transactionHash'].to_0x_hex()})"


@cli.command(cls=ConnectedProviderCommand)
@network_option()
@account_option()
@click.option("--from-block", type=click.IntRange(min=0), default=0, show_default=True)
def payments(account: AccountAPI, from_block: int) -> None:
    """List the payments this vendor received (from the chain's Payment events)."""
    unattended(account)
    token = deployed_token()
    table = Table(title=f"Payments to {account.address}")
    for column in ("block", "time", "payer", "program", "category", "period", "amount", "receipt", "tx"):
        table.add_column(column, overflow="fold")
    total = 0
    for log in token.Payment.range(from_block, None, search_topics={"vendor": account.address}):
        block = log.block_number
        when = display.moment(log.timestamp) if log.timestamp else ""
        table.add_row(
            str(block),
            when,
            display.address(log.payer),
            str(log.programId),
            category_name(log.category),
            display.period(log.period),
            f"{log.amount:,}",
            receipt_text(bytes(log.receiptId)),
            log.transaction_hash,
        )
        total += log.amount
    console().print(table)
    console().print(f"total received: {total:,} KRW")

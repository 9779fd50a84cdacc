"""The deployed token system as one contract object: the token's ABI joined with its admin module's.

The token forwards what it does not implement to the admin module by DELEGATECALL, so at the token's address
the callable surface is the union of both ABIs.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache
from typing import Any

from ape import chain, project
from ethpm_types import ContractType

from deposit_token.chain import abi

TOKEN_NAME = "KRW Deposit Token"
TOKEN_SYMBOL = "KRWD"


@lru_cache(maxsize=1)
def system_contract_type() -> ContractType:
    """The merged token + admin module ABI (`deposit_token.chain.abi`, shipped with the package) as ape's
    contract type, for `token_at` and calldata encoding."""
    content = abi.shipped()
    return ContractType(contractName=content["contractName"], abi=content["abi"], sourceId=content["sourceId"])


def token_at(address: str) -> Any:
    """The token at `address` with the full (token + admin module) ABI."""
    return chain.contracts.instance_at(
        address,
        contract_type=system_contract_type(),
        fetch_from_explorer=False,
        detect_proxy=False,
        replace=True,
    )


@dataclass(frozen=True)
class Deployed:
    token: Any
    module_address: str
    module_tx: str
    token_tx: str
    block: int


def deploy_system(
    sender: Any,
    admin: str | None = None,
    admin_transfer_delay: int = 0,
    name: str = TOKEN_NAME,
    symbol: str = TOKEN_SYMBOL,
) -> Deployed:
    """Deploys the admin module and the token; `admin` (default: the sender) holds DEFAULT_ADMIN_ROLE."""
    module = project.DepositTokenAdmin.deploy(name, sender=sender)
    token = project.DepositToken.deploy(
        name, symbol, admin or sender.address, admin_transfer_delay, module.address, sender=sender
    )
    receipt = chain.get_receipt(token.txn_hash)
    return Deployed(
        token=token_at(token.address),
        module_address=module.address,
        module_tx=module.txn_hash,
        token_tx=token.txn_hash,
        block=receipt.block_number,
    )

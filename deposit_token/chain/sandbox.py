"""Throwaway chains for benchmarks and simulations: a pilot-like node on a free port, and the token system
deployed and set up through the fast submission path.

`throwaway_node` runs the pilot network's node (`deposit_token.chain.node`: interval mining, zero gas price and
base fee, 1e9 block gas limit) in a temporary data directory on a free port and removes it afterwards, so a
benchmark never touches `.anvil/pilot/` or port 8545. `deploy_token` and `setup_roles` do what
tests/conftest.py does with ape, but as raw signed transactions through `deposit_token.chain.submit.Submitter`,
which is what the pilot's own tools use and much faster for thousands of accounts.
"""

from __future__ import annotations

import shutil
import tempfile
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from eth_utils import keccak

from deposit_token.chain import node
from deposit_token.chain.contracts import TOKEN_NAME, TOKEN_SYMBOL
from deposit_token.chain.submit import LocalSigner, Submitter, TxOutcome, TxRequest, encode_call, encode_deploy
from deposit_token.processes import free_port

ROLES = ("ISSUER_ROLE", "PROGRAM_MANAGER_ROLE", "VENDOR_REGISTRAR_ROLE", "COMPLIANCE_ROLE")
DEPLOY_GAS = 8_000_000


@contextmanager
def throwaway_node(genesis_timestamp: int | None = None, **settings: Any) -> Iterator[node.NetworkConfig]:
    """A pilot-like node (`node.NetworkConfig` defaults, `settings` override) in a temporary directory on a
    free port; stopped and deleted on exit. The periodic state dump is pushed out to an hour: nobody resumes
    a throwaway chain, and dumping a large state every few seconds would disturb measurements.

    `genesis_timestamp` starts the chain's clock there (unix seconds) instead of at the machine's clock: a
    simulation that sets block times (evm_setNextBlockTimestamp only goes forward) chooses it, so that it runs
    the same on any date."""
    data_dir = Path(tempfile.mkdtemp(prefix="deposit-token-node-"))
    config = node.NetworkConfig(
        data_dir=data_dir,
        genesis_timestamp=genesis_timestamp,
        **{"port": free_port(), "state_interval": 3600, **settings},
    )
    try:
        node.start(config)
        yield config
    finally:
        node.stop(config, timeout=10)
        shutil.rmtree(data_dir, ignore_errors=True)


def key_for(label: str) -> bytes:
    """A deterministic throwaway private key (for sandboxes only: anyone can derive it from the label)."""
    return keccak(text=f"deposit-token sandbox key: {label}")


def signer_for(label: str) -> LocalSigner:
    """The LocalSigner of `key_for(label)`."""
    return LocalSigner(key_for(label))


def address_for(label: str) -> str:
    """A deterministic address nobody holds a key for (spenders that never sign, e.g. allocation targets)."""
    from eth_utils import to_checksum_address

    return to_checksum_address(keccak(text=f"deposit-token sandbox address: {label}")[12:])


def checked(outcomes: Sequence[TxOutcome], what: str) -> list[TxOutcome]:
    """`outcomes`, or RuntimeError naming the first failure."""
    for outcome in outcomes:
        if not outcome.status:
            raise RuntimeError(f"{what} failed: {outcome.error}")
    return list(outcomes)


@dataclass(frozen=True)
class Token:
    address: str
    module: str
    abi: Any  # the merged contract type (`system_contract_type()`)

    def call(self, signer: LocalSigner, fn: str, *args: Any, gas: int = 1_000_000) -> TxRequest:
        """A TxRequest calling `fn(*args)` on the token."""
        return TxRequest(signer, self.address, encode_call(self.abi, fn, args), gas)


def deploy_token(submitter: Submitter, admin: LocalSigner, admin_delay: int = 0) -> Token:
    """Deploys the admin module and the token (as `contracts.deploy_system`), `admin` holding the admin role."""
    from ape import project

    from deposit_token.chain.contracts import system_contract_type

    (module,) = checked(
        submitter.submit(
            [TxRequest(admin, None, encode_deploy(project.DepositTokenAdmin.contract_type, [TOKEN_NAME]), DEPLOY_GAS)]
        ),
        "deploy",
    )
    (token,) = checked(
        submitter.submit(
            [
                TxRequest(
                    admin,
                    None,
                    encode_deploy(
                        project.DepositToken.contract_type,
                        [TOKEN_NAME, TOKEN_SYMBOL, admin.address, admin_delay, module.contract_address],
                    ),
                    DEPLOY_GAS,
                )
            ]
        ),
        "deploy",
    )
    assert token.contract_address and module.contract_address
    return Token(token.contract_address, module.contract_address, system_contract_type())


def setup_roles(
    submitter: Submitter,
    token: Token,
    admin: LocalSigner,
    holders: Mapping[str, LocalSigner],
    treasuries: Sequence[str] = (),
    mint_allowance: int = 10**13,
) -> None:
    """Grants `holders` (role name -> signer) their roles, gives the issuer a mint allowance and registers
    `treasuries`, in one submission."""
    requests = [token.call(admin, "grantRole", keccak(text=role), who.address) for role, who in holders.items()]
    if "ISSUER_ROLE" in holders:
        requests.append(token.call(admin, "setMintAllowance", holders["ISSUER_ROLE"].address, mint_allowance))
    requests += [token.call(admin, "registerTreasury", treasury) for treasury in treasuries]
    checked(submitter.submit(requests), "role setup")

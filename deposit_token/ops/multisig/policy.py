"""The large-disbursal policy (docs/SAFE.md): a disbursal file totalling more than ``above`` KRW is paid only
through the Safe the deployment record's ``policy.large_disbursal`` names (the budget office's); below it the
program manager sends alone.

The program manager's command refuses such a file before anything is sent. Proposed, the file's pending
batches become one Safe transaction (one ``allocate`` per batch, several in one MultiSendCallOnly call, which
runs all or none): the batch references are the ones a direct run would use (they depend on the file, the
program and the batch size, not on the sender), so re-running the command after the Safe executed finds every
batch applied and pays nobody twice.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, NoReturn

from eth_utils import to_checksum_address

from deposit_token.domain import display
from deposit_token.errors import DepositTokenError
from deposit_token.ops.context import Chain
from deposit_token.ops.disburse import Plan, batch_gas
from deposit_token.ops.multisig.propose import Proposed, SafeProposer, recorded_safes
from deposit_token.ops.planning import block_gas_limit

# What a Safe's execTransaction adds around the calls (signature checks, nonce, events, MultiSend's loop),
# with room to spare: the whole transaction must fit one block.
SAFE_OVERHEAD_GAS = 150_000


class PolicyError(DepositTokenError):
    """The large-disbursal policy refuses the run (the message says what to do instead)."""


@dataclass(frozen=True)
class LargeDisbursal:
    above: int
    safe: str  # the Safe's name in the deployment record
    address: str | None  # its address (None if the record does not list it)


def large_disbursal(record: Mapping[str, Any] | None) -> LargeDisbursal | None:
    """The policy of a deployment record (key ``policy.large_disbursal``), or None."""
    rule = ((record or {}).get("policy") or {}).get("large_disbursal")
    if not isinstance(rule, Mapping) or "above" not in rule or "safe" not in rule:
        return None
    name = str(rule["safe"])
    address = next((s.address for s in recorded_safes(record) if s.name == name), None)
    return LargeDisbursal(above=int(rule["above"]), safe=name, address=address)


def applies(policy: LargeDisbursal | None, total: int) -> bool:
    return policy is not None and total > policy.above


def refusal(policy: LargeDisbursal | None, total: int, sender: str) -> str | None:
    """None if `sender` may pay a file totalling `total` KRW by itself, else why not and what to do."""
    if policy is None or not applies(policy, total):
        return None
    if policy.address is not None and to_checksum_address(sender) == policy.address:
        return None
    return (
        f"the file totals {display.krw(total)}, above the large-disbursal limit of {display.krw(policy.above)} "
        f"(policy.large_disbursal of the deployment record): it is paid only through the {policy.safe} Safe; "
        "write it as a proposal for its owners with --propose FILE. Nothing was sent"
    )


def propose(
    chain: Chain, plan: Plan, proposer: SafeProposer, multi_send: str | None, policy: LargeDisbursal | None
) -> NoReturn:
    """Writes the plan's pending batches as one proposal of `proposer`'s Safe (see the module docstring) and
    raises `Proposed`; PolicyError if the policy names another Safe or the batches do not fit one block."""
    if applies(policy, plan.total) and policy is not None and policy.address not in (None, proposer.address):
        raise PolicyError(
            f"the file totals {display.krw(plan.total)}, above the large-disbursal limit of "
            f"{display.krw(policy.above)}: the policy requires the {policy.safe} Safe ({policy.address}), not "
            f"{proposer.address} (leave out --safe)"
        )
    pending = plan.pending
    if not pending:
        raise PolicyError("every row of the file was already paid; there is nothing to propose")
    gas_of = batch_gas(plan, chain)
    needed = sum(gas_of(b) for b in pending) + SAFE_OVERHEAD_GAS
    limit = block_gas_limit(chain)
    if needed > limit * 0.9:
        raise PolicyError(
            f"the {len(pending)} batch(es) still to pay need about {needed:,} gas together, more than one Safe "
            f"transaction can use in a block of this chain ({limit:,}): split the file and propose each part"
        )
    try:
        proposer.propose_calls(chain, [b.calldata(plan.program.id) for b in pending], multi_send)
    except Proposed as done:
        # The journal keeps the plan (its batch size above all): a later run of the command, after the Safe
        # executed, cuts the same batches, finds them applied and pays nobody twice.
        plan.journal.append(
            plan.journal_record(chain, proposer.address),
            {
                "event": "proposed",
                "batches": [b.index for b in pending],
                "safe": proposer.address,
                "proposal": str(done.path),
                "safe_tx_hash": "0x" + done.proposal.hash.hex(),
                "safe_nonce": done.proposal.tx.nonce,
            },
        )
        raise

"""Proposing a treasury action to a Safe instead of sending it.

`SafeProposer` stands in for the signing account of any single treasury action (`deposit_token.ops.actions`,
`ops.roles`): its address is the Safe's, so every check the action makes (the contract's own ``eth_call``
verdict included) is made as the Safe; then, where the action would send, `deposit_token.ops.context.transact`
hands the call to `propose_call`, which writes the proposal file and raises `Proposed`: nothing is sent.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, NoReturn

from eth_utils import to_checksum_address

from deposit_token.chain.submit import encode_call
from deposit_token.errors import DepositTokenError
from deposit_token.ops.multisig import safes as onchain
from deposit_token.ops.multisig import words
from deposit_token.ops.multisig.proposal import DELEGATECALL, Proposal, SafeTx


class Proposed(DepositTokenError):
    """The action was written as a proposal (carried here); nothing was sent. Not a failure: the `--propose`
    decorator (deposit_token/cli/safe.py) catches it around the command and reports the proposal; it derives
    from the root like every exception here so that nothing between them can mistake it for a bug."""

    def __init__(self, proposal: Proposal, path: Path, state: onchain.SafeState) -> None:
        super().__init__(str(path))
        self.proposal = proposal
        self.path = path
        self.state = state


class NoSafeError(DepositTokenError):
    """No Safe is recorded for what the command needs."""


@dataclass(frozen=True)
class RecordedSafe:
    name: str
    address: str
    roles: tuple[str, ...]


def recorded_safes(record: Mapping[str, Any] | None) -> list[RecordedSafe]:
    """The Safes a deployment record lists (key ``safes``: name -> {address, roles, ...})."""
    found = []
    for name, entry in ((record or {}).get("safes") or {}).items():
        if isinstance(entry, Mapping) and isinstance(entry.get("address"), str):
            found.append(RecordedSafe(name, to_checksum_address(entry["address"]), tuple(entry.get("roles") or ())))
    return found


def safe_for(record: Mapping[str, Any] | None, role: str | None, given: str | None) -> RecordedSafe:
    """The Safe a proposal goes to: `given` (a recorded Safe's name, or an address), else the recorded Safe
    holding `role`."""
    known = recorded_safes(record)
    if given is not None:
        text = given.strip()
        if text.lower().startswith("0x"):
            address = to_checksum_address(text)
            named = next((s for s in known if s.address == address), None)
            return named or RecordedSafe("", address, ())
        named = next((s for s in known if s.name == text), None)
        if named is None:
            names = ", ".join(s.name for s in known) or "none recorded"
            raise NoSafeError(f"there is no Safe named {text!r} in the deployment record (Safes: {names})")
        return named
    holder = next((s for s in known if role in s.roles), None) if role else None
    if holder is None:
        raise NoSafeError(
            f"no Safe in the deployment record holds {role or 'the role this command needs'}: give --safe "
            "ADDRESS|NAME (or deploy Safes with `ape run deploy --safes FILE`)"
        )
    return holder


MULTI_SEND = "multiSend(bytes)"


def multi_send_data(to: str, calls: Sequence[bytes]) -> bytes:
    """MultiSendCallOnly.multiSend calldata running `calls` on `to` in order: each packed as operation (CALL),
    to, value 0, length, data (the format `words.multi_send_calls` reads back)."""
    target = bytes.fromhex(to_checksum_address(to)[2:])
    packed = b"".join(
        b"\0" + target + (0).to_bytes(32, "big") + len(data).to_bytes(32, "big") + bytes(data) for data in calls
    )
    return onchain.call_data(MULTI_SEND, packed)


def multi_send_of(record: Mapping[str, Any] | None) -> str | None:
    contracts = (record or {}).get("safe_contracts") or {}
    value = contracts.get("multi_send_call_only")
    return to_checksum_address(value) if isinstance(value, str) else None


def accessor_of(record: Mapping[str, Any] | None) -> str | None:
    contracts = (record or {}).get("safe_contracts") or {}
    value = contracts.get("simulate_tx_accessor")
    return to_checksum_address(value) if isinstance(value, str) else None


class SafeProposer:
    """The account a proposing command acts as (see the module docstring)."""

    def __init__(
        self,
        safe: RecordedSafe,
        path: Path,
        network: str,
        command: str,
        nonce: int | None = None,
        accessor: str | None = None,
    ) -> None:
        self.safe = safe
        self.address = safe.address
        self.path = path
        self.network = network
        self.command = command
        self.nonce = nonce
        self.accessor = accessor

    def propose_call(self, chain: Any, fn: str, args: Sequence[Any]) -> NoReturn:
        """Writes the proposal of `fn(*args)` on the token from the Safe and raises `Proposed`."""
        from deposit_token.chain.contracts import system_contract_type

        self.propose_calls(chain, [encode_call(system_contract_type(), fn, list(args))], None)

    def propose_calls(self, chain: Any, calls: Sequence[bytes], multi_send: str | None) -> NoReturn:
        """Writes the proposal of the token calls `calls` (calldata each) from the Safe and raises `Proposed`:
        one call is a plain CALL to the token; several are one MultiSendCallOnly batch (`multi_send`, a
        DELEGATECALL: all run, or none)."""
        state = onchain.read_safe(chain.rpc, self.address)
        nonce = state.nonce if self.nonce is None else self.nonce
        if nonce < state.nonce:
            raise onchain.SafeError(f"Safe nonce {nonce} was used already (the Safe is at {state.nonce})")
        if len(calls) == 1:
            tx = SafeTx(safe=self.address, chain_id=chain.chain_id, to=chain.address, data=calls[0], nonce=nonce)
        else:
            if multi_send is None:
                raise onchain.SafeError(
                    "several calls need the deployment record's MultiSendCallOnly (safe_contracts), which it lacks"
                )
            tx = SafeTx(
                safe=self.address,
                chain_id=chain.chain_id,
                to=multi_send,
                data=multi_send_data(chain.address, calls),
                nonce=nonce,
                operation=DELEGATECALL,
            )
        reason = onchain.simulate(chain.rpc, tx, self.accessor, chain.names()) if nonce == state.nonce else None
        if reason is not None:
            raise onchain.SafeError(f"the Safe would refuse this: {reason}; nothing was written")
        proposal = Proposal(
            tx=tx,
            description=words.describe(tx, chain.address, chain.names(), multi_send),
            network=self.network,
            token=chain.address,
            command=self.command,
            safe_label=self.safe.name,
        )
        proposal.write(self.path)
        raise Proposed(proposal, self.path, state)

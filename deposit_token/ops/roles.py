"""Granting and revoking roles, and the admin's two-step handover, with every refusal found before sending.

The token uses OpenZeppelin's AccessControlDefaultAdminRules: the admin role (DEFAULT_ADMIN_ROLE) is never
granted or revoked like the others; the admin begins a transfer to a new admin, who accepts it after the
token's delay (so a mistyped address or a stolen key cannot take the token over at once), and the admin can
cancel it until then. Each action here first asks the contract (eth_call from the operator) whether it would
accept, so an outsider's attempt ends in the sentence naming the missing role and sends nothing.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from deposit_token.domain import display
from deposit_token.domain.inputs import InputError
from deposit_token.ops.context import ROLES, ActionError, Chain, has_role, latest_timestamp, refusal, role_id, transact
from deposit_token.ops.listing import READABLE_ROLES

ZERO_ADDRESS = "0x" + "00" * 20
ADMIN = "DEFAULT_ADMIN_ROLE"
HANDOVER_HINT = (
    "the admin role changes hands only by the two-step handover: `ape run treasury role handover "
    "begin NEW_ADMIN`, then the new admin runs `ape run treasury role handover accept` after the delay"
)

# Short names people use besides the readable and the contract's names.
_EXTRA_NAMES = {"DEFAULT_ADMIN": ADMIN, "MANAGER": "PROGRAM_MANAGER_ROLE", "REGISTRAR": "VENDOR_REGISTRAR_ROLE"}


def valid_role_names() -> str:
    readable = [READABLE_ROLES[r] for r in ROLES]
    return f"{', '.join(readable)} (or the contract's names: {', '.join(ROLES)})"


def parse_role(text: str) -> str:
    """The contract's role name for ``issuer``, ``program-manager``, ``ISSUER_ROLE``, ``admin``..."""
    key = str(text).strip().upper().replace("-", "_").replace(" ", "_")
    for candidate in (key, f"{key}_ROLE"):
        if candidate in ROLES:
            return candidate
    if key in _EXTRA_NAMES:
        return _EXTRA_NAMES[key]
    readable = {name.upper().replace("-", "_"): role for role, name in READABLE_ROLES.items()}
    if key in readable:
        return readable[key]
    raise InputError(f"unknown role {str(text).strip()!r}: the roles are {valid_role_names()}")


def _not_zero(address: str) -> None:
    if address.lower() == ZERO_ADDRESS:
        raise InputError("the zero address cannot hold a role")


def _check(chain: Chain, fn: str, args: tuple[Any, ...], sender: str) -> None:
    reason = refusal(chain, fn, args, sender)
    if reason is not None:
        raise ActionError(reason)


def grant(chain: Chain, admin: Any, role: str, account: str) -> Any | None:
    """Grants `role` to `account`; None (nothing sent) if it already holds it."""
    if role == ADMIN:
        raise InputError(f"the admin role cannot be granted: {HANDOVER_HINT}")
    _not_zero(account)
    _check(chain, "grantRole", (role_id(role), account), str(admin.address))  # an outsider learns it first
    if has_role(chain, role, account):
        return None
    return transact(chain, "grantRole", (role_id(role), account), admin)


def revoke(chain: Chain, admin: Any, role: str, account: str) -> Any | None:
    """Revokes `role` from `account`; None (nothing sent) if it does not hold it."""
    if role == ADMIN:
        raise InputError(f"the admin role cannot be revoked: {HANDOVER_HINT}")
    _check(chain, "revokeRole", (role_id(role), account), str(admin.address))
    if not has_role(chain, role, account):
        return None
    return transact(chain, "revokeRole", (role_id(role), account), admin)


# --- the admin handover -------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Handover:
    admin: str
    delay: int  # seconds a new admin waits between begin and accept
    pending: str | None  # the new admin, if a handover is under way
    accept_after: int  # unix seconds; the new admin may accept in any block after it (0 if none pending)
    now: int  # the chain's time (latest block)

    @property
    def acceptable(self) -> bool:
        return self.pending is not None and self.now >= self.accept_after


def handover(chain: Chain) -> Handover:
    pending, schedule = chain.token.pendingDefaultAdmin()
    pending = None if str(pending).lower() == ZERO_ADDRESS else display.address(str(pending))
    return Handover(
        admin=display.address(str(chain.token.defaultAdmin())),
        delay=int(chain.token.defaultAdminDelay()),
        pending=pending,
        accept_after=int(schedule) if pending else 0,
        now=latest_timestamp(chain),
    )


def duration(seconds: int) -> str:
    """``3 days 4 hours``, ``45 minutes``, ``none``."""
    if seconds <= 0:
        return "none"
    parts = []
    for unit, size in (("day", 86400), ("hour", 3600), ("minute", 60), ("second", 1)):
        count, seconds = divmod(seconds, size)
        if count:
            parts.append(f"{count} {unit}{'s' if count > 1 else ''}")
    return " ".join(parts[:2])


def begin_handover(chain: Chain, admin: Any, new_admin: str) -> Any:
    if new_admin.lower() == ZERO_ADDRESS:
        raise InputError("the zero address cannot become the admin")
    return transact(chain, "beginDefaultAdminTransfer", (new_admin,), admin)


def accept_handover(chain: Chain, new_admin: Any) -> Any:
    """Accepts the pending handover as `new_admin`, with the reason in a sentence if it cannot yet."""
    state = handover(chain)
    sender = display.address(str(new_admin.address))
    if state.pending is None:
        raise ActionError(
            "no admin handover is pending: the admin begins one with `ape run treasury role handover begin NEW_ADMIN`"
        )
    if sender != state.pending:
        raise ActionError(f"only the pending admin {state.pending} can accept the handover, not {sender}")
    reason = refusal(chain, "acceptDefaultAdminTransfer", (), sender)
    if reason is not None:
        if state.now < state.accept_after:
            raise ActionError(
                f"the handover to {state.pending} can be accepted only after "
                f"{display.moment(state.accept_after)} (chain time now {display.moment(state.now)}, "
                f"{duration(state.accept_after - state.now)} to go)"
            )
        raise ActionError(reason)
    return transact(chain, "acceptDefaultAdminTransfer", (), new_admin)


def cancel_handover(chain: Chain, admin: Any) -> tuple[str | None, Any | None]:
    """Cancels the pending handover: (the address it was going to, receipt), or (None, None) with nothing
    sent when none is pending (the state asked for already holds)."""
    _check(chain, "cancelDefaultAdminTransfer", (), str(admin.address))  # only the admin, even for a no-op
    state = handover(chain)
    if state.pending is None:
        return None, None
    return state.pending, transact(chain, "cancelDefaultAdminTransfer", (), admin)

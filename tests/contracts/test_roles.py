"""Every privileged function is behind a role: an outsider fails with AccessControlUnauthorizedAccount naming
the missing role, and the holder of that role succeeds. Admin handover is two-step."""

from __future__ import annotations

from datetime import timedelta

import ape
import pytest
from eth_utils import keccak
from support.system import PROGRAM_END, b32, set_time, ts

from deposit_token.domain.categories import Category

ADMIN = b"\0" * 32
ISSUER = keccak(text="ISSUER_ROLE")
MANAGER = keccak(text="PROGRAM_MANAGER_ROLE")
REGISTRAR = keccak(text="VENDOR_REGISTRAR_ROLE")
COMPLIANCE = keccak(text="COMPLIANCE_ROLE")


def program_params(p):
    return ("X", p.treasury.address, ts(PROGRAM_END), ts(PROGRAM_END) + 86400, 540, 0, 1, 1, [1], [1])


# (function, role, holder attribute on People, args builder)
PRIVILEGED = [
    ("setMintAllowance", ADMIN, "admin", lambda s, p: (p.issuer, 1)),
    ("registerTreasury", ADMIN, "admin", lambda s, p: (p.outsider,)),
    ("mint", ISSUER, "issuer", lambda s, p: (p.treasury, 1)),
    ("createProgram", MANAGER, "manager", lambda s, p: (program_params(p),)),
    ("updateProgram", MANAGER, "manager", lambda s, p: (s.bp, program_params(p))),
    ("enrol", MANAGER, "manager", lambda s, p: ([p.outsider], s.bp, [b32("x")])),
    ("setCapOverride", MANAGER, "manager", lambda s, p: (p.spenders[0], 1, 5)),
    ("clearCapOverride", MANAGER, "manager", lambda s, p: (p.spenders[0], 1)),
    ("allocate", MANAGER, "manager", lambda s, p: (b32("r"), s.bp, [p.spenders[0]], [1])),
    ("registerVendor", REGISTRAR, "registrar", lambda s, p: (p.outsider, 1, "x")),
    ("suspendVendor", COMPLIANCE, "compliance", lambda s, p: (p.restaurant, "r")),
    ("reactivateVendor", COMPLIANCE, "compliance", lambda s, p: (p.restaurant, "r")),
    ("pause", COMPLIANCE, "compliance", lambda s, p: ()),
    ("unpause", COMPLIANCE, "compliance", lambda s, p: ()),
    ("setProgramPaused", COMPLIANCE, "compliance", lambda s, p: (s.bp, True)),
    ("freeze", COMPLIANCE, "compliance", lambda s, p: (p.spenders[0], "r")),
    ("unfreeze", COMPLIANCE, "compliance", lambda s, p: (p.spenders[0], "r")),
    ("clawback", COMPLIANCE, "compliance", lambda s, p: (p.spenders[0], 1, "r")),
    ("grantRole", ADMIN, "admin", lambda s, p: (COMPLIANCE, p.outsider)),
    ("revokeRole", ADMIN, "admin", lambda s, p: (COMPLIANCE, p.compliance)),
    ("beginDefaultAdminTransfer", ADMIN, "admin", lambda s, p: (p.outsider,)),
    ("changeDefaultAdminDelay", ADMIN, "admin", lambda s, p: (3600,)),
]


@pytest.mark.parametrize("name, role, holder, args", PRIVILEGED, ids=[row[0] for row in PRIVILEGED])
def test_outsider_fails_and_role_holder_succeeds(system, name, role, holder, args):
    t, p = system.token, system.people
    call = getattr(t, name)
    for intruder in (p.outsider, p.spenders[0], p.restaurant, p.treasury):
        with ape.reverts(t.AccessControlUnauthorizedAccount, account=intruder.address, neededRole=role):
            call(*args(system, p), sender=intruder)
    call(*args(system, p), sender=getattr(p, holder))


def test_every_state_changing_admin_function_is_listed(system):
    """A new admin function must be added to PRIVILEGED (or be one of the open ones below)."""
    from deposit_token.chain.contracts import system_contract_type

    open_to_all = {
        # token-holder actions, checked by the payment rules instead of roles
        "transfer",
        "transferFrom",
        "approve",
        "permit",
        "pay",
        "returnToTreasury",
        "redeem",
        "sweepExpired",
        "multicall",
        "renounceRole",
        "acceptDefaultAdminTransfer",
        "initialize",
        # signed by the payer (EIP-712) and checked against that signature, not a role
        "receiveWithAuthorization",
        "cancelAuthorization",
        # admin-only by OpenZeppelin's own checks, tested below
        "cancelDefaultAdminTransfer",
        "rollbackDefaultAdminDelay",
    }
    mutating = {
        abi.name
        for abi in system_contract_type().abi
        if abi.type == "function" and abi.stateMutability in ("nonpayable", "payable")
    }
    assert mutating - open_to_all == {row[0] for row in PRIVILEGED}


def test_admin_handover_is_two_step(system, chain):
    t, p = system.token, system.people
    new_admin = p.outsider
    with ape.reverts(t.AccessControlEnforcedDefaultAdminRules):
        t.grantRole(ADMIN, new_admin, sender=p.admin)
    t.beginDefaultAdminTransfer(new_admin, sender=p.admin)
    assert t.pendingDefaultAdmin()[0] == new_admin.address
    assert t.defaultAdmin() == p.admin.address  # nothing changes until accepted
    with ape.reverts(t.AccessControlInvalidDefaultAdmin, defaultAdmin=p.spenders[0].address):
        t.acceptDefaultAdminTransfer(sender=p.spenders[0])
    set_time(chain, int(chain.pending_timestamp) + 1)
    t.acceptDefaultAdminTransfer(sender=new_admin)
    assert t.defaultAdmin() == new_admin.address
    assert not t.hasRole(ADMIN, p.admin)
    with ape.reverts(t.AccessControlUnauthorizedAccount):
        t.setMintAllowance(p.issuer, 1, sender=p.admin)
    t.setMintAllowance(p.issuer, 1, sender=new_admin)
    for fn in ("cancelDefaultAdminTransfer", "rollbackDefaultAdminDelay"):
        with ape.reverts(t.AccessControlUnauthorizedAccount):
            getattr(t, fn)(sender=p.admin)


def test_admin_delay_is_enforced(system, chain, project, accounts):
    from deposit_token.chain.contracts import deploy_system

    admin, successor = accounts[32], accounts[33]
    token = deploy_system(admin, admin_transfer_delay=3 * 86400).token
    token.beginDefaultAdminTransfer(successor, sender=admin)
    with ape.reverts(token.AccessControlEnforcedDefaultAdminDelay):
        token.acceptDefaultAdminTransfer(sender=successor)
    set_time(chain, int(chain.blocks.head.timestamp) + 3 * 86400 + 10)
    token.acceptDefaultAdminTransfer(sender=successor)
    assert token.defaultAdmin() == successor.address


def test_admin_module_cannot_be_used_directly(system, project):
    t, p = system.token, system.people
    module = project.DepositTokenAdmin.at(t.ADMIN_MODULE())
    with ape.reverts(module.InvalidInitialization):
        module.initialize(p.outsider, 0, sender=p.outsider)
    with ape.reverts(module.AccessControlUnauthorizedAccount):
        module.registerTreasury(p.outsider, sender=p.outsider)
    with ape.reverts(t.InvalidInitialization):  # and the token's admin cannot be re-initialised
        t.initialize(p.outsider, 0, sender=p.outsider)


def test_token_refuses_a_module_built_for_another_name(project, accounts):
    deployer = accounts[34]
    module = project.DepositTokenAdmin.deploy("Other Token", sender=deployer)
    with ape.reverts():
        project.DepositToken.deploy("KRW Deposit Token", "KRWD", deployer, 0, module, sender=deployer)


def test_multicall_keeps_roles(system):
    t, p = system.token, system.people
    calls = [
        t.registerVendor.encode_input(p.outsider, int(Category.BOOKS), "Kyobo"),
    ]
    with ape.reverts(t.AccessControlUnauthorizedAccount):
        t.multicall(calls, sender=p.outsider)
    t.multicall(calls, sender=p.registrar)
    assert t.accountOf(p.outsider).kind == 3


def test_sweep_is_open_to_anyone(system, chain):
    t, p = system.token, system.people
    set_time(chain, PROGRAM_END + timedelta(days=1))
    t.sweepExpired([p.spenders[0]], sender=p.outsider)
    assert t.balanceOf(p.spenders[0]) == 0

"""Every allowed path of the token (mint, allocate, pay, return, redeem, claw back, sweep) and the ERC-20
surface routed through those paths; every other movement reverts with its own error."""

from __future__ import annotations

from datetime import timedelta

import ape
from eth_account import Account
from eth_account.messages import encode_typed_data
from eth_utils import keccak
from support.system import PROGRAM_END, ZERO, b32, pay, set_time, ts

from deposit_token.domain.categories import Category


def test_issuer_mints_into_a_treasury_within_its_allowance(system):
    t, p = system.token, system.people
    supply = t.totalSupply()
    left = t.mintAllowance(p.issuer)
    receipt = t.mint(p.treasury, 1_000_000, sender=p.issuer)
    assert t.totalSupply() == supply + 1_000_000
    assert t.mintAllowance(p.issuer) == left - 1_000_000
    minted = receipt.events[1]
    assert minted.event_name == "Minted" and minted.allowanceLeft == left - 1_000_000
    t.setMintAllowance(p.issuer, 10, sender=p.admin)
    with ape.reverts(t.MintAllowanceExceeded, issuer=p.issuer.address, allowance=10, amount=11):
        t.mint(p.treasury, 11, sender=p.issuer)
    with ape.reverts(t.WrongKind, account=p.spenders[0].address, expected=1, actual=2):
        t.mint(p.spenders[0], 1, sender=p.issuer)
    with ape.reverts(t.ZeroAmount):
        t.mint(p.treasury, 0, sender=p.issuer)


def test_batch_allocation_applies_once(system, accounts):
    t, p = system.token, system.people
    officials = [accounts[i] for i in range(25, 30)]
    t.enrol(officials, system.bp, [b32("MOIS")] * 5, sender=p.manager)
    treasury_before = t.balanceOf(p.treasury)
    receipt = t.allocate(b32("2030-02-disbursal-1"), system.bp, officials, [100_000] * 5, sender=p.manager)
    assert [t.balanceOf(o) for o in officials] == [100_000] * 5
    assert t.balanceOf(p.treasury) == treasury_before - 500_000
    assert t.batchApplied(b32("2030-02-disbursal-1"))
    names = [e.event_name for e in receipt.events]
    assert names.count("Allocated") == 5 and names.count("Transfer") == 5 and names[-1] == "AllocationBatch"
    assert receipt.events[-1].total == 500_000 and receipt.events[-1].count == 5
    with ape.reverts(t.BatchAlreadyApplied, batchRef=b32("2030-02-disbursal-1")):
        t.allocate(b32("2030-02-disbursal-1"), system.bp, officials, [100_000] * 5, sender=p.manager)
    assert [t.balanceOf(o) for o in officials] == [100_000] * 5


def test_batch_allocation_rejects_bad_batches_whole(system, accounts):
    t, p = system.token, system.people
    s, ev = p.spenders[0], p.ev_recipients[0]
    before = t.balanceOf(s)
    with ape.reverts(t.SpenderInOtherProgram, spender=ev.address, enrolledIn=system.ev, requested=system.bp):
        t.allocate(b32("bad-1"), system.bp, [s, ev], [1, 1], sender=p.manager)
    with ape.reverts(t.WrongKind, account=p.outsider.address):
        t.allocate(b32("bad-2"), system.bp, [s, p.outsider], [1, 1], sender=p.manager)
    with ape.reverts(t.LengthMismatch, expected=2, actual=1):
        t.allocate(b32("bad-3"), system.bp, [s, s], [1], sender=p.manager)
    with ape.reverts(t.EmptyBatch):
        t.allocate(b32("bad-4"), system.bp, [], [], sender=p.manager)
    with ape.reverts(t.MissingReference):
        t.allocate(ZERO, system.bp, [s], [1], sender=p.manager)
    with ape.reverts(t.ZeroAmount):
        t.allocate(b32("bad-5"), system.bp, [s], [0], sender=p.manager)
    too_much = t.balanceOf(p.treasury) + 1
    with ape.reverts(t.InsufficientBalance, account=p.treasury.address):
        t.allocate(b32("bad-6"), system.bp, [s], [too_much], sender=p.manager)
    t.freeze(s, "hold", sender=p.compliance)
    with ape.reverts(t.AccountFrozen, account=s.address):
        t.allocate(b32("bad-7"), system.bp, [s], [1], sender=p.manager)
    with ape.reverts(t.UnknownProgram, programId=99):
        t.allocate(b32("bad-8"), 99, [s], [1], sender=p.manager)
    assert t.balanceOf(s) == before
    assert not t.batchApplied(b32("bad-1"))


def test_plain_transfer_follows_the_paths(system):
    t, p = system.token, system.people
    s = p.spenders[0]
    # spender -> vendor is a payment (no receipt, no evidence): same rules, same events.
    receipt = t.transfer(p.restaurant, 12_000, sender=s)
    assert [e.event_name for e in receipt.events] == ["Transfer", "Payment"]
    with ape.reverts(t.CategoryNotAllowed):
        t.transfer(p.bar, 12_000, sender=s)
    with ape.reverts(t.EvidenceRequired):
        t.transfer(p.restaurant, 600_000, sender=s)
    # spender -> its treasury is a return; treasury -> its spender a single allocation.
    receipt = t.transfer(p.treasury, 2_000, sender=s)
    assert receipt.events[1].event_name == "Returned" and receipt.events[1].treasury == p.treasury.address
    receipt = t.transfer(s, 2_000, sender=p.treasury)
    assert receipt.events[1].event_name == "Allocated" and receipt.events[1].batchRef == ZERO
    # everything else
    with ape.reverts(t.NotProgramTreasury, programId=system.bp, account=p.treasury2.address):
        t.transfer(p.treasury2, 1, sender=s)
    with ape.reverts(t.NotProgramTreasury, programId=system.ev, account=p.treasury.address):
        t.transfer(p.ev_recipients[0], 1, sender=p.treasury)
    with ape.reverts(
        t.TransferPathNotAllowed, **{"from": s.address, "fromKind": 2, "to": p.spenders[1].address, "toKind": 2}
    ):
        t.transfer(p.spenders[1], 1, sender=s)
    with ape.reverts(t.TransferPathNotAllowed):
        t.transfer(p.cafe, 1, sender=p.restaurant)
    with ape.reverts(t.TransferPathNotAllowed):
        t.transfer(p.restaurant, 1, sender=p.treasury)
    with ape.reverts(t.TransferPathNotAllowed):
        t.transfer(p.treasury2, 1, sender=p.treasury)
    with ape.reverts(t.NotRegistered, account=p.outsider.address):
        t.transfer(p.restaurant, 1, sender=p.outsider)
    with ape.reverts(t.NotRegistered, account=p.outsider.address):
        t.transfer(p.outsider, 1, sender=s)
    assert t.detectTransferRestriction(p.outsider, p.restaurant, 1) == 2
    assert t.detectTransferRestriction(s, p.spenders[1], 1) == 4
    assert t.detectTransferRestriction(s, p.treasury2, 1) == 18
    assert t.detectTransferRestriction(s, p.restaurant, 1_000) == 0
    assert t.detectTransferRestriction(s, p.bar, 1_000) == 11


def test_transfer_from_and_permit(system, accounts):
    t, p = system.token, system.people
    signer = Account.create()
    t.enrol([signer.address], system.bp, [b32("KDI")], sender=p.manager)
    t.allocate(b32("permit-holder"), system.bp, [signer.address], [50_000], sender=p.manager)
    terminal = p.outsider  # e.g. the vendor's payment terminal, approved by the official
    deadline = ts(PROGRAM_END)
    nonce = t.nonces(signer.address)
    domain = t.eip712Domain()
    typed = {
        "types": {
            "EIP712Domain": [
                {"name": "name", "type": "string"},
                {"name": "version", "type": "string"},
                {"name": "chainId", "type": "uint256"},
                {"name": "verifyingContract", "type": "address"},
            ],
            "Permit": [
                {"name": "owner", "type": "address"},
                {"name": "spender", "type": "address"},
                {"name": "value", "type": "uint256"},
                {"name": "nonce", "type": "uint256"},
                {"name": "deadline", "type": "uint256"},
            ],
        },
        "primaryType": "Permit",
        "domain": {"name": domain[1], "version": domain[2], "chainId": domain[3], "verifyingContract": t.address},
        "message": {
            "owner": signer.address,
            "spender": terminal.address,
            "value": 20_000,
            "nonce": nonce,
            "deadline": deadline,
        },
    }
    sig = Account.sign_message(encode_typed_data(full_message=typed), signer.key)
    assert domain[4] == t.address  # the module's EIP-712 code serves the token's domain
    t.permit(
        signer.address,
        terminal,
        20_000,
        deadline,
        sig.v,
        sig.r.to_bytes(32, "big"),
        sig.s.to_bytes(32, "big"),
        sender=terminal,
    )
    assert t.allowance(signer.address, terminal) == 20_000
    with ape.reverts(t.ERC2612InvalidSigner):  # replay: the nonce moved on
        t.permit(
            signer.address,
            terminal,
            20_000,
            deadline,
            sig.v,
            sig.r.to_bytes(32, "big"),
            sig.s.to_bytes(32, "big"),
            sender=terminal,
        )
    t.transferFrom(signer.address, p.restaurant, 15_000, sender=terminal)
    assert t.balanceOf(signer.address) == 35_000 and t.allowance(signer.address, terminal) == 5_000
    with ape.reverts(t.ERC20InsufficientAllowance, spender=terminal.address, allowance=5_000, needed=6_000):
        t.transferFrom(signer.address, p.restaurant, 6_000, sender=terminal)


def test_return_redeem_and_clawback(system):
    t, p = system.token, system.people
    s = p.spenders[0]
    pay(system, s, p.restaurant, 80_000)
    # return
    receipt = t.returnToTreasury(100_000, sender=s)
    assert receipt.events[1].event_name == "Returned"
    with ape.reverts(t.WrongKind, account=p.restaurant.address):
        t.returnToTreasury(1, sender=p.restaurant)
    # redeem: burn against a settlement reference
    supply = t.totalSupply()
    receipt = t.redeem(80_000, "KB-0012-3456-78", sender=p.restaurant)
    assert t.totalSupply() == supply - 80_000 and t.balanceOf(p.restaurant) == 0
    redeemed = receipt.events[1]
    assert redeemed.event_name == "Redeemed" and redeemed.settlementRef == keccak(text="KB-0012-3456-78")
    assert redeemed.settlementReference == "KB-0012-3456-78" and redeemed.amount == 80_000
    with ape.reverts(t.MissingReference):
        t.redeem(1, "", sender=p.restaurant)
    with ape.reverts(t.InsufficientBalance, account=p.restaurant.address, balance=0, needed=1):
        t.redeem(1, "x", sender=p.restaurant)
    with ape.reverts(t.WrongKind, account=s.address):
        t.redeem(1, "x", sender=s)
    # claw back a frozen wallet, even while paused
    t.freeze(s, "fraud case 2030-04", sender=p.compliance)
    t.pause(sender=p.compliance)
    left = t.balanceOf(s)
    treasury = t.balanceOf(p.treasury)
    receipt = t.clawback(s, left, "fraud case 2030-04", sender=p.compliance)
    assert t.balanceOf(s) == 0 and t.balanceOf(p.treasury) == treasury + left
    clawed = receipt.events[1]
    assert (
        clawed.event_name == "ClawedBack"
        and clawed.reason == "fraud case 2030-04"
        and clawed.officer == p.compliance.address
    )
    with ape.reverts(t.InsufficientBalance):
        t.clawback(s, 1, "again", sender=p.compliance)
    with ape.reverts(t.WrongKind):
        t.clawback(p.restaurant, 1, "vendors are not clawed back", sender=p.compliance)


def test_suspended_vendor_can_still_redeem_but_frozen_cannot(system):
    t, p = system.token, system.people
    pay(system, p.spenders[0], p.restaurant, 10_000)
    t.suspendVendor(p.restaurant, "closing down", sender=p.compliance)
    t.redeem(5_000, "settle-1", sender=p.restaurant)
    t.freeze(p.restaurant, "court order", sender=p.compliance)
    with ape.reverts(t.AccountFrozen, account=p.restaurant.address):
        t.redeem(5_000, "settle-2", sender=p.restaurant)


def test_a_settlement_reference_is_spent_once_per_vendor(system):
    """Regression (issue 7, 3.5): the same settlement reference redeemed twice meant a double payout risk."""
    t, p = system.token, system.people
    pay(system, p.spenders[0], p.restaurant, 50_000)
    pay(system, p.spenders[1], p.cafe, 20_000)
    ref = keccak(text="KB-0012-3456")
    assert not t.settlementReferenceUsed(p.restaurant, ref)
    t.redeem(10_000, "KB-0012-3456", sender=p.restaurant)
    assert t.settlementReferenceUsed(p.restaurant, ref)
    supply = t.totalSupply()
    with ape.reverts(t.SettlementReferenceUsed, vendor=p.restaurant.address, settlementRef=ref):
        t.redeem(10_000, "KB-0012-3456", sender=p.restaurant)
    assert t.totalSupply() == supply and t.balanceOf(p.restaurant) == 40_000
    # Byte-exact text: another reference is another payout instruction.
    t.redeem(10_000, "KB-0012-3457", sender=p.restaurant)
    # Spent per vendor: another vendor's instruction may carry the same text.
    assert not t.settlementReferenceUsed(p.cafe, ref)
    t.redeem(20_000, "KB-0012-3456", sender=p.cafe)
    assert t.settlementReferenceUsed(p.cafe, ref)


def test_sweep_after_expiry_by_anyone(system, chain):
    t, p = system.token, system.people
    spenders = p.spenders[:3]
    with ape.reverts(t.ProgramNotEnded, programId=system.bp, end=ts(PROGRAM_END)):
        t.sweepExpired(spenders, sender=p.outsider)
    t.returnToTreasury(t.balanceOf(spenders[2]), sender=spenders[2])  # zero balances are skipped
    set_time(chain, PROGRAM_END + timedelta(days=1))
    treasury = t.balanceOf(p.treasury)
    balances = [t.balanceOf(s) for s in spenders]
    receipt = t.sweepExpired(spenders, sender=p.outsider)
    assert [t.balanceOf(s) for s in spenders] == [0, 0, 0]
    assert t.balanceOf(p.treasury) == treasury + sum(balances)
    swept = [e for e in receipt.events if e.event_name == "Swept"]
    assert [e.spender for e in swept] == [s.address for s in spenders[:2]]
    assert all(e.caller == p.outsider.address for e in swept)
    with ape.reverts(t.ProgramEnded):
        t.allocate(b32("late"), system.bp, spenders[:1], [1], sender=p.manager)
    with ape.reverts(t.WrongKind):
        t.sweepExpired([p.restaurant], sender=p.outsider)


def test_program_update_applies_at_once_and_keeps_what_was_spent(system, chain):
    t, p = system.token, system.people
    s = p.spenders[0]
    pay(system, s, p.cafe, 200_000)
    rules = t.programRules(system.bp)
    cfg = t.programConfig(system.bp)
    params = (
        "BP-2030-MOEF (revised)",
        cfg.treasury,
        rules.start,
        rules.end,
        rules.utcOffsetMinutes,
        rules.openingHours,
        cfg.perPaymentLimit,
        cfg.evidenceThreshold,
        [int(Category.RESTAURANT), int(Category.CAFE_BAKERY)],
        [2_000_000, 250_000],
    )
    receipt = t.updateProgram(system.bp, params, sender=p.manager)
    assert t.programRules(system.bp).version == rules.version + 1
    assert receipt.events[-1].event_name == "ProgramConfigured" and receipt.events[-1].version == rules.version + 1
    with ape.reverts(t.CategoryCapExceeded, capLeft=50_000):
        pay(system, s, p.cafe, 50_001)
    pay(system, s, p.cafe, 50_000)
    # Catering was dropped from the program.
    t.registerVendor(p.supplier, int(Category.CATERING), "Lunchbox Co (recategorised)", sender=p.registrar)
    with ape.reverts(t.CategoryNotAllowed, category=Category.CATERING):
        pay(system, s, p.supplier, 1_000)
    assert t.programName(system.bp) == "BP-2030-MOEF (revised)"


def test_cap_override_for_one_spender(system):
    t, p = system.token, system.people
    s, other = p.spenders[0], p.spenders[1]
    pay(system, s, p.cafe, 100_000)
    t.setCapOverride(s, int(Category.CAFE_BAKERY), 120_000, sender=p.manager)
    assert t.capOverrideOf(s, int(Category.CAFE_BAKERY)) == (True, 120_000)
    with ape.reverts(t.CategoryCapExceeded, spender=s.address, capLeft=20_000):
        pay(system, s, p.cafe, 20_001)
    pay(system, s, p.cafe, 20_000)
    pay(system, other, p.cafe, 300_000)  # others keep the program's cap
    t.clearCapOverride(s, int(Category.CAFE_BAKERY), sender=p.manager)
    pay(system, s, p.cafe, 180_000)
    assert t.spendingThisPeriod(s, int(Category.CAFE_BAKERY)) == (203001, 300_000, 300_000)


def test_registration_rules(system, accounts):
    t, p = system.token, system.people
    with ape.reverts(t.AlreadyRegistered, account=p.restaurant.address, kind=3):
        t.registerTreasury(p.restaurant, sender=p.admin)
    with ape.reverts(t.AlreadyRegistered, account=p.treasury.address, kind=1):
        t.registerVendor(p.treasury, int(Category.RESTAURANT), "x", sender=p.registrar)
    with ape.reverts(t.InvalidCategory, category=64):
        t.registerVendor(accounts[31], 64, "x", sender=p.registrar)
    with ape.reverts(t.InvalidCategory, category=0):
        t.registerVendor(accounts[31], 0, "x", sender=p.registrar)
    with ape.reverts(t.SpenderInOtherProgram):
        t.enrol([p.ev_recipients[0]], system.bp, [b32("x")], sender=p.manager)
    with ape.reverts(t.AlreadyRegistered):
        t.enrol([p.restaurant], system.bp, [b32("x")], sender=p.manager)
    with ape.reverts(t.UnknownProgram, programId=7):
        t.enrol([accounts[31]], 7, [b32("x")], sender=p.manager)
    with ape.reverts(t.NotRegistered):
        t.freeze(accounts[31], "who?", sender=p.compliance)
    receipt = t.enrol([p.spenders[0]], system.bp, [b32("MOEF-TAX")], sender=p.manager)
    assert t.departmentOf(p.spenders[0]) == b32("MOEF-TAX")
    assert receipt.events[0].department == b32("MOEF-TAX")


def test_program_parameters_are_validated(system):
    t, p = system.token, system.people
    base = ["BP", p.treasury.address, 100, 200, 540, 0, 1_000, 500, [1], [10]]

    def bad(**changes):
        params = list(base)
        for index, value in changes.items():
            params[int(index[1:])] = value
        return tuple(params)

    with ape.reverts(t.InvalidWindow, start=200, end=200):
        t.createProgram(bad(_2=200), sender=p.manager)
    with ape.reverts(t.InvalidUtcOffset, utcOffsetMinutes=900):
        t.createProgram(bad(_4=900), sender=p.manager)
    with ape.reverts(t.InvalidHours, weekday=0, opening=10, closing=9):
        t.createProgram(bad(_5=10 | 9 << 5), sender=p.manager)
    with ape.reverts(t.InvalidHours, weekday=2, opening=0, closing=25):
        t.createProgram(bad(_5=25 << 25), sender=p.manager)
    with ape.reverts(t.LengthMismatch, expected=2, actual=1):
        t.createProgram(bad(_8=[1, 2]), sender=p.manager)
    with ape.reverts(t.WrongKind, account=p.outsider.address):
        t.createProgram(bad(_1=p.outsider.address), sender=p.manager)
    with ape.reverts(t.InvalidCategory, category=64):
        t.createProgram(bad(_8=[64]), sender=p.manager)

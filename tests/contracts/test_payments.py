"""Payment rules: each rule holds, and breaking it reverts with the error that names it.

Most violations are tried twice: as the first payment of the period (the Solidity path, which refreshes the
cached limits) and after a warm-up payment in the same category (the assembly fast path, which must decline
and leave the Solidity path to name the rule). The ERC-1404 view must predict every outcome.
"""

from __future__ import annotations

from datetime import datetime, timedelta

import ape
import pytest
from support.system import KST, PROGRAM_END, ZERO, b32, pay, set_time, ts

from deposit_token.domain.categories import Category
from deposit_token.domain.kinds import Restriction
from deposit_token.domain.rules import local_time

R = Restriction.__members__  # Restrictions.sol codes by name


def warm(system, spender=None, vendor=None):
    """One small payment so the spender's cached limits for the vendor's category are current."""
    p = system.people
    pay(system, spender or p.spenders[0], vendor or p.restaurant, 1_000)


def predicted(system, spender, vendor, amount, receipt=ZERO, evidence=ZERO) -> int:
    """The ERC-1404 verdict for the next block (its timestamp is the one `set_time` chose)."""
    return system.token.detectPaymentRestriction(spender, vendor, amount, receipt, evidence, block_id="pending")


@pytest.mark.parametrize("warm_first", [False, True], ids=["refresh-path", "fast-path"])
def test_payment_moves_tokens_and_tells_auditors_everything(system, chain, warm_first):
    t, p = system.token, system.people
    s = p.spenders[0]
    if warm_first:
        warm(system)
    before_s, before_v, supply = t.balanceOf(s), t.balanceOf(p.restaurant), t.totalSupply()
    spent_before = t.spendingThisPeriod(s, Category.RESTAURANT)[1]
    assert predicted(system, s, p.restaurant, 45_000) == R["OK"]
    receipt = pay(system, s, p.restaurant, 45_000, receipt=7001)
    assert t.balanceOf(s) == before_s - 45_000
    assert t.balanceOf(p.restaurant) == before_v + 45_000
    assert t.totalSupply() == supply
    transfer, payment = receipt.events
    assert transfer.event_name == "Transfer" and transfer.value == 45_000
    assert payment.event_name == "Payment"
    period, _, _ = local_time(chain.blocks.head.timestamp, 540)
    assert payment.payer == s.address and payment.vendor == p.restaurant.address
    assert payment.programId == system.bp and payment.category == Category.RESTAURANT
    assert payment.period == period == 203001
    assert payment.amount == 45_000 and payment.receiptId == b32(7001) and payment.evidenceHash == ZERO
    assert payment.capLeft == 2_000_000 - spent_before - 45_000
    assert t.spendingThisPeriod(s, Category.RESTAURANT) == (203001, spent_before + 45_000, 2_000_000)


def test_spending_record_caches_period_end_in_kst(system):
    t, p = system.token, system.people
    warm(system)
    record = t.spendingOf(p.spenders[0], Category.RESTAURANT)
    assert record.period == 203001
    assert record.periodEnd == ts(datetime(2030, 2, 1, tzinfo=KST))
    assert record.spent == 1_000 and record.cap == 2_000_000
    assert record.perPaymentLimit == 1_000_000 and record.evidenceThreshold == 500_000
    assert record.version == t.programRules(system.bp).version


@pytest.mark.parametrize("warm_first", [False, True], ids=["refresh-path", "fast-path"])
def test_category_not_allowed(system, warm_first):
    t, p = system.token, system.people
    if warm_first:
        warm(system, vendor=p.restaurant)
    s = p.spenders[0]
    assert predicted(system, s, p.bar, 10_000) == R["CATEGORY_NOT_ALLOWED"]
    with ape.reverts(
        t.CategoryNotAllowed, programId=system.bp, vendor=p.bar.address, category=Category.ENTERTAINMENT_BAR
    ):
        pay(system, s, p.bar, 10_000)


@pytest.mark.parametrize(
    "local, allowed",
    [
        (datetime(2030, 1, 8, 5, 59, 59, tzinfo=KST), False),
        (datetime(2030, 1, 8, 6, 0, 0, tzinfo=KST), True),
        (datetime(2030, 1, 8, 22, 59, 59, tzinfo=KST), True),
        (datetime(2030, 1, 8, 23, 0, 0, tzinfo=KST), False),
        (datetime(2030, 1, 9, 2, 30, tzinfo=KST), False),
    ],
    ids=["05:59:59", "06:00", "22:59:59", "23:00", "02:30"],
)
@pytest.mark.parametrize("warm_first", [False, True], ids=["refresh-path", "fast-path"])
def test_business_promotion_hours_in_kst(system, chain, local, allowed, warm_first):
    t, p = system.token, system.people
    s = p.spenders[1]
    if warm_first:
        set_time(chain, datetime(2030, 1, 7, 12, 0, tzinfo=KST))
        warm(system, spender=s)
    set_time(chain, local)
    if allowed:
        pay(system, s, p.restaurant, 20_000)
    else:
        weekday, hour = local.weekday(), local.hour
        with ape.reverts(t.OutsideAllowedHours, programId=system.bp, weekday=weekday, hour=hour):
            pay(system, s, p.restaurant, 20_000)


def test_ev_subsidy_is_payable_on_working_days_09_to_18_only(system, chain):
    t, p = system.token, system.people
    r = p.ev_recipients[0]
    set_time(chain, datetime(2030, 1, 12, 11, 0, tzinfo=KST))  # Saturday
    with ape.reverts(t.OutsideAllowedHours, programId=system.ev, weekday=5, hour=11):
        t.pay(p.installer, 3_000_000, b32(1), b32("quote-2030-001"), sender=r)
    set_time(chain, datetime(2030, 1, 14, 18, 0, tzinfo=KST))  # Monday 18:00
    with ape.reverts(t.OutsideAllowedHours, programId=system.ev, weekday=0, hour=18):
        t.pay(p.installer, 3_000_000, b32(1), b32("quote-2030-001"), sender=r)
    set_time(chain, datetime(2030, 1, 15, 9, 0, tzinfo=KST))  # Tuesday 09:00
    t.pay(p.installer, 3_000_000, b32(1), b32("quote-2030-001"), sender=r)
    assert t.balanceOf(p.installer) == 3_000_000


@pytest.mark.parametrize("warm_first", [False, True], ids=["refresh-path", "fast-path"])
def test_per_payment_limit(system, warm_first):
    t, p = system.token, system.people
    s = p.spenders[0]
    if warm_first:
        warm(system)
    evidence = b32("meeting-minutes")
    pay(system, s, p.restaurant, 1_000_000, evidence=evidence)
    assert predicted(system, s, p.restaurant, 1_000_001, evidence=evidence) == R["OVER_PAYMENT_LIMIT"]
    with ape.reverts(t.PaymentLimitExceeded, programId=system.bp, amount=1_000_001, limit=1_000_000):
        pay(system, s, p.restaurant, 1_000_001, evidence=evidence)


@pytest.mark.parametrize("warm_first", [False, True], ids=["refresh-path", "fast-path"])
def test_category_cap_per_month(system, chain, warm_first):
    t, p = system.token, system.people
    s = p.spenders[2]
    if warm_first:
        pay(system, s, p.cafe, 1)
    spent = t.spendingThisPeriod(s, Category.CAFE_BAKERY)[1]
    pay(system, s, p.cafe, 300_000 - spent)
    assert t.spendingThisPeriod(s, Category.CAFE_BAKERY) == (203001, 300_000, 300_000)
    assert predicted(system, s, p.cafe, 1) == R["OVER_CATEGORY_CAP"]
    with ape.reverts(
        t.CategoryCapExceeded, spender=s.address, category=Category.CAFE_BAKERY, period=203001, amount=1, capLeft=0
    ):
        pay(system, s, p.cafe, 1)
    # Another category has its own cap.
    pay(system, s, p.restaurant, 50_000)
    # The cap is per calendar month in KST: 2030-01-31 23:30 UTC is already February in Seoul... but 08:30 KST.
    set_time(chain, datetime(2030, 2, 1, 8, 30, tzinfo=KST))
    assert t.spendingThisPeriod(s, Category.CAFE_BAKERY, block_id="pending") == (203002, 0, 300_000)
    receipt = pay(system, s, p.cafe, 300_000)
    assert receipt.events[1].period == 203002 and receipt.events[1].capLeft == 0


def test_month_boundary_follows_kst_not_utc(system, chain):
    t, p = system.token, system.people
    s = p.spenders[3]
    pay(system, s, p.cafe, 300_000)
    # 2030-01-31 22:30 KST = 13:30 UTC: still January in Seoul, cap used up.
    set_time(chain, datetime(2030, 1, 31, 22, 30, tzinfo=KST))
    with ape.reverts(t.CategoryCapExceeded):
        pay(system, s, p.cafe, 1)
    # 2030-02-01 06:00 KST = 2030-01-31 21:00 UTC: January in UTC, February in Seoul.
    set_time(chain, datetime(2030, 2, 1, 6, 0, tzinfo=KST))
    pay(system, s, p.cafe, 1)
    assert t.spendingThisPeriod(s, Category.CAFE_BAKERY, block_id="pending") == (203002, 1, 300_000)


@pytest.mark.parametrize("warm_first", [False, True], ids=["refresh-path", "fast-path"])
def test_evidence_required_at_threshold(system, warm_first):
    t, p = system.token, system.people
    s = p.spenders[0]
    if warm_first:
        warm(system)
    pay(system, s, p.restaurant, 499_999)
    assert predicted(system, s, p.restaurant, 500_000) == R["EVIDENCE_REQUIRED"]
    with ape.reverts(t.EvidenceRequired, amount=500_000, threshold=500_000):
        pay(system, s, p.restaurant, 500_000)
    receipt = pay(system, s, p.restaurant, 500_000, evidence=b32("attendees: MOEF x2, KDI x3"))
    assert receipt.events[1].evidenceHash == b32("attendees: MOEF x2, KDI x3")


@pytest.mark.parametrize("warm_first", [False, True], ids=["refresh-path", "fast-path"])
def test_receipt_paid_once_per_vendor_forever(system, chain, warm_first):
    t, p = system.token, system.people
    s, other = p.spenders[0], p.spenders[1]
    if warm_first:
        warm(system)
        warm(system, spender=other)
    pay(system, s, p.restaurant, 30_000, receipt=123_456)
    assert t.receiptUsed(p.restaurant, b32(123_456))
    assert not t.receiptUsed(p.restaurant, b32(123_457))
    assert predicted(system, other, p.restaurant, 30_000, receipt=b32(123_456)) == R["RECEIPT_USED"]
    with ape.reverts(t.ReceiptAlreadyUsed, vendor=p.restaurant.address, receiptId=b32(123_456)):
        pay(system, other, p.restaurant, 30_000, receipt=123_456)
    # Forever: next month too.
    set_time(chain, datetime(2030, 3, 4, 12, 0, tzinfo=KST))
    with ape.reverts(t.ReceiptAlreadyUsed):
        pay(system, s, p.restaurant, 30_000, receipt=123_456)
    # Same number at another vendor, and the neighbouring number in the same bitmap word, are fine.
    pay(system, s, p.cafe, 5_000, receipt=123_456)
    pay(system, s, p.restaurant, 30_000, receipt=123_457)
    hashed = bytes.fromhex("9f" * 32)
    pay(system, s, p.restaurant, 10_000, receipt=hashed)
    with ape.reverts(t.ReceiptAlreadyUsed):
        pay(system, other, p.restaurant, 10_000, receipt=hashed)


@pytest.mark.parametrize("warm_first", [False, True], ids=["refresh-path", "fast-path"])
def test_frozen_payer_and_frozen_vendor(system, warm_first):
    t, p = system.token, system.people
    s = p.spenders[0]
    if warm_first:
        warm(system)
    t.freeze(s, "investigation 2030-17", sender=p.compliance)
    assert predicted(system, s, p.restaurant, 10_000) == R["SENDER_FROZEN"]
    with ape.reverts(t.AccountFrozen, account=s.address):
        pay(system, s, p.restaurant, 10_000)
    t.unfreeze(s, "cleared", sender=p.compliance)
    t.freeze(p.restaurant, "licence check", sender=p.compliance)
    assert predicted(system, s, p.restaurant, 10_000) == R["RECIPIENT_FROZEN"]
    with ape.reverts(t.AccountFrozen, account=p.restaurant.address):
        pay(system, s, p.restaurant, 10_000)


@pytest.mark.parametrize("warm_first", [False, True], ids=["refresh-path", "fast-path"])
def test_suspended_vendor(system, warm_first):
    t, p = system.token, system.people
    s = p.spenders[0]
    if warm_first:
        warm(system)
    t.suspendVendor(p.restaurant, "hygiene inspection failed", sender=p.compliance)
    assert predicted(system, s, p.restaurant, 10_000) == R["VENDOR_SUSPENDED"]
    with ape.reverts(t.VendorIsSuspended, vendor=p.restaurant.address):
        pay(system, s, p.restaurant, 10_000)
    t.reactivateVendor(p.restaurant, "re-inspected", sender=p.compliance)
    pay(system, s, p.restaurant, 10_000)


@pytest.mark.parametrize("warm_first", [False, True], ids=["refresh-path", "fast-path"])
def test_pause_and_program_pause(system, warm_first):
    t, p = system.token, system.people
    s = p.spenders[0]
    if warm_first:
        warm(system)
    t.pause(sender=p.compliance)
    assert t.paused()
    assert predicted(system, s, p.restaurant, 10_000) == R["PAUSED"]
    with ape.reverts(t.TokenPaused):
        pay(system, s, p.restaurant, 10_000)
    t.setProgramPaused(system.bp, True, sender=p.compliance)
    t.unpause(sender=p.compliance)
    # The program stays paused on its own; the other program runs.
    with ape.reverts(t.ProgramHalted, programId=system.bp):
        pay(system, s, p.restaurant, 10_000)
    assert t.programRules(system.ev).halted is False
    t.setProgramPaused(system.bp, False, sender=p.compliance)
    pay(system, s, p.restaurant, 10_000)


def test_validity_window(system, chain):
    t, p = system.token, system.people
    s = p.spenders[0]
    set_time(chain, PROGRAM_END - timedelta(hours=12))  # 12:00 KST on the last day
    pay(system, s, p.restaurant, 10_000)
    set_time(chain, PROGRAM_END + timedelta(hours=10))
    assert predicted(system, s, p.restaurant, 10_000) == R["PROGRAM_ENDED"]
    with ape.reverts(t.ProgramEnded, programId=system.bp, end=ts(PROGRAM_END)):
        pay(system, s, p.restaurant, 10_000)


def test_not_started(system, accounts):
    t, p = system.token, system.people
    later = (
        "BP-2031",
        p.treasury.address,
        ts(PROGRAM_END),
        ts(PROGRAM_END) + 86400 * 30,
        540,
        t.programRules(system.bp).openingHours,
        1_000_000,
        500_000,
        [int(Category.RESTAURANT)],
        [100_000],
    )
    t.createProgram(later, sender=p.manager)
    new_id = t.programCount()
    official = accounts[30]
    t.enrol([official], new_id, [b32("MOEF")], sender=p.manager)
    t.allocate(b32("bp2031-1"), new_id, [official], [100_000], sender=p.manager)
    assert predicted(system, official, p.restaurant, 10_000) == R["PROGRAM_NOT_STARTED"]
    with ape.reverts(t.ProgramNotStarted, programId=new_id, start=ts(PROGRAM_END)):
        pay(system, official, p.restaurant, 10_000)


def test_insufficient_balance_and_zero_amount(system):
    t, p = system.token, system.people
    s = p.spenders[0]
    t.returnToTreasury(t.balanceOf(s) - 5_000, sender=s)
    assert predicted(system, s, p.restaurant, 5_001) == R["INSUFFICIENT_BALANCE"]
    with ape.reverts(t.InsufficientBalance, account=s.address, balance=5_000, needed=5_001):
        pay(system, s, p.restaurant, 5_001)
    assert predicted(system, s, p.restaurant, 0) == R["ZERO_AMOUNT"]
    with ape.reverts(t.ZeroAmount):
        pay(system, s, p.restaurant, 0)


def test_only_spenders_pay_and_only_vendors_are_paid(system):
    t, p = system.token, system.people
    s = p.spenders[0]
    assert predicted(system, p.outsider, p.restaurant, 1) == R["SENDER_NOT_REGISTERED"]
    with ape.reverts(t.NotRegistered, account=p.outsider.address):
        pay(system, p.outsider, p.restaurant, 1)
    assert predicted(system, s, p.outsider, 1) == R["RECIPIENT_NOT_REGISTERED"]
    with ape.reverts(t.NotRegistered, account=p.outsider.address):
        pay(system, s, p.outsider, 1)
    with ape.reverts(
        t.TransferPathNotAllowed, **{"from": s.address, "to": p.spenders[1].address, "fromKind": 2, "toKind": 2}
    ):
        pay(system, s, p.spenders[1], 1)
    with ape.reverts(t.TransferPathNotAllowed):
        pay(system, p.treasury, p.restaurant, 1)
    assert predicted(system, p.restaurant, p.cafe, 1) == R["PATH_NOT_ALLOWED"]
    with ape.reverts(t.TransferPathNotAllowed):
        pay(system, p.restaurant, p.cafe, 1)


def test_messages_for_every_code(system):
    t = system.token
    messages = {code: t.messageForTransferRestriction(code) for code in R.values()}
    assert len(set(messages.values())) == len(R)
    assert "category" in messages[R["CATEGORY_NOT_ALLOWED"]]
    assert t.messageForTransferRestriction(99) == "Unknown restriction code."

"""Findings of the payment-engine review (issue 8), each fixed and pinned here on a real Anvil chain.

* The program version (uint16) no longer wraps from 65,535 to 1: updateProgram refuses (ProgramVersionExhausted),
  so a spending cache written at an old version can never look current again.
* "category <= 63" holds wherever a category is read: both payment paths mask the program's 64-bit category set
  before testing a vendor's category bit, so a category above 63 (which registration refuses) is never allowed,
  not even by a bit of the opening hours stored above the set.
* The fast path's `Payment.period` is the cached period: right because timestamps never go back and every UTC
  offset change bumps the program version. A change of offset across a month boundary, both ways, gives the next
  payment (and the fast-path payment after it) the period of the new offset.
* transferFrom beyond the allowance reverts with ERC20InsufficientAllowance (ERC-6093), not InsufficientBalance.
* pause/unpause still visit every program (the token-wide pause is mirrored into each program's rules word, which
  a payment reads anyway): their cost per program is measured, and the number of programs for which the emergency
  stop still fits one block is pinned (DepositTokenAdmin.pause's NatSpec says why an O(1) stop would cost every
  payment a cold read).

Storage is written with anvil_setStorageAt where reaching a state by transactions would take 65k updates or a
vendor the contract refuses to register; the slots are those tests/contracts/test_architecture.py pins.
"""

from __future__ import annotations

from datetime import datetime

import ape
import pytest
from eth_utils import keccak
from support.system import KST, b32, pay, set_time, ts

from deposit_token.domain.sentences import describe

ACCOUNTS_SLOT, RULES_SLOT, SPENDING_SLOT = 7, 9, 15  # DepositTokenBase's mappings (test_architecture pins them)
RESTAURANT = 1  # Category.RESTAURANT: allowed by the business-promotion preset, cap 2,000,000 per month
CATEGORY_NOT_ALLOWED = 11  # Restrictions.CATEGORY_NOT_ALLOWED
ALL_DAY = sum((0 | 24 << 5) << (10 * day) for day in range(7))  # 00-24 every weekday
BLOCK_GAS_LIMIT = 30_000_000


def mapping_slot(key: int | str, slot: int) -> int:
    key = int(key, 16) if isinstance(key, str) else key
    return int.from_bytes(keccak(key.to_bytes(32, "big") + slot.to_bytes(32, "big")), "big")


def read_word(chain, address: str, slot: int) -> int:
    return int(chain.provider.make_request("eth_getStorageAt", [address, hex(slot), "latest"]), 16)


def write_word(chain, address: str, slot: int, value: int) -> None:
    chain.provider.make_request("anvil_setStorageAt", [address, f"0x{slot:064x}", f"0x{value:064x}"])


def program_params(token, program_id: int, **changes) -> tuple:
    """The ProgramParams a program has now (categories and caps included), with `changes` applied."""
    rules, config = token.programRules(program_id), token.programConfig(program_id)
    categories = [c for c in range(64) if rules.categories >> c & 1]
    params = {
        "name": token.programName(program_id),
        "treasury": config.treasury,
        "start": rules.start,
        "end": rules.end,
        "utcOffsetMinutes": rules.utcOffsetMinutes,
        "openingHours": rules.openingHours,
        "perPaymentLimit": config.perPaymentLimit,
        "evidenceThreshold": config.evidenceThreshold,
        "categories": categories,
        "caps": [token.categoryCap(program_id, c) for c in categories],
    }
    params.update(changes)
    return tuple(params.values())


# --- a. the program version refuses to wrap ------------------------------------------------------------------------


def test_program_version_refuses_to_wrap(system, chain):
    t, p = system.token, system.people
    s = p.spenders[0]
    pay(system, s, p.restaurant, 1_000)
    assert t.spendingOf(s, RESTAURANT).version == 1  # the cache the old code would have revived at 65,535 -> 1
    rules_slot = mapping_slot(system.bp, RULES_SLOT)
    word = read_word(chain, t.address, rules_slot)
    assert word & 0xFFFF == 1
    write_word(chain, t.address, rules_slot, word & ~0xFFFF | 0xFFFE)  # as after 65,533 updates
    assert t.programRules(system.bp).version == 0xFFFE

    tx = t.updateProgram(system.bp, program_params(t, system.bp), sender=p.manager)
    assert [e.version for e in tx.events if e.event_name == "ProgramConfigured"] == [0xFFFF]
    lowered = program_params(t, system.bp, caps=[5_000] * len(program_params(t, system.bp)[-1]))
    with ape.reverts(t.ProgramVersionExhausted, programId=system.bp):
        t.updateProgram(system.bp, lowered, sender=p.manager)
    assert t.programRules(system.bp).version == 0xFFFF
    assert t.categoryCap(system.bp, RESTAURANT) == 2_000_000  # nothing of the refused update was applied

    # The version-1 cache stays stale: the next payment refreshes it to the program's version.
    pay(system, s, p.restaurant, 1_000)
    record = t.spendingOf(s, RESTAURANT)
    assert record.version == 0xFFFF and record.spent == 2_000


# --- b. a category above 63 is never allowed -------------------------------------------------------------------------


def _forge_vendor_category(chain, token, vendor, category: int) -> None:
    """Rewrites a registered vendor's category byte (registerVendor refuses anything above 63)."""
    slot = mapping_slot(vendor.address, ACCOUNTS_SLOT)
    word = read_word(chain, token.address, slot)
    write_word(chain, token.address, slot, word & ~(0xFF << 120) | category << 120)
    assert token.accountOf(vendor).category == category


@pytest.mark.parametrize("cache", ["no-cache", "current-cache"], ids=["solidity-path", "fast-path-declines"])
def test_category_above_63_is_never_allowed(system, chain, cache):
    t, p = system.token, system.people
    s, vendor, category = p.spenders[0], p.cafe, 65
    rules = t.programRules(system.bp)
    # Read without the mask, category 65 would be bit 120 + 65 = 184 + 1 of the rules word: bit 1 of the opening
    # hours (Monday opens at 06 = 0b00110), which is set. The mask makes it bit 65 of a 64-bit set: zero.
    assert rules.openingHours >> (category - 64) & 1 == 1
    _forge_vendor_category(chain, t, vendor, category)
    if cache == "current-cache":
        # A current spending cache for the forged category, so that only the category rule stands in the way
        # of the fast path: period 2030-01 (KST), version current, cap and limits generous.
        period_end = ts(datetime(2030, 2, 1, tzinfo=KST))
        word = (
            203001
            | period_end << 24
            | rules.version << 64
            | 0 << 80
            | 1_000_000 << 128
            | 1_000_000 << 176
            | 500_000 << 216
        )
        write_word(chain, t.address, mapping_slot(category, mapping_slot(s.address, SPENDING_SLOT)), word)
        assert t.spendingOf(s, category).cap == 1_000_000
    balances = t.balanceOf(s), t.balanceOf(vendor)
    assert t.detectPaymentRestriction(s, vendor, 10_000, b32(0), b32(0), block_id="pending") == CATEGORY_NOT_ALLOWED
    with ape.reverts(t.CategoryNotAllowed, programId=system.bp, vendor=vendor.address, category=category):
        pay(system, s, vendor, 10_000)
    with ape.reverts(t.CategoryNotAllowed):
        t.transfer(vendor, 10_000, sender=s)
    assert (t.balanceOf(s), t.balanceOf(vendor)) == balances


def test_registration_and_overrides_refuse_categories_above_63(system):
    t, p = system.token, system.people
    for category in (0, 64, 65, 255):
        with ape.reverts(t.InvalidCategory, category=category):
            t.registerVendor(p.outsider, category, "Nowhere", sender=p.registrar)
        with ape.reverts(t.InvalidCategory, category=category):
            t.setCapOverride(p.spenders[0], category, 1, sender=p.manager)


# --- c. the fast path's Payment.period after a change of UTC offset -------------------------------------------------


@pytest.mark.parametrize(
    "warm_at, new_offset, pay_at, old_period, new_period",
    [
        # 23:30 KST on 31 January is already 04:30 on 1 February at UTC+14.
        (datetime(2030, 1, 31, 12, 0, tzinfo=KST), 840, datetime(2030, 1, 31, 23, 30, tzinfo=KST), 203001, 203002),
        # 07:00 KST on 1 February is still 22:00 on 31 January in UTC.
        (datetime(2030, 2, 1, 6, 30, tzinfo=KST), 0, datetime(2030, 2, 1, 7, 0, tzinfo=KST), 203002, 203001),
    ],
    ids=["offset-forward-into-next-month", "offset-back-into-previous-month"],
)
def test_offset_change_gives_the_next_payment_the_new_period(
    system, chain, warm_at, new_offset, pay_at, old_period, new_period
):
    t, p = system.token, system.people
    s = p.spenders[0]
    set_time(chain, warm_at)
    pay(system, s, p.restaurant, 1_000)
    cached = t.spendingOf(s, RESTAURANT)
    assert cached.period == old_period
    assert ts(pay_at) < cached.periodEnd  # by time alone, the cache would still be current at `pay_at`
    version = t.programRules(system.bp).version
    t.updateProgram(
        system.bp, program_params(t, system.bp, utcOffsetMinutes=new_offset, openingHours=ALL_DAY), sender=p.manager
    )
    assert t.programRules(system.bp).version == version + 1  # an offset change always bumps the version

    set_time(chain, pay_at)
    first = pay(system, s, p.restaurant, 45_000)  # version changed: the fast path declines, the Solidity path pays
    set_time(chain, ts(pay_at) + 60)
    second = pay(system, s, p.restaurant, 5_000)  # cache refreshed in the new offset: the fast path pays
    assert second.gas_used < first.gas_used - 5_000  # (the second one took the fast path)
    periods = [e.period for r in (first, second) for e in r.events if e.event_name == "Payment"]
    assert periods == [new_period, new_period]
    cap_left = [e.capLeft for r in (first, second) for e in r.events if e.event_name == "Payment"]
    assert cap_left == [2_000_000 - 45_000, 2_000_000 - 50_000]  # nothing spent yet in the new period
    record = t.spendingOf(s, RESTAURANT)
    assert record.period == new_period and record.version == version + 1
    assert t.spendingThisPeriod(s, RESTAURANT) == (new_period, 50_000, 2_000_000)


# --- e. transferFrom beyond the allowance ----------------------------------------------------------------------------


def test_transfer_from_beyond_the_allowance_names_the_allowance(system):
    t, p = system.token, system.people
    s, terminal = p.spenders[0], p.outsider
    assert t.ERC20InsufficientAllowance.abi.selector == "ERC20InsufficientAllowance(address,uint256,uint256)"
    t.approve(terminal, 5_000, sender=s)
    with ape.reverts(t.ERC20InsufficientAllowance, spender=terminal.address, allowance=5_000, needed=6_000):
        t.transferFrom(s, p.restaurant, 6_000, sender=terminal)
    assert t.allowance(s, terminal) == 5_000
    assert describe(
        "ERC20InsufficientAllowance", {"spender": terminal.address, "allowance": 5_000, "needed": 6_000}
    ) == (f"{terminal.address} may move 5,000 KRW on the holder's behalf, 6,000 KRW needed")
    assert "allowance" not in describe("InsufficientBalance", {"account": s.address, "balance": 5_000, "needed": 5_001})
    # A short balance behind a sufficient allowance is still InsufficientBalance.
    t.returnToTreasury(t.balanceOf(s) - 5_000, sender=s)
    t.approve(terminal, 2**256 - 1, sender=s)
    with ape.reverts(t.InsufficientBalance, account=s.address, balance=5_000, needed=5_001):
        t.transferFrom(s, p.restaurant, 5_001, sender=terminal)
    t.transferFrom(s, p.restaurant, 5_000, sender=terminal)
    assert t.balanceOf(s) == 0 and t.allowance(s, terminal) == 2**256 - 1


# --- d. the emergency stop's cost grows with the number of programs --------------------------------------------------


def test_pause_cost_per_program_and_how_many_programs_one_block_can_stop(system, chain):
    """pause/unpause mirror the token-wide flag into every program's rules word (so a payment reads no extra
    slot): O(programs). This pins the cost per program and the number of programs whose emergency stop still fits
    one 30M-gas block, so that a change in either is seen."""
    t, p = system.token, system.people

    def stop_and_resume() -> tuple[int, int]:
        stop = t.pause(sender=p.compliance)
        resume = t.unpause(sender=p.compliance)
        return stop.gas_used, resume.gas_used

    few = t.programCount()
    stop_few, resume_few = stop_and_resume()
    added = 10
    for i in range(added):
        t.createProgram(program_params(t, system.bp, name=f"BP-extra-{i}"), sender=p.manager)
    stop_many, resume_many = stop_and_resume()
    per_stop = (stop_many - stop_few) / added  # one cold read and one write of the rules word
    per_resume = (resume_many - resume_few) / added  # and a cold read of the program's own pause flag
    fits_stop = int((BLOCK_GAS_LIMIT - (stop_few - few * per_stop)) // per_stop)
    fits_resume = int((BLOCK_GAS_LIMIT - (resume_few - few * per_resume)) // per_resume)
    print(
        f"pause: {per_stop:,.0f} gas per program, one block stops {fits_stop:,} programs; "
        f"unpause: {per_resume:,.0f} gas per program, one block resumes {fits_resume:,}"
    )
    assert 4_500 <= per_stop <= 5_600 and 6_500 <= per_resume <= 7_800
    # uint16 program ids allow 65,535 programs: far more than one block can stop or resume.
    assert fits_stop >= 5_000 and fits_resume >= 3_500

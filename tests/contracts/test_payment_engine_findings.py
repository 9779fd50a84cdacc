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
* The emergency stop is O(1): pause/unpause write the one `_paused` flag, which every movement reads itself (it
  used to be mirrored into every program's rules word, ~5,250 gas per program). Their gas is the same with 1 and
  with 200 programs; a paused token refuses payments on both paths (TokenPaused), returns and allocations; the
  token-wide pause and a program's own pause are independent; only COMPLIANCE_ROLE may pause or unpause.

Storage is written with anvil_setStorageAt where reaching a state by transactions would take 65k updates or a
vendor the contract refuses to register; the slots are those tests/contracts/test_architecture.py pins.
"""

from __future__ import annotations

from datetime import datetime

import ape
import pytest
from eth_utils import keccak
from support.system import KST, ZERO, b32, pay, set_time, ts

from deposit_token.chain.contracts import deploy_system
from deposit_token.domain.sentences import describe

ACCOUNTS_SLOT, RULES_SLOT, SPENDING_SLOT = 7, 9, 15  # DepositTokenBase's mappings (test_architecture pins them)
RESTAURANT = 1  # Category.RESTAURANT: allowed by the business-promotion preset, cap 2,000,000 per month
CATEGORY_NOT_ALLOWED = 11  # Restrictions.CATEGORY_NOT_ALLOWED
ALL_DAY = sum((0 | 24 << 5) << (10 * day) for day in range(7))  # 00-24 every weekday


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


# --- d. the emergency stop is O(1) ------------------------------------------------------------------------------------

PAUSED = 1  # Restrictions.PAUSED
MANY_PROGRAMS = 200
PROGRAMS_PER_MULTICALL = 50  # createProgram of the preset costs ~0.3M gas: 50 fit well inside a 30M-gas block
SAME_GAS = 200  # gas: "the same" cost, whatever the number of programs (an O(programs) stop added ~5,250 each)


def test_emergency_stop_costs_the_same_for_1_and_for_200_programs(system):
    """pause/unpause write one slot: their gas does not grow with the number of programs, so the stop always
    fits a block. Measured on a token of its own that starts with exactly one program."""
    p = system.people
    t = deploy_system(p.admin).token
    for role, who in (("PROGRAM_MANAGER_ROLE", p.manager), ("COMPLIANCE_ROLE", p.compliance)):
        t.grantRole(getattr(t, role)(), who, sender=p.admin)
    t.registerTreasury(p.treasury, sender=p.admin)
    params = program_params(system.token, system.bp)  # the business-promotion preset, treasury p.treasury
    t.createProgram(params, sender=p.manager)

    def stop_and_resume() -> tuple[int, int]:
        return t.pause(sender=p.compliance).gas_used, t.unpause(sender=p.compliance).gas_used

    assert t.programCount() == 1
    stop_one, resume_one = stop_and_resume()
    call = t.createProgram.encode_input(params)
    while t.programCount() < MANY_PROGRAMS:
        n = min(PROGRAMS_PER_MULTICALL, MANY_PROGRAMS - t.programCount())
        t.multicall([call] * n, sender=p.manager)
    assert t.programCount() == MANY_PROGRAMS
    stop_many, resume_many = stop_and_resume()
    print(
        f"pause {stop_one} / {stop_many} gas, unpause {resume_one} / {resume_many} gas (1 / {MANY_PROGRAMS} programs)"
    )
    assert abs(stop_many - stop_one) <= SAME_GAS and abs(resume_many - resume_one) <= SAME_GAS
    assert max(stop_many, resume_many) < 40_000  # one flag write, one event: far below a program's old ~5,250
    # The flag (packed with the program count in one slot) is all that changed: no program is halted.
    t.pause(sender=p.compliance)
    assert t.paused() and not any(t.programRules(i).halted for i in (1, MANY_PROGRAMS // 2, MANY_PROGRAMS))


@pytest.mark.parametrize("warm_first", [False, True], ids=["solidity-path", "fast-path"])
def test_a_paused_token_refuses_payments_on_both_paths_and_pays_after_unpause(system, warm_first):
    t, p = system.token, system.people
    s = p.spenders[0]
    if warm_first:
        pay(system, s, p.restaurant, 1_000)  # the cached limits are current: the fast path would take it
    t.pause(sender=p.compliance)
    assert not t.programRules(system.bp).halted  # not mirrored: the payment reads the flag itself
    assert t.detectPaymentRestriction(s, p.restaurant, 10_000, ZERO, ZERO) == PAUSED
    assert t.detectTransferRestriction(s, p.restaurant, 10_000) == PAUSED
    with ape.reverts(t.TokenPaused):
        pay(system, s, p.restaurant, 10_000)
    with ape.reverts(t.TokenPaused):
        t.transfer(p.restaurant, 10_000, sender=s)
    t.unpause(sender=p.compliance)
    assert t.detectPaymentRestriction(s, p.restaurant, 10_000, ZERO, ZERO) == 0
    before = t.balanceOf(p.restaurant)
    pay(system, s, p.restaurant, 10_000)
    t.transfer(p.restaurant, 10_000, sender=s)
    assert t.balanceOf(p.restaurant) == before + 20_000


def test_a_paused_token_refuses_returns_and_allocations(system):
    t, p = system.token, system.people
    s = p.spenders[0]
    t.pause(sender=p.compliance)
    assert t.detectTransferRestriction(s, p.treasury, 1_000) == PAUSED
    with ape.reverts(t.TokenPaused):
        t.returnToTreasury(1_000, sender=s)
    with ape.reverts(t.TokenPaused):
        t.allocate(b32("paused-batch"), system.bp, [s], [1_000], sender=p.manager)
    t.unpause(sender=p.compliance)
    t.returnToTreasury(1_000, sender=s)
    t.allocate(b32("paused-batch"), system.bp, [s], [1_000], sender=p.manager)


def test_token_pause_and_program_pause_are_independent(system):
    t, p = system.token, system.people
    s, ev_spender = p.spenders[0], p.ev_recipients[0]

    # A program paused on its own stays halted after a token-wide pause and unpause.
    t.setProgramPaused(system.bp, True, sender=p.compliance)
    t.pause(sender=p.compliance)
    with ape.reverts(t.TokenPaused):  # both paused: the token-wide pause is named
        pay(system, s, p.restaurant, 1_000)
    t.unpause(sender=p.compliance)
    assert t.programRules(system.bp).halted and t.programPaused(system.bp) and not t.paused()
    with ape.reverts(t.ProgramHalted, programId=system.bp):
        pay(system, s, p.restaurant, 1_000)
    with ape.reverts(t.ProgramHalted, programId=system.bp):
        t.returnToTreasury(1_000, sender=s)
    assert t.detectTransferRestriction(ev_spender, p.treasury2, 1_000) == 0  # the other program runs

    # ... and vice versa: the token-wide pause survives a program's resume.
    t.pause(sender=p.compliance)
    t.setProgramPaused(system.bp, False, sender=p.compliance)
    assert not t.programRules(system.bp).halted and t.paused()
    with ape.reverts(t.TokenPaused):
        pay(system, s, p.restaurant, 1_000)
    assert t.detectTransferRestriction(ev_spender, p.treasury2, 1_000) == PAUSED
    t.unpause(sender=p.compliance)
    pay(system, s, p.restaurant, 1_000)


def test_only_compliance_can_pause_or_unpause(system):
    t, p = system.token, system.people
    role = t.COMPLIANCE_ROLE()
    with ape.reverts(t.AccessControlUnauthorizedAccount, account=p.outsider.address, neededRole=role):
        t.pause(sender=p.outsider)
    assert not t.paused()
    t.pause(sender=p.compliance)
    with ape.reverts(t.AccessControlUnauthorizedAccount, account=p.outsider.address, neededRole=role):
        t.unpause(sender=p.outsider)
    assert t.paused()

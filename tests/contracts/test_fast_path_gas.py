"""A warm payment takes PaymentEngine's assembly fast path (`_tryFastPayment`), measured by its gas.

The fast path and the Solidity path have the same effects (test_fast_path_equivalence.py proves and fuzzes
that), so the only outside sign of which one ran is gas: a payment whose cached limits are current costs
~48,100 gas through the fast path (bench/results/gas.json `pay_gas`); if the fast path declined, the same
payment would pay for the declined attempt plus `_checkPayment` + `_executePayment`, which alone costs ~1,300
gas more than the fast path on warm storage (test/fastpath test_gasOfFallbackOnWarmState: 9,987 vs 8,717).
The bound below is the fast path's figure plus 2% (the benchmark's tolerance): a change that makes the warm
payment fall back to the Solidity path, or makes the fast path itself dearer by more than 2%, fails here.
The first payment of a spender in a category (the Solidity path, which refreshes the cached limits) is checked
to cost more than the bound, so the bound really tells the two paths apart.
"""

from __future__ import annotations

# bench/results/gas.json pay_gas: warm payment, 35,000 KRW, no receipt, vendor holds a balance (45,958 until the
# O(1) emergency stop, whose pause flag is one more cold read for every payment)
WARM_PAY_GAS = 48_080
BOUND = int(WARM_PAY_GAS * 1.02)
ZERO = b"\0" * 32


def test_warm_payment_takes_the_fast_path(system):
    t, p = system.token, system.people
    spender, vendor = p.spenders[5], p.restaurant
    # Cold: the spender's first payment in the restaurant category refreshes its cached limits (Solidity path).
    first = t.pay(vendor, 1_000, ZERO, ZERO, sender=spender)
    # Warm: same spender, same category, same period, vendor already holds a balance.
    warm = t.pay(vendor, 35_000, ZERO, ZERO, sender=spender)
    assert [e.event_name for e in warm.events] == ["Transfer", "Payment"]
    assert warm.gas_used <= BOUND, (
        f"a warm payment cost {warm.gas_used} gas (> {BOUND}): it no longer takes the fast path, "
        "or the fast path got dearer"
    )
    assert first.gas_used > BOUND, f"the refreshing payment ({first.gas_used} gas) should cost more than {BOUND}"
    # A second warm payment, with a receipt in a used receipt word, still takes the fast path (same bound +
    # one warm receipt-word write, at most 5,000 gas).
    t.pay(vendor, 1_000, (1001).to_bytes(32, "big"), ZERO, sender=spender)
    again = t.pay(vendor, 1_000, (1002).to_bytes(32, "big"), ZERO, sender=spender)
    assert again.gas_used <= BOUND + 5_000, f"a warm payment with a receipt cost {again.gas_used} gas"
    print(f"gas: refreshing {first.gas_used}, warm {warm.gas_used} (bound {BOUND}), warm with receipt {again.gas_used}")

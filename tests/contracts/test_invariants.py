"""Stateful property test: random sequences of allocations, payments at random times, vendor suspensions,
freezes, clawbacks, returns, pauses, cap overrides, sweeps and period rollovers, run against the real
contracts on Anvil and against a Python model of the rules.

After every step: the contract and the model agree on every accept / reject and on its reason (through the
ERC-1404 view *and* the transaction's outcome); every balance matches; the sum of balances is totalSupply;
spending per spender per category per period never exceeds the cap; a vendor never receives from anyone but a
spender; a receipt is paid at most once.
"""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass, field

from eth_abi import decode as abi_decode
from hypothesis import HealthCheck, settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, invariant, precondition, rule, run_state_machine_as_test
from support.system import MONDAY_10, ZERO, b32, ts
from web3.exceptions import ContractCustomError

from deposit_token.chain.contracts import system_contract_type
from deposit_token.chain.reverts import decode_revert
from deposit_token.domain.kinds import Kind
from deposit_token.domain.rules import local_time, unpack_hours

SPENDER, VENDOR, TREASURY = Kind.SPENDER, Kind.VENDOR, Kind.TREASURY
CODES = {
    0: None,
    1: ("TokenPaused", "ProgramHalted"),
    2: ("NotRegistered",),
    3: ("NotRegistered",),
    4: ("TransferPathNotAllowed",),
    5: ("AccountFrozen",),
    6: ("AccountFrozen",),
    7: ("VendorIsSuspended",),
    8: ("ProgramNotStarted",),
    9: ("ProgramEnded",),
    10: ("OutsideAllowedHours",),
    11: ("CategoryNotAllowed",),
    12: ("PaymentLimitExceeded",),
    13: ("CategoryCapExceeded",),
    14: ("EvidenceRequired",),
    15: ("ReceiptAlreadyUsed",),
    16: ("InsufficientBalance",),
    17: ("ZeroAmount",),
}


@dataclass
class Program:
    treasury: str
    start: int
    end: int
    offset: int
    hours: list[tuple[int, int]]
    caps: dict[int, int]
    limit: int
    threshold: int
    paused: bool = False


@dataclass
class Model:
    """The rules of docs/DOMAIN.md / the contracts issue, written independently of the Solidity."""

    kind: dict[str, int]
    program_of: dict[str, int]
    category_of: dict[str, int]
    programs: dict[int, Program]
    balances: dict[str, int]
    total_supply: int
    frozen: set[str] = field(default_factory=set)
    suspended: set[str] = field(default_factory=set)
    overrides: dict[tuple[str, int], int] = field(default_factory=dict)
    spent: dict[tuple[str, int, int], int] = field(default_factory=lambda: defaultdict(int))
    receipts: set[tuple[str, bytes]] = field(default_factory=set)
    paused: bool = False

    def cap(self, spender: str, category: int) -> int:
        return self.overrides.get((spender, category), self.programs[self.program_of[spender]].caps[category])

    def payment_code(self, payer: str, vendor: str, amount: int, receipt: bytes, evidence: bytes, now: int) -> int:
        if self.kind.get(payer, 0) == 0:
            return 2
        if self.kind.get(vendor, 0) == 0:
            return 3
        if self.kind[payer] != SPENDER or self.kind[vendor] != VENDOR:
            return 4
        if amount == 0:
            return 17
        program = self.programs[self.program_of[payer]]
        if self.paused or program.paused:
            return 1
        if payer in self.frozen:
            return 5
        if vendor in self.frozen:
            return 6
        if vendor in self.suspended:
            return 7
        if now < program.start:
            return 8
        if now >= program.end:
            return 9
        period, weekday, hour = local_time(now, program.offset)
        opening, closing = program.hours[weekday]
        if not opening <= hour < closing:
            return 10
        category = self.category_of[vendor]
        if category not in program.caps:
            return 11
        if amount > program.limit:
            return 12
        if self.spent[(payer, category, period)] + amount > self.cap(payer, category):
            return 13
        if evidence == ZERO and amount >= program.threshold:
            return 14
        if receipt != ZERO and (vendor, receipt) in self.receipts:
            return 15
        if amount > self.balances[payer]:
            return 16
        return 0

    def apply_payment(self, payer: str, vendor: str, amount: int, receipt: bytes, now: int) -> None:
        program = self.programs[self.program_of[payer]]
        period, _, _ = local_time(now, program.offset)
        self.balances[payer] -= amount
        self.balances[vendor] += amount
        self.spent[(payer, self.category_of[vendor], period)] += amount
        if receipt != ZERO:
            self.receipts.add((vendor, receipt))

    def move(self, source: str, target: str, amount: int) -> None:
        self.balances[source] -= amount
        self.balances[target] += amount


def model_from_chain(system) -> Model:
    t, p = system.token, system.people
    everyone = [
        p.treasury,
        p.treasury2,
        *p.spenders,
        *p.ev_recipients,
        p.restaurant,
        p.cafe,
        p.bar,
        p.installer,
        p.supplier,
        p.outsider,
    ]
    kind, program_of, category_of, balances = {}, {}, {}, {}
    for account in everyone:
        record = t.accountOf(account)
        kind[account.address] = record.kind
        program_of[account.address] = record.programId
        category_of[account.address] = record.category
        balances[account.address] = record.balance
    programs = {}
    for program_id in (system.bp, system.ev):
        rules, config = t.programRules(program_id), t.programConfig(program_id)
        caps = {c: t.categoryCap(program_id, c) for c in range(1, 64) if rules.categories >> c & 1}
        programs[program_id] = Program(
            treasury=config.treasury,
            start=rules.start,
            end=rules.end,
            offset=rules.utcOffsetMinutes,
            hours=unpack_hours(rules.openingHours),
            caps=caps,
            limit=config.perPaymentLimit,
            threshold=config.evidenceThreshold,
        )
    return Model(kind, program_of, category_of, programs, balances, t.totalSupply())


class DepositTokenMachine(RuleBasedStateMachine):
    """Drives the contracts and the model side by side."""

    def __init__(self, system, chain):
        super().__init__()
        self.system, self.chain, self.t, self.p = system, chain, system.token, system.people
        self.snapshot = chain.snapshot()
        self.web3 = chain.provider.web3
        self.error_abis = [item for item in system_contract_type().abi if item.type == "error"]
        self.model = model_from_chain(system)
        self.now = ts(MONDAY_10) + 3600
        self.spenders = [*self.p.spenders, *self.p.ev_recipients]
        self.vendors = [self.p.restaurant, self.p.cafe, self.p.bar, self.p.installer, self.p.supplier]
        self.receipts_issued: list[bytes] = []
        self.next_invoice = 1
        self.next_batch = 1
        self.payments_seen: list[tuple[str, bytes]] = []
        self.outcomes = defaultdict(int)

    def teardown(self):
        self.chain.restore(self.snapshot)

    # --- time -------------------------------------------------------------------------------------------

    def tick(self, seconds: int = 1) -> int:
        """Sets the timestamp of the next transaction (strictly later than the previous one)."""
        self.now += max(1, seconds)
        self.chain.pending_timestamp = self.now
        return self.now

    @rule(hours=st.integers(0, 30), minutes=st.integers(0, 59))
    def wait(self, hours, minutes):
        self.tick(hours * 3600 + minutes * 60)

    @rule(days=st.integers(1, 40))
    def wait_days(self, days):
        # Month rollovers and, eventually, the end of the programs (2030-07-01 KST).
        self.tick(days * 86400)

    # --- actions ----------------------------------------------------------------------------------------

    def attempt(self, method, *args, sender, expected: int, names: tuple[str, ...] | None):
        """Runs `method(*args)`: it must succeed iff `expected` is 0, else fail with one of `names`.

        A refusal is checked by executing the same function in an eth_call on the pending block (the exact
        state and timestamp the transaction would see), which returns the decoded custom error without mining
        a failed transaction; accepted actions are sent as real transactions.
        """
        if expected != 0:
            call = {"from": sender.address, "to": self.t.address, "data": method.encode_input(*args)}
            try:
                self.web3.eth.call(call, "pending")
            except ContractCustomError as error:
                decoded = decode_revert(bytes.fromhex(error.data[2:]), self.error_abis)
                name = decoded[0] if decoded else error.data
                assert names is None or name in names, f"contract said {name}, model expected {names}"
                self.outcomes[name] += 1
                return None
            raise AssertionError(f"contract accepts what the model refuses with code {expected}")
        receipt = method(*args, sender=sender)
        self.outcomes["ok"] += 1
        self.check_recipients(receipt)
        return receipt

    def check_recipients(self, receipt) -> None:
        for event in receipt.events:
            if event.event_name == "Transfer" and self.model.kind.get(event.to) == VENDOR:
                assert self.model.kind.get(getattr(event, "from")) == SPENDER, "a vendor received from a non-spender"
            if event.event_name == "Payment" and event.receiptId != ZERO:
                key = (event.vendor, event.receiptId)
                assert key not in self.payments_seen, "a receipt was paid twice"
                self.payments_seen.append(key)

    @rule(
        payer=st.integers(0, 8),
        vendor=st.integers(0, 4),
        amount=st.sampled_from(
            [0, 1, 9_999, 45_000, 45_000, 120_000, 299_999, 499_999, 500_000, 1_000_000, 1_000_001, 3_000_000]
        )
        | st.integers(1, 2_500_000),
        receipt_choice=st.sampled_from(["none", "new", "reuse"]),
        evidence=st.booleans(),
        use_transfer=st.booleans(),
    )
    def pay(self, payer, vendor, amount, receipt_choice, evidence, use_transfer):
        self.try_payment(self.spenders[payer], self.vendors[vendor], amount, receipt_choice, evidence, use_transfer)

    @rule(
        payer=st.integers(0, 8),
        vendor=st.sampled_from([0, 1, 3]),
        amount=st.integers(1_000, 200_000),
        new_receipt=st.booleans(),
    )
    def pay_typical(self, payer, vendor, amount, new_receipt):
        """A payment most rules allow (an allowed category, a modest amount), so that many succeed."""
        choice = "new" if new_receipt else "none"
        self.try_payment(self.spenders[payer], self.vendors[vendor], amount, choice, False, False)

    def try_payment(self, payer, vendor, amount, receipt_choice, evidence, use_transfer):
        receipt = ZERO
        if receipt_choice == "new":
            receipt = b32(self.next_invoice)
            self.next_invoice += 1
        elif receipt_choice == "reuse" and self.receipts_issued:
            receipt = self.receipts_issued[amount % len(self.receipts_issued)]
        evidence_hash = b32("evidence") if evidence else ZERO
        if use_transfer:  # a plain ERC-20 transfer is a payment with no receipt and no evidence
            receipt, evidence_hash = ZERO, ZERO
        now = self.tick()
        expected = self.model.payment_code(payer.address, vendor.address, amount, receipt, evidence_hash, now)
        view = self.t.detectPaymentRestriction(payer, vendor, amount, receipt, evidence_hash, block_id="pending")
        assert view == expected, f"ERC-1404 view says {view}, model says {expected}"
        if use_transfer:
            assert self.t.detectTransferRestriction(payer, vendor, amount, block_id="pending") == expected
            done = self.attempt(self.t.transfer, vendor, amount, sender=payer, expected=expected, names=CODES[expected])
        else:
            done = self.attempt(
                self.t.pay,
                vendor,
                amount,
                receipt,
                evidence_hash,
                sender=payer,
                expected=expected,
                names=CODES[expected],
            )
        if done is not None:
            self.model.apply_payment(payer.address, vendor.address, amount, receipt, now)
            if receipt != ZERO:
                self.receipts_issued.append(receipt)

    @rule(who=st.lists(st.integers(0, 8), min_size=1, max_size=4), amount=st.integers(1, 400_000))
    def allocate(self, who, amount):
        spenders = [self.spenders[i] for i in who]
        program_id = self.model.program_of[spenders[0].address]
        program = self.model.programs[program_id]
        treasury = program.treasury
        now = self.tick()
        expected = 0
        if (
            self.model.paused
            or program.paused
            or now >= program.end
            or treasury in self.model.frozen
            or any(self.model.program_of[s.address] != program_id or s.address in self.model.frozen for s in spenders)
            or amount * len(spenders) > self.model.balances[treasury]
        ):
            expected = 1
        batch = b32(f"batch-{self.next_batch}")
        self.next_batch += 1
        names = (
            "TokenPaused",
            "ProgramHalted",
            "ProgramEnded",
            "AccountFrozen",
            "SpenderInOtherProgram",
            "InsufficientBalance",
        )
        args = (batch, program_id, spenders, [amount] * len(spenders))
        if self.attempt(self.t.allocate, *args, sender=self.p.manager, expected=expected, names=names) is not None:
            for s in spenders:
                self.model.move(treasury, s.address, amount)
            # The same batch again never pays anyone twice.
            self.attempt(self.t.allocate, *args, sender=self.p.manager, expected=1, names=("BatchAlreadyApplied",))

    @rule(vendor=st.integers(0, 4), suspend=st.booleans())
    def suspension(self, vendor, suspend):
        vendor = self.vendors[vendor]
        self.tick()
        if suspend:
            self.t.suspendVendor(vendor, "random inspection", sender=self.p.compliance)
            self.model.suspended.add(vendor.address)
        else:
            self.t.reactivateVendor(vendor, "cleared", sender=self.p.compliance)
            self.model.suspended.discard(vendor.address)

    @rule(who=st.integers(0, 13), freeze=st.booleans())
    def freezing(self, who, freeze):
        account = (self.spenders + self.vendors)[who]
        self.tick()
        if freeze:
            self.t.freeze(account, "hold", sender=self.p.compliance)
            self.model.frozen.add(account.address)
        else:
            self.t.unfreeze(account, "release", sender=self.p.compliance)
            self.model.frozen.discard(account.address)

    @rule(who=st.integers(0, 8), share=st.integers(1, 4))
    def clawback(self, who, share):
        spender = self.spenders[who].address
        amount = self.model.balances[spender] // share
        self.tick()
        expected = 0 if amount > 0 else 1
        done = self.attempt(
            self.t.clawback,
            spender,
            amount,
            "audit finding",
            sender=self.p.compliance,
            expected=expected,
            names=("ZeroAmount",),
        )
        if done is not None:
            self.model.move(spender, self.model.programs[self.model.program_of[spender]].treasury, amount)

    @rule(who=st.integers(0, 8), share=st.integers(1, 3))
    def give_back(self, who, share):
        spender = self.spenders[who]
        amount = self.model.balances[spender.address] // share
        program = self.model.programs[self.model.program_of[spender.address]]
        self.tick()
        expected = 0
        if amount == 0 or self.model.paused or program.paused or spender.address in self.model.frozen:
            expected = 1
        names = ("ZeroAmount", "TokenPaused", "ProgramHalted", "AccountFrozen")
        if self.attempt(self.t.returnToTreasury, amount, sender=spender, expected=expected, names=names) is not None:
            self.model.move(spender.address, program.treasury, amount)

    @rule(pause=st.booleans())
    def token_pause(self, pause):
        self.tick()
        (self.t.pause if pause else self.t.unpause)(sender=self.p.compliance)
        self.model.paused = pause

    @rule(program=st.sampled_from([1, 2]), pause=st.booleans())
    def program_pause(self, program, pause):
        self.tick()
        self.t.setProgramPaused(program, pause, sender=self.p.compliance)
        self.model.programs[program].paused = pause

    @rule(who=st.integers(0, 8), vendor=st.integers(0, 4), cap=st.integers(0, 600_000), clear=st.booleans())
    def override(self, who, vendor, cap, clear):
        spender = self.spenders[who].address
        category = self.model.category_of[self.vendors[vendor].address]
        self.tick()
        if clear:
            self.t.clearCapOverride(spender, category, sender=self.p.manager)
            self.model.overrides.pop((spender, category), None)
        else:
            self.t.setCapOverride(spender, category, cap, sender=self.p.manager)
            self.model.overrides[(spender, category)] = cap

    @precondition(lambda self: self.now >= min(p.end for p in self.model.programs.values()) - 86400)
    @rule()
    def sweep(self):
        now = self.tick()
        spenders = self.spenders
        ended = all(now >= self.model.programs[self.model.program_of[s.address]].end for s in spenders)
        expected = 0 if ended and not self.model.paused else 1
        names = ("ProgramNotEnded", "TokenPaused")
        if (
            self.attempt(self.t.sweepExpired, spenders, sender=self.p.outsider, expected=expected, names=names)
            is not None
        ):
            for s in spenders:
                program = self.model.programs[self.model.program_of[s.address]]
                self.model.move(s.address, program.treasury, self.model.balances[s.address])

    @rule(vendor=st.integers(0, 4), share=st.integers(1, 2))
    def redeem(self, vendor, share):
        vendor = self.vendors[vendor]
        amount = self.model.balances[vendor.address] // share
        self.tick()
        expected = 0 if amount > 0 and not self.model.paused and vendor.address not in self.model.frozen else 1
        names = ("ZeroAmount", "TokenPaused", "AccountFrozen")
        if (
            self.attempt(self.t.redeem, amount, f"settlement-{self.now}", sender=vendor, expected=expected, names=names)
            is not None
        ):
            self.model.balances[vendor.address] -= amount
            self.model.total_supply -= amount

    # --- invariants -------------------------------------------------------------------------------------

    def read_many(self, calls: list[bytes]) -> list[bytes]:
        """Several view calls in one eth_call, through the token's own multicall."""
        data = self.t.multicall.encode_input(calls)
        raw = self.web3.eth.call({"to": self.t.address, "data": data}, "pending")
        return list(abi_decode(["bytes[]"], raw)[0])

    @invariant()
    def balances_match_and_sum_to_supply(self):
        holders = list(self.model.balances)
        calls = [self.t.totalSupply.encode_input()] + [self.t.balanceOf.encode_input(a) for a in holders]
        supply, *balances = (int.from_bytes(r, "big") for r in self.read_many(calls))
        assert supply == self.model.total_supply
        chain_balances = dict(zip(holders, balances, strict=True))
        assert chain_balances == self.model.balances
        assert sum(chain_balances.values()) == supply

    @invariant()
    def spending_never_exceeds_cap(self):
        pairs = [
            (spender.address, self.model.category_of[vendor.address])
            for spender in self.spenders
            for vendor in self.vendors
            if self.model.category_of[vendor.address]
            in self.model.programs[self.model.program_of[spender.address]].caps
        ]
        answers = self.read_many([self.t.spendingThisPeriod.encode_input(s, c) for s, c in pairs])
        for (spender, category), raw in zip(pairs, answers, strict=True):
            period, spent, cap = abi_decode(["uint32", "uint256", "uint256"], raw)
            assert spent == self.model.spent[(spender, category, period)]
            # A cap lowered below what was already spent leaves nothing to spend, never a negative.
            assert spent <= cap or (spender, category) in self.model.overrides


def test_contract_agrees_with_the_model(system, chain):
    settings_ = settings(
        max_examples=20,
        stateful_step_count=50,
        deadline=None,
        suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture],
    )
    outcomes: dict[str, int] = defaultdict(int)

    def factory():
        machine = DepositTokenMachine(system, chain)
        outcomes_ref = machine.outcomes

        original_teardown = machine.teardown

        def teardown():
            for key, value in outcomes_ref.items():
                outcomes[key] += value
            original_teardown()

        machine.teardown = teardown
        return machine

    run_state_machine_as_test(factory, settings=settings_)
    # The run must have exercised both acceptance and the main refusals, or it proved little.
    assert outcomes["ok"] > 20, dict(outcomes)
    refused = {name for name in outcomes if name != "ok"}
    assert len(refused) >= 5, dict(outcomes)
    print("outcomes:", dict(sorted(outcomes.items())))

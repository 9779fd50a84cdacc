"""A token deployed and set up on a live chain (a Geth network, or any node) through `deposit_token.chain.sandbox`
and the Submitter: a business-promotion program open around the chain's current time, vendors listed, spenders
enrolled and funded. For tests that need real payments on Geth (faults, load) without ape accounts.

    pilot = deploy_pilot(network.rpc_url)              # 3 submissions (2 deploys, 1 set-up): ~5 s on Geth
    outcomes = pilot.submitter().submit(pilot.payments(20))
    raws = pilot.sign(pilot.payments(5))               # [(raw tx, hash)] to send by hand
    pilot.spent()                                      # every successful payment's amount, summed on-chain

The chain's clock is real time on Geth, so the program opens a day before the head block's time, closes a
year after it and is open every hour of every day: the same run on any date, at any hour (in any time zone).

One operator key holds the admin role and the four operational roles: a single sender's transactions execute
in nonce order, so the whole set-up (roles, treasury, mint, program, vendors, enrolment, allocation) is one
submission even where a node orders different senders' transactions as it likes (Geth does, at equal price).
Keys are deterministic (`sandbox.key_for`): for throwaway chains only.
"""

from __future__ import annotations

import itertools
from collections.abc import Sequence
from dataclasses import dataclass, field, replace
from typing import Any

from eth_utils import keccak

from deposit_token.chain import sandbox
from deposit_token.chain.rpc import RpcClient
from deposit_token.chain.submit import LocalSigner, Submitter, TxRequest, encode_call, sign_legacy
from deposit_token.domain.categories import Category
from deposit_token.domain.presets import business_promotion
from deposit_token.domain.rules import ProgramSpec

PAY_GAS = 150_000
ALL_DAY = ((0, 24),) * 7
ZERO32 = b"\0" * 32
DAY = 86_400
DEPARTMENT = b"GETH-PILOT".ljust(32, b"\0")


def program_around(name: str, treasury: str, now: int) -> ProgramSpec:
    """The business-promotion preset, open from a day before `now` (unix seconds, the chain's clock) to a year
    after it, every hour of every day."""
    return replace(business_promotion(name, treasury, now - DAY, now + 365 * DAY), hours=ALL_DAY)


@dataclass
class Pilot:
    """The deployed token and its cast (see the module docstring). `start_block` is a block at or before the
    deployment (where an indexer starts)."""

    rpc_url: str
    chain_id: int
    token: sandbox.Token
    start_block: int
    operator: LocalSigner
    treasury: str
    program_id: int
    spenders: list[LocalSigner]
    vendors: list[str]
    allocation: int
    _receipts: itertools.count[int] = field(default_factory=lambda: itertools.count(1), repr=False)

    def submitter(self, **settings: Any) -> Submitter:
        """A Submitter on the pilot's chain (zero gas price); `settings` as Submitter's (e.g. receipt_timeout)."""
        return Submitter(self.rpc_url, self.chain_id, **{"gas_price": 0, **settings})

    def pay(self, spender: LocalSigner, vendor: str, amount: int) -> TxRequest:
        """`spender` pays `amount` KRW to `vendor` with a new invoice number (receipt ids are unique per vendor)."""
        receipt = next(self._receipts).to_bytes(32, "big")
        data = encode_call(self.token.abi, "pay", [vendor, amount, receipt, ZERO32])
        return TxRequest(spender, self.token.address, data, PAY_GAS)

    def payments(self, count: int, amount: int = 1_000) -> list[TxRequest]:
        """`count` payments of `amount`, the spenders taking turns, each to the next vendor: all succeed while
        the spenders' balances and the category caps (2,000,000 KRW a month for restaurants) last."""
        return [
            self.pay(self.spenders[k % len(self.spenders)], self.vendors[k % len(self.vendors)], amount)
            for k in range(count)
        ]

    def sign(self, requests: Sequence[TxRequest]) -> list[tuple[str, str]]:
        """(raw transaction, hash), both 0x-hex, of each request, signed with the senders' pending nonces at the
        node and priced 0: for sending by hand (to a sealer over IPC, or while the Submitter could not wait)."""
        senders = list(dict.fromkeys(r.signer.address for r in requests))
        with RpcClient(self.rpc_url) as rpc:
            counts = rpc.batch([("eth_getTransactionCount", [s, "pending"]) for s in senders])
        nonces = {s: int(n, 16) for s, n in zip(senders, counts)}
        signed = []
        for r in requests:
            nonce = nonces[r.signer.address]
            nonces[r.signer.address] = nonce + 1
            raw, tx_hash = sign_legacy(
                r.signer,
                nonce=nonce,
                gas_price=0,
                gas=r.gas,
                to=r.to,
                value=r.value,
                data=r.data,
                chain_id=self.chain_id,
            )
            signed.append(("0x" + raw.hex(), "0x" + tx_hash.hex()))
        return signed

    def spent(self, block: int | str = "latest") -> int:
        """What the vendors hold at `block`: the sum of every successful payment (vendors receive nothing else)."""
        with RpcClient(self.rpc_url) as rpc:
            calls = [
                ("eth_call", [{"to": self.token.address, "data": _balance_of(self.token, v)}, _tag(block)])
                for v in self.vendors
            ]
            return sum(int(answer, 16) for answer in rpc.batch(calls))


def _balance_of(token: sandbox.Token, who: str) -> str:
    return "0x" + encode_call(token.abi, "balanceOf", [who]).hex()


def _tag(block: int | str) -> str:
    return hex(block) if isinstance(block, int) else block


def deploy_pilot(
    rpc_url: str,
    *,
    spenders: int = 8,
    vendors: int = 4,
    allocation: int = 1_000_000,
    label: str = "geth-pilot",
    receipt_timeout: float = 60.0,
) -> Pilot:
    """Deploys the token system on the node at `rpc_url` and sets up the pilot (see the module docstring):
    three submissions, each waiting for its receipts. Spenders get `allocation` KRW each (restaurant vendors;
    the program's restaurant cap is 2,000,000 KRW a month per spender)."""
    operator = sandbox.signer_for(f"{label}: operator")
    treasury = sandbox.address_for(f"{label}: treasury")
    cast = [sandbox.signer_for(f"{label}: spender {i}") for i in range(spenders)]
    shops = [sandbox.address_for(f"{label}: vendor {i}") for i in range(vendors)]
    with RpcClient(rpc_url) as rpc:
        chain_id = rpc.chain_id()
        head = rpc.call("eth_getBlockByNumber", ["latest", False])
    start_block, now = int(head["number"], 16), int(head["timestamp"], 16)
    with Submitter(rpc_url, chain_id, gas_price=0, receipt_timeout=receipt_timeout) as submitter:
        token = sandbox.deploy_token(submitter, operator)
        roles = ("ISSUER_ROLE", "PROGRAM_MANAGER_ROLE", "VENDOR_REGISTRAR_ROLE", "COMPLIANCE_ROLE")
        total = allocation * spenders
        program_id = 1  # the first program created
        addresses = [s.address for s in cast]
        calls: list[tuple[str, tuple[Any, ...]]] = [
            ("grantRole", (keccak(text=role), operator.address)) for role in roles
        ]
        calls += [
            ("setMintAllowance", (operator.address, total)),
            ("registerTreasury", (treasury,)),
            ("mint", (treasury, total)),
            ("createProgram", (program_around(f"{label} BP", treasury, now).as_params(),)),
        ]
        calls += [("registerVendor", (v, int(Category.RESTAURANT), f"Vendor {i}")) for i, v in enumerate(shops)]
        calls += [
            ("enrol", (addresses, program_id, [DEPARTMENT] * spenders)),
            ("allocate", (b"GETH-PILOT-ALLOCATION".ljust(32, b"\0"), program_id, addresses, [allocation] * spenders)),
        ]
        sandbox.checked(
            submitter.submit([token.call(operator, fn, *args, gas=2_000_000) for fn, args in calls]), "pilot set-up"
        )
    return Pilot(rpc_url, chain_id, token, start_block, operator, treasury, program_id, cast, shops, allocation)

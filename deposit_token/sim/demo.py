"""The pilot demo: public spending on a permissioned chain, rules enforced as money moves.

Two ways to play it:

* **a simulated month** (`run`, the default: ``ape run demo``) on a local Anvil chain of its own whose clock the
  demo sets, described below;
* **a live day** (`run_live`: ``ape run demo --engine geth``) on a running network whose clock is real time,
  e.g. the permissioned Geth network (which cannot time-travel): the same cast, programs, rules, phases and
  audit, played now. See `run_live`.

Three ministries' business-promotion programs (about 50 officials) and an EV-charger subsidy (20 recipient
businesses); 40 vendors across categories, restricted ones included; one month in KST (December 2026 unless
`--month` says otherwise, with that year's Korean public holidays): more than 2,000
payment attempts at realistic times of day, some of which the rules refuse (wrong category, over cap, at night,
repeated receipt, missing evidence, over the per-payment limit); weekend / holiday / split payments that the
rules allow but the audit flags; a frozen wallet clawed back; vendors redeeming; the budget lapsing at the end
of the programs and swept back to the treasury.

Everything goes through the project's own paths: keys in ape keystores (demo accounts use a cheaper KDF, see
deposit_token.ops.accounts), transactions through deposit_token.chain.submit.Submitter, pre-checks through the token's
ERC-1404 view (an official's wallet refuses to send what would fail; a few "unchecked wallets" send anyway, so
the chain's own refusal is shown too). Time travel (`evm_setNextBlockTimestamp`, `evm_mine`) is the only
non-standard JSON-RPC, and only the simulated month uses it; the live day uses standard JSON-RPC only.

Chain time is the simulation's own: the demo chain's clock starts (Anvil's genesis timestamp) a few days before
the simulated month and only moves forward from there, so the demo runs the same whatever the machine's date
(the machine's clock is read only to measure how long steps take).
"""

from __future__ import annotations

import hashlib
import os
import random
import re
import secrets
import shutil
import time
from collections import Counter, defaultdict
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field, replace
from datetime import date, datetime, timedelta, timezone
from pathlib import Path
from typing import Any

import holidays
from eth_abi import decode as abi_decode
from eth_utils import keccak, to_checksum_address
from rich.console import Console
from rich.table import Table

from deposit_token.chain import node, sandbox
from deposit_token.chain.contracts import system_contract_type
from deposit_token.chain.rpc import RpcClient, RpcError, mask_url
from deposit_token.chain.submit import LocalSigner, Submitter, TxOutcome, TxRequest, encode_call
from deposit_token.domain import display
from deposit_token.domain.categories import RESTRICTED_FOR_BUSINESS_PROMOTION, Category, category_name
from deposit_token.domain.kinds import restriction_label
from deposit_token.domain.presets import business_promotion, ev_charger_subsidy
from deposit_token.domain.rules import WEEKDAYS, HourWindow, ProgramSpec
from deposit_token.errors import DepositTokenError
from deposit_token.ops import accounts
from deposit_token.ops.multisig import artifacts as safe_artifacts
from deposit_token.ops.multisig import proposal as safe_proposal
from deposit_token.ops.multisig import safes as multisig_safes
from deposit_token.processes import free_port

KST = timezone(timedelta(hours=9))
DEFAULT_MONTH = "2026-12"  # the month the demo is written for (and whose holidays it shows: Christmas)
GENESIS_LEAD = timedelta(days=3)  # the chain's clock starts this long before the month; set-up runs 2 days before
FIRST_YEAR, LAST_YEAR = 1971, 9998  # months whose day before and month after have non-negative unix times
_MONTH = re.compile(r"^([0-9]{4})-([0-9]{2})$")
ZERO32 = b"\0" * 32
MINISTRIES = (("MOEF", ("BUDGET", "TAX", "ECON")), ("MOIS", ("LOCAL", "SAFETY")), ("MOLIT", ("HOUSING", "ROADS")))
VENDOR_MIX = (  # category, how many, amount range (KRW)
    (Category.RESTAURANT, 14, (25_000, 420_000)),
    (Category.CAFE_BAKERY, 8, (6_000, 60_000)),
    (Category.CATERING, 3, (120_000, 800_000)),
    (Category.CONFERENCE_VENUE, 3, (200_000, 950_000)),
    (Category.ENTERTAINMENT_BAR, 2, (150_000, 900_000)),
    (Category.KARAOKE, 2, (60_000, 300_000)),
    (Category.GOLF_LEISURE, 1, (200_000, 600_000)),
    (Category.BEAUTY_SAUNA_MASSAGE, 1, (30_000, 150_000)),
    (Category.JEWELLERY, 1, (100_000, 900_000)),
    (Category.EV_CHARGER_SUPPLIER, 2, (2_000_000, 9_000_000)),
    (Category.EV_CHARGER_INSTALLER, 2, (1_000_000, 6_000_000)),
    (Category.ELECTRICAL_CONTRACTOR, 1, (500_000, 3_000_000)),
)
SLOTS = ((7, 40), (12, 5), (12, 45), (15, 20), (18, 55), (20, 10), (23, 30))  # local times of day
NIGHT_SLOT = (23, 30)
# Refused attempts sent anyway by an "unchecked wallet", so that the chain's own refusal shows: simulated month,
# live day (a few hundred attempts instead of 2,000+, so a larger share for a handful of on-chain refusals).
UNCHECKED = (0.05, 0.25)
SHARE = (0.26, 0.07)  # officials who try to pay in a slot of the simulated month: working day, weekend/holiday

# The live day (`run_live`).
DEFAULT_LIVE_ATTEMPTS = 300
LIVE_SHARE = (0.5, 0.2)  # officials who try to pay in one round of the live day: working day, weekend/holiday
MAX_LIVE_ROUNDS = 200  # a bound on the rounds, whatever the share and the target
LIVE_HOURS_BEFORE = timedelta(hours=1)  # the live session's hours are added to each program's windows ...
LIVE_HOURS_AFTER = timedelta(hours=2)  # ... from this long before now to this long after (a run takes minutes)
LIVE_CLOSE_AFTER = 2  # seconds after its last block that the budget office closes the live day's programs
LIVE_CONFIRMATIONS = 3  # blocks the audit waits for before indexing a live chain (Clique forks briefly)

# Four eyes: the issuing bank's and compliance's roles are held by Safes (v1.4.1) of three officers each, any two
# of whom approve a mint or a freeze and claw-back (EIP-712 SafeTx signatures, made offline by the officers' keys);
# the former role accounts only carry the signed transactions to the chain (they no longer hold the roles).
SAFE_THRESHOLD = 2
SAFE_OFFICERS = {"issuer": "bank_officer_", "compliance": "compliance_officer_"}  # role -> owners' alias prefix
SAFE_EXEC_GAS = 150_000  # execTransaction's own cost (signature checks, events) on top of the call's gas


class MonthError(DepositTokenError, ValueError):
    """A --month that is not a calendar month the demo can play; the message says why."""


class DemoError(DepositTokenError):
    """A step of the demo failed (a set-up transaction refused, a node that went away); the message says which."""


class LiveChainError(DemoError):
    """The live day cannot be played on the given network (unreachable, not making blocks)."""


def parse_month(text: str, what: str = "month") -> date:
    """The first day of the month written `YYYY-MM` (e.g. 2026-12); `what` names the value in the message."""
    match = _MONTH.match(text.strip())
    if not match:
        raise MonthError(f"{what} {text!r} is not written YYYY-MM (e.g. {DEFAULT_MONTH})")
    year, month = int(match[1]), int(match[2])
    if not 1 <= month <= 12:
        raise MonthError(f"{what} {text!r} has no month {month:02d} (months are 01 to 12)")
    if not FIRST_YEAR <= year <= LAST_YEAR:
        raise MonthError(
            f"{what} {text!r} is out of range: the demo plays months from {FIRST_YEAR}-01 to {LAST_YEAR}-12"
        )
    return date(year, month, 1)


MONTH_NAMES = (
    "January",
    "February",
    "March",
    "April",
    "May",
    "June",
    "July",
    "August",
    "September",
    "October",
    "November",
    "December",
)  # not strftime's %B, which follows the machine's locale


@dataclass(frozen=True)
class Month:
    """The simulated month: its bounds in KST and the names and references that carry it."""

    first_day: date

    @property
    def start(self) -> datetime:
        return datetime(self.first_day.year, self.first_day.month, 1, tzinfo=KST)

    @property
    def end(self) -> datetime:
        """The first moment after the month: the programs end here and the budget lapses."""
        year, month = (self.year + 1, 1) if self.first_day.month == 12 else (self.year, self.first_day.month + 1)
        return datetime(year, month, 1, tzinfo=KST)

    @property
    def year(self) -> int:
        return self.first_day.year

    @property
    def period(self) -> str:
        """``2026-12``."""
        return f"{self.first_day:%Y-%m}"

    @property
    def name(self) -> str:
        """``December 2026``."""
        return f"{MONTH_NAMES[self.first_day.month - 1]} {self.year}"

    @property
    def genesis(self) -> int:
        """The demo chain's genesis timestamp: a few days before the month, never the machine's clock."""
        return int((self.start - GENESIS_LEAD).timestamp())

    def program_names(self) -> dict[int, str]:
        names = {i + 1: f"BP-{self.year}-{ministry}" for i, (ministry, _) in enumerate(MINISTRIES)}
        return {**names, 4: f"EV-{self.year}-MOE"}


@dataclass
class Vendor:
    signer: LocalSigner
    category: Category
    name: str
    amounts: tuple[int, int]
    next_invoice: int = 1000
    paid_receipts: list[int] = field(default_factory=list)


@dataclass
class Spender:
    signer: LocalSigner
    program: int
    department: str


@dataclass
class Attempt:
    payer: Spender
    vendor: Vendor
    amount: int
    receipt: int
    evidence: bytes
    kind: str  # what the simulation meant: "normal", or the rule it tries to break


def live_hours(base: Sequence[HourWindow], now: datetime) -> tuple[HourWindow, ...]:
    """`base` (seven windows, Monday first) widened so that every hour from `LIVE_HOURS_BEFORE` before `now` to
    `LIVE_HOURS_AFTER` after it is open (in `now`'s zone): a live session covers the program's hours whatever
    the time of day. Windows stay [opening, closing) within one day; a closed day opens for those hours only."""
    windows = list(base)
    moment = now.replace(minute=0, second=0, microsecond=0) - LIVE_HOURS_BEFORE
    while moment <= now + LIVE_HOURS_AFTER:
        day, hour = moment.weekday(), moment.hour
        opening, closing = windows[day]
        windows[day] = (hour, hour + 1) if opening == closing else (min(opening, hour), max(closing, hour + 1))
        moment += timedelta(hours=1)
    return tuple(windows)


def describe_hours(base: Sequence[HourWindow], widened: Sequence[HourWindow]) -> str:
    """The days whose windows `live_hours` changed, e.g. ``Mon 06-24``."""
    return ", ".join(
        f"{WEEKDAYS[day]} {opening:02d}-{closing:02d}"
        for day, ((opening, closing), old) in enumerate(zip(widened, base, strict=True))
        if (opening, closing) != old
    )


@dataclass
class Tally:
    attempts: int = 0
    by_reason: Counter[str] = field(default_factory=Counter)
    refused_on_chain: Counter[str] = field(default_factory=Counter)
    examples: dict[str, str] = field(default_factory=dict)
    paid: defaultdict[int, int] = field(default_factory=lambda: defaultdict(int))  # KRW per program


class Demo:
    """One run of the pilot; `say` prints progress lines."""

    def __init__(
        self, data_dir: Path, port: int, say: Callable[[str], None], seed: int = 2026, month: date | None = None
    ) -> None:
        self.data_dir, self.port, self.say = data_dir, port, say
        self.month = Month(month or parse_month(DEFAULT_MONTH))
        self.random = random.Random(seed)
        self.abi = system_contract_type()
        self.tally = Tally()
        self.kr_holidays = holidays.country_holidays("KR", years=[self.month.year])
        self.split_rest: list[Attempt] = []
        self.live: datetime | None = None  # the live session's start (KST); None: the simulated month
        self.specs: list[ProgramSpec] = []
        self.rounds = 0
        self.safes: dict[str, str] = {}  # role -> its Safe's address
        self.safe_nonces: dict[str, int] = {}
        self.approvals: list[str] = []  # the story of who approved what, in order

    # --- chain ------------------------------------------------------------------------------------------

    @property
    def rpc_url(self) -> str:
        return self.rpc.url

    def start_node(self) -> None:
        previous = node.config_for(self.data_dir / "node")
        node.stop(previous)  # a demo chain left running (--keep-running) by an earlier run
        shutil.rmtree(previous.data_dir, ignore_errors=True)
        config = node.NetworkConfig(
            data_dir=previous.data_dir, port=self.port, block_time=0.25, genesis_timestamp=self.month.genesis
        )
        node.start(config)
        self.config = config
        self.rpc = RpcClient(config.rpc_url, timeout=60)
        self.submitter = Submitter(config.rpc_url, config.chain_id)
        self.chain_id = config.chain_id
        self.say(
            f"local permissioned chain {config.chain_id} at {config.rpc_url} (blocks every 0.25 s; its clock "
            f"starts at {display.moment(self.month.genesis)}, {GENESIS_LEAD.days} days before "
            f"{self.month.name})"
        )

    def connect_live(self, rpc_url: str, stall: float = 30.0) -> None:
        """Joins a running network whose clock is real time (a Geth network, an Anvil started without a genesis
        time): nothing is started, and its clock is never set. The month, the holidays and the programs' hours
        follow the head block's time; a network that makes no block within `stall` seconds is refused."""
        self.rpc = RpcClient(rpc_url, timeout=60)
        where = mask_url(rpc_url)
        try:
            chain_id = self.rpc.chain_id()
            number, timestamp = self.head()
            deadline = time.monotonic() + stall
            first = number
            while number == first:  # one new block: the network is sealing, and its clock is now
                if time.monotonic() > deadline:
                    raise LiveChainError(
                        f"the network at {where} made no block in {stall:g} s (head {first:,}): is it sealing?"
                    )
                time.sleep(0.2)
                number, timestamp = self.head()
        except RpcError as err:
            raise LiveChainError(f"cannot play the live day on {where}: {err}") from None
        self.submitter = Submitter(rpc_url, chain_id)
        self.chain_id = chain_id
        self.live = datetime.fromtimestamp(timestamp, KST)
        self.month = Month(date(self.live.year, self.live.month, 1))
        self.kr_holidays = holidays.country_holidays("KR", years=[self.live.year])
        self.say(
            f"live network: chain {chain_id} at {where}, block {number:,} at {display.moment(timestamp)} "
            "(its clock is real time: the demo plays now, without time travel)"
        )

    def head(self) -> tuple[int, int]:
        """(number, timestamp) of the latest block."""
        block = self.rpc.call("eth_getBlockByNumber", ["latest", False])
        return int(block["number"], 16), int(block["timestamp"], 16)

    def now(self) -> datetime:
        """The chain's time (the latest block's), in KST."""
        return datetime.fromtimestamp(self.head()[1], KST)

    def set_time(self, moment: datetime) -> None:
        """The next block's time (the simulated month only: a live chain's clock is real time)."""
        if self.live is None:
            self.rpc.call("evm_setNextBlockTimestamp", [int(moment.timestamp())])

    def mine(self) -> None:
        """A block now, at the time just set (the simulated month only)."""
        if self.live is None:
            self.rpc.call("evm_mine", [])

    def send(self, requests: Sequence[TxRequest], what: str) -> list[TxOutcome]:
        outcomes = self.submitter.submit(requests)
        failed = [o for o in outcomes if not o.status]
        if failed and what != "payments":
            raise DemoError(f"{what}: {failed[0].error}")
        return outcomes

    def tx(self, signer: LocalSigner, fn: str, *args: Any, gas: int = 400_000) -> TxRequest:
        return TxRequest(signer, self.token, encode_call(self.abi, fn, args), gas)

    def view(self, calls: Sequence[tuple[str, tuple[Any, ...]]], types: Sequence[str]) -> list[tuple[Any, ...]]:
        """Several eth_calls of the token at the pending block, in one batched request."""
        batch = [
            ("eth_call", [{"to": self.token, "data": "0x" + encode_call(self.abi, fn, args).hex()}, "pending"])
            for fn, args in calls
        ]
        return [abi_decode(types, bytes.fromhex(raw[2:])) for raw in self.rpc.batch(batch)]

    # --- cast -------------------------------------------------------------------------------------------

    @staticmethod
    def fresh_keystore(folder: Path) -> str:
        """Empties the demo keystore and returns a random passphrase that lives only in this process."""
        shutil.rmtree(folder, ignore_errors=True)
        return secrets.token_urlsafe(24)

    def make_cast(self) -> None:
        folder = self.data_dir / "keystore"
        passphrase = os.environ.get("DEPOSIT_TOKEN_DEMO_PASSPHRASE") or self.fresh_keystore(folder)
        begin = time.monotonic()
        accounts.ensure_role_accounts(passphrase, folder=folder)
        roles = accounts.load_signers(accounts.ROLE_ALIASES, passphrase, folder=folder)
        officials = accounts.ensure_demo_accounts("official_", 50, passphrase, folder=folder)
        recipients = accounts.ensure_demo_accounts("recipient_", 20, passphrase, folder=folder)
        vendor_aliases = accounts.ensure_demo_accounts("vendor_", 40, passphrase, folder=folder)
        officers = {
            role: list(accounts.ensure_demo_accounts(prefix, 3, passphrase, folder=folder))
            for role, prefix in SAFE_OFFICERS.items()
        }
        every_officer = [alias for aliases in officers.values() for alias in aliases]
        signers = accounts.load_signers(
            [*officials, *recipients, *vendor_aliases, *every_officer], passphrase, folder=folder
        )
        self.roles = roles
        self.officers = {role: [(alias, signers[alias]) for alias in aliases] for role, aliases in officers.items()}
        self.officials = [
            Spender(
                signers[alias],
                1 + i % 3,
                f"{MINISTRIES[i % 3][0]}-{MINISTRIES[i % 3][1][i % len(MINISTRIES[i % 3][1])]}",
            )
            for i, alias in enumerate(officials)
        ]
        self.recipients = [Spender(signers[alias], 4, f"EV-BIZ-{i + 1:02d}") for i, alias in enumerate(recipients)]
        aliases = iter(vendor_aliases)
        self.vendors = [
            Vendor(signers[next(aliases)], category, f"{category_name(category).title()} #{n + 1}", amounts)
            for category, count, amounts in VENDOR_MIX
            for n in range(count)
        ]
        self.say(
            f"{len(roles) + len(signers)} ape keystore accounts ready in {time.monotonic() - begin:.1f} s "
            f"(keys decrypted in memory only)"
        )

    # --- setup ------------------------------------------------------------------------------------------

    def deploy_and_set_up(self) -> None:
        r = self.roles
        self.set_time(self.month.start - timedelta(days=2))
        self.deploy_block = self.head()[0] + 1
        deployed = sandbox.deploy_token(self.submitter, r["admin"], admin_delay=86_400)
        self.token = deployed.address
        self.say(f"deployed token {self.token} (admin module {deployed.module})")
        self.deploy_safes(deployed)
        self.specs = self.program_specs(r["treasury"].address)
        # One submission per step that depends on the previous one (each waits for its block: a second on Geth):
        # the mint, the programs and the vendors are independent of each other; a program's enrolment and
        # allocation come from one sender, so their nonces keep them in order.
        mint = self.safe_tx("issuer", r["issuer"], "mint", r["treasury"].address, 2_000_000_000)
        self.send(
            [
                mint,
                *(self.tx(r["manager"], "createProgram", spec.as_params(), gas=1_500_000) for spec in self.specs),
                *(
                    self.tx(r["registrar"], "registerVendor", v.signer.address, int(v.category), v.name)
                    for v in self.vendors
                ),
            ],
            "mint, programs and vendors",
        )
        self.say(f"the issuer Safe minted 2,000,000,000 KRW into the treasury: {self.approvals[-1]}")
        funding = []
        for program in (1, 2, 3, 4):
            members = [s for s in self.officials + self.recipients if s.program == program]
            addresses = [s.signer.address for s in members]
            departments = [s.department.encode().ljust(32, b"\0") for s in members]
            amount = 30_000_000 if program == 4 else 4_000_000
            ref = keccak(text=f"demo-{self.month.period}-disbursal-{program}")
            funding += [
                self.tx(r["manager"], "enrol", addresses, program, departments, gas=3_000_000),
                self.tx(r["manager"], "allocate", ref, program, addresses, [amount] * len(members), gas=3_000_000),
            ]
        self.send(funding, "enrolment and allocation")
        self.say(
            f"4 programs, {len(self.vendors)} vendors, {len(self.officials)} officials and "
            f"{len(self.recipients)} subsidy recipients enrolled and funded"
        )

    def deploy_safes(self, deployed: sandbox.Token) -> None:
        """The Safe v1.4.1 contracts (as `ape run deploy --safes` deploys them), an issuer Safe and a compliance
        Safe (2 of 3 officers each), and the roles: the issuer and compliance roles (and the mint allowance) to
        the Safes, the program manager's and vendor registrar's to their accounts, the treasury registered. Two
        submissions: the Safe contracts, then the Safes (their CREATE2 addresses known in advance) with the roles."""
        r = self.roles
        admin = r["admin"]
        infra = multisig_safes.deploy_infrastructure(self.submitter, admin)
        requests: list[TxRequest] = []
        for salt, (role, officers) in enumerate(self.officers.items()):
            owners = [signer.address for _, signer in officers]
            initializer = multisig_safes.call_data(
                multisig_safes.SETUP,
                owners,
                SAFE_THRESHOLD,
                safe_proposal.ZERO_ADDRESS,
                b"",
                infra.fallback_handler,
                safe_proposal.ZERO_ADDRESS,
                0,
                safe_proposal.ZERO_ADDRESS,
            )
            create = multisig_safes.call_data(multisig_safes.CREATE_PROXY, infra.singleton, initializer, salt)
            call = {"from": admin.address, "to": infra.proxy_factory, "data": "0x" + create.hex()}
            (address,) = abi_decode(["address"], bytes.fromhex(str(self.rpc.call("eth_call", [call, "pending"]))[2:]))
            self.safes[role] = to_checksum_address(address)
            self.safe_nonces[role] = 0
            requests.append(TxRequest(admin, infra.proxy_factory, create, 1_000_000))
        holders = {
            "ISSUER_ROLE": self.safes["issuer"],
            "PROGRAM_MANAGER_ROLE": r["manager"].address,
            "VENDOR_REGISTRAR_ROLE": r["registrar"].address,
            "COMPLIANCE_ROLE": self.safes["compliance"],
        }
        requests += [deployed.call(admin, "grantRole", keccak(text=role), who) for role, who in holders.items()]
        requests += [
            deployed.call(admin, "setMintAllowance", self.safes["issuer"], 10**13),
            deployed.call(admin, "registerTreasury", r["treasury"].address),
        ]
        self.send(requests, "the Safes and the roles")
        for role, address in self.safes.items():
            state = multisig_safes.read_safe(self.rpc, address)
            if state.threshold != SAFE_THRESHOLD or len(state.owners) != len(self.officers[role]):
                raise DemoError(f"the {role} Safe at {address} does not have the owners and threshold asked for")
        self.say(
            f"Safe v{safe_artifacts.SAFE_VERSION} contracts deployed; issuer Safe {self.safes['issuer']} "
            f"({SAFE_THRESHOLD} of {', '.join(a for a, _ in self.officers['issuer'])}) and compliance Safe "
            f"{self.safes['compliance']} ({SAFE_THRESHOLD} of {', '.join(a for a, _ in self.officers['compliance'])}) "
            "hold the issuer and compliance roles: no single person can mint, freeze or claw back"
        )

    def safe_tx(self, role: str, carrier: LocalSigner, fn: str, *args: Any, gas: int = 400_000) -> TxRequest:
        """The token call `fn(*args)` as a Safe transaction of `role`'s Safe at its next nonce, signed by two of
        its officers (EIP-712 SafeTx, offline) and carried to the chain by `carrier` (execTransaction: any
        account may send it; the signatures are what the Safe checks). Officers take turns, so that the story
        shows different pairs approving."""
        safe, nonce = self.safes[role], self.safe_nonces[role]
        tx = safe_proposal.SafeTx(
            safe=safe, chain_id=self.chain_id, to=self.token, data=encode_call(self.abi, fn, args), nonce=nonce
        )
        officers = self.officers[role]
        pair = [officers[(nonce + i) % len(officers)] for i in range(SAFE_THRESHOLD)]
        signatures = safe_proposal.pack([safe_proposal.sign(tx, signer) for _, signer in pair])
        self.safe_nonces[role] = nonce + 1
        self.approvals.append(
            f"{fn} approved in the {role} Safe (nonce {nonce}, SafeTx 0x{tx.hash().hex()[:10]}...) by "
            f"{' and '.join(alias for alias, _ in pair)} ({SAFE_THRESHOLD} of {len(officers)}, EIP-712 signatures)"
        )
        data = multisig_safes.call_data(multisig_safes.EXEC, *tx.exec_args(signatures))
        return TxRequest(carrier, safe, data, gas + SAFE_EXEC_GAS)

    def program_specs(self, treasury: str) -> list[ProgramSpec]:
        """The month's four programs: three ministries' business promotion and the EV-charger subsidy.

        Simulated month: valid for the month. Live day: valid from the month's start until a day after now
        (the budget office closes them at the end of the session, `close_live_programs`), and each program's
        hour windows widened to cover the session (`live_hours`), whatever the time of day."""
        start, end = int(self.month.start.timestamp()), int(self.month.end.timestamp())
        if self.live is not None:
            end = int((self.live + timedelta(days=1)).timestamp())
        names = self.month.program_names()
        specs = [business_promotion(names[i + 1], treasury, start, end) for i in range(len(MINISTRIES))]
        specs.append(ev_charger_subsidy(names[4], treasury, start, end))
        if self.live is None:
            return specs
        live = self.live
        widened = [replace(spec, hours=live_hours(spec.hours, live)) for spec in specs]
        promotion, subsidy = (describe_hours(specs[i].hours, widened[i].hours) for i in (0, 3))
        self.say(
            f"live day {live:%Y-%m-%d %H:%M} KST: the presets' hours widened to cover the session (business "
            f"promotion {promotion or 'unchanged'}; EV subsidy {subsidy or 'unchanged'})"
        )
        return widened

    # --- the month --------------------------------------------------------------------------------------

    def attempts_for(
        self, day: date, *, night: bool = False, office_hours: bool = True, share: tuple[float, float] = SHARE
    ) -> list[Attempt]:
        """The payment attempts of one slot of `day`: officials (`share` of them on a working day, on a weekend or
        holiday) pay for meals and meetings, some breaking a rule; subsidy recipients claim on working days
        in `office_hours`; `night` is the slot after 23:00."""
        rng = self.random
        weekend = day.weekday() >= 5 or day in self.kr_holidays
        allowed = [
            v
            for v in self.vendors
            if v.category in (Category.RESTAURANT, Category.CAFE_BAKERY, Category.CATERING, Category.CONFERENCE_VENUE)
        ]
        restricted = [v for v in self.vendors if v.category in RESTRICTED_FOR_BUSINESS_PROMOTION]
        ev_vendors = [v for v in self.vendors if v.category.name.startswith(("EV_", "ELECTRICAL"))]
        payers = [o for o in self.officials if rng.random() < share[1 if weekend else 0]]
        attempts, self.split_rest = self.split_rest, []
        busy = {a.payer.signer.address for a in attempts}
        payers = [p for p in payers if p.signer.address not in busy]  # one attempt per payer per slot
        for payer in payers:
            roll = rng.random()
            if night:
                kind, vendor = "at night", rng.choice(allowed)
            elif roll < 0.05:
                kind, vendor = "restricted category", rng.choice(restricted)
            else:
                kind, vendor = "normal", rng.choice(allowed)
            amount = rng.randrange(*vendor.amounts) // 100 * 100
            evidence = hashlib.sha256(f"attendees {payer.department} {day} {amount}".encode()).digest()
            receipt = vendor.next_invoice
            if roll > 0.97 and vendor.paid_receipts:
                kind, receipt = "repeated receipt", rng.choice(vendor.paid_receipts)
            elif 0.93 < roll <= 0.96:
                kind, amount = "missing evidence", max(amount, 520_000)
                evidence = ZERO32
            elif 0.90 < roll <= 0.91:
                kind, amount = "over per-payment limit", 1_250_000
            if amount < 500_000 and kind == "normal":
                evidence = ZERO32
            attempts.append(Attempt(payer, vendor, amount, receipt, evidence, kind))
            if receipt == vendor.next_invoice:
                vendor.next_invoice += 1
            if kind == "normal" and amount < 500_000 and rng.random() < 0.02:
                # A split bill: the rest of the same meal paid in the next slot (allowed, the audit flags it).
                second = vendor.next_invoice
                vendor.next_invoice += 1
                self.split_rest.append(Attempt(payer, vendor, 500_000 - amount // 2, second, ZERO32, "split bill"))
        if not weekend and office_hours:
            for payer in self.recipients:
                if rng.random() < 0.08:
                    vendor = rng.choice(ev_vendors)
                    amount = rng.randrange(*vendor.amounts) // 1000 * 1000
                    evidence = hashlib.sha256(f"installation report {payer.department} {day}".encode()).digest()
                    attempts.append(Attempt(payer, vendor, amount, vendor.next_invoice, evidence, "subsidy"))
                    vendor.next_invoice += 1
        return attempts

    def run_slot(self, moment: datetime | None, attempts: list[Attempt]) -> None:
        """Pre-checks and sends `attempts` at `moment` (simulated month) or now (live day: `moment` None)."""
        if not attempts:
            return
        if moment is not None:
            self.set_time(moment)
            self.mine()
        checks = [
            (
                "detectPaymentRestriction",
                (a.payer.signer.address, a.vendor.signer.address, a.amount, a.receipt.to_bytes(32, "big"), a.evidence),
            )
            for a in attempts
        ]
        codes = [code for (code,) in self.view(checks, ["uint8"])]
        to_send: list[TxRequest] = []
        sent_attempts: list[tuple[Attempt, int]] = []
        for attempt, code in zip(attempts, codes, strict=True):
            self.tally.attempts += 1
            reason = restriction_label(code)
            # On the live day the first refusal is always sent anyway too, so that one shows on any day.
            unchecked_wallet = code != 0 and (
                self.random.random() < UNCHECKED[self.live is not None]
                or (self.live is not None and not self.tally.refused_on_chain and not any(c for _, c in sent_attempts))
            )
            if code == 0 or unchecked_wallet:
                to_send.append(
                    self.tx(
                        attempt.payer.signer,
                        "pay",
                        attempt.vendor.signer.address,
                        attempt.amount,
                        attempt.receipt.to_bytes(32, "big"),
                        attempt.evidence,
                        gas=150_000,
                    )
                )
                sent_attempts.append((attempt, code))
            else:
                self.tally.by_reason[reason] += 1
        for outcome, (attempt, code) in zip(self.send(to_send, "payments"), sent_attempts, strict=True):
            if outcome.status:
                self.tally.by_reason["accepted"] += 1
                self.tally.paid[attempt.payer.program] += attempt.amount
                attempt.vendor.paid_receipts.append(attempt.receipt)
            else:
                reason = restriction_label(code) if code else "refused in the block (state changed after the pre-check)"
                self.tally.by_reason[reason] += 1
                self.tally.refused_on_chain[reason] += 1
                self.tally.examples.setdefault(reason, outcome.error or "")

    def play_month(self, days: int = 31) -> None:
        began = time.monotonic()
        first, end = self.month.start.date(), self.month.end.date()
        day = first
        while day < min(end, first + timedelta(days=days)):
            for hour, minute in SLOTS:
                moment = datetime(day.year, day.month, day.day, hour, minute, tzinfo=KST)
                attempts = self.attempts_for(day, night=(hour, minute) == NIGHT_SLOT, office_hours=9 <= hour < 18)
                self.run_slot(moment, attempts)
            if day == first + timedelta(days=min(14, days - 1)):
                self.freeze_and_claw_back(datetime(day.year, day.month, day.day, 23, 50, tzinfo=KST))
            day += timedelta(days=1)
        self.say(
            f"{self.tally.attempts:,} payment attempts in {self.month.name} played in {time.monotonic() - began:.0f} s"
        )

    def play_live(self, target: int = DEFAULT_LIVE_ATTEMPTS) -> None:
        """Rounds of attempts at the chain's current time until `target` attempts were made: each round is one
        slot (a pre-check batch and one submission, mined in the next block); compliance freezes a wallet
        half-way through."""
        began = time.monotonic()
        assert self.live is not None
        frozen = False
        while self.tally.attempts < target and self.rounds < MAX_LIVE_ROUNDS:
            self.run_slot(None, self.attempts_for(self.now().date(), share=LIVE_SHARE))
            self.rounds += 1
            if not frozen and self.tally.attempts >= target // 2:
                self.freeze_and_claw_back(None)
                frozen = True
        if not frozen:
            self.freeze_and_claw_back(None)
        self.say(
            f"{self.tally.attempts:,} payment attempts in {self.rounds} rounds from {self.live:%H:%M} KST "
            f"(live) played in {time.monotonic() - began:.0f} s"
        )

    def freeze_and_claw_back(self, moment: datetime | None) -> None:
        r, official = self.roles, self.officials[6]
        if moment is not None:
            self.set_time(moment)
        ((balance,),) = self.view([("balanceOf", (official.signer.address,))], ["uint256"])
        case = f"audit case {self.month.year}-118"
        self.send(
            [
                self.safe_tx("compliance", r["compliance"], "freeze", official.signer.address, case),
                self.safe_tx(
                    "compliance",
                    r["compliance"],
                    "clawback",
                    official.signer.address,
                    balance,
                    f"{case}: meals with a contractor",
                ),
            ],
            "clawback",
        )
        self.clawed = (official, balance)
        self.say(f"compliance froze {official.signer.address} and clawed back {balance:,} KRW ({case}):")
        for story in self.approvals[-2:]:
            self.say(f"  {story}")

    def closing(self) -> tuple[list[TxRequest], int]:
        """Live day: the budget office ends the programs a few seconds from now (updateProgram with an earlier
        end), so that their unspent budget lapses in this session, as it does at the month's end in the
        simulation. (The requests, and the end.)"""
        end = self.head()[1] + LIVE_CLOSE_AFTER
        manager = self.roles["manager"]
        requests = [
            self.tx(manager, "updateProgram", program, replace(spec, end=end).as_params(), gas=1_500_000)
            for program, spec in enumerate(self.specs, start=1)
        ]
        return requests, end

    def wait_for_time(self, moment: int, timeout: float = 30.0) -> None:
        """Waits until the chain's clock (the latest block's time) reaches `moment`."""
        deadline = time.monotonic() + timeout
        while self.head()[1] < moment:
            if time.monotonic() > deadline:
                raise LiveChainError(f"the chain's clock did not reach {display.moment(moment)} within {timeout:g} s")
            time.sleep(0.2)

    def redeem_and_sweep(self) -> None:
        """Vendors redeem what they received; after the programs' end (the month's, or on the live day the end
        the budget office sets now, in the same submission) the unspent budget is swept back."""
        closing: list[TxRequest] = []
        end = 0
        if self.live is None:
            self.set_time(self.month.end + timedelta(hours=10))
            self.mine()
        else:
            closing, end = self.closing()
        balances = self.view([("balanceOf", (v.signer.address,)) for v in self.vendors], ["uint256"])
        redeems = [
            self.tx(v.signer, "redeem", b, f"KB-settlement-{v.signer.address}-{self.month.period}")
            for v, (b,) in zip(self.vendors, balances, strict=True)
            if b > 0
        ]
        self.send(closing + redeems, "closing the programs and redemptions" if closing else "redeem")
        self.redeemed = sum(b for (b,) in balances)
        if closing:
            self.wait_for_time(end)
            self.say(f"the budget office closed the live day's programs at {display.moment(end)}: their budget lapses")
        spenders = [s.signer.address for s in self.officials + self.recipients]
        before = self.view([("balanceOf", (a,)) for a in spenders], ["uint256"])
        self.send([self.tx(self.roles["compliance"], "sweepExpired", spenders, gas=6_000_000)], "sweep")
        self.swept = sum(b for (b,) in before)

    # --- report -----------------------------------------------------------------------------------------

    def report(self, console: Console) -> None:
        title = self.month.name if self.live is None else f"live on {self.live:%Y-%m-%d} from {self.live:%H:%M}"
        table = Table(title=f"Payment attempts, {title} (KST)")
        table.add_column("outcome")
        table.add_column("count", justify="right")
        table.add_column("of which refused by the chain itself", justify="right")
        for reason, count in self.tally.by_reason.most_common():
            table.add_row(
                reason, f"{count:,}", f"{self.tally.refused_on_chain.get(reason, 0):,}" if reason != "accepted" else ""
            )
        table.add_row("[bold]total[/]", f"[bold]{self.tally.attempts:,}[/]", "")
        console.print(table)
        names = self.month.program_names()
        totals = Table(title="Spent per program")
        totals.add_column("program")
        totals.add_column("paid to vendors (KRW)", justify="right")
        for program, name in names.items():
            totals.add_row(name, f"{self.tally.paid[program]:,}")
        console.print(totals)
        for reason, sentence in sorted(self.tally.examples.items()):
            console.print(f"[dim]refused on chain ({reason}):[/] {sentence}")
        official, amount = self.clawed
        console.print(
            f"compliance froze {official.signer.address} and clawed back {amount:,} KRW; vendors redeemed "
            f"{self.redeemed:,} KRW; {self.swept:,} KRW of unspent budget lapsed and was swept back"
        )
        console.print("[bold]Four eyes[/]: every mint, freeze and claw-back went through a Safe:")
        for story in self.approvals:
            console.print(f"  {story}")

    def audit(self, console: Console) -> None:
        """Indexes every event of the month into SQLite and prints the auditors' report and flags."""
        from deposit_token.audit.db import store
        from deposit_token.audit.query.flags import find_flags, rule_counts
        from deposit_token.audit.query.render import render_tables
        from deposit_token.audit.query.reports import build_report, report_sections
        from deposit_token.audit.sync.indexer import Indexer, IndexerConfig
        from deposit_token.audit.verify import verify

        began = time.monotonic()
        database = self.data_dir / "audit.sqlite"
        database.unlink(missing_ok=True)  # this run's chain is new: so is its audit database
        engine = store.create_db_engine(f"sqlite:///{database}")
        store.upgrade(engine)
        rpc = RpcClient(self.rpc_url)
        confirmations = 0
        if self.live is not None:  # a real network may fork for a block or two: index what has settled
            confirmations = LIVE_CONFIRMATIONS
            last = self.head()[0]
            while self.head()[0] < last + confirmations:
                time.sleep(0.2)
        config = IndexerConfig(
            token=self.token,
            start_block=self.deploy_block,
            confirmations=confirmations,
            safes=tuple(self.safes.values()),
        )
        stats = Indexer(rpc, engine, config).run()
        console.print(
            f"[bold]Audit[/]: indexed {stats.events:,} events into {self.data_dir / 'audit.sqlite'} "
            f"in {time.monotonic() - began:.1f} s"
        )
        with engine.connect() as conn:
            report = build_report(conn, dimensions=("program", "department", "category"), top=5)
            render_tables(report_sections(report, ("spend", "flows", "vendors", "approvals")), {}, console)
            counts = rule_counts(find_flags(conn))
        flags = Table(title="Audit flags (Korean public-sector card practice)")
        flags.add_column("rule")
        flags.add_column("payments flagged", justify="right")
        for rule, count in sorted(counts.items()):
            flags.add_row(rule, f"{count:,}")
        console.print(flags)
        result = verify(rpc, engine, self.token)
        verdict = "no mismatch" if result.ok else f"{len(result.mismatches)} MISMATCHES"
        console.print(
            f"verify: {result.checks:,} database facts checked against the chain at block {result.block}: {verdict}"
        )


def run(
    console: Console,
    data_dir: Path,
    port: int | None = None,
    keep_running: bool = False,
    days: int = 31,
    month: date | None = None,
) -> Demo:
    """Plays the whole pilot (`month`'s first `days` days; December 2026 by default) and prints what happened;
    returns the Demo (its node's URL in `demo.config`)."""
    began = time.monotonic()
    demo = Demo(data_dir, port or free_port(), console.print, month=month)
    demo.start_node()
    try:
        demo.make_cast()
        demo.deploy_and_set_up()
        demo.play_month(days)
        demo.redeem_and_sweep()
        demo.report(console)
        demo.audit(console)
        console.print(f"demo finished in {time.monotonic() - began:.0f} s")
    finally:
        if not keep_running:
            demo.submitter.close()
            node.stop(demo.config)
    return demo


def run_live(
    console: Console,
    rpc_url: str,
    data_dir: Path,
    attempts: int = DEFAULT_LIVE_ATTEMPTS,
    seed: int = 2026,
) -> Demo:
    """Plays a live day on the running network at `rpc_url` (its clock real time: the Geth network, or any node
    that does not time-travel) and prints what happened; returns the Demo.

    The same cast, programs, phases and audit as the simulated month, played now: the programs are the current
    month's (named after it; the year's holidays and the weekend decide how many officials pay), valid from
    the month's start, with the presets' hour windows widened around the current hour so that payments are
    within hours at any time of day; `attempts` payment attempts in rounds at the current time (a few hundred:
    each round waits for its block); a wallet frozen and clawed back half-way; vendors redeem; the budget
    office closes the programs and their budget lapses and is swept back; the indexer, the report, the flags
    and verify. Standard JSON-RPC only. The demo's keystores and audit database live in `data_dir` (wiped);
    the network is neither started nor stopped."""
    began = time.monotonic()
    demo = Demo(data_dir, 0, console.print, seed=seed)
    demo.connect_live(rpc_url)
    try:
        demo.make_cast()
        demo.deploy_and_set_up()
        demo.play_live(attempts)
        demo.redeem_and_sweep()
        demo.report(console)
        demo.audit(console)
        console.print(f"live demo finished in {time.monotonic() - began:.0f} s")
    finally:
        demo.submitter.close()
        demo.rpc.close()
    return demo

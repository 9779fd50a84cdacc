"""Who and what is registered on the token, read from the chain for the listing commands.

The contract keeps no enumerable lists (an enumerable role or vendor set would cost gas on every change), so
the members of each set come from its events, read with ``eth_getLogs`` from the deployment's block, and
their current state from the token's views, all in one batched ``multicall`` read at one block: an address
that was registered and later changed shows as it is now. Only standard JSON-RPC is used, so this works on
any node that still has the logs.

Rows are plain dataclasses; `Column` says how each field is shown to a person (display rules) and how it is
written for machines (CSV/JSON: whole KRW, ISO-8601 times with their offset, checksummed addresses).
"""

from __future__ import annotations

import csv
import io
import json
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from eth_abi import decode as abi_decode
from eth_abi import encode as abi_encode
from eth_utils import to_checksum_address

from deposit_token.chain import reads
from deposit_token.chain.reads import AccountState, ReadError, event_topic, multicall_views, selector
from deposit_token.chain.rpc import RpcClient
from deposit_token.domain import display
from deposit_token.domain.categories import category_name
from deposit_token.domain.kinds import Kind
from deposit_token.domain.rules import KST_OFFSET_MINUTES
from deposit_token.domain.sentences import ROLE_NAMES

LOG_STEP = 50_000  # blocks per eth_getLogs: nodes cap the range of one request
FORMATS = ("table", "csv", "json")

VENDOR_REGISTERED = event_topic("VendorRegistered(address,uint8,string)")
SPENDER_ENROLLED = event_topic("SpenderEnrolled(address,uint16,bytes32)")
TREASURY_REGISTERED = event_topic("TreasuryRegistered(address)")
ROLE_GRANTED = event_topic("RoleGranted(bytes32,address,address)")
ROLE_REVOKED = event_topic("RoleRevoked(bytes32,address,address)")
HAS_ROLE = selector("hasRole(bytes32,address)")
DEPARTMENT_OF = selector("departmentOf(address)")

# Readable role names, in the order the pilot grants them.
READABLE_ROLES = {
    "DEFAULT_ADMIN_ROLE": "admin",
    "ISSUER_ROLE": "issuer",
    "PROGRAM_MANAGER_ROLE": "program-manager",
    "VENDOR_REGISTRAR_ROLE": "vendor-registrar",
    "COMPLIANCE_ROLE": "compliance",
}


# --- events -------------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Log:
    block: int
    index: int
    topics: tuple[str, ...]
    data: bytes


def get_logs(
    rpc: RpcClient, token: str, topics: Sequence[Any], from_block: int, to_block: int, step: int = LOG_STEP
) -> list[Log]:
    """Every log of `token` matching `topics` in [from_block, to_block], oldest first; the range is split in
    `step`-block windows sent as one batch."""
    calls = [
        (
            "eth_getLogs",
            [
                {
                    "address": token,
                    "fromBlock": hex(start),
                    "toBlock": hex(min(start + step - 1, to_block)),
                    "topics": list(topics),
                }
            ],
        )
        for start in range(from_block, to_block + 1, step)
    ]
    logs = []
    for answer in reads.read_batch(rpc, calls, "reading the token's events (eth_getLogs)"):
        for raw in answer:
            logs.append(
                Log(
                    int(raw["blockNumber"], 16),
                    int(raw["logIndex"], 16),
                    tuple(raw["topics"]),
                    bytes.fromhex(raw["data"][2:]),
                )
            )
    return sorted(logs, key=lambda log: (log.block, log.index))


def topic_address(topic: str) -> str:
    return to_checksum_address("0x" + topic[-40:])


def topic_int(topic: str) -> int:
    return int(topic, 16)


def block_times(rpc: RpcClient, blocks: Iterable[int]) -> dict[int, int]:
    """Timestamp of each block number (one batched request)."""
    numbers = sorted(set(blocks))
    answers = reads.read_batch(rpc, [("eth_getBlockByNumber", [hex(n), False]) for n in numbers], "reading block times")
    return {n: int(block["timestamp"], 16) for n, block in zip(numbers, answers) if block}


@dataclass(frozen=True)
class Snapshot:
    """One block that every read of a listing is pinned to, so the rows describe one state."""

    block: int
    timestamp: int
    from_block: int


def snapshot(rpc: RpcClient, from_block: int) -> Snapshot:
    number, timestamp = reads.head(rpc)
    if from_block > number:
        raise ReadError(
            f"the deployment record says the token was deployed at block {from_block:,}, but the node's "
            f"head is block {number:,}: is this the chain it was deployed on?"
        )
    return Snapshot(number, timestamp, from_block)


# --- display helpers ------------------------------------------------------------------------------------------------


def department_text(raw: bytes) -> str:
    """The department code as it was typed (text of at most 32 UTF-8 bytes), else ``0x`` + 64 hex digits;
    the inverse of `inputs.bytes32_text`."""
    text = raw.rstrip(b"\0")
    try:
        decoded = text.decode("utf-8")
    except UnicodeDecodeError:
        return "0x" + raw.hex()
    return decoded if decoded.isprintable() else "0x" + raw.hex()


def iso(timestamp: int, offset_minutes: int = KST_OFFSET_MINUTES) -> str:
    """ISO-8601 with the offset, for machines: ``2026-12-01T09:00:00+09:00``."""
    return datetime.fromtimestamp(int(timestamp), display.zone(offset_minutes)).isoformat()


def role_label(role: str) -> str:
    """``issuer (ISSUER_ROLE)``; an unknown role id stays its hex."""
    return f"{READABLE_ROLES[role]} ({role})" if role in READABLE_ROLES else role


def _state(*flags: tuple[bool, str]) -> str:
    return ", ".join(label for flag, label in flags if flag) or "active"


# --- columns and output ----------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Column:
    """One field of a listing: its header, the value written to CSV/JSON, and the cell shown in a table."""

    name: str
    machine: Callable[[Any], Any]
    human: Callable[[Any], str] | None = None
    in_table: bool = True  # machine-only detail (codes, flags already summed up in another column)

    def cell(self, row: Any) -> str:
        value = (self.human or self.machine)(row)
        return "-" if value is None or value == "" else str(value)


def as_csv(rows: Sequence[Any], columns: Sequence[Column]) -> str:
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\n")
    writer.writerow([c.name for c in columns])
    for row in rows:
        writer.writerow(["" if c.machine(row) is None else _csv_value(c.machine(row)) for c in columns])
    return out.getvalue()


def _csv_value(value: Any) -> Any:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, (list, tuple)):
        return ";".join(str(v) for v in value)
    return value


def as_json(rows: Sequence[Any], columns: Sequence[Column]) -> str:
    return json.dumps([{c.name: c.machine(row) for c in columns} for row in rows], indent=2, ensure_ascii=False)


# --- accounts --------------------------------------------------------------------------------------------------------


def _accounts(rpc: RpcClient, token: str, addresses: Sequence[str], at: Snapshot) -> list[AccountState]:
    return reads.accounts_of(rpc, token, addresses, at.block)


# --- vendors --------------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class VendorRow:
    address: str
    name: str
    category: int
    suspended: bool
    frozen: bool
    balance: int
    registered: int  # timestamp of the first registration

    @property
    def state(self) -> str:
        return _state((self.suspended, "suspended"), (self.frozen, "frozen"))


VENDOR_COLUMNS = (
    Column("address", lambda r: r.address),
    Column("name", lambda r: r.name),
    Column("category", lambda r: category_name(r.category)),
    Column("category_code", lambda r: r.category, in_table=False),
    Column("state", lambda r: r.state),
    Column("suspended", lambda r: r.suspended, in_table=False),
    Column("frozen", lambda r: r.frozen, in_table=False),
    Column("balance_krw", lambda r: r.balance, lambda r: display.krw(r.balance)),
    Column("registered", lambda r: iso(r.registered), lambda r: display.moment(r.registered)),
)


def vendors(rpc: RpcClient, token: str, from_block: int) -> list[VendorRow]:
    """Every registered vendor with its latest registered name, current category, state and balance, in order
    of first registration."""
    at = snapshot(rpc, from_block)
    first: dict[str, int] = {}
    names: dict[str, str] = {}
    for log in get_logs(rpc, token, [VENDOR_REGISTERED], from_block, at.block):
        address = topic_address(log.topics[1])
        first.setdefault(address, log.block)
        names[address] = abi_decode(["string"], log.data)[0]
    addresses = list(first)
    times = block_times(rpc, first.values())
    states = _accounts(rpc, token, addresses, at)
    return [
        VendorRow(a, names[a], s.category, s.suspended, s.frozen, s.balance, times[first[a]])
        for a, s in zip(addresses, states)
        if s.kind == Kind.VENDOR
    ]


# --- treasuries ------------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class TreasuryRow:
    address: str
    frozen: bool
    balance: int
    programs: tuple[str, ...]
    registered: int

    @property
    def state(self) -> str:
        return _state((self.frozen, "frozen"))


TREASURY_COLUMNS = (
    Column("address", lambda r: r.address),
    Column("programs", lambda r: list(r.programs), lambda r: ", ".join(r.programs)),
    Column("state", lambda r: r.state),
    Column("frozen", lambda r: r.frozen, in_table=False),
    Column("balance_krw", lambda r: r.balance, lambda r: display.krw(r.balance)),
    Column("registered", lambda r: iso(r.registered), lambda r: display.moment(r.registered)),
)


def treasuries(rpc: RpcClient, token: str, from_block: int, programs: Sequence[ProgramRow] = ()) -> list[TreasuryRow]:
    """Every registered treasury with its balance and the programs it pays."""
    at = snapshot(rpc, from_block)
    blocks = {
        topic_address(log.topics[1]): log.block
        for log in get_logs(rpc, token, [TREASURY_REGISTERED], from_block, at.block)
    }
    times = block_times(rpc, blocks.values())
    states = _accounts(rpc, token, list(blocks), at)
    return [
        TreasuryRow(a, s.frozen, s.balance, tuple(p.name for p in programs if p.treasury == a), times[blocks[a]])
        for (a, s) in zip(blocks, states)
    ]


# --- programs --------------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class ProgramRow:
    id: int
    name: str
    treasury: str
    treasury_balance: int
    start: int
    end: int
    utc_offset_minutes: int
    paused: bool  # paused on its own
    token_paused: bool  # the token-wide pause (every program is halted while it lasts)
    version: int
    categories: tuple[int, ...]
    per_payment_limit: int
    evidence_threshold: int
    now: int

    @property
    def state(self) -> str:
        if self.paused:
            return "paused"
        if self.token_paused:
            return "halted (token paused)"
        if self.now < self.start:
            return "not started"
        if self.now >= self.end:
            return "ended"
        return "active"


def _moment(offset: Callable[[ProgramRow], int], field: str) -> Column:
    return Column(
        field, lambda r: iso(getattr(r, field), offset(r)), lambda r: display.moment(getattr(r, field), offset(r))
    )


PROGRAM_COLUMNS = (
    Column("id", lambda r: r.id),
    Column("name", lambda r: r.name),
    Column("treasury", lambda r: r.treasury),
    Column("treasury_balance_krw", lambda r: r.treasury_balance, lambda r: display.krw(r.treasury_balance)),
    _moment(lambda r: r.utc_offset_minutes, "start"),
    _moment(lambda r: r.utc_offset_minutes, "end"),
    Column("state", lambda r: r.state),
    Column("version", lambda r: r.version),
    Column(
        "categories",
        lambda r: [category_name(c) for c in r.categories],
        lambda r: ", ".join(category_name(c) for c in r.categories),
    ),
    Column("per_payment_limit_krw", lambda r: r.per_payment_limit, lambda r: display.krw(r.per_payment_limit)),
    Column("evidence_from_krw", lambda r: r.evidence_threshold, lambda r: display.krw(r.evidence_threshold)),
)


def programs(chain: Any) -> list[ProgramRow]:
    """Every program (views of the token; programs are numbered 1..programCount)."""
    from deposit_token.ops.context import latest_timestamp, list_programs

    infos = list_programs(chain)
    now = latest_timestamp(chain)
    treasuries_ = list(dict.fromkeys(p.treasury for p in infos))
    balances = {a: s.balance for a, s in zip(treasuries_, reads.accounts_of(chain.rpc, chain.address, treasuries_))}
    return [
        ProgramRow(
            p.id,
            p.name,
            p.treasury,
            balances[p.treasury],
            p.start,
            p.end,
            p.utc_offset_minutes,
            p.paused,
            p.token_paused,
            p.version,
            p.categories,
            p.per_payment_limit,
            p.evidence_threshold,
            now,
        )
        for p in infos
    ]


# --- spenders --------------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class SpenderRow:
    address: str
    program_id: int
    program: str
    department: str
    frozen: bool
    balance: int
    enrolled: int  # timestamp of the first enrolment

    @property
    def state(self) -> str:
        return _state((self.frozen, "frozen"))


SPENDER_COLUMNS = (
    Column("address", lambda r: r.address),
    Column("program_id", lambda r: r.program_id, in_table=False),
    Column("program", lambda r: r.program, lambda r: f"{r.program} (#{r.program_id})"),
    Column("department", lambda r: r.department),
    Column("state", lambda r: r.state),
    Column("frozen", lambda r: r.frozen, in_table=False),
    Column("balance_krw", lambda r: r.balance, lambda r: display.krw(r.balance)),
    Column("enrolled", lambda r: iso(r.enrolled), lambda r: display.moment(r.enrolled)),
)


def spenders(
    rpc: RpcClient, token: str, from_block: int, program_names: dict[int, str], program_id: int | None = None
) -> list[SpenderRow]:
    """Every enrolled spender (of one program if `program_id` is given) with its department, state and
    balance, in order of first enrolment."""
    at = snapshot(rpc, from_block)
    program_topic = None if program_id is None else "0x" + program_id.to_bytes(32, "big").hex()
    first: dict[str, int] = {}
    for log in get_logs(rpc, token, [SPENDER_ENROLLED, None, program_topic], from_block, at.block):
        first.setdefault(topic_address(log.topics[1]), log.block)
    addresses = list(first)
    states = _accounts(rpc, token, addresses, at)
    departments = [
        abi_decode(["bytes32"], data)[0]
        for data in multicall_views(
            rpc, token, [DEPARTMENT_OF + abi_encode(["address"], [a]) for a in addresses], at.block
        )
    ]
    times = block_times(rpc, first.values())
    rows = []
    for address, state, department in zip(addresses, states, departments):
        if state.kind != Kind.SPENDER or (program_id is not None and state.program_id != program_id):
            continue  # enrolled there once, but the account is now something else
        rows.append(
            SpenderRow(
                address,
                state.program_id,
                program_names.get(state.program_id, ""),
                department_text(department),
                state.frozen,
                state.balance,
                times[first[address]],
            )
        )
    return rows


# --- roles ------------------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class RoleRow:
    role: str  # the contract's name, e.g. ISSUER_ROLE (hex id for a role this code does not know)
    account: str
    granted: int  # timestamp of the grant that is in force
    granted_by: str


ROLE_COLUMNS = (
    Column("role", lambda r: r.role, lambda r: role_label(r.role)),
    Column("account", lambda r: r.account),
    Column("granted", lambda r: iso(r.granted), lambda r: display.moment(r.granted)),
    Column("granted_by", lambda r: r.granted_by),
)


def role_holders(rpc: RpcClient, token: str, from_block: int) -> list[RoleRow]:
    """Who holds each role now: every (role, account) pair of a RoleGranted/RoleRevoked event, kept if
    `hasRole` still says so; ordered by role (admin first), then by grant."""
    at = snapshot(rpc, from_block)
    last_grant: dict[tuple[str, str], Log] = {}
    for log in get_logs(rpc, token, [[ROLE_GRANTED, ROLE_REVOKED]], from_block, at.block):
        pair = (log.topics[1], topic_address(log.topics[2]))
        if log.topics[0] == ROLE_GRANTED:
            last_grant[pair] = log
    pairs = list(last_grant)
    held = [
        abi_decode(["bool"], data)[0]
        for data in multicall_views(
            rpc,
            token,
            [HAS_ROLE + bytes.fromhex(role[2:]) + abi_encode(["address"], [account]) for role, account in pairs],
            at.block,
        )
    ]
    current = [pair for pair, holds in zip(pairs, held) if holds]
    times = block_times(rpc, (last_grant[p].block for p in current))
    order = list(READABLE_ROLES)
    rows = [
        RoleRow(
            ROLE_NAMES.get(role.lower(), role),
            account,
            times[last_grant[(role, account)].block],
            topic_address(last_grant[(role, account)].topics[3]),
        )
        for role, account in current
    ]
    return sorted(rows, key=lambda r: order.index(r.role) if r.role in order else len(order))


def roles_without_holder(rows: Iterable[RoleRow]) -> list[str]:
    held = {r.role for r in rows}
    return [role for role in READABLE_ROLES if role not in held]

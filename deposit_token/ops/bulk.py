"""Treasury actions from CSV files: vendor registration and suspension, enrolment, sweeping expired balances.

A file is checked row by row, then by the contract (batched eth_estimateGas); every bad row is reported with its
line number (`BulkRefused`), and only a clean file is sent, through the fast submission path
(`deposit_token.chain.submit`) in rounds that each fit one block (`deposit_token.ops.planning`).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from deposit_token.chain import reads
from deposit_token.chain.submit import TxOutcome, TxRequest
from deposit_token.domain import display
from deposit_token.domain.categories import Category, parse_category
from deposit_token.domain.inputs import InputError, RowProblem, bytes32_text, check_address, read_csv
from deposit_token.domain.kinds import Kind
from deposit_token.ops.context import (
    ActionError,
    Chain,
    ProgramInfo,
    calldata,
    latest_timestamp,
    program_info,
    resolve_program,
)
from deposit_token.ops.planning import block_gas_limit, block_rounds, estimate_many, with_margin

ENROL_CHUNK = 200  # spenders per enrol transaction: ~47k gas each, ~9.4M per transaction (a 30M block holds 3)
SWEEP_CHUNK = 300  # spenders per sweepExpired transaction


@dataclass(frozen=True)
class BulkCall:
    """One transaction of a bulk action: the CSV lines it comes from, a label and its calldata."""

    lines: tuple[int, ...]
    label: str
    data: bytes

    @property
    def where(self) -> str:
        if len(self.lines) == 1:
            return f"line {self.lines[0]}"
        return f"lines {self.lines[0]}-{self.lines[-1]}"


class BulkRefused(InputError):
    """Rows of a file are bad or would be refused by the contract; `problems` lists each with its line."""

    def __init__(self, problems: Sequence[RowProblem], source: str) -> None:
        self.problems = sorted(problems, key=lambda p: p.line)
        self.source = source
        super().__init__(f"{source}: {len(self.problems)} problem(s); nothing was sent")


def _dedupe(rows: Iterable[tuple[int, str]], problems: list[RowProblem]) -> set[int]:
    """Lines whose address repeats an earlier row's (reported); returns those lines."""
    first: dict[str, int] = {}
    repeated = set()
    for line, address in rows:
        key = address.lower()
        if key in first:
            problems.append(RowProblem(line, f"duplicate address (also on line {first[key]})", address))
            repeated.add(line)
        else:
            first[key] = line
    return repeated


def vendor_calls(chain: Chain, path: Path | str, action: str, reason: str = "") -> list[BulkCall]:
    """One call per row of a vendor file (columns address,category,name) for `action` in register /
    suspend / reactivate; BulkRefused lists every bad row."""
    optional = ("name",) if action == "register" else ("category", "name")
    required = ("address", "category") if action == "register" else ("address",)
    table = read_csv(path, required, optional)
    problems = list(table.problems)
    parsed: list[tuple[int, str, Category | None, str]] = []
    for line, row in table.rows:
        try:
            address = check_address(row["address"])
            category = parse_category(row["category"]) if action == "register" else None
            name = row.get("name", "").strip()
            if action == "register" and not name:
                raise InputError("the vendor's name is empty")
        except ValueError as err:
            problems.append(RowProblem(line, str(err), row.get("address", "")))
            continue
        parsed.append((line, address, category, name))
    repeated = _dedupe(((line, a) for line, a, _, _ in parsed), problems)
    parsed = [p for p in parsed if p[0] not in repeated]
    states = reads.accounts_of(chain.rpc, chain.address, [a for _, a, _, _ in parsed])
    calls = []
    for (line, address, category, name), state in zip(parsed, states):
        if action == "register":
            assert category is not None  # parsed above for every register row
            if state.kind not in (Kind.NONE, Kind.VENDOR):
                problems.append(RowProblem(line, f"already registered as a {state.kind_label}", address))
                continue
            calls.append(
                BulkCall(
                    (line,),
                    f"register {address} as {category.name}",
                    calldata("registerVendor", address, int(category), name),
                )
            )
            continue
        if state.kind != Kind.VENDOR:
            actual = "not registered" if state.kind == Kind.NONE else f"a {state.kind_label}"
            problems.append(RowProblem(line, f"unknown vendor: the address is {actual}", address))
            continue
        fn = "suspendVendor" if action == "suspend" else "reactivateVendor"
        calls.append(BulkCall((line,), f"{action} {address}", calldata(fn, address, reason)))
    if problems:
        raise BulkRefused(problems, str(path))
    return calls


def enrol_calls(chain: Chain, path: Path | str, chunk: int = ENROL_CHUNK) -> list[BulkCall]:
    """Enrol transactions for a file with columns address,program,department (program: id or name), grouped
    by program in chunks; BulkRefused lists every bad row."""
    table = read_csv(path, ("address", "program", "department"))
    problems = list(table.problems)
    programs: dict[str, ProgramInfo | None] = {}
    parsed: list[tuple[int, str, int, bytes]] = []
    for line, row in table.rows:
        key = row["program"].strip()
        if key not in programs:
            try:
                programs[key] = resolve_program(chain, key)
            except InputError:
                programs[key] = None
        try:
            address = check_address(row["address"])
            department = bytes32_text(row["department"], "department code")
            program = programs[key]
            if program is None:
                raise InputError(f"unknown program {key!r}")
        except InputError as err:
            problems.append(RowProblem(line, str(err), row.get("address", "")))
            continue
        parsed.append((line, address, program.id, department))
    repeated = _dedupe(((line, a) for line, a, _, _ in parsed), problems)
    parsed = [p for p in parsed if p[0] not in repeated]
    states = reads.accounts_of(chain.rpc, chain.address, [a for _, a, _, _ in parsed])
    by_program: dict[int, list[tuple[int, str, bytes]]] = {}
    for (line, address, program_id, department), state in zip(parsed, states):
        if state.kind not in (Kind.NONE, Kind.SPENDER):
            problems.append(
                RowProblem(line, f"is a {state.kind_label}; only new addresses or spenders can be enrolled", address)
            )
        elif state.kind == Kind.SPENDER and state.program_id != program_id:
            problems.append(
                RowProblem(line, f"already enrolled in program #{state.program_id}, not #{program_id}", address)
            )
        else:
            by_program.setdefault(program_id, []).append((line, address, department))
    if problems:
        raise BulkRefused(problems, str(path))
    calls = []
    for program_id, rows in by_program.items():
        for start in range(0, len(rows), chunk):
            part = rows[start : start + chunk]
            calls.append(
                BulkCall(
                    tuple(r[0] for r in part),
                    f"enrol {len(part)} in program #{program_id}",
                    calldata("enrol", [r[1] for r in part], program_id, [r[2] for r in part]),
                )
            )
    return calls


@dataclass(frozen=True)
class SweepTarget:
    line: int  # 0 when found from the chain
    address: str
    balance: int


def sweep_targets(
    chain: Chain, *, program_id: int | None = None, path: Path | str | None = None, from_block: int = 0
) -> list[SweepTarget]:
    """Spenders whose balance can be swept: from a file (column address) or every spender ever enrolled in
    `program_id` (SpenderEnrolled events). Rows that are not spenders of an ended program are problems."""
    now = latest_timestamp(chain)
    problems: list[RowProblem] = []
    if path is not None:
        table = read_csv(path, ("address",), ("amount", "reference"))
        problems += table.problems
        candidates = []
        for line, row in table.rows:
            try:
                candidates.append((line, check_address(row["address"])))
            except InputError as err:
                problems.append(RowProblem(line, str(err), row["address"]))
        repeated = _dedupe(candidates, problems)
        candidates = [c for c in candidates if c[0] not in repeated]
    else:
        assert program_id is not None
        info = program_info(chain, program_id)
        if now < info.end:
            raise ActionError(
                f"program {info.label} runs until {display.moment(info.end, info.utc_offset_minutes)}; "
                "balances can be swept only after"
            )
        candidates = [(0, a) for a in reads.enrolled_spenders(chain.rpc, chain.address, program_id, from_block)]
    states = reads.accounts_of(chain.rpc, chain.address, [a for _, a in candidates])
    ends: dict[int, ProgramInfo] = {}
    targets = []
    for (line, address), state in zip(candidates, states):
        if state.kind != Kind.SPENDER:
            problems.append(RowProblem(line, f"not a spender (the address is {state.kind_label})", address))
            continue
        if program_id is not None and state.program_id != program_id:
            continue  # enrolled in the program once, but re-registered elsewhere: not this program's
        if state.program_id not in ends:
            ends[state.program_id] = program_info(chain, state.program_id)
        ending = ends[state.program_id]
        if now < ending.end:
            problems.append(
                RowProblem(
                    line,
                    f"program {ending.label} has not ended (it ends at "
                    f"{display.moment(ending.end, ending.utc_offset_minutes)})",
                    address,
                )
            )
            continue
        if state.balance:
            targets.append(SweepTarget(line, address, int(state.balance)))
    if problems:
        raise BulkRefused(problems, str(path) if path is not None else f"program #{program_id}")
    return targets


def sweep_calls(targets: Sequence[SweepTarget], chunk: int = SWEEP_CHUNK) -> list[BulkCall]:
    calls = []
    for start in range(0, len(targets), chunk):
        part = targets[start : start + chunk]
        calls.append(
            BulkCall(
                tuple(t.line for t in part),
                f"sweep {len(part)} spenders",
                calldata("sweepExpired", [t.address for t in part]),
            )
        )
    return calls


@dataclass(frozen=True)
class BulkResult:
    call: BulkCall
    outcome: TxOutcome


def send_bulk(
    chain: Chain, signer: Any, calls: Sequence[BulkCall], progress: Callable[[str, int, int], None] | None = None
) -> list[BulkResult]:
    """Checks every call (batched eth_estimateGas: a refusal anywhere sends nothing and raises BulkRefused
    naming each refused line), then sends them all through the Submitter and returns each outcome."""
    estimates = estimate_many(chain, signer.address, [c.data for c in calls])
    refused = [
        RowProblem(call.lines[0], estimate if len(call.lines) == 1 else f"{call.where}: {estimate}")
        for call, estimate in zip(calls, estimates)
        if isinstance(estimate, str)
    ]
    if refused:
        raise BulkRefused(refused, "the contract refuses")
    gases = [g for g in estimates if not isinstance(g, str)]  # every one: a refusal raised above
    limit = block_gas_limit(chain)
    requests = [TxRequest(signer, chain.address, c.data, min(with_margin(g), limit)) for c, g in zip(calls, gases)]
    outcomes: list[TxOutcome] = []
    with chain.submitter(max(len(c.data) for c in calls)) as submitter:
        for round_ in block_rounds([r.gas for r in requests], limit):
            done = len(outcomes)

            def report(phase: str, count: int, total: int, done: int = done) -> None:
                if progress:
                    progress(phase, done + count, len(requests))

            outcomes += submitter.submit(requests[round_.start : round_.stop], report)
    return [BulkResult(c, o) for c, o in zip(calls, outcomes)]

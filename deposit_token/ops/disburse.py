"""Disbursal from a CSV file (``address,amount[,reference]``, tens of thousands of rows), safe to re-run.

1. The whole file is checked before anything is sent: every bad row is reported with its line number and
   reason (malformed, zero or mis-checksummed address, amount that is not a positive whole number, duplicate
   address, address not enrolled in the program, frozen wallet), and so are problems of the whole file
   (unknown, paused or ended program, frozen treasury, total above the treasury's balance, an operator without
   PROGRAM_MANAGER_ROLE). The chain is read in a few batched requests (`deposit_token.chain.reads`).
2. Rows are cut into batches in file order. Each batch has a deterministic reference,
   ``keccak(namespace, chain id, token, program, sha256 of the file, batch size, batch index)``, and is sent as
   ``allocate(batchRef, programId, spenders, amounts)``. The contract applies a reference once, ever
   (BatchAlreadyApplied), so re-sending a batch cannot pay anybody twice.
3. Before sending, ``batchApplied`` is read for every reference (one batched read): batches applied by an
   earlier, interrupted run are skipped. A journal (JSON lines, appended and fsync'ed) records the plan and
   every batch sent, confirmed, already applied or failed; a re-run reads it to report what was done before and
   to refuse a run that would not match (another version of the file, another program or batch size), because a
   changed plan would give the same rows new references.
4. Batches go out in rounds of at most `window` batches, and never more gas than one block holds, through the
   fast submission path (`deposit_token.chain.submit`); each round is journalled when its receipts are in.

Row references are idempotency keys. A row with a ``reference`` is paid at most once per program, whatever file
it comes in: it is allocated as its own one-row batch whose reference is
``keccak(abi.encode("deposit-token/disburse/row/v1", uint16 programId, string reference))`` (the reference's text
exactly as in the file, surrounding spaces trimmed, case kept), so the contract's BatchAlreadyApplied refuses to
pay it twice. Before sending, ``batchApplied`` is read for every such row: rows already paid are reported (with
the block and transaction that paid them) and skipped. The one-row allocations go out in groups of up to
`REFERENCED_GROUP` per transaction through the token's ``multicall`` (a group is atomic). A reference may appear
once per file. Rows without a reference are batched as above: protected against re-running this same file only.

So a crash or Ctrl-C at any point (while checking, between rounds, after sending but before the receipts, while
writing the journal) leaves a state from which re-running the same command pays exactly the rows not yet paid.
"""

from __future__ import annotations

import json
import os
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from eth_abi import encode as abi_encode
from eth_utils import keccak

from deposit_token.chain import reads
from deposit_token.chain.submit import SubmitError, TxOutcome, TxRequest
from deposit_token.domain import display
from deposit_token.domain.inputs import InputError, RowProblem, check_address, check_amount, file_sha256, read_csv
from deposit_token.domain.kinds import Kind
from deposit_token.domain.sentences import describe
from deposit_token.errors import DepositTokenError
from deposit_token.ops.context import Chain, ProgramInfo, calldata, has_role, resolve_program
from deposit_token.ops.planning import GAS_MARGIN, block_gas_limit, block_rounds, estimate_many

NAMESPACE = "deposit-token/disburse/v1"
ROW_NAMESPACE = "deposit-token/disburse/row/v1"  # a row reference's allocation reference, see row_ref
# One-row allocations per multicall transaction: each costs about 44k gas against 12k for a batched row (its own
# applied flag, a fresh 22k storage write, and AllocationBatch event): a group of 100 is about 4.4M gas.
REFERENCED_GROUP = 100
DEFAULT_BATCH_SIZE = 500
DEFAULT_WINDOW = 20  # batches per submission round: 10,000 recipients at the default batch size
MAX_BATCH_SIZE = 2000
BATCH_GAS_OVERHEAD = 60_000
JOURNAL_SUFFIX = ".journal.jsonl"


class DisbursalError(DepositTokenError):
    """The disbursal cannot start or go on; the message says why and what to do."""


# --- the file ---------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Row:
    line: int
    address: str
    amount: int
    reference: str = ""  # the row's idempotency key in its program ('' = none)


@dataclass
class ParsedFile:
    path: Path
    sha256: str
    rows: list[Row]
    problems: list[RowProblem]


def parse_file(path: Path | str) -> ParsedFile:
    """Every row checked on its own (address, amount) and against the others (duplicates)."""
    path = Path(path)
    table = read_csv(path, ("address", "amount"), ("reference",))
    problems = list(table.problems)
    rows: list[Row] = []
    first_line: dict[str, int] = {}
    first_reference: dict[str, int] = {}
    for line, cells in table.rows:
        reasons = []
        address = ""
        try:
            address = check_address(cells["address"])
        except InputError as err:
            reasons.append(str(err))
        try:
            amount = check_amount(cells["amount"])
        except InputError as err:
            reasons.append(str(err))
            amount = 0
        if address:
            key = address.lower()
            if key in first_line:
                reasons.append(f"duplicate address (first on line {first_line[key]})")
            else:
                first_line[key] = line
        reference = cells.get("reference", "")
        if reference:
            if reference in first_reference:
                reasons.append(
                    f"duplicate reference {reference!r} (first on line {first_reference[reference]}): a "
                    "reference is paid once"
                )
            else:
                first_reference[reference] = line
        if reasons:
            problems.append(RowProblem(line, "; ".join(reasons), cells.get("address", "")))
        else:
            rows.append(Row(line, address, amount, reference))
    return ParsedFile(path=path, sha256=file_sha256(path), rows=rows, problems=problems)


# --- batches ------------------------------------------------------------------------------------------------------


def batch_ref(chain_id: int, token: str, program_id: int, sha256: str, batch_size: int, index: int) -> bytes:
    """The batch's on-chain reference: the same file, program and batch size always give the same one."""
    return keccak(
        abi_encode(
            ["string", "uint256", "address", "uint16", "bytes32", "uint256", "uint256"],
            [NAMESPACE, chain_id, token, program_id, bytes.fromhex(sha256), batch_size, index],
        )
    )


def row_ref(program_id: int, reference: str) -> bytes:
    """The allocation reference of a row with a reference: the same (program, reference) always gives the same
    one, whatever file the row comes in, so the contract pays it once per program."""
    return keccak(abi_encode(["string", "uint16", "string"], [ROW_NAMESPACE, program_id, reference]))


@dataclass(frozen=True)
class Batch:
    """One transaction: a batch of rows without references (one allocation with `ref`), or a group of rows with
    references (one one-row allocation per row, references in `row_refs`, sent through multicall)."""

    index: int
    ref: bytes
    rows: tuple[Row, ...]
    row_refs: tuple[bytes, ...] = ()

    @property
    def referenced(self) -> bool:
        return bool(self.row_refs)

    @property
    def refs(self) -> tuple[bytes, ...]:
        """The allocation references this transaction applies."""
        return self.row_refs or (self.ref,)

    @property
    def total(self) -> int:
        return sum(r.amount for r in self.rows)

    @property
    def lines(self) -> str:
        return f"{self.rows[0].line}-{self.rows[-1].line}"

    @property
    def ref_hex(self) -> str:
        return "0x" + self.ref.hex()

    def record(self) -> dict[str, Any]:
        """What the journal says about this batch (the references it applies)."""
        if not self.referenced:
            return {"batch": self.index, "ref": self.ref_hex}
        return {
            "batch": self.index,
            "kind": "referenced",
            "lines": self.lines,
            "refs": ["0x" + r.hex() for r in self.row_refs],
            "references": [r.reference for r in self.rows],
        }

    def calldata(self, program_id: int) -> bytes:
        if not self.referenced:
            return calldata(
                "allocate", self.ref, program_id, [r.address for r in self.rows], [r.amount for r in self.rows]
            )
        calls = [
            calldata("allocate", ref, program_id, [r.address], [r.amount]) for ref, r in zip(self.row_refs, self.rows)
        ]
        return calls[0] if len(calls) == 1 else calldata("multicall", calls)


def make_batches(
    rows: Sequence[Row], chain_id: int, token: str, program_id: int, sha256: str, batch_size: int
) -> list[Batch]:
    """The batches of the rows without a reference (their indexes, hence references, depend on this file)."""
    return [
        Batch(i, batch_ref(chain_id, token, program_id, sha256, batch_size, i), tuple(rows[start : start + batch_size]))
        for i, start in enumerate(range(0, len(rows), batch_size))
    ]


def make_groups(rows: Sequence[Row], program_id: int, first_index: int, size: int) -> list[Batch]:
    """Transactions for rows with a reference not paid yet, in file order (grouping only decides transport)."""
    return [
        Batch(first_index + i, b"", tuple(part), tuple(row_ref(program_id, r.reference) for r in part))
        for i, part in enumerate(rows[start : start + size] for start in range(0, len(rows), size))
    ]


# --- the journal --------------------------------------------------------------------------------------------------


def default_journal_path(csv_path: Path | str) -> Path:
    csv_path = Path(csv_path)
    return csv_path.with_name(csv_path.name + JOURNAL_SUFFIX)


def _now() -> str:
    return datetime.now(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


class Journal:
    """Append-only JSON lines; every append is flushed and fsync'ed before the call returns, so what the
    journal says was sent was at least about to be sent, and what it says was confirmed was."""

    def __init__(self, path: Path | str) -> None:
        self.path = Path(path)

    def records(self) -> list[dict[str, Any]]:
        """The records; a torn last line (a crash while writing it) is ignored, a torn earlier one is not."""
        try:
            lines = self.path.read_text(encoding="utf-8").splitlines()
        except FileNotFoundError:
            return []
        except OSError as err:
            raise DisbursalError(f"cannot read journal {self.path}: {err.strerror or err}") from None
        records = []
        for number, line in enumerate(lines, 1):
            if not line.strip():
                continue
            try:
                record = json.loads(line)
            except json.JSONDecodeError:
                if number == len(lines):
                    break
                raise DisbursalError(
                    f"journal {self.path} line {number} is not JSON; it was edited or damaged. "
                    "Move it away to start over (batches already applied are still skipped: "
                    "the chain remembers them)"
                ) from None
            if isinstance(record, dict):
                records.append(record)
        return records

    def append(self, *records: dict[str, Any]) -> None:
        if not records:
            return
        self.path.parent.mkdir(parents=True, exist_ok=True)
        text = "".join(json.dumps({"time": _now(), **r}, separators=(",", ":")) + "\n" for r in records)
        fd = os.open(self.path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
        try:
            os.write(fd, text.encode("utf-8"))
            os.fsync(fd)
        finally:
            os.close(fd)


@dataclass
class JournalState:
    """What the journal of earlier runs says, for the current plan."""

    plan: dict[str, Any] | None = None
    runs: int = 0
    sent: set[int] = field(default_factory=set)
    confirmed: set[int] = field(default_factory=set)
    failed: dict[int, str] = field(default_factory=dict)
    interrupted: bool = False

    @classmethod
    def read(cls, journal: Journal) -> JournalState:
        state = cls()
        for record in journal.records():
            event = record.get("event")
            if event == "plan":
                if (
                    state.plan is None
                    or state.plan.get("sha256") != record.get("sha256")
                    or state.plan.get("batch_size") != record.get("batch_size")
                ):
                    state = cls(plan=record)
                state.runs += 1
                state.interrupted = False
            elif record.get("kind") == "referenced":
                continue  # groups of rows with references: the chain alone says which rows are paid
            elif event == "sent":
                state.sent.update(record.get("batches", []))
            elif event in ("confirmed", "already_applied"):
                state.confirmed.add(int(record["batch"]))
                state.failed.pop(int(record["batch"]), None)
            elif event == "failed":
                state.failed[int(record["batch"])] = str(record.get("error", ""))
            elif event == "interrupted":
                state.interrupted = True
        return state


# --- checking the whole disbursal -----------------------------------------------------------------------------------


@dataclass(frozen=True)
class PaidRow:
    """A row whose reference was already paid in the program (by this file or another): not paid again."""

    row: Row
    block: int | None = None  # where it was paid, when the node could say
    tx: str | None = None

    def sentence(self, program: ProgramInfo) -> str:
        where = f", block {self.block}, tx {self.tx}" if self.block is not None else ""
        return (
            f"line {self.row.line}: {self.row.address} already paid (reference {self.row.reference}{where}) in "
            f"program {program.label}; not paid again"
        )


@dataclass
class Plan:
    """A checked disbursal: what is in the file, what the chain already has, what is left to send."""

    parsed: ParsedFile
    program: ProgramInfo
    batch_size: int
    batches: list[Batch]
    applied: list[bool]
    problems: list[RowProblem]
    journal: Journal
    history: JournalState
    treasury_balance: int
    sender: str
    block: int
    already_paid: list[PaidRow] = field(default_factory=list)

    @property
    def referenced_rows(self) -> int:
        return sum(1 for r in self.parsed.rows if r.reference)

    @property
    def pending(self) -> list[Batch]:
        return [b for b, done in zip(self.batches, self.applied) if not done]

    @property
    def done(self) -> list[Batch]:
        return [b for b, done in zip(self.batches, self.applied) if done]

    @property
    def total(self) -> int:
        return sum(r.amount for r in self.parsed.rows)

    @property
    def ok(self) -> bool:
        return not self.problems

    def journal_record(self, chain: Chain, sender: str) -> dict[str, Any]:
        """The journal's "plan" record: what a later run needs to cut the same batches and find them applied."""
        return {
            "event": "plan",
            "file": str(self.parsed.path),
            "sha256": self.parsed.sha256,
            "program": self.program.id,
            "program_name": self.program.name,
            "batch_size": self.batch_size,
            "batches": len(self.batches),
            "rows": len(self.parsed.rows),
            "total": self.total,
            "token": chain.address,
            "chain_id": chain.chain_id,
            "sender": sender,
        }


def _journal_problem(
    history: JournalState, parsed: ParsedFile, program_id: int, chain: Chain, batch_size: int | None, journal: Journal
) -> str | None:
    """Why the journal of an earlier run forbids this one (None if it does not)."""
    plan = history.plan
    if plan is None or not (history.sent or history.confirmed):
        return None  # nothing was ever sent under that plan: a new plan may replace it
    if plan.get("token", "").lower() != chain.address.lower() or plan.get("chain_id") != chain.chain_id:
        return (
            f"journal {journal.path} records a disbursal with token {plan.get('token')} on chain "
            f"{plan.get('chain_id')}, not {chain.address} on chain {chain.chain_id}; give this run its own "
            "--journal"
        )
    if plan.get("sha256") != parsed.sha256:
        return (
            f"journal {journal.path} records a disbursal of another version of {parsed.path.name} (sha256 "
            f"{str(plan.get('sha256'))[:12]}..., now {parsed.sha256[:12]}...) with {len(history.sent)} batch(es) "
            "sent: a changed file gets new batch references, so paying it could pay the rows already paid "
            "again. Pay only the rows not yet paid, in a new file with its own --journal"
        )
    if plan.get("program") != program_id:
        return f"journal {journal.path} records this file paid from program #{plan.get('program')}, not #{program_id}"
    if batch_size is not None and plan.get("batch_size") != batch_size:
        return (
            f"journal {journal.path} records this file sent in batches of {plan.get('batch_size')}, not "
            f"{batch_size}: other batches would get other references (leave --batch-size out to resume)"
        )
    return None


def prepare(
    chain: Chain,
    path: Path | str,
    program: str | int,
    sender: str,
    *,
    batch_size: int | None = None,
    journal_path: Path | str | None = None,
) -> Plan:
    """Reads and checks the file and the chain; sends nothing. `plan.problems` lists everything wrong."""
    if batch_size is not None and not 1 <= batch_size <= MAX_BATCH_SIZE:
        raise InputError(f"the batch size must be between 1 and {MAX_BATCH_SIZE}")
    parsed = parse_file(path)
    info = resolve_program(chain, program)
    journal = Journal(journal_path or default_journal_path(parsed.path))
    history = JournalState.read(journal)
    reason = _journal_problem(history, parsed, info.id, chain, batch_size, journal)
    if reason:
        raise DisbursalError(reason)
    if batch_size is None:
        batch_size = (
            int(history.plan["batch_size"])
            if history.plan and history.plan.get("sha256") == parsed.sha256
            else DEFAULT_BATCH_SIZE
        )
    problems = list(parsed.problems)
    # Batches are cut from the rows in file order. With bad rows the plan is not final (fixing the file changes
    # the references), so only the rows are checked against the chain.
    batches: list[Batch] = []
    applied: list[bool] = []
    block, now = reads.head(chain.rpc)
    already_paid: list[PaidRow] = []
    if not parsed.problems:
        batches, applied, already_paid = _cut(chain, parsed, info.id, batch_size, block)
    pending_rows = [r for b, done in zip(batches, applied) if not done for r in b.rows] if batches else parsed.rows
    states = reads.accounts_of(chain.rpc, chain.address, [r.address for r in pending_rows], block)
    for row, state in zip(pending_rows, states):
        reason = _row_problem(state, info)
        if reason:
            problems.append(RowProblem(row.line, reason, row.address))
    treasury = reads.accounts_of(chain.rpc, chain.address, [info.treasury], block)[0]
    problems += _file_problems(chain, info, now, treasury, sender, sum(r.amount for r in pending_rows))
    problems.sort(key=lambda p: (p.line, p.reason))
    return Plan(
        parsed=parsed,
        program=info,
        batch_size=batch_size,
        batches=batches,
        applied=applied,
        problems=problems,
        journal=journal,
        history=history,
        treasury_balance=int(treasury.balance),
        sender=sender,
        block=block,
        already_paid=already_paid,
    )


def _cut(
    chain: Chain, parsed: ParsedFile, program_id: int, batch_size: int, block: int
) -> tuple[list[Batch], list[bool], list[PaidRow]]:
    """The transactions of a clean file and what the chain already applied: batches of the rows without a
    reference (each applied or not), then groups of the rows with a reference not paid yet (one batched read of
    `batchApplied` for all), and the rows with a reference already paid."""
    plain = [r for r in parsed.rows if not r.reference]
    referenced = [r for r in parsed.rows if r.reference]
    batches = make_batches(plain, chain.chain_id, chain.address, program_id, parsed.sha256, batch_size)
    refs = [b.ref for b in batches] + [row_ref(program_id, r.reference) for r in referenced]
    applied = reads.batches_applied(chain.rpc, chain.address, refs, block)
    file_applied, row_applied = applied[: len(batches)], applied[len(batches) :]
    unpaid = [r for r, done in zip(referenced, row_applied) if not done]
    paid = [r for r, done in zip(referenced, row_applied) if done]
    groups = make_groups(unpaid, program_id, len(batches), min(batch_size, REFERENCED_GROUP))
    return batches + groups, file_applied + [False] * len(groups), _locate(chain, program_id, paid, block)


ALLOCATION_BATCH = reads.event_topic("AllocationBatch(bytes32,uint16,address,uint256,uint256)")
LOCATE_REFS_PER_QUERY = 100  # topic alternatives per eth_getLogs


def _locate(chain: Chain, program_id: int, rows: Sequence[Row], block: int) -> list[PaidRow]:
    """Each paid row with the block and transaction that paid it (its AllocationBatch event), when the node
    answers eth_getLogs over the whole chain; without them otherwise (the chain's batchApplied already decided)."""
    where: dict[str, tuple[int, str]] = {}
    refs = ["0x" + row_ref(program_id, r.reference).hex() for r in rows]
    program_topic = "0x" + program_id.to_bytes(32, "big").hex()
    try:
        for start in range(0, len(refs), LOCATE_REFS_PER_QUERY):
            logs = chain.rpc.call(
                "eth_getLogs",
                [
                    {
                        "address": chain.address,
                        "fromBlock": "0x0",
                        "toBlock": hex(block),
                        "topics": [ALLOCATION_BATCH, refs[start : start + LOCATE_REFS_PER_QUERY], program_topic],
                    }
                ],
            )
            for log in logs:
                where.setdefault(log["topics"][1], (int(log["blockNumber"], 16), log["transactionHash"]))
    except Exception:  # noqa: BLE001 - a node limiting log queries: the rows are still reported as paid
        where = {}
    return [PaidRow(row, *where.get(ref, (None, None))) for row, ref in zip(rows, refs)]


def notes(plan: Plan, most: int = 50) -> list[str]:
    """What the operator must know about references: rows already paid (not paid again), and how rows with and
    without a reference are protected."""
    out = [p.sentence(plan.program) for p in plan.already_paid[:most]]
    if len(plan.already_paid) > most:
        out.append(f"... and {len(plan.already_paid) - most:,} more row(s) already paid (see the journal)")
    referenced, total = plan.referenced_rows, len(plan.parsed.rows)
    if referenced:
        paid = f" ({len(plan.already_paid):,} already paid)" if plan.already_paid else ""
        out.append(
            f"{referenced:,} row(s) have a reference: each reference is paid at most once in program "
            f"{plan.program.label}, whatever file it comes in{paid}"
        )
    if total - referenced:
        out.append(f"{total - referenced:,} row(s) have no reference: protected only against re-running this same file")
    return out


def _row_problem(state: reads.AccountState, program: ProgramInfo) -> str | None:
    if state.kind == Kind.NONE:
        return f"not enrolled in program {program.label}: the address is not registered"
    if state.kind != Kind.SPENDER:
        return f"not enrolled in program {program.label}: the address is a {state.kind_label}"
    if state.program_id != program.id:
        return f"not enrolled in program {program.label}: it is enrolled in program #{state.program_id}"
    if state.frozen:
        return "the wallet is frozen by compliance"
    return None


def _file_problems(
    chain: Chain, info: ProgramInfo, now: int, treasury: reads.AccountState, sender: str, pending_total: int
) -> list[RowProblem]:
    problems = []
    if now >= info.end:
        problems.append(
            RowProblem(
                0,
                f"program {info.label} ended at {display.moment(info.end, info.utc_offset_minutes)}; "
                "its budget has lapsed",
            )
        )
    if info.token_paused:
        problems.append(RowProblem(0, describe("TokenPaused", {})))
    if info.paused:
        problems.append(RowProblem(0, f"program {info.label} is paused by compliance"))
    if treasury.frozen:
        problems.append(RowProblem(0, f"the program's treasury {info.treasury} is frozen by compliance"))
    if pending_total > treasury.balance:
        problems.append(
            RowProblem(
                0,
                f"the rows still to pay total {pending_total:,} KRW, above the balance of the "
                f"program's treasury {info.treasury}: {int(treasury.balance):,} KRW",
            )
        )
    if not has_role(chain, "PROGRAM_MANAGER_ROLE", sender):
        problems.append(RowProblem(0, f"{sender} does not hold PROGRAM_MANAGER_ROLE, which allocate needs"))
    return problems


# --- sending ----------------------------------------------------------------------------------------------------------


@dataclass
class Report:
    """What a run did."""

    applied_before: int = 0  # batches found applied on chain before this run sent anything
    confirmed: list[tuple[Batch, TxOutcome]] = field(default_factory=list)
    raced: list[Batch] = field(default_factory=list)  # refused as already applied (a copy from an earlier run won)
    failed: list[tuple[Batch, str]] = field(default_factory=list)
    seconds: float = 0.0

    @property
    def rows_paid(self) -> int:
        return sum(len(b.rows) for b, _ in self.confirmed)

    @property
    def amount_paid(self) -> int:
        return sum(b.total for b, _ in self.confirmed)


Progress = Callable[[int, int], None]  # (rows settled so far in this run, rows to settle in this run)


def batch_gas(plan: Plan, chain: Chain) -> Callable[[Batch], int]:
    """Gas for each batch, scaled from one eth_estimateGas of the first pending batch of each kind (an
    allocation costs the same per row; a row with a reference costs more, see REFERENCED_GROUP); a refusal of
    that estimate is the contract's verdict on the whole run."""
    firsts: dict[bool, Batch] = {}
    for batch in plan.pending:
        firsts.setdefault(batch.referenced, batch)
    estimates = estimate_many(chain, plan.sender, [b.calldata(plan.program.id) for b in firsts.values()])
    per_row: dict[bool, float] = {}
    for (kind, first), estimate in zip(firsts.items(), estimates):
        if isinstance(estimate, str):
            raise DisbursalError(f"the contract refuses batch {first.index} (lines {first.lines}): {estimate}")
        per_row[kind] = estimate / len(first.rows)

    def gas_of(batch: Batch) -> int:
        return int(per_row[batch.referenced] * len(batch.rows) * GAS_MARGIN) + BATCH_GAS_OVERHEAD

    limit = block_gas_limit(chain)
    for kind, first in firsts.items():
        if gas_of(first) > limit * 0.95:
            fits = max(1, int((limit * 0.95 - BATCH_GAS_OVERHEAD) / (per_row[kind] * GAS_MARGIN)))
            raise DisbursalError(
                f"a batch of {len(first.rows)} rows needs about {gas_of(first):,} gas, more than a "
                f"block of this chain holds ({limit:,}); use --batch-size {fits} or less"
            )
    return gas_of


def disburse(
    chain: Chain, plan: Plan, signer: Any, *, window: int = DEFAULT_WINDOW, progress: Progress | None = None
) -> Report:
    """Sends the pending batches of a checked plan (see the module docstring); returns what happened.

    Stops after the first round with a failed batch (whatever broke it, e.g. a pause, would break the next
    ones too). An interruption (KeyboardInterrupt, SystemExit) and SubmitError are journalled and re-raised."""
    if plan.problems:
        raise DisbursalError(f"{len(plan.problems)} problem(s) in the plan; nothing is sent")
    if signer.address.lower() != plan.sender.lower():
        raise DisbursalError(f"the plan was checked for {plan.sender}, not {signer.address}")
    report = Report(applied_before=len(plan.done))
    pending = plan.pending
    journal = plan.journal
    journal.append(
        {
            **plan.journal_record(chain, plan.sender),
            "already_applied": [b.index for b in plan.done],
            "journal_confirmed": sorted(plan.history.confirmed),
            "referenced_rows": plan.referenced_rows,
            "rows_already_paid": [
                {"line": p.row.line, "reference": p.row.reference, "block": p.block, "tx": p.tx}
                for p in plan.already_paid
            ],
        }
    )
    journal.append(
        *(
            {"event": "already_applied", "batch": b.index, "ref": b.ref_hex, "found": "before sending"}
            for b in plan.done
            if b.index not in plan.history.confirmed
        )
    )
    if not pending:
        journal.append({"event": "complete", "confirmed": 0, "already_applied": len(plan.done)})
        return report
    started = time.monotonic()
    gas_of = batch_gas(plan, chain)
    rows_total = sum(len(b.rows) for b in pending)
    rows_done = 0
    if progress:
        progress(0, rows_total)
    gases = [gas_of(b) for b in pending]
    try:
        largest = max(pending, key=lambda b: len(b.rows))
        with chain.submitter(len(largest.calldata(plan.program.id))) as submitter:
            for indexes in block_rounds(gases, block_gas_limit(chain), window):
                round_ = pending[indexes.start : indexes.stop]
                requests = [
                    TxRequest(signer, chain.address, b.calldata(plan.program.id), gases[i])
                    for i, b in zip(indexes, round_)
                ]
                journal.append(
                    {
                        "event": "sent",
                        "batches": [b.index for b in round_ if not b.referenced],
                        "refs": [b.ref_hex for b in round_ if not b.referenced],
                        "groups": [b.index for b in round_ if b.referenced],
                    }
                )
                outcomes = submitter.submit(requests)
                records = []
                for batch, outcome in zip(round_, outcomes):
                    if outcome.status:
                        report.confirmed.append((batch, outcome))
                        records.append(
                            {
                                "event": "confirmed",
                                **batch.record(),
                                "tx": outcome.tx_hash,
                                "block": outcome.block_number,
                                "rows": len(batch.rows),
                                "amount": batch.total,
                            }
                        )
                        rows_done += len(batch.rows)
                    elif batch.referenced and "has already been applied" in (outcome.error or ""):
                        # A group is atomic: one row paid meanwhile (another run) refused the others with it.
                        error = (
                            "a row of this group was paid meanwhile (by another run?), so none of the group "
                            "was paid; re-run: rows already paid are reported and skipped"
                        )
                        report.failed.append((batch, error))
                        records.append({"event": "failed", **batch.record(), "tx": outcome.tx_hash, "error": error})
                    elif "has already been applied" in (outcome.error or ""):
                        report.raced.append(batch)
                        records.append(
                            {
                                "event": "already_applied",
                                "batch": batch.index,
                                "ref": batch.ref_hex,
                                "found": "refused as already applied",
                                "tx": outcome.tx_hash,
                            }
                        )
                        rows_done += len(batch.rows)
                    else:
                        report.failed.append((batch, outcome.error or "failed"))
                        records.append(
                            {"event": "failed", **batch.record(), "tx": outcome.tx_hash, "error": outcome.error}
                        )
                journal.append(*records)
                if progress:
                    progress(rows_done, rows_total)
                if report.failed:
                    break
    except (KeyboardInterrupt, SystemExit):  # Ctrl-C (ape's own SIGINT handler raises SystemExit(130))
        journal.append({"event": "interrupted", "reason": "interrupted by the operator (Ctrl-C)"})
        raise
    except SubmitError as err:
        journal.append({"event": "interrupted", "reason": str(err)})
        raise
    report.seconds = time.monotonic() - started
    if not report.failed:
        journal.append(
            {
                "event": "complete",
                "confirmed": len(report.confirmed),
                "already_applied": len(plan.done) + len(report.raced),
                "seconds": round(report.seconds, 3),
            }
        )
    return report


def verify(chain: Chain, plan: Plan) -> list[Batch]:
    """The batches of the plan that are still not (wholly) applied on chain (empty when the disbursal is
    complete)."""
    applied = iter(reads.batches_applied(chain.rpc, chain.address, [r for b in plan.batches for r in b.refs]))
    return [b for b in plan.batches if not all([next(applied) for _ in b.refs])]

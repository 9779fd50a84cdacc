"""``verify``: reconciles the audit database with the chain's state at the checkpoint block.

An indexer that silently lost, doubled or altered a row would produce wrong audit reports with no sign of it;
this recomputes from the database what the contract's storage must hold at the checkpoint block, reads that
state with ``eth_call`` pinned to the same block (JSON-RPC batches), and lists every difference:

* ``totalSupply`` against mints minus burns (Transfer events from/to the zero address);
* every holder's ``balanceOf`` against the sum of its Transfer rows;
* per spender and category: ``spendingOf`` (the latest period's record: period and amount spent) against the
  Payment rows of that period, and ``spendingThisPeriod`` (the period current at the checkpoint block);
* vendors (kind, category, suspension, freeze), spenders (program, department, freeze), treasuries, programs
  (rules, configuration, name, caps, pause), the token-wide pause, issuers' mint allowances, cap overrides,
  roles and applied allocation batches;
* given the deployment record: the keccak256 of the code at the token's and the admin module's addresses against
  the record's ``code_hashes`` (read at the chain's head: deployed code never changes, so any difference means
  the record or the chain is not what the auditor was told), and the token's ``ADMIN_MODULE`` against the
  record's admin module.

Any node, archive or not: a past period is read at an old block, and a node keeps state only from some block
on (a resumed Anvil from the block it was restarted at, a full node the last 128 blocks). Before reading,
verify finds the earliest block the node answers state for (a binary search with ``eth_getBalance``); facts
at older blocks are skipped and counted, never read, so a pruned history is reported in one sentence
(:attr:`VerifyResult.skipped_note`) instead of failing the run. Skipped facts are not mismatches.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from eth_abi import decode as abi_decode
from eth_abi import encode as abi_encode
from eth_utils import function_signature_to_4byte_selector, to_checksum_address
from sqlalchemy import Connection, Engine, Table, func, inspect, select, text

from deposit_token.audit.db import schema, store
from deposit_token.chain.abi import abi_type, system_abi
from deposit_token.chain.rpc import RpcClient, RpcConnectionError, RpcError
from deposit_token.errors import DepositTokenError

ZERO_ADDRESS = "0x0000000000000000000000000000000000000000"


class VerifyError(DepositTokenError):
    """Verification cannot run (empty database, or the checkpoint block left the chain)."""


@dataclass(frozen=True)
class Mismatch:
    """One difference between the database and the chain."""

    check: str  # e.g. "balance", "spending", "vendor.category"
    subject: str  # what it is about (an address, "program 1", "spender/category 3")
    database: Any
    chain: Any

    def __str__(self) -> str:
        return f"{self.check} of {self.subject}: database {self.database!r}, chain {self.chain!r}"


@dataclass
class VerifyResult:
    block: int  # the database's checkpoint: every fact is as of this block
    block_hash: str
    head: int | None = None  # the chain's head when verify ran
    earliest_state: int | None = None  # the node has no state before this block (None: it had all it needed)
    checks: int = 0
    skipped: int = 0  # facts (chain reads) not made: their block is older than `earliest_state`
    mismatches: list[Mismatch] = field(default_factory=list)
    code_note: str | None = None  # why the contracts' code was not checked (no record, or no hashes in it)

    @property
    def ok(self) -> bool:
        """No mismatch (skipped facts are not mismatches)."""
        return not self.mismatches

    @property
    def lag_note(self) -> str:
        """How far the database is behind the chain, for the auditor."""
        if self.head is None:
            return f"database at block {self.block}"
        behind = max(0, self.head - self.block)
        return f"database at block {self.block}, chain head {self.head}: {behind:,} blocks behind"

    @property
    def skipped_note(self) -> str | None:
        """One sentence on what could not be checked, or None if everything was."""
        if not self.skipped:
            return None
        facts = f"{self.skipped:,} fact{'s' if self.skipped != 1 else ''} skipped"
        if self.earliest_state is not None and self.block < self.earliest_state:
            return (
                f"not checkable at the database's block {self.block}: node has no state before block "
                f"{self.earliest_state}; {facts} (run `ape run audit index` to move the database past it)"
            )
        return f"past periods not checkable: node has no state before block {self.earliest_state}; {facts}"


# A check: expect(check, subject, database value) gives the callback comparing the chain's answer to it.
_Check = Callable[[Any], None]
_Expect = Callable[[str, str, Any], _Check]
_ExpectFields = Callable[[str, str, Mapping[int, tuple[str, Any]]], _Check]


class _Calls:
    """eth_calls of the token's view functions at one block, queued and sent as JSON-RPC batches."""

    def __init__(self, rpc: RpcClient, token: str, block: int, abi: Sequence[Mapping[str, Any]]):
        self.rpc, self.token, self.block = rpc, token, hex(block)
        self.functions = {item["name"]: item for item in abi if item["type"] == "function"}
        self._queue: list[tuple[str, tuple[Any, ...], Callable[[Any], None], str]] = []

    def add(self, name: str, args: Sequence[Any], then: Callable[[Any], None], block: int | None = None) -> None:
        """Queues ``name(*args)`` at `block` (default: the checkpoint block); `then` gets the decoded result
        (one value, or a tuple for several values or a struct)."""
        self._queue.append((name, tuple(args), then, hex(block) if block is not None else self.block))

    def oldest_block(self) -> int | None:
        """The oldest block a queued call reads at (None: nothing queued)."""
        return min((int(block, 16) for *_rest, block in self._queue), default=None)

    def drop_before(self, block: int) -> int:
        """Removes the queued calls at blocks older than `block` (the node has no state there); returns how
        many were removed."""
        kept = [item for item in self._queue if int(item[3], 16) >= block]
        dropped, self._queue = len(self._queue) - len(kept), kept
        return dropped

    def run(self) -> None:
        queue, self._queue = self._queue, []
        calls = []
        for name, args, _then, block in queue:
            fn = self.functions[name]
            types = [abi_type(p) for p in fn["inputs"]]
            data = function_signature_to_4byte_selector(f"{name}({','.join(types)})") + abi_encode(types, args)
            calls.append(("eth_call", [{"to": self.token, "data": "0x" + data.hex()}, block]))
        results = self.rpc.batch(calls, chunk=200)
        for (name, _args, then, _block), result in zip(queue, results):
            out_types = [abi_type(p) for p in self.functions[name]["outputs"]]
            values = abi_decode(out_types, bytes.fromhex(result[2:]))
            then(values[0] if len(values) == 1 else values)


def _latest(conn: Connection, table: Table, key: Callable[[Any], Any], upto: int) -> dict[Any, Any]:
    """The last row (chain order) per `key(row)` of `table`, up to block `upto`."""
    rows = conn.execute(
        select(table).where(table.c.block_number <= upto).order_by(table.c.block_number, table.c.log_index)
    )
    out: dict[Any, Any] = {}
    for row in rows:
        out[key(row)] = row
    return out


def _hex32(value: bytes) -> str:
    return "0x" + bytes(value).hex()


class Verifier:
    """Collects checks (database value vs. eth_call result) and runs them in batches."""

    def __init__(
        self,
        rpc: RpcClient,
        engine: Engine,
        token: str,
        abi: Sequence[Mapping[str, Any]] | None = None,
        record: Mapping[str, Any] | None = None,
    ):
        self.rpc, self.engine, self.token, self.record = rpc, engine, token, record
        self.abi = list(abi) if abi is not None else system_abi()

    def run(self) -> VerifyResult:
        with self.engine.connect() as conn:
            cp = store.read_checkpoint(conn)
            if cp is None:
                raise VerifyError("the database has no checkpoint: run `index` first")
            block, block_hash = cp
            header = self.rpc.call("eth_getBlockByNumber", [hex(block), False])
            if header is None or header["hash"] != block_hash:
                raise VerifyError(
                    f"checkpoint block {block} ({block_hash}) is no longer on the chain (reorg): "
                    "run `index` again, then verify"
                )
            result = VerifyResult(block=block, block_hash=block_hash)
            calls = _Calls(self.rpc, self.token, block, self.abi)

            def expect(check: str, subject: str, database: Any) -> Callable[[Any], None]:
                def compare(chain: Any) -> None:
                    result.checks += 1
                    if isinstance(chain, str) and len(chain) == 42 and chain.startswith("0x"):
                        chain = to_checksum_address(chain)  # eth_abi returns addresses in lower case
                    if database != chain:
                        result.mismatches.append(Mismatch(check, subject, database, chain))

                return compare

            def expect_fields(check: str, subject: str, wanted: Mapping[int, tuple[str, Any]]) -> Callable[[Any], None]:
                """Compares fields of a struct result: {field index: (field name, database value)}."""

                def compare(chain: Sequence[Any]) -> None:
                    for index, (name, database) in wanted.items():
                        expect(f"{check}.{name}", subject, database)(chain[index])

                return compare

            self._supply_and_balances(conn, block, calls, expect)
            self._spending(conn, block, calls, expect)
            self._participants(conn, block, calls, expect, expect_fields)
            self._programs(conn, block, calls, expect, expect_fields)
            self._issuance_and_roles(conn, block, calls, expect)
            self._code(result, calls, expect)
            self._safes(conn, block, result, expect)
            result.head = self.rpc.block_number()
            oldest = calls.oldest_block()
            if oldest is not None:
                earliest = earliest_state_block(self.rpc, self.token, oldest, max(result.head, block))
                if earliest > oldest:
                    result.earliest_state = earliest
                    result.skipped = calls.drop_before(earliest)
            calls.run()
        return result

    # --- groups of checks -----------------------------------------------------------------------------------

    def _code(self, result: VerifyResult, calls: _Calls, expect: _Expect) -> None:
        """The deployed code against the deployment record's ``code_hashes``; the token's admin module."""
        if self.record is None:
            result.code_note = "no deployment record given: the contracts' code was not checked"
            return
        if to_checksum_address(self.record["token"]) != self.token:
            raise VerifyError(f"the deployment record is for token {self.record['token']}, not {self.token}")
        recorded_module = self.record.get("admin_module")
        if not recorded_module:
            result.code_note = "the deployment record names no admin module: the contracts' code was not checked"
            return
        module = to_checksum_address(recorded_module)
        calls.add("ADMIN_MODULE", [], expect("ADMIN_MODULE", f"token {self.token}", module))
        hashes = self.record.get("code_hashes")
        if not hashes:
            result.code_note = (
                "the deployment record has no code hashes (written before they were recorded): "
                "the contracts' code was not checked"
            )
            return
        for role, address in (("token", self.token), ("admin_module", module)):
            expect("code_hash", f"{role.replace('_', ' ')} {address}", hashes[role])(self.rpc.code_hash(address))

    def _supply_and_balances(self, conn: Connection, block: int, calls: _Calls, expect: _Expect) -> None:
        t = schema.transfers
        incoming = dict(
            conn.execute(
                select(t.c.to_address, func.sum(t.c.amount)).where(t.c.block_number <= block).group_by(t.c.to_address)
            ).all()
        )
        outgoing = dict(
            conn.execute(
                select(t.c.from_address, func.sum(t.c.amount))
                .where(t.c.block_number <= block)
                .group_by(t.c.from_address)
            ).all()
        )
        minted, burned = int(outgoing.get(ZERO_ADDRESS) or 0), int(incoming.get(ZERO_ADDRESS) or 0)
        calls.add("totalSupply", [], expect("totalSupply", "token", minted - burned))
        for holder in sorted((set(incoming) | set(outgoing)) - {ZERO_ADDRESS}):
            balance = int(incoming.get(holder) or 0) - int(outgoing.get(holder) or 0)
            calls.add("balanceOf", [holder], expect("balance", holder, balance))

    def _spending(self, conn: Connection, block: int, calls: _Calls, expect: _Expect) -> None:
        """Spent per spender, category and period. The contract keeps only the latest period's record, so a
        past period is checked at the block of its last payment, where that record was still current."""
        p = schema.payments
        spent: dict[tuple[str, int], dict[int, tuple[int, int]]] = defaultdict(dict)
        for payer, category, period, amount, last_block in conn.execute(
            select(p.c.payer, p.c.category, p.c.period, func.sum(p.c.amount), func.max(p.c.block_number))
            .where(p.c.block_number <= block)
            .group_by(p.c.payer, p.c.category, p.c.period)
        ):
            spent[(payer, int(category))][int(period)] = (int(amount), int(last_block))
        # every enrolled spender in every category seen: a deleted payment row shows up as a chain record
        spenders = {r.spender for r in _latest(conn, schema.enrolments, lambda r: r.spender, block).values()}
        categories = {c for _s, c in spent}
        pairs = set(spent) | {(s, c) for s in spenders for c in categories}
        for payer, category in sorted(pairs):
            periods = spent.get((payer, category), {})
            subject = f"{payer} category {category}"
            latest = max(periods, default=0)
            for period, (amount, last_block) in sorted(periods.items()):
                if period == latest:
                    continue

                # defaults bind this iteration's values (a closure would see the loop's last ones)
                def past(
                    record: Sequence[Any],
                    amount: int = amount,
                    where: str = f"{subject} period {period}",
                    period: int = period,
                ) -> None:
                    expect("spendingOf.period", where, period)(int(record[0]))
                    expect("spendingOf.spent", where, amount)(int(record[3]))

                calls.add("spendingOf", [payer, category], past, block=last_block)

            latest_amount = periods.get(latest, (0, 0))[0]

            def latest_record(
                record: Sequence[Any],
                amount: int = latest_amount,
                latest: int = latest,
                where: str = f"{subject} period {latest}",
            ) -> None:
                expect("spendingOf.period", where, latest)(int(record[0]))
                expect("spendingOf.spent", where, amount)(int(record[3]))

            calls.add("spendingOf", [payer, category], latest_record)

            def this_period(
                answer: Sequence[Any], periods: dict[int, tuple[int, int]] = periods, subject: str = subject
            ) -> None:
                period, chain_spent = int(answer[0]), int(answer[1])
                expect("spendingThisPeriod", f"{subject} period {period}", periods.get(period, (0, 0))[0])(chain_spent)

            calls.add("spendingThisPeriod", [payer, category], this_period)

    def _participants(
        self, conn: Connection, block: int, calls: _Calls, expect: _Expect, expect_fields: _ExpectFields
    ) -> None:
        frozen = {a: bool(r.frozen) for a, r in _latest(conn, schema.freezes, lambda r: r.account, block).items()}
        vendors = _latest(conn, schema.vendor_registrations, lambda r: r.vendor, block)
        suspended = _latest(conn, schema.vendor_suspensions, lambda r: r.vendor, block)
        for vendor, row in sorted(vendors.items()):
            calls.add(
                "accountOf",
                [vendor],
                expect_fields(
                    "vendor",
                    vendor,
                    {
                        1: ("kind", 3),
                        2: ("frozen", frozen.get(vendor, False)),
                        3: ("suspended", bool(suspended[vendor].suspended) if vendor in suspended else False),
                        4: ("category", int(row.category)),
                    },
                ),
            )
        enrolled = _latest(conn, schema.enrolments, lambda r: r.spender, block)
        for spender, row in sorted(enrolled.items()):
            calls.add(
                "accountOf",
                [spender],
                expect_fields(
                    "spender",
                    spender,
                    {
                        1: ("kind", 2),
                        2: ("frozen", frozen.get(spender, False)),
                        5: ("programId", int(row.program_id)),
                    },
                ),
            )

            def department(chain: Any, row: Any = row, spender: str = spender) -> None:
                expect("spender.department", spender, row.department)(_hex32(chain))

            calls.add("departmentOf", [spender], department)
        treasuries = _latest(conn, schema.treasury_registrations, lambda r: r.treasury, block)
        for treasury in sorted(treasuries):
            calls.add(
                "accountOf",
                [treasury],
                expect_fields(
                    "treasury",
                    treasury,
                    {
                        1: ("kind", 1),
                        2: ("frozen", frozen.get(treasury, False)),
                    },
                ),
            )
        overrides = _latest(conn, schema.cap_overrides, lambda r: (r.spender, int(r.category)), block)
        for (spender, category), row in sorted(overrides.items()):
            subject = f"{spender} category {category}"
            wanted = {"active": bool(row.active), **({"cap": int(row.cap)} if row.active else {})}

            def override(answer: Sequence[Any], wanted: dict[str, Any] = wanted, subject: str = subject) -> None:
                expect("capOverride.active", subject, wanted["active"])(bool(answer[0]))
                if "cap" in wanted:
                    expect("capOverride.cap", subject, wanted["cap"])(int(answer[1]))

            calls.add("capOverrideOf", [spender, category], override)

    def _programs(
        self, conn: Connection, block: int, calls: _Calls, expect: _Expect, expect_fields: _ExpectFields
    ) -> None:
        configs = _latest(conn, schema.program_configs, lambda r: int(r.program_id), block)
        pauses = _latest(conn, schema.program_pauses, lambda r: int(r.program_id), block)
        token_pause = _latest(conn, schema.pauses, lambda r: "token", block)
        token_paused = bool(token_pause["token"].paused) if token_pause else False
        calls.add("paused", [], expect("paused", "token", token_paused))
        calls.add("programCount", [], expect("programCount", "token", max(configs, default=0)))
        for pid, row in sorted(configs.items()):
            subject = f"program {pid}"
            program_paused = bool(pauses[pid].paused) if pid in pauses else False
            calls.add(
                "programRules",
                [pid],
                expect_fields(
                    "programRules",
                    subject,
                    {
                        0: ("version", int(row.version)),
                        # the program's own pause only: the token-wide one is `paused()`, never mirrored
                        1: ("halted", program_paused),
                        2: ("start", int(row.start)),
                        3: ("end", int(row.end_time)),
                        4: ("utcOffsetMinutes", int(row.utc_offset_minutes)),
                        5: ("categories", int(row.categories)),
                        6: ("openingHours", int(row.opening_hours)),
                    },
                ),
            )
            calls.add(
                "programConfig",
                [pid],
                expect_fields(
                    "programConfig",
                    subject,
                    {
                        0: ("treasury", row.treasury),
                        1: ("perPaymentLimit", int(row.per_payment_limit)),
                        2: ("evidenceThreshold", int(row.evidence_threshold)),
                    },
                ),
            )
            calls.add("programName", [pid], expect("programName", subject, row.name))
            calls.add("programPaused", [pid], expect("programPaused", subject, program_paused))
        caps = _latest(conn, schema.category_caps, lambda r: (int(r.program_id), int(r.category)), block)
        for (pid, category), row in sorted(caps.items()):
            calls.add(
                "categoryCap",
                [pid, category],
                expect("categoryCap", f"program {pid} category {category}", int(row.cap)),
            )

    def _issuance_and_roles(self, conn: Connection, block: int, calls: _Calls, expect: _Expect) -> None:
        allowance: dict[str, tuple[tuple[int, int], int]] = {}
        for table, column in ((schema.mint_allowances, "allowance"), (schema.mints, "allowance_left")):
            for row in conn.execute(select(table).where(table.c.block_number <= block)):
                position = (int(row.block_number), int(row.log_index))
                if row.issuer not in allowance or allowance[row.issuer][0] < position:
                    allowance[row.issuer] = (position, int(getattr(row, column)))
        for issuer, (_position, value) in sorted(allowance.items()):
            calls.add("mintAllowance", [issuer], expect("mintAllowance", issuer, value))
        roles = _latest(conn, schema.role_events, lambda r: (r.role, r.account), block)
        for (role, account), row in sorted(roles.items()):
            calls.add(
                "hasRole",
                [bytes.fromhex(role[2:]), account],
                expect("hasRole", f"{account} role {role}", row.event_name == "RoleGranted"),
            )
        batches = _latest(conn, schema.allocation_batches, lambda r: r.batch_ref, block)
        for ref in sorted(batches):
            calls.add("batchApplied", [bytes.fromhex(ref[2:])], expect("batchApplied", ref, True))

    def _safes(self, conn: Connection, block: int, result: VerifyResult, expect: _Expect) -> None:
        """The indexed Safe executions against the Safes themselves: a Safe's nonce counts every execTransaction
        that ran (ExecutionSuccess or ExecutionFailure), so at the checkpoint it must equal the indexed outcomes,
        and every indexed SafeMultiSigTransaction must have its outcome. (No table: a database before 0005.)"""
        if not inspect(conn).has_table("safe_events"):
            return
        counts = conn.execute(
            text(
                "SELECT safe, SUM(CASE WHEN event IN ('ExecutionSuccess', 'ExecutionFailure') THEN 1 ELSE 0 END), "
                "SUM(CASE WHEN event = 'SafeMultiSigTransaction' THEN 1 ELSE 0 END) FROM safe_events "
                "WHERE block_number <= :b GROUP BY safe ORDER BY safe"
            ),
            {"b": block},
        ).all()
        if not counts:
            return
        nonce = "0x" + function_signature_to_4byte_selector("nonce()").hex()
        answers = self.rpc.batch_results(
            [("eth_call", [{"to": safe, "data": nonce}, hex(block)]) for safe, *_ in counts]
        )
        for (safe, outcomes, executions), answer in zip(counts, answers, strict=True):
            expect("safe executions with an outcome", safe, int(executions or 0))(int(outcomes or 0))
            if isinstance(answer, RpcError):  # no state at the checkpoint block (a pruned node)
                result.skipped += 1
                continue
            expect("safe nonce", safe, int(outcomes or 0))(int(str(answer), 16))


def has_state_at(rpc: RpcClient, address: str, block: int) -> bool:
    """True if the node answers state queries at `block` (an ``eth_getBalance`` of `address` there). Any
    JSON-RPC error counts as "no state": nodes word it differently (Anvil ``BlockOutOfRangeError``, geth
    ``missing trie node``, others ``pruned``); the caller has seen the newest block answer, so it is not a
    broken node. A connection error is raised."""
    try:
        rpc.call("eth_getBalance", [address, hex(block)])
    except RpcConnectionError:
        raise
    except RpcError:
        return False
    return True


def earliest_state_block(rpc: RpcClient, address: str, low: int, high: int) -> int:
    """The earliest block in ``low..high`` the node has state for: `low` if it has all of them. A node keeps
    state from some block on (a restarted dev chain, a pruning full node), so a binary search finds it.
    Raises VerifyError if even `high` (the head) has no state."""
    if has_state_at(rpc, address, low):
        return low
    if not has_state_at(rpc, address, high):
        raise VerifyError(f"the node answers no state query even at block {high}: is it still syncing?")
    while high - low > 1:  # invariant: no state at `low`, state at `high`
        middle = (low + high) // 2
        if has_state_at(rpc, address, middle):
            high = middle
        else:
            low = middle
    return high


def verify(rpc: RpcClient, engine: Engine, token: str, record: Mapping[str, Any] | None = None) -> VerifyResult:
    """Runs every check at the database's checkpoint block; see the module docstring. With the deployment
    `record`, the code at the token's and the admin module's addresses is checked against its ``code_hashes``."""
    return Verifier(rpc, engine, to_checksum_address(token), record=record).run()

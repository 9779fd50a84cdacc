"""Treasury operations: issuance, programs, vendors, enrolment, allocation and compliance actions.

Each action first asks the contract itself whether it would succeed (an ``eth_call`` from the operator's
account against the pending block): a refusal becomes `ActionError` with the revert as a sentence and nothing
is sent. Single actions are then sent through ape (the operator's keystore account signs); actions from a CSV
file are checked row by row and then by the contract (batched eth_estimateGas); every bad row is reported with
its line number, and only a clean file is sent, through the fast submission path (`deposit_token.chain.submit`) in
rounds that each fit one block.

The CSV disbursal (tens of thousands of allocations, crash-safe) lives in `deposit_token.ops.disburse`.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, fields
from pathlib import Path
from typing import Any

import yaml
from eth_abi import decode as abi_decode
from eth_utils import is_address, keccak, to_checksum_address

from deposit_token.chain import reads
from deposit_token.chain.contracts import system_contract_type
from deposit_token.chain.reads import AccountState, JsonRpc, ReadError
from deposit_token.chain.reverts import decode_revert, explain
from deposit_token.chain.submit import RpcError, Submitter, TxOutcome, TxRequest, encode_call
from deposit_token.domain import display
from deposit_token.domain.categories import Category, category_name, parse_category
from deposit_token.domain.kinds import Kind
from deposit_token.domain.inputs import InputError, RowProblem, bytes32_text, check_address, check_amount, parse_time, read_csv
from deposit_token.domain.presets import PRESETS
from deposit_token.domain.rules import MAX_AMOUNT_40, NO_CAP, WEEKDAYS, KST_OFFSET_MINUTES, ProgramSpec, pack_hours, unpack_hours
from deposit_token.domain.sentences import NameLookup, describe
from deposit_token.errors import DepositTokenError

ROLES = ("DEFAULT_ADMIN_ROLE", "ISSUER_ROLE", "PROGRAM_MANAGER_ROLE", "VENDOR_REGISTRAR_ROLE", "COMPLIANCE_ROLE")
MAX_UTC_OFFSET = (-720, 840)
ENROL_CHUNK = 200  # spenders per enrol transaction: ~47k gas each, ~9.4M per transaction (a 30M block holds 3)
SWEEP_CHUNK = 300  # spenders per sweepExpired transaction
GAS_MARGIN = 1.25  # estimates are exact for the state they ran on; state moves a little before mining
REQUEST_BYTES = 1_000_000  # per JSON-RPC request: Anvil refuses bodies above 2 MB
_ERROR_STRING = bytes.fromhex("08c379a0")
_PANIC = bytes.fromhex("4e487b71")


class ActionError(DepositTokenError):
    """The contract refuses the action (the message is the revert as a sentence); nothing was sent, unless
    the message says the transaction failed on-chain."""


def role_id(role: str) -> bytes:
    """The bytes32 id of an AccessControl role name."""
    if role not in ROLES:
        raise ValueError(f"unknown role {role!r}")
    return b"\0" * 32 if role == "DEFAULT_ADMIN_ROLE" else keccak(text=role)


# --- the connected token ----------------------------------------------------------------------------------------


@dataclass
class Chain:
    """The deployed token (ape contract with the merged ABI) and a raw JSON-RPC connection to its node, for
    batched reads and the submission path."""

    token: Any
    rpc: JsonRpc
    rpc_url: str
    chain_id: int

    @classmethod
    def connect(cls, token: Any, rpc_url: str, chain_id: int) -> Chain:
        return cls(token=token, rpc=JsonRpc(rpc_url), rpc_url=rpc_url, chain_id=int(chain_id))

    @property
    def address(self) -> str:
        return str(self.token.address)

    def names(self) -> NameLookup:
        return NameLookup.for_token(self.token)

    def submitter(self, largest_calldata: int = 0) -> Submitter:
        """A Submitter whose JSON-RPC batches stay under REQUEST_BYTES for transactions of this calldata size."""
        per_tx = 2 * largest_calldata + 400  # hex, plus the signed envelope and the JSON around it
        return Submitter(self.rpc_url, self.chain_id, batch_size=max(1, min(500, REQUEST_BYTES // per_tx)))


def revert_sentence(data: bytes, chain: Chain | None = None) -> str:
    """The sentence for raw revert data (custom error, Error(string) or Panic)."""
    if data[:4] == _ERROR_STRING:
        return f"the contract reverted: {abi_decode(['string'], data[4:])[0]}"
    if data[:4] == _PANIC:
        return f"the contract panicked (code {hex(abi_decode(['uint256'], data[4:])[0])})"
    decoded = decode_revert(data, [item for item in system_contract_type().abi if item.type == "error"])
    if decoded is None:
        return f"the contract refused with unknown error data 0x{data.hex()}" if data else "the contract refused"
    name, inputs = decoded
    inputs = {k: to_checksum_address(v) if isinstance(v, str) and is_address(v) else v for k, v in inputs.items()}
    return describe(name, inputs, chain.names() if chain is not None else None)


def _revert_data(error: RpcError) -> bytes | None:
    """Revert data of an eth_call / eth_estimateGas error, or None if the error is not a revert."""
    data = error.data
    if isinstance(data, Mapping):
        data = data.get("data") or data.get("result")
    if isinstance(data, str) and data.startswith("0x"):
        try:
            return bytes.fromhex(data[2:])
        except ValueError:
            return None
    return b"" if "revert" in error.message.lower() else None


def _refusal_of(answer: Any, chain: Chain, what: str) -> str | None:
    if not isinstance(answer, RpcError):
        return None
    data = _revert_data(answer)
    if data is None:
        raise ReadError(f"{what}: the node answered {answer.message}")
    return revert_sentence(data, chain)


def calldata(fn: str, *args: Any) -> bytes:
    return encode_call(system_contract_type(), fn, list(args))


def refusal(chain: Chain, fn: str, args: Sequence[Any], sender: str) -> str | None:
    """None if `fn(*args)` sent by `sender` would succeed in the next block, else why the contract refuses."""
    call = {"from": sender, "to": chain.address, "data": "0x" + calldata(fn, *args).hex()}
    return _refusal_of(chain.rpc.batch([("eth_call", [call, "pending"])])[0], chain, f"checking {fn}")


def size_chunks(datas: Sequence[bytes], limit: int = REQUEST_BYTES, most: int = 200) -> list[range]:
    """Index ranges of `datas` whose hex encoding fits in one JSON-RPC request of `limit` bytes."""
    chunks, start, size = [], 0, 0
    for index, data in enumerate(datas):
        cost = 2 * len(data) + 200
        if index > start and (size + cost > limit or index - start >= most):
            chunks.append(range(start, index))
            start, size = index, 0
        size += cost
    if start < len(datas):
        chunks.append(range(start, len(datas)))
    return chunks


def estimate_many(chain: Chain, sender: str, datas: Sequence[bytes]) -> list[int | str]:
    """Gas for each calldata sent by `sender` (batched eth_estimateGas), or the sentence of its refusal."""
    answers: list[int | str] = []
    for chunk in size_chunks(datas):
        calls = [("eth_estimateGas", [{"from": sender, "to": chain.address, "data": "0x" + datas[i].hex()}, "pending"])
                 for i in chunk]
        for answer in chain.rpc.batch(calls):
            reason = _refusal_of(answer, chain, "estimating gas")
            answers.append(reason if reason is not None else int(answer, 16))
    return answers


def with_margin(gas: int) -> int:
    return int(gas * GAS_MARGIN) + 20_000


def block_gas_limit(chain: Chain) -> int:
    return int(chain.rpc.call("eth_getBlockByNumber", ["latest", False])["gasLimit"], 16)


def block_rounds(gases: Sequence[int], limit: int, most: int | None = None) -> list[range]:
    """Consecutive index ranges (at most `most` items each) whose gas fits in one block of `limit`.

    A submission round that fits one block is mined in one block on any chain; on an auto-mining dev chain
    (ape-foundry's Anvil) transactions beyond the block's gas would wait for a next transaction that never
    comes."""
    budget = int(limit * 0.95)
    rounds: list[range] = []
    start, used = 0, 0
    for index, gas in enumerate(gases):
        full = most is not None and index - start >= most
        if index > start and (used + gas > budget or full):
            rounds.append(range(start, index))
            start, used = index, 0
        used += gas
    if start < len(gases):
        rounds.append(range(start, len(gases)))
    return rounds


def transact(chain: Chain, fn: str, args: Sequence[Any], account: Any):
    """Checks `fn(*args)` with an eth_call, then sends it through ape from `account`; returns ape's receipt.
    Raises ActionError with the sentence if the contract refuses (before sending, or on-chain)."""
    reason = refusal(chain, fn, args, str(account.address))
    if reason is not None:
        raise ActionError(reason)
    from ape.exceptions import ApeException
    from web3.exceptions import Web3Exception

    try:
        return getattr(chain.token, fn)(*args, sender=account)
    except (ApeException, Web3Exception) as err:
        raise ActionError(explain(err, chain.token)) from None


# --- reads --------------------------------------------------------------------------------------------------------


def account_state(chain: Chain, address: str) -> AccountState:
    return reads.accounts_of(chain.rpc, chain.address, [address])[0]


def has_role(chain: Chain, role: str, address: str) -> bool:
    return bool(chain.token.hasRole(role_id(role), address))


def require_kind(chain: Chain, address: str, kind: int, what: str) -> AccountState:
    """The account of `address`, which must be of `kind` (else InputError naming what it is)."""
    state = account_state(chain, address)
    if state.kind == Kind.NONE:
        raise InputError(f"unknown {what}: {address} is not registered")
    if state.kind != kind:
        raise InputError(f"{address} is a {state.kind_label}, not a {what}")
    return state


@dataclass(frozen=True)
class ProgramInfo:
    id: int
    name: str
    treasury: str
    start: int
    end: int
    utc_offset_minutes: int
    halted: bool
    paused: bool
    version: int
    categories: tuple[int, ...]
    hours: tuple[tuple[int, int], ...]
    per_payment_limit: int
    evidence_threshold: int

    @property
    def label(self) -> str:
        return f"'{self.name}' (#{self.id})"


def program_count(chain: Chain) -> int:
    return int(chain.token.programCount())


def program_info(chain: Chain, program_id: int) -> ProgramInfo:
    """A program's rules and configuration; InputError if there is no such program."""
    count = program_count(chain)
    if not 1 <= program_id <= count:
        known = f"1..{count}" if count else "none yet"
        raise InputError(f"there is no program #{program_id} (programs: {known})")
    rules = chain.token.programRules(program_id)
    config = chain.token.programConfig(program_id)
    mask = int(rules.categories)
    return ProgramInfo(
        id=program_id,
        name=str(chain.token.programName(program_id)),
        treasury=str(config.treasury),
        start=int(rules.start),
        end=int(rules.end),
        utc_offset_minutes=int(rules.utcOffsetMinutes),
        halted=bool(rules.halted),
        paused=bool(chain.token.programPaused(program_id)),
        version=int(rules.version),
        categories=tuple(c for c in range(64) if mask >> c & 1),
        hours=tuple(unpack_hours(int(rules.openingHours))),
        per_payment_limit=int(config.perPaymentLimit),
        evidence_threshold=int(config.evidenceThreshold),
    )


def list_programs(chain: Chain) -> list[ProgramInfo]:
    return [program_info(chain, i) for i in range(1, program_count(chain) + 1)]


def resolve_program(chain: Chain, text: str | int) -> ProgramInfo:
    """A program by id (``3`` or ``#3``) or by its exact name."""
    value = str(text).strip().lstrip("#")
    if value.isdigit():
        return program_info(chain, int(value))
    matches = [p for p in list_programs(chain) if p.name == str(text).strip()]
    if not matches:
        raise InputError(f"there is no program named {str(text).strip()!r}")
    if len(matches) > 1:
        raise InputError(f"several programs are named {str(text).strip()!r}: use the id "
                         f"({', '.join(str(p.id) for p in matches)})")
    return matches[0]


def latest_timestamp(chain: Chain) -> int:
    return reads.head(chain.rpc)[1]


# --- program specifications ----------------------------------------------------------------------------------------

SPEC_FIELDS = tuple(f.name for f in fields(ProgramSpec))
REQUIRED_SPEC_FIELDS = ("name", "treasury", "start", "end", "hours", "per_payment_limit", "evidence_threshold",
                        "caps")
_CLOSED = ("closed", "none", "-", "")


class SpecError(InputError):
    """A program specification with problems; `problems` lists every one of them."""

    def __init__(self, problems: Sequence[str], source: str = "program specification") -> None:
        self.problems = list(problems)
        super().__init__(f"{source} has {len(self.problems)} problem(s): " + "; ".join(self.problems))


def _window(value: Any, day: str, problems: list[str]) -> tuple[int, int]:
    """An hour window from [open, close], "09-18" or "closed"."""
    if value is None or (isinstance(value, str) and value.strip().lower() in _CLOSED):
        return (0, 0)
    if isinstance(value, str) and "-" in value:
        value = value.split("-", 1)
    if isinstance(value, (list, tuple)) and len(value) == 2:
        try:
            opening, closing = (int(str(v).strip().split(":")[0]) for v in value)
        except ValueError:
            problems.append(f"hours on {day}: {value!r} is not [opening, closing] in whole hours")
            return (0, 0)
        if not 0 <= opening <= closing <= 24:
            problems.append(f"hours on {day}: {opening}-{closing} is not a window within 0-24 "
                            "(opening <= closing <= 24)")
        return (opening, closing)
    problems.append(f"hours on {day}: {value!r} is not [opening, closing], \"HH-HH\" or \"closed\"")
    return (0, 0)


def _hours(value: Any, problems: list[str]) -> tuple[tuple[int, int], ...]:
    """Seven windows, Monday first: a list of 7, or a mapping weekday -> window (missing days are closed)."""
    if isinstance(value, Mapping):
        names = {d.lower(): i for i, d in enumerate(WEEKDAYS)}
        windows = [(0, 0)] * 7
        for key, window in value.items():
            day = names.get(str(key).strip().lower()[:3])
            if day is None:
                problems.append(f"hours: {key!r} is not a weekday (Mon..Sun)")
                continue
            windows[day] = _window(window, WEEKDAYS[day], problems)
        return tuple(windows)
    if isinstance(value, (list, tuple)) and len(value) == 7:
        return tuple(_window(w, WEEKDAYS[d], problems) for d, w in enumerate(value))
    problems.append("hours must list 7 windows (Monday to Sunday) or map weekdays to windows")
    return ((0, 0),) * 7


def _caps(value: Any, problems: list[str]) -> dict[int, int]:
    """category (name or code) -> cap per month; null / "none" / "no cap" means no cap."""
    if not isinstance(value, Mapping) or not value:
        problems.append("caps must map at least one merchant category to its monthly cap (or null for none)")
        return {}
    caps: dict[int, int] = {}
    for key, cap in value.items():
        try:
            category = parse_category(key)
        except ValueError as err:
            problems.append(str(err))
            continue
        if cap is None or (isinstance(cap, str) and cap.strip().lower() in ("none", "no cap", "unlimited")):
            caps[int(category)] = NO_CAP
            continue
        try:
            amount = check_amount(cap, f"cap of {category.name}")
        except InputError as err:
            problems.append(str(err))
            continue
        if amount > NO_CAP:
            problems.append(f"cap of {category.name} {amount:,} is above the maximum {NO_CAP:,} (use null for none)")
        caps[int(category)] = amount
    return caps


def _limit(value: Any, what: str, problems: list[str]) -> int:
    try:
        amount = check_amount(value, what)
    except InputError as err:
        problems.append(str(err))
        return 0
    if amount > MAX_AMOUNT_40:
        problems.append(f"{what} {amount:,} is above the maximum {MAX_AMOUNT_40:,}")
    return amount


def spec_from_mapping(data: Mapping[str, Any], source: str = "program specification") -> ProgramSpec:
    """A ProgramSpec from a mapping with every ProgramSpec field; SpecError lists every problem found."""
    if not isinstance(data, Mapping):
        raise SpecError(["it is not a mapping of ProgramSpec fields"], source)
    problems: list[str] = []
    unknown = [k for k in data if k not in SPEC_FIELDS]
    if unknown:
        problems.append(f"unknown field(s) {', '.join(map(str, unknown))} (fields: {', '.join(SPEC_FIELDS)})")
    missing = [k for k in REQUIRED_SPEC_FIELDS if k not in data]
    if missing:
        problems.append(f"missing field(s) {', '.join(missing)}")
    offset = data.get("utc_offset_minutes", KST_OFFSET_MINUTES)
    if isinstance(offset, bool) or not isinstance(offset, int):
        problems.append(f"utc_offset_minutes {offset!r} is not a whole number of minutes")
        offset = KST_OFFSET_MINUTES
    name = data.get("name")
    if "name" in data and (not isinstance(name, str) or not name.strip()):
        problems.append("name must be non-empty text")
    treasury = ""
    if "treasury" in data:
        value = data["treasury"]
        if isinstance(value, int) and not isinstance(value, bool) and 0 <= value < 2**160:
            value = f"0x{value:040x}"  # YAML reads an unquoted 0x... address as a hex integer
        try:
            treasury = check_address(str(value), "treasury")
        except InputError as err:
            problems.append(str(err))
    times = {}
    for key in ("start", "end"):
        if key in data:
            try:
                times[key] = parse_time(data[key], offset, key)
            except InputError as err:
                problems.append(str(err))
    hours = _hours(data["hours"], problems) if "hours" in data else ((0, 0),) * 7
    caps = _caps(data["caps"], problems) if "caps" in data else {}
    limit = _limit(data["per_payment_limit"], "per_payment_limit", problems) if "per_payment_limit" in data else 0
    threshold = (_limit(data["evidence_threshold"], "evidence_threshold", problems)
                 if "evidence_threshold" in data else 0)
    if "start" in times and "end" in times and times["start"] >= times["end"]:
        problems.append(f"start ({_shown(times['start'], offset)}) must be before end ({_shown(times['end'], offset)})")
    if not MAX_UTC_OFFSET[0] <= offset <= MAX_UTC_OFFSET[1]:
        problems.append(f"utc_offset_minutes {offset} is outside -720..840")
    if problems:
        raise SpecError(problems, source)
    return ProgramSpec(name=str(name).strip(), treasury=treasury, start=times["start"], end=times["end"], hours=hours,
                       per_payment_limit=limit, evidence_threshold=threshold, caps=caps, utc_offset_minutes=offset)


def _shown(timestamp: int, offset_minutes: int) -> str:
    """A moment in the spec's zone; an offset that is itself a problem (reported apart) falls back to KST."""
    if not MAX_UTC_OFFSET[0] <= offset_minutes <= MAX_UTC_OFFSET[1]:
        offset_minutes = KST_OFFSET_MINUTES
    try:
        return display.moment(timestamp, offset_minutes)
    except (OverflowError, OSError, ValueError):
        return f"unix time {timestamp}"  # beyond what a calendar date can show


def spec_problems(spec: ProgramSpec) -> list[str]:
    """Everything the contract would refuse in `spec`, found before sending."""
    problems = []
    if not spec.name.strip():
        problems.append("name must be non-empty text")
    if spec.start and spec.end and spec.start >= spec.end:
        problems.append(f"start ({_shown(spec.start, spec.utc_offset_minutes)}) must be before end "
                        f"({_shown(spec.end, spec.utc_offset_minutes)})")
    if not MAX_UTC_OFFSET[0] <= spec.utc_offset_minutes <= MAX_UTC_OFFSET[1]:
        problems.append(f"utc_offset_minutes {spec.utc_offset_minutes} is outside -720..840")
    try:
        pack_hours(spec.hours)
    except ValueError as err:
        problems.append(f"hours: {err}")
    if not spec.caps:
        problems.append("no merchant category is allowed (caps is empty)")
    for category in spec.caps:
        if not 1 <= int(category) <= 63:
            problems.append(f"merchant category {category} is not between 1 and 63")
    return problems


def load_spec(path: Path | str) -> ProgramSpec:
    """A ProgramSpec from a YAML or JSON file (every ProgramSpec field; see `spec_from_mapping`)."""
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as err:
        raise InputError(f"cannot read {path}: {err.strerror or err}") from None
    try:
        data = json.loads(text) if path.suffix.lower() == ".json" else yaml.safe_load(text)
    except (ValueError, yaml.YAMLError) as err:
        raise InputError(f"{path} is not valid {'JSON' if path.suffix.lower() == '.json' else 'YAML'}: "
                         f"{' '.join(str(err).split())}") from None
    return spec_from_mapping(data, str(path))


def preset_spec(preset: str, *, name: str, treasury: str, start: str | int, end: str | int,
                working_hours_only: bool = False) -> ProgramSpec:
    """A program from a preset of `deposit_token.domain.presets.PRESETS`; SpecError lists every problem."""
    problems = []
    if preset not in PRESETS:
        raise SpecError([f"unknown preset {preset!r} (presets: {', '.join(PRESETS)})"], f"preset {preset!r}")
    try:
        treasury = check_address(treasury, "treasury")
    except InputError as err:
        problems.append(str(err))
    times = {}
    for key, value in (("start", start), ("end", end)):
        try:
            times[key] = parse_time(value, KST_OFFSET_MINUTES, key)
        except InputError as err:
            problems.append(str(err))
    if problems:
        raise SpecError(problems, f"preset {preset!r}")
    kwargs = {"working_hours_only": True} if working_hours_only else {}
    if working_hours_only and preset != "business-promotion":
        raise SpecError(["--working-hours applies to the business-promotion preset only"], f"preset {preset!r}")
    spec = PRESETS[preset](name, treasury, times["start"], times["end"], **kwargs)
    problems = spec_problems(spec)
    if problems:
        raise SpecError(problems, f"preset {preset!r}")
    return spec


def spec_chain_problems(chain: Chain, spec: ProgramSpec) -> list[str]:
    """What the chain adds: the treasury must be a registered treasury."""
    state = account_state(chain, spec.treasury)
    if state.kind != Kind.TREASURY:
        actual = "not registered" if state.kind == Kind.NONE else f"a {state.kind_label}"
        return [f"treasury {spec.treasury} is {actual}, not a registered treasury (`treasury register` it first)"]
    return []


def spec_rows(spec: ProgramSpec) -> list[tuple[str, str]]:
    """(field, value) rows describing a spec for a table."""
    def when(ts: int) -> str:
        return display.moment(ts, spec.utc_offset_minutes)

    hours = ", ".join(f"{WEEKDAYS[d]} {o:02d}-{c:02d}" if o < c else f"{WEEKDAYS[d]} closed"
                      for d, (o, c) in enumerate(spec.hours))
    caps = ", ".join(f"{category_name(c)} {'no cap' if cap >= NO_CAP else f'{cap:,}'}"
                     for c, cap in sorted(spec.caps.items()))
    return [
        ("name", spec.name), ("treasury", spec.treasury), ("start", when(spec.start)), ("end", when(spec.end)),
        ("time zone", display.zone_name(spec.utc_offset_minutes)), ("hours", hours),
        ("per-payment limit", f"{spec.per_payment_limit:,} KRW"),
        ("evidence from", f"{spec.evidence_threshold:,} KRW"), ("categories and monthly caps", caps),
    ]


# --- single actions -----------------------------------------------------------------------------------------------


def issue(chain: Chain, issuer: Any, treasury: str, amount: int):
    """Mints `amount` into a registered treasury, within the issuer's allowance."""
    require_kind(chain, treasury, Kind.TREASURY, "treasury")
    return transact(chain, "mint", (treasury, amount), issuer)


def set_allowance(chain: Chain, admin: Any, issuer: str, amount: int):
    return transact(chain, "setMintAllowance", (issuer, amount), admin)


def register_treasury(chain: Chain, admin: Any, treasury: str):
    return transact(chain, "registerTreasury", (treasury,), admin)


def create_program(chain: Chain, manager: Any, spec: ProgramSpec) -> tuple[int, Any]:
    """(new program id, receipt)."""
    problems = spec_problems(spec) + spec_chain_problems(chain, spec)
    if problems:
        raise SpecError(problems)
    receipt = transact(chain, "createProgram", (spec.as_params(),), manager)
    configured = [e for e in receipt.events if e.event_name == "ProgramConfigured"]
    return (int(configured[0].programId) if configured else program_count(chain)), receipt


def update_program(chain: Chain, manager: Any, program_id: int, spec: ProgramSpec):
    program_info(chain, program_id)
    problems = spec_problems(spec) + spec_chain_problems(chain, spec)
    if problems:
        raise SpecError(problems)
    return transact(chain, "updateProgram", (program_id, spec.as_params()), manager)


def register_vendor(chain: Chain, registrar: Any, vendor: str, category: Category, name: str):
    if not name.strip():
        raise InputError("the vendor's name is empty")
    return transact(chain, "registerVendor", (vendor, int(category), name.strip()), registrar)


def set_vendor_suspended(chain: Chain, officer: Any, vendor: str, suspended: bool, reason: str):
    require_kind(chain, vendor, Kind.VENDOR, "vendor")
    return transact(chain, "suspendVendor" if suspended else "reactivateVendor", (vendor, reason), officer)


def enrol_one(chain: Chain, manager: Any, spender: str, program_id: int, department: bytes):
    program_info(chain, program_id)
    return transact(chain, "enrol", ([spender], program_id, [department]), manager)


def allocate_one(chain: Chain, manager: Any, ref: bytes, program_id: int, spender: str, amount: int):
    program_info(chain, program_id)
    if bool(chain.token.batchApplied(ref)):
        raise ActionError(f"allocation reference 0x{ref.hex()} has already been applied; nobody is paid twice")
    return transact(chain, "allocate", (ref, program_id, [spender], [amount]), manager)


def set_frozen(chain: Chain, officer: Any, account: str, frozen: bool, reason: str):
    state = account_state(chain, account)
    if state.kind == Kind.NONE:
        raise InputError(f"{account} is not registered (not a treasury, spender or vendor)")
    return transact(chain, "freeze" if frozen else "unfreeze", (account, reason), officer)


def clawback(chain: Chain, officer: Any, spender: str, amount: int, reason: str):
    if not reason.strip():
        raise InputError("a clawback needs a reason (it is recorded on-chain)")
    require_kind(chain, spender, Kind.SPENDER, "spender")
    return transact(chain, "clawback", (spender, amount, reason.strip()), officer)


def set_paused(chain: Chain, officer: Any, paused: bool, program_id: int | None = None):
    if program_id is None:
        return transact(chain, "pause" if paused else "unpause", (), officer)
    program_info(chain, program_id)
    return transact(chain, "setProgramPaused", (program_id, paused), officer)


# --- actions from CSV files ------------------------------------------------------------------------------------------


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
            if state.kind not in (Kind.NONE, Kind.VENDOR):
                problems.append(RowProblem(line, f"already registered as a {state.kind_label}", address))
                continue
            calls.append(BulkCall((line,), f"register {address} as {category.name}",
                                  calldata("registerVendor", address, int(category), name)))
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
            problems.append(RowProblem(line, f"is a {state.kind_label}; only new addresses or spenders can be "
                                             "enrolled", address))
        elif state.kind == Kind.SPENDER and state.program_id != program_id:
            problems.append(RowProblem(line, f"already enrolled in program #{state.program_id}, not "
                                             f"#{program_id}", address))
        else:
            by_program.setdefault(program_id, []).append((line, address, department))
    if problems:
        raise BulkRefused(problems, str(path))
    calls = []
    for program_id, rows in by_program.items():
        for start in range(0, len(rows), chunk):
            part = rows[start:start + chunk]
            calls.append(BulkCall(tuple(r[0] for r in part), f"enrol {len(part)} in program #{program_id}",
                                  calldata("enrol", [r[1] for r in part], program_id, [r[2] for r in part])))
    return calls


@dataclass(frozen=True)
class SweepTarget:
    line: int  # 0 when found from the chain
    address: str
    balance: int


def sweep_targets(chain: Chain, *, program_id: int | None = None, path: Path | str | None = None,
                  from_block: int = 0) -> list[SweepTarget]:
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
            raise ActionError(f"program {info.label} runs until {display.moment(info.end, info.utc_offset_minutes)}; "
                              "balances can be swept only after")
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
            problems.append(RowProblem(line, f"program {ending.label} has not ended (it ends at "
                                             f"{display.moment(ending.end, ending.utc_offset_minutes)})", address))
            continue
        if state.balance:
            targets.append(SweepTarget(line, address, int(state.balance)))
    if problems:
        raise BulkRefused(problems, str(path) if path is not None else f"program #{program_id}")
    return targets


def sweep_calls(targets: Sequence[SweepTarget], chunk: int = SWEEP_CHUNK) -> list[BulkCall]:
    calls = []
    for start in range(0, len(targets), chunk):
        part = targets[start:start + chunk]
        calls.append(BulkCall(tuple(t.line for t in part), f"sweep {len(part)} spenders",
                              calldata("sweepExpired", [t.address for t in part])))
    return calls


@dataclass(frozen=True)
class BulkResult:
    call: BulkCall
    outcome: TxOutcome


def send_bulk(chain: Chain, signer: Any, calls: Sequence[BulkCall],
              progress: Callable[[str, int, int], None] | None = None) -> list[BulkResult]:
    """Checks every call (batched eth_estimateGas: a refusal anywhere sends nothing and raises BulkRefused
    naming each refused line), then sends them all through the Submitter and returns each outcome."""
    estimates = estimate_many(chain, signer.address, [c.data for c in calls])
    refused = [RowProblem(call.lines[0], estimate if len(call.lines) == 1 else f"{call.where}: {estimate}")
               for call, estimate in zip(calls, estimates) if isinstance(estimate, str)]
    if refused:
        raise BulkRefused(refused, "the contract refuses")
    limit = block_gas_limit(chain)
    requests = [TxRequest(signer, chain.address, c.data, min(with_margin(g), limit)) for c, g in zip(calls, estimates)]
    outcomes: list[TxOutcome] = []
    with chain.submitter(max(len(c.data) for c in calls)) as submitter:
        for round_ in block_rounds([r.gas for r in requests], limit):
            done = len(outcomes)

            def report(phase: str, count: int, total: int, done: int = done) -> None:
                if progress:
                    progress(phase, done + count, len(requests))

            outcomes += submitter.submit(requests[round_.start:round_.stop], report)
    return [BulkResult(c, o) for c, o in zip(calls, outcomes)]


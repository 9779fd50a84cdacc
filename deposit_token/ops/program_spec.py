"""Program specifications: a `ProgramSpec` from a YAML / JSON file or a preset, with every problem listed at
once (`SpecError`), the checks the contract would make before anything is sent, and the spec as table rows.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from dataclasses import fields
from pathlib import Path
from typing import Any

import yaml

from deposit_token.domain import display
from deposit_token.domain.categories import category_name, parse_category
from deposit_token.domain.inputs import InputError, check_address, check_amount, parse_time
from deposit_token.domain.kinds import Kind
from deposit_token.domain.presets import PRESETS
from deposit_token.domain.rules import KST_OFFSET_MINUTES, MAX_AMOUNT_40, NO_CAP, WEEKDAYS, ProgramSpec, pack_hours
from deposit_token.ops.context import Chain, account_state

MAX_UTC_OFFSET = (-720, 840)
SPEC_FIELDS = tuple(f.name for f in fields(ProgramSpec))
REQUIRED_SPEC_FIELDS = ("name", "treasury", "start", "end", "hours", "per_payment_limit", "evidence_threshold", "caps")
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
            problems.append(
                f"hours on {day}: {opening}-{closing} is not a window within 0-24 (opening <= closing <= 24)"
            )
        return (opening, closing)
    problems.append(f'hours on {day}: {value!r} is not [opening, closing], "HH-HH" or "closed"')
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
    threshold = (
        _limit(data["evidence_threshold"], "evidence_threshold", problems) if "evidence_threshold" in data else 0
    )
    if "start" in times and "end" in times and times["start"] >= times["end"]:
        problems.append(f"start ({_shown(times['start'], offset)}) must be before end ({_shown(times['end'], offset)})")
    if not MAX_UTC_OFFSET[0] <= offset <= MAX_UTC_OFFSET[1]:
        problems.append(f"utc_offset_minutes {offset} is outside -720..840")
    if problems:
        raise SpecError(problems, source)
    return ProgramSpec(
        name=str(name).strip(),
        treasury=treasury,
        start=times["start"],
        end=times["end"],
        hours=hours,
        per_payment_limit=limit,
        evidence_threshold=threshold,
        caps=caps,
        utc_offset_minutes=offset,
    )


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
        problems.append(
            f"start ({_shown(spec.start, spec.utc_offset_minutes)}) must be before end "
            f"({_shown(spec.end, spec.utc_offset_minutes)})"
        )
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
        raise InputError(
            f"{path} is not valid {'JSON' if path.suffix.lower() == '.json' else 'YAML'}: {' '.join(str(err).split())}"
        ) from None
    return spec_from_mapping(data, str(path))


def preset_spec(
    preset: str, *, name: str, treasury: str, start: str | int, end: str | int, working_hours_only: bool = False
) -> ProgramSpec:
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

    hours = ", ".join(
        f"{WEEKDAYS[d]} {o:02d}-{c:02d}" if o < c else f"{WEEKDAYS[d]} closed" for d, (o, c) in enumerate(spec.hours)
    )
    caps = ", ".join(
        f"{category_name(c)} {'no cap' if cap >= NO_CAP else f'{cap:,}'}" for c, cap in sorted(spec.caps.items())
    )
    return [
        ("name", spec.name),
        ("treasury", spec.treasury),
        ("start", when(spec.start)),
        ("end", when(spec.end)),
        ("time zone", display.zone_name(spec.utc_offset_minutes)),
        ("hours", hours),
        ("per-payment limit", f"{spec.per_payment_limit:,} KRW"),
        ("evidence from", f"{spec.evidence_threshold:,} KRW"),
        ("categories and monthly caps", caps),
    ]

"""Turns raw ``eth_getLogs`` entries into rows of the audit tables.

Decoding is table-driven from the token system's merged ABI, shipped with the package
(``deposit_token.chain.abi``), so that the indexer needs neither an ape build nor web3's contract machinery:
every event the token or its admin module declares gets a decoder; events with a typed table (``EVENT_TABLE``)
land there, every other event of the ABI (admin handover, role admin changes, authorizations, ...) lands in
``admin_events`` as JSON, and a log whose signature is in no ABI is kept there too, raw, rather than dropped.
The common case (static types only, e.g. Payment and Transfer) is decoded by slicing the hex words, which is
what makes 20k+ events/s possible; events with strings go through eth_abi.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from functools import lru_cache
from typing import Any

import orjson
from eth_abi import decode as abi_decode
from eth_utils import keccak, to_checksum_address

from deposit_token.audit.db import schema
from deposit_token.chain.abi import AbiError, abi_signature, abi_type, system_abi

# event name -> (table, {abi parameter: column}); parameters not renamed map to their snake_case name.
EVENT_TABLE: dict[str, tuple[str, dict[str, str]]] = {
    "Transfer": ("transfers", {"from": "from_address", "to": "to_address", "value": "amount"}),
    "Approval": ("approvals", {"value": "amount"}),
    "Payment": ("payments", {}),
    "Allocated": ("allocations", {}),
    "AllocationBatch": ("allocation_batches", {}),
    "Returned": ("returns", {}),
    "Redeemed": ("redemptions", {}),
    "ClawedBack": ("clawbacks", {}),
    "Swept": ("sweeps", {}),
    "Minted": ("mints", {}),
    "MintAllowanceSet": ("mint_allowances", {}),
    "TreasuryRegistered": ("treasury_registrations", {}),
    "VendorRegistered": ("vendor_registrations", {}),
    "VendorSuspensionChanged": ("vendor_suspensions", {}),
    "SpenderEnrolled": ("enrolments", {}),
    "CapOverrideSet": ("cap_overrides", {}),
    "ProgramConfigured": ("program_configs", {"end": "end_time"}),
    "CategoryCapSet": ("category_caps", {}),
    "FreezeChanged": ("freezes", {}),
    "ProgramPauseChanged": ("program_pauses", {}),
    "Paused": ("pauses", {}),
    "Unpaused": ("pauses", {}),
    "RoleGranted": ("role_events", {}),
    "RoleRevoked": ("role_events", {}),
}
ADMIN_TABLE = "admin_events"
# Columns filled from the event itself rather than a parameter.
_CONSTANT_COLUMNS: dict[str, dict[str, Any]] = {
    "Paused": {"paused": True},
    "Unpaused": {"paused": False},
    "RoleGranted": {"event_name": "RoleGranted"},
    "RoleRevoked": {"event_name": "RoleRevoked"},
}
_DERIVED: dict[str, Callable[[dict[str, Any]], dict[str, Any]]] = {
    "SpenderEnrolled": lambda row: {"department_text": bytes32_text(row["department"])},
}


def snake(name: str) -> str:
    """``programId`` -> ``program_id``, ``utcOffsetMinutes`` -> ``utc_offset_minutes``."""
    return re.sub(r"(?<=[a-z0-9])([A-Z])", r"_\1", name).lower()


def bytes32_text(value: str) -> str:
    """A bytes32 holding right-padded UTF-8 (a department code) as text, NULs stripped."""
    raw = bytes.fromhex(value[2:]).rstrip(b"\0")
    return raw.decode("utf-8", errors="replace").replace("\0", "")


@lru_cache(maxsize=1 << 16)
def checksum(address_hex40: str) -> str:
    """Checksummed address from 40 hex digits (cached: a chain has far fewer accounts than events)."""
    return to_checksum_address("0x" + address_hex40)


@lru_cache(maxsize=1 << 15)
def checksum_topic(topic: str) -> str:
    """The checksummed address an indexed address parameter's topic (0x + 64 hex digits) holds, cached by the
    whole topic: the string's hash is already stored in it (the indexer's checks put every topic in a set), so
    a hit costs neither a slice nor hashing - a third of `checksum` on a fresh slice."""
    return checksum(topic[26:])


@lru_cache(maxsize=1 << 12)
def uint_topic(topic: str) -> int:
    """An indexed unsigned integer (program ids, ...) from its topic, cached as `checksum_topic`."""
    return int(topic[2:], 16)


def _is_static_word(kind: str) -> bool:
    return kind in ("address", "bool") or re.fullmatch(r"u?int\d+|bytes([1-9]|[12]\d|3[012])", kind) is not None


# --- per-event decoders ---------------------------------------------------------------------------------------


INT64_MAX = 2**63 - 1


def _exact(value: int) -> int | str:
    """Integers above 64 bits go to the database as decimal text (see ``schema.Amount``; neither SQLite's
    driver nor orjson takes a larger Python int)."""
    return value if value <= INT64_MAX else str(value)


def _word_converter(kind: str) -> Callable[[str], Any]:
    """How to read one 64-hex-digit word (a topic or a data word) of a static type."""
    if kind == "address":
        return lambda w: checksum(w[24:])
    if kind == "bool":
        return lambda w: int(w, 16) != 0
    if kind.startswith("uint"):
        if int(kind[4:] or 256) < 64:
            return lambda w: int(w, 16)
        return lambda w: _exact(int(w, 16))
    if kind.startswith("int"):
        bits = 256

        def signed(w: str) -> int | str:
            value = int(w, 16)
            return _exact(value - (1 << bits) if value >> (bits - 1) else value)

        return signed
    if kind == "bytes32":
        return lambda w: "0x" + w
    if kind.startswith("bytes"):
        size = int(kind[5:])
        return lambda w: "0x" + w[: 2 * size]
    raise AbiError(f"not a static type: {kind}")


POSITION_COLUMNS = ("block_number", "log_index", "tx_hash", "block_timestamp")


def _word_expression(kind: str, word: str) -> str:
    """Python source reading a static `kind` from `word`, an expression giving 64 hex digits (no 0x)."""
    if kind == "address":
        return f"_checksum(({word})[24:])"
    if kind == "bool":
        return f"_int({word}, 16) != 0"
    if kind.startswith("uint"):
        return f"_int({word}, 16)" if int(kind[4:] or 256) < 64 else f"_exact(_int({word}, 16))"
    if kind.startswith("int"):
        return f"_signed({word})"
    if kind == "bytes32":
        return f"'0x' + {word}"
    if kind.startswith("bytes"):
        return f"'0x' + ({word})[:{2 * int(kind[5:])}]"
    raise AbiError(f"not a static type: {kind}")


def _topic_expression(kind: str, topic: str) -> str:
    """Python source reading an indexed static `kind` from `topic`, an expression giving the 0x-topic."""
    if kind == "bytes32":
        return topic
    if kind == "address":
        return f"_checksum_topic({topic})"
    if kind.startswith("uint"):
        return f"_uint_topic({topic})" if int(kind[4:] or 256) < 64 else f"_exact(_uint_topic({topic}))"
    return _word_expression(kind, f"{topic}[2:]")


def _signed(word: str) -> int | str:
    value = int(word, 16)
    return _exact(value - (1 << 256) if value >> 255 else value)


def _compile_row(
    name: str, indexed_types: Sequence[str], data_types: Sequence[str], constants: Sequence[Any]
) -> Callable[[Mapping[str, Any], int], tuple[Any, ...]]:
    """A straight-line function ``(log, timestamp) -> row tuple`` for an event with static data only.

    This runs once per event (hundreds of thousands per backfill); generated code without loops, zips or
    per-column closures is about three times faster than interpreting the ABI for every log."""
    parts = ["_int(log['blockNumber'], 16)", "_int(log['logIndex'], 16)", "log['transactionHash']", "timestamp"]
    parts += [_topic_expression(kind, f"t[{i + 1}]") for i, kind in enumerate(indexed_types)]
    parts += [_word_expression(kind, f"d[{2 + 64 * i}:{66 + 64 * i}]") for i, kind in enumerate(data_types)]
    parts += [f"_constants[{i}]" for i in range(len(constants))]
    source = (
        "def row(log, timestamp):\n"
        "    t = log['topics']\n"
        "    d = log['data']\n"
        f"    if len(t) != {len(indexed_types) + 1} or len(d) < {2 + 64 * len(data_types)}:\n"
        f"        raise AbiError('{name} log at block %s does not match the ABI' % log['blockNumber'])\n"
        f"    return ({', '.join(parts)},)\n"
    )
    namespace: dict[str, Any] = {
        "_int": int,
        "_checksum": checksum,
        "_checksum_topic": checksum_topic,
        "_uint_topic": uint_topic,
        "_exact": _exact,
        "_signed": _signed,
        "_constants": tuple(constants),
        "AbiError": AbiError,
    }
    exec(compile(source, f"<row decoder {name}>", "exec"), namespace)  # noqa: S102 - source built above
    row: Callable[[Mapping[str, Any], int], tuple[Any, ...]] = namespace["row"]
    return row


@dataclass(frozen=True)
class EventDecoder:
    """Decodes one event kind into a row tuple for its table (columns in ``columns`` order)."""

    name: str
    table: str
    topic0: str
    indexed: tuple[tuple[str, Callable[[str], Any]], ...]  # (column, converter) per topic after topic0
    data_static: tuple[tuple[str, Callable[[str], Any]], ...] | None  # fast path, None when data is dynamic
    data_types: tuple[str, ...]
    data_columns: tuple[str, ...]
    constants: Mapping[str, Any]
    derived: Callable[[dict[str, Any]], dict[str, Any]] | None
    as_json: bool  # admin_events: the parameters go into a JSON column
    columns: tuple[str, ...] = ()  # POSITION_COLUMNS + the event's own, in row-tuple order
    fast_row: Callable[[Mapping[str, Any], int], tuple[Any, ...]] | None = None  # generated, see _compile_row

    def values(self, log: Mapping[str, Any]) -> dict[str, Any]:
        """The event's own columns (no position columns) as a dict (slow path, and for reading one log)."""
        topics = log["topics"]
        if len(topics) != len(self.indexed) + 1:
            raise AbiError(f"{self.name} log at block {log['blockNumber']} has {len(topics)} topics")
        row: dict[str, Any] = {}
        for (column, convert), topic in zip(self.indexed, topics[1:]):
            row[column] = convert(topic[2:])
        data = log["data"]
        if self.data_static is not None:
            for i, (column, convert) in enumerate(self.data_static):
                row[column] = convert(data[2 + 64 * i : 66 + 64 * i])
        elif self.data_types:
            values = abi_decode(self.data_types, bytes.fromhex(data[2:]))
            for column, kind, value in zip(self.data_columns, self.data_types, values):
                row[column] = _plain(kind, value)
        if self.derived is not None:
            row.update(self.derived(row))
        row.update(self.constants)
        if self.as_json:
            return {"event_name": self.name, "data": orjson.dumps(row, default=str).decode()}
        return row

    def row(self, log: Mapping[str, Any], timestamp: int) -> tuple[Any, ...]:
        """The row tuple of one log (columns in ``columns`` order)."""
        if self.fast_row is not None:
            return self.fast_row(log, timestamp)
        position = (int(log["blockNumber"], 16), int(log["logIndex"], 16), log["transactionHash"], timestamp)
        values = self.values(log)
        return position + tuple(values[c] for c in self.columns[4:])


def _plain(kind: str, value: Any) -> Any:
    """An eth_abi value as a column value: addresses checksummed, bytes as 0x-hex."""
    if kind == "address":
        return to_checksum_address(value)
    if isinstance(value, (bytes, bytearray)):
        return "0x" + bytes(value).hex()
    if isinstance(value, (list, tuple)):
        return [_plain(kind.rstrip("[]"), v) for v in value]
    if isinstance(value, int) and not isinstance(value, bool):
        return _exact(value)
    return value


def _decoder(event: Mapping[str, Any]) -> EventDecoder:
    name = event["name"]
    table, renames = EVENT_TABLE.get(name, (ADMIN_TABLE, {}))
    as_json = table == ADMIN_TABLE
    columns_of = (lambda p: p["name"]) if as_json else (lambda p: renames.get(p["name"], snake(p["name"])))
    indexed, data_params = [], []
    for param in event["inputs"]:
        kind = abi_type(param)
        if param.get("indexed"):
            # a dynamic indexed value is only its hash: keep the 32 bytes
            convert = _word_converter(kind if _is_static_word(kind) else "bytes32")
            indexed.append((columns_of(param), convert))
        else:
            data_params.append((columns_of(param), kind))
    static = all(_is_static_word(kind) for _c, kind in data_params)
    constants = _CONSTANT_COLUMNS.get(name, {})
    if as_json:
        own: tuple[str, ...] = ("event_name", "data")
    else:
        own = (
            tuple(c for c, _ in indexed)
            + tuple(c for c, _k in data_params)
            + (("department_text",) if name in _DERIVED else ())
            + tuple(constants)
        )
    fast = static and name not in _DERIVED and not as_json
    indexed_types = [
        abi_type(p) if _is_static_word(abi_type(p)) else "bytes32" for p in event["inputs"] if p.get("indexed")
    ]
    return EventDecoder(
        name=name,
        table=table,
        topic0="0x" + keccak(text=abi_signature(event)).hex(),
        indexed=tuple(indexed),
        data_static=tuple((c, _word_converter(k)) for c, k in data_params) if static else None,
        data_types=tuple(k for _c, k in data_params),
        data_columns=tuple(c for c, _k in data_params),
        constants=constants,
        derived=_DERIVED.get(name),
        as_json=as_json,
        columns=POSITION_COLUMNS + own,
        fast_row=_compile_row(name, indexed_types, [k for _c, k in data_params], list(constants.values()))
        if fast
        else None,
    )


class LogDecoder:
    """Every event of the token system, by topic0; checks at construction that each typed table has a column
    for every parameter (an ABI change without a migration fails loudly here, not as a half-written row)."""

    def __init__(self, abi: Iterable[Mapping[str, Any]] | None = None):
        events = [item for item in (abi if abi is not None else system_abi()) if item["type"] == "event"]
        self.by_topic: dict[str, EventDecoder] = {}
        for event in events:
            if event.get("anonymous"):
                continue
            decoder = _decoder(event)
            self.by_topic[decoder.topic0] = decoder
            if not decoder.as_json:
                self._check_columns(decoder)
        # topic0 -> (row group, row function): one lookup per log in decode_all, and the generated decoder
        # called directly (the method in between cost a fifth of the decoding)
        self._rows_of: dict[
            str, tuple[tuple[str, tuple[str, ...]], Callable[[Mapping[str, Any], int], tuple[Any, ...]]]
        ] = {topic: ((d.table, d.columns), d.fast_row or d.row) for topic, d in self.by_topic.items()}

    @staticmethod
    def _check_columns(decoder: EventDecoder) -> None:
        table = schema.metadata.tables[decoder.table]
        missing = set(decoder.columns) - set(table.columns.keys())
        if missing:
            raise AbiError(
                f"event {decoder.name} has parameters {sorted(missing)} with no column in table "
                f"{decoder.table}: add them to schema.py and a migration"
            )

    def _unknown_row(self, log: Mapping[str, Any], timestamp: int) -> tuple[Any, ...]:
        """A log no ABI describes: kept raw in admin_events rather than dropped."""
        return (
            int(log["blockNumber"], 16),
            int(log["logIndex"], 16),
            log["transactionHash"],
            timestamp,
            "UnknownEvent",
            orjson.dumps({"topics": log["topics"], "data": log["data"]}).decode(),
        )

    def decode(self, log: Mapping[str, Any], timestamp: int = 0) -> tuple[str, dict[str, Any]]:
        """(table, row as a dict) of one log, with the position columns (for reading single logs)."""
        topics = log["topics"]
        decoder = self.by_topic.get(topics[0]) if topics else None
        if decoder is None:
            return ADMIN_TABLE, dict(zip((*POSITION_COLUMNS, "event_name", "data"), self._unknown_row(log, timestamp)))
        return decoder.table, dict(zip(decoder.columns, decoder.row(log, timestamp)))

    def decode_all(
        self, logs: Sequence[Mapping[str, Any]], timestamps: Mapping[int, int]
    ) -> dict[tuple[str, tuple[str, ...]], list[tuple[Any, ...]]]:
        """Row tuples of `logs` grouped by (table, columns); `timestamps` maps block number -> timestamp."""
        out: dict[tuple[str, tuple[str, ...]], list[tuple[Any, ...]]] = {}
        rows_of = self._rows_of
        unknown_key = (ADMIN_TABLE, (*POSITION_COLUMNS, "event_name", "data"))
        block, timestamp = None, 0
        for log in logs:
            topics = log["topics"]
            known = rows_of.get(topics[0]) if topics else None
            if log["blockNumber"] != block:  # logs come block by block: one int() per block, not per log
                block = log["blockNumber"]
                timestamp = timestamps[int(block, 16)]
            if known is None:
                out.setdefault(unknown_key, []).append(self._unknown_row(log, timestamp))
                continue
            key, row = known
            rows = out.get(key)
            if rows is None:
                rows = out[key] = []
            rows.append(row(log, timestamp))
        return out

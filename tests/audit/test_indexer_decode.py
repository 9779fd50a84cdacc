"""The indexer's generated row decoders (``decode._compile_row``: fixed-offset slicing, cached topic
conversions) give the same values as the ABI-interpreting path (``EventDecoder.values``), edge values included:
amounts above 2**63 (stored as decimal text), zero, the largest uint16 program id, addresses repeated (cache
hits) and new."""

from __future__ import annotations

from typing import Any

import pytest
from eth_abi import encode
from eth_utils import to_checksum_address

from deposit_token.audit.sync.decode import POSITION_COLUMNS, LogDecoder
from deposit_token.chain.abi import AbiError

PAYER = "0x" + "ab" * 20
VENDOR = "0x" + "Cd" * 20
OTHER = "0x" + "0f" * 20


def _word(value: int) -> str:
    return "0x" + value.to_bytes(32, "big").hex()


def _address_topic(address: str) -> str:
    return "0x" + "00" * 12 + address[2:].lower()


def _log(topic0: str, topics: list[str], data: bytes, block: int, index: int) -> dict[str, Any]:
    return {
        "address": "0x" + "11" * 20,
        "topics": [topic0, *topics],
        "data": "0x" + data.hex(),
        "blockNumber": hex(block),
        "blockHash": "0x" + "22" * 32,
        "transactionHash": "0x" + f"{index:064x}",
        "logIndex": hex(index),
        "removed": False,
    }


def _logs(decoder: LogDecoder) -> list[dict[str, Any]]:
    topic = {d.name: t for t, d in decoder.by_topic.items()}
    payment_types = ["uint8", "uint32", "uint256", "bytes32", "bytes32", "uint256"]
    logs = []
    amounts = [0, 1, 2**63 - 1, 2**63, 2**64 - 1, 2**64, 2**256 - 1]
    for i, amount in enumerate(amounts):
        payer = PAYER if i % 2 else OTHER  # repeated and alternating: cache hits and misses
        data = encode(payment_types, [i % 256, 203001 + i, amount, bytes([i]) * 32, b"\xee" * 32, amounts[-1 - i]])
        topics = [_address_topic(payer), _address_topic(VENDOR), _word(65535 if i % 3 else 0)]
        logs.append(_log(topic["Payment"], topics, data, 10 + i // 3, 2 * i))
        transfer = encode(["uint256"], [amount])
        logs.append(
            _log(topic["Transfer"], [_address_topic(payer), _address_topic(VENDOR)], transfer, 10 + i // 3, 2 * i + 1)
        )
    return logs


def test_generated_rows_equal_the_abi_path() -> None:
    decoder = LogDecoder()
    logs = _logs(decoder)
    timestamps = {n: 1_900_000_000 + n for n in range(10, 13)}
    groups = decoder.decode_all(logs, timestamps)
    assert sorted(table for table, _columns in groups) == ["payments", "transfers"]
    expected: dict[str, list[tuple[Any, ...]]] = {"payments": [], "transfers": []}
    for log in logs:
        event = decoder.by_topic[log["topics"][0]]
        assert event.fast_row is not None  # the generated decoder is what is under test
        block = int(log["blockNumber"], 16)
        values = event.values(log)  # the ABI-interpreting converters
        position = (block, int(log["logIndex"], 16), log["transactionHash"], timestamps[block])
        expected[event.table].append(position + tuple(values[c] for c in event.columns[len(POSITION_COLUMNS) :]))
    for (table, columns), rows in groups.items():
        assert rows == expected[table]
        for row, want in zip(rows, expected[table], strict=True):  # same types too: 2**63 and up as text
            assert [type(v) for v in row] == [type(v) for v in want], (table, columns)
    payments = groups[next(key for key in groups if key[0] == "payments")]
    assert payments[3][columns_index(decoder, "payments", "amount")] == str(2**63)
    assert payments[1][columns_index(decoder, "payments", "payer")] == to_checksum_address(PAYER)
    assert {row[columns_index(decoder, "payments", "program_id")] for row in payments} == {0, 65535}


def columns_index(decoder: LogDecoder, table: str, column: str) -> int:
    event = next(d for d in decoder.by_topic.values() if d.table == table)
    return event.columns.index(column)


def test_a_log_that_does_not_match_the_abi_is_refused() -> None:
    decoder = LogDecoder()
    log = _logs(decoder)[0]
    log["topics"] = log["topics"][:3]  # a Payment without its program id topic
    with pytest.raises(AbiError, match="Payment log at block 0xa does not match the ABI"):
        decoder.decode_all([log], {10: 0})

"""The payments export written by PostgreSQL itself: ``COPY (SELECT ...) TO STDOUT (FORMAT csv)``, the same bytes
as ``export.write_rows`` writes from ``payments.stream_payment_values`` (the Python path, kept for SQLite and JSON
Lines), without Python per row (a month of 932,203 payments at 10,000,000 took 14.2 s through Python, ~15 us a row
for the labels, the receipt text, the flags and the csv module; see ``write_payments_csv`` for what this costs).

Every column is computed in the statement, from the tables of the same snapshot (the caller's transaction, so the
file agrees with the checkpoint named in the manifest):

* program and vendor names: the latest configuration / registration of each (``ProgramConfigs.name``,
  ``vendor_names``), unknown ones as Python names them;
* the payer's department when paying (``Departments.at``): each enrolment covers its position up to the payer's
  next one (the first reaches back), labelled by ``department_label`` in Python for each distinct department
  (a few dozen) and passed in;
* ``time_kst`` as ``display.moment``, the period as ``display.period``, the category name from ``Category``;
* the receipt as ``receipts.receipt_text`` for the cases SQL decides exactly: none, a number, printable ASCII
  text; any other receipt (non-ASCII text, a NUL or backslash inside, text ``receipt_id`` would refuse, a
  non-canonical id) is read first and given its text by ``receipt_text`` itself, then joined by value;
* flags as ``rule;rule`` in ``RULES`` order.

CSV: PostgreSQL's quoting equals the csv module's (QUOTE_MINIMAL, ``\\n``) except for an empty string (PostgreSQL
quotes it; every text column is NULLIF'd to an unquoted empty field, as Python writes it) and a carriage return
(PostgreSQL quotes it, Python 3.11's csv does not with ``\\n`` as line end): a name holding one makes
``write_payments_csv`` return None and the caller takes the Python path. A lone ``\\.`` is quoted by PostgreSQL
only in a one-column COPY. Receipt ids are "0x" + 64 hex digits as the indexer writes them; one that is not makes
the COPY fail where ``receipt_text`` would raise.

Cost (month 203011 at 10,000,002 payments, 932,203 rows, load ~1, each run in a fresh process): 4.4 s with the two
halves on two connections, 6.0 s on one, against 16.0 s through Python in the same run. Of the one statement's
5.4 s: the COPY of the raw columns alone 1.2 s; the department looked up in a jsonb object of 100,000 payers 1.5 s
(a binary search missing the cache at each step; a hash join would be cheaper per row but gives up the index's
order, and sorting the month's wide rows costs more), the vendor name 0.75 s, the receipt 0.55 s, ``time_kst``
0.5 s, the flags 0.3 s, the period 0.2 s, key, NULLIFs and formatting the rest; before it, the count and block
range 0.09 s, the receipt pre-pass 0.22 s, the department labels 0.04 s.
"""

from __future__ import annotations

import hashlib
import tempfile
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any, BinaryIO

import psycopg
from psycopg import sql
from sqlalchemy import Connection, Select, literal_column, select, text

from deposit_token.audit.db import schema
from deposit_token.audit.query.common import Departments, ProgramConfigs, department_label
from deposit_token.audit.query.flags import RULES, ZERO_HASH
from deposit_token.audit.query.lookups import Lookups, lookups
from deposit_token.audit.query.payments import PaymentFilter, payment_clause
from deposit_token.domain.categories import Category
from deposit_token.domain.receipts import receipt_text
from deposit_token.domain.rules import KST_OFFSET_MINUTES

# up to this many payments, each one's flags are read by their key; more, the flags of their block range at once
LATERAL_FLAGS_MAX = 20_000
SPLIT_MIN = 200_000  # from this many payments on, two connections share the work (see write_payments_csv)
CHUNK = 1 << 20  # bytes handed to the file and the digest at once (COPY sends one message per row)
_NO_LOOKUPS = Lookups(ProgramConfigs(()), Departments(()), {}, {})

# --- the receipt --------------------------------------------------------------------------------------------------
# `r` is the stored id: "0x" + 64 hex digits. Its bytes with trailing NULs cut, as text with NUL, bytes >= 0x80 and
# backslashes escaped (a backslash in the result means "not plain ASCII": Python decides).
_R = "payments.receipt_id"
_TEXT = f"encode(rtrim(decode(substr({_R}, 3), 'hex'), '\\x00'::bytea), 'escape')"
# a number (or none): the first byte is zero; checked first and cheaply, as nearly every receipt is one
# (byte comparisons: character functions count UTF-8 characters, which cost more than the rest of the receipt)
_C = f'{_R} COLLATE "C"'
_NUMBER = f"{_C} >= '0x00' AND {_C} < '0x01' AND octet_length({_R}) = 66"
# text that receipt_id would refuse (0x + hex digits after stripping): receipt_text raises there, so Python decides
_HEXLIKE = f"btrim({_TEXT}, ' ') ~* '^0x[0-9a-f]*$'"
_ASCII_TEXT = (
    f"octet_length({_R}) = 66 AND left({_R}, 2) = '0x' AND left({_R}, 4) <> '0x00'"
    f" AND strpos({_TEXT}, '\\') = 0 AND NOT ({_HEXLIKE})"
)
DECIDED_IN_SQL = f"(({_NUMBER}) OR ({_ASCII_TEXT}))"


def _hex_chunk(start: int, digits: int) -> str:
    return f"('x' || substr({_R}, {start}, {digits}))::bit({4 * digits})::bigint"


def _number() -> str:
    """The id's integer (its first byte is zero: 62 hex digits) in decimal: one 60-bit word when it fits (an
    invoice number), else five words summed as numeric."""
    small = f"('x' || right({_R}, 15))::bit(60)::bigint::text"
    words = [(5, 2, 240), (7, 15, 180), (22, 15, 120), (37, 15, 60), (52, 15, 0)]
    big = " + ".join(f"{_hex_chunk(start, n)}::numeric * {2**shift}" for start, n, shift in words)
    # the first 49 digits are zeros exactly when the id lies in [0x + 64 zeros, 0x + 48 zeros + "1"): a character
    # below "0" there sorts under the first bound, any other above the second (the long form then reads it)
    zeros, bound = "0x" + "0" * 64, "0x" + "0" * 48 + "1"
    return f"CASE WHEN {_C} >= '{zeros}' AND {_C} < '{bound}' THEN {small} ELSE ({big})::text END"


def _receipt(python_decided: bool) -> str:
    """``receipt_text`` in SQL; the rows SQL cannot decide take the text Python gave (join ``rx``)."""
    ascii_text = (
        f"CASE WHEN {_TEXT} ~ '[^ -~]' OR btrim({_TEXT}, ' ') <> {_TEXT} OR {_TEXT} ~ '^[0-9]+$' "
        f"THEN lower({_R}) ELSE {_TEXT} END"
    )
    fallback = "rx.text" if python_decided else "NULL"
    return (
        f"CASE WHEN {_R} = '{ZERO_HASH}' THEN '-' WHEN {_NUMBER} THEN {_number()} "
        f"WHEN {_ASCII_TEXT} THEN {ascii_text} ELSE {fallback} END"
    )


# --- the statement ------------------------------------------------------------------------------------------------

_KST_SECONDS = KST_OFFSET_MINUTES * 60


def _flags_join(lateral: bool) -> str:
    """The join giving each payment its flags as ``rule;rule`` in RULES order (a bit mask of the rules indexes an
    array of the texts; a rule this release does not know, of which none is written, goes last as in Python):
    read per payment by the flags' key for a few payments, else the flags of the block range merged in order."""
    rules = """NULLIF(concat_ws(';',
        (%(flag_labels)s::text[])[1 + bit_or(1 << (array_position(%(rules)s::text[], f.rule::text) - 1))],
        string_agg(f.rule, ';') FILTER (WHERE array_position(%(rules)s::text[], f.rule::text) IS NULL)), '') AS rules"""
    if lateral:
        return f"""LEFT JOIN LATERAL (SELECT {rules} FROM payment_flags f
    WHERE f.block_number = payments.block_number AND f.log_index = payments.log_index) AS flagged ON true"""
    return f"""LEFT JOIN (SELECT f.block_number, f.log_index, {rules} FROM payment_flags f
    WHERE f.block_number BETWEEN %(low)s AND %(high)s GROUP BY f.block_number, f.log_index) AS flagged
    ON flagged.block_number = payments.block_number AND flagged.log_index = payments.log_index"""


def _select(where: str, python_receipts: bool, lateral_flags: bool) -> str:
    """The export's SELECT, in the order of the (period, block, log) index: every lookup is an expression (a jsonb
    object built once, arrays indexed by number), so no join but the flags' undoes that order and nothing is
    sorted. Parameters: dep/dtext/label (department labels), programs (names by id - 1), names (category names by
    code - 1), rules and flag_labels (see ``_flags_join``), low/high (its block range), rid/rtext (receipts decided
    in Python)."""
    receipts = (
        "LEFT JOIN unnest(%(rid)s::text[], %(rtext)s::text[]) AS rx(id, text) ON rx.id = payments.receipt_id"
        if python_receipts
        else ""
    )
    return f"""
WITH labels AS (
    SELECT * FROM unnest(%(dep)s::text[], %(dtext)s::text[], %(label)s::text[]) AS l(department, dtext, label)
), enrolled AS (
    SELECT e.spender, l.label, e.block_number AS b, e.log_index AS i
    FROM enrolments e JOIN labels l ON l.department = e.department AND l.dtext = coalesce(e.department_text, '')
), kept AS (  -- payers who only ever had one department (nearly all): one label, whatever the position
    SELECT spender, min(label) AS label FROM enrolled GROUP BY spender HAVING min(label) = max(label)
), changed AS MATERIALIZED (  -- the others (re-enrolled elsewhere): each enrolment up to their next one
    SELECT spender, label, b, i,
           row_number() OVER w = 1 AS first, lead(b) OVER w AS nb, lead(i) OVER w AS ni
    FROM enrolled WHERE spender NOT IN (SELECT spender FROM kept)
    WINDOW w AS (PARTITION BY spender ORDER BY b, i)
)
SELECT
    payments.block_number || '-' || payments.log_index,
    payments.block_number,
    payments.log_index,
    NULLIF(payments.tx_hash, ''),
    payments.block_timestamp,
    to_char(to_timestamp(payments.block_timestamp + {_KST_SECONDS}) AT TIME ZONE 'UTC', 'YYYY-MM-DD HH24:MI')
        || ' KST',
    CASE WHEN payments.period < 100000 THEN lpad((payments.period / 100)::text, 4, '0')
         ELSE (payments.period / 100)::text END || '-' || lpad((payments.period %% 100)::text, 2, '0'),
    payments.program_id,
    NULLIF(coalesce((%(programs)s::text[])[payments.program_id], 'program ' || payments.program_id), ''),
    NULLIF(payments.payer, ''),
    NULLIF(coalesce(
        (SELECT jsonb_object_agg(spender, label) FROM kept) ->> payments.payer,
        (SELECT c.label FROM changed c WHERE c.spender = payments.payer
            AND (c.first OR (payments.block_number, payments.log_index) >= (c.b, c.i))
            AND (c.nb IS NULL OR (payments.block_number, payments.log_index) < (c.nb, c.ni))),
        %(unknown_department)s), ''),
    NULLIF(payments.vendor, ''),
    NULLIF(coalesce(
        (SELECT jsonb_object_agg(vendor, name ORDER BY block_number, log_index) FROM vendor_registrations)
            ->> payments.vendor,
        %(unregistered)s), ''),
    payments.category,
    NULLIF(coalesce((%(names)s::text[])[payments.category], 'CATEGORY_' || payments.category), ''),
    payments.amount,
    {_receipt(python_receipts)},
    CASE WHEN payments.evidence_hash IN ('', '{ZERO_HASH}') THEN 'false' ELSE 'true' END,
    flagged.rules
FROM payments
{_flags_join(lateral_flags)}
{receipts}
WHERE {where}
ORDER BY payments.block_number DESC, payments.log_index DESC"""


# --- running it ---------------------------------------------------------------------------------------------------


def _where(conn: Connection, filt: PaymentFilter) -> str:
    """The filter's WHERE clause (``payments.payment_clause``, the one builder) as SQL text with its values inlined
    by the dialect, '%' doubled for psycopg's parameters. The lookups (a second or so to load in a fresh process)
    are read only when a department is asked for: no other part of the clause uses them."""
    found = lookups(conn) if filt.departments else _NO_LOOKUPS
    # compiled inside a SELECT from payments, so that a flag's EXISTS correlates with it rather than reading its
    # own payments table
    query: Select[Any] = select(literal_column("1")).select_from(schema.payments).where(payment_clause(filt, found))
    compiled = str(query.compile(dialect=conn.dialect, compile_kwargs={"literal_binds": True}))
    head, where = compiled.split("\nWHERE ", 1)
    if head != "SELECT 1 \nFROM payments ":
        raise AssertionError(f"unexpected compiled filter: {compiled!r}")
    return where.replace("%", "%%")


def _department_labels(conn: Connection) -> tuple[list[str], list[str], list[str]]:
    """Each distinct (department, text) of the enrolments and its label (``department_label``: Unicode rules)."""
    rows = conn.execute(text("SELECT DISTINCT department, coalesce(department_text, '') FROM enrolments")).all()
    return [r[0] for r in rows], [r[1] for r in rows], [department_label(r[0], r[1]) for r in rows]


def _names_quote_alike(conn: Connection) -> bool:
    """No program or vendor name holds a carriage return (quoted by PostgreSQL, not by Python's csv)."""
    found = conn.execute(
        text(
            "SELECT EXISTS (SELECT 1 FROM vendor_registrations WHERE strpos(name, chr(13)) > 0)"
            " OR EXISTS (SELECT 1 FROM program_configs WHERE strpos(name, chr(13)) > 0)"
        )
    ).scalar_one()
    return not found


def _python_receipts(cur: Any, where: str) -> tuple[list[str], list[str]]:
    """The receipts of the matching payments that SQL cannot decide, with ``receipt_text``'s answer for each."""
    cur.execute(f"SELECT DISTINCT receipt_id FROM payments WHERE ({where}) AND NOT {DECIDED_IN_SQL}", {})
    ids = [row[0] for row in cur.fetchall()]
    return ids, [receipt_text(i) for i in ids]


def _by_number(names: dict[int, str]) -> list[str | None]:
    """`names` as an array indexed from 1 (SQL's first subscript) by their numbers, None for gaps."""
    return [names.get(n) for n in range(1, max(names, default=0) + 1)]


def _flag_labels() -> list[str | None]:
    """``rule;rule`` in RULES order for each bit mask of RULES (bit i: the i-th rule)."""
    rules = list(RULES)
    return [";".join(r for i, r in enumerate(rules) if mask >> i & 1) or None for mask in range(1 << len(rules))]


def _parameters(conn: Connection) -> dict[str, Any]:
    dep, dtext, label = _department_labels(conn)
    programs = ProgramConfigs.load(conn)  # each program's latest name, as the Python path names it
    return {
        "dep": dep,
        "dtext": dtext,
        "label": label,
        "programs": _by_number({pid: programs.name(pid) for pid in programs.program_ids()}),
        "names": _by_number({int(c): c.name for c in Category}),
        "rules": list(RULES),
        "flag_labels": _flag_labels(),
        "unknown_department": Departments(()).at(""),
        "unregistered": _NO_LOOKUPS.vendor_name(""),
    }


def _stream(copy: Any, out: BinaryIO, digest: Any | None) -> None:
    """The COPY's data into `out` (and `digest`), in chunks: one write per row would be a system call per row."""
    buffer = bytearray()
    for data in copy:
        buffer += data
        if len(buffer) >= CHUNK:
            out.write(buffer)
            if digest is not None:
                digest.update(buffer)
            buffer.clear()
    out.write(buffer)
    if digest is not None:
        digest.update(buffer)


@dataclass(frozen=True)
class _Part:
    """The payments of one block range of the export, and what its statement needs."""

    where: str
    low: int
    high: int
    lateral_flags: bool


def _copy(cur: Any, part: _Part, params: dict[str, Any], out: BinaryIO, digest: Any | None) -> int:
    """Runs one part's COPY into `out`; returns its rows (the COPY's own count: a field may hold a newline)."""
    statement = _select(part.where, bool(params["rid"]), part.lateral_flags)
    with cur.copy(f"COPY ({statement}) TO STDOUT (FORMAT csv)", {**params, "low": part.low, "high": part.high}) as copy:
        _stream(copy, out, digest)
    return int(cur.rowcount)


@contextmanager
def _same_snapshot(conn: Connection, cur: Any) -> Iterator[psycopg.Connection[Any]]:
    """A second connection to `conn`'s database reading `conn`'s snapshot (``pg_export_snapshot``), so that the two
    halves of an export are one consistent state. Opened outside the engine's pool (a few milliseconds): a busy
    web server's pool could make it wait, and its session settings stay its own; closed afterwards."""
    cur.execute("SELECT pg_export_snapshot()")
    (exported,) = cur.fetchone()
    cargs, cparams = conn.dialect.create_connect_args(conn.engine.url)
    other = psycopg.connect(*cargs, **cparams)
    try:
        other.isolation_level, other.read_only = psycopg.IsolationLevel.REPEATABLE_READ, True
        other.execute(sql.SQL("SET TRANSACTION SNAPSHOT {}").format(sql.Literal(exported)))
        yield other
    finally:
        other.close()


def _copy_halves(
    conn: Connection, cur: Any, parts: list[_Part], params: dict[str, Any], out: BinaryIO, digest: Any
) -> int:
    """The newer half through `cur` into `out` while a second connection on the same snapshot writes the older
    half to a spool file; the spool is appended after it (file order, so the SHA-256 is the file's)."""
    newer, older = parts
    with tempfile.TemporaryFile() as spool, _same_snapshot(conn, cur) as other, ThreadPoolExecutor(1) as pool:

        def read_older() -> int:
            with other.cursor() as other_cur:
                return _copy(other_cur, older, params, spool, None)

        pending = pool.submit(read_older)
        try:
            rows = _copy(cur, newer, params, out, digest)
        finally:
            rows_older = pending.result()  # waits; raises what the other thread raised
        spool.seek(0)
        while chunk := spool.read(CHUNK):
            out.write(chunk)
            digest.update(chunk)
    return rows + rows_older


def write_payments_csv(
    conn: Connection,
    filt: PaymentFilter,
    header: bytes,
    out: BinaryIO,
    lateral_flags_max: int = LATERAL_FLAGS_MAX,
    split_min: int = SPLIT_MIN,
) -> tuple[int, str] | None:
    """Writes `header` (the csv module's header line) and the payments of `filt` to `out` with the bytes
    ``export.write_rows`` writes: (rows, SHA-256 of everything written), or None, having written nothing, when
    this path cannot promise those bytes (not PostgreSQL, a client encoding other than UTF-8, a name holding a
    carriage return): the caller then takes the Python path. From `split_min` payments on, the older half of the
    blocks is read at the same time over a second connection (the database's work is per row, on two cores)."""
    if conn.dialect.name != "postgresql":
        return None
    raw = conn.connection.dbapi_connection  # the psycopg connection, inside `conn`'s transaction and snapshot
    if not isinstance(raw, psycopg.Connection) or raw.info.encoding != "utf-8" or not _names_quote_alike(conn):
        return None
    where = _where(conn, filt)
    digest = hashlib.sha256(header)
    out.write(header)
    with raw.cursor() as cur:
        cur.execute(f"SELECT min(block_number), max(block_number), count(*) FROM payments WHERE {where}", {})
        low, high, count = cur.fetchone()
        if low is None:
            return 0, digest.hexdigest()
        params = _parameters(conn)
        params["rid"], params["rtext"] = _python_receipts(cur, where)
        lateral = count <= lateral_flags_max
        if count < split_min or low == high:
            return _copy(cur, _Part(where, low, high, lateral), params, out, digest), digest.hexdigest()
        middle = (low + high) // 2
        parts = [
            _Part(f"({where}) AND payments.block_number > {middle}", middle + 1, high, lateral),
            _Part(f"({where}) AND payments.block_number <= {middle}", low, middle, lateral),
        ]
        return _copy_halves(conn, cur, parts, params, out, digest), digest.hexdigest()

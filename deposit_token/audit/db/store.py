"""The audit database: opening it (SQLite file or PostgreSQL URL), migrating it, and the few writes the indexer
makes - each a single transaction, which is what makes indexing exactly-once and rollbacks atomic.

SQLite runs in WAL mode with ``synchronous=NORMAL``: a committed transaction survives the process being
killed (``kill -9``) and readers (reports) never block the indexer. PostgreSQL is reached with psycopg 3
(``postgresql://`` URLs are read as ``postgresql+psycopg://``).
"""

from __future__ import annotations

import json
import os
import select as select_module
from collections.abc import Iterable, Mapping, Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from alembic import command
from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy import Connection, Engine, case, create_engine, delete, event, func, insert, select, update
from sqlalchemy.engine import URL, make_url
from sqlalchemy.exc import (
    ArgumentError,
    DisconnectionError,
    IntegrityError,
    NoSuchModuleError,
    OperationalError,
    SQLAlchemyError,
)

from deposit_token import paths
from deposit_token.audit.db import casework, partitions, schema
from deposit_token.errors import DepositTokenError

try:  # COPY on PostgreSQL raises psycopg's own error, not wrapped by SQLAlchemy
    from psycopg.errors import UniqueViolation
except ImportError:  # pragma: no cover - psycopg is a dependency

    class UniqueViolation(Exception):  # type: ignore[no-redef]  # the stand-in when psycopg is absent
        pass


DEFAULT_DB_DIR = paths.AUDIT_DIR
AUDIT_DIR_ENV = "DEPOSIT_TOKEN_AUDIT_DIR"  # another folder for the default databases (tests, dry runs)
MIGRATIONS = Path(__file__).resolve().parent / "migrations"


class DatabaseError(DepositTokenError):
    """The audit database cannot be opened, migrated or used; the message says why, for the operator."""


class IndexMismatchError(DatabaseError):
    """The database already holds another chain's or another token's events."""


# --- opening --------------------------------------------------------------------------------------------------


def default_db_dir() -> Path:
    """Where the default databases live: ``$DEPOSIT_TOKEN_AUDIT_DIR`` if set, else ``audit/`` in the repository."""
    configured = os.environ.get(AUDIT_DIR_ENV, "").strip()
    return Path(configured).expanduser() if configured else DEFAULT_DB_DIR


def default_db_url(network_stem: str, directory: Path | None = None) -> str:
    """``sqlite:///<repo>/audit/<network>.sqlite``; `network_stem` as in deployments/ (``ethereum-local-foundry``),
    the folder :func:`default_db_dir` unless `directory` is given."""
    return f"sqlite:///{(directory or default_db_dir()) / f'{network_stem}.sqlite'}"


def database_url(text: str) -> str:
    """What a user gives as --db, as a URL: the one rule of every audit command. A URL (``sqlite:///file``,
    ``postgresql://...``; anything with ``://``) stays as it is; anything else is the path of a SQLite file
    (``~`` expanded, made absolute so that messages say where it is)."""
    stripped = text.strip()
    if not stripped:
        raise DatabaseError("--db is empty: give a SQLite file path or a sqlite:/// or postgresql:// URL")
    if "://" in stripped:
        return stripped
    return f"sqlite:///{Path(stripped).expanduser().absolute()}"


def parse_db_url(text: str) -> URL:
    """A SQLAlchemy URL for SQLite or PostgreSQL from a URL or a plain path (:func:`database_url`), or
    DatabaseError saying what is wrong with `text`."""
    try:
        url = make_url(database_url(text))
    except ArgumentError as err:
        raise DatabaseError(
            f"not a database URL: {text!r} (try a file path, sqlite:///path/audit.sqlite or "
            "postgresql://user@host:5432/dbname)"
        ) from err
    backend = url.get_backend_name()
    if backend == "postgresql":
        if url.drivername in ("postgresql", "postgres", "postgresql+psycopg2"):
            url = url.set(drivername="postgresql+psycopg")
    elif backend != "sqlite":
        raise DatabaseError(
            f"unsupported database {backend!r} in {url.render_as_string(hide_password=True)}: "
            "use SQLite (sqlite:///file) or PostgreSQL (postgresql://...)"
        )
    if backend == "sqlite" and url.database in (None, "", ":memory:"):
        raise DatabaseError("an in-memory SQLite database would be lost on exit: give a file, sqlite:///path")
    return url


def sqlite_file(url: URL) -> Path:
    """The file of a SQLite URL from :func:`parse_db_url` (which refuses one without a file)."""
    if not url.database:
        raise DatabaseError("an in-memory SQLite database would be lost on exit: give a file, sqlite:///path")
    return Path(url.database).expanduser()


def _sqlite_pragmas(dbapi_connection: Any, _record: Any) -> None:
    cursor = dbapi_connection.cursor()
    cursor.execute("PRAGMA journal_mode=WAL")
    cursor.execute("PRAGMA synchronous=NORMAL")
    cursor.execute("PRAGMA busy_timeout=30000")
    cursor.close()


def _drop_if_closed_by_server(dbapi_connection: Any, record: Any, proxy: Any) -> None:
    # An idle pooled connection has nothing to read: readable means the server closed it (a restart or
    # pg_terminate_backend sends its FATAL message and closes). Raising DisconnectionError makes the pool open a
    # new one. A syscall instead of pre-ping's SELECT 1 round trip on every checkout.
    if select_module.select([dbapi_connection.fileno()], [], [], 0)[0]:
        raise DisconnectionError("the server closed this pooled connection")


def create_db_engine(
    text: str, create_dir: bool = True, pool_size: int | None = None, cheap_ping: bool = False
) -> Engine:
    """An engine for `text` (not yet connected, nothing created); see :func:`open_database`. `pool_size`: the
    connections kept open for reuse (default SQLAlchemy's 5, plus 10 opened and closed again beyond it): a
    server answering many requests at once sizes it to its concurrency, since opening a PostgreSQL connection
    (a new server process) costs more than most queries. `cheap_ping` (PostgreSQL): a checked-out connection is
    tested by whether its socket has something to read (the server closed it) instead of a SELECT 1 round trip:
    for a server whose requests each check out a connection; it misses a peer gone without closing (no FIN),
    which pre-ping would wait on too."""
    url = parse_db_url(text)
    pool: dict[str, int] = {} if pool_size is None else {"pool_size": pool_size, "max_overflow": pool_size}
    if url.get_backend_name() == "sqlite":
        path = sqlite_file(url)
        if not path.parent.exists() and not create_dir:
            raise DatabaseError(f"no folder {path.parent} for the SQLite database")
        engine = create_engine(url, connect_args={"timeout": 30}, **pool)
        event.listen(engine, "connect", _sqlite_pragmas)
        return engine
    try:
        if cheap_ping:
            engine = create_engine(url, **pool)
            event.listen(engine, "checkout", _drop_if_closed_by_server)
            return engine
        return create_engine(url, pool_pre_ping=True, **pool)
    except (NoSuchModuleError, ImportError) as err:
        raise DatabaseError(f"no driver for {url.drivername}: {err}") from err


def describe(engine: Engine) -> str:
    """The database for messages, password hidden."""
    return engine.url.render_as_string(hide_password=True)


def open_database(text: str, migrate: bool = True, pool_size: int | None = None, cheap_ping: bool = False) -> Engine:
    """Connects to the database, creating the SQLite file (and its folder) if needed, and migrates it to the
    current schema. Raises DatabaseError with a readable reason; on a bad URL nothing is created."""
    engine = create_db_engine(text, pool_size=pool_size, cheap_ping=cheap_ping)
    if engine.url.get_backend_name() == "sqlite":
        sqlite_file(engine.url).parent.mkdir(parents=True, exist_ok=True)
    try:
        with engine.connect() as conn:
            conn.exec_driver_sql("SELECT 1")
    except OperationalError as err:
        engine.dispose()
        raise DatabaseError(f"cannot connect to {describe(engine)}: {_first_line(err)}") from err
    if migrate:
        upgrade(engine)
    return engine


def _first_line(err: BaseException) -> str:
    text = str(getattr(err, "orig", None) or err).strip()
    return text.splitlines()[0] if text else type(err).__name__


def alembic_config() -> Config:
    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS))
    return config


def upgrade(engine: Engine, revision: str = "head") -> None:
    """Runs the Alembic migrations up to `revision`, in one transaction (PostgreSQL DDL is transactional).
    Indexes a backfill deferred (`defer_indexes`) are built first when a migration is due: a migration
    may change them, and it expects the schema it was written against."""
    config = alembic_config()
    try:
        with engine.begin() as conn:
            if _deferred(conn) is not None:
                current = MigrationContext.configure(conn).get_current_heads()
                if set(current) != set(ScriptDirectory.from_config(config).get_heads()):
                    _restore_indexes(conn)
            config.attributes["connection"] = conn
            command.upgrade(config, revision)
    except SQLAlchemyError as err:
        raise DatabaseError(f"cannot migrate {describe(engine)}: {_first_line(err)}") from err


# --- what the database indexes --------------------------------------------------------------------------------


def read_meta(conn: Connection) -> dict[str, str]:
    """What the database indexes (chain_id, token, start_block, network); not the indexer's own notes."""
    meta = select(schema.index_meta.c.key, schema.index_meta.c.value)
    return {k: v for k, v in conn.execute(meta.where(schema.index_meta.c.key != DEFERRED_INDEXES_KEY))}


# --- indexes deferred during a fresh backfill --------------------------------------------------------------------

DEFERRED_INDEXES_KEY = "deferred_indexes"  # index_meta row: JSON [[name, CREATE INDEX ...], ...]


def defer_indexes(engine: Engine) -> int:
    """On a SQLite database whose event tables are all empty (a backfill from scratch), drops their secondary
    indexes (not primary keys, not unique ones) and keeps their DDL in ``index_meta``; how many.
    `restore_indexes` builds them again once the backfill is done.

    Why: each payment row updates four indexes keyed on payer, vendor and period, scattered across the
    B-trees (55% of the SQLite insert cost on a 1M-event backfill); building them once at the end is one sorted
    pass. The DDL is read from the database itself, so whatever the migrations made comes back as it was.
    Until then the tables answer queries slowly (full scans): they are incomplete anyway. A crash leaves them
    deferred: the next run of the indexer (or a migration, see `upgrade`) builds them."""
    if engine.dialect.name != "sqlite":
        return 0
    tables = [t.name for t in schema.EVENT_TABLES]
    with engine.begin() as conn:
        if _deferred(conn) is not None:
            return 0
        for table in schema.EVENT_TABLES:
            if conn.execute(select(func.count()).select_from(select(table).limit(1).subquery())).scalar():
                return 0
        marks = ", ".join("?" for _ in tables)
        found = conn.exec_driver_sql(
            "SELECT name, sql FROM sqlite_master WHERE type = 'index' AND sql IS NOT NULL "
            f"AND tbl_name IN ({marks}) ORDER BY name",
            tuple(tables),
        ).all()
        indexes = [(str(name), str(sql)) for name, sql in found if not str(sql).upper().startswith("CREATE UNIQUE")]
        if not indexes:
            return 0
        quote = conn.dialect.identifier_preparer.quote
        for name, _sql in indexes:
            conn.exec_driver_sql(f"DROP INDEX {quote(name)}")
        conn.execute(insert(schema.index_meta).values(key=DEFERRED_INDEXES_KEY, value=json.dumps(indexes)))
    return len(indexes)


def restore_indexes(engine: Engine) -> int:
    """Builds the indexes `defer_indexes` dropped (one transaction); how many (0 when none were deferred)."""
    if engine.dialect.name != "sqlite":
        return 0
    with engine.begin() as conn:
        return _restore_indexes(conn)


def _deferred(conn: Connection) -> list[tuple[str, str]] | None:
    if conn.dialect.name != "sqlite":
        return None
    if conn.exec_driver_sql("SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = 'index_meta'").first() is None:
        return None  # a database not migrated yet
    value = conn.execute(
        select(schema.index_meta.c.value).where(schema.index_meta.c.key == DEFERRED_INDEXES_KEY)
    ).scalar()
    return [(str(name), str(sql)) for name, sql in json.loads(value)] if value is not None else None


def _restore_indexes(conn: Connection) -> int:
    indexes = _deferred(conn)
    if indexes is None:
        return 0
    for _name, sql in indexes:
        conn.exec_driver_sql(sql)
    conn.execute(delete(schema.index_meta).where(schema.index_meta.c.key == DEFERRED_INDEXES_KEY))
    return len(indexes)


def bind_to_chain(engine: Engine, chain_id: int, token: str, start_block: int, network: str = "") -> None:
    """Records which chain and token this database indexes, or refuses (IndexMismatchError) if it already
    indexes something else: rows of two tokens must never mix."""
    wanted = {"chain_id": str(chain_id), "token": token, "start_block": str(start_block)}
    with engine.begin() as conn:
        meta = read_meta(conn)
        if not meta:
            rows = [{"key": k, "value": v} for k, v in {**wanted, "network": network}.items()]
            conn.execute(insert(schema.index_meta), rows)
            return
        differs = {k: (meta.get(k), v) for k, v in wanted.items() if meta.get(k) != v}
        if differs:
            detail = ", ".join(f"{k} {old} (database) vs {new} (now)" for k, (old, new) in differs.items())
            raise IndexMismatchError(
                f"{describe(engine)} indexes another deployment: {detail}. Use another --db, or --reset to "
                "drop its rows and index this deployment from scratch"
            )


def reset(engine: Engine) -> None:
    """Empties every table (events, blocks, checkpoint, meta, and what is derived from them): the next run
    indexes from the start block. The auditors' dispositions stay (they are append-only)."""
    with engine.begin() as conn:
        _restore_indexes(conn)  # their DDL is in index_meta, about to be emptied
        for table in (
            *schema.EVENT_TABLES,
            schema.blocks,
            schema.checkpoint,
            schema.index_meta,
            *casework.DERIVED_TABLES,
        ):
            if table is not casework.derived_state:  # its row stays: a rollback locks it (_lower_derived)
                conn.execute(delete(table))
        conn.execute(update(casework.derived_state).values(block_number=-1, settings=""))


# --- checkpoint, writes, rollback ------------------------------------------------------------------------------


def read_checkpoint(conn: Connection) -> tuple[int, str] | None:
    """(block number, block hash) of the last fully indexed block, or None before the first commit."""
    row = conn.execute(
        select(schema.checkpoint.c.block_number, schema.checkpoint.c.block_hash).where(schema.checkpoint.c.id == 1)
    ).first()
    return (int(row[0]), row[1]) if row else None


def _set_checkpoint(conn: Connection, number: int, block_hash: str) -> None:
    values = {"block_number": number, "block_hash": block_hash, "updated_at": datetime.now(UTC)}
    done = conn.execute(update(schema.checkpoint).where(schema.checkpoint.c.id == 1).values(**values))
    if done.rowcount == 0:
        conn.execute(insert(schema.checkpoint).values(id=1, **values))


RowGroups = Mapping[tuple[str, tuple[str, ...]], Sequence[tuple[Any, ...]]]
"""Rows to insert: (table, columns) -> row tuples in that column order (what ``LogDecoder.decode_all`` gives)."""


def insert_rows(conn: Connection, table: str, columns: Sequence[str], rows: Sequence[tuple[Any, ...]]) -> None:
    """Bulk insert on the connection's transaction, below SQLAlchemy's per-row parameter processing (the hot
    path of indexing): ``executemany`` of one prepared INSERT on SQLite, ``COPY ... FROM STDIN`` on PostgreSQL.

    Values must already be what the column stores: ints (above 2**63-1 as decimal text, see
    ``schema.Amount``), bools, strings.
    """
    if not rows:
        return
    quote = conn.dialect.identifier_preparer.quote
    names = ", ".join(quote(c) for c in columns)
    if conn.dialect.name == "postgresql":
        # psycopg's connection (the driver of every PostgreSQL URL, see parse_db_url): COPY is its own API.
        partitions.ensure_for_rows(conn, table, columns, rows)  # a new month's partition before its rows
        raw: Any = conn.connection.driver_connection
        with raw.cursor() as cursor, cursor.copy(f"COPY {quote(table)} ({names}) FROM STDIN") as copy:
            for row in rows:
                copy.write_row(row)
        return
    marks = ", ".join("?" for _ in columns)
    conn.exec_driver_sql(f"INSERT INTO {quote(table)} ({names}) VALUES ({marks})", list(rows))


def commit_range(
    engine: Engine,
    rows: RowGroups,
    blocks: Iterable[Mapping[str, Any]],
    checkpoint: tuple[int, str],
    prune_below: int | None = None,
) -> None:
    """Writes the events of a block range, its block rows and the new checkpoint in ONE transaction: after a
    crash either all of them are there or none, so a restart from the checkpoint neither skips nor repeats.

    `blocks` are blocks of the range only: nothing above the checkpoint is ever stored (a rollback removes it).
    `prune_below`: drop stored blocks without events below this number (outside the reorg window).
    """
    block_rows = list(blocks)
    try:
        with engine.begin() as conn:
            for (table, columns), table_rows in rows.items():
                insert_rows(conn, table, columns, table_rows)
            if block_rows:
                conn.execute(insert(schema.blocks), block_rows)
            if prune_below is not None:
                conn.execute(
                    delete(schema.blocks)
                    .where(schema.blocks.c.number < prune_below)
                    .where(schema.blocks.c.event_count == 0)
                )
            _set_checkpoint(conn, *checkpoint)
    except (IntegrityError, UniqueViolation) as err:
        # rows of this range exist although the checkpoint is below it: someone else writes here too
        raise DatabaseError(
            f"rows up to block {checkpoint[0]} are already in {describe(engine)}: is another "
            f"indexer writing to this database? ({_first_line(err)})"
        ) from err


def stored_blocks_desc(conn: Connection, below_or_at: int, limit: int) -> list[tuple[int, str]]:
    """Up to `limit` stored (number, hash), highest first, at or below `below_or_at`."""
    q = (
        select(schema.blocks.c.number, schema.blocks.c.hash)
        .where(schema.blocks.c.number <= below_or_at)
        .order_by(schema.blocks.c.number.desc())
        .limit(limit)
    )
    return [(int(n), h) for n, h in conn.execute(q)]


def rollback_to(engine: Engine, ancestor: int, ancestor_hash: str | None) -> int:
    """Deletes every event and block above `ancestor` and moves the checkpoint there, in one transaction.
    Returns how many event rows were removed. With `ancestor_hash` None (nothing in common: the reorg is
    deeper than anything stored) the checkpoint row itself is removed and indexing restarts at the start."""
    removed = 0
    with engine.begin() as conn:
        _lower_derived(conn, ancestor)
        for table in schema.EVENT_TABLES:
            removed += conn.execute(delete(table).where(table.c.block_number > ancestor)).rowcount or 0
        conn.execute(delete(schema.blocks).where(schema.blocks.c.number > ancestor))
        if ancestor_hash is None:
            conn.execute(delete(schema.checkpoint))
        else:
            _set_checkpoint(conn, ancestor, ancestor_hash)
    return removed


def _lower_derived(conn: Connection, ancestor: int) -> None:
    """Tells ``audit.derive`` what a rollback to `ancestor` removes: its checkpoint goes down to the ancestor
    (taking its row first, so a refresh in progress finishes before the rows go) and the groups of the removed
    payments are recorded for it to recompute; their flags go now."""
    state, dirty, p = casework.derived_state, casework.derived_dirty, schema.payments
    # every time, even when already at or below: the row lock is what waits for a refresh in progress
    lowered = case((state.c.block_number > ancestor, ancestor), else_=state.c.block_number)
    conn.execute(update(state).values(block_number=lowered))
    conn.execute(
        insert(dirty).from_select(
            ["payer", "program_id", "period"],
            select(p.c.payer, p.c.program_id, p.c.period).where(p.c.block_number > ancestor).distinct(),
        )
    )
    conn.execute(insert(dirty).values(dict(zip(("payer", "program_id", "period"), casework.FLOWS_DIRTY))))
    conn.execute(delete(casework.payment_flags).where(casework.payment_flags.c.block_number > ancestor))


def count_events(conn: Connection) -> int:
    """Rows in all event tables."""
    return sum(int(conn.execute(select(func.count()).select_from(t)).scalar_one()) for t in schema.EVENT_TABLES)

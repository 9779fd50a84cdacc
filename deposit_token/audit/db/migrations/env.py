"""Alembic environment of the audit database.

Run programmatically by :func:`deposit_token.audit.db.store.upgrade` (every command migrates the database to
``head`` before using it), which hands over an open connection in ``config.attributes["connection"]``; the
``alembic`` command line works too (``-x url=...``), e.g. to write a new revision with ``--autogenerate``.
"""

from __future__ import annotations

from alembic import context
from sqlalchemy import Connection, create_engine

from deposit_token.audit.db.autogenerate import include_object
from deposit_token.audit.db.schema import metadata

config = context.config


def _run(connection: Connection) -> None:
    context.configure(
        connection=connection,
        target_metadata=metadata,
        # SQLite cannot ALTER most things in place: batch mode copies the table instead.
        render_as_batch=connection.dialect.name == "sqlite",
        compare_type=True,
        # the monthly partitions and the tables other layers describe are not proposed for dropping
        include_object=include_object,
    )
    with context.begin_transaction():
        context.run_migrations()


connection = config.attributes.get("connection")
if connection is not None:
    _run(connection)
else:
    url = context.get_x_argument(as_dictionary=True).get("url") or config.get_main_option("sqlalchemy.url")
    if not url:
        raise SystemExit("give the database with -x url=sqlite:///path or -x url=postgresql+psycopg://...")
    engine = create_engine(url)
    with engine.begin() as conn:
        _run(conn)

"""What the read-only audit commands (report, flags, export, public) share: --db/--network without connecting
to any chain, month and program filters, --format, and one-line errors.

They never create or migrate a database: a missing SQLite file or an empty database is an error that says to
run ``ape run audit index`` first.
"""

from __future__ import annotations

import functools
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any, TypeVar, cast

import click
from sqlalchemy import Connection

from deposit_token.audit.db import store
from deposit_token.audit.query.common import AuditDatabaseError, Filters, open_audit_database, parse_period, snapshot
from deposit_token.chain import deployment
from deposit_token.cli.audit.common import DB_HELP, check_db

F = TypeVar("F", bound=Callable[..., Any])

FALLBACK_NETWORK = "ethereum:local:foundry"


def default_network() -> str:
    """The name of ape's default network (``deployment.network_name_of_choice``), read from its configuration:
    no connection."""
    try:
        return deployment.network_name_of_choice(None)
    except Exception:  # noqa: BLE001 - any ape configuration problem: the documented default
        return FALLBACK_NETWORK


def database_options(f: F) -> F:
    f = click.option(
        "--network",
        "network",
        metavar="CHOICE",
        default=None,
        help="Only picks the default database file, audit/<network>.sqlite, named as `audit index` "
        "names it (no connection is made; default: ape's default network, e.g. "
        "ethereum:local:foundry).",
    )(f)
    f = click.option("--db", "db", metavar="PATH|URL", default=None, help=DB_HELP, callback=check_db)(f)
    return f


def _period(ctx: click.Context, param: click.Parameter, value: str | None) -> int | None:
    if value is None:
        return None
    try:
        return parse_period(value)
    except ValueError as err:
        raise click.BadParameter(str(err), ctx, param) from None


def filter_options(f: F) -> F:
    """--program, --since and --until, handed to the command as one checked ``filters: Filters`` argument."""

    @functools.wraps(f)
    def with_filters(*args: Any, programs: tuple[int, ...], since: int | None, until: int | None, **kw: Any) -> Any:
        return f(*args, filters=make_filters(programs, since, until), **kw)

    g = cast(F, with_filters)
    g = click.option(
        "--until",
        callback=_period,
        metavar="YYYY-MM",
        help="Last month included (each program's own time zone, KST by default).",
    )(g)
    g = click.option("--since", callback=_period, metavar="YYYY-MM", help="First month included.")(g)
    g = click.option(
        "--program",
        "programs",
        type=click.IntRange(1, 65535),
        multiple=True,
        metavar="ID",
        help="Only this program (repeat for several).",
    )(g)
    return g


def format_option(choices: tuple[str, ...], default: str, help_text: str) -> Callable[[F], F]:
    return click.option(
        "--format",
        "fmt",
        type=click.Choice(choices, case_sensitive=False),
        default=default,
        show_default=True,
        help=help_text,
    )


def make_filters(programs: tuple[int, ...], since: int | None, until: int | None) -> Filters:
    if since is not None and until is not None and since > until:
        raise click.BadParameter(
            f"--since {since // 100}-{since % 100:02d} is after --until {until // 100}-{until % 100:02d}",
            param_hint="--since/--until",
        )
    return Filters(tuple(sorted(set(programs))), since, until)


def resolve_db(db: str | None, network: str | None) -> str:
    if db:
        return db
    try:
        name = deployment.network_name_of_choice(network) if network else default_network()
        return store.default_db_url(deployment.network_file_stem(name))
    except ValueError as err:  # a network ape does not know, or a malformed choice
        raise click.BadParameter(str(err), param_hint="--network") from None


@contextmanager
def reading(db: str | None, network: str | None) -> Iterator[Connection]:
    """A consistent read-only snapshot of the audit database; errors become one-line messages (exit 1)."""
    try:
        engine = open_audit_database(resolve_db(db, network))
    except AuditDatabaseError as err:
        raise click.ClickException(str(err)) from None
    try:
        with snapshot(engine) as conn:
            yield conn
    finally:
        engine.dispose()

"""``ape run audit public``: anonymised aggregates for citizens."""

from __future__ import annotations

import click

from deposit_token.audit.query.common import Filters
from deposit_token.audit.query.public import MIN_CELL_COUNT, public_aggregates, public_section
from deposit_token.audit.query.render import render
from deposit_token.cli.audit._reading import database_options, filter_options, format_option, reading


@click.command("public", short_help="Anonymised totals per department x category x month, small cells suppressed")
@database_options
@filter_options
@click.option(
    "--min-count",
    type=click.IntRange(MIN_CELL_COUNT),
    default=MIN_CELL_COUNT,
    show_default=True,
    metavar="N",
    help=f"Suppress cells with fewer payments than this (never below {MIN_CELL_COUNT}).",
)
@format_option(("table", "csv", "json"), "table", "table, csv or json.")
def command(
    db: str | None,
    network: str | None,
    filters: Filters,
    min_count: int,
    fmt: str,
) -> None:
    """Payments per department x merchant category x month (count and total), for publication.

    No addresses, hashes or vendor names; a cell with fewer than N payments is shown as suppressed, without
    count or amount; no totals are given (they would let a suppressed cell be recovered by subtraction).
    """
    with reading(db, network) as conn:
        cells = public_aggregates(conn, filters, min_count)
    # The metadata stays out of the public output: the checkpoint is harmless, but the less the better.
    render([public_section(cells, min_count)], fmt, {"min_count": min_count, "filters": filters.as_dict()})

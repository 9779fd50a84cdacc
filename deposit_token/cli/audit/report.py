"""``ape run audit report``: spend by department, program, category, vendor and month; allocated vs spent vs
returned vs redeemed; top vendors; privileged actions through Safes and their approvers."""

from __future__ import annotations

import click

from deposit_token.audit.query.common import Filters, checkpoint_info
from deposit_token.audit.query.render import render
from deposit_token.audit.query.reports import DIMENSIONS, SECTIONS, build_report, report_sections
from deposit_token.cli.audit._reading import database_options, filter_options, format_option, reading


@click.command("report", short_help="Spend by department, program, category, vendor, month; flows; top vendors")
@database_options
@filter_options
@click.option(
    "--section",
    "sections",
    type=click.Choice(SECTIONS),
    multiple=True,
    help="spend (by dimension), flows (allocated vs spent vs returned vs redeemed, per program), "
    "vendors (top vendors) or approvals (privileged actions through Safes and who approved them). Repeat for "
    "several; default: all. CSV takes exactly one.",
)
@click.option(
    "--by",
    "dimensions",
    type=click.Choice(DIMENSIONS),
    multiple=True,
    help="Dimensions of the spend section (repeat; default: all five).",
)
@click.option(
    "--top",
    type=click.IntRange(0),
    default=10,
    show_default=True,
    metavar="N",
    help="Vendors listed in the vendors section (0 = all).",
)
@format_option(("table", "csv", "json"), "table", "table (for people), csv (one section) or json.")
def command(
    db: str | None,
    network: str | None,
    filters: Filters,
    sections: tuple[str, ...],
    dimensions: tuple[str, ...],
    top: int,
    fmt: str,
) -> None:
    """The auditors' spending report over the indexed payments.

    Each payment counts for the department its payer had when paying, and for its month in the program's time
    zone (KST unless the program says otherwise). Amounts are KRW.

    \b
    Examples:
      ape run audit report
      ape run audit report --section spend --by department --format csv > spend.csv
      ape run audit report --program 1 --since 2030-01 --until 2030-03 --format json
    """
    chosen = list(dict.fromkeys(sections)) or list(SECTIONS)
    if fmt == "csv" and len(chosen) != 1:
        raise click.UsageError(
            "CSV holds one table: choose one section with --section spend|flows|vendors|approvals "
            "(or use --format json for all of them)"
        )
    with reading(db, network) as conn:
        report = build_report(conn, filters, list(dict.fromkeys(dimensions)) or DIMENSIONS, top or None)
        meta = {"checkpoint": checkpoint_info(conn), "filters": filters.as_dict()}
    render(report_sections(report, chosen), fmt, meta)

"""``ape run audit export DIR``: every table of the audit database as CSV or JSON Lines."""

from __future__ import annotations

import click
from rich.console import JustifyMethod
from rich.table import Table

from deposit_token.audit.query.export import export_all
from deposit_token.audit.query.render import console
from deposit_token.cli.audit._reading import database_options, format_option, reading


@click.command("export", short_help="Write every table as CSV or JSON Lines (with a manifest) to a directory")
@click.argument("directory", type=click.Path(file_okay=False, writable=True))
@database_options
@format_option(("csv", "jsonl"), "csv", "csv (header row) or jsonl (JSON Lines, one object per row).")
@click.option("--table", "tables", multiple=True, metavar="NAME", help="Only this table (repeat; default: all).")
@click.option("--force", is_flag=True, default=False, help="Replace the files of an earlier export in DIRECTORY.")
def command(
    directory: str, db: str | None, network: str | None, fmt: str, tables: tuple[str, ...], force: bool
) -> None:
    """Export every table to DIRECTORY (created if missing): one file per table, rows in chain order, amounts as
    exact integers, and manifest.json with row counts, columns, SHA-256 of each file and the checkpoint.

    All tables are read in one consistent snapshot, even while the indexer runs.
    """
    with reading(db, network) as conn:
        try:
            written = export_all(conn, directory, fmt, list(tables) or None, overwrite=force)
        except ValueError as err:
            raise click.ClickException(str(err)) from None
    summary = Table(title=f"Exported to {directory}", title_justify="left", header_style="bold")
    columns: tuple[tuple[str, JustifyMethod], ...] = (
        ("table", "left"),
        ("file", "left"),
        ("rows", "right"),
        ("sha256", "left"),
    )
    for name, justify in columns:
        summary.add_column(name, justify=justify, no_wrap=True)
    for t in written:
        summary.add_row(t.name, t.file, f"{t.rows:,}", t.sha256)
    out = console()
    out.print(summary)
    out.print(f"{sum(t.rows for t in written):,} rows in {len(written)} files, manifest.json")

"""The auditors' tool: ``ape run audit <command> --network ... [--db URL]``.

    ape run audit index --network ethereum:local:foundry [--follow]
    ape run audit verify --network ethereum:local:foundry
    ape run audit --help

Each subcommand is a module of ``deposit_token/audit/commands`` (found there, so adding one touches nothing
here); the work is done by the library in ``deposit_token/audit``.
"""

from __future__ import annotations

import click

from deposit_token.audit.commands import discover


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
def cli() -> None:
    """Audit tooling: index the token's events into SQLite/PostgreSQL, verify them against the chain, and
    report on them. The database defaults to audit/<network>.sqlite (e.g. audit/ethereum-pilot-node.sqlite); --db
    takes a SQLite file path or a sqlite:/// or postgresql:// URL, the same in every subcommand."""


for _command in discover():
    cli.add_command(_command)

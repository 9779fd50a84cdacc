"""The auditors' tool, ``ape run audit <command> --network ... [--db URL]``:

    ape run audit index --network ethereum:local:foundry [--follow]
    ape run audit verify --network ethereum:local:foundry
    ape run audit --help

Every module of this package that defines ``command`` (a click command) is one subcommand of ``cli``, found by
:func:`discover`, so a new subcommand is a new module and nothing else changes. The work is done by the library
in ``deposit_token.audit`` (whose ``__main__`` is the indexer without ape, ``python -m deposit_token.audit``).

Shared options and the resolution of network, deployment record and database are in ``common``.
"""

from __future__ import annotations

import importlib
import pkgutil

import click


def discover() -> list[click.Command]:
    """The ``command`` of every module in this package, sorted by name (``common`` has none)."""
    found: dict[str, click.Command] = {}
    for info in pkgutil.iter_modules(__path__):
        if info.name.startswith("_"):
            continue
        module = importlib.import_module(f"{__name__}.{info.name}")
        command = getattr(module, "command", None)
        if isinstance(command, click.Command):
            found[command.name or info.name] = command
    return [found[name] for name in sorted(found)]


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
def cli() -> None:
    """Audit tooling: index the token's events into SQLite/PostgreSQL, verify them against the chain, and
    report on them. The database defaults to audit/<network>.sqlite (e.g. audit/ethereum-pilot-node.sqlite); --db
    takes a SQLite file path or a sqlite:/// or postgresql:// URL, the same in every subcommand."""


for _command in discover():
    cli.add_command(_command)

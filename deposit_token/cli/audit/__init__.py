"""Subcommands of ``ape run audit``: every module of this package that defines ``command`` (a click command)
is one. scripts/audit.py finds them here, so a new subcommand is a new module and nothing else changes.

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

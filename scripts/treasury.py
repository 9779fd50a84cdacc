"""`ape run treasury`: ape runs scripts/<name>.py; the command itself is deposit_token/cli/treasury.py."""

from deposit_token.cli.treasury import cli

__all__ = ["cli"]

"""`ape run accounts`: ape runs scripts/<name>.py; the command itself is deposit_token/cli/accounts.py."""

from deposit_token.cli.accounts import cli

__all__ = ["cli"]

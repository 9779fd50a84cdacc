"""`ape run safe`: ape runs scripts/<name>.py; the command itself is deposit_token/cli/safe.py."""

from deposit_token.cli.safe import cli

__all__ = ["cli"]

"""`ape run vendor`: ape runs scripts/<name>.py; the command itself is deposit_token/cli/vendor.py."""

from deposit_token.cli.vendor import cli

__all__ = ["cli"]

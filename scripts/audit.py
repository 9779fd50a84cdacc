"""`ape run audit`: ape runs scripts/<name>.py; the command itself is deposit_token/cli/audit/."""

from deposit_token.cli.audit import cli

__all__ = ["cli"]

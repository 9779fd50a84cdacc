"""`ape run demo`: ape runs scripts/<name>.py; the command itself is deposit_token/cli/demo.py."""

from deposit_token.cli.demo import cli

__all__ = ["cli"]

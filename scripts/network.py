"""`ape run network`: ape runs scripts/<name>.py; the command itself is deposit_token/cli/network.py."""

from deposit_token.cli.network import cli

__all__ = ["cli"]

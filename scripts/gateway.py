"""`ape run gateway`: ape runs scripts/<name>.py; the command itself is deposit_token/cli/gateway.py."""

from deposit_token.cli.gateway import cli

__all__ = ["cli"]

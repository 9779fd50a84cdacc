"""`ape run deploy`: ape runs scripts/<name>.py; the command itself is deposit_token/cli/deploy.py."""

from deposit_token.cli.deploy import cli

__all__ = ["cli"]

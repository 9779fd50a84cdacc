"""`ape run wallet`: ape runs scripts/<name>.py; the command itself is deposit_token/cli/wallet.py."""

from deposit_token.cli.wallet import cli

__all__ = ["cli"]

"""Running `ape run treasury ...` in-process against the test session's Anvil: the TEST::n accounts by role,
fresh addresses, and `Cli`, which runs a command and checks that a refusal sent nothing (the `cli` fixture of
tests/ops/conftest.py makes one)."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from click.testing import CliRunner
from eth_utils import keccak, to_checksum_address

from deposit_token.cli import treasury as treasury_command

ADMIN, ISSUER, MANAGER, REGISTRAR, COMPLIANCE, OUTSIDER = (f"TEST::{i}" for i in (0, 1, 2, 3, 4, 7))

SCRIPT = treasury_command  # the click group of `ape run treasury`


def fresh(label: str) -> str:
    """A new, never-registered address."""
    return to_checksum_address(keccak(text=f"treasury-test:{label}")[12:])


@dataclass
class Cli:
    uri: str
    deployments: Path
    chain: object

    def __call__(self, *args: str, account: str | None = None, network: bool = True):
        extra = (["--network", self.uri] if network else []) + (["--account", account] if account else [])
        if "--" in args:  # options must come before "--"
            cut = args.index("--")
            return CliRunner().invoke(SCRIPT.cli, [*args[:cut], *extra, *args[cut:]])
        return CliRunner().invoke(SCRIPT.cli, [*args, *extra])

    def ok(self, *args: str, account: str | None = None):
        result = self(*args, account=account)
        assert result.exit_code == 0, result.output
        assert "Traceback" not in result.output
        return result

    def refused(self, *args: str, account: str | None = None, code: int = 1, balances=(), network: bool = True) -> str:
        """Runs a command that must fail with a clear message, produce no block and move no balance."""
        height = self.chain.blocks.height
        before = [b() for b in balances]
        result = self(*args, account=account, network=network)
        assert result.exit_code == code, result.output
        assert "Traceback" not in result.output
        assert self.chain.blocks.height == height, "a refused command produced a block"
        assert [b() for b in balances] == before
        return " ".join(result.output.split())

"""Fixtures of the operators' command tests: `cli` runs `ape run treasury ...` in-process, `run` runs any
`ape run <script> ...` as a subprocess, both against the test session's Anvil with a deployment record of the
session's token."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
from support.treasury import Cli

from deposit_token.chain import deployment
from deposit_token.paths import ROOT

LOCAL = "ethereum:local:foundry"


@pytest.fixture
def cli(system, chain, networks, tmp_path, monkeypatch) -> Cli:
    """The deployment record of the system token for the session's Anvil, under its URI and under
    ethereum:local:foundry (for subprocesses that reach it through APE_FOUNDRY_HOST)."""
    uri = networks.provider.uri
    folder = tmp_path / "deployments"
    for choice in (uri, "ethereum:local:foundry"):
        deployment.write_record(
            deployment.record_path(choice, folder),
            {"token": system.token.address, "chain_id": chain.chain_id, "network": choice, "block": {"number": 0}},
        )
    monkeypatch.setenv(deployment.DEPLOYMENTS_ENV, str(folder))
    return Cli(uri, folder, chain)


@pytest.fixture
def run(system, chain, tmp_path, accounts):
    """Runs `ape run <script> <command> <args>` as a subprocess, as an official or a vendor would, against the
    test's own Anvil (APE_FOUNDRY_HOST), so ape's per-test revert undoes what it did."""
    record = {"network": LOCAL, "chain_id": chain.chain_id, "token": system.token.address}
    deployment.write_record(deployment.record_path(LOCAL, tmp_path), record)
    index = {a.address: i for i, a in enumerate(accounts)}
    env = dict(os.environ, APE_FOUNDRY_HOST=chain.provider.uri, **{deployment.DEPLOYMENTS_ENV: str(tmp_path)})
    ape = Path(sys.executable).with_name("ape")

    def invoke(script: str, command: str, *args: str, account=None):
        extra = ["--account", f"TEST::{index[account.address]}"] if account is not None else []
        return subprocess.run(
            [str(ape), "run", script, command, "--network", LOCAL, *extra, *args],
            cwd=ROOT,
            env=env,
            capture_output=True,
            text=True,
            timeout=120,
        )

    return invoke

"""The README's "Run a pilot, step by step" is executed verbatim, so the guide cannot rot.

Every ```bash block between the README's pilot-walkthrough markers is run, in order, as one bash script
(`set -euo pipefail`), from the repository's folder, exactly as a reader would paste it. Only the places the
commands write to are moved into a temporary folder, through the variables the project documents: the node's
data directory, the deployment records, the audit databases, ape's keystore and the walkthrough's CSV files.
The passphrase the guide asks for is typed on standard input. The rehearsal chain uses the pilot's own port
(8545, as ape-config.yaml declares it), so that port must be free.
"""

from __future__ import annotations

import os
import secrets
import subprocess

import pytest
from support.readme import isolated_env, walkthrough_script

from deposit_token.chain import node
from deposit_token.ops import accounts
from deposit_token.paths import ROOT

WALKTHROUGH_TIMEOUT = 900


def test_the_readme_pilot_walkthrough_runs_verbatim(tmp_path):
    script = walkthrough_script("pilot-walkthrough")
    if node.port_in_use(node.DEFAULT_HOST, node.DEFAULT_PORT):
        reason = f"port {node.DEFAULT_PORT} is busy: the walkthrough's pilot node needs it"
        if os.environ.get("CI") == "true":
            pytest.fail(reason)
        pytest.skip(reason)
    passphrase = secrets.token_urlsafe(18)
    try:
        done = subprocess.run(
            ["bash", "-euo", "pipefail", "-c", script],
            cwd=ROOT,
            env=isolated_env(tmp_path),
            input=passphrase + "\n",
            capture_output=True,
            text=True,
            timeout=WALKTHROUGH_TIMEOUT,
        )
    finally:
        node.stop(node.config_for(tmp_path / "node"))
    out = done.stdout + done.stderr
    assert done.returncode == 0, out[-6000:]
    assert passphrase not in out
    assert "Traceback" not in out
    created = accounts.list_aliases(tmp_path / "ape-data" / "accounts")
    assert {"admin", "bank", "budget", "official1", "restaurant"} <= set(created)
    for seen in ("Role granted", "Program #1 created", "Vendor registered", "45,000", "no mismatch"):
        assert seen in out, f"{seen!r} missing from the walkthrough's output:\n{out[-6000:]}"
    assert (tmp_path / "deployments" / "ethereum-pilot-node.json").is_file()
    assert (tmp_path / "audit" / "ethereum-pilot-node.sqlite").is_file()

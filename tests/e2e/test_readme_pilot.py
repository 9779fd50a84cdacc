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
import re
import secrets
import subprocess
from pathlib import Path

import pytest

from deposit_token.audit.db.store import AUDIT_DIR_ENV
from deposit_token.chain import deployment, node
from deposit_token.ops import accounts
from deposit_token.paths import ROOT

BEGIN, END = "<!-- pilot-walkthrough -->", "<!-- /pilot-walkthrough -->"
WALKTHROUGH_TIMEOUT = 900


def walkthrough_script(readme: str) -> str:
    """The bash blocks between the markers, joined in order."""
    assert readme.count(BEGIN) == 1 and readme.count(END) == 1, "the README must mark its walkthrough once"
    section = readme.split(BEGIN, 1)[1].split(END, 1)[0]
    blocks = re.findall(r"^```bash\n(.*?)^```", section, flags=re.S | re.M)
    assert blocks, "the walkthrough has no ```bash block"
    return "\n".join(blocks)


def isolated_env(tmp: Path) -> dict[str, str]:
    """The reader's environment, with every place the walkthrough writes to moved under `tmp`."""
    data = tmp / "ape-data"
    data.mkdir()
    packages = Path(os.environ.get("APE_DATA_FOLDER") or Path.home() / ".ape") / "packages"
    if packages.is_dir():  # compiled dependencies: ape would otherwise unpack OpenZeppelin again
        (data / "packages").symlink_to(packages)
    path = os.pathsep.join([str(ROOT / ".venv" / "bin"), str(ROOT / "node_modules" / ".bin"), os.environ["PATH"]])
    env = {k: v for k, v in os.environ.items() if not k.startswith("APE_ACCOUNTS_")}
    env.update(
        {
            "PATH": path,
            "APE_DATA_FOLDER": str(data),
            node.NETWORK_DIR_ENV: str(tmp / "node"),
            deployment.DEPLOYMENTS_ENV: str(tmp / "deployments"),
            AUDIT_DIR_ENV: str(tmp / "audit"),
            "PILOT_FILES": str(tmp / "files"),
        }
    )
    return env


def test_the_readme_pilot_walkthrough_runs_verbatim(tmp_path):
    script = walkthrough_script((ROOT / "README.md").read_text(encoding="utf-8"))
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

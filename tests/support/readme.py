"""Running a README walkthrough verbatim: the ```bash blocks between a pair of markers, as one bash script, in
an environment where every place the commands write to is moved under a temporary folder (through the variables
the project documents), so a test never touches the reader's keystore, records or chain data."""

from __future__ import annotations

import os
import re
import secrets
import subprocess
from pathlib import Path

import pytest

from deposit_token.audit.db.store import AUDIT_DIR_ENV
from deposit_token.chain import deployment, node
from deposit_token.chain.geth.cluster import GETH_DIR_ENV
from deposit_token.gateway.server import DATA_DIR_ENV as GATEWAY_DIR_ENV
from deposit_token.paths import ROOT
from deposit_token.processes import port_in_use

README = ROOT / "README.md"
WALKTHROUGH_TIMEOUT = 900


def walkthrough_script(marker: str, readme: str | None = None) -> str:
    """The bash blocks between ``<!-- marker -->`` and ``<!-- /marker -->``, joined in order."""
    text = README.read_text(encoding="utf-8") if readme is None else readme
    begin, end = f"<!-- {marker} -->", f"<!-- /{marker} -->"
    assert text.count(begin) == 1 and text.count(end) == 1, f"the README must mark its {marker} once"
    section = text.split(begin, 1)[1].split(end, 1)[0]
    blocks = re.findall(r"^```bash\n(.*?)^```", section, flags=re.S | re.M)
    assert blocks, f"the {marker} has no ```bash block"
    return "\n".join(blocks)


def isolated_env(tmp: Path) -> dict[str, str]:
    """The reader's environment, with every place a walkthrough writes to moved under `tmp`."""
    data = tmp / "ape-data"
    data.mkdir()
    packages = Path(os.environ.get("APE_DATA_FOLDER") or Path.home() / ".ape") / "packages"
    if packages.is_dir():  # compiled dependencies: ape would otherwise unpack OpenZeppelin again
        (data / "packages").symlink_to(packages)
    path = os.pathsep.join([str(ROOT / ".venv" / "bin"), str(ROOT / "node_modules" / ".bin"), os.environ["PATH"]])
    env = {
        k: v
        for k, v in os.environ.items()
        if not k.startswith("APE_ACCOUNTS_") and k not in ("DEPOSIT_TOKEN_RPC_KEY", "DEPOSIT_TOKEN_ENGINE")
    }
    env.update(
        {
            "PATH": path,
            "APE_DATA_FOLDER": str(data),
            node.NETWORK_DIR_ENV: str(tmp / "node"),
            GETH_DIR_ENV: str(tmp / "geth"),
            GATEWAY_DIR_ENV: str(tmp / "gateway"),
            deployment.DEPLOYMENTS_ENV: str(tmp / "deployments"),
            AUDIT_DIR_ENV: str(tmp / "audit"),
            "PILOT_FILES": str(tmp / "files"),
        }
    )
    return env


def require_free_ports(ports: tuple[int, ...], what: str) -> None:
    """Skips the test (fails it under CI=true) when one of the documented ports the walkthrough uses is busy."""
    busy = [port for port in ports if port_in_use("127.0.0.1", port)]
    if busy:
        reason = f"port(s) {', '.join(map(str, busy))} busy: {what} needs them"
        if os.environ.get("CI") == "true":
            pytest.fail(reason)
        pytest.skip(reason)


def run_walkthrough(marker: str, tmp: Path) -> tuple[str, str]:
    """Runs the walkthrough as a reader would paste it (`set -euo pipefail`, from the repository's folder), typing
    a fresh passphrase on standard input; (its output, the passphrase). Fails the test if it exits non-zero,
    shows a traceback or the passphrase."""
    passphrase = secrets.token_urlsafe(18)
    done = subprocess.run(
        ["bash", "-euo", "pipefail", "-c", walkthrough_script(marker)],
        cwd=ROOT,
        env=isolated_env(tmp),
        input=passphrase + "\n",
        capture_output=True,
        text=True,
        timeout=WALKTHROUGH_TIMEOUT,
    )
    out = done.stdout + done.stderr
    assert done.returncode == 0, out[-6000:]
    assert passphrase not in out
    assert "Traceback" not in out
    return out, passphrase

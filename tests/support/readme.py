"""Running a README walkthrough verbatim: the ```bash blocks between a pair of markers, as one bash script, in
an environment where every place the commands write to is moved under a temporary folder (through the variables
the project documents), so a test never touches the reader's keystore, records or chain data."""

from __future__ import annotations

import os
import re
from pathlib import Path

from deposit_token.audit.db.store import AUDIT_DIR_ENV
from deposit_token.chain import deployment, node
from deposit_token.chain.geth.cluster import GETH_DIR_ENV
from deposit_token.gateway.server import DATA_DIR_ENV as GATEWAY_DIR_ENV
from deposit_token.paths import ROOT

README = ROOT / "README.md"


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

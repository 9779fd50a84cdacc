"""``python -m deposit_token.gateway SETTINGS.json``: the detached gateway process `start_process` starts (no
ape, no click: it starts in a fraction of a second). Errors are one sentence and exit code 1."""

from __future__ import annotations

import sys
from pathlib import Path

from deposit_token.errors import DepositTokenError
from deposit_token.gateway.control import GatewayError, read_config, run
from deposit_token.gateway.server import Gateway


def main(argv: list[str]) -> int:
    if len(argv) != 1:
        print("usage: python -m deposit_token.gateway <data_dir>/gateway.json", file=sys.stderr)
        return 2
    path = Path(argv[0])
    try:
        config = read_config(path.parent) if path.name == "gateway.json" else None
        if config is None:
            raise GatewayError(f"{path} is not a gateway.json settings file")

        def ready(gateway: Gateway) -> None:
            print(gateway.describe(), flush=True)

        run(config, ready)
    except (DepositTokenError, OSError, ValueError) as err:
        print(f"gateway: {err}", file=sys.stderr, flush=True)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))

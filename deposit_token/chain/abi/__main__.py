"""``python -m deposit_token.chain.abi export [--check]``: writes the shipped ABI (``deposit_token.json``) from
ape's compiled manifest; ``--check`` only compares and exits 1 if the shipped file is stale."""

from __future__ import annotations

import argparse
import sys

from deposit_token.chain.abi import ABI_FILE, AbiError, from_manifest, render


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m deposit_token.chain.abi")
    parser.add_argument("command", choices=["export"])
    parser.add_argument("--check", action="store_true", help="compare only; exit 1 if the file is stale")
    args = parser.parse_args(argv)
    try:
        text = render(from_manifest())
    except AbiError as err:
        print(err, file=sys.stderr)
        return 2
    current = ABI_FILE.read_text(encoding="utf-8") if ABI_FILE.exists() else None
    if args.check:
        if current != text:
            print(f"{ABI_FILE} is stale: run `python -m deposit_token.chain.abi export`", file=sys.stderr)
            return 1
        return 0
    if current != text:
        ABI_FILE.write_text(text, encoding="utf-8")
        print(f"wrote {ABI_FILE}")
    return 0


if __name__ == "__main__":
    sys.exit(main())

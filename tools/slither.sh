#!/usr/bin/env bash
# Slither on the project's contracts, offline: forge compiles them with foundry.toml (solc = the solc-js shim
# toolchain/bin/solc, via-IR, optimizer 200 runs, paris; contracts/test skipped) into a temporary folder,
# then slither analyses that build. Findings only in dependencies (node_modules: OpenZeppelin) are left out.
#
#   tools/slither.sh                         # every detector, human-readable
#   tools/slither.sh --exclude-low --exclude-informational --exclude-optimization
#   tools/slither.sh --json report.json      # any other slither option is passed on
#
# tests/contracts/test_static_analysis.py runs the same analysis and fails on High/Medium findings.
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$root"
export PATH="$root/node_modules/.bin:$root/.venv/bin:$PATH"
command -v forge >/dev/null || { echo "forge not found: run npm ci (npm @foundry-rs/forge)" >&2; exit 2; }
command -v slither >/dev/null || { echo "slither not found: pip install -e '.[test]'" >&2; exit 2; }

build="$(mktemp -d "${TMPDIR:-/tmp}/slither-forge-XXXXXX")"
trap 'rm -rf "$build"' EXIT
export FOUNDRY_OUT="$build/out" FOUNDRY_CACHE_PATH="$build/cache"
# A build of its own, so that a failed compile stops here (crytic-compile would go on with older artifacts).
# The platform binary, if there: npm @foundry-rs/forge's node wrapper exits 0 even when forge fails.
forge="$(ls "$root"/node_modules/@foundry-rs/forge-*/bin/forge 2>/dev/null | head -n 1 || true)"
"${forge:-forge}" build --build-info --deny never >&2
ls "$FOUNDRY_OUT"/build-info/*.json >/dev/null 2>&1 || { echo "forge build wrote no build-info" >&2; exit 1; }
slither . --compile-force-framework foundry --foundry-ignore-compile --foundry-out-directory "$FOUNDRY_OUT" \
    --exclude-dependencies "$@"

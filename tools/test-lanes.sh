#!/usr/bin/env bash
# `make test`: the whole suite in three processes at once, so that it fits in CI's time on two cores.
#   geth       tests/geth: Geth networks of their own; they mostly wait for 1 s blocks
#   contracts  tests/contracts + tests/unit: CPU in forge, halmos, slither, Hypothesis
#   rest       everything else (ape subprocesses, PostgreSQL, the browser, the README walkthroughs)
# Each lane is an `ape test` session of its own (its own Anvil, PostgreSQL and free ports). The geth and
# contracts lanes' output follows the rest's; the exit status is non-zero if any lane failed.
set -uo pipefail
cd "$(dirname "$0")/.."
logs=$(mktemp -d)
trap 'rm -rf "$logs"' EXIT

ape test tests/geth -q --durations=5 >"$logs/geth" 2>&1 &
geth=$!
ape test tests/contracts tests/unit -q --durations=5 >"$logs/contracts" 2>&1 &
contracts=$!
ape test tests -q --durations=10 -m "not geth" --ignore=tests/contracts --ignore=tests/unit
rest=$?
wait "$contracts"
contracts_status=$?
wait "$geth"
geth_status=$?
echo "--- tests/contracts + tests/unit ---"
cat "$logs/contracts"
echo "--- tests/geth (Geth networks) ---"
cat "$logs/geth"
echo "lanes: rest $rest, contracts+unit $contracts_status, geth $geth_status (0 = passed)"
exit $((rest || contracts_status || geth_status))

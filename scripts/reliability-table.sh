#!/usr/bin/env bash
# Runs the fault tests (the cluster ones included) and the soak, and prints
# the README's reliability tables from the RELIABILITY and REDELIVERY lines
# they log. AMQPRPC_SOAK sets the soak's length (default 60s).
set -euo pipefail
cd "$(dirname "$0")/.."
export CI=1 AMQPRPC_SOAK=${AMQPRPC_SOAK:-60s}
out=$(mktemp)
trap 'rm -f "$out"' EXIT
go test -race -count=1 -timeout 20m -v \
  -run 'TestBrokerFaults|TestStalledNetwork|TestConfirmsSurviveAStalledWrite|TestRollingRestartUnderLoad|TestSoak|TestCluster' . >"$out" 2>&1 || {
  tail -50 "$out" >&2
  echo "reliability-table: the fault tests failed" >&2
  exit 1
}
echo "| scenario | issued | answered | failed with a clear error | hung | lost |"
echo "|---|--:|--:|--:|--:|--:|"
grep -o 'RELIABILITY | .*' "$out" | sed -E \
  's/RELIABILITY \| (.*) \| issued ([0-9]+) \| answered ([0-9]+) \| failed with a clear error ([0-9]+) \| hung ([0-9]+) \| lost ([0-9]+)/| \1 | \2 | \3 | \4 | \5 | \6 |/'
echo
echo "| cluster scenario | redelivered requests | answered to their caller | failed as their caller's connection was lost | run more than once |"
echo "|---|--:|--:|--:|--:|"
grep -o 'REDELIVERY | .*' "$out" | sed -E \
  's/REDELIVERY \| (.*) \| redelivered ([0-9]+) \| answered to their caller ([0-9]+) \| failed as their caller.s connection was lost ([0-9]+) \| run more than once ([0-9]+)/| \1 | \2 | \3 | \4 | \5 |/'
if grep -q 'STALL | ' "$out"; then
  echo
  echo "Clients not answered again within 30 s of a node loss (each fails the test):"
  grep -o 'STALL | .*' "$out" | sed -E 's/^STALL \| (.*) \| (client [0-9]+) \([^)]*\) (.*)/* \1: \2 \3/'
fi

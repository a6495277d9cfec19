#!/usr/bin/env bash
# Runs the fault tests (the cluster ones included, and the broker and
# cluster ones again with a Redis reply store, from the redisstore module)
# and the soak, and prints the README's reliability tables from the
# RELIABILITY and REDELIVERY lines they log. AMQPRPC_SOAK sets the soak's
# length (default 60s).
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
(cd redisstore && AMQPRPC_STORE_FAULTS=1 go test -race -count=1 -timeout 20m -v -run 'TestBrokerFaults|TestCluster' .) >>"$out" 2>&1 || {
  tail -50 "$out" >&2
  echo "reliability-table: the cluster tests with the Redis reply store failed" >&2
  exit 1
}
# A scenario's REDELIVERY line, when it has one, says how many of its
# requests were answered from the store: the fault table's last column.
echo "| scenario | issued | answered | failed with a clear error | hung | lost | answered from the store |"
echo "|---|--:|--:|--:|--:|--:|--:|"
grep -o -E '(RELIABILITY|REDELIVERY) \| .*' "$out" | awk -F' [|] ' '
  $1 == "REDELIVERY" { for (i = 3; i <= NF; i++) if ($i ~ /^answered from the store /) { n = $i; sub(/.* /, "", n); store[$2] = n } next }
  { order[++rows] = $0 }
  END {
    for (r = 1; r <= rows; r++) {
      split(order[r], f, / [|] /)
      line = "| " f[2]
      for (i = 3; i <= 7; i++) { v = f[i]; sub(/.* /, "", v); line = line " | " v }
      print line " | " (f[2] in store ? store[f[2]] : "–") " |"
    }
  }'
echo
echo "| scenario | redelivered requests | answered to their caller | failed as their caller's connection was lost | answered from the store | run more than once (of which cut off mid-run) |"
echo "|---|--:|--:|--:|--:|--:|"
grep -o 'REDELIVERY | .*' "$out" | sed -E \
  's/REDELIVERY \| (.*) \| redelivered ([0-9]+) \| answered to their caller ([0-9]+) \| failed as their caller.s connection was lost ([0-9]+) \| answered from the store ([0-9]+) \| run more than once ([0-9]+) \| cut off mid-run ([0-9]+)/| \1 | \2 | \3 | \4 | \5 | \6 (\7) |/'
if grep -q 'STALL | ' "$out"; then
  echo
  echo "Clients not answered again within 30 s of a node loss (each fails the test):"
  grep -o 'STALL | .*' "$out" | sed -E 's/^STALL \| (.*) \| (client [0-9]+) \([^)]*\) (.*)/* \1: \2 \3/'
fi

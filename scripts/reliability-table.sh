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
# failed shows the end of the output and every STALL line (a client not
# answered again within 30 s of a node loss fails the test, and its line
# can be far from the end), then exits.
failed() {
  tail -50 "$out" >&2
  grep -o 'STALL | .*' "$out" >&2 || true
  echo "reliability-table: $1 failed" >&2
  exit 1
}
go test -race -count=1 -timeout 20m -v \
  -run 'TestBrokerFaults|TestStalledNetwork|TestConfirmsSurviveAStalledWrite|TestRollingRestartUnderLoad|TestSoak|TestCluster' . >"$out" 2>&1 ||
  failed "the fault tests"
(cd redisstore && AMQPRPC_STORE_FAULTS=1 go test -race -count=1 -timeout 20m -v -run 'TestBrokerFaults|TestCluster' .) >>"$out" 2>&1 ||
  failed "the cluster tests with the Redis reply store"
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

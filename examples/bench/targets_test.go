package main

import (
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
)

// rounds is a series of throughput rounds, each of calls in one second.
func rounds(calls ...int64) *series {
	s := &series{}
	for _, n := range calls {
		s.add(cell{calls: n, elapsed: time.Second})
	}
	s.sum.finish()
	return s
}

// A target's row gives each round its own verdict and judges the rounds
// pooled: 95, 100 and 80 calls against 100 each is 0.95, 1.00 and 0.80,
// and 275 over 300 in all.
func TestTargetRow(t *testing.T) {
	var b strings.Builder
	tt := targetTable{printer{&b}, 3}
	tt.row("calls/s", "a", "b", rounds(95, 100, 80), rounds(100, 100, 100), over(rateOf), goal{0.95, false}, "%.2f×")
	require.Equal(t, "| calls/s | a | b | ≥ 0.95× | 0.95× PASS | 1.00× PASS | 0.80× MISS | 0.92× | **MISS** (2 of 3 rounds) |\n", b.String())

	b.Reset()
	tt.row("p50", "a", "b", rounds(1, 1), rounds(1, 1, 1), over(p50Of), goal{1.05, true}, "%.2f×")
	require.Equal(t, "| p50 | a | b | ≤ 1.05× | – | – | – | – | not measured |\n", b.String(), "no latencies, no verdict")
}

func TestRoundSpread(t *testing.T) {
	require.Equal(t, "0.80–1.00×", roundSpread(rounds(95, 100, 80), rounds(100, 100, 100), over(rateOf)))
	require.Equal(t, "1.00×", roundSpread(rounds(100), rounds(100), over(rateOf)))
	require.Equal(t, "–", roundSpread(rounds(), rounds(), over(rateOf)))
}

package main

import (
	"fmt"
	"strings"

	"github.com/amqprpc/amqprpc"
)

// target is one of issue 10's targets: amqprpc's number over a floor's, in
// one cell of the small payload, at least (or, for latency, at most) goal.
type target struct {
	what     string
	callers  int // 1: p50 of serial calls; else calls/s
	goal     float64
	atMost   bool
	a, floor string
}

// targets are the targets, each against both floors in the same
// reply mode: with the defaults (gob, private reply queue) and with direct
// reply-to, calls/s ≥ 0.95× at 16 and 128 callers and p50 ≤ 1.05×; the
// stretch goal is ≥ 1.05× at 128 callers.
func targetList() []target {
	var ts []target
	for _, a := range []string{"amqp-gob-private", "amqp-gob-direct"} {
		mode := strings.TrimPrefix(a, "amqp-gob-")
		for _, fl := range []string{"floor-echo-", "floor-json-"} {
			b := fl + mode
			ts = append(ts,
				target{"calls/s ×16 ≥ 0.95×", 16, 0.95, false, a, b},
				target{"calls/s ×128 ≥ 0.95×", 128, 0.95, false, a, b},
				target{"p50 ≤ 1.05×", 1, 1.05, true, a, b},
				target{"stretch: calls/s ×128 ≥ 1.05×", 128, 1.05, false, a, b},
			)
		}
	}
	return ts
}

// value is the cell's throughput, or its p50 in seconds for serial calls.
func (t target) value(c cell) float64 {
	if t.callers == 1 {
		return c.p50.Seconds()
	}
	return c.rate
}

func (t target) met(q float64) bool {
	if t.atMost {
		return q <= t.goal
	}
	return q >= t.goal
}

func (t target) text(c cell) string {
	if t.callers == 1 {
		return durOr(c.p50, c.measured)
	}
	return rateOr(c)
}

// targets is the table of the targets and where the run stands.
func (r *run) targets(p printer) {
	p.f("## Targets\n\n")
	p.f("Issue 10's targets, small payload, amqprpc over a floor in the same reply mode; printed for tracking, never asserted. ")
	p.f("**Defaults** is `amqp-gob-private` (gob, private reply queue, durable queue, prefetch %d); **direct** is `amqp-gob-direct`. ", amqprpc.DefaultPrefetch)
	p.f("The echo floor is the one the targets are set against; the JSON floor is shown beside it. ")
	p.f("Each of the %d rounds measured both sides back to back, so each round is one side-by-side run; ", r.rounds)
	p.f("the verdict is on all rounds together (calls and time summed, latencies pooled), with how many single rounds met the target.\n\n")
	p.f("| target | amqprpc | floor | ratio, all rounds | amqprpc vs floor | each round | verdict |\n|---|---|---|--:|---|---|---|\n")
	for _, t := range targetList() {
		sa, sb := r.cell(t.a, small.name, t.callers), r.cell(t.floor, small.name, t.callers)
		ok := sa.sum.measured && sb.sum.measured
		q := t.value(sa.sum) / t.value(sb.sum)
		var rounds []string
		met := 0
		for i := range min(len(sa.rounds), len(sb.rounds)) {
			a, b := sa.rounds[i], sb.rounds[i]
			if !a.measured || !b.measured {
				rounds = append(rounds, "–")
				continue
			}
			qi := t.value(a) / t.value(b)
			rounds = append(rounds, fmt.Sprintf("%.2f", qi))
			if t.met(qi) {
				met++
			}
		}
		v := verdict(ok, t.met(q))
		if ok {
			v += fmt.Sprintf(" (%d of %d rounds)", met, len(rounds))
		}
		p.f("| %s | %s | %s | %s | %s vs %s | %s | %s |\n", t.what, t.a, t.floor, ratio(t.value(sa.sum), t.value(sb.sum), ok),
			t.text(sa.sum), t.text(sb.sum), strings.Join(rounds, " / "), v)
	}
	p.f("\n")
}

package main

import (
	"fmt"
	"slices"
	"strings"

	"github.com/amqprpc/amqprpc"
)

// ladderReport is the cost ladder's table and how it was measured.
func (r *run) ladderReport(p printer) {
	if len(r.ladder) == 0 {
		return
	}
	p.f("## Cost ladder\n\n")
	p.f("Bare amqp091-go, starting at the echo floor and adding one thing at a time, up to amqprpc itself; ")
	p.f("then side steps that acknowledge in runs (`basic.ack` with multiple=true once %d answered requests wait, or as soon as no request is waiting), as amqprpc's server may, ", ladderAckRun)
	p.f("and that hold the server's writes while requests wait, so that replies and their acks leave in one TCP write instead of one write per frame set (issue 19's lever; amqprpc does not do it yet). ")
	p.f("Small payload, private reply queue, prefetch %d, %d callers, each step measured for %v in all, in %d rounds after %v of warm-up each; ",
		amqprpc.DefaultPrefetch, ladderCallers, r.ladderTime, r.rounds, r.ladderWarmup)
	p.f("in each round the steps take turns, each round starting one step further on, so that drift hits all alike.\n\n")
	p.f("- **calls/s ÷ step 1**: throughput over the echo floor's, all rounds together; **each round**: the same ratio round by round, low–high.\n")
	p.f("- **Go µs/call**: user + system CPU time of this process (`getrusage(RUSAGE_SELF)`; client and server both run in it) over the measured window, divided by the calls.\n")
	p.f("- **broker µs/call**: user + system CPU time of the broker's `beam.smp` (utime + stime, fields 14 and 15 of `/proc/<pid>/stat`, in clock ticks of %v) over the same window, divided by the calls. ", r.meter.tick)
	p.f("The broker's process: %s. ", r.meter.about())
	p.f("The broker counts whatever else it serves meanwhile: ")
	if !r.idle.brokerUnknown && !r.idle.goUnknown {
		p.f("in %v before the ladder, with this program's connections open and no calls made, it used %.1f%% of a core (this process %.1f%%).\n",
			idleTime, 100*r.idle.brokerCPU.Seconds()/idleTime.Seconds(), 100*r.idle.goCPU.Seconds()/idleTime.Seconds())
	} else {
		p.f("its idle use was not measured.\n")
	}
	p.f("- **allocs/call**: `runtime.MemStats` Mallocs delta over the window, divided by the calls (client and server).\n")
	p.f("- **Δ**: the step's cost over the step it adds to (**on**), per call. Absolute figures are context; compare within this run.\n\n")
	p.f("| step | what | on | calls/s ÷ step 1 | each round | Go µs/call | Δ | broker µs/call | Δ | allocs/call | Δ | calls/s |\n")
	p.f("|--:|---|--:|--:|--:|--:|--:|--:|--:|--:|--:|--:|\n")
	first := r.ladder[0]
	for i, g := range r.ladder {
		c := g.s.sum
		base := "–"
		var b cell
		if g.base >= 0 {
			base, b = fmt.Sprint(g.base+1), r.ladder[g.base].s.sum
		}
		about := g.about
		if g.broken != nil {
			about += " — **" + g.broken.Error() + "**"
		}
		goOK, brOK := c.measured && !c.use.goUnknown, c.measured && !c.use.brokerUnknown
		p.f("| %d | %s | %s | %s | %s | %s | %s | %s | %s | %s | %s | %s |\n", i+1, about, base,
			ratio(c.rate, first.s.sum.rate, c.measured && first.s.sum.measured), roundRange(g, first),
			cpuText(c.goCPU, goOK), delta("%+.1f", c.goCPU, b.goCPU, goOK && b.measured && !b.use.goUnknown),
			cpuText(c.brokerCPU, brOK), delta("%+.1f", c.brokerCPU, b.brokerCPU, brOK && b.measured && !b.use.brokerUnknown),
			cpuOr(c.allocs, c.measured), delta("%+.0f", c.allocs, b.allocs, c.measured && b.measured), rateOr(c))
	}
	p.f("\n")
	for _, g := range r.ladder {
		if c := g.s.sum; c.errs > 0 || c.hungClosing {
			p.f("- %s: %d failed calls, first: %v\n", g.name, c.errs, c.firstErr)
		}
	}
}

// roundRange is the lowest and highest ratio of g's throughput to first's,
// round by round.
func roundRange(g, first *rung) string {
	if g == first {
		return "–"
	}
	var qs []float64
	for i := range min(len(g.s.rounds), len(first.s.rounds)) {
		if a, b := g.s.rounds[i], first.s.rounds[i]; a.measured && b.measured && b.rate > 0 {
			qs = append(qs, a.rate/b.rate)
		}
	}
	if len(qs) == 0 {
		return "–"
	}
	return fmt.Sprintf("%.2f–%.2f", slices.Min(qs), slices.Max(qs))
}

// delta is a step's cost over its base, signed, in format.
func delta(format string, v, base float64, ok bool) string {
	if !ok {
		return ""
	}
	d := fmt.Sprintf(format, v-base)
	if strings.Trim(d, "+-0.") == "" {
		return "0" // not "-0"
	}
	return d
}

// cpuText is a CPU time per call with one decimal.
func cpuText(v float64, ok bool) string {
	if !ok {
		return "–"
	}
	return fmt.Sprintf("%.1f", v)
}

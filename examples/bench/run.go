package main

import (
	"crypto/rand"
	"fmt"
	"log"
	"strings"
	"time"

	"github.com/amqprpc/amqprpc/codec"
)

// plan is what the comparison measures: every transport at each payload
// and number of concurrent callers (1 means serial calls, which also give
// the latency percentiles).
var plan = []struct {
	load    load
	callers []int
}{
	{small, []int{1, 16, 128}},
	{blob4K, []int{1, 16, 128}},
	{blob256K, []int{1, 16}},
}

// run is everything the report needs.
type run struct {
	config
	broker     string
	meter      *meter
	started    time.Time
	load       [2]string // the load average when the run started and ended
	took       time.Duration
	transports []*transport
	cells      map[key]*series
	ladder     []*rung
	idle       usage // over idleTime before the ladder, no calls made
	codec      []codecCost
}

type key struct {
	transport, load string
	callers         int
}

// cell returns the cell's rounds and their sum, finished; the zero series
// if it was never measured.
func (r *run) cell(transport, load string, callers int) *series {
	if s := r.cells[key{transport, load, callers}]; s != nil {
		return s
	}
	return &series{}
}

func (r *run) measureCodecs() {
	for _, enc := range []codec.Encoding{codec.Gob, codec.JSON} {
		for _, p := range plan {
			r.codec = append(r.codec, measureCodec(enc, p.load, r.codecTime))
		}
	}
}

// measureComparison measures every cell of the plan for every transport,
// round after round, and in each cell every transport in turn, starting
// each round one transport further on, so that noise from the rest of the
// machine spreads over all of them rather than hitting one.
func (r *run) measureComparison() {
	r.transports = transports()
	if r.only != nil {
		r.transports = onlyThese(r.transports, r.only)
	}
	startAll(r.url, "amqprpc-bench-", r.transports)
	slice := r.cellTime / time.Duration(r.rounds)
	for round := range r.rounds {
		for _, p := range plan {
			for _, n := range p.callers {
				visit(r.transports, round, func(t *transport) {
					if t.smallOnly && p.load.name != small.name {
						return
					}
					k := key{t.name, p.load.name, n}
					if r.cells[k] == nil {
						r.cells[k] = &series{}
					}
					r.cells[k].add(r.measureOne(t, p.load, n, r.warmup, slice))
				})
			}
		}
		log.Printf("comparison: round %d of %d done after %v", round+1, r.rounds, time.Since(r.started).Round(time.Second))
	}
	for _, s := range r.cells {
		s.sum.finish()
	}
	stopAll(r.transports)
}

// onlyThese is the transports named in only, in their order; it stops the
// program if only names one that does not exist.
func onlyThese(ts []*transport, only map[string]bool) []*transport {
	var kept []*transport
	for _, t := range ts {
		if only[t.name] {
			kept = append(kept, t)
		}
	}
	if len(kept) < len(only) {
		log.Fatalf("-only: %d of the %d names are not transports of the comparison", len(only)-len(kept), len(only))
	}
	return kept
}

// startAll starts every transport, each on its own queue.
func startAll(url, prefix string, ts []*transport) {
	suffix := strings.ToLower(rand.Text()[:8])
	for _, t := range ts {
		queue := prefix + strings.NewReplacer(" ", "-", ",", "", "+", "").Replace(t.name) + "-" + suffix
		t.c, t.stop, t.broken = t.start(url, queue)
		if t.broken != nil {
			log.Printf("%s: cannot start: %v", t.name, t.broken)
		}
	}
}

func stopAll(ts []*transport) {
	for _, t := range ts {
		if t.c != nil {
			t.c.Close()
			t.stop()
		}
	}
}

// visit calls f for every transport that still works, starting at the
// round'th.
func visit(ts []*transport, round int, f func(*transport)) {
	for i := range ts {
		if t := ts[(round+i)%len(ts)]; t.broken == nil {
			f(t)
		}
	}
}

// measureOne measures one round of a cell, and marks the transport broken
// if its client had to be closed.
func (r *run) measureOne(t *transport, l load, callers int, warm, d time.Duration) cell {
	var c cell
	if callers == 1 {
		c = measureSerial(r.meter, t.c, l, warm, d)
	} else {
		c = measureThroughput(r.meter, t.c, l, callers, warm, d)
	}
	if c.hungClosing {
		t.broken = fmt.Errorf("%s with %d callers overran by %v; its client was closed", l.name, callers, watchdog)
	}
	if c.firstErr != nil {
		log.Printf("%s %s x%d: %d errors, first: %v", t.name, l.name, callers, c.errs, c.firstErr)
	}
	return c
}

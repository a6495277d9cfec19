package main

import (
	"fmt"
	"runtime"
	"slices"
	"sync"
	"sync/atomic"
	"time"
)

// cell is one measurement: a transport, a payload and a number of callers,
// in one round or summed over the rounds of the run.
type cell struct {
	calls   int64
	elapsed time.Duration
	// Serial cells only: each call's latency.
	samples []time.Duration
	// What the process (client and server both run in it) and the broker
	// spent while the calls ran.
	use         usage
	errs        int64
	firstErr    error
	hungClosing bool // a round overran and the client was closed

	// Set by finish.
	measured         bool
	rate             float64 // calls per second
	p50, p99         time.Duration
	allocs, bytesPer float64 // per call
	goCPU, brokerCPU float64 // µs per call, unless use says they are unknown
}

// add sums one round into c.
func (c *cell) add(r cell) {
	c.calls += r.calls
	c.elapsed += r.elapsed
	c.samples = append(c.samples, r.samples...)
	c.use = c.use.plus(r.use)
	c.errs += r.errs
	if c.firstErr == nil {
		c.firstErr = r.firstErr
	}
	c.hungClosing = c.hungClosing || r.hungClosing
}

// finish computes the rates, percentiles and costs per call.
func (c *cell) finish() {
	if c.calls == 0 || c.elapsed <= 0 {
		return
	}
	c.measured = true
	n := float64(c.calls)
	c.rate = n / c.elapsed.Seconds()
	if k := len(c.samples); k > 0 {
		slices.Sort(c.samples)
		c.p50 = c.samples[k*50/100]
		c.p99 = c.samples[min(k*99/100, k-1)]
	}
	c.allocs = float64(c.use.mallocs) / n
	c.bytesPer = float64(c.use.allocBytes) / n
	c.goCPU = float64(c.use.goCPU.Microseconds()) / n
	c.brokerCPU = float64(c.use.brokerCPU.Microseconds()) / n
}

// series is a cell's rounds, each finished on its own, and their sum.
type series struct {
	rounds []cell
	sum    cell
}

// add records one round.
func (s *series) add(c cell) {
	s.sum.add(c)
	c.finish()
	s.rounds = append(s.rounds, c)
}

// watchdog is how long past its duration a round may run before its client
// is closed, which fails the calls it waits for.
const watchdog = 20 * time.Second

// maxSamples bounds the latencies one serial round keeps; the slice is
// allocated before the round so that recording allocates nothing.
const maxSamples = 1 << 17

// measureSerial makes calls one after another for warm, then for d records
// each call's latency and what the calls cost.
func measureSerial(m *meter, c caller, l load, warm, d time.Duration) cell {
	reply := l.newReply()
	var res cell
	done := make(chan struct{})
	go func() {
		defer close(done)
		for end := time.Now().Add(warm); time.Now().Before(end); {
			if err := c.Call(l.method, l.args, reply); err != nil {
				res.errs, res.firstErr = 1, err
				return
			}
		}
		samples := make([]time.Duration, 0, maxSamples)
		runtime.GC()
		before := m.read()
		start := time.Now()
		end := start.Add(d)
		for len(samples) < cap(samples) {
			t0 := time.Now()
			if t0.After(end) {
				break
			}
			if err := c.Call(l.method, l.args, reply); err != nil {
				res.errs, res.firstErr = 1, err
				break
			}
			samples = append(samples, time.Since(t0))
		}
		res.elapsed = time.Since(start)
		res.use = m.read().since(before)
		res.calls, res.samples = int64(len(samples)), samples
		if err := checkReply(c, l, reply); len(samples) > 0 && err != nil && res.firstErr == nil {
			res.errs, res.firstErr = 1, err
		}
	}()
	res.hungClosing = guard(c, done, warm+d+watchdog)
	return res
}

// measureThroughput runs callers goroutines calling in a loop and counts the
// calls that complete in d, after warm, and what they cost.
func measureThroughput(m *meter, c caller, l load, callers int, warm, d time.Duration) cell {
	var (
		count, errs atomic.Int64
		stop        atomic.Bool
		wg          sync.WaitGroup
		errMu       sync.Mutex
		firstErr    error
	)
	fail := func(err error) {
		errs.Add(1)
		errMu.Lock()
		if firstErr == nil {
			firstErr = err
		}
		errMu.Unlock()
	}
	for range callers {
		wg.Go(func() {
			reply, calls := l.newReply(), 0
			for !stop.Load() {
				if err := c.Call(l.method, l.args, reply); err != nil {
					fail(err)
					return
				}
				count.Add(1)
				calls++
			}
			if err := checkReply(c, l, reply); calls > 0 && err != nil {
				fail(err)
			}
		})
	}
	time.Sleep(warm)
	u0 := m.read()
	n0, t0 := count.Load(), time.Now()
	time.Sleep(d)
	n1, t1 := count.Load(), time.Now()
	u1 := m.read()
	stop.Store(true)
	done := make(chan struct{})
	go func() { wg.Wait(); close(done) }()
	res := cell{calls: n1 - n0, elapsed: t1.Sub(t0), use: u1.since(u0)}
	res.hungClosing = guard(c, done, watchdog)
	res.errs = errs.Load()
	errMu.Lock()
	res.firstErr = firstErr
	errMu.Unlock()
	return res
}

// guard waits for done; if it takes longer than limit it closes c so that
// every call in flight fails, and waits for done again. It reports whether
// it had to close c.
func guard(c caller, done <-chan struct{}, limit time.Duration) bool {
	t := time.NewTimer(limit)
	defer t.Stop()
	select {
	case <-done:
		return false
	case <-t.C:
	}
	c.Close()
	select {
	case <-done:
	case <-time.After(watchdog):
		panic(fmt.Sprintf("calls still running %v after their client was closed", watchdog))
	}
	return true
}

// checkReply checks the reply of the last call, unless c hands back bytes
// without decoding them (and checks them itself).
func checkReply(c caller, l load, reply any) error {
	if r, ok := c.(interface{ decodes() bool }); ok && !r.decodes() {
		return nil
	}
	return l.check(reply)
}

package main

import (
	"crypto/rand"
	"fmt"
	"runtime"
	"strings"
	"testing"

	"github.com/amqprpc/amqprpc/internal/brokertest"
)

// BenchmarkCall is every transport of the comparison with the small
// payload, for profiling one of them with the go command's own flags:
//
//	go test -run '^$' -bench 'Call/amqp-gob-private/serial' -benchtime 5000x \
//	    -memprofile mem.out -memprofilerate 1 -cpuprofile cpu.out -trace trace.out
//
// Names are BenchmarkCall/<transport>/<serial|parN>; parN runs N callers
// at once on one client. Client, server and (for the floors and the peer)
// everything else run in this process, so allocs/op is both sides.
func BenchmarkCall(b *testing.B) {
	url := brokertest.URL(b)
	for _, t := range transports() {
		b.Run(t.name, func(b *testing.B) {
			queue := "amqprpc-bench-call-" + t.name + "-" + strings.ToLower(rand.Text()[:8])
			c, stop, err := t.start(url, queue)
			if err != nil {
				b.Fatal(err)
			}
			defer stop()
			defer c.Close()
			b.Run("serial", func(b *testing.B) { benchSerial(b, c) })
			for _, n := range []int{16, 128} {
				b.Run(fmt.Sprintf("par%d", n), func(b *testing.B) { benchParallel(b, c, n) })
			}
		})
	}
}

func benchSerial(b *testing.B, c caller) {
	b.ReportAllocs()
	reply := small.newReply()
	for b.Loop() {
		if err := c.Call(small.method, small.args, reply); err != nil {
			b.Fatal(err)
		}
	}
	if err := checkReply(c, small, reply); err != nil {
		b.Fatal(err)
	}
}

// benchParallel runs callers goroutines (b.SetParallelism of callers over
// GOMAXPROCS, rounded up) calling c.
func benchParallel(b *testing.B, c caller, callers int) {
	b.ReportAllocs()
	procs := runtime.GOMAXPROCS(0)
	b.SetParallelism((callers + procs - 1) / procs)
	b.RunParallel(func(pb *testing.PB) {
		reply, calls := small.newReply(), 0
		for pb.Next() {
			if err := c.Call(small.method, small.args, reply); err != nil {
				b.Error(err)
				return
			}
			calls++
		}
		if err := checkReply(c, small, reply); calls > 0 && err != nil {
			b.Error(err)
		}
	})
}

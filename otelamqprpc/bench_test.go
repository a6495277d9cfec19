package otelamqprpc_test

// BenchmarkCall measures what tracing costs, side by side in one run: the
// same service called through the same broker, with tracing off and with
// WithTracing on both sides. Tracing on is the SDK as a program would run
// it: every span sampled, batched and exported (to an exporter that drops
// them), both histograms recorded, the W3C propagator.
//
//	cd otelamqprpc && go test -run '^$' -bench BenchmarkCall -v .    (make bench-tracing)
//
// The two modes take turns within each cell, and the benchmark logs the
// ratio of their median times per call (shown with -v). Client and server run in this process, so allocs/op is the total of
// both sides.

import (
	"context"
	"fmt"
	"net/rpc"
	"runtime"
	"slices"
	"testing"

	"go.opentelemetry.io/otel/propagation"
	sdkmetric "go.opentelemetry.io/otel/sdk/metric"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"go.opentelemetry.io/otel/sdk/trace/tracetest"

	"github.com/amqprpc/amqprpc"
	"github.com/amqprpc/amqprpc/otelamqprpc"
)

// Pair is the benchmark's payload, in and out.
type Pair struct{ A, B int }

// Bench is the benchmark's service.
type Bench struct{}

func (Bench) Small(args *Pair, reply *Pair) error {
	reply.A, reply.B = args.A+args.B, args.A*args.B
	return nil
}

func BenchmarkCall(b *testing.B) {
	modes := []struct {
		name string
		opts func(b *testing.B) []amqprpc.Option
	}{
		{"tracing=off", func(*testing.B) []amqprpc.Option { return nil }},
		{"tracing=on", func(b *testing.B) []amqprpc.Option {
			tp := sdktrace.NewTracerProvider(sdktrace.WithBatcher(tracetest.NewNoopExporter()))
			mp := sdkmetric.NewMeterProvider(sdkmetric.WithReader(sdkmetric.NewManualReader()))
			b.Cleanup(func() {
				_ = tp.Shutdown(context.Background())
				_ = mp.Shutdown(context.Background())
			})
			return []amqprpc.Option{otelamqprpc.WithTracing(
				otelamqprpc.WithTracerProvider(tp),
				otelamqprpc.WithMeterProvider(mp),
				otelamqprpc.WithPropagators(propagation.TraceContext{}))}
		}},
	}
	// Both clients exist for the whole run, so that neither mode runs on a
	// quieter machine than the other.
	clients := make([]*rpc.Client, len(modes))
	for i, m := range modes {
		queue := testQueue(b, "bench")
		var sopts []amqprpc.ServerOption
		var copts []amqprpc.ClientOption
		for _, o := range m.opts(b) {
			sopts, copts = append(sopts, o), append(copts, o)
		}
		serve(b, queue, "Bench", Bench{}, sopts...)
		clients[i] = dial(b, queue, copts...)
	}
	// The modes take turns, a few times each, so that both see the same
	// conditions; the summary divides the medians.
	const turns = 3
	for _, callers := range []int{1, 32} {
		perCall := make([][]float64, len(modes)) // ns per call, by mode, one per turn
		for range turns {
			for i, m := range modes {
				var ns float64 // of the last run, the one with the final b.N
				b.Run(fmt.Sprintf("callers=%d/%s", callers, m.name), func(b *testing.B) {
					benchCalls(b, clients[i], callers)
					ns = float64(b.Elapsed()) / float64(b.N)
				})
				perCall[i] = append(perCall[i], ns)
			}
		}
		off, on := median(perCall[0]), median(perCall[1])
		b.Logf("callers=%d: tracing on/off = %.2f (median %.0f / %.0f ns per call, %d turns each)", callers, on/off, on, off, turns)
	}
}

// median returns the median of xs.
func median(xs []float64) float64 {
	s := slices.Sorted(slices.Values(xs))
	if len(s)%2 == 1 {
		return s[len(s)/2]
	}
	return (s[len(s)/2-1] + s[len(s)/2]) / 2
}

// benchCalls makes calls from callers goroutines at once.
func benchCalls(b *testing.B, client *rpc.Client, callers int) {
	b.ReportAllocs()
	call := func() error {
		var reply Pair
		if err := amqprpc.Call(context.Background(), client, "Bench.Small", &Pair{3, 4}, &reply); err != nil {
			return err
		}
		if reply != (Pair{7, 12}) {
			return fmt.Errorf("Bench.Small(3, 4) = %v; want {7 12}", reply)
		}
		return nil
	}
	if callers == 1 {
		for b.Loop() {
			if err := call(); err != nil {
				b.Fatal(err)
			}
		}
		return
	}
	procs := runtime.GOMAXPROCS(0)
	b.SetParallelism((callers + procs - 1) / procs)
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			if err := call(); err != nil {
				b.Error(err)
				return
			}
		}
	})
}

package otelamqprpc

import (
	"context"
	"errors"
	"sync"
	"testing"
	"time"

	"go.opentelemetry.io/otel/propagation"
	sdkmetric "go.opentelemetry.io/otel/sdk/metric"
	"go.opentelemetry.io/otel/sdk/metric/metricdata"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"go.opentelemetry.io/otel/sdk/trace/tracetest"

	"github.com/amqprpc/amqprpc"
)

// pointsAtEnd is a span processor that, as each span ends, counts the
// duration records the meter holds at that moment.
type pointsAtEnd struct {
	sdktrace.SpanProcessor // the rest does nothing
	reader                 *sdkmetric.ManualReader
	mu                     sync.Mutex
	seen                   map[string]uint64 // span kind -> records of its duration seen at End
}

func (p *pointsAtEnd) OnEnd(s sdktrace.ReadOnlySpan) {
	var rm metricdata.ResourceMetrics
	if err := p.reader.Collect(context.Background(), &rm); err != nil {
		panic(err)
	}
	name := map[string]string{"client": "rpc.client.call.duration", "server": "rpc.server.call.duration"}[s.SpanKind().String()]
	var n uint64
	for _, sm := range rm.ScopeMetrics {
		for _, m := range sm.Metrics {
			if h, ok := m.Data.(metricdata.Histogram[float64]); ok && m.Name == name {
				for _, dp := range h.DataPoints {
					n += dp.Count
				}
			}
		}
	}
	p.mu.Lock()
	p.seen[s.SpanKind().String()] = n
	p.mu.Unlock()
}

// TestDurationRecordedBeforeSpanEnds checks the order of a call's end: its
// duration is recorded before its span ends, so that whoever sees the span
// ended (an exporter, a test waiting for spans) also sees the duration.
func TestDurationRecordedBeforeSpanEnds(t *testing.T) {
	reader := sdkmetric.NewManualReader()
	p := &pointsAtEnd{SpanProcessor: sdktrace.NewSimpleSpanProcessor(tracetest.NewNoopExporter()), reader: reader, seen: map[string]uint64{}}
	tr := newTracing(config{
		tracerProvider: sdktrace.NewTracerProvider(sdktrace.WithSpanProcessor(p)),
		meterProvider:  sdkmetric.NewMeterProvider(sdkmetric.WithReader(reader)),
		propagators:    propagation.TraceContext{},
	})
	for _, err := range []error{nil, errors.New("service failed")} {
		info := &amqprpc.CallInfo{Method: "Echo.Echo", Queue: "q", CorrelationID: "1", Header: map[string]any{}}
		tr.client(context.Background(), info)(time.Millisecond, err)
		_, serverEnd := tr.server(context.Background(), info)
		serverEnd(time.Millisecond, err)
	}
	for _, kind := range []string{"client", "server"} {
		if got := p.seen[kind]; got != 2 {
			t.Errorf("%s: %d durations recorded when its second span ended; want 2", kind, got)
		}
	}
}

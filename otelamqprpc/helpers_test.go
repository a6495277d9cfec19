package otelamqprpc_test

import (
	"context"
	"fmt"
	"net/rpc"
	"strings"
	"testing"
	"time"

	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/propagation"
	sdkmetric "go.opentelemetry.io/otel/sdk/metric"
	"go.opentelemetry.io/otel/sdk/metric/metricdata"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"go.opentelemetry.io/otel/sdk/trace/tracetest"
	"go.opentelemetry.io/otel/trace"

	"github.com/amqprpc/amqprpc"
	"github.com/amqprpc/amqprpc/otelamqprpc"

	"github.com/amqprpc/amqprpc/internal/brokertest"
)

// brokerURL returns the test broker's URL (AMQP_URL, or the local default),
// failing the test when the broker is missing under CI and skipping it
// otherwise.
func brokerURL(t testing.TB) string {
	t.Helper()
	return brokertest.URL(t)
}

// testQueue returns a queue name unique to this run, and deletes the queue
// when the test ends.
func testQueue(t testing.TB, what string) string {
	t.Helper()
	return brokertest.Queue(t, brokerURL(t), "otel-"+what)
}

// serve serves rcvr under name on queue until the test ends, and returns
// once the server consumes.
func serve(t testing.TB, queue, name string, rcvr any, opts ...amqprpc.ServerOption) {
	t.Helper()
	srv := rpc.NewServer()
	if err := srv.RegisterName(name, rcvr); err != nil {
		t.Fatalf("RegisterName(%q) = %v", name, err)
	}
	ready := make(chan struct{})
	opts = append(opts, amqprpc.WithReady(func() { close(ready) }), amqprpc.WithQueueExpiry(time.Minute))
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- amqprpc.Serve(ctx, srv, brokerURL(t), queue, opts...) }()
	t.Cleanup(func() {
		cancel()
		select {
		case err := <-done:
			if err != nil {
				t.Errorf("Serve(%q) = %v; want nil after cancel", queue, err)
			}
		case <-time.After(15 * time.Second):
			t.Errorf("Serve(%q) did not return within 15s of cancel", queue)
		}
	})
	select {
	case <-ready:
	case err := <-done:
		t.Fatalf("Serve(%q) = %v before it was ready", queue, err)
	case <-time.After(15 * time.Second):
		t.Fatalf("Serve(%q) not ready within 15s", queue)
	}
}

// dial returns a client of queue, closed when the test ends.
func dial(t testing.TB, queue string, opts ...amqprpc.ClientOption) *rpc.Client {
	t.Helper()
	opts = append([]amqprpc.ClientOption{amqprpc.WithCallTimeout(10 * time.Second)}, opts...)
	client, err := amqprpc.Dial(brokerURL(t), queue, opts...)
	if err != nil {
		t.Fatalf("Dial(%q) = %v", queue, err)
	}
	t.Cleanup(func() { client.Close() })
	return client
}

// telemetry is an SDK tracer provider that records spans in memory, a
// meter provider read by hand, and the W3C propagator.
type telemetry struct {
	spans  *tracetest.SpanRecorder
	tp     *sdktrace.TracerProvider
	reader *sdkmetric.ManualReader
	mp     *sdkmetric.MeterProvider
}

func newTelemetry(t testing.TB) *telemetry {
	tel := &telemetry{spans: tracetest.NewSpanRecorder(), reader: sdkmetric.NewManualReader()}
	tel.tp = sdktrace.NewTracerProvider(sdktrace.WithSpanProcessor(tel.spans))
	tel.mp = sdkmetric.NewMeterProvider(sdkmetric.WithReader(tel.reader))
	t.Cleanup(func() {
		_ = tel.tp.Shutdown(context.Background())
		_ = tel.mp.Shutdown(context.Background())
	})
	return tel
}

// tracing is WithTracing with tel's providers.
func (tel *telemetry) tracing() amqprpc.Option {
	return otelamqprpc.WithTracing(
		otelamqprpc.WithTracerProvider(tel.tp),
		otelamqprpc.WithMeterProvider(tel.mp),
		otelamqprpc.WithPropagators(propagation.NewCompositeTextMapPropagator(propagation.TraceContext{}, propagation.Baggage{})),
	)
}

// root starts a span of the test's own, the parent of the calls made with
// its context.
func (tel *telemetry) root(ctx context.Context) (context.Context, trace.Span) {
	return tel.tp.Tracer("test").Start(ctx, "test")
}

// waitSpans waits until n spans have ended, and returns them.
func (tel *telemetry) waitSpans(t testing.TB, n int) []sdktrace.ReadOnlySpan {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for {
		ended := tel.spans.Ended()
		if len(ended) >= n {
			return ended
		}
		if time.Now().After(deadline) {
			t.Fatalf("%d spans ended within 10s; want %d: %s", len(ended), n, describe(ended))
		}
		time.Sleep(10 * time.Millisecond) // polling a condition with a deadline
	}
}

// byKind returns the spans of one kind, in the order they ended.
func byKind(spans []sdktrace.ReadOnlySpan, kind trace.SpanKind) []sdktrace.ReadOnlySpan {
	var out []sdktrace.ReadOnlySpan
	for _, s := range spans {
		if s.SpanKind() == kind {
			out = append(out, s)
		}
	}
	return out
}

// attrs returns a span's attributes by key.
func attrs(s sdktrace.ReadOnlySpan) map[attribute.Key]attribute.Value {
	m := make(map[attribute.Key]attribute.Value)
	for _, kv := range s.Attributes() {
		m[kv.Key] = kv.Value
	}
	return m
}

// describe lists spans for a failure message.
func describe(spans []sdktrace.ReadOnlySpan) string {
	var b strings.Builder
	for _, s := range spans {
		fmt.Fprintf(&b, "\n  %s %s trace %s span %s parent %s", s.SpanKind(), s.Name(), s.SpanContext().TraceID(), s.SpanContext().SpanID(), s.Parent().SpanID())
	}
	return b.String()
}

// histogram returns the data points of the histogram named name.
func (tel *telemetry) histogram(t testing.TB, name string) []metricdata.HistogramDataPoint[float64] {
	t.Helper()
	var rm metricdata.ResourceMetrics
	if err := tel.reader.Collect(context.Background(), &rm); err != nil {
		t.Fatalf("Collect = %v", err)
	}
	for _, sm := range rm.ScopeMetrics {
		for _, m := range sm.Metrics {
			if m.Name != name {
				continue
			}
			if m.Unit != "s" {
				t.Errorf("%s: unit %q; want s", name, m.Unit)
			}
			h, ok := m.Data.(metricdata.Histogram[float64])
			if !ok {
				t.Fatalf("%s is a %T; want a histogram of float64", name, m.Data)
			}
			return h.DataPoints
		}
	}
	return nil
}

// pointAttrs returns a data point's attributes as strings by key.
func pointAttrs(p metricdata.HistogramDataPoint[float64]) map[string]string {
	m := make(map[string]string)
	for _, kv := range p.Attributes.ToSlice() {
		m[string(kv.Key)] = kv.Value.String()
	}
	return m
}

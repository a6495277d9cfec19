package otelamqprpc_test

import (
	"context"
	"errors"
	"net/rpc"
	"regexp"
	"strings"
	"testing"
	"time"

	amqp "github.com/rabbitmq/amqp091-go"
	"go.opentelemetry.io/otel"
	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/codes"
	"go.opentelemetry.io/otel/propagation"
	sdkmetric "go.opentelemetry.io/otel/sdk/metric"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"go.opentelemetry.io/otel/sdk/trace/tracetest"
	"go.opentelemetry.io/otel/trace"

	"github.com/amqprpc/amqprpc"
	"github.com/amqprpc/amqprpc/otelamqprpc"
)

// Args is the argument of the test services; its Delivery gives them the
// request's context.
type Args struct {
	Text string
	amqprpc.Delivery
}

// Reply tells what a service saw of its context.
type Reply struct {
	Text        string
	TraceID     string // of the span in the service's context
	SpanID      string
	DeadlineMS  int64 // 0: none
	HasDeadline bool
}

// Echo is a service that answers with its argument and what its context
// holds.
type Echo struct{}

func (Echo) Echo(args *Args, reply *Reply) error {
	ctx := args.Context()
	sc := trace.SpanFromContext(ctx).SpanContext()
	*reply = Reply{Text: args.Text, TraceID: sc.TraceID().String(), SpanID: sc.SpanID().String()}
	if d, ok := ctx.Deadline(); ok {
		reply.HasDeadline, reply.DeadlineMS = true, d.UnixMilli()
	}
	return nil
}

func (Echo) Fail(args *Args, reply *Reply) error { return errors.New("no " + args.Text + " today") }

// Front is a service that calls Echo on another queue, passing its
// request's context on.
type Front struct{ next *rpc.Client }

func (f *Front) Relay(args *Args, reply *Reply) error {
	return amqprpc.Call(args.Context(), f.next, "Echo.Echo", &Args{Text: args.Text + " via front"}, reply)
}

// TestParentAndChild checks a call's CLIENT span, the child of the
// caller's span, and its SERVER span, the child of the CLIENT span across
// the broker, with their attributes and the two duration histograms.
func TestParentAndChild(t *testing.T) {
	tel := newTelemetry(t)
	queue := testQueue(t, "echo")
	serve(t, queue, "Echo", Echo{}, tel.tracing())
	client := dial(t, queue, tel.tracing())

	ctx, root := tel.root(context.Background())
	var reply Reply
	err := amqprpc.Call(ctx, client, "Echo.Echo", &Args{Text: "hi"}, &reply)
	root.End()
	if err != nil || reply.Text != "hi" {
		t.Fatalf("Call(Echo.Echo) = %+v, %v; want hi", reply, err)
	}
	spans := tel.waitSpans(t, 3)
	clients, servers := byKind(spans, trace.SpanKindClient), byKind(spans, trace.SpanKindServer)
	if len(clients) != 1 || len(servers) != 1 {
		t.Fatalf("spans: %s; want one CLIENT and one SERVER besides the test's", describe(spans))
	}
	c, s := clients[0], servers[0]
	rootSC := root.SpanContext()
	switch {
	case c.Parent().SpanID() != rootSC.SpanID() || c.SpanContext().TraceID() != rootSC.TraceID():
		t.Errorf("CLIENT span's parent = %s in trace %s; want the caller's span %s in %s", c.Parent().SpanID(), c.SpanContext().TraceID(), rootSC.SpanID(), rootSC.TraceID())
	case s.Parent().SpanID() != c.SpanContext().SpanID() || !s.Parent().IsRemote() || s.SpanContext().TraceID() != rootSC.TraceID():
		t.Errorf("SERVER span's parent = %s (remote %v) in trace %s; want the CLIENT span %s, remote, in %s",
			s.Parent().SpanID(), s.Parent().IsRemote(), s.SpanContext().TraceID(), c.SpanContext().SpanID(), rootSC.TraceID())
	case reply.SpanID != s.SpanContext().SpanID().String():
		t.Errorf("the service's context holds span %s; want the SERVER span %s", reply.SpanID, s.SpanContext().SpanID())
	}
	for _, sp := range []sdktrace.ReadOnlySpan{c, s} {
		a := attrs(sp)
		want := map[string]string{
			"rpc.system.name":            "net_rpc",
			"rpc.method":                 "Echo.Echo",
			"messaging.system":           "rabbitmq",
			"messaging.destination.name": queue,
		}
		if sp.Name() != "Echo.Echo" {
			t.Errorf("%s span name = %q; want Echo.Echo", sp.SpanKind(), sp.Name())
		}
		for k, v := range want {
			if got := a[attribute.Key(k)].String(); got != v {
				t.Errorf("%s span: %s = %q; want %q", sp.SpanKind(), k, got, v)
			}
		}
		if a["messaging.message.conversation_id"].String() == "" || a["messaging.message.id"].String() == "" {
			t.Errorf("%s span: conversation_id %q, message.id %q; want both", sp.SpanKind(), a["messaging.message.conversation_id"].String(), a["messaging.message.id"].String())
		}
		if _, ok := a["error.type"]; ok || sp.Status().Code != codes.Unset {
			t.Errorf("%s span: status %v, error.type %v; want neither on success", sp.SpanKind(), sp.Status(), a["error.type"])
		}
	}
	ca, sa := attrs(c), attrs(s)
	if ca["messaging.message.conversation_id"] != sa["messaging.message.conversation_id"] || ca["messaging.message.id"] != sa["messaging.message.id"] {
		t.Errorf("CLIENT and SERVER spans name different messages: %v, %v", ca, sa)
	}

	for _, name := range []string{"rpc.client.call.duration", "rpc.server.call.duration"} {
		points := tel.histogram(t, name)
		if len(points) != 1 || points[0].Count != 1 {
			t.Fatalf("%s: %d points; want one with one call: %+v", name, len(points), points)
		}
		got := pointAttrs(points[0])
		if got["rpc.method"] != "Echo.Echo" || got["rpc.system.name"] != "net_rpc" || got["error.type"] != "" {
			t.Errorf("%s attributes = %v; want rpc.method Echo.Echo, rpc.system.name net_rpc, no error.type", name, got)
		}
		if points[0].Sum <= 0 || points[0].Sum > 10 {
			t.Errorf("%s = %vs; want the call's duration in seconds", name, points[0].Sum)
		}
	}
}

// TestHeadersOnTheWire checks the W3C entries a traced request carries, as
// strings in its AMQP headers table.
func TestHeadersOnTheWire(t *testing.T) {
	tel := newTelemetry(t)
	queue := testQueue(t, "wire")
	conn, err := amqp.Dial(brokerURL(t))
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	ch, err := conn.Channel()
	if err != nil {
		t.Fatal(err)
	}
	if _, err := ch.QueueDeclare(queue, false, true, false, false, nil); err != nil {
		t.Fatal(err)
	}
	requests, err := ch.Consume(queue, "", true, false, false, false, nil)
	if err != nil {
		t.Fatal(err)
	}
	client := dial(t, queue, tel.tracing())

	state, err := trace.ParseTraceState("vendor=x")
	if err != nil {
		t.Fatal(err)
	}
	remote := trace.NewSpanContext(trace.SpanContextConfig{
		TraceID: trace.TraceID{1, 2, 3}, SpanID: trace.SpanID{4, 5, 6}, TraceFlags: trace.FlagsSampled, TraceState: state, Remote: true,
	})
	ctx, cancel := context.WithCancel(trace.ContextWithRemoteSpanContext(context.Background(), remote))
	defer cancel()
	go func() { _ = amqprpc.Call(ctx, client, "Echo.Echo", &Args{Text: "hi"}, new(Reply)) }()
	var d amqp.Delivery
	select {
	case d = <-requests:
	case <-time.After(10 * time.Second):
		t.Fatal("no request within 10s")
	}
	cancel()
	parent, _ := d.Headers["traceparent"].(string)
	want := regexp.MustCompile(`^00-` + remote.TraceID().String() + `-[0-9a-f]{16}-01$`)
	if !want.MatchString(parent) || strings.Contains(parent, remote.SpanID().String()) {
		t.Errorf("traceparent = %q (%T); want a string of the CLIENT span in trace %s", d.Headers["traceparent"], d.Headers["traceparent"], remote.TraceID())
	}
	if got, _ := d.Headers["tracestate"].(string); got != "vendor=x" {
		t.Errorf("tracestate = %q; want vendor=x", got)
	}
}

// TestNestedCallOneTrace checks that a service calling another with its
// request's context makes one trace of four spans: caller, front service,
// its call, the service it calls.
func TestNestedCallOneTrace(t *testing.T) {
	tel := newTelemetry(t)
	back, front := testQueue(t, "back"), testQueue(t, "front")
	serve(t, back, "Echo", Echo{}, tel.tracing())
	serve(t, front, "Front", &Front{next: dial(t, back, tel.tracing())}, tel.tracing())
	client := dial(t, front, tel.tracing())

	var reply Reply
	if err := amqprpc.Call(context.Background(), client, "Front.Relay", &Args{Text: "hi"}, &reply); err != nil || reply.Text != "hi via front" {
		t.Fatalf("Call(Front.Relay) = %+v, %v; want hi via front", reply, err)
	}
	spans := tel.waitSpans(t, 4)
	if len(spans) != 4 {
		t.Fatalf("spans: %s; want 4", describe(spans))
	}
	named := make(map[string]sdktrace.ReadOnlySpan)
	for _, s := range spans {
		named[s.SpanKind().String()+" "+s.Name()] = s
		if s.SpanContext().TraceID() != spans[0].SpanContext().TraceID() {
			t.Errorf("spans in more than one trace: %s", describe(spans))
		}
	}
	chain := []string{"client Front.Relay", "server Front.Relay", "client Echo.Echo", "server Echo.Echo"}
	for i, name := range chain {
		s, ok := named[name]
		switch {
		case !ok:
			t.Fatalf("no %s span: %s", name, describe(spans))
		case i == 0 && s.Parent().IsValid():
			t.Errorf("%s has a parent %s; want it the root", name, s.Parent().SpanID())
		case i > 0 && s.Parent().SpanID() != named[chain[i-1]].SpanContext().SpanID():
			t.Errorf("%s's parent = %s; want %s", name, s.Parent().SpanID(), chain[i-1])
		}
	}
	if reply.TraceID != spans[0].SpanContext().TraceID().String() {
		t.Errorf("the back service's context is in trace %s; want %s", reply.TraceID, spans[0].SpanContext().TraceID())
	}
}

// TestErrorStatus checks the status, error.type and metrics of calls the
// service, the server or the transport failed.
func TestErrorStatus(t *testing.T) {
	tel := newTelemetry(t)
	queue := testQueue(t, "fail")
	serve(t, queue, "Echo", Echo{}, tel.tracing())
	client := dial(t, queue, tel.tracing())

	if err := amqprpc.Call(context.Background(), client, "Echo.Fail", &Args{Text: "soup"}, new(Reply)); err == nil || err.Error() != "no soup today" {
		t.Fatalf("Call(Echo.Fail) = %v; want the service's error", err)
	}
	if err := amqprpc.Call(context.Background(), client, "Echo.Nope", &Args{}, new(Reply)); err == nil {
		t.Fatalf("Call(Echo.Nope) = nil; want net/rpc's can't find method")
	}
	missing := dial(t, testQueue(t, "missing"), tel.tracing())
	if err := amqprpc.Call(context.Background(), missing, "Echo.Echo", &Args{}, new(Reply)); !errors.Is(amqprpc.Cause(err), amqprpc.ErrNoQueue) {
		t.Fatalf("Call to a missing queue = %v; want ErrNoQueue", err)
	}
	spans := tel.waitSpans(t, 5)
	type want struct {
		name, errType, method, original string
	}
	wants := map[string]want{
		"client Echo.Fail": {"Echo.Fail", "service_error", "Echo.Fail", ""},
		"server Echo.Fail": {"Echo.Fail", "service_error", "Echo.Fail", ""},
		"client net_rpc":   {"net_rpc", "unknown_method", "_OTHER", "Echo.Nope"},
		"server net_rpc":   {"net_rpc", "unknown_method", "_OTHER", "Echo.Nope"},
		"client Echo.Echo": {"Echo.Echo", "no_queue", "Echo.Echo", ""},
	}
	if len(spans) != len(wants) {
		t.Fatalf("spans: %s; want %d", describe(spans), len(wants))
	}
	for _, s := range spans {
		key := s.SpanKind().String() + " " + s.Name()
		w, ok := wants[key]
		if !ok {
			t.Errorf("unexpected span %s", key)
			continue
		}
		a := attrs(s)
		if s.Status().Code != codes.Error || a["error.type"].String() != w.errType || a["rpc.method"].String() != w.method || a["rpc.method_original"].String() != w.original {
			t.Errorf("%s: status %v, error.type %q, rpc.method %q, rpc.method_original %q; want Error, %q, %q, %q",
				key, s.Status(), a["error.type"].String(), a["rpc.method"].String(), a["rpc.method_original"].String(), w.errType, w.method, w.original)
		}
	}
	if got := byKind(spans, trace.SpanKindServer); len(got) == 2 && !strings.Contains(statusOf(got, "Echo.Fail"), "no soup today") {
		t.Errorf("SERVER span status description = %q; want the service's error", statusOf(got, "Echo.Fail"))
	}

	for name, want := range map[string][]string{
		"rpc.client.call.duration": {"Echo.Fail service_error", "_OTHER unknown_method", "Echo.Echo no_queue"},
		"rpc.server.call.duration": {"Echo.Fail service_error", "_OTHER unknown_method"},
	} {
		var got []string
		for _, p := range tel.histogram(t, name) {
			a := pointAttrs(p)
			got = append(got, a["rpc.method"]+" "+a["error.type"])
		}
		for _, w := range want {
			if !strings.Contains(strings.Join(got, ","), w) {
				t.Errorf("%s points %q; want one for %q", name, got, w)
			}
		}
	}
}

func statusOf(spans []sdktrace.ReadOnlySpan, name string) string {
	for _, s := range spans {
		if s.Name() == name {
			return s.Status().Description
		}
	}
	return ""
}

// TestDeadlinePropagation checks that, with tracing on, the caller's
// deadline and trace both reach a service two hops away.
func TestDeadlinePropagation(t *testing.T) {
	tel := newTelemetry(t)
	back, front := testQueue(t, "back"), testQueue(t, "front")
	serve(t, back, "Echo", Echo{}, tel.tracing())
	serve(t, front, "Front", &Front{next: dial(t, back, tel.tracing())}, tel.tracing())
	client := dial(t, front, tel.tracing())

	deadline := time.Now().Add(8 * time.Second)
	ctx, cancel := context.WithDeadline(context.Background(), deadline)
	defer cancel()
	ctx, root := tel.root(ctx)
	var reply Reply
	err := amqprpc.Call(ctx, client, "Front.Relay", &Args{Text: "hi"}, &reply)
	root.End()
	if err != nil || !reply.HasDeadline || reply.DeadlineMS != deadline.UnixMilli() || reply.TraceID != root.SpanContext().TraceID().String() {
		t.Errorf("Call(Front.Relay) = %+v, %v; want deadline %d and trace %s two hops away", reply, err, deadline.UnixMilli(), root.SpanContext().TraceID())
	}
}

// TestMalformedTraceparent sends a request whose traceparent is garbage:
// it is served normally, as the root of a new trace.
func TestMalformedTraceparent(t *testing.T) {
	tel := newTelemetry(t)
	queue := testQueue(t, "garbage")
	serve(t, queue, "Echo", Echo{}, tel.tracing())
	conn, err := amqp.Dial(brokerURL(t))
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	ch, err := conn.Channel()
	if err != nil {
		t.Fatal(err)
	}
	replies, err := ch.Consume("amq.rabbitmq.reply-to", "", true, false, false, false, nil)
	if err != nil {
		t.Fatal(err)
	}
	for _, garbage := range []any{"00-zzzz-not-a-trace-01", "00-00000000000000000000000000000000-0000000000000000-01", int64(7)} {
		err := ch.Publish("", queue, false, false, amqp.Publishing{
			Type: "Echo.Echo", ContentType: "application/json", CorrelationId: "c1", ReplyTo: "amq.rabbitmq.reply-to",
			Headers: amqp.Table{"traceparent": garbage, "tracestate": "=,=garbage"},
			Body:    []byte(`{"Text":"hi"}`),
		})
		if err != nil {
			t.Fatal(err)
		}
		select {
		case d := <-replies:
			if d.Headers[amqprpc.ErrorHeader] != nil || !strings.Contains(string(d.Body), `"Text":"hi"`) {
				t.Errorf("reply to traceparent %v = %s, headers %v; want hi", garbage, d.Body, d.Headers)
			}
		case <-time.After(10 * time.Second):
			t.Fatalf("no reply to traceparent %v within 10s", garbage)
		}
	}
	spans := tel.waitSpans(t, 3)
	for _, s := range spans {
		if s.Parent().IsValid() || !s.SpanContext().IsValid() || s.Status().Code == codes.Error {
			t.Errorf("SERVER span of a garbage traceparent: parent %v, trace %s, status %v; want a new valid trace, no error",
				s.Parent().SpanID(), s.SpanContext().TraceID(), s.Status())
		}
	}
}

// TestDefaultsAreGlobal checks that WithTracing() uses the global tracer
// provider, meter provider and propagator, even when they are set after.
func TestDefaultsAreGlobal(t *testing.T) {
	queue := testQueue(t, "global")
	tracing := otelamqprpc.WithTracing() // before the globals are set
	spans := tracetest.NewSpanRecorder()
	tp := sdktrace.NewTracerProvider(sdktrace.WithSpanProcessor(spans))
	reader := sdkmetric.NewManualReader()
	mp := sdkmetric.NewMeterProvider(sdkmetric.WithReader(reader))
	prevTP, prevMP, prevProp := otel.GetTracerProvider(), otel.GetMeterProvider(), otel.GetTextMapPropagator()
	otel.SetTracerProvider(tp)
	otel.SetMeterProvider(mp)
	otel.SetTextMapPropagator(propagation.TraceContext{})
	t.Cleanup(func() {
		otel.SetTracerProvider(prevTP)
		otel.SetMeterProvider(prevMP)
		otel.SetTextMapPropagator(prevProp)
		_ = tp.Shutdown(context.Background())
		_ = mp.Shutdown(context.Background())
	})
	serve(t, queue, "Echo", Echo{}, tracing)
	client := dial(t, queue, tracing)
	if err := amqprpc.Call(context.Background(), client, "Echo.Echo", &Args{Text: "hi"}, new(Reply)); err != nil {
		t.Fatal(err)
	}
	tel := &telemetry{spans: spans, tp: tp, reader: reader, mp: mp}
	got := tel.waitSpans(t, 2)
	if c, s := byKind(got, trace.SpanKindClient), byKind(got, trace.SpanKindServer); len(c) != 1 || len(s) != 1 || s[0].Parent().SpanID() != c[0].SpanContext().SpanID() {
		t.Errorf("spans with the global providers: %s; want a CLIENT span and its SERVER child", describe(got))
	}
	if points := tel.histogram(t, "rpc.client.call.duration"); len(points) != 1 {
		t.Errorf("rpc.client.call.duration with the global meter provider: %d points; want 1", len(points))
	}
}

package otelamqprpc

import (
	"context"
	"errors"
	"net/rpc"
	"strings"
	"time"

	"go.opentelemetry.io/otel"
	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/codes"
	"go.opentelemetry.io/otel/propagation"
	semconv "go.opentelemetry.io/otel/semconv/v1.43.0"
	"go.opentelemetry.io/otel/semconv/v1.43.0/rpcconv"
	"go.opentelemetry.io/otel/trace"

	"github.com/amqprpc/amqprpc"
)

// SystemName is the rpc.system.name of amqprpc's calls: net/rpc's.
const SystemName = "net_rpc"

// otherMethod is rpc.method for a method the server does not have.
const otherMethod = "_OTHER"

// tracing holds what the hooks of WithTracing share.
type tracing struct {
	tracer      trace.Tracer
	propagators propagation.TextMapPropagator
	clientCalls rpcconv.ClientCallDuration
	serverCalls rpcconv.ServerCallDuration
}

func newTracing(c config) *tracing {
	t := &tracing{
		tracer:      c.tracerProvider.Tracer(ScopeName, trace.WithSchemaURL(semconv.SchemaURL)),
		propagators: c.propagators,
	}
	meter := c.meterProvider.Meter(ScopeName)
	var err error
	if t.clientCalls, err = rpcconv.NewClientCallDuration(meter); err != nil {
		otel.Handle(err) // the instrument is then a no-op
	}
	if t.serverCalls, err = rpcconv.NewServerCallDuration(meter); err != nil {
		otel.Handle(err)
	}
	return t
}

// client is the client hook: a CLIENT span per call, whose context goes
// into the request's headers.
func (t *tracing) client(ctx context.Context, info *amqprpc.CallInfo) amqprpc.CallEnd {
	method := info.Method
	ctx, span := t.tracer.Start(ctx, spanName(method),
		trace.WithSpanKind(trace.SpanKindClient),
		trace.WithAttributes(callAttributes(info)...))
	t.propagators.Inject(ctx, headerCarrier(info.Header))
	return func(elapsed time.Duration, err error) {
		t.clientCalls.Record(ctx, elapsed.Seconds(), SystemName, outcome(span, method, err)...)
		span.End() // after the record: whoever sees the span ended sees the duration
	}
}

// server is the server hook: a SERVER span per request, the child of the
// span whose context the request's headers carry, if any.
func (t *tracing) server(ctx context.Context, info *amqprpc.CallInfo) (context.Context, amqprpc.CallEnd) {
	method := info.Method
	ctx = t.propagators.Extract(ctx, headerCarrier(info.Header))
	ctx, span := t.tracer.Start(ctx, spanName(method),
		trace.WithSpanKind(trace.SpanKindServer),
		trace.WithAttributes(callAttributes(info)...))
	return ctx, func(elapsed time.Duration, err error) {
		t.serverCalls.Record(ctx, elapsed.Seconds(), SystemName, outcome(span, method, err)...)
		span.End()
	}
}

func spanName(method string) string {
	if method == "" {
		return SystemName
	}
	return method
}

// callAttributes are the attributes a span starts with.
func callAttributes(info *amqprpc.CallInfo) []attribute.KeyValue {
	attrs := []attribute.KeyValue{
		semconv.RPCSystemNameKey.String(SystemName),
		semconv.RPCMethod(info.Method),
		semconv.MessagingSystemRabbitMQ,
		semconv.MessagingDestinationName(info.Queue),
		semconv.MessagingMessageConversationID(info.CorrelationID),
	}
	if info.MessageID != "" {
		attrs = append(attrs, semconv.MessagingMessageID(info.MessageID))
	}
	return attrs
}

// outcome sets on span how the call ended, and returns the attributes of
// the duration's record: rpc.method and, on failure, error.type. The caller
// ends the span.
func outcome(span trace.Span, method string, err error) []attribute.KeyValue {
	if err == nil {
		return []attribute.KeyValue{semconv.RPCMethod(method)}
	}
	typ := errorType(err)
	if typ == "unknown_method" || method == "" {
		span.SetName(SystemName)
		span.SetAttributes(semconv.RPCMethod(otherMethod), semconv.RPCMethodOriginal(method))
		method = otherMethod
	}
	span.SetAttributes(semconv.ErrorTypeKey.String(typ))
	span.SetStatus(codes.Error, err.Error())
	return []attribute.KeyValue{semconv.RPCMethod(method), semconv.ErrorTypeKey.String(typ)}
}

// errorTypes names the failures amqprpc's sentinels stand for.
var errorTypes = []struct {
	err error
	typ string
}{
	{amqprpc.ErrTimeout, "timeout"},
	{amqprpc.ErrNoQueue, "no_queue"},
	{amqprpc.ErrConnectionLost, "connection_lost"},
	{amqprpc.ErrBlocked, "blocked"},
	{amqprpc.ErrClosed, "closed"},
	{amqprpc.ErrMalformedReply, "malformed_reply"},
	{amqprpc.ErrMalformedRequest, "malformed_request"},
	{amqprpc.ErrNoMethod, "unknown_method"},
	{amqprpc.ErrUnsupportedContentType, "unsupported_content_type"},
	{amqprpc.ErrBodyTooLarge, "body_too_large"},
	{amqprpc.ErrNacked, "nacked"},
	{amqprpc.ErrTooManyCalls, "too_many_calls"},
	{context.Canceled, "context_canceled"},
	{context.DeadlineExceeded, "context_deadline_exceeded"},
	{rpc.ErrShutdown, "shutdown"},
}

// netrpcUnknown are net/rpc's texts for a method a server does not have.
var netrpcUnknown = []string{"rpc: can't find service ", "rpc: can't find method ", "rpc: service/method request ill-formed: "}

// errorType is the error.type of a failed call: a few values, whatever the
// error's text.
func errorType(err error) string {
	cause := amqprpc.Cause(err)
	for _, e := range errorTypes {
		if errors.Is(cause, e.err) {
			return e.typ
		}
	}
	var se rpc.ServerError
	if errors.As(err, &se) {
		for _, prefix := range netrpcUnknown {
			if strings.HasPrefix(string(se), prefix) {
				return "unknown_method"
			}
		}
		return "service_error"
	}
	return semconv.ErrorTypeOther.Value.AsString()
}

// headerCarrier reads and writes the trace context in a request's AMQP
// headers table, as string entries.
type headerCarrier map[string]any

func (h headerCarrier) Get(key string) string {
	switch v := h[key].(type) {
	case string:
		return v
	case []byte:
		return string(v)
	}
	return ""
}

func (h headerCarrier) Set(key, value string) {
	if h != nil {
		h[key] = value
	}
}

func (h headerCarrier) Keys() []string {
	keys := make([]string, 0, len(h))
	for k := range h {
		keys = append(keys, k)
	}
	return keys
}

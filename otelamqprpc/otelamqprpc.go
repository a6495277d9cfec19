// Package otelamqprpc traces amqprpc calls with OpenTelemetry, across the
// broker, and records their durations.
//
// [WithTracing] returns an option for both sides, built on amqprpc's hooks:
//
//	client, err := amqprpc.Dial(url, "kitchen", otelamqprpc.WithTracing())
//	err = amqprpc.Serve(ctx, nil, url, "kitchen", otelamqprpc.WithTracing())
//
// A caller passes its context to [amqprpc.Call], and the span in it becomes
// the parent of the call's CLIENT span; the client writes the W3C
// traceparent and tracestate entries into the request's AMQP headers with
// the configured propagator; the server reads them back and starts the
// SERVER span as the child of the CLIENT span. A service whose argument
// type embeds [amqprpc.Delivery] gets a context holding the SERVER span
// from args.Context(), and passes it to its own calls, so one trace runs
// through every service a request reaches. Calls made with client.Call or
// client.Go are traced too, each as the root of a trace of its own.
//
// Spans are named after the method ("Service.Method") and follow
// OpenTelemetry's semantic conventions for RPC and messaging: rpc.system.name
// (net_rpc), rpc.method, messaging.system (rabbitmq),
// messaging.destination.name (the service queue),
// messaging.message.conversation_id (the correlation id) and
// messaging.message.id. A call that fails, by the service's error or the
// transport's, has status Error and an error.type: service_error for a
// service's own error, unknown_method for a method the server does not
// have, timeout, no_queue, connection_lost and the like for the
// transport's failures (one per amqprpc sentinel), context_canceled and
// context_deadline_exceeded for a call whose context ended. A method the
// server does not have is recorded as rpc.method _OTHER, with the name in
// rpc.method_original, so that a caller cannot add metric series at will.
//
// The histograms rpc.client.call.duration and rpc.server.call.duration
// record every call's duration in seconds, with rpc.system.name,
// rpc.method and, on failure, error.type.
//
// By default WithTracing uses the global tracer provider, meter provider
// and text-map propagator (otel.SetTracerProvider and the like, which may
// also be set after WithTracing); [WithTracerProvider],
// [WithMeterProvider] and [WithPropagators] override them.
package otelamqprpc

import (
	"go.opentelemetry.io/otel"
	"go.opentelemetry.io/otel/metric"
	"go.opentelemetry.io/otel/propagation"
	"go.opentelemetry.io/otel/trace"

	"github.com/amqprpc/amqprpc"
)

// ScopeName is the instrumentation scope of the tracer and the meter.
const ScopeName = "github.com/amqprpc/amqprpc/otelamqprpc"

// Option configures [WithTracing].
type Option interface{ apply(*config) }

type optionFunc func(*config)

func (f optionFunc) apply(c *config) { f(c) }

type config struct {
	tracerProvider trace.TracerProvider
	meterProvider  metric.MeterProvider
	propagators    propagation.TextMapPropagator
}

// WithTracerProvider makes spans with tp instead of the global tracer
// provider. A nil tp keeps the global one.
func WithTracerProvider(tp trace.TracerProvider) Option {
	return optionFunc(func(c *config) {
		if tp != nil {
			c.tracerProvider = tp
		}
	})
}

// WithMeterProvider records the call durations with mp instead of the
// global meter provider. A nil mp keeps the global one.
func WithMeterProvider(mp metric.MeterProvider) Option {
	return optionFunc(func(c *config) {
		if mp != nil {
			c.meterProvider = mp
		}
	})
}

// WithPropagators writes and reads the trace context in the request's
// headers with p instead of the global text-map propagator. A nil p keeps
// the global one.
func WithPropagators(p propagation.TextMapPropagator) Option {
	return optionFunc(func(c *config) {
		if p != nil {
			c.propagators = p
		}
	})
}

// WithTracing returns an option that traces the calls of a client ([amqprpc.Dial],
// [amqprpc.NewClientCodec]) or of a server ([amqprpc.Serve],
// [amqprpc.NewServerCodec]) and records their durations, as the package
// documentation describes. It is the hooks of [amqprpc.WithHooks], and
// composes with other hooks and options.
func WithTracing(opts ...Option) amqprpc.Option {
	c := config{
		tracerProvider: otel.GetTracerProvider(),
		meterProvider:  otel.GetMeterProvider(),
		propagators:    otel.GetTextMapPropagator(),
	}
	for _, o := range opts {
		if o != nil {
			o.apply(&c)
		}
	}
	t := newTracing(c)
	return amqprpc.WithHooks(t.client, t.server)
}

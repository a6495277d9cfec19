// Command example traces the kitchen example (examples/kitchen) with
// OpenTelemetry: a customer asks the chef for a dish, and the chef has the
// prep cook and the cutter help, each a service on its own queue, every
// call through the broker. One trace runs from the customer through the
// chef to both helpers. The SDK's stdout exporter prints each span as JSON
// as it ends; the program then draws the trace as a tree:
//
//	cd otelamqprpc && go run ./example
package main

import (
	"cmp"
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"log"
	"os"
	"os/signal"
	"slices"
	"strings"
	"sync"
	"syscall"
	"time"

	"go.opentelemetry.io/otel/exporters/stdout/stdouttrace"
	"go.opentelemetry.io/otel/propagation"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"go.opentelemetry.io/otel/trace"

	"github.com/amqprpc/amqprpc"
	"github.com/amqprpc/amqprpc/examples/kitchen/services"
	"github.com/amqprpc/amqprpc/otelamqprpc"
)

func main() {
	url := flag.String("url", cmp.Or(os.Getenv("AMQP_URL"), "amqp://guest:guest@127.0.0.1:5672/"), "broker URL")
	prefix := flag.String("prefix", "traced-kitchen", "prefix of the queue names")
	jsonSpans := flag.Bool("json", true, "print every span as JSON (the SDK's stdout exporter)")
	flag.Parse()
	log.SetFlags(0)

	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	spans := io.Discard
	if *jsonSpans {
		spans = os.Stdout
	}
	if err := run(ctx, *url, services.NewQueues(*prefix), spans, os.Stdout); err != nil {
		log.Fatal(err)
	}
}

// run serves the kitchen with tracing, orders a dish as a customer within
// a span of its own, writes the spans to spans as JSON, and draws the
// trace on w.
func run(ctx context.Context, url string, q services.Queues, spans, w io.Writer) error {
	exporter, err := stdouttrace.New(stdouttrace.WithWriter(spans), stdouttrace.WithPrettyPrint())
	if err != nil {
		return err
	}
	var tree treeRecorder
	tp := sdktrace.NewTracerProvider(sdktrace.WithSyncer(exporter), sdktrace.WithSpanProcessor(&tree))
	defer tp.Shutdown(context.Background())
	// Every client and server of the kitchen traces with tp. The global
	// providers would do as well (otel.SetTracerProvider,
	// otel.SetTextMapPropagator), with otelamqprpc.WithTracing() alone.
	tracing := otelamqprpc.WithTracing(otelamqprpc.WithTracerProvider(tp), otelamqprpc.WithPropagators(propagation.TraceContext{}))
	timeout := amqprpc.WithCallTimeout(10 * time.Second)

	chef, err := services.DialChef(url, q, tracing, timeout)
	if err != nil {
		return err
	}
	defer chef.Close() // once the chef's server has returned
	// The chef stops before his helpers, who may be finishing his dish.
	helpers, err := startServers(url, map[string]any{q.PrepCook: new(services.PrepCook), q.Cutter: new(services.Cutter)}, tracing)
	if err != nil {
		return err
	}
	defer helpers.stop()
	kitchen, err := startServers(url, map[string]any{q.Chef: chef}, tracing)
	if err != nil {
		return err
	}
	defer kitchen.stop()
	customer, err := amqprpc.Dial(url, q.Chef, tracing, timeout)
	if err != nil {
		return err
	}
	defer customer.Close()

	ctx, span := tp.Tracer("customer").Start(ctx, "customer orders "+services.ScallionWithTofu)
	var dish services.Dish
	err = amqprpc.Call(ctx, customer, "Chef.Cook", &services.DishArgs{Name: services.ScallionWithTofu}, &dish)
	span.End()
	if err != nil {
		return err
	}
	fmt.Fprintf(w, "\n%s, in %d steps; its trace, through the broker:\n\n", dish.Name, len(dish.Steps))
	// The servers end their spans once their replies are out, which may be
	// just after the customer has the dish.
	if !tree.wait(7, 5*time.Second) {
		return errors.New("the servers' spans did not end within 5s")
	}
	tree.draw(w, span.SpanContext().TraceID())
	return nil
}

// servers are services served in the background.
type servers struct {
	cancel context.CancelFunc
	wg     sync.WaitGroup
}

// startServers serves each service of rcvrs (queue to service) until stop,
// and returns once each consumes its queue.
func startServers(url string, rcvrs map[string]any, opts ...amqprpc.ServerOption) (*servers, error) {
	ctx, cancel := context.WithCancel(context.Background())
	s := &servers{cancel: cancel}
	errs := make(chan error, len(rcvrs))
	for queue, rcvr := range rcvrs {
		ready := amqprpc.WithReady(func() { errs <- nil })
		s.wg.Go(func() {
			if err := services.Serve(ctx, url, queue, rcvr, append(opts, ready)...); err != nil {
				errs <- fmt.Errorf("serve %q: %w", queue, err)
			}
		})
	}
	for range rcvrs {
		if err := <-errs; err != nil {
			s.stop()
			return nil, err
		}
	}
	return s, nil
}

// stop stops the servers and waits until each has replied to the calls it
// had taken.
func (s *servers) stop() {
	s.cancel()
	s.wg.Wait()
}

// treeRecorder is a span processor that keeps the spans that end, to draw
// their trace.
type treeRecorder struct {
	mu    sync.Mutex // guards spans
	spans []sdktrace.ReadOnlySpan
}

func (r *treeRecorder) OnStart(context.Context, sdktrace.ReadWriteSpan) {}
func (r *treeRecorder) Shutdown(context.Context) error                  { return nil }
func (r *treeRecorder) ForceFlush(context.Context) error                { return nil }

func (r *treeRecorder) OnEnd(s sdktrace.ReadOnlySpan) {
	r.mu.Lock()
	r.spans = append(r.spans, s)
	r.mu.Unlock()
}

// wait waits until n spans have ended, for up to d.
func (r *treeRecorder) wait(n int, d time.Duration) bool {
	for deadline := time.Now().Add(d); ; time.Sleep(10 * time.Millisecond) {
		r.mu.Lock()
		got := len(r.spans)
		r.mu.Unlock()
		if got >= n {
			return true
		}
		if time.Now().After(deadline) {
			return false
		}
	}
}

// draw writes the spans of one trace as a tree, each under its parent, in
// the order they started.
func (r *treeRecorder) draw(w io.Writer, id trace.TraceID) {
	r.mu.Lock()
	defer r.mu.Unlock()
	children := make(map[trace.SpanID][]sdktrace.ReadOnlySpan)
	for _, s := range r.spans {
		if s.SpanContext().TraceID() == id {
			children[s.Parent().SpanID()] = append(children[s.Parent().SpanID()], s)
		}
	}
	var walk func(parent trace.SpanID, indent string)
	walk = func(parent trace.SpanID, indent string) {
		kids := children[parent]
		slices.SortFunc(kids, func(a, b sdktrace.ReadOnlySpan) int { return a.StartTime().Compare(b.StartTime()) })
		for i, s := range kids {
			branch, next := "├─ ", "│  "
			if i == len(kids)-1 {
				branch, next = "└─ ", "   "
			}
			label := s.Name()
			if k := s.SpanKind(); k == trace.SpanKindClient || k == trace.SpanKindServer {
				label += " (" + strings.ToUpper(k.String()) + ")"
			}
			took := s.EndTime().Sub(s.StartTime()).Round(10 * time.Microsecond)
			fmt.Fprintf(w, "%-58s %10v\n", indent+branch+label, took)
			walk(s.SpanContext().SpanID(), indent+next)
		}
	}
	fmt.Fprintf(w, "trace %s\n", id)
	walk(trace.SpanID{}, "")
}

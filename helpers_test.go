package amqprpc

import (
	"context"
	"errors"
	"net/rpc"
	"os"
	"sync/atomic"
	"testing"
	"time"

	amqp "github.com/rabbitmq/amqp091-go"
	"github.com/stretchr/testify/require"

	"github.com/amqprpc/amqprpc/internal/brokertest"
)

func TestMain(m *testing.M) {
	// The test binary doubles as a server process for fault tests that
	// kill a server (see startChildServer).
	if queue := os.Getenv(childServerEnv); queue != "" {
		os.Exit(runChildServer(queue))
	}
	brokertest.Main(m)
}

// testQueue returns a queue name unique to this test run and deletes the
// queue when the test ends.
func testQueue(t testing.TB) string {
	t.Helper()
	return brokertest.Queue(t, brokertest.URL(t), t.Name())
}

// rawConn opens a plain amqp091-go connection and channel for the test to
// play a foreign client or server with.
func rawConn(t testing.TB) (*amqp.Connection, *amqp.Channel) {
	t.Helper()
	return brokertest.Conn(t, brokertest.URL(t))
}

// Args, Quotient and Arith are net/rpc's own example service, with a few
// methods added for tests.
type Args struct{ A, B int }

type Quotient struct{ Quo, Rem int }

type Payload struct {
	Data []byte
	Note string
}

type Arith struct {
	name  string
	calls atomic.Int64
	gate  chan struct{} // Wait blocks until it is closed
	began chan int      // Wait reports its argument here when it starts
}

func newArith(name string) *Arith {
	return &Arith{name: name, gate: make(chan struct{}), began: make(chan int, 1024)}
}

func (t *Arith) Multiply(args *Args, reply *int) error {
	t.calls.Add(1)
	*reply = args.A * args.B
	return nil
}

func (t *Arith) Divide(args *Args, quo *Quotient) error {
	t.calls.Add(1)
	if args.B == 0 {
		return errors.New("divide by zero")
	}
	quo.Quo = args.A / args.B
	quo.Rem = args.A % args.B
	return nil
}

// Who answers with the name of the server instance.
func (t *Arith) Who(args *Args, reply *string) error {
	t.calls.Add(1)
	*reply = t.name
	return nil
}

// Echo returns its argument.
func (t *Arith) Echo(args *Payload, reply *Payload) error {
	t.calls.Add(1)
	*reply = *args
	return nil
}

// waitBegan waits, within 10 s, for a Wait call to start, and returns its
// argument.
func (t *Arith) waitBegan(tb testing.TB) int {
	tb.Helper()
	select {
	case a := <-t.began:
		return a
	case <-time.After(10 * time.Second):
		tb.Fatalf("no Arith.Wait call began within 10s")
		return 0
	}
}

// Wait blocks until the test opens the gate, then multiplies.
func (t *Arith) Wait(args *Args, reply *int) error {
	t.calls.Add(1)
	t.began <- args.A
	<-t.gate
	*reply = args.A * args.B
	return nil
}

// open releases every Wait call, once.
func (t *Arith) open() {
	select {
	case <-t.gate:
	default:
		close(t.gate)
	}
}

// serveArith serves svc as "Arith" on queue at url until the test ends or
// the returned server's Stop.
func serveArith(t testing.TB, svc any, url, queue string, opts ...ServerOption) *brokertest.Server {
	t.Helper()
	srv := rpc.NewServer()
	require.NoError(t, srv.RegisterName("Arith", svc))
	return brokertest.Serve(t, func(ctx context.Context) error { return Serve(ctx, srv, url, queue, opts...) })
}

// startServer serves svc on queue at the test broker until the test ends,
// and waits until the server consumes.
func startServer(t testing.TB, svc any, queue string, opts ...ServerOption) (stop func()) {
	t.Helper()
	url := brokertest.URL(t)
	s := serveArith(t, svc, url, queue, opts...)
	brokertest.WaitForConsumers(t, url, queue, 1, s)
	return s.Stop
}

// faultServer serves an Arith whose Wait does not block on queue at url
// (a private node, a proxy, a TLS listener) until the test ends, without
// waiting for it to consume.
func faultServer(t testing.TB, url, queue string, opts ...ServerOption) *Arith {
	t.Helper()
	svc := newArith("fault")
	svc.open()
	serveArith(t, svc, url, queue, opts...)
	return svc
}

// callWorks waits until a call through client succeeds, or fails the test.
func callWorks(t testing.TB, client *rpc.Client, within time.Duration, what string) {
	t.Helper()
	deadline := time.Now().Add(within)
	var err error
	for time.Now().Before(deadline) {
		var r int
		if err = client.Call("Arith.Multiply", &Args{6, 7}, &r); err == nil && r == 42 {
			return
		}
		time.Sleep(50 * time.Millisecond) // polling for recovery
	}
	t.Fatalf("%s: no successful call within %v; last error %v", what, within, err)
}

// dial returns a client for queue at the test broker, closed when the test
// ends.
func dial(t testing.TB, queue string, opts ...ClientOption) *rpc.Client {
	t.Helper()
	return brokertest.Dial(t, Dial, brokertest.URL(t), queue, opts...)
}

// replyModes runs f with a private reply queue and with direct reply-to.
func replyModes(t *testing.T, f func(t *testing.T, mode ClientOption)) {
	for _, m := range replyModeOptions {
		t.Run(m.name, func(t *testing.T) { f(t, m.opt) })
	}
}

// within fails the test if f does not return within d.
func within(t testing.TB, d time.Duration, what string, f func()) {
	t.Helper()
	done := make(chan struct{})
	go func() {
		defer close(done)
		f()
	}()
	select {
	case <-done:
	case <-time.After(d):
		t.Fatalf("%s did not finish within %v", what, d)
	}
}

// multiply calls Arith.Multiply with a and b through client and fails the
// test unless the answer is a*b; when says when the call is made ("after
// a bad request"), for the message.
func multiply(t testing.TB, client *rpc.Client, a, b int, when string) {
	t.Helper()
	if when != "" {
		when = " " + when
	}
	var r int
	if err := client.Call("Arith.Multiply", &Args{a, b}, &r); err != nil || r != a*b {
		t.Fatalf("Call(Arith.Multiply, %d*%d)%s = %d, %v; want %d, nil", a, b, when, r, err, a*b)
	}
}

// waitCall waits up to d for call to end and returns it, failing the test
// if it does not end.
func waitCall(t testing.TB, call *rpc.Call, d time.Duration, what string) *rpc.Call {
	t.Helper()
	select {
	case c := <-call.Done:
		return c
	case <-time.After(d):
		t.Fatalf("%s: not ended within %v", what, d)
		return nil
	}
}

// replyModeOptions are the two reply modes a client can use.
var replyModeOptions = []struct {
	name string
	opt  ClientOption
}{
	{"private-queue", privateReplyQueue},
	{"direct-reply-to", WithDirectReplyTo()},
}

// privateReplyQueue is the default reply mode, as an option that sets
// nothing, for tables that run both modes.
var privateReplyQueue ClientOption = client(func(*clientOptions) {})

// asClient and asServer pass a list of options for both sides to one.
func asClient(opts []Option) []ClientOption {
	out := make([]ClientOption, len(opts))
	for i, o := range opts {
		out[i] = o
	}
	return out
}

func asServer(opts []Option) []ServerOption {
	out := make([]ServerOption, len(opts))
	for i, o := range opts {
		out[i] = o
	}
	return out
}

// withInspectWait lets a timeout wait d for the broker's answer about the
// queue, for tests that check what the timeout's error says about it on a
// broker that busy neighbours can slow past the usual 500 ms.
func withInspectWait(d time.Duration) ClientOption {
	return client(func(o *clientOptions) { o.inspectWait = d })
}

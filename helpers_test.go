package amqprpc

import (
	"context"
	"errors"
	"fmt"
	"net/rpc"
	"os"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/google/uuid"
	amqp "github.com/rabbitmq/amqp091-go"
	"go.uber.org/goleak"
)

func TestMain(m *testing.M) {
	// The test binary doubles as a server process for fault tests that
	// kill a server (see startChildServer).
	if queue := os.Getenv(childServerEnv); queue != "" {
		os.Exit(runChildServer(queue))
	}
	goleak.VerifyTestMain(m)
}

// brokerURL returns the test broker's URL, failing the test when the broker
// is missing under CI and skipping it otherwise.
func brokerURL(t testing.TB) string {
	t.Helper()
	url := os.Getenv("AMQP_URL")
	if url == "" {
		url = "amqp://guest:guest@127.0.0.1:5672/"
	}
	conn, err := amqp.Dial(url)
	if err != nil {
		if os.Getenv("CI") != "" {
			t.Fatalf("CI is set and the broker at %s is not reachable: %v (run `make test`, which starts one)", RedactURL(url), err)
		}
		t.Skipf("no broker at %s (%v); set CI=1 to make this a failure, or run `make test`", RedactURL(url), err)
	}
	conn.Close()
	return url
}

// testQueue returns a queue name unique to this test run and deletes the
// queue when the test ends.
func testQueue(t testing.TB) string {
	t.Helper()
	name := "amqprpc-test-" + strings.ReplaceAll(t.Name(), "/", "-") + "-" + uuid.NewString()[:8]
	url := brokerURL(t)
	t.Cleanup(func() {
		conn, err := amqp.Dial(url)
		if err != nil {
			return
		}
		defer conn.Close()
		ch, err := conn.Channel()
		if err != nil {
			return
		}
		_, _ = ch.QueueDelete(name, false, false, false)
	})
	return name
}

// rawConn opens a plain amqp091-go connection and channel for the test to
// play a foreign client or server with.
func rawConn(t testing.TB) (*amqp.Connection, *amqp.Channel) {
	t.Helper()
	conn, err := amqp.Dial(brokerURL(t))
	if err != nil {
		t.Fatalf("amqp.Dial = %v", err)
	}
	t.Cleanup(func() { conn.Close() })
	ch, err := conn.Channel()
	if err != nil {
		t.Fatalf("Channel = %v", err)
	}
	return conn, ch
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

// startServer serves svc on queue until the test ends, and waits until the
// server consumes.
func startServer(t testing.TB, svc any, queue string, opts ...ServerOption) (stop func()) {
	t.Helper()
	url := brokerURL(t)
	srv := rpc.NewServer()
	if err := srv.RegisterName("Arith", svc); err != nil {
		t.Fatalf("RegisterName = %v", err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- Serve(ctx, srv, url, queue, opts...) }()
	var once sync.Once
	stop = func() {
		once.Do(func() {
			cancel()
			select {
			case err := <-done:
				if err != nil {
					t.Errorf("Serve = %v; want nil after cancel", err)
				}
			case <-time.After(20 * time.Second):
				t.Errorf("Serve did not return within 20s of cancel")
			}
		})
	}
	t.Cleanup(stop)
	waitForConsumers(t, queue, 1, done)
	return stop
}

// waitForConsumers waits until queue has at least n consumers.
func waitForConsumers(t testing.TB, queue string, n int, serveDone <-chan error) {
	t.Helper()
	conn, _ := rawConn(t)
	waitFor(t, 10*time.Second, fmt.Sprintf("%d consumers on %q", n, queue), func() bool {
		select {
		case err := <-serveDone:
			t.Fatalf("Serve(%q) returned early: %v", queue, err)
		default:
		}
		return consumerCount(conn, queue) >= n
	})
}

// consumerCount returns the consumers of queue, or -1 when it does not
// exist. It uses a channel of its own, since a passive declare of a missing
// queue closes the channel.
func consumerCount(conn *amqp.Connection, queue string) int {
	ch, err := conn.Channel()
	if err != nil {
		return -1
	}
	defer ch.Close()
	q, err := ch.QueueDeclarePassive(queue, true, false, false, false, nil)
	if err != nil {
		return -1
	}
	return q.Consumers
}

// queueDepth returns the ready messages of queue, or -1 when it does not
// exist.
func queueDepth(conn *amqp.Connection, queue string) int {
	ch, err := conn.Channel()
	if err != nil {
		return -1
	}
	defer ch.Close()
	q, err := ch.QueueDeclarePassive(queue, true, false, false, false, nil)
	if err != nil {
		return -1
	}
	return q.Messages
}

// waitFor polls cond until it holds or d passes.
func waitFor(t testing.TB, d time.Duration, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(d)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("%s: not within %v", what, d)
		}
		time.Sleep(20 * time.Millisecond) // polling a condition with a deadline
	}
}

// dial returns a client for queue, closed when the test ends.
func dial(t testing.TB, queue string, opts ...ClientOption) *rpc.Client {
	t.Helper()
	c, err := Dial(brokerURL(t), queue, opts...)
	if err != nil {
		t.Fatalf("Dial(%q) = %v", queue, err)
	}
	t.Cleanup(func() { c.Close() })
	return c
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

// consumeRaw consumes queue with auto-ack on ch and returns the deliveries.
func consumeRaw(t testing.TB, ch *amqp.Channel, queue string) <-chan amqp.Delivery {
	t.Helper()
	d, err := ch.Consume(queue, "", true, false, false, false, nil)
	if err != nil {
		t.Fatalf("Consume(%q) = %v", queue, err)
	}
	return d
}

// nextDelivery waits for one delivery.
func nextDelivery(t testing.TB, d <-chan amqp.Delivery, what string) amqp.Delivery {
	t.Helper()
	select {
	case m, ok := <-d:
		if !ok {
			t.Fatalf("%s: deliveries closed", what)
		}
		return m
	case <-time.After(10 * time.Second):
		t.Fatalf("%s: nothing within 10s", what)
	}
	return amqp.Delivery{}
}

// noDelivery checks that nothing arrives within d.
func noDelivery(t testing.TB, dl <-chan amqp.Delivery, d time.Duration, what string) {
	t.Helper()
	select {
	case m := <-dl:
		t.Fatalf("%s: got %q (correlation id %q); want nothing", what, m.Body, m.CorrelationId)
	case <-time.After(d):
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

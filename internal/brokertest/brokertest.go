// Package brokertest holds what tests need to run against the real broker:
// its URL (failing under CI when it is missing), unique queues deleted when
// the test ends, servers stopped with the test, clients closed with it,
// questions put to the broker about a queue, and waiting for a condition.
// The root package's tests and the examples' tests both use it; it knows
// nothing of amqprpc, so that the root package's own tests can import it.
package brokertest

import (
	"cmp"
	"context"
	"crypto/rand"
	"fmt"
	"net/rpc"
	"net/url"
	"os"
	"strings"
	"sync"
	"testing"
	"time"

	amqp "github.com/rabbitmq/amqp091-go"

	"go.uber.org/goleak"
)

// DefaultURL is the broker the tests use when AMQP_URL is not set.
const DefaultURL = "amqp://guest:guest@127.0.0.1:5672/"

// stopTimeout bounds how long a server may take to return once its
// context is cancelled.
const stopTimeout = 20 * time.Second

// URL returns the test broker's URL (AMQP_URL, or DefaultURL). When the
// broker is unreachable it fails the test if CI is set and skips it
// otherwise. Under -short it skips the test at once (SkipShort).
func URL(t testing.TB) string {
	t.Helper()
	SkipShort(t, "the broker")
	u := cmp.Or(os.Getenv("AMQP_URL"), DefaultURL)
	conn, err := amqp.Dial(u)
	if err != nil {
		if os.Getenv("CI") != "" {
			t.Fatalf("CI is set and the broker at %s is not reachable: %v (run `make broker`, or `make test`, which starts one)", redact(u), err)
		}
		t.Skipf("no broker at %s (%v); set CI=1 to make this a failure, or run `make test`", redact(u), err)
	}
	conn.Close()
	return u
}

// SkipShort skips the test under go test -short (make unit), which runs
// only the tests that need no broker, no private node and no tool; what
// says what this one needs. It skips whether or not CI is set: -short
// chooses which tests run, it does not hide a missing broker, and CI runs
// without it.
func SkipShort(t testing.TB, what string) {
	t.Helper()
	if testing.Short() {
		t.Skipf("needs %s; -short runs only the tests that need none", what)
	}
}

// Missing reports that something the test needs (a tool, a package) is
// missing: it fails the test if CI is set and skips it otherwise. how says
// what installs it.
func Missing(t testing.TB, what, how string) {
	t.Helper()
	if os.Getenv("CI") != "" {
		t.Fatalf("CI is set and %s; %s", what, how)
	}
	t.Skipf("%s; %s (set CI=1 to make this a failure)", what, how)
}

// redact hides the password of a URL, for messages.
func redact(rawURL string) string {
	u, err := url.Parse(rawURL)
	if err != nil {
		return "the AMQP_URL given"
	}
	return u.Redacted()
}

// Queue returns a queue name that holds what (a test's name, say, with
// its slashes replaced) and is unique to this run, and deletes the queue
// from the broker at url when the test ends: whatever declared it, durable
// or not, nothing is left behind.
func Queue(t testing.TB, url, what string) string {
	t.Helper()
	what = strings.ReplaceAll(what, "/", "-")
	if len(what) > 200 { // AMQP allows 255 bytes
		what = what[:200]
	}
	name := "amqprpc-test-" + what + "-" + strings.ToLower(rand.Text()[:8])
	t.Cleanup(func() {
		conn, err := amqp.Dial(url)
		if err != nil {
			t.Errorf("deleting queue %q: %v", name, err)
			return
		}
		defer conn.Close()
		ch, err := conn.Channel()
		if err != nil {
			t.Errorf("deleting queue %q: %v", name, err)
			return
		}
		if _, err := ch.QueueDelete(name, false, false, false); err != nil {
			t.Errorf("deleting queue %q: %v", name, err)
		}
	})
	return name
}

// Conn opens a plain amqp091-go connection to url and a channel on it,
// closed when the test ends, for a test to play a foreign client or server
// with, or to ask the broker about a queue.
func Conn(t testing.TB, url string) (*amqp.Connection, *amqp.Channel) {
	t.Helper()
	conn, err := amqp.Dial(url)
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

// Consumers returns the consumers of queue, or -1 when it does not exist.
func Consumers(conn *amqp.Connection, queue string) int {
	q, ok := inspect(conn, queue)
	if !ok {
		return -1
	}
	return q.Consumers
}

// Depth returns the ready messages of queue, or -1 when it does not exist.
func Depth(conn *amqp.Connection, queue string) int {
	q, ok := inspect(conn, queue)
	if !ok {
		return -1
	}
	return q.Messages
}

// inspect declares queue passively on a channel of its own, since a
// passive declare of a missing queue closes the channel; ok is false when
// the queue does not exist.
func inspect(conn *amqp.Connection, queue string) (q amqp.Queue, ok bool) {
	ch, err := conn.Channel()
	if err != nil {
		return amqp.Queue{}, false
	}
	defer ch.Close()
	q, err = ch.QueueDeclarePassive(queue, true, false, false, false, nil)
	return q, err == nil
}

// Consume consumes queue with auto-ack on ch and returns the deliveries.
func Consume(t testing.TB, ch *amqp.Channel, queue string) <-chan amqp.Delivery {
	t.Helper()
	d, err := ch.Consume(queue, "", true, false, false, false, nil)
	if err != nil {
		t.Fatalf("Consume(%q) = %v", queue, err)
	}
	return d
}

// NextDelivery waits up to 10 s for one delivery.
func NextDelivery(t testing.TB, d <-chan amqp.Delivery, what string) amqp.Delivery {
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

// NoDelivery checks that nothing arrives within d.
func NoDelivery(t testing.TB, dl <-chan amqp.Delivery, d time.Duration, what string) {
	t.Helper()
	select {
	case m := <-dl:
		t.Fatalf("%s: got %q (correlation id %q); want nothing", what, m.Body, m.CorrelationId)
	case <-time.After(d): // watching for something that must not come
	}
}

// WaitFor polls cond until it holds, failing the test if d passes first.
func WaitFor(t testing.TB, d time.Duration, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(d)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("%s: not within %v", what, d)
		}
		time.Sleep(20 * time.Millisecond) // polling a condition with a deadline
	}
}

// WaitForConsumers waits until queue, at url, has at least n consumers,
// asking the broker, so that it works for servers in any process. It fails
// the test at once should one of servers return meanwhile.
func WaitForConsumers(t testing.TB, url, queue string, n int, servers ...*Server) {
	t.Helper()
	conn, _ := Conn(t, url)
	WaitFor(t, 10*time.Second, fmt.Sprintf("%d consumers on %q", n, queue), func() bool {
		for _, s := range servers {
			select {
			case <-s.done:
				t.Fatalf("the server of %q returned early: %v", queue, s.err)
			default:
			}
		}
		return Consumers(conn, queue) >= n
	})
}

// A Server is a serve function running in a goroutine of its own until
// its test ends or Stop is called.
type Server struct {
	t      testing.TB
	cancel context.CancelFunc
	done   chan struct{} // closed when serve has returned
	err    error         // what serve returned, set before done closes
	once   sync.Once     // guards the stop
}

// Serve runs serve until the test ends or the returned Server's Stop. The
// context serve gets is cancelled then, and serve must return nil within
// 20 s of it.
func Serve(t testing.TB, serve func(ctx context.Context) error) *Server {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	s := &Server{t: t, cancel: cancel, done: make(chan struct{})}
	go func() {
		defer close(s.done)
		s.err = serve(ctx)
	}()
	t.Cleanup(s.Stop)
	return s
}

// Stop cancels the server's context and waits for serve to return, failing
// the test if it returns an error or takes over 20 s. Calls after the
// first do nothing; any goroutine may call it.
func (s *Server) Stop() {
	s.once.Do(func() {
		s.cancel()
		select {
		case <-s.done:
			if s.err != nil {
				s.t.Errorf("Serve = %v; want nil after cancel", s.err)
			}
		case <-time.After(stopTimeout):
			s.t.Errorf("Serve did not return within %v of cancel", stopTimeout)
		}
	})
}

// Dial returns the client dial makes for queue at url with opts, failing
// the test if it fails, and closes the client when the test ends. Pass
// amqprpc.Dial as dial.
func Dial[O any](t testing.TB, dial func(url, queue string, opts ...O) (*rpc.Client, error), url, queue string, opts ...O) *rpc.Client {
	t.Helper()
	c, err := dial(url, queue, opts...)
	if err != nil {
		t.Fatalf("Dial(%q) = %v", queue, err)
	}
	t.Cleanup(func() { c.Close() })
	return c
}

// Main runs the tests and fails the run when goroutines they
// started are still running 10 s after the last test (goleak's own check
// gives them about half a second, short for connections closing through a
// busy broker). Call it from TestMain.
func Main(m *testing.M) {
	code := m.Run()
	if code == 0 {
		deadline := time.Now().Add(10 * time.Second)
		err := goleak.Find()
		for err != nil && time.Now().Before(deadline) {
			err = goleak.Find() // retries for about 0.4 s itself
		}
		if err != nil {
			fmt.Fprintf(os.Stderr, "goleak: goroutines left 10s after the tests: %v\n", err)
			code = 1
		}
	}
	os.Exit(code)
}

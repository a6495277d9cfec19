// Package brokertest holds what the examples' tests need to run against
// the real broker: its URL (failing under CI when it is missing), unique
// queues that are deleted afterwards, servers stopped with the test, and a
// goroutine-leak check.
package brokertest

import (
	"cmp"
	"context"
	"crypto/rand"
	"fmt"
	"net/rpc"
	"os"
	"runtime"
	"strings"
	"testing"
	"time"

	amqp "github.com/rabbitmq/amqp091-go"

	"github.com/amqprpc/amqprpc"
)

// Main runs the tests and fails the run when they leave goroutines
// behind; call it from TestMain.
func Main(m *testing.M) {
	before := runtime.NumGoroutine()
	code := m.Run()
	if code == 0 && !goroutinesBackTo(before, 10*time.Second) {
		buf := make([]byte, 1<<20)
		fmt.Fprintf(os.Stderr, "goroutines leaked: %d before the tests, %d after\n%s\n",
			before, runtime.NumGoroutine(), buf[:runtime.Stack(buf, true)])
		code = 1
	}
	os.Exit(code)
}

// goroutinesBackTo polls until at most n goroutines run, for up to d.
func goroutinesBackTo(n int, d time.Duration) bool {
	for deadline := time.Now().Add(d); runtime.NumGoroutine() > n; {
		if time.Now().After(deadline) {
			return false
		}
		time.Sleep(20 * time.Millisecond)
	}
	return true
}

// URL returns the test broker's URL (AMQP_URL, or the local default).
// When the broker is unreachable it fails the test if CI is set and skips
// it otherwise.
func URL(t *testing.T) string {
	t.Helper()
	url := cmp.Or(os.Getenv("AMQP_URL"), "amqp://guest:guest@127.0.0.1:5672/")
	conn, err := amqp.Dial(url)
	if err != nil {
		if os.Getenv("CI") != "" {
			t.Fatalf("CI is set and the broker is not reachable: %v (run `make broker`)", err)
		}
		t.Skipf("no broker (%v); set CI=1 to make this a failure", err)
	}
	conn.Close()
	return url
}

// Queue returns a queue name unique to this run, and deletes the queue
// when the test ends.
func Queue(t *testing.T, url, what string) string {
	t.Helper()
	name := "amqprpc-example-" + what + "-" + strings.ToLower(rand.Text()[:8])
	t.Cleanup(func() {
		conn, err := amqp.Dial(url)
		if err != nil {
			return
		}
		defer conn.Close()
		if ch, err := conn.Channel(); err == nil {
			_, _ = ch.QueueDelete(name, false, false, false)
		}
	})
	return name
}

// Serve runs serve in a goroutine until the test ends; the cleanup cancels
// its context and waits for it to return.
func Serve(t *testing.T, serve func(ctx context.Context) error) {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- serve(ctx) }()
	t.Cleanup(func() {
		cancel()
		select {
		case err := <-done:
			if err != nil {
				t.Errorf("Serve = %v; want nil after cancel", err)
			}
		case <-time.After(15 * time.Second):
			t.Errorf("Serve did not return within 15s of cancel")
		}
	})
}

// WaitForConsumers waits until queue has n consumers, asking the broker, so
// that it works for servers in any process.
func WaitForConsumers(t *testing.T, url, queue string, n int) {
	t.Helper()
	conn, err := amqp.Dial(url)
	if err != nil {
		t.Fatalf("amqp.Dial = %v", err)
	}
	defer conn.Close()
	for deadline := time.Now().Add(10 * time.Second); Consumers(conn, queue) < n; {
		if time.Now().After(deadline) {
			t.Fatalf("queue %q: not %d consumers within 10s", queue, n)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// Consumers returns the consumers of queue, or -1 when it does not exist.
// A passive declare of a missing queue closes its channel, so each question
// has a channel of its own.
func Consumers(conn *amqp.Connection, queue string) int {
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

// Dial returns a client of queue, closed when the test ends.
func Dial(t *testing.T, url, queue string) *rpc.Client {
	t.Helper()
	client, err := amqprpc.Dial(url, queue, amqprpc.WithCallTimeout(10*time.Second))
	if err != nil {
		t.Fatalf("Dial(%q) = %v", queue, err)
	}
	t.Cleanup(func() { client.Close() })
	return client
}

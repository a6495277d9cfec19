package amqprpc

// Serve and its request queue: competing servers share a queue, a stopping
// server finishes its calls in flight and hands back what it prefetched,
// WithReady, WithQueueExpiry, and the queue's declaration (durable,
// transient, quorum, or in conflict with one that exists).

import (
	"context"
	"net"
	"net/rpc"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/amqprpc/amqprpc/internal/brokertest"
)

func TestCompetingServers(t *testing.T) {
	queue := testQueue(t)
	a, b := newArith("a"), newArith("b")
	startServer(t, a, queue, WithPrefetch(4))
	startServer(t, b, queue, WithPrefetch(4))
	brokertest.WaitForConsumers(t, brokertest.URL(t), queue, 2)
	client := dial(t, queue)
	seen := map[string]int{}
	calls := make([]*rpc.Call, 200)
	for i := range calls {
		calls[i] = client.Go("Arith.Who", &Args{}, new(string), make(chan *rpc.Call, 1))
	}
	for _, c := range calls {
		require.NoError(t, waitCall(t, c, 30*time.Second, "Call(Arith.Who)").Error, "Call(Arith.Who)")
		seen[*c.Reply.(*string)]++
	}
	if seen["a"] == 0 || seen["b"] == 0 || seen["a"]+seen["b"] != 200 {
		t.Fatalf("answers by server = %v; want both a and b, 200 in all", seen)
	}
}

// TestServeShutdownFinishesCallsInFlight cancels Serve while calls run and
// checks that they are answered and the prefetched requests go to another
// server.
func TestServeShutdownFinishesCallsInFlight(t *testing.T) {
	queue := testQueue(t)
	first := newArith("first")
	stopFirst := startServer(t, first, queue, WithPrefetch(4))
	client := dial(t, queue)
	calls := make([]*rpc.Call, 8)
	for i := range calls {
		calls[i] = client.Go("Arith.Wait", &Args{i, 10}, new(int), make(chan *rpc.Call, 1))
	}
	for i := 0; i < 4; i++ { // the first server takes 4, its prefetch
		<-first.began
	}
	stopped := make(chan struct{})
	go func() {
		defer close(stopped)
		stopFirst()
	}()
	select {
	case <-stopped:
		t.Fatal("Serve returned while calls were in flight")
	case <-time.After(200 * time.Millisecond):
	}
	first.open() // the 4 calls in flight finish and reply
	within(t, 20*time.Second, "Serve to return after its calls finish", func() { <-stopped })

	second := newArith("second")
	second.open()
	startServer(t, second, queue, WithPrefetch(4))
	within(t, 30*time.Second, "all calls", func() {
		for i, c := range calls {
			<-c.Done
			if c.Error != nil || *c.Reply.(*int) != i*10 {
				t.Errorf("call %d = %d, %v; want %d, nil", i, *c.Reply.(*int), c.Error, i*10)
			}
		}
	})
	if got := first.calls.Load() + second.calls.Load(); got != 8 {
		t.Fatalf("calls run = %d; want 8 (each once)", got)
	}
}

func TestServeStopsWhenContextIsAlreadyDone(t *testing.T) {
	queue := testQueue(t)
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	within(t, 10*time.Second, "Serve with a done context", func() {
		if err := Serve(ctx, rpc.NewServer(), brokertest.URL(t), queue); err != nil {
			t.Errorf("Serve = %v; want nil", err)
		}
	})
}

// TestConflictingQueueDeclaration: a queue declared otherwise (here
// non-durable, as many servers in other languages do) is an error that says
// what differs, not a crash.
func TestConflictingQueueDeclaration(t *testing.T) {
	queue := testQueue(t)
	conn, ch := rawConn(t)
	_, err := ch.QueueDeclare(queue, false, false, false, false, nil)
	require.NoError(t, err)
	err = Serve(context.Background(), rpc.NewServer(), brokertest.URL(t), queue)
	require.ErrorContains(t, err, "durable", "Serve on a queue declared non-durable")
	require.ErrorContains(t, err, "PRECONDITION_FAILED", "Serve on a queue declared non-durable")
	_, err = NewServerCodec(conn, queue, WithQuorumQueue())
	require.ErrorContains(t, err, "quorum", "NewServerCodec(quorum) on a classic queue: want the queue type named")
	require.False(t, conn.IsClosed(), "a refused declaration closed the borrowed connection")
	// The matching declaration works.
	startServer(t, newArith("s1"), queue, WithTransientQueue())
	client := dial(t, queue)
	multiply(t, client, 2, 21, "")
}

func TestServeReadyAndQueueExpiry(t *testing.T) {
	queue := testQueue(t)
	srv := rpc.NewServer()
	require.NoError(t, srv.RegisterName("Arith", newArith("s1")))
	ready := make(chan struct{})
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() {
		done <- Serve(ctx, srv, brokertest.URL(t), queue, WithReady(func() { close(ready) }), WithQueueExpiry(300*time.Millisecond))
	}()
	select {
	case <-ready:
	case err := <-done:
		t.Fatalf("Serve = %v before it was ready", err)
	case <-time.After(10 * time.Second):
		t.Fatal("WithReady's function was not called within 10s")
	}
	// Ready means consuming: a call made now finds the queue.
	client := dial(t, queue)
	multiply(t, client, 6, 7, "right after ready")
	cancel()
	require.NoError(t, <-done, "Serve")
	// Any declare, passive ones included, counts as a use and restarts the
	// expiry, so look once, well after it.
	time.Sleep(1500 * time.Millisecond) // the broker's own timer: nothing to wait on
	conn, _ := rawConn(t)
	if n := brokertest.Consumers(conn, queue); n != -1 {
		t.Fatalf("queue %q still exists (%d consumers) 1.5s after its last consumer left; want it expired after 300ms", queue, n)
	}
}

func TestQuorumQueue(t *testing.T) {
	queue := testQueue(t)
	startServer(t, newArith("s1"), queue, WithQuorumQueue())
	_, ch := rawConn(t)
	// The broker has it as a quorum queue: declaring it classic is refused.
	_, err := ch.QueueDeclare(queue, true, false, false, false, nil)
	require.ErrorContains(t, err, "x-queue-type", "QueueDeclare(classic) over the server's queue: want PRECONDITION_FAILED on x-queue-type")
	client := dial(t, queue)
	multiply(t, client, 6, 7, "through a quorum queue")
}

// TestServeContextBoundsTheFirstConnect: Serve's context bounds its first
// connection. Two brokers that accept TCP connections and never answer
// would hold each attempt for its 10 s handshake bound; ending ctx must
// end Serve at once instead.
func TestServeContextBoundsTheFirstConnect(t *testing.T) {
	accepted := make(chan net.Conn, 16)
	t.Cleanup(func() {
		for len(accepted) > 0 {
			(<-accepted).Close()
		}
	})
	var urls []string
	for range 2 {
		l, err := net.Listen("tcp", "127.0.0.1:0")
		require.NoError(t, err)
		t.Cleanup(func() { l.Close() })
		go func() { // accepts, and never says a word
			for {
				c, err := l.Accept()
				if err != nil {
					return
				}
				accepted <- c
			}
		}()
		urls = append(urls, "amqp://guest:guest@"+l.Addr().String()+"/")
	}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	done := make(chan error, 1)
	go func() { done <- Serve(ctx, rpc.NewServer(), urls[0], "unused", WithURLs(urls[1])) }()
	within(t, 10*time.Second, "Serve to connect to the first silent broker", func() {
		c := <-accepted
		accepted <- c // closed when the test ends
	})
	cancel()
	select {
	case err := <-done:
		if err != nil {
			t.Errorf("Serve after its context ended mid-connect = %v; want nil", err)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("Serve did not return within 5s of its context's end while connecting (each silent broker holds it 10s)")
	}
}

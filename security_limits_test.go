package amqprpc

// Bounded resources (docs/SECURITY.md): a flood of hostile requests neither
// grows the server's memory nor stops real calls, and WithMaxBodySize bounds
// requests and replies on both sides.

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"net/rpc"
	"os"
	"runtime"
	"strconv"
	"sync"
	"testing"
	"time"

	amqp "github.com/rabbitmq/amqp091-go"
	"github.com/stretchr/testify/require"

	"github.com/amqprpc/amqprpc/internal/brokertest"
)

// secFloodSize is how many hostile requests TestSecurityFlood publishes;
// AMQPRPC_FLOOD overrides it.
const secFloodSize = 100_000

// secFloodNowhere is a reply_to no queue has: replies to it are dropped.
const secFloodNowhere = "amqprpc-flood-nowhere"

// TestSecurityFlood publishes a flood of hostile requests straight to a
// served queue (no reply_to, no type, garbage bodies, unknown methods and
// content types, bodies over the size limit) while a real client keeps
// calling. The server's heap after the flood must be what it was before,
// no goroutine may be left over, and every real call must be answered.
// It runs alone (not in parallel), as it measures this process's heap.
func TestSecurityFlood(t *testing.T) {
	n := secFloodSize
	if s := os.Getenv("AMQPRPC_FLOOD"); s != "" {
		var err error
		if n, err = strconv.Atoi(s); err != nil || n < 1 {
			t.Fatalf("AMQPRPC_FLOOD=%q: want a positive number", s)
		}
	}
	url := brokertest.URL(t)
	queue := testQueue(t)
	const maxBody = 64 << 10
	svc := faultServer(t, url, queue, WithMaxBodySize(maxBody))
	client := dial(t, queue, WithCallTimeout(time.Minute))
	callWorks(t, client, 10*time.Second, "before the flood")
	for i := range 200 { // buffers reach their steady size
		var r int
		if err := client.Call("Arith.Multiply", &Args{i, 2}, &r); err != nil {
			t.Fatalf("warm-up Call = %v", err)
		}
	}
	before := measure()

	conn, err := amqp.Dial(url)
	require.NoError(t, err, "amqp.Dial")
	ch, err := conn.Channel()
	require.NoError(t, err, "Channel")
	t.Cleanup(func() { conn.Close() }) // ends the publisher should the test fail early
	begin := time.Now()
	published := make(chan error, 1)
	go func() { published <- secPublishFlood(ch, queue, n) }()

	// A real call every 100 ms until the flood is published and drained.
	type realCall struct {
		a    int
		call *rpc.Call
		took time.Duration // guarded by mu
	}
	var (
		mu      sync.Mutex // guards the took of every realCall
		calls   []*realCall
		wg      sync.WaitGroup
		peak    uint64
		pubTook time.Duration
	)
	tick := time.NewTicker(100 * time.Millisecond)
	defer tick.Stop()
	deadline := time.Now().Add(3 * time.Minute)
	for i := 0; ; i++ {
		<-tick.C // pacing the real calls
		rc := &realCall{a: i}
		start := time.Now()
		rc.call = client.Go("Arith.Multiply", &Args{i, 2}, new(int), nil)
		calls = append(calls, rc)
		wg.Add(1)
		go func() {
			defer wg.Done()
			<-rc.call.Done
			mu.Lock()
			rc.took = time.Since(start)
			mu.Unlock()
		}()
		if i%10 == 0 {
			var ms runtime.MemStats
			runtime.ReadMemStats(&ms)
			peak = max(peak, ms.HeapAlloc)
		}
		if pubTook == 0 {
			select {
			case err := <-published:
				if err != nil {
					t.Fatalf("publishing the flood: %v", err)
				}
				pubTook = time.Since(begin)
			default:
			}
		}
		if pubTook != 0 && brokertest.Depth(conn, queue) == 0 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("flood of %d not drained within 3 minutes (queue depth %d)", n, brokertest.Depth(conn, queue))
		}
	}
	drained := time.Since(begin)
	conn.Close()
	wg.Wait()
	var worst time.Duration
	failed := 0
	for _, rc := range calls {
		worst = max(worst, rc.took)
		if err := rc.call.Error; err != nil || *rc.call.Reply.(*int) != rc.a*2 {
			failed++
			if failed <= 3 {
				t.Errorf("real call %d during the flood = %v, %d; want %d", rc.a, err, *rc.call.Reply.(*int), rc.a*2)
			}
		}
	}
	callWorks(t, client, 10*time.Second, "after the flood")
	after := measure()
	// The flood's own connection may take a moment to end its goroutines.
	for end := time.Now().Add(5 * time.Second); after.goroutines > before.goroutines+5 && time.Now().Before(end); {
		time.Sleep(50 * time.Millisecond) // polling for the goroutines to end
		after = measure()
	}

	growth := int64(after.heap) - int64(before.heap)
	t.Logf("flood of %d hostile requests: published in %v (%.0f/s), drained in %v (%.0f/s); server ran %d Multiply",
		n, pubTook.Round(time.Millisecond), float64(n)/pubTook.Seconds(), drained.Round(time.Millisecond), float64(n)/drained.Seconds(), svc.calls.Load())
	t.Logf("real calls during the flood: %d, %d failed, slowest %v", len(calls), failed, worst.Round(time.Millisecond))
	t.Logf("heap after GC: %.1f MiB before, %.1f MiB after (%+.2f MiB); peak sampled without GC %.1f MiB; goroutines %d before, %d after",
		secMiB(before.heap), secMiB(after.heap), float64(growth)/(1<<20), secMiB(peak), before.goroutines, after.goroutines)
	if growth > 4<<20 {
		t.Errorf("heap grew by %.1f MiB over a flood of %d requests; want under 4 MiB", float64(growth)/(1<<20), n)
	}
	if after.goroutines > before.goroutines+5 {
		t.Errorf("goroutines: %d after the flood, %d before; want no more than 5 extra", after.goroutines, before.goroutines)
	}
}

func secMiB(b uint64) float64 { return float64(b) / (1 << 20) }

// secPublishFlood publishes n hostile requests to queue.
func secPublishFlood(ch *amqp.Channel, queue string, n int) error {
	rng := rand.New(rand.NewPCG(1, 2))
	bodies := make([][]byte, 64)
	for i := range bodies {
		bodies[i] = make([]byte, 1+rng.IntN(256))
		for j := range bodies[i] {
			bodies[i][j] = byte(rng.Uint32())
		}
	}
	big := bytes.Repeat([]byte{0xff}, 100<<10) // over the server's 64 KiB limit
	ctx := context.Background()
	for i := range n {
		body := bodies[i%len(bodies)]
		var msg amqp.Publishing
		switch {
		case i%500 == 499:
			msg = amqp.Publishing{Type: "Arith.Echo", ContentType: "application/x-gob", ReplyTo: secFloodNowhere, Body: big}
		case i%8 <= 1: // no type, no reply_to
			msg = amqp.Publishing{Body: body}
		case i%8 <= 3: // garbage gob, no reply_to
			msg = amqp.Publishing{Type: "Arith.Multiply", ContentType: "application/x-gob", Body: body}
		case i%8 == 4: // garbage JSON, error reply to nowhere
			msg = amqp.Publishing{Type: "Arith.Multiply", ContentType: "application/json", ReplyTo: secFloodNowhere, CorrelationId: strconv.Itoa(i), Body: body}
		case i%8 == 5: // a good request nobody waits for
			msg = amqp.Publishing{Type: "Arith.Multiply", ContentType: "application/json", Body: []byte(`{"A":3,"B":4}`)}
		case i%8 == 6: // no such method
			msg = amqp.Publishing{Type: "No.Such", ContentType: "application/x-gob", ReplyTo: secFloodNowhere, Body: body}
		default: // unknown content type
			msg = amqp.Publishing{Type: "Arith.Multiply", ContentType: "text/x-weird", ReplyTo: secFloodNowhere, Body: body}
		}
		if err := ch.PublishWithContext(ctx, "", queue, false, false, msg); err != nil {
			return fmt.Errorf("publish %d: %w", i, err)
		}
	}
	return nil
}

// SecBlob makes replies of a size the caller chooses.
type SecBlob struct{}

// Make replies with n bytes.
func (SecBlob) Make(n *int, reply *[]byte) error {
	*reply = make([]byte, *n)
	return nil
}

// TestSecurityBodyLimits: WithMaxBodySize bounds requests at the server,
// replies at the server, and replies at the client; each excess fails only
// its call.
func TestSecurityBodyLimits(t *testing.T) {
	t.Parallel()
	url := brokertest.URL(t)
	const limit = 1 << 10
	serve := func(opts ...Option) string {
		queue := testQueue(t)
		srv := rpc.NewServer()
		if err := srv.RegisterName("Blob", SecBlob{}); err != nil {
			t.Fatalf("RegisterName = %v", err)
		}
		if err := srv.RegisterName("Arith", newArith("limits")); err != nil {
			t.Fatalf("RegisterName = %v", err)
		}
		server := brokertest.Serve(t, func(ctx context.Context) error { return Serve(ctx, srv, url, queue, asServer(opts)...) })
		brokertest.WaitForConsumers(t, url, queue, 1, server)
		return queue
	}
	limited, unlimited := serve(WithMaxBodySize(limit)), serve()

	for _, tc := range []struct {
		name   string
		queue  string
		client []ClientOption
		method string
		args   any
	}{
		{"request over the server's limit", limited, nil, "Arith.Echo", &Payload{Data: make([]byte, 2*limit)}},
		{"reply over the server's limit", limited, nil, "Blob.Make", secPtr(2 * limit)},
		{"reply over the client's limit", unlimited, []ClientOption{WithMaxBodySize(limit)}, "Blob.Make", secPtr(2 * limit)},
	} {
		t.Run(tc.name, func(t *testing.T) {
			client := dial(t, tc.queue, tc.client...)
			var reply any = new([]byte)
			if tc.method == "Arith.Echo" {
				reply = new(Payload)
			}
			err := client.Call(tc.method, tc.args, reply)
			if !errors.Is(Cause(err), ErrBodyTooLarge) {
				t.Errorf("Call(%s) = %v; want ErrBodyTooLarge", tc.method, err)
			}
			var small []byte
			if err := client.Call("Blob.Make", secPtr(16), &small); err != nil || len(small) != 16 {
				t.Errorf("Call(Blob.Make, 16) after the refusal = %d bytes, %v; want 16, nil", len(small), err)
			}
		})
	}
}

func secPtr[T any](v T) *T { return &v }

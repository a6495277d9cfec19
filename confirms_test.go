package amqprpc

import (
	"net/rpc"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	amqp "github.com/rabbitmq/amqp091-go"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/amqprpc/amqprpc/internal/brokertest"
)

// TestConfirmsSurviveAStalledWrite stalls the network from client and
// server to the broker for longer than amqp091-go waits for a listener of
// its notifications (5 s), with confirms on both sides and calls in flight,
// while the broker's confirms still flow back. Publishes block on full
// socket buffers meanwhile. If a publish held a lock that the handling of a
// confirm needs, amqp091-go would drop that confirm: a request never
// acknowledged (a prefetch slot lost for good) or a call left waiting.
// Afterwards every call has ended, no request stays unacknowledged, and the
// client works.
func TestConfirmsSurviveAStalledWrite(t *testing.T) {
	node := startPrivateNode(t)
	proxy := newTCPProxy(t, node.AMQPAddr())
	const queue = "confirm-stall"
	url := "amqp://guest:guest@" + proxy.Addr() + "/"
	// A heartbeat long enough that neither end gives up during the stall.
	opts := []Option{WithConfirms(), WithHeartbeat(10 * time.Second), WithConnectionName("confirm-stall")}
	faultServer(t, url, queue, append(asServer(opts), WithPrefetch(32))...)
	client, err := Dial(url, queue, append(asClient(opts), WithCallTimeout(30*time.Second))...)
	require.NoError(t, err)
	t.Cleanup(func() { client.Close() })
	callWorks(t, client, 10*time.Second, "first call")

	// Large bodies fill the socket buffers, so publishes block in the stall.
	payload := &Payload{Data: make([]byte, 256<<10)}
	var answered, failed, hung atomic.Int64
	stop := make(chan struct{})
	var wg sync.WaitGroup
	for range 32 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for {
				select {
				case <-stop:
					return
				default:
				}
				call := client.Go("Arith.Echo", payload, new(Payload), nil)
				select {
				case <-call.Done:
					if call.Error != nil {
						failed.Add(1)
					} else {
						answered.Add(1)
					}
				case <-time.After(45 * time.Second):
					hung.Add(1)
					return
				}
			}
		}()
	}
	time.Sleep(500 * time.Millisecond) // steady load before the stall
	proxy.PauseUpstream()
	time.Sleep(7 * time.Second) // the stall itself, past amqp091-go's 5 s
	proxy.Resume()
	time.Sleep(time.Second) // steady load after it
	close(stop)
	wg.Wait()
	t.Logf("stalled writes with confirms: %d answered, %d failed, %d hung", answered.Load(), failed.Load(), hung.Load())
	assert.Zero(t, hung.Load(), "calls hung")
	assert.NotZero(t, answered.Load(), "no call was answered")

	unacked := func() int {
		out := node.Ctl(t, "list_queues", "--no-table-headers", "name", "messages_unacknowledged")
		for _, line := range strings.Split(out, "\n") {
			if f := strings.Fields(line); len(f) == 2 && f[0] == queue {
				n, _ := strconv.Atoi(f[1])
				return n
			}
		}
		return -1
	}
	brokertest.WaitFor(t, 30*time.Second, "no request left unacknowledged", func() bool { return unacked() == 0 })
	callWorks(t, client, 10*time.Second, "after the stall")
}

func TestConfirmsOnBothSides(t *testing.T) {
	queue := testQueue(t)
	startServer(t, newArith("s1"), queue, WithConfirms())
	replyModes(t, func(t *testing.T, mode ClientOption) {
		client := dial(t, queue, mode, WithConfirms())
		calls := make([]*rpc.Call, 100)
		for i := range calls {
			calls[i] = client.Go("Arith.Multiply", &Args{i, 2}, new(int), make(chan *rpc.Call, 1))
		}
		within(t, 30*time.Second, "100 calls with confirms", func() {
			for i, c := range calls {
				<-c.Done
				if c.Error != nil || *c.Reply.(*int) != 2*i {
					t.Errorf("call %d = %d, %v; want %d", i, *c.Reply.(*int), c.Error, 2*i)
				}
			}
		})
	})
}

func TestConfirmsNackFailsTheCall(t *testing.T) {
	queue := testQueue(t)
	conn, ch := rawConn(t)
	// A full queue that refuses more: the broker nacks the next publish.
	_, err := ch.QueueDeclare(queue, false, false, false, false, amqp.Table{"x-max-length": int32(1), "x-overflow": "reject-publish"})
	require.NoError(t, err)
	client := dial(t, queue, WithConfirms(), WithCallTimeout(3*time.Second))
	first := client.Go("Arith.Multiply", &Args{1, 1}, new(int), nil) // fills the queue
	brokertest.WaitFor(t, 5*time.Second, "the first request in the queue", func() bool { return brokertest.Depth(conn, queue) == 1 })
	var r int
	start := time.Now()
	err = client.Call("Arith.Multiply", &Args{2, 2}, &r)
	require.ErrorIs(t, Cause(err), ErrNacked, "Call to a full reject-publish queue")
	if d := time.Since(start); d > 2*time.Second {
		t.Fatalf("the nacked call took %v; want a prompt failure", d)
	}
	waitCall(t, first, 10*time.Second, "the first call")
	require.ErrorIs(t, Cause(first.Error), ErrTimeout, "the first call: nobody consumes")
}

// TestServerConfirmsHoldTheAck: with confirms on, a server acknowledges a
// request only once the broker has confirmed its reply. A reply queue that
// refuses replies (full, reject-publish) gets the reply nacked: the request
// goes back to the queue once, and refused again it is acknowledged with its
// reply lost, so no caller can make a service run a request forever.
func TestServerConfirmsHoldTheAck(t *testing.T) {
	queue := testQueue(t)
	arith := newArith("s1")
	startServer(t, arith, queue, WithConfirms(), WithPrefetch(1))
	conn, ch := rawConn(t)
	replyQ := testQueue(t)
	_, err := ch.QueueDeclare(replyQ, false, false, false, false, amqp.Table{"x-max-length": int32(1), "x-overflow": "reject-publish"})
	require.NoError(t, err)
	for i, body := range []string{`{"A":1,"B":1}`, `{"A":2,"B":2}`} {
		require.NoError(t, ch.Publish("", queue, false, false, amqp.Publishing{Type: "Arith.Multiply", ContentType: "application/json", Body: []byte(body), ReplyTo: replyQ, CorrelationId: strconv.Itoa(i)}))
	}
	// The first reply fills the reply queue. The second is refused, its
	// request runs a second time, is refused again, and is acknowledged.
	brokertest.WaitFor(t, 10*time.Second, "the request queue empties", func() bool {
		return arith.calls.Load() >= 3 && brokertest.Depth(conn, queue) == 0
	})
	time.Sleep(500 * time.Millisecond) // watching for a run that must not come
	if got := arith.calls.Load(); got != 3 {
		t.Fatalf("calls run = %d; want 3 (the second request twice, then no more)", got)
	}
	if got := brokertest.Depth(conn, replyQ); got != 1 {
		t.Fatalf("reply queue holds %d replies; want 1", got)
	}
}

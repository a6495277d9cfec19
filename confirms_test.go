package amqprpc

import (
	"context"
	"net/rpc"
	"strconv"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	amqp "github.com/rabbitmq/amqp091-go"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/amqprpc/amqprpc/internal/brokertest"
)

// A stallService holds its calls until the test lets them go, so that the
// test decides when the server publishes which replies.
type stallService struct {
	held, bigs atomic.Int64  // calls begun
	hold, big  chan struct{} // closed to let Hold, Big return
}

// Hold returns args.A once hold is closed: a small reply.
func (s *stallService) Hold(args *Args, reply *int) error {
	s.held.Add(1)
	<-s.hold
	*reply = args.A
	return nil
}

// Big returns args.A bytes once big is closed: a large reply.
func (s *stallService) Big(args *Args, reply *Payload) error {
	s.bigs.Add(1)
	<-s.big
	reply.Data = make([]byte, args.A)
	return nil
}

// openGate closes c unless it is closed already.
func openGate(c chan struct{}) {
	select {
	case <-c:
	default:
		close(c)
	}
}

// TestConfirmsSurviveAStalledWrite has the broker's confirms reach the
// server while a reply of the server is stalled in the network, for longer
// than amqp091-go waits for a listener of its notifications (5 s). A
// transport that tracked confirms with a NotifyPublish listener and held
// the lock its confirm handling needs across a publish (as 25bd497 did)
// fails here: the listener's buffer (256) fills, amqp091-go drops the next
// confirm after 5 s, and its request is never acknowledged, a prefetch slot
// lost for good.
//
// A stall of the writes alone cannot show it: while they are stalled the
// broker receives nothing new to confirm, and the confirms of what it had
// received arrive before any publish blocks. So the test holds the
// confirms back first. The server reaches the broker through a proxy, the
// client directly. More than 256 calls wait at the server; the proxy stops
// the broker-to-server direction; the server answers them (the broker gets
// the replies and sends their confirms, held by the proxy); the proxy stops
// the server-to-broker direction too; the server answers large calls until
// a publish blocks on full socket buffers; only then do the confirms flow,
// for 7 s before the writes do. Afterwards every call has ended, no request
// stays unacknowledged, and the client works.
func TestConfirmsSurviveAStalledWrite(t *testing.T) {
	const (
		queue   = "confirm-stall"
		held    = 320             // confirms held back: more than a NotifyPublish listener buffered (256 in 25bd497)
		bigs    = 32              // large replies that stall the server's writes
		bigSize = 256 << 10       // 8 MiB in all: past the server's send buffer (4 MiB at most) and the proxy's
		stall   = 7 * time.Second // the confirms wait this long at the server, past amqp091-go's 5 s
	)
	node := startPrivateNode(t)
	proxy := newTCPProxy(t, node.AMQPAddr())
	proxy.SetReadBuffer(64 << 10)

	svc := &stallService{hold: make(chan struct{}), big: make(chan struct{})}
	arith := newArith("confirm-stall")
	arith.open()
	srv := rpc.NewServer()
	require.NoError(t, srv.RegisterName("Arith", arith))
	require.NoError(t, srv.RegisterName("Stall", svc))
	// A heartbeat long enough that neither end gives up during the stall
	// (about 8 s one way, 2 s the other).
	opts := []Option{WithConfirms(), WithHeartbeat(20 * time.Second), WithConnectionName("confirm-stall")}
	brokertest.Serve(t, func(ctx context.Context) error {
		return Serve(ctx, srv, "amqp://guest:guest@"+proxy.Addr()+"/", queue, append(asServer(opts), WithPrefetch(2*(held+bigs)))...)
	})
	t.Cleanup(func() { // before the server stops
		proxy.Resume()
		openGate(svc.hold)
		openGate(svc.big)
	})
	client := brokertest.Dial(t, Dial, node.URL(), queue, append(asClient(opts), WithCallTimeout(time.Minute))...)
	callWorks(t, client, 10*time.Second, "first call")

	// ended counts the calls that have ended, failed those with an error,
	// lost those answered with a reply that is not theirs; firstErr keeps
	// one error.
	var ended, failed, lost atomic.Int64
	var firstErr atomic.Value
	call := func(method string, args *Args, reply any, theirs func() bool) {
		c := client.Go(method, args, reply, make(chan *rpc.Call, 1))
		go func() {
			<-c.Done
			switch {
			case c.Error != nil:
				failed.Add(1)
				firstErr.CompareAndSwap(nil, c.Error.Error())
			case !theirs():
				lost.Add(1)
			}
			ended.Add(1)
		}()
	}
	for i := range held {
		reply := new(int)
		call("Stall.Hold", &Args{A: i}, reply, func() bool { return *reply == i })
	}
	for range bigs {
		reply := new(Payload)
		call("Stall.Big", &Args{A: bigSize}, reply, func() bool { return len(reply.Data) == bigSize })
	}
	brokertest.WaitFor(t, 30*time.Second, "every call waiting at the server", func() bool {
		return svc.held.Load() == held && svc.bigs.Load() == bigs
	})

	// The small replies reach the broker; their confirms are held back.
	proxy.PauseDownstream()
	openGate(svc.hold)
	brokertest.WaitFor(t, 30*time.Second, "every small reply at the client", func() bool { return ended.Load() == held })
	// The large replies fill the socket buffers; a publish blocks.
	proxy.PauseUpstream()
	openGate(svc.big)
	time.Sleep(time.Second) // for the publish to block
	// The confirms arrive while the publish stays blocked.
	proxy.ResumeDownstream()
	time.Sleep(stall)
	proxy.Resume()

	deadline := time.Now().Add(45 * time.Second)
	for ended.Load() < held+bigs && time.Now().Before(deadline) {
		time.Sleep(20 * time.Millisecond) // polling the calls with a deadline
	}
	issued := int64(held + bigs)
	hung := issued - ended.Load()
	t.Logf("RELIABILITY | confirms on, server's writes stalled 7 s while %d confirms wait | issued %d | answered %d | failed with a clear error %d | hung %d | lost %d",
		held, issued, ended.Load()-failed.Load()-lost.Load(), failed.Load(), hung, lost.Load())
	assert.Zero(t, hung, "calls hung")
	assert.Zero(t, failed.Load(), "calls failed, first: %v", firstErr.Load())
	assert.Zero(t, lost.Load(), "calls answered with a reply not theirs")

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
	left := -1
	for deadline := time.Now().Add(30 * time.Second); time.Now().Before(deadline); {
		if left = unacked(); left == 0 {
			break
		}
		time.Sleep(500 * time.Millisecond) // polling the broker with a deadline
	}
	require.Zero(t, left, "requests still unacknowledged 30s after the stall: confirms were lost")
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

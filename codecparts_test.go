package amqprpc

import (
	"bytes"
	"fmt"
	"net/rpc"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	amqp "github.com/rabbitmq/amqp091-go"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/amqprpc/amqprpc/codec"
	"github.com/amqprpc/amqprpc/transport"
)

// Unit tests of the client codec's parts (sessions.go, deadlines.go,
// replies.go) on a fake transport: no broker.

// fakeTransport plays transport.Client for the client codec.
type fakeTransport struct {
	mu          sync.Mutex // guards every field but replies
	gen         uint64     // the live session; 0 while disconnected
	published   []amqp.Publishing
	gens        []uint64 // the session each of published went out on
	state       transport.QueueState
	inspections int
	reopened    []uint64           // the sessions Reopen was asked to end
	replies     chan amqp.Delivery // what the codec reads as replies
	changed     chan struct{}      // closed by connect
}

// newFakeTransport returns a fake at session gen (0: disconnected).
func newFakeTransport(gen uint64) *fakeTransport {
	return &fakeTransport{gen: gen, replies: make(chan amqp.Delivery, 1024), changed: make(chan struct{})}
}

func (f *fakeTransport) Publish(queue string, msg *amqp.Publishing) (uint64, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.gen == 0 {
		return 0, fmt.Errorf("amqprpc: publish to %q: %w", queue, transport.ErrNotConnected)
	}
	m := *msg
	m.Body = bytes.Clone(msg.Body)
	f.published = append(f.published, m)
	f.gens = append(f.gens, f.gen)
	return f.gen, nil
}

func (f *fakeTransport) InspectQueue(string, time.Duration) (transport.QueueState, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.inspections++
	return f.state, nil
}

func (f *fakeTransport) Replies() (<-chan amqp.Delivery, <-chan struct{}, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.replies, f.changed, nil
}

func (f *fakeTransport) Reopen(gen uint64, _ error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.reopened = append(f.reopened, gen)
}

func (f *fakeTransport) Close() error { return nil }

func (f *fakeTransport) connect(gen uint64) {
	f.mu.Lock()
	f.gen = gen
	close(f.changed)
	f.changed = make(chan struct{})
	f.mu.Unlock()
}

// deliver hands the codec a reply.
func (f *fakeTransport) deliver(d amqp.Delivery) { f.replies <- d }

func (f *fakeTransport) sent() []amqp.Publishing {
	f.mu.Lock()
	defer f.mu.Unlock()
	return append([]amqp.Publishing(nil), f.published...)
}

// fakeCodec returns a started client codec on a fake transport at session
// gen (0: disconnected).
func fakeCodec(t *testing.T, gen uint64, opts ...ClientOption) (*clientCodec, *fakeTransport) {
	t.Helper()
	o, err := newClientOptions(append([]ClientOption{WithEncoding(codec.JSON)}, opts...))
	require.NoError(t, err)
	f := newFakeTransport(gen)
	c := newCodec("svc", o)
	c.start(f)
	t.Cleanup(func() { c.Close() })
	return c, f
}

// write sends call seq through WriteRequest.
func write(t *testing.T, c *clientCodec, seq uint64) {
	t.Helper()
	require.NoError(t, c.WriteRequest(&rpc.Request{Seq: seq, ServiceMethod: "Arith.Multiply"}, &Args{6, 7}))
}

// nextResponse reads the next response's header within 5 s.
func nextResponse(t *testing.T, c *clientCodec) rpc.Response {
	t.Helper()
	done := make(chan rpc.Response, 1)
	go func() {
		var r rpc.Response
		if err := c.ReadResponseHeader(&r); err == nil {
			_ = c.ReadResponseBody(nil)
		}
		done <- r
	}()
	select {
	case r := <-done:
		return r
	case <-time.After(5 * time.Second):
		t.Fatal("no response within 5s")
		return rpc.Response{}
	}
}

func TestHeldRequestIsPublishedWhenASessionComesUp(t *testing.T) {
	c, f := fakeCodec(t, 0, WithCallTimeout(time.Minute))
	write(t, c, 1)
	assert.Empty(t, f.sent(), "published while disconnected")
	f.connect(2)
	c.SessionReady(2)
	sent := f.sent()
	require.Len(t, sent, 1)
	assert.Equal(t, c.ids.format(1), sent[0].CorrelationId)
	left, err := strconv.Atoi(sent[0].Expiration)
	require.NoError(t, err)
	assert.True(t, left > 0 && left <= 60000, "expiration %q: want the time the call has left", sent[0].Expiration)

	f.deliver(amqp.Delivery{CorrelationId: sent[0].CorrelationId, ContentType: "application/json", Body: []byte("42")})
	r := nextResponse(t, c)
	assert.Equal(t, uint64(1), r.Seq)
	assert.Empty(t, r.Error)
}

func TestLostSessionFailsItsCalls(t *testing.T) {
	c, _ := fakeCodec(t, 2)
	write(t, c, 1)
	c.SessionLost(2, fmt.Errorf("%w: Exception (320) boom", ErrConnectionLost))
	r := nextResponse(t, c)
	assert.True(t, strings.HasPrefix(r.Error, ErrConnectionLost.Error()), "Error = %q", r.Error)
	assert.Contains(t, r.Error, "boom", "the loss's reason")
}

func TestUnconfirmedRequestIsPublishedAgainAfterALoss(t *testing.T) {
	c, f := fakeCodec(t, 2, WithConfirms())
	write(t, c, 1)
	c.SessionLost(2, fmt.Errorf("%w: gone", ErrConnectionLost))
	f.connect(3)
	c.SessionReady(3)
	sent := f.sent()
	require.Len(t, sent, 2, "the request, then again on the new session")
	assert.Equal(t, sent[0].CorrelationId, sent[1].CorrelationId)

	c.Confirmed(3, sent[1].CorrelationId, true)
	c.SessionLost(3, fmt.Errorf("%w: gone again", ErrConnectionLost))
	r := nextResponse(t, c)
	assert.True(t, strings.HasPrefix(r.Error, ErrConnectionLost.Error()), "a confirmed request lost with its session fails: Error = %q", r.Error)
	assert.Len(t, f.sent(), 2, "a confirmed request is not published again")
}

func TestNackedRequestFails(t *testing.T) {
	c, f := fakeCodec(t, 2, WithConfirms())
	write(t, c, 1)
	c.Confirmed(2, f.sent()[0].CorrelationId, false)
	r := nextResponse(t, c)
	assert.True(t, strings.HasPrefix(r.Error, ErrNacked.Error()), "Error = %q", r.Error)
}

func TestTimeoutSaysWhyOnce(t *testing.T) {
	o, err := newClientOptions([]ClientOption{WithEncoding(codec.JSON), WithCallTimeout(50 * time.Millisecond)})
	require.NoError(t, err)
	f := newFakeTransport(2)
	f.state = transport.QueueState{Exists: true, Messages: 3}
	c := newCodec("svc", o)
	// The deadline goroutine starts once all five calls are past their
	// deadlines, so that they time out together, however late its timer
	// would have fired for the first of them.
	c.transport = f
	for seq := uint64(1); seq <= 5; seq++ {
		write(t, c, seq)
	}
	time.Sleep(60 * time.Millisecond) // the calls' 50 ms deadlines pass
	c.deadline.start(c)
	t.Cleanup(func() { c.Close() })
	c.deadline.rearm <- struct{}{}
	for range 5 {
		r := nextResponse(t, c)
		assert.True(t, strings.HasPrefix(r.Error, ErrTimeout.Error()), "Error = %q", r.Error)
		assert.Contains(t, r.Error, "no consumer, 3 requests waiting")
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	assert.Equal(t, 1, f.inspections, "calls timing out together ask about the queue once")
}

func TestTimeoutOfAHeldCall(t *testing.T) {
	c, f := fakeCodec(t, 0, WithCallTimeout(50*time.Millisecond))
	write(t, c, 1)
	r := nextResponse(t, c)
	assert.True(t, strings.HasPrefix(r.Error, ErrTimeout.Error()), "Error = %q", r.Error)
	assert.Contains(t, r.Error, "for a connection")
	f.mu.Lock()
	defer f.mu.Unlock()
	assert.Zero(t, f.inspections, "a call never sent asks nothing of the broker")
}

// countingReply counts how often a reply is decoded.
type countingReply struct{ N int }

var decodes struct {
	mu sync.Mutex
	n  int
}

func (r *countingReply) UnmarshalJSON(b []byte) error {
	decodes.mu.Lock()
	decodes.n++
	decodes.mu.Unlock()
	n, err := strconv.Atoi(string(b))
	r.N = n
	return err
}

func TestReplyIsDecodedOnce(t *testing.T) {
	var rd replyReader
	rd.bodies, rd.maxBody = new(codec.Codec), 1<<20
	count := func() int { decodes.mu.Lock(); defer decodes.mu.Unlock(); return decodes.n }
	// read checks a reply and hands it to a reply variable, and returns how
	// many decodes each step made.
	read := func(seq uint64, body string) (checking, handing int) {
		before := count()
		rd.cur = rd.check(response{seq: seq, method: "S.M", contentType: "application/json", body: []byte(body)})
		require.Empty(t, rd.cur.errText)
		mid := count()
		var x countingReply
		require.NoError(t, rd.into(&x))
		assert.Equal(t, int(seq), x.N)
		return mid - before, count() - mid
	}
	checking, handing := read(1, "1")
	assert.Equal(t, 1, checking+handing, "the first reply of a method: its type is not known to the check")
	for seq := uint64(2); seq <= 5; seq++ {
		checking, handing := read(seq, strconv.Itoa(int(seq)))
		assert.Equal(t, 1, checking, "reply %d: decoded by the check into the known type", seq)
		assert.Zero(t, handing, "reply %d: decoded again for net/rpc", seq)
	}
}

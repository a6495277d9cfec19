package amqprpc

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"net/rpc"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/google/uuid"
	amqp "github.com/rabbitmq/amqp091-go"

	"github.com/amqprpc/amqprpc/codec"
	"github.com/amqprpc/amqprpc/internal/batch"
	"github.com/amqprpc/amqprpc/transport"
)

// Dial connects to the broker at url and returns a net/rpc client whose calls
// go to the service queue named queue. It is the broker's counterpart of
// rpc.Dial("tcp", addr): Call and Go work unchanged, from many goroutines.
// The client owns its connection, reconnects after a loss, and releases
// everything on Close. The first connection is bounded only by the dial
// timeout of each URL (10s) and the setup's (10s); [DialContext] bounds it
// with a context.
func Dial(url, queue string, opts ...ClientOption) (*rpc.Client, error) {
	return DialContext(context.Background(), url, queue, opts...)
}

// DialContext is [Dial] with a context that bounds the first connection:
// when ctx ends before the client has connected and set up its reply
// queue, DialContext gives up and returns an error that matches ctx.Err()
// under errors.Is. ctx has no effect once DialContext has returned.
func DialContext(ctx context.Context, url, queue string, opts ...ClientOption) (*rpc.Client, error) {
	cc, err := newClientCodec(ctx, nil, url, queue, opts)
	if err != nil {
		return nil, err
	}
	return rpc.NewClientWithCodec(cc), nil
}

// NewClientCodec returns a net/rpc client codec that calls the service queue
// named queue over conn, for rpc.NewClientWithCodec. It opens its own channel
// on conn and reopens it after a channel error, but never closes conn and
// cannot outlive it; [Dial] owns its connection and reconnects.
func NewClientCodec(conn *amqp.Connection, queue string, opts ...ClientOption) (rpc.ClientCodec, error) {
	if conn == nil {
		return nil, errors.New("amqprpc: NewClientCodec: nil connection")
	}
	return newClientCodec(context.Background(), conn, "", queue, opts)
}

// clientCodec implements rpc.ClientCodec. Every per-call failure (timeout,
// returned request, lost connection, malformed reply) becomes a response for
// that call's sequence with Error set, because any error from
// ReadResponseHeader or ReadResponseBody would end the *rpc.Client for good.
//
// Its parts: the calls in flight, their states and their deadlines
// (callstate.go, pending.go, deadlines.go), what the codec does as sessions
// come and go (sessions.go), the slots of WithMaxInFlight (slots.go), and
// the replies read, checked and handed to net/rpc (replies.go). This file
// publishes requests and takes the transport's reports.
type clientCodec struct {
	transport   requestTransport
	queue       string
	ids         correlationIDs
	enc         codec.Encoding
	bodies      codec.Codec
	timeout     time.Duration
	expires     string        // the timeout as the expiration property (wire.go)
	inspectWait time.Duration // bounds a timeout's question about the queue (deadlines.go)
	confirms    bool
	slots       chan struct{}   // one token per call in flight, with WithMaxInFlight; else nil
	buf         []byte          // request encoding buffer; net/rpc serializes WriteRequest
	msg         amqp.Publishing // the request being written, reused likewise

	// mu guards calls (and each pending call's fields), lostGen, lostErr,
	// sessionsUp, repliesSeen, expiries and closed. It is never held across
	// a publish. callstate.go gives the lock order.
	mu          sync.Mutex
	calls       pendingCalls
	lostGen     uint64 // the latest transport session reported lost
	lostErr     error  // why it was lost
	sessionsUp  uint64 // how many sessions have come up (SessionReady)
	repliesSeen uint64 // replies that came with our correlation ids, late ones too
	expiries    uint64 // rounds of timeouts (deadlines.go)
	closed      bool

	// failures holds the responses made up for calls (timeouts, returned
	// requests, lost sessions) until ReadResponseHeader takes them; real
	// replies come straight from the transport.
	failures *batch.Queue[response]
	endErr   error       // why the transport gave up for good; set before failures closes
	replies  replyReader // owned by the rpc.Client's reading goroutine
	deadline deadlines
	flushMu  sync.Mutex // held by SessionReady while it publishes held requests

	hooks clientHooks // WithClientHook (hooks.go)
}

func newClientCodec(ctx context.Context, conn *amqp.Connection, url, queue string, opts []ClientOption) (*clientCodec, error) {
	o, err := newClientOptions(opts)
	if err != nil {
		return nil, err
	}
	if err := checkQueueName(queue); err != nil {
		return nil, err
	}
	c := newCodec(queue, o)
	cfg := transport.ClientConfig{Config: o.transport(conn, url), DirectReplyTo: o.directReplyTo}
	t, err := transport.NewClient(ctx, cfg, c)
	if err != nil {
		return nil, err
	}
	c.start(t)
	t.Start()
	return c, nil
}

// requestTransport is what the client codec needs of a *transport.Client;
// unit tests give it a fake.
type requestTransport interface {
	Publish(queue string, msg *amqp.Publishing) (gen uint64, err error)
	Replies() (replies <-chan amqp.Delivery, changed <-chan struct{}, err error)
	InspectQueue(queue string, wait time.Duration) (transport.QueueState, error)
	Reopen(gen uint64, why error)
	Close() error
}

// newCodec makes a client codec for queue, not yet started.
func newCodec(queue string, o *clientOptions) *clientCodec {
	c := &clientCodec{
		queue:       queue,
		ids:         newCorrelationIDs(),
		enc:         o.encoding,
		timeout:     o.callTimeout,
		inspectWait: o.inspectWait,
		confirms:    o.confirms,
		failures:    batch.New[response](),
		hooks:       clientHooks{queue: queue, list: o.hooks},
	}
	c.replies = replyReader{bodies: &c.bodies, maxBody: o.maxBody}
	if o.maxInFlight > 0 {
		c.slots = make(chan struct{}, o.maxInFlight)
	}
	if c.timeout > 0 {
		c.expires = expiration(c.timeout)
	}
	return c
}

// start gives the codec its transport and starts its deadline goroutine.
func (c *clientCodec) start(t requestTransport) {
	c.transport = t
	c.deadline.start(c)
}

// WriteRequest publishes one request. It never waits, for the broker or for
// a slot: while the client is between connections the request is held and
// published on reconnect, and its deadline still runs.
func (c *clientCodec) WriteRequest(r *rpc.Request, args any) error {
	// A slot first: a call of Call that finds none has sent nothing and
	// runs no hook, and Call waits for one outside net/rpc's lock (slots.go).
	ca, _ := args.(*callArgs)
	if ca != nil && !ca.takeSlot(c) {
		return errNoSlot
	}
	slot := ca != nil // taken above
	start := time.Now()
	out, args, err := c.prepare(r, args, start) // a call made by Call; the hooks (call.go)
	if err == nil && !slot {
		if slot = c.tryAcquire(); !slot {
			err = notSentFailure(ErrTooManyCalls, "%s: %d calls already in flight", methodName(r.ServiceMethod), cap(c.slots))
		}
	}
	if err == nil {
		err = c.writeRequest(r, args, start, &out)
	}
	if err != nil {
		if slot {
			c.release(1)
		}
		c.hooks.end(r.Seq, err)
	}
	return err
}

// writeRequest builds the request and publishes it.
func (c *clientCodec) writeRequest(r *rpc.Request, args any, start time.Time, out *outgoing) error {
	msg, err := c.build(r, args, out)
	if err != nil {
		return notSent(err)
	}
	cl := &call{seq: r.Seq, method: r.ServiceMethod, state: publishing, replyType: out.replyType}
	if c.timeout > 0 {
		cl.deadline = start.Add(c.timeout)
	}
	out.expire(cl, msg) // the deadline of Call's context, if earlier
	c.mu.Lock()
	if c.closed {
		c.mu.Unlock()
		return notSent(ErrClosed)
	}
	if !out.ca.bind(c, r.Seq) {
		c.mu.Unlock()
		return notSent(contextError(r.ServiceMethod, out.ctx.Err())) // Call has returned
	}
	c.calls.add(cl)
	c.deadline.arm(cl.deadline)
	sessionsUp := c.sessionsUp
	c.mu.Unlock()
	for {
		gen, err := c.transport.Publish(c.queue, msg)
		c.mu.Lock()
		if c.calls.get(r.Seq) != cl {
			c.mu.Unlock()
			return nil // already answered or failed
		}
		again, fail := c.publishedLocked(cl, msg, gen, err, sessionsUp)
		sessionsUp = c.sessionsUp
		if fail != nil {
			c.calls.remove(cl.seq)
		}
		c.mu.Unlock()
		if !again {
			if fail != nil {
				return publishFailure(cl, fail)
			}
			return nil
		}
	}
}

// build encodes the request into the reused message. Publish does not keep
// it, and a request kept for later is copied (keep).
func (c *clientCodec) build(r *rpc.Request, args any, out *outgoing) (*amqp.Publishing, error) {
	body, err := c.bodies.Marshal(c.buf[:0], c.enc, args)
	if err != nil {
		return nil, fmt.Errorf("amqprpc: %s: %w", methodName(r.ServiceMethod), err)
	}
	c.buf = body
	if len(body) > c.replies.maxBody {
		return nil, failure(ErrBodyTooLarge, "%s request of %d bytes, limit %d", methodName(r.ServiceMethod), len(body), c.replies.maxBody)
	}
	id := out.messageID // the correlation id
	c.msg = amqp.Publishing{
		CorrelationId: id,
		Type:          r.ServiceMethod,
		ContentType:   c.enc.ContentType(),
		MessageId:     id, // unique too, and the same on every delivery
		Expiration:    c.expires,
		Headers:       out.headers,
		Body:          body,
	}
	return &c.msg, nil
}

// Close releases the channel, the reply consumer and any owned connection,
// and ends the codec's goroutines. It is idempotent.
func (c *clientCodec) Close() error {
	c.mu.Lock()
	if c.closed {
		c.mu.Unlock()
		return nil
	}
	c.closed = true
	c.mu.Unlock()
	c.deadline.stop()
	c.failures.Close()
	c.hooks.endAll()
	return c.transport.Close()
}

// Returned implements transport.ClientHandler: the broker could not route
// the request, so no queue has the service's name.
func (c *clientCodec) Returned(ret *amqp.Return) {
	c.failByID(ret.CorrelationId, failure(ErrNoQueue, "%q (the broker returned %s: %d %s)",
		ret.RoutingKey, methodName(ret.Type), ret.ReplyCode, ret.ReplyText))
}

// Confirmed implements transport.ClientHandler: a nacked request fails its
// call; an acked one no longer needs to be kept for publishing again. Only
// the confirm of the session that carried the request last counts.
func (c *clientCodec) Confirmed(gen uint64, correlationID string, ack bool) {
	seq, ok := c.ids.parse(correlationID)
	if !ok {
		return
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	cl := c.calls.get(seq)
	switch {
	case cl == nil:
	case cl.state == publishing && cl.gen < gen:
		// Publish has not returned yet: the confirm beat it.
		if ack {
			cl.confirmedEarly = true
		} else {
			c.failLocked(cl, failure(ErrNacked, "queue %q", c.queue))
		}
	case cl.gen != gen || cl.state != unconfirmed:
		// The confirm of an earlier publish of a request sent again since.
	case !ack:
		c.failLocked(cl, failure(ErrNacked, "queue %q", c.queue))
	default:
		cl.move(sent)
		cl.msg = nil
	}
}

// Ended implements transport.ClientHandler: the borrowed connection is gone
// for good. Every call fails, and ReadResponseHeader then returns err, which
// ends the *rpc.Client: later calls fail with rpc.ErrShutdown.
func (c *clientCodec) Ended(err error) {
	c.mu.Lock()
	var all []*call
	c.calls.each(func(cl *call) { all = append(all, cl) })
	for _, cl := range all {
		c.failLocked(cl, lostFailure(err, cl))
	}
	c.endErr = err
	c.mu.Unlock()
	c.failures.Close()
}

// failByID fails the call a correlation id names, if it is still pending.
func (c *clientCodec) failByID(correlationID string, f *callError) {
	seq, ok := c.ids.parse(correlationID)
	if !ok {
		return
	}
	c.mu.Lock()
	if cl := c.calls.get(seq); cl != nil {
		c.failLocked(cl, f)
	}
	c.mu.Unlock()
}

// failLocked ends cl with a failure. c.mu must be held.
func (c *clientCodec) failLocked(cl *call, f *callError) {
	c.calls.remove(cl.seq)
	c.release(1)
	c.failures.Put(response{seq: cl.seq, method: cl.method, fail: f})
}

// lostFailure is the failure of a call lost with its session: ended, with
// err, while it was pending in any state.
func lostFailure(err error, cl *call) *callError {
	if cl.state == held {
		return notSentFailure(ErrConnectionLost, "%s: %s", methodName(cl.method), detail(err))
	}
	f := asFailure(err, ErrConnectionLost)
	f.text += " (call " + methodName(cl.method) + ")"
	return f
}

// correlationIDs names calls: a random prefix per client (a version 4
// UUID's 122 random bits, in hex), then the sequence. The prefix makes a reply hard to forge for
// anyone who learns the reply queue's name: a reply with an id the client
// did not give out is dropped, where one that decodes into the wrong type
// would end the *rpc.Client. It also makes the id unique across clients,
// so that it serves as the request's message_id.
type correlationIDs struct{ prefix string } // ends with '.'

func newCorrelationIDs() correlationIDs {
	return correlationIDs{prefix: strings.ReplaceAll(uuid.NewString(), "-", "") + "."}
}

func (ids correlationIDs) format(seq uint64) string {
	var buf [40]byte
	return string(strconv.AppendUint(append(buf[:0], ids.prefix...), seq, 10))
}

func (ids correlationIDs) parse(id string) (uint64, bool) {
	rest, ok := strings.CutPrefix(id, ids.prefix)
	if !ok {
		return 0, false
	}
	seq, err := strconv.ParseUint(rest, 10, 64)
	return seq, err == nil
}

// keep copies a request whose body lives in a reused buffer.
func keep(msg *amqp.Publishing) *amqp.Publishing {
	k := *msg
	k.Body = bytes.Clone(msg.Body)
	return &k
}

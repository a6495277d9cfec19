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
	"github.com/amqprpc/amqprpc/transport"
)

// Dial connects to the broker at url and returns a net/rpc client whose calls
// go to the service queue named queue. It is the broker's counterpart of
// rpc.Dial("tcp", addr): Call and Go work unchanged, from many goroutines.
// The client owns its connection, reconnects after a loss, and releases
// everything on Close.
func Dial(url, queue string, opts ...ClientOption) (*rpc.Client, error) {
	cc, err := newClientCodec(nil, url, queue, opts)
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
	return newClientCodec(conn, "", queue, opts)
}

// clientCodec implements rpc.ClientCodec. Every per-call failure (timeout,
// returned request, lost connection, malformed reply) becomes a response for
// that call's sequence with Error set, because any error from
// ReadResponseHeader or ReadResponseBody would end the *rpc.Client for good.
//
// Its parts: the calls in flight and their deadlines (calls.go,
// deadlines.go), the requests held for a reconnect and published again
// (held.go), and the replies checked and handed to net/rpc (replies.go).
// This file publishes requests and takes the transport's reports.
type clientCodec struct {
	t           requestTransport
	queue       string
	ids         correlationIDs
	enc         codec.Encoding
	bodies      codec.Codec
	timeout     time.Duration
	expires     string        // the timeout in milliseconds, for the expiration property
	inspectWait time.Duration // bounds a timeout's question about the queue (deadlines.go)
	confirms    bool
	slots       chan struct{}   // one token per call in flight, with WithMaxInFlight; else nil
	buf         []byte          // request encoding buffer; net/rpc serializes WriteRequest
	msg         amqp.Publishing // the request being written, reused likewise

	// mu guards calls (and each call's gen, msg and confirmed), lostGen,
	// readies and closed. It is never held across a publish.
	mu      sync.Mutex
	calls   pendingCalls
	lostGen uint64 // the latest transport session reported lost
	lostErr error  // why it was lost
	readies uint64 // how many times a session came up
	closed  bool

	inbox    inbox       // responses for ReadResponseHeader
	replies  replyReader // owned by the rpc.Client's reading goroutine
	deadline deadlines
	flushing sync.Mutex // held by SessionReady while it publishes held requests

	hooks clientHooks // WithClientHook (hooks.go)
}

func newClientCodec(conn *amqp.Connection, url, queue string, opts []ClientOption) (*clientCodec, error) {
	o, err := newClientOptions(opts)
	if err != nil {
		return nil, err
	}
	if err := checkQueueName(queue); err != nil {
		return nil, err
	}
	c := newCodec(queue, o)
	cfg := transport.ClientConfig{Config: o.transport(conn, url), DirectReplyTo: o.directReplyTo}
	t, err := transport.NewClient(cfg, c)
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
	InspectQueue(queue string, wait time.Duration) (transport.QueueState, error)
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
		inbox:       inbox{wake: make(chan struct{}, 1)},
		hooks:       clientHooks{queue: queue, list: o.hooks},
	}
	c.replies = replyReader{bodies: &c.bodies, maxBody: o.maxBody}
	if o.maxInFlight > 0 {
		c.slots = make(chan struct{}, o.maxInFlight)
	}
	if c.timeout > 0 {
		c.expires = strconv.FormatInt(c.timeout.Milliseconds(), 10)
	}
	return c
}

// start gives the codec its transport and starts its deadline goroutine.
func (c *clientCodec) start(t requestTransport) {
	c.t = t
	c.deadline.start(c)
}

// WriteRequest publishes one request. It never waits for the broker: while
// the client is between connections the request is held and published on
// reconnect, and its deadline still runs.
func (c *clientCodec) WriteRequest(r *rpc.Request, args any) error {
	start := time.Now()
	out, args, err := c.prepare(r, args, start) // a call made by Call; the hooks (call.go)
	if err != nil {
		return err
	}
	if err := c.acquire(out.ctx, r.ServiceMethod); err != nil {
		c.hooks.end(r.Seq, err)
		return err
	}
	err = c.writeRequest(r, args, start, &out)
	if err != nil {
		c.release(1)
		c.hooks.end(r.Seq, err)
	}
	return err
}

func (c *clientCodec) writeRequest(r *rpc.Request, args any, start time.Time, out *outgoing) error {
	body, err := c.bodies.Marshal(c.buf[:0], c.enc, args)
	if err != nil {
		return fmt.Errorf("amqprpc: %s: %w", r.ServiceMethod, err)
	}
	c.buf = body
	if len(body) > c.replies.maxBody {
		return failure(ErrBodyTooLarge, "%s request of %d bytes, limit %d", r.ServiceMethod, len(body), c.replies.maxBody)
	}
	id := out.messageID // the correlation id
	// The message is reused: Publish does not keep it, and a request held
	// for later is copied (keep).
	msg := &c.msg
	*msg = amqp.Publishing{
		CorrelationId: id,
		Type:          r.ServiceMethod,
		ContentType:   c.enc.ContentType(),
		MessageId:     id, // unique too, and the same on every delivery
		Expiration:    c.expires,
		Headers:       out.headers,
		Body:          body,
	}
	cl := &call{seq: r.Seq, method: r.ServiceMethod, publishing: true}
	if c.timeout > 0 {
		cl.deadline = start.Add(c.timeout)
	}
	out.expire(cl, msg) // the deadline of Call's context, if earlier
	c.mu.Lock()
	if c.closed {
		c.mu.Unlock()
		return ErrClosed
	}
	if !out.ca.bind(c, r.Seq) {
		c.mu.Unlock()
		return contextError(r.ServiceMethod, out.ctx.Err()) // Call has returned
	}
	c.calls.add(cl)
	c.deadline.arm(cl.deadline)
	readies := c.readies
	c.mu.Unlock()
	for {
		gen, err := c.t.Publish(c.queue, msg)
		c.mu.Lock()
		if c.calls.get(r.Seq) != cl {
			c.mu.Unlock()
			return nil // already answered or failed
		}
		again, fail := c.publishedLocked(cl, msg, gen, err, readies)
		readies = c.readies
		cl.publishing = again
		if fail != nil {
			c.calls.remove(cl.seq)
		}
		c.mu.Unlock()
		if !again {
			return fail
		}
	}
}

// acquire takes a slot for a call, with WithMaxInFlight, waiting within the
// call timeout, and until ctx ends, for one to free up.
func (c *clientCodec) acquire(ctx context.Context, method string) error {
	if c.slots == nil {
		return nil
	}
	select {
	case c.slots <- struct{}{}:
		return nil
	default:
	}
	if c.timeout > 0 {
		t := time.NewTimer(c.timeout)
		defer t.Stop()
		select {
		case c.slots <- struct{}{}:
			return nil
		case <-t.C:
		case <-c.deadline.done:
			return ErrClosed
		case <-ctx.Done():
			return contextError(method, ctx.Err())
		}
	}
	return failure(ErrTooManyCalls, "%s: %d calls already in flight", method, cap(c.slots))
}

// release frees the slots of n calls that ended.
func (c *clientCodec) release(n int) {
	if c.slots == nil {
		return
	}
	for range n {
		select {
		case <-c.slots:
		default:
		}
	}
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
	c.inbox.close()
	c.hooks.endAll()
	return c.t.Close()
}

// Reply implements transport.ClientHandler: the reply goes to net/rpc,
// which checks and decodes it on its own goroutine.
func (c *clientCodec) Reply(d amqp.Delivery) {
	seq, ok := c.ids.parse(d.CorrelationId)
	if !ok {
		return // a foreign correlation id: forged, or another client's
	}
	c.mu.Lock()
	cl := c.calls.remove(seq)
	c.mu.Unlock()
	if cl == nil {
		return // late: the call already timed out or failed
	}
	c.release(1)
	c.inbox.put(response{seq: seq, method: cl.method, headers: d.Headers, contentType: d.ContentType, body: d.Body})
}

// Returned implements transport.ClientHandler: the broker could not route
// the request, so no queue has the service's name.
func (c *clientCodec) Returned(ret *amqp.Return) {
	c.failByID(ret.CorrelationId, failure(ErrNoQueue, "%q (the broker returned %s: %d %s)",
		ret.RoutingKey, ret.Type, ret.ReplyCode, ret.ReplyText))
}

// Confirmed implements transport.ClientHandler: a nacked request fails its
// call; an acked one no longer needs to be kept for publishing again.
func (c *clientCodec) Confirmed(correlationID string, ack bool) {
	if !ack {
		c.failByID(correlationID, failure(ErrNacked, "queue %q", c.queue))
		return
	}
	seq, ok := c.ids.parse(correlationID)
	if !ok {
		return
	}
	c.mu.Lock()
	if cl := c.calls.get(seq); cl != nil {
		cl.confirmed, cl.msg = true, nil
	}
	c.mu.Unlock()
}

// Ended implements transport.ClientHandler: the borrowed connection is gone
// for good. Every call fails, and ReadResponseHeader then returns err, which
// ends the *rpc.Client: later calls fail with rpc.ErrShutdown.
func (c *clientCodec) Ended(err error) {
	c.mu.Lock()
	var all []*call
	c.calls.each(func(cl *call) { all = append(all, cl) })
	for _, cl := range all {
		c.failLocked(cl, lostFailure(err, cl.method))
	}
	c.mu.Unlock()
	c.inbox.end(err)
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
	c.inbox.put(response{seq: cl.seq, method: cl.method, fail: f})
}

// lostFailure is the failure of a call lost with its session.
func lostFailure(err error, method string) *callError {
	f := asFailure(err, ErrConnectionLost)
	f.text += " (call " + method + ")"
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

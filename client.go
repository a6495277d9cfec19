package amqprpc

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"log/slog"
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
func Dial(url, queue string, opts ...Option) (*rpc.Client, error) {
	o, err := newOptions(opts)
	if err != nil {
		return nil, err
	}
	cc, err := newClientCodec(clientConfig(url, o), queue, o)
	if err != nil {
		return nil, err
	}
	return rpc.NewClientWithCodec(cc), nil
}

// clientConfig is the transport configuration of a client that owns its
// connections.
func clientConfig(url string, o *options) transport.ClientConfig {
	return transport.ClientConfig{Dialer: o.dialer(url)}
}

// NewClientCodec returns a net/rpc client codec that calls the service queue
// named queue over conn, for rpc.NewClientWithCodec. It opens its own channel
// on conn and reopens it after a channel error, but never closes conn and
// cannot outlive it; [Dial] owns its connection and reconnects.
func NewClientCodec(conn *amqp.Connection, queue string, opts ...Option) (rpc.ClientCodec, error) {
	if conn == nil {
		return nil, errors.New("amqprpc: NewClientCodec: nil connection")
	}
	o, err := newOptions(opts)
	if err != nil {
		return nil, err
	}
	return newClientCodec(transport.ClientConfig{Conn: conn}, queue, o)
}

// clientCodec implements rpc.ClientCodec. Every per-call failure (timeout,
// returned request, lost connection, malformed reply) becomes a response for
// that call's sequence with Error set, because any error from
// ReadResponseHeader or ReadResponseBody would end the *rpc.Client for good.
type clientCodec struct {
	t        *transport.Client
	bodies   codec.Codec
	enc      codec.Encoding
	queue    string
	idPrefix string // random, ends with '.': see correlationID
	timeout  time.Duration
	expires  string // the timeout in milliseconds, for the expiration property
	maxBody  int
	confirms bool
	log      *slog.Logger

	// mu guards calls (and each call's gen, msg and confirmed), lostGen,
	// readies, ready, readyAt, closed, ended and timerAt.
	mu      sync.Mutex
	calls   pendingCalls
	lostGen uint64     // the latest transport session reported lost
	readies uint64     // how many times a session came up
	ready   []response // responses waiting for ReadResponseHeader, from readyAt
	readyAt int
	closed  bool
	ended   error       // why the transport gave up for good
	timer   *time.Timer // fires at timerAt to fail calls past their deadline
	timerAt time.Time   // zero while the timer is idle

	flushing sync.Mutex     // held by SessionReady while it publishes waiting requests
	expiring sync.WaitGroup // expire runs under way; Close waits for them

	wake  chan struct{} // capacity 1: ready grew or the codec closed
	done  chan struct{} // closed by Close
	slots chan struct{} // one token per call in flight, with WithMaxInFlight; else nil

	cur response // owned by the rpc.Client's reading goroutine
	buf []byte   // request encoding buffer; net/rpc serializes WriteRequest
}

// response is a reply, or a failure made up for one call.
type response struct {
	seq    uint64
	method string
	err    string // the x-rpc-error header, or the failure
	enc    codec.Encoding
	body   []byte
}

func newClientCodec(cfg transport.ClientConfig, queue string, o *options) (*clientCodec, error) {
	if err := checkQueueName(queue); err != nil {
		return nil, err
	}
	c := &clientCodec{
		enc:      o.encoding,
		queue:    queue,
		timeout:  o.callTimeout,
		maxBody:  o.maxBody,
		confirms: o.confirms,
		log:      loggerOrDiscard(o.logger),
		wake:     make(chan struct{}, 1),
		done:     make(chan struct{}),
		idPrefix: strings.ReplaceAll(uuid.NewString(), "-", "")[:12] + ".",
	}
	if o.maxInFlight > 0 {
		c.slots = make(chan struct{}, o.maxInFlight)
	}
	if c.timeout > 0 {
		c.expires = strconv.FormatInt(c.timeout.Milliseconds(), 10)
	}
	c.timer = time.AfterFunc(time.Hour, c.expire)
	c.timer.Stop()
	cfg.DirectReplyTo = o.directReplyTo
	cfg.Confirm = o.confirms
	cfg.Backoff = o.backoff()
	cfg.Logger = o.logger
	t, err := transport.NewClient(cfg, c)
	if err != nil {
		return nil, err
	}
	c.t = t
	t.Start()
	return c, nil
}

// WriteRequest publishes one request. It never waits for the broker: while
// the client is between connections the request is held and published on
// reconnect, and its deadline still runs.
func (c *clientCodec) WriteRequest(r *rpc.Request, args any) error {
	start := time.Now()
	if err := c.acquire(r.ServiceMethod); err != nil {
		return err
	}
	err := c.writeRequest(r, args, start)
	if err != nil {
		c.release(1)
	}
	return err
}

// acquire takes a slot for a call, with WithMaxInFlight, waiting within the
// call timeout for one to free up.
func (c *clientCodec) acquire(method string) error {
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
		case <-c.done:
			return ErrClosed
		}
	}
	return fmt.Errorf("%w: %s: %d calls already in flight", ErrTooManyCalls, method, cap(c.slots))
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

func (c *clientCodec) writeRequest(r *rpc.Request, args any, start time.Time) error {
	body, err := c.bodies.Marshal(c.buf[:0], c.enc, args)
	if err != nil {
		return fmt.Errorf("amqprpc: %s: %w", r.ServiceMethod, err)
	}
	c.buf = body
	if len(body) > c.maxBody {
		return fmt.Errorf("%w: %s request of %d bytes, limit %d", ErrBodyTooLarge, r.ServiceMethod, len(body), c.maxBody)
	}
	msg := &amqp.Publishing{
		CorrelationId: c.correlationID(r.Seq),
		Type:          r.ServiceMethod,
		ContentType:   c.enc.ContentType(),
		MessageId:     uuid.NewString(),
		Expiration:    c.expires,
		Body:          body,
	}
	cl := &call{seq: r.Seq, method: r.ServiceMethod}
	if c.timeout > 0 {
		cl.deadline = start.Add(c.timeout)
	}
	c.mu.Lock()
	if c.closed {
		c.mu.Unlock()
		return ErrClosed
	}
	c.calls.add(cl)
	c.armTimerLocked(cl.deadline)
	readies := c.readies
	c.mu.Unlock()

	for {
		gen, err := c.t.Publish(c.queue, msg)
		c.mu.Lock()
		if c.calls.get(r.Seq) != cl {
			c.mu.Unlock()
			return nil // already answered or failed
		}
		switch {
		case err == nil:
			cl.gen = gen
			if c.confirms && !cl.confirmed {
				cl.msg = keep(msg)
			}
			if gen <= c.lostGen {
				c.lostLocked(cl, nil)
				if cl.waiting() && c.readies != readies {
					// Kept to be sent again, but the session that
					// would send it may already be up: send it now.
					readies = c.readies
					c.mu.Unlock()
					continue
				}
			}
		case errors.Is(err, transport.ErrNotConnected):
			if c.readies != readies {
				// A session came up since the attempt, and its
				// SessionReady may have missed this call: try again.
				readies = c.readies
				c.mu.Unlock()
				continue
			}
			cl.msg = keep(msg) // SessionReady publishes it
		default:
			c.calls.remove(cl.seq)
			c.mu.Unlock()
			return err
		}
		c.mu.Unlock()
		return nil
	}
}

// correlationID names the call with sequence seq: the client's random
// prefix and seq. The prefix makes a reply hard to forge for anyone who
// learns the reply queue's name: a reply with an id the client did not give
// out is dropped, where one that decodes into the wrong type would end the
// *rpc.Client.
func (c *clientCodec) correlationID(seq uint64) string {
	var buf [40]byte
	b := append(buf[:0], c.idPrefix...)
	return string(strconv.AppendUint(b, seq, 10))
}

// parseCorrelationID returns the sequence a correlation id of this client
// names.
func (c *clientCodec) parseCorrelationID(id string) (uint64, error) {
	rest, ok := strings.CutPrefix(id, c.idPrefix)
	if !ok {
		return 0, errForeignID
	}
	return strconv.ParseUint(rest, 10, 64)
}

var errForeignID = errors.New("amqprpc: correlation id of another client")

// keep copies a request whose body lives in a reused buffer.
func keep(msg *amqp.Publishing) *amqp.Publishing {
	k := *msg
	k.Body = bytes.Clone(msg.Body)
	return &k
}

// ReadResponseHeader waits for the next response, real or made up.
func (c *clientCodec) ReadResponseHeader(r *rpc.Response) error {
	for {
		c.mu.Lock()
		if c.readyAt < len(c.ready) {
			c.cur = c.ready[c.readyAt]
			c.ready[c.readyAt] = response{}
			if c.readyAt++; c.readyAt == len(c.ready) {
				// Empty: start again at the front of the same array.
				c.ready, c.readyAt = c.ready[:0], 0
			}
			c.mu.Unlock()
			r.Seq = c.cur.seq
			r.ServiceMethod = c.cur.method
			r.Error = c.cur.err
			return nil
		}
		closed, ended := c.closed, c.ended
		c.mu.Unlock()
		if closed {
			return io.EOF
		}
		if ended != nil {
			return ended
		}
		<-c.wake
	}
}

// ReadResponseBody decodes the current reply into x. The reply was checked
// to be one well-formed value when it arrived, so an error here means a
// well-formed value that does not fit x: the caller and the service disagree
// on the reply type, which net/rpc treats as fatal to the client.
func (c *clientCodec) ReadResponseBody(x any) error {
	body := c.cur.body
	c.cur.body = nil
	if x == nil || c.cur.err != "" {
		return nil
	}
	if err := c.bodies.Unmarshal(c.cur.enc, body, x); err != nil {
		return fmt.Errorf("amqprpc: reply to %s does not fit %T: %w", c.cur.method, x, err)
	}
	return nil
}

// Close releases the channel, the reply consumer and any owned connection,
// and ends the transport's goroutine. It is idempotent.
func (c *clientCodec) Close() error {
	c.mu.Lock()
	if c.closed {
		c.mu.Unlock()
		return nil
	}
	c.closed = true
	c.timer.Stop()
	close(c.done)
	c.mu.Unlock()
	c.signal()
	c.expiring.Wait()
	return c.t.Close()
}

// Reply implements transport.ClientHandler.
func (c *clientCodec) Reply(d amqp.Delivery) {
	seq, err := c.parseCorrelationID(d.CorrelationId)
	if err != nil {
		c.log.Debug("amqprpc: dropped a reply with a foreign correlation id", "correlation_id", clip(d.CorrelationId, 64))
		return
	}
	c.mu.Lock()
	cl := c.calls.remove(seq)
	c.mu.Unlock()
	if cl == nil {
		c.log.Debug("amqprpc: dropped a reply to no pending call", "correlation_id", d.CorrelationId)
		return
	}
	c.release(1)
	c.deliver(c.checkReply(cl, &d))
}

// checkReply turns a delivery into the call's response, making a malformed
// reply an error response for that call alone.
func (c *clientCodec) checkReply(cl *call, d *amqp.Delivery) response {
	r := response{seq: cl.seq, method: cl.method}
	if v, ok := d.Headers[ErrorHeader]; ok {
		r.err = headerText(v)
		if r.err == "" {
			r.err = fmt.Sprintf("%v: %s: empty %s header", ErrMalformedReply, cl.method, ErrorHeader)
		}
		return r
	}
	enc, err := codec.ForContentType(d.ContentType)
	if err != nil {
		r.err = fmt.Sprintf("%v: %s: %s", ErrMalformedReply, cl.method, detail(err))
		return r
	}
	if len(d.Body) > c.maxBody {
		r.err = fmt.Sprintf("%v: %s reply of %d bytes, limit %d", ErrBodyTooLarge, cl.method, len(d.Body), c.maxBody)
		return r
	}
	if err := c.bodies.Unmarshal(enc, d.Body, nil); err != nil {
		r.err = fmt.Sprintf("%v: %s: %s", ErrMalformedReply, cl.method, detail(err))
		return r
	}
	r.enc, r.body = enc, d.Body
	return r
}

// Returned implements transport.ClientHandler: the broker could not route
// the request, so no queue has the service's name.
func (c *clientCodec) Returned(ret *amqp.Return) {
	c.failByID(ret.CorrelationId, fmt.Sprintf("%v: %q (the broker returned %s: %d %s)",
		ErrNoQueue, ret.RoutingKey, ret.Type, ret.ReplyCode, ret.ReplyText))
}

// Confirmed implements transport.ClientHandler: a nacked request fails its
// call; an acked one no longer needs to be kept for publishing again.
func (c *clientCodec) Confirmed(correlationID string, ack bool) {
	if !ack {
		c.failByID(correlationID, fmt.Sprintf("%v (queue %q)", ErrNacked, c.queue))
		return
	}
	seq, err := c.parseCorrelationID(correlationID)
	if err != nil {
		return
	}
	c.mu.Lock()
	if cl := c.calls.get(seq); cl != nil {
		cl.confirmed, cl.msg = true, nil
	}
	c.mu.Unlock()
}

// SessionLost implements transport.ClientHandler: calls published on the
// lost session can no longer get a reply.
func (c *clientCodec) SessionLost(gen uint64, err error) {
	c.mu.Lock()
	c.lostGen = gen
	var lost []*call
	c.calls.each(func(cl *call) {
		if cl.gen != 0 && cl.gen <= gen {
			lost = append(lost, cl)
		}
	})
	for _, cl := range lost {
		c.lostLocked(cl, err)
	}
	c.mu.Unlock()
}

// lostLocked handles a call whose session is gone. With confirms on, a
// request the broker never confirmed was never reported sent: it waits to be
// published again. Any other call fails. c.mu must be held.
func (c *clientCodec) lostLocked(cl *call, err error) {
	if c.confirms && !cl.confirmed && cl.msg != nil {
		cl.gen = 0
		return
	}
	if err == nil {
		c.failLocked(cl, fmt.Sprintf("%v: %s was sent on a connection that has since been lost", ErrConnectionLost, cl.method))
		return
	}
	c.failLocked(cl, fmt.Sprintf("%s (call %s)", lostText(err), cl.method))
}

// SessionReady implements transport.ClientHandler: it publishes the requests
// that waited while the client was between connections.
func (c *clientCodec) SessionReady(gen uint64) {
	c.flushing.Lock() // one flush at a time, in session order
	defer c.flushing.Unlock()
	c.mu.Lock()
	c.readies++
	var waiting []*call
	var msgs []*amqp.Publishing
	c.calls.each(func(cl *call) {
		if cl.waiting() {
			waiting = append(waiting, cl)
			msgs = append(msgs, cl.msg)
		}
	})
	c.mu.Unlock()
	for i, cl := range waiting {
		msg := msgs[i]
		if !cl.deadline.IsZero() {
			left := time.Until(cl.deadline).Milliseconds()
			if left < 1 {
				continue // its timer fails it
			}
			msg.Expiration = strconv.FormatInt(left, 10)
		}
		gen, err := c.t.Publish(c.queue, msg)
		c.mu.Lock()
		if c.calls.get(cl.seq) == cl {
			switch {
			case err == nil:
				cl.gen = gen
				if !c.confirms || cl.confirmed {
					cl.msg = nil
				}
				if gen <= c.lostGen {
					c.lostLocked(cl, nil)
				}
			case !errors.Is(err, transport.ErrNotConnected):
				c.failLocked(cl, err.Error())
			}
		}
		c.mu.Unlock()
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
		c.failLocked(cl, fmt.Sprintf("%s (call %s)", lostText(err), cl.method))
	}
	c.ended = err
	c.mu.Unlock()
	c.signal()
}

// failByID fails the call a correlation id names, if it is still pending.
func (c *clientCodec) failByID(correlationID, text string) {
	seq, err := c.parseCorrelationID(correlationID)
	if err != nil {
		return
	}
	c.mu.Lock()
	if cl := c.calls.get(seq); cl != nil {
		c.failLocked(cl, text)
	}
	c.mu.Unlock()
}

// failLocked ends cl with an error response. c.mu must be held.
func (c *clientCodec) failLocked(cl *call, text string) {
	c.calls.remove(cl.seq)
	c.release(1)
	c.ready = append(c.ready, response{seq: cl.seq, method: cl.method, err: text})
	c.signal()
}

// deliver queues a response for ReadResponseHeader.
func (c *clientCodec) deliver(r response) {
	c.mu.Lock()
	c.ready = append(c.ready, r)
	c.mu.Unlock()
	c.signal()
}

func (c *clientCodec) signal() {
	select {
	case c.wake <- struct{}{}:
	default:
	}
}

// armTimerLocked makes the timer fire by deadline. c.mu must be held.
func (c *clientCodec) armTimerLocked(deadline time.Time) {
	if deadline.IsZero() || (!c.timerAt.IsZero() && !deadline.Before(c.timerAt)) {
		return
	}
	c.timerAt = deadline
	c.timer.Reset(time.Until(deadline))
}

// expire runs on the timer: it fails every call past its deadline, saying
// why as far as the client can tell, and sets the timer for the next one.
func (c *clientCodec) expire() {
	c.mu.Lock()
	if c.closed {
		c.mu.Unlock()
		return
	}
	c.expiring.Add(1)
	defer c.expiring.Done()
	c.timerAt = time.Time{}
	expired := c.calls.popExpired(time.Now(), nil)
	if next, ok := c.calls.nextDeadline(); ok {
		c.armTimerLocked(next)
	}
	c.mu.Unlock()
	c.release(len(expired))
	if len(expired) == 0 {
		return
	}
	// The expired calls are out of the pending set, so nothing else answers
	// them while the broker is asked about the queue.
	why := ""
	for _, cl := range expired {
		if !cl.waiting() {
			why = c.queueStateText()
			break
		}
	}
	c.mu.Lock()
	for _, cl := range expired {
		c.ready = append(c.ready, response{seq: cl.seq, method: cl.method, err: c.timeoutText(cl, why)})
	}
	c.mu.Unlock()
	c.signal()
}

// inspectWait bounds the question a timeout asks the broker.
const inspectWait = 500 * time.Millisecond

// queueStateText describes the service queue for a timeout message.
func (c *clientCodec) queueStateText() string {
	st, err := c.t.InspectQueue(c.queue, inspectWait)
	switch {
	case err != nil:
		return "the queue could not be inspected: " + detail(err)
	case !st.Exists:
		return "the queue no longer exists"
	case st.Consumers == 0:
		return fmt.Sprintf("the queue has no consumer, %d requests waiting", st.Messages)
	}
	if st.Consumers == 1 {
		return fmt.Sprintf("the queue has 1 consumer, %d requests waiting", st.Messages)
	}
	return fmt.Sprintf("the queue has %d consumers, %d requests waiting", st.Consumers, st.Messages)
}

// timeoutText says why a call timed out.
func (c *clientCodec) timeoutText(cl *call, queueState string) string {
	if cl.waiting() {
		return fmt.Sprintf("%v: %s waited %v for a connection to the broker", ErrTimeout, cl.method, c.timeout)
	}
	return fmt.Sprintf("%v: %s got no reply from queue %q within %v (%s)", ErrTimeout, cl.method, c.queue, c.timeout, queueState)
}

// lostText is the error text of a call lost with its session.
func lostText(err error) string {
	if err == nil || !errors.Is(err, ErrConnectionLost) {
		return fmt.Sprintf("%v: %v", ErrConnectionLost, err)
	}
	return err.Error()
}

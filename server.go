package amqprpc

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/rpc"
	"sync"

	amqp "github.com/rabbitmq/amqp091-go"

	"github.com/amqprpc/amqprpc/codec"
	"github.com/amqprpc/amqprpc/transport"
)

// Serve connects to the broker at url, consumes the service queue named
// queue (declaring it if needed) and serves each request with srv, as
// srv.Accept does for a TCP listener; a nil srv means rpc.DefaultServer.
// Several Serve calls, in one process or many, can share a queue: the broker
// spreads requests among them. Serve reconnects after a loss and returns when
// ctx ends, once it has stopped taking requests, returned those it had
// prefetched to the queue, and replied to the calls in flight. It returns an
// error only when it cannot start.
func Serve(ctx context.Context, srv *rpc.Server, url, queue string, opts ...Option) error {
	if srv == nil {
		srv = rpc.DefaultServer
	}
	o, err := newOptions(opts)
	if err != nil {
		return err
	}
	sc, err := newServerCodec(transport.ServerConfig{Dialer: o.dialer(url)}, queue, o)
	if err != nil {
		return err
	}
	if o.ready != nil {
		o.ready()
	}
	stop := context.AfterFunc(ctx, sc.t.Stop)
	defer stop()
	srv.ServeCodec(sc) // ends with sc.Close once every reply is written
	return nil
}

// NewServerCodec returns a net/rpc server codec that serves the queue named
// queue over conn, for rpc.ServeCodec. It opens its own channel on conn and
// never closes conn. Closing the codec stops it gracefully: it stops taking
// requests, returns prefetched ones to the queue, and waits for the replies
// of calls in flight.
func NewServerCodec(conn *amqp.Connection, queue string, opts ...Option) (rpc.ServerCodec, error) {
	if conn == nil {
		return nil, errors.New("amqprpc: NewServerCodec: nil connection")
	}
	o, err := newOptions(opts)
	if err != nil {
		return nil, err
	}
	return newServerCodec(transport.ServerConfig{Conn: conn}, queue, o)
}

// serverCodec implements rpc.ServerCodec. It numbers requests itself and
// maps each number back to the delivery it must answer and acknowledge.
//
// Replies are encoded, published and acknowledged by one goroutine of the
// codec's (publishReplies), not by the goroutine net/rpc starts for each
// call: publishing runs deep into amqp091-go, and doing it on a fresh
// goroutine made the runtime grow that goroutine's stack on every call.
type serverCodec struct {
	t             *transport.Server
	bodies        codec.Codec
	defaultMethod string
	maxBody       int
	log           *slog.Logger

	mu      sync.Mutex // guards seq, pending, closing and idle
	seq     uint64
	pending map[uint64]*inbound // taken requests whose reply is not sent
	closing bool
	idle    chan struct{} // closed when pending empties after Close began

	replies     chan outbound // to publishReplies
	repliesMu   sync.RWMutex  // held to send on replies; Close takes it to close replies
	repliesDone bool          // replies is closed; guarded by repliesMu
	published   chan struct{} // closed when publishReplies ends

	cur       *inbound // owned by ServeCodec's reading goroutine
	buf       []byte   // reply encoding buffer, owned by publishReplies
	closeOnce sync.Once
}

// inbound is a request taken from the queue.
type inbound struct {
	req    transport.Request
	seq    uint64 // 0 for a request refused before it reached net/rpc
	enc    codec.Encoding
	method string
}

// outbound is a reply to send: the value to encode, or an error text.
type outbound struct {
	in      *inbound
	body    any
	errText string
}

func newServerCodec(cfg transport.ServerConfig, queue string, o *options) (*serverCodec, error) {
	if err := checkQueueName(queue); err != nil {
		return nil, err
	}
	cfg.Queue = transport.QueueConfig{Name: queue, Durable: !o.transient, Quorum: o.quorum, Expires: o.queueExpiry}
	cfg.Prefetch = o.prefetch
	cfg.Confirm = o.confirms
	cfg.Backoff = o.backoff()
	cfg.Logger = o.logger
	t, err := transport.NewServer(cfg)
	if err != nil {
		return nil, err
	}
	c := &serverCodec{
		t:             t,
		defaultMethod: o.defaultMethod,
		maxBody:       o.maxBody,
		log:           loggerOrDiscard(o.logger),
		pending:       make(map[uint64]*inbound),
		// Calls in flight are bounded by the prefetch, so sends to replies
		// hardly ever wait.
		replies:   make(chan outbound, o.prefetch+16),
		published: make(chan struct{}),
	}
	go c.publishReplies()
	return c, nil
}

// ReadRequestHeader takes the next request. Requests the codec can refuse on
// its own (no method, unknown content type, too large) get their error reply
// here and never reach net/rpc. It returns io.EOF, which ends ServeCodec,
// only once the codec is stopping or closed.
func (c *serverCodec) ReadRequestHeader(r *rpc.Request) error {
	for {
		req, err := c.t.Next()
		if err != nil {
			return io.EOF
		}
		in, refusal := c.accept(req)
		if refusal != "" {
			c.send(outbound{in: in, errText: refusal})
			continue
		}
		if c.answerPing(in) { // ping.go
			continue
		}
		c.mu.Lock()
		c.seq++
		in.seq = c.seq
		c.pending[c.seq] = in
		c.mu.Unlock()
		r.Seq = in.seq
		r.ServiceMethod = in.method
		c.cur = in
		return nil
	}
}

// accept reads a request's properties, or says why it must be refused.
func (c *serverCodec) accept(req transport.Request) (*inbound, string) {
	in := &inbound{req: req, method: req.Type, enc: codec.JSON}
	enc, err := codec.ForContentType(req.ContentType)
	if err != nil {
		return in, err.Error()
	}
	in.enc = enc
	if in.method == "" {
		in.method = c.defaultMethod
	}
	switch {
	case in.method == "":
		return in, ErrNoMethod.Error()
	case len(req.Body) > c.maxBody:
		return in, fmt.Sprintf("%v: %s request of %d bytes, limit %d", ErrBodyTooLarge, clip(in.method, 64), len(req.Body), c.maxBody)
	}
	return in, ""
}

// ReadRequestBody decodes the argument of the request ReadRequestHeader
// returned; a nil x discards it. A body that does not decode becomes an
// error reply, sent by net/rpc.
func (c *serverCodec) ReadRequestBody(x any) error {
	in := c.cur
	c.cur = nil
	if x == nil || in == nil {
		return nil
	}
	if err := c.bodies.Unmarshal(in.enc, in.req.Body, x); err != nil {
		return fmt.Errorf("%w: %s: %s", ErrMalformedRequest, in.method, detail(err))
	}
	if d, ok := x.(deliveryReceiver); ok {
		d.setDelivery(in.req.MessageId, in.req.Redelivered)
	}
	return nil
}

// WriteResponse hands the reply to the request numbered r.Seq to the
// codec's publishing goroutine, which encodes and publishes it and then
// acknowledges the request. net/rpc does not touch body again, and r is
// copied, so nothing is shared with the caller after it returns.
func (c *serverCodec) WriteResponse(r *rpc.Response, body any) error {
	c.mu.Lock()
	in := c.pending[r.Seq]
	c.mu.Unlock()
	if in == nil {
		return fmt.Errorf("amqprpc: response to unknown request %d", r.Seq)
	}
	c.send(outbound{in: in, body: body, errText: r.Error})
	return nil
}

// send queues a reply for publishReplies, or, once Close has stopped it,
// sends it here.
func (c *serverCodec) send(o outbound) {
	c.repliesMu.RLock()
	if !c.repliesDone {
		c.replies <- o
		c.repliesMu.RUnlock()
		return
	}
	c.repliesMu.RUnlock()
	var buf []byte // not c.buf: several goroutines may get here at once
	c.reply(o, &buf)
}

// publishReplies sends the queued replies until Close closes the queue.
func (c *serverCodec) publishReplies() {
	defer close(c.published)
	for o := range c.replies {
		c.reply(o, &c.buf)
	}
}

// reply encodes (into *buf, reused), publishes and acknowledges one reply.
// A reply that cannot be encoded or is too large becomes an error reply.
func (c *serverCodec) reply(o outbound, buf *[]byte) {
	in := o.in
	defer c.done(in.seq)
	var payload []byte
	if o.errText == "" {
		b, err := c.bodies.Marshal((*buf)[:0], in.enc, o.body)
		switch {
		case err != nil:
			o.errText = fmt.Sprintf("amqprpc: %s: %s", in.method, detail(err))
		case len(b) > c.maxBody:
			o.errText = fmt.Sprintf("%v: %s reply of %d bytes, limit %d", ErrBodyTooLarge, in.method, len(b), c.maxBody)
		default:
			payload = b
		}
		*buf = b
	}
	_ = c.respond(in, payload, o.errText)
}

// done forgets a request whose reply is sent.
func (c *serverCodec) done(seq uint64) {
	if seq == 0 {
		return
	}
	c.mu.Lock()
	delete(c.pending, seq)
	if c.closing && len(c.pending) == 0 && c.idle != nil {
		close(c.idle)
		c.idle = nil
	}
	c.mu.Unlock()
}

// respond sends the reply (payload, or errText in the error header) and
// acknowledges the request.
func (c *serverCodec) respond(in *inbound, payload []byte, errText string) error {
	msg := amqp.Publishing{
		CorrelationId: in.req.CorrelationId,
		ContentType:   in.enc.ContentType(),
		Body:          payload,
	}
	if errText != "" {
		msg.Headers = amqp.Table{ErrorHeader: clip(errText, maxErrorText)}
		msg.Body = nil
	}
	if err := c.t.Respond(&in.req, &msg); err != nil {
		c.log.Warn("amqprpc: reply not sent; the broker will redeliver the request", "method", clip(in.method, 64), "err", err)
		return err
	}
	return nil
}

// Close stops taking requests, returns prefetched ones to the queue, waits
// for the replies of calls in flight, and then releases the channel and any
// owned connection. It is idempotent; net/rpc calls it when ServeCodec ends.
func (c *serverCodec) Close() error {
	c.closeOnce.Do(func() {
		c.t.Stop()
		c.mu.Lock()
		c.closing = true
		var idle chan struct{}
		if len(c.pending) > 0 {
			idle = make(chan struct{})
			c.idle = idle
		}
		c.mu.Unlock()
		if idle != nil {
			<-idle
		}
		c.repliesMu.Lock()
		c.repliesDone = true
		close(c.replies)
		c.repliesMu.Unlock()
		<-c.published
		_ = c.t.Close()
	})
	return nil
}

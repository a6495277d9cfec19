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
	"github.com/amqprpc/amqprpc/internal/batch"
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
func Serve(ctx context.Context, srv *rpc.Server, url, queue string, opts ...ServerOption) error {
	if srv == nil {
		srv = rpc.DefaultServer
	}
	sc, o, err := newServerCodec(nil, url, queue, opts)
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
func NewServerCodec(conn *amqp.Connection, queue string, opts ...ServerOption) (rpc.ServerCodec, error) {
	if conn == nil {
		return nil, errors.New("amqprpc: NewServerCodec: nil connection")
	}
	sc, _, err := newServerCodec(conn, "", queue, opts)
	return sc, err
}

// serverCodec implements rpc.ServerCodec. It numbers requests itself and
// maps each number back to the delivery it must answer and acknowledge.
// Every reply, a service's or a refusal the codec makes itself, goes out
// through one queue to one goroutine of the codec's (outbox), which
// encodes, publishes and acknowledges: publishing runs deep into
// amqp091-go, and doing it on net/rpc's goroutine per call made the runtime
// grow that goroutine's stack every time.
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

	out       outbox
	poison    *poisonGuard
	cur       *inbound // owned by ServeCodec's reading goroutine
	closeOnce sync.Once

	hooks serverHooks // WithServerHook (hooks.go)
}

// inbound is a request taken from the queue.
type inbound struct {
	req    transport.Request
	seq    uint64 // 0 for a request refused before it reached net/rpc
	enc    codec.Encoding
	method string
	rc     *requestContext // the caller's deadline and the hooks (hooks.go); nil without
}

func newServerCodec(conn *amqp.Connection, url, queue string, opts []ServerOption) (*serverCodec, *serverOptions, error) {
	o, err := newServerOptions(opts)
	if err != nil {
		return nil, nil, err
	}
	if err := checkQueueName(queue); err != nil {
		return nil, nil, err
	}
	poison := newPoisonGuard()
	cfg := transport.ServerConfig{
		Config:   o.transport(conn, url),
		Queue:    transport.QueueConfig{Name: queue, Durable: !o.transient, Quorum: o.quorum, Expires: o.queueExpiry},
		Prefetch: o.prefetch,
		Lost:     poison.crashed,
	}
	t, err := transport.NewServer(cfg)
	if err != nil {
		return nil, nil, err
	}
	c := &serverCodec{
		t:             t,
		defaultMethod: o.defaultMethod,
		maxBody:       o.maxBody,
		log:           o.logger,
		pending:       make(map[uint64]*inbound),
		poison:        poison,
		hooks:         serverHooks{queue: queue, list: o.hooks},
	}
	c.out.start(c.reply, c.ackAnswered)
	return c, o, nil
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
		if c.poison.poisonous(&req.Delivery) {
			c.log.Error("amqprpc: rejected a request whose reply_to made the broker close the connection",
				"reply_to", fmt.Sprintf("%.80s", req.ReplyTo), "message_id", fmt.Sprintf("%.64s", req.MessageId))
			_ = c.t.Reject(&req, false)
			continue
		}
		in, refusal := c.accept(req)
		c.hooks.begin(in)
		if refusal != "" {
			if !c.out.put(outbound{in: in, errText: refusal}) {
				_ = c.t.Reject(&in.req, true) // closed meanwhile
				return io.EOF
			}
			continue
		}
		if c.answerPing(in) { // ping.go
			continue
		}
		c.mu.Lock()
		if c.closing {
			// Close has stopped waiting for replies: this one could not
			// be sent, so it goes back to the queue unrun.
			c.mu.Unlock()
			_ = c.t.Reject(&in.req, true)
			return io.EOF
		}
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
		return in, failure(ErrBodyTooLarge, "%.64s request of %d bytes, limit %d", in.method, len(req.Body), c.maxBody).Error()
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
		return failure(ErrMalformedRequest, "%s: %s", in.method, detail(err))
	}
	if d, ok := x.(deliveryReceiver); ok {
		d.setDelivery(in.req.MessageId, in.req.Redelivered)
	}
	if in.rc != nil {
		if d, ok := x.(contextReceiver); ok {
			d.setContext(in.rc.ctx) // context.go
		}
	}
	return nil
}

// WriteResponse hands the reply to the request numbered r.Seq to the
// codec's publishing goroutine, which encodes and publishes it and then
// acknowledges the request. It never waits: net/rpc does not touch body
// again, and r is copied, so nothing is shared after it returns.
func (c *serverCodec) WriteResponse(r *rpc.Response, body any) error {
	c.mu.Lock()
	in := c.pending[r.Seq]
	c.mu.Unlock()
	if in == nil {
		return fmt.Errorf("amqprpc: response to unknown request %d", r.Seq)
	}
	if !c.out.put(outbound{in: in, body: body, errText: r.Error}) {
		return ErrClosed // cannot happen: Close waits for every pending reply
	}
	return nil
}

// reply encodes (into *buf, reused), publishes and acknowledges one reply,
// on the outbox's goroutine. A reply that cannot be encoded or is too large
// becomes an error reply.
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
			o.errText = failure(ErrBodyTooLarge, "%s reply of %d bytes, limit %d", in.method, len(b), c.maxBody).Error()
		default:
			payload = b
		}
		*buf = b
	}
	msg := amqp.Publishing{CorrelationId: in.req.CorrelationId, ContentType: in.enc.ContentType(), Body: payload}
	if o.errText != "" {
		msg.Headers = amqp.Table{ErrorHeader: truncateUTF8(o.errText, maxErrorText)}
		msg.Body = nil
	}
	var err error
	switch {
	case !risky(in.req.ReplyTo):
		err = c.t.Respond(&in.req, &msg)
	case c.poison.suspect(&in.req.Delivery):
		var closedIt bool
		if closedIt, err = c.t.RespondAlone(&in.req, &msg); closedIt || err == nil {
			c.poison.proven(&in.req.Delivery, closedIt)
		}
	default:
		c.poison.replied(&in.req.Delivery)
		err = c.t.Respond(&in.req, &msg)
	}
	if err != nil {
		c.log.Warn("amqprpc: reply not sent; the broker will redeliver the request", "method", fmt.Sprintf("%.64s", in.method), "err", err)
	}
	in.rc.finish(o.errText, err) // hooks.go
}

// ackAnswered acknowledges the requests whose replies are published, on
// the outbox's goroutine after each run of replies: runs of requests cost
// one acknowledgement.
func (c *serverCodec) ackAnswered() {
	if err := c.t.AckAnswered(); err != nil {
		c.log.Warn("amqprpc: acknowledgements not sent; the broker will redeliver the requests", "err", err)
	}
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
		c.out.close()
		_ = c.t.Close()
	})
	return nil
}

// outbound is a reply to send: the value to encode, or an error text.
type outbound struct {
	in      *inbound
	body    any
	errText string
}

// outbox queues replies for one goroutine that sends them in order. put
// never blocks, and no lock is held while a reply is sent.
type outbox struct {
	queue *batch.Queue[outbound]
	ended chan struct{} // closed when the goroutine has ended
}

// start starts the goroutine: it sends each reply with send, and calls
// sent after each run of replies.
func (b *outbox) start(send func(outbound, *[]byte), sent func()) {
	b.queue = batch.New[outbound]()
	b.ended = make(chan struct{})
	go b.run(send, sent)
}

// put queues a reply; it reports false, queueing nothing, once the outbox
// is closed.
func (b *outbox) put(o outbound) bool { return b.queue.Put(o) }

// close makes the goroutine end once it has sent what is queued, and waits
// for it.
func (b *outbox) close() {
	b.queue.Close()
	<-b.ended
}

func (b *outbox) run(send func(outbound, *[]byte), sent func()) {
	defer close(b.ended)
	var batch []outbound
	var buf []byte // the reply encoding buffer
	for {
		var closed bool
		batch, closed = b.queue.Take(batch)
		for _, o := range batch {
			send(o, &buf)
		}
		switch {
		case len(batch) > 0:
			sent()
		case closed:
			return
		default:
			<-b.queue.Wake()
		}
	}
}

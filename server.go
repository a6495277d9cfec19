package amqprpc

import (
	"context"
	"errors"
	"log/slog"
	"net/rpc"
	"sync"
	"time"

	amqp "github.com/rabbitmq/amqp091-go"

	"github.com/amqprpc/amqprpc/codec"
	"github.com/amqprpc/amqprpc/transport"
)

// Serve connects to the broker at url, consumes the service queue named
// queue (declaring it if needed) and serves each request with srv, as
// srv.Accept does for a TCP listener; a nil srv means rpc.DefaultServer.
// Several Serve calls, in one process or many, can share a queue: the broker
// spreads requests among them. Serve reconnects after a loss and returns
// when ctx ends. It returns an error only when it cannot start.
//
// ctx bounds the first connection too: should it end before Serve is
// connected, Serve gives up at once and returns nil, as it does when ctx
// ends later.
//
// When ctx ends, Serve stops taking requests, returns those it had
// prefetched to the queue, and waits for the methods still running to
// return and for their replies to be sent, for at most the shutdown grace
// period ([WithShutdownGrace], default [DefaultShutdownGrace]). When the
// grace period runs out, the contexts of the methods still running
// ([Delivery.Context]) are cancelled, their requests go back to the queue
// unanswered, to be delivered again to this server or another (with
// Redelivered set, as after a crash), and Serve returns without waiting
// for them: whatever they return later is dropped.
func Serve(ctx context.Context, srv *rpc.Server, url, queue string, opts ...ServerOption) error {
	if srv == nil {
		srv = rpc.DefaultServer
	}
	sc, o, err := newServerCodec(ctx, nil, url, queue, opts)
	if err != nil {
		if ctx.Err() != nil {
			return nil // stopped before it was connected
		}
		return err
	}
	if o.ready != nil {
		o.ready()
	}
	served := make(chan struct{})
	go func() {
		defer close(served)
		srv.ServeCodec(sc) // ends with sc.Close once every method has returned
	}()
	select {
	case <-served:
		return nil
	case <-ctx.Done():
	}
	if cut := sc.shutdown(); cut == 0 {
		<-served // every method has returned: net/rpc is ending
	}
	return nil
}

// NewServerCodec returns a net/rpc server codec that serves the queue named
// queue over conn, for rpc.ServeCodec. It opens its own channels on conn
// (one for requests and replies, one for the control protocol unless
// [WithoutControl]) and never closes conn. Closing the codec stops it
// gracefully, as [Serve]
// does when its context ends: it stops taking requests, returns
// prefetched ones to the queue, and waits for the replies of calls in
// flight, for at most the shutdown grace period.
func NewServerCodec(conn *amqp.Connection, queue string, opts ...ServerOption) (rpc.ServerCodec, error) {
	if conn == nil {
		return nil, errors.New("amqprpc: NewServerCodec: nil connection")
	}
	sc, _, err := newServerCodec(context.Background(), conn, "", queue, opts)
	return sc, err
}

// serverCodec implements rpc.ServerCodec. It numbers requests itself and
// maps each number back to the delivery it must answer and acknowledge.
//
// A request goes one of these ways, and each ends it exactly once (its
// hooks' ends run, hooks.go):
//   - the codec answers it itself, a refusal or a ping (intake.go), through
//     the outbox;
//   - net/rpc runs its method, and WriteResponse hands the reply to the
//     outbox (outbox.go), whose goroutine encodes, publishes and
//     acknowledges it;
//   - the codec gives it back to the queue unanswered (putBack): taken as
//     the codec closed, or cut off when the shutdown grace period ran out.
type serverCodec struct {
	t             *transport.Server
	bodies        codec.Codec
	defaultMethod string
	maxBody       int
	grace         time.Duration
	log           *slog.Logger

	// base is the parent of every request's context (Delivery.Context):
	// it ends when the shutdown grace period runs out, or the codec has
	// closed.
	base    context.Context
	endBase context.CancelCauseFunc

	mu      sync.Mutex // guards seq, running, closing and idle
	seq     uint64
	running map[uint64]*inbound // handed to net/rpc, reply not yet written
	closing bool
	idle    chan struct{} // closed when running empties after Close began

	out       outbox
	poison    *poisonGuard
	cur       *inbound // owned by ServeCodec's reading goroutine
	closeOnce sync.Once

	hooks serverHooks    // WithServerHook (hooks.go)
	store *storedReplies // WithReplyStore (storedreplies.go); nil without
	stats *serverStats   // the control protocol's counters (stats.go); nil with WithoutControl
}

// inbound is a request taken from the queue.
type inbound struct {
	req    transport.Request
	seq    uint64 // 0 for a request the codec answers itself
	enc    codec.Encoding
	method string
	rc     *requestContext // the caller's deadline and the hooks (hooks.go); nil without
	key    string          // its key in the reply store; "" without
	owner  string          // its claim's owner in the reply store; "" without
	taken  time.Time       // when the codec took it, for the counters (stats.go)
	known  bool            // net/rpc found its method (it asked for the body)
	stored bool            // answered from the reply store without running (storedreplies.go)
}

func newServerCodec(ctx context.Context, conn *amqp.Connection, url, queue string, opts []ServerOption) (*serverCodec, *serverOptions, error) {
	o, err := newServerOptions(opts)
	if err != nil {
		return nil, nil, err
	}
	if err := checkQueueName(queue); err != nil {
		return nil, nil, err
	}
	poison := newPoisonGuard()
	stats, control := newControl(queue, o) // control.go
	cfg := transport.ServerConfig{
		Config:   o.transport(conn, url),
		Queue:    transport.QueueConfig{Name: queue, Durable: !o.transient, Quorum: o.quorum, Expires: o.queueExpiry},
		Prefetch: o.prefetch,
		Lost:     poison.crashed,
		Control:  control,
	}
	t, err := transport.NewServer(ctx, cfg)
	if err != nil {
		return nil, nil, err
	}
	c := &serverCodec{
		t:             t,
		defaultMethod: o.defaultMethod,
		maxBody:       o.maxBody,
		grace:         o.shutdownGrace,
		log:           o.logger,
		running:       make(map[uint64]*inbound),
		poison:        poison,
		hooks:         serverHooks{queue: queue, list: o.hooks},
		store:         newStoredReplies(o.replyStore, queue, o.logger),
		stats:         stats,
	}
	c.base, c.endBase = context.WithCancelCause(context.Background())
	c.out.start(c.reply, c.ackAnswered)
	return c, o, nil
}

// WriteResponse hands the reply to the request numbered r.Seq to the
// codec's publishing goroutine, which encodes and publishes it and then
// acknowledges the request. It never waits: net/rpc does not touch body
// again, and r is copied, so nothing is shared after it returns. The reply
// of a request cut off after the shutdown grace period is dropped: the
// request is back in the queue.
func (c *serverCodec) WriteResponse(r *rpc.Response, body any) error {
	c.mu.Lock()
	defer c.mu.Unlock()
	in := c.running[r.Seq]
	if in == nil {
		return nil // cut off
	}
	delete(c.running, r.Seq)
	if c.store != nil && in.key != "" {
		o := outbound{in: in, body: body, errText: r.Error} // now: net/rpc reuses r
		c.store.storing(func() { c.storeReply(o) })         // storedreplies.go
	} else {
		// Under mu, so that Close, which closes the outbox once nothing
		// runs, cannot close it in between: this put cannot fail.
		c.out.put(outbound{in: in, body: body, errText: r.Error})
	}
	if c.closing && len(c.running) == 0 && c.idle != nil {
		close(c.idle)
		c.idle = nil
	}
	return nil
}

// Close stops the codec: it stops taking requests, returns prefetched ones
// to the queue, waits for the replies of calls in flight for at most the
// shutdown grace period, cuts off the rest, and then releases the channel
// and any owned connection. It is idempotent; net/rpc calls it when
// ServeCodec ends.
func (c *serverCodec) Close() error {
	c.shutdown()
	return nil
}

// shutdown is Close; it returns how many requests it cut off (0 when
// another call did the work).
func (c *serverCodec) shutdown() (cut int) {
	c.closeOnce.Do(func() {
		c.t.Stop()
		cut = c.finishRunning()
		c.store.close() // storedreplies.go: the replies being stored are queued
		c.out.close()   // sends every reply queued
		_ = c.t.Close()
		c.endBase(failure(ErrClosed, "the server has stopped"))
	})
	return cut
}

// finishRunning waits for the methods still running to return, for at most
// the shutdown grace period, and then cuts off the rest: it cancels their
// contexts and puts their requests back in the queue. It returns how many
// it cut off.
func (c *serverCodec) finishRunning() int {
	c.mu.Lock()
	c.closing = true
	var idle chan struct{}
	if len(c.running) > 0 {
		idle = make(chan struct{})
		c.idle = idle
	}
	c.mu.Unlock()
	if idle == nil {
		return 0
	}
	t := time.NewTimer(c.grace)
	defer t.Stop()
	select {
	case <-idle:
		return 0
	case <-t.C:
	}
	c.mu.Lock()
	cut := c.running
	c.running, c.idle = nil, nil
	c.mu.Unlock()
	if len(cut) == 0 {
		return 0
	}
	why := failure(ErrClosed, "the server stopped, and its shutdown grace period of %v ran out before the method returned: the request is back in the queue", c.grace)
	c.endBase(why) // first, so that the methods hear it before another server may take their requests
	c.log.Warn("amqprpc: shutdown grace period ran out; the requests of methods still running are back in the queue",
		"count", len(cut), "grace", c.grace)
	for _, in := range cut {
		c.putBack(in, why)
	}
	return len(cut)
}

// putBack returns a request the codec will not answer to the queue, to be
// delivered again, and ends it for the hooks with err.
func (c *serverCodec) putBack(in *inbound, err error) {
	c.store.released(in) // storedreplies.go
	c.stats.drop()
	if rerr := c.t.Reject(&in.req, true); rerr != nil {
		// Its channel is gone, and the broker has put it back itself.
		c.log.Debug("amqprpc: put back", "err", rerr)
	}
	in.rc.finish("", err) // hooks.go
}

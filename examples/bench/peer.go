package main

import (
	"context"
	"fmt"
	"sync/atomic"
	"time"

	peer "github.com/0x4b53/amqp-rpc/v5"
	amqp "github.com/rabbitmq/amqp091-go"

	"github.com/amqprpc/amqprpc/codec"
)

// The peer is github.com/0x4b53/amqp-rpc/v5, the best-kept Go library of
// the same kind, required by this module alone. Its client publishes each
// request on one connection through one publishing goroutine and takes
// replies from a durable reply queue of its own (x-expires one minute) on
// another connection; its server consumes on one connection, runs each
// request in a goroutine of its own and publishes the replies from one
// goroutine on a second connection. Both of its modes here keep its
// other defaults: an auto-ack server (prefetch 10, which no-ack ignores),
// requests with a UUID correlation_id, `expiration` from the call's
// timeout (10 s), `mandatory`, `content_type` text/plain and an empty
// headers table, and slog.Default for its logs. peerMode is one of its
// configurations.
type peerMode struct {
	// confirms puts the client's publishing channel in confirm mode (its
	// default); a call that expects a reply still returns on the reply,
	// with the confirm consumed beside it, unless the request is returned
	// or nacked.
	confirms bool
	fast     bool // a classic, non-durable, auto-delete queue instead of a quorum queue
}

// peerModule is the peer's module path, for its version in the report.
const peerModule = "github.com/0x4b53/amqp-rpc/v5"

var (
	peerDefaults = peerMode{confirms: true}
	peerFast     = peerMode{fast: true}
)

// peerCaller calls Service.Small through the peer's client, with the body
// gob-encoded by amqprpc's codec both ways, as a user of the peer would
// have to encode it somehow. A call is one peer.Request.
type peerCaller struct {
	c          *peer.Client
	queue      string
	codec      codec.Codec
	replyQueue *atomic.Pointer[string] // the client's, as the server saw it
}

func (p *peerCaller) Call(method string, args, reply any) error {
	if method != small.method {
		return fmt.Errorf("peer: only %s is served", small.method)
	}
	body, err := p.codec.Marshal(nil, codec.Gob, args)
	if err != nil {
		return err
	}
	req := peer.NewRequest().WithRoutingKey(p.queue)
	req.Publishing.Body = body
	d, err := p.c.Send(req)
	if err != nil {
		return fmt.Errorf("peer: %w", err)
	}
	if e, ok := d.Headers[errorHeader]; ok {
		return fmt.Errorf("peer: %v", e)
	}
	return p.codec.Unmarshal(codec.Gob, d.Body, reply)
}

// Close stops the client; calls in flight fail when their timeout (10 s)
// runs out.
func (p *peerCaller) Close() error {
	p.c.Stop()
	return nil
}

// errorHeader carries a failed call's error, as in examples/floor.
const errorHeader = "x-rpc-error"

// binding is the peer's server binding for queue in mode m: DirectBinding
// (amq.direct, routing key = queue name; the client publishes to the
// default exchange, which routes by queue name too), with the fast mode's
// queue settings.
func (m peerMode) binding(queue string, h peer.HandlerFunc) peer.HandlerBinding {
	b := peer.DirectBinding(queue, h)
	if m.fast {
		b = b.WithQueueDurable(false).WithQueueAutoDelete(true).WithQueueDeclareArgs(amqp.Table{})
	}
	return b
}

// peerStart serves Service.Small with the peer's server and calls it with
// the peer's client, both in mode m. Stopping deletes the request queue
// and the client's reply queue, which the peer leaves to expire.
func peerStart(m peerMode) func(string, string) (caller, func(), error) {
	return func(url, queue string) (caller, func(), error) {
		handle := smallGob(new(codec.Codec))
		replyQueue := new(atomic.Pointer[string]) // the client's, seen by the server
		srv := peer.NewServer(url).WithName(queue + "-server")
		srv.Bind(m.binding(queue, func(_ context.Context, rw *peer.ResponseWriter, d amqp.Delivery) {
			if replyQueue.Load() == nil {
				q := d.ReplyTo
				replyQueue.CompareAndSwap(nil, &q)
			}
			body, err := handle(d.Body)
			if err != nil {
				rw.WriteHeader(errorHeader, err.Error())
				return
			}
			_, _ = rw.Write(body)
		}))
		failed := make(chan error, 1)
		srv.OnError(func(err error) {
			select {
			case failed <- err:
			default:
			}
		})
		served := make(chan struct{})
		go func() { defer close(served); srv.ListenAndServe() }()
		stop := func() {
			srv.Stop() // nothing if it never ran, so wait for a while only
			select {
			case <-served:
			case <-time.After(20 * time.Second):
			}
			deleteQueue(url, queue)
			if q := replyQueue.Load(); q != nil {
				deleteQueue(url, *q)
			}
		}
		if err := waitForConsumer(url, queue, failed); err != nil {
			stop()
			return nil, nil, err
		}
		c := peer.NewClient(url).WithName(queue + "-client").WithConfirmMode(m.confirms)
		c.Connect()
		return &peerCaller{c: c, queue: queue, replyQueue: replyQueue}, stop, nil
	}
}

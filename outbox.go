package amqprpc

import (
	"fmt"

	amqp "github.com/rabbitmq/amqp091-go"

	"github.com/amqprpc/amqprpc/internal/batch"
)

// The server codec's replies: every reply, a service's or one the codec
// makes itself, goes out through one queue to one goroutine of the
// codec's (the outbox), which encodes, publishes and acknowledges.
// Publishing runs deep into amqp091-go, and doing it on net/rpc's
// goroutine per call made the runtime grow that goroutine's stack every
// time.

// outbound is a reply to send: the value to encode, or an error text.
type outbound struct {
	in      *inbound
	body    any
	errText string
	ready   *amqp.Publishing // the reply, encoded already (storedreplies.go)
}

// reply encodes (into *buf, reused) unless it is encoded already,
// publishes and acknowledges one reply, on the outbox's goroutine, and ends
// its request.
func (c *serverCodec) reply(o outbound, buf *[]byte) {
	var msg amqp.Publishing
	if o.ready != nil {
		msg = *o.ready
	} else {
		msg = c.encodeReply(&o, buf)
	}
	c.stats.end(o.in, o.errText) // stats.go: before the reply goes out
	err := c.publishReply(o.in, &msg)
	if err != nil {
		c.log.Warn("amqprpc: reply not sent; the broker will redeliver the request", "method", fmt.Sprintf("%.64s", o.in.method), "err", err)
	}
	o.in.rc.finish(o.errText, err) // hooks.go
}

// encodeReply makes the reply's message. A value that cannot be encoded
// or is too large becomes an error reply, and o.errText says so.
func (c *serverCodec) encodeReply(o *outbound, buf *[]byte) amqp.Publishing {
	in := o.in
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
	return msg
}

// publishReply publishes a reply, alone when its reply_to is suspect of
// closing the connection (poison.go).
func (c *serverCodec) publishReply(in *inbound, msg *amqp.Publishing) error {
	switch {
	case !risky(in.req.ReplyTo):
		return c.t.Respond(&in.req, msg)
	case c.poison.suspect(&in.req.Delivery):
		closedIt, err := c.t.RespondAlone(&in.req, msg)
		if closedIt || err == nil {
			c.poison.proven(&in.req.Delivery, closedIt)
		}
		return err
	default:
		c.poison.replied(&in.req.Delivery)
		return c.t.Respond(&in.req, msg)
	}
}

// ackAnswered acknowledges the requests whose replies are published, on
// the outbox's goroutine after each run of replies: runs of requests cost
// one acknowledgement.
func (c *serverCodec) ackAnswered() {
	if err := c.t.AckAnswered(); err != nil {
		c.log.Warn("amqprpc: acknowledgements not sent; the broker will redeliver the requests", "err", err)
	}
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

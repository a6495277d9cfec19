package floor

import (
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"strconv"
	"sync"

	amqp "github.com/rabbitmq/amqp091-go"
)

// EchoOptions says what an echo floor puts on the wire and how its server
// acknowledges, beyond the bare minimum. The zero value is the pure echo
// floor: a transient exclusive service queue, requests that carry
// correlation_id and reply_to only, replies that carry correlation_id only,
// a private reply queue, and one basic.ack per request.
type EchoOptions struct {
	// Prefetch is the server's basic.qos prefetch count (0: no limit).
	Prefetch int
	// DurableQueue declares the service queue durable and not exclusive, as
	// amqprpc does by default, instead of transient and exclusive to the
	// server's connection.
	DurableQueue bool
	// Mandatory publishes requests with the mandatory flag and fails a call
	// whose request comes back.
	Mandatory bool
	// Expiration is each request's expiration property ("" for none).
	Expiration string
	// MessageID gives each request a new random UUID as its message_id.
	MessageID bool
	// Type is each request's type property ("" for none).
	Type string
	// ContentType is the content_type of requests and replies ("" for none).
	ContentType string
	// AckRun, above 1, makes the server acknowledge with multiple=true: once
	// AckRun requests are answered and not yet acknowledged, or as soon as
	// no further request is waiting. Every request it acknowledges has had
	// its reply published. 0 or 1 acknowledges each request on its own.
	AckRun int
	// DirectReplyTo takes replies through amq.rabbitmq.reply-to instead of
	// a private exclusive server-named reply queue.
	DirectReplyTo bool
	// Coalesce, above 0, holds the server's writes while requests are
	// waiting and sends them in one TCP write once no request is waiting or
	// Coalesce requests were answered: each reply and acknowledgement is
	// still written in order, replies before the acknowledgements that
	// cover them, but amqp091-go's flush after every frame no longer costs
	// a write each. 0 writes as amqp091-go flushes.
	Coalesce int
	// AutoAck consumes requests with no-ack: the broker forgets a request
	// as soon as it delivers it, so nothing is acknowledged, a request is
	// lost if the server dies holding it, and Prefetch bounds nothing. It
	// is the at-most-once bound, not a way to serve; AckRun is ignored.
	AutoAck bool
}

// EchoHandler turns a request body into a reply body.
type EchoHandler func(body []byte) ([]byte, error)

// EchoServer answers requests from one queue in one goroutine.
type EchoServer struct {
	conn *amqp.Connection
	cork *corkConn // nil unless EchoOptions.Coalesce
	done chan struct{}
}

// ServeEcho declares queue, consumes it with manual acknowledgements (unless
// o.AutoAck) and answers each request with handle(body), or with the body
// itself when handle is nil; it acknowledges a request after publishing its
// reply. It returns once it consumes. An exclusive queue lives as long as
// the server's connection.
func ServeEcho(url, queue string, o EchoOptions, handle EchoHandler) (*EchoServer, error) {
	var conn *amqp.Connection
	var cc *corkConn
	var err error
	if o.Coalesce > 0 {
		conn, cc, err = dialCorkable(url)
	} else {
		conn, err = amqp.Dial(url)
	}
	if err != nil {
		return nil, err
	}
	ch, err := conn.Channel()
	if err == nil {
		err = ch.Qos(o.Prefetch, 0, false)
	}
	if err == nil {
		_, err = ch.QueueDeclare(queue, o.DurableQueue, false, !o.DurableQueue, false, nil)
	}
	var deliveries <-chan amqp.Delivery
	if err == nil {
		deliveries, err = ch.Consume(queue, "", o.AutoAck, false, false, false, nil)
	}
	if err != nil {
		conn.Close()
		return nil, err
	}
	s := &EchoServer{conn: conn, cork: cc, done: make(chan struct{})}
	go func() {
		defer close(s.done)
		serveEcho(ch, deliveries, o, handle, cc)
	}()
	return s, nil
}

// serveEcho is the server's one goroutine; cc is nil unless o.Coalesce.
func serveEcho(ch *amqp.Channel, deliveries <-chan amqp.Delivery, o EchoOptions, handle EchoHandler, cc *corkConn) {
	var last uint64 // the newest answered request not yet acknowledged
	unacked, held := 0, 0
	ack := func() {
		if unacked > 0 {
			_ = ch.Ack(last, true)
			unacked = 0
		}
	}
	write := func() { // send what the cork holds, in one write
		if held > 0 {
			_ = cc.uncork() // a failed write closes the connection, and so deliveries
			held = 0
		}
	}
	for {
		var d amqp.Delivery
		var ok bool
		select {
		case d, ok = <-deliveries:
		default: // nothing waiting: acknowledge the run (and write it) before blocking
			ack()
			write()
			d, ok = <-deliveries
		}
		if !ok {
			return // the channel is closing; the broker requeues the rest
		}
		if cc != nil && held == 0 {
			cc.cork()
		}
		if !answer(ch, d, o, handle) {
			return
		}
		switch {
		case o.AutoAck:
		case o.AckRun <= 1:
			_ = d.Ack(false)
		default:
			last, unacked = d.DeliveryTag, unacked+1
			if unacked >= o.AckRun {
				ack()
			}
		}
		if cc != nil {
			if held++; held >= o.Coalesce {
				ack()
				write()
			}
		}
	}
}

// answer publishes d's reply; false means the channel is closing.
func answer(ch *amqp.Channel, d amqp.Delivery, o EchoOptions, handle EchoHandler) bool {
	reply := amqp.Publishing{CorrelationId: d.CorrelationId, ContentType: o.ContentType, Body: d.Body}
	if handle != nil {
		body, err := handle(d.Body)
		reply.Body = body
		if err != nil {
			reply.Headers = amqp.Table{errorHeader: err.Error()}
		}
	}
	return ch.Publish("", d.ReplyTo, false, false, reply) == nil
}

// Close closes the connection, which requeues unacknowledged requests, and
// waits for the serving goroutine.
func (s *EchoServer) Close() error {
	if s.cork != nil {
		s.cork.stopCorking() // nothing the close handshake writes may be held
	}
	err := s.conn.Close()
	<-s.done
	return err
}

// EchoClient calls an echo floor server: bytes in, bytes out.
type EchoClient struct {
	conn    *amqp.Connection
	ch      *amqp.Channel
	queue   string
	replyTo string
	o       EchoOptions
	done    chan struct{}

	mu      sync.Mutex
	seq     uint64
	pending map[string]chan result // by correlation id; nil once closed
}

// DialEcho connects and consumes replies, with auto-ack, from a private
// exclusive server-named queue or from direct reply-to.
func DialEcho(url, queue string, o EchoOptions) (*EchoClient, error) {
	conn, err := amqp.Dial(url)
	if err != nil {
		return nil, err
	}
	c := &EchoClient{conn: conn, queue: queue, replyTo: "amq.rabbitmq.reply-to", o: o,
		done: make(chan struct{}), pending: make(map[string]chan result)}
	c.ch, err = conn.Channel()
	if err == nil && !o.DirectReplyTo {
		var q amqp.Queue
		q, err = c.ch.QueueDeclare("", false, true, true, false, nil)
		c.replyTo = q.Name
	}
	var deliveries <-chan amqp.Delivery
	if err == nil {
		deliveries, err = c.ch.Consume(c.replyTo, "", true, true, false, false, nil)
	}
	if err != nil {
		conn.Close()
		return nil, err
	}
	var returns <-chan amqp.Return // nil, and never ready, without mandatory
	if o.Mandatory {
		returns = c.ch.NotifyReturn(make(chan amqp.Return, 1))
	}
	go c.receive(deliveries, returns)
	return c, nil
}

// receive hands each reply, or returned request, to its caller.
func (c *EchoClient) receive(deliveries <-chan amqp.Delivery, returns <-chan amqp.Return) {
	defer close(c.done)
	for {
		select {
		case d, ok := <-deliveries:
			if !ok {
				c.mu.Lock()
				for _, w := range c.pending {
					w <- result{err: errors.New("floor: connection closed")}
				}
				c.pending = nil
				c.mu.Unlock()
				return
			}
			r := result{body: d.Body}
			if e, ok := d.Headers[errorHeader]; ok {
				r.err = fmt.Errorf("floor: %v", e)
			}
			c.finish(d.CorrelationId, r)
		case ret, ok := <-returns:
			if !ok {
				returns = nil
				continue
			}
			c.finish(ret.CorrelationId, result{err: fmt.Errorf("floor: request returned: %s", ret.ReplyText)})
		}
	}
}

// finish removes the call id and, if it was pending, gives it r.
func (c *EchoClient) finish(id string, r result) {
	c.mu.Lock()
	w := c.pending[id]
	delete(c.pending, id)
	c.mu.Unlock()
	if w != nil {
		w <- r
	}
}

// Call publishes body as a request and returns the reply's body.
func (c *EchoClient) Call(body []byte) ([]byte, error) {
	w := make(chan result, 1)
	c.mu.Lock()
	if c.pending == nil {
		c.mu.Unlock()
		return nil, errors.New("floor: client closed")
	}
	c.seq++
	id := strconv.FormatUint(c.seq, 10)
	c.pending[id] = w
	c.mu.Unlock()
	msg := amqp.Publishing{CorrelationId: id, ReplyTo: c.replyTo, Expiration: c.o.Expiration,
		Type: c.o.Type, ContentType: c.o.ContentType, Body: body}
	if c.o.MessageID {
		msg.MessageId = newUUID()
	}
	if err := c.ch.Publish("", c.queue, c.o.Mandatory, false, msg); err != nil {
		c.finish(id, result{})
		return nil, err
	}
	r := <-w
	return r.body, r.err
}

// Close closes the connection, fails pending calls and waits for the
// receiving goroutine.
func (c *EchoClient) Close() error {
	err := c.conn.Close()
	<-c.done
	return err
}

// newUUID returns a random (version 4) UUID in its 36-character text form,
// as amqprpc puts in message_id.
func newUUID() string {
	var b [16]byte
	_, _ = rand.Read(b[:])
	b[6] = b[6]&0x0f | 0x40
	b[8] = b[8]&0x3f | 0x80
	var s [36]byte
	hex.Encode(s[0:8], b[0:4])
	s[8] = '-'
	hex.Encode(s[9:13], b[4:6])
	s[13] = '-'
	hex.Encode(s[14:18], b[6:8])
	s[18] = '-'
	hex.Encode(s[19:23], b[8:10])
	s[23] = '-'
	hex.Encode(s[24:], b[10:])
	return string(s[:])
}

// Package floor holds the floors the benchmarks compare amqprpc against: the
// simplest correct request/reply written directly on amqp091-go. It depends
// on amqp091-go alone, so that the root package's benchmarks can import it.
//
// The JSON floor ([Serve], [Dial]) carries what a call needs: the method in
// type, content_type, correlation_id and reply_to, but neither message_id
// nor expiration, which amqprpc also sends. One connection and one channel
// on each side. The server
// sets a prefetch, declares its queue as amqprpc does (durable classic),
// publishes each reply and then acknowledges the request; the client
// publishes requests with mandatory to the default exchange and consumes
// replies with no-ack, matching them to callers through a map guarded by a
// mutex. Bodies are JSON, the same bytes amqprpc's JSON encoding carries.
//
// The echo floor ([ServeEcho], [DialEcho]) is barer still: bytes in, the
// same bytes out, nothing decoded, a transient exclusive service queue, one
// serving goroutine acknowledging each request after its reply, and only
// correlation_id and reply_to on a request. [EchoOptions] add amqprpc's
// properties and behaviours one at a time, for the benchmark's cost ladder.
package floor

import (
	"encoding/json"
	"errors"
	"fmt"
	"strconv"
	"sync"

	amqp "github.com/rabbitmq/amqp091-go"
)

// errorHeader carries a failed call's error, as in amqprpc's wire contract.
const errorHeader = "x-rpc-error"

// Server answers requests from one queue.
type Server struct {
	conn *amqp.Connection
	done chan struct{}
}

// Serve consumes queue and answers each request, one at a time, with
// handle(type property, body). It returns once it consumes.
func Serve(url, queue string, prefetch int, handle func(method string, body []byte) ([]byte, error)) (*Server, error) {
	conn, err := amqp.Dial(url)
	if err != nil {
		return nil, err
	}
	ch, err := conn.Channel()
	if err == nil {
		err = ch.Qos(prefetch, 0, false)
	}
	if err == nil {
		_, err = ch.QueueDeclare(queue, true, false, false, false, nil)
	}
	var deliveries <-chan amqp.Delivery
	if err == nil {
		deliveries, err = ch.Consume(queue, "", false, false, false, false, nil)
	}
	if err != nil {
		conn.Close()
		return nil, err
	}
	s := &Server{conn: conn, done: make(chan struct{})}
	go func() {
		defer close(s.done)
		for d := range deliveries {
			reply := amqp.Publishing{CorrelationId: d.CorrelationId, ContentType: "application/json"}
			body, err := handle(d.Type, d.Body)
			if err != nil {
				reply.Headers = amqp.Table{errorHeader: err.Error()}
			} else {
				reply.Body = body
			}
			if err := ch.Publish("", d.ReplyTo, false, false, reply); err != nil {
				return // the channel is closing; the broker requeues the request
			}
			_ = d.Ack(false)
		}
	}()
	return s, nil
}

// Close closes the connection, which requeues unacknowledged requests, and
// waits for the serving goroutine.
func (s *Server) Close() error {
	err := s.conn.Close()
	<-s.done
	return err
}

// Client calls the service on one queue.
type Client struct {
	conn    *amqp.Connection
	ch      *amqp.Channel
	queue   string
	replyTo string
	done    chan struct{}

	mu      sync.Mutex
	seq     uint64
	pending map[string]chan result // by correlation id; nil once closed
}

type result struct {
	body []byte
	err  error
}

// Dial connects and consumes replies from direct reply-to or from a
// private exclusive queue.
func Dial(url, queue string, directReplyTo bool) (*Client, error) {
	conn, err := amqp.Dial(url)
	if err != nil {
		return nil, err
	}
	c := &Client{conn: conn, queue: queue, replyTo: "amq.rabbitmq.reply-to",
		done: make(chan struct{}), pending: make(map[string]chan result)}
	c.ch, err = conn.Channel()
	if err == nil && !directReplyTo {
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
	returns := c.ch.NotifyReturn(make(chan amqp.Return, 1))
	go c.receive(deliveries, returns)
	return c, nil
}

// receive hands each reply, or returned request, to its caller.
func (c *Client) receive(deliveries <-chan amqp.Delivery, returns <-chan amqp.Return) {
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
func (c *Client) finish(id string, r result) {
	c.mu.Lock()
	w := c.pending[id]
	delete(c.pending, id)
	c.mu.Unlock()
	if w != nil {
		w <- r
	}
}

// Call sends args as JSON with method in the type property and decodes the
// reply into reply. It has the signature of (*rpc.Client).Call.
func (c *Client) Call(method string, args, reply any) error {
	body, err := json.Marshal(args)
	if err != nil {
		return err
	}
	w := make(chan result, 1)
	c.mu.Lock()
	if c.pending == nil {
		c.mu.Unlock()
		return errors.New("floor: client closed")
	}
	c.seq++
	id := strconv.FormatUint(c.seq, 10)
	c.pending[id] = w
	c.mu.Unlock()
	err = c.ch.Publish("", c.queue, true, false, amqp.Publishing{
		CorrelationId: id, ReplyTo: c.replyTo, Type: method, ContentType: "application/json", Body: body,
	})
	if err != nil {
		c.finish(id, result{})
		return err
	}
	r := <-w
	if r.err != nil {
		return r.err
	}
	return json.Unmarshal(r.body, reply)
}

// Close closes the connection, fails pending calls and waits for the
// receiving goroutine.
func (c *Client) Close() error {
	err := c.conn.Close()
	<-c.done
	return err
}

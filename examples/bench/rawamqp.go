package main

// The raw-amqp floor: the simplest correct request/reply written directly on
// amqp091-go, with what amqprpc puts on the wire and nothing else. One connection and one channel on each side; the
// server sets the same prefetch, declares its queue as amqprpc does (durable
// classic), publishes each reply and then acknowledges the request; the
// client publishes requests with mandatory to the default exchange and
// consumes replies with no-ack, matching them to callers through a map
// guarded by a mutex. Bodies are JSON, the same bytes amqprpc's JSON encoding
// carries. It is a copy of the root package's rawamqp_test.go, which
// BenchmarkTransport uses; this program cannot import test code.

import (
	"encoding/json"
	"errors"
	"fmt"
	"strconv"
	"sync"

	amqp "github.com/rabbitmq/amqp091-go"

	"github.com/amqprpc/amqprpc"
)

// floorServer answers requests from one queue.
type floorServer struct {
	conn *amqp.Connection
	done chan struct{}
}

// serveFloor consumes queue and answers each request, one at a time, with
// handle(type property, body). It returns once it consumes.
func serveFloor(url, queue string, prefetch int, handle func(method string, body []byte) ([]byte, error)) (*floorServer, error) {
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
	s := &floorServer{conn: conn, done: make(chan struct{})}
	go func() {
		defer close(s.done)
		for d := range deliveries {
			reply := amqp.Publishing{CorrelationId: d.CorrelationId, ContentType: "application/json"}
			body, err := handle(d.Type, d.Body)
			if err != nil {
				reply.Headers = amqp.Table{amqprpc.ErrorHeader: err.Error()}
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
func (s *floorServer) Close() error {
	err := s.conn.Close()
	<-s.done
	return err
}

// floorClient calls the service on one queue.
type floorClient struct {
	conn    *amqp.Connection
	ch      *amqp.Channel
	queue   string
	replyTo string
	done    chan struct{}

	mu      sync.Mutex
	seq     uint64
	pending map[string]chan floorReply // by correlation id; nil once closed
}

type floorReply struct {
	body []byte
	err  error
}

// dialFloor connects and consumes replies from direct reply-to or from a
// private exclusive queue.
func dialFloor(url, queue string, directReplyTo bool) (*floorClient, error) {
	conn, err := amqp.Dial(url)
	if err != nil {
		return nil, err
	}
	c := &floorClient{conn: conn, queue: queue, replyTo: "amq.rabbitmq.reply-to",
		done: make(chan struct{}), pending: make(map[string]chan floorReply)}
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
func (c *floorClient) receive(deliveries <-chan amqp.Delivery, returns <-chan amqp.Return) {
	defer close(c.done)
	for {
		select {
		case d, ok := <-deliveries:
			if !ok {
				c.mu.Lock()
				for _, w := range c.pending {
					w <- floorReply{err: errors.New("floor: connection closed")}
				}
				c.pending = nil
				c.mu.Unlock()
				return
			}
			r := floorReply{body: d.Body}
			if e, ok := d.Headers[amqprpc.ErrorHeader]; ok {
				r.err = fmt.Errorf("floor: %v", e)
			}
			c.finish(d.CorrelationId, r)
		case ret, ok := <-returns:
			if !ok {
				returns = nil
				continue
			}
			c.finish(ret.CorrelationId, floorReply{err: fmt.Errorf("floor: request returned: %s", ret.ReplyText)})
		}
	}
}

// finish removes the call id and, if it was pending, gives it r.
func (c *floorClient) finish(id string, r floorReply) {
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
func (c *floorClient) Call(method string, args, reply any) error {
	body, err := json.Marshal(args)
	if err != nil {
		return err
	}
	w := make(chan floorReply, 1)
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
		c.finish(id, floorReply{})
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
func (c *floorClient) Close() error {
	err := c.conn.Close()
	<-c.done
	return err
}

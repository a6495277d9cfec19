package transport

import (
	"context"
	"fmt"
	"sync"

	amqp "github.com/rabbitmq/amqp091-go"
)

// DirectReplyTo is the pseudo-queue through which RabbitMQ routes replies
// straight to the consumer that published the request.
const DirectReplyTo = "amq.rabbitmq.reply-to"

// ClientHandler receives what a Client hears from the broker. Except for
// SessionReady, the Client calls it from the goroutine that drains the
// broker's notifications, one call at a time: a method must return at once.
type ClientHandler interface {
	// Reply is a message that arrived on the reply queue. It is passed by
	// value so that it does not escape to the heap on every reply.
	Reply(d amqp.Delivery)
	// Returned is a request the broker could not route to a queue.
	Returned(r *amqp.Return)
	// Confirmed reports the broker's ack or nack of a request published
	// with confirms on, by the request's correlation id. A request whose
	// session ended before its confirm came is not reported: SessionLost
	// covers it.
	Confirmed(correlationID string, ack bool)
	// SessionLost reports the end of session gen: every request published
	// on it that has no reply yet will never get one.
	SessionLost(gen uint64, err error)
	// SessionReady reports that session gen is up and Publish works again.
	// It is called on a goroutine of its own, so that the Client goes on
	// draining notifications while the handler publishes; it may overlap a
	// later SessionLost, and Close waits for it.
	SessionReady(gen uint64)
	// Ended reports that the Client gave up for good: its borrowed
	// connection closed. Nothing is reported after it.
	Ended(err error)
}

// ClientConfig configures a Client.
type ClientConfig struct {
	Config
	// DirectReplyTo receives replies through amq.rabbitmq.reply-to instead
	// of a private exclusive queue.
	DirectReplyTo bool
}

// Client publishes requests and receives their replies, through one
// session at a time that a supervisor keeps up. Publish may be called from
// any goroutine.
type Client struct {
	sv      *supervisor
	h       ClientHandler
	direct  bool
	readies sync.WaitGroup // SessionReady calls under way
	inspect inspector
}

// NewClient connects and sets up the reply consumer; Start then starts
// delivering to h. A first connection that fails is an error.
func NewClient(cfg ClientConfig, h ClientHandler) (*Client, error) {
	c := &Client{h: h, direct: cfg.DirectReplyTo}
	sv, err := newSupervisor(cfg.Config, c, "client", true)
	if err != nil {
		return nil, err
	}
	c.sv = sv
	if err := sv.connect(context.Background()); err != nil {
		return nil, err
	}
	return c, nil
}

// Start starts delivering to the handler and reconnecting. Call it once
// whatever the handler needs is in place.
func (c *Client) Start() { c.sv.begin() }

// Publish sends msg to the default exchange with routing key queue and the
// mandatory flag, setting its ReplyTo to the session's reply queue. It never
// waits for a connection: between connections it fails at once with an
// error wrapping ErrNotConnected. It returns the generation of the session
// that carried the message.
func (c *Client) Publish(queue string, msg *amqp.Publishing) (uint64, error) {
	s, _, err := c.sv.current()
	if err != nil {
		return 0, err
	}
	if reason := s.blocked.Load(); reason != nil {
		return 0, fmt.Errorf("%w to %q (%s)", ErrBlocked, queue, *reason)
	}
	msg.ReplyTo = s.replyTo
	if err := s.publish(queue, true, msg, pendingConfirm{id: msg.CorrelationId}); err != nil {
		// Only a broken channel or connection fails a publish of ours: the
		// session is ending, and its end is reported.
		return 0, errorf("publish to %q: %w: %w", queue, ErrNotConnected, err)
	}
	return s.gen, nil
}

// Close stops reconnecting, closes the channel and any connection the
// Client owns, and waits for its goroutines. It is idempotent.
func (c *Client) Close() error {
	c.sv.close()
	c.readies.Wait()
	c.inspect.running.Wait()
	return nil
}

// setup declares the reply queue, unless replies come through direct
// reply-to, and consumes it.
func (c *Client) setup(s *session) (err error) {
	s.replyTo = DirectReplyTo
	if !c.direct {
		q, err := s.ch.QueueDeclare("", false, true, true, false, nil)
		if err != nil {
			return errorf("declare reply queue: %w", err)
		}
		s.replyTo = q.Name
	}
	// Replies are consumed with no-ack: direct reply-to requires it, and a
	// reply whose caller is gone has nowhere else to go.
	if s.deliveries, err = s.ch.Consume(s.replyTo, "", true, true, false, false, nil); err != nil {
		return errorf("consume replies from %q: %w", s.replyTo, err)
	}
	s.returns = s.ch.NotifyReturn(make(chan amqp.Return, 64))
	return nil
}

func (c *Client) delivery(_ *session, d amqp.Delivery) { c.h.Reply(d) }
func (c *Client) returned(r *amqp.Return)              { c.h.Returned(r) }
func (c *Client) lost(s *session, err error)           { c.h.SessionLost(s.gen, err) }
func (c *Client) ended(err error)                      { c.h.Ended(err) }

func (c *Client) settle(_ *session, p pendingConfirm, ack bool) {
	c.h.Confirmed(p.id, ack)
}

func (c *Client) ready(s *session) {
	c.readies.Add(1)
	go func() {
		defer c.readies.Done()
		c.h.SessionReady(s.gen)
	}()
}

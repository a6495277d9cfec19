package transport

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"sync/atomic"

	amqp "github.com/rabbitmq/amqp091-go"
)

// DirectReplyTo is the pseudo-queue through which RabbitMQ routes replies
// straight to the consumer that published the request.
const DirectReplyTo = "amq.rabbitmq.reply-to"

// ClientHandler receives what a Client hears from the broker, apart from
// the replies themselves, which the Client's user reads ([Client.Replies]).
// Except for SessionReady, the Client calls it from the goroutine that
// drains the broker's notifications, one call at a time: a method must
// return at once.
type ClientHandler interface {
	// Returned is a request the broker could not route to a queue.
	Returned(r *amqp.Return)
	// Confirmed reports the broker's ack or nack of a request published
	// with confirms on, by the session that carried it and the request's
	// correlation id. A request whose session ended before its confirm came
	// may go unreported: SessionLost covers it.
	Confirmed(gen uint64, correlationID string, ack bool)
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
	sv       *supervisor
	h        ClientHandler
	direct   bool
	frameMax atomic.Int64   // the latest session's negotiated frame_max
	readies  sync.WaitGroup // SessionReady calls under way
	inspect  inspector
}

// NewClient connects and sets up the reply consumer; Start then starts
// reporting to h. A first connection that fails is an error, and so is one
// that has not succeeded when ctx ends.
func NewClient(ctx context.Context, cfg ClientConfig, h ClientHandler) (*Client, error) {
	c := &Client{h: h, direct: cfg.DirectReplyTo}
	sv, err := newSupervisor(cfg.Config, c, "client")
	if err != nil {
		return nil, err
	}
	c.sv = sv
	if err := sv.connect(ctx); err != nil {
		return nil, err
	}
	return c, nil
}

// Start starts delivering to the handler and reconnecting. Call it once
// whatever the handler needs is in place.
func (c *Client) Start() { c.sv.begin() }

// Publish sends msg to the default exchange with routing key queue and the
// mandatory flag, setting its ReplyTo to the session's reply queue. It never
// waits for a connection: between connections, or when the session breaks
// under it, it fails at once with an error wrapping ErrNotConnected. A
// message AMQP cannot carry fails with ErrUnencodable before anything is
// written, and leaves the session as it is. It returns the generation of
// the session that carried the message.
func (c *Client) Publish(queue string, msg *amqp.Publishing) (uint64, error) {
	s, _, err := c.sv.current()
	if err != nil {
		if errors.Is(err, ErrNotConnected) {
			// Refuse now what no session will take (checked against the
			// last session's frame_max, and again when it is published).
			if err := checkEncodable(msg, int(c.frameMax.Load())); err != nil {
				return 0, err
			}
		}
		return 0, err
	}
	if reason := s.blocked.Load(); reason != nil {
		return 0, fmt.Errorf("%w to %q (%s)", ErrBlocked, queue, *reason)
	}
	msg.ReplyTo = s.replyTo
	if err := checkEncodable(msg, s.conn.Config.FrameSize); err != nil {
		return 0, err
	}
	if err := s.publish(queue, true, msg, pendingConfirm{id: msg.CorrelationId}); err != nil {
		if s.broken(err) {
			return 0, errorf("publish to %q: %w: %w", queue, ErrNotConnected, err)
		}
		return 0, errorf("publish to %q: %w", queue, err)
	}
	return s.gen, nil
}

// Replies returns the replies of the current session, and a channel that
// closes when the session changes (it ends, or a new one comes up). Read
// replies until either channel closes, then ask again. Between sessions
// replies is nil. Once the Client is closed, or its borrowed connection is
// gone for good, err says so; Close does not close changed.
func (c *Client) Replies() (replies <-chan amqp.Delivery, changed <-chan struct{}, err error) {
	s, changed, err := c.sv.current()
	switch {
	case s != nil:
		return s.deliveries, changed, nil
	case errors.Is(err, ErrNotConnected):
		return nil, changed, nil
	}
	return nil, changed, err
}

// Reopen ends session gen, if it is still the current one, so that the
// Client reconnects: for a session that looks healthy to the broker and to
// amqp091-go but has stopped delivering what the Client publishes. why is
// the error SessionLost reports.
func (c *Client) Reopen(gen uint64, why error) {
	if s, _, _ := c.sv.current(); s != nil && s.gen == gen {
		s.abandon(why)
	}
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
	// A cancelled reply consumer (its queue deleted) ends the session.
	s.cancels = s.ch.NotifyCancel(make(chan string, 1))
	c.frameMax.Store(int64(s.conn.Config.FrameSize))
	return nil
}

func (c *Client) returned(r *amqp.Return)    { c.h.Returned(r) }
func (c *Client) lost(s *session, err error) { c.h.SessionLost(s.gen, err) }
func (c *Client) ended(err error)            { c.h.Ended(err) }

func (c *Client) settle(s *session, p pendingConfirm, ack bool) {
	c.h.Confirmed(s.gen, p.id, ack)
}

func (c *Client) ready(s *session) {
	c.readies.Add(1)
	go func() {
		defer c.readies.Done()
		c.h.SessionReady(s.gen)
	}()
}

package transport

import (
	"errors"
	"strings"

	amqp "github.com/rabbitmq/amqp091-go"
)

// ControlConfig makes a [Server] answer control requests: on each session it
// opens a channel of its own on the session's connection, declares
// Exchange (direct, not durable, auto-delete), declares an exclusive,
// server-named control queue bound to Exchange under each of Keys, and
// answers what arrives there with Answer. The control queue goes with the
// connection, so an instance that dies stops being found.
//
// Control is never a reason to fail a session: when the broker refuses any
// of it (a user without the permissions, a conflicting declaration), the
// Server logs that once, at WARN, and serves without it until a later
// session manages.
type ControlConfig struct {
	// Exchange is the control exchange.
	Exchange string
	// Keys are the routing keys the control queue is bound under.
	Keys []string
	// Answer returns the reply to a control request. The Server publishes the reply to the request's reply_to through
	// the default exchange; a request whose reply_to is empty or a direct
	// reply-to name is dropped before Answer sees it (a reply to a forged
	// direct reply-to name can make the broker close the whole connection,
	// and control requests reach every instance). Answer is called on the
	// control channel's goroutine, one request at a time, and must return
	// soon.
	Answer func(req *amqp.Delivery) amqp.Publishing
}

// Bounds on what a control queue holds, so that a flood of control requests
// costs an instance neither memory nor a backlog in the broker.
const (
	controlPrefetch  = 8  // requests delivered and not yet answered
	controlMaxLength = 64 // requests waiting in the queue; older ones are dropped
)

// controlAttempts bounds the tries at setting up the control queue when the
// auto-delete exchange vanishes between its declaration and the binding
// (its last other binding went meanwhile).
const controlAttempts = 3

// startControl sets up the control queue on sess and starts the goroutine
// that answers it; it ends when the channel closes, which the session's
// close makes sure of. A failure is logged once and otherwise ignored.
func (s *Server) startControl(sess *session) {
	c := s.cfg.Control
	if c == nil {
		return
	}
	var ch *amqp.Channel
	var deliveries <-chan amqp.Delivery
	var err error
	for range controlAttempts {
		if ch, deliveries, err = openControl(sess.conn, c); !isNotFound(err) {
			break
		}
	}
	if err != nil {
		s.controlWarn.Do(func() {
			s.sv.log.Warn("amqprpc: control queue not set up; this instance serves without it, and amqprpc ls, info and stats do not see it",
				"err", err)
		})
		return
	}
	sess.control = ch
	s.controls.Go(func() { answerControl(ch, deliveries, c.Answer) })
}

// openControl opens the control channel, declares the exchange and the
// queue, binds it and consumes it. On failure the channel is closed.
func openControl(conn *amqp.Connection, c *ControlConfig) (_ *amqp.Channel, _ <-chan amqp.Delivery, err error) {
	ch, err := conn.Channel()
	if err != nil {
		return nil, nil, errorf("open control channel: %w", err)
	}
	defer func() {
		if err != nil {
			_ = ch.Close()
		}
	}()
	if err = ch.Qos(controlPrefetch, 0, false); err != nil {
		return nil, nil, errorf("set control prefetch: %w", err)
	}
	if err = ch.ExchangeDeclare(c.Exchange, amqp.ExchangeDirect, false, true, false, false, nil); err != nil {
		return nil, nil, errorf("declare control exchange %q: %w", c.Exchange, err)
	}
	args := amqp.Table{"x-max-length": int64(controlMaxLength)}
	q, err := ch.QueueDeclare("", false, true, true, false, args)
	if err != nil {
		return nil, nil, errorf("declare control queue: %w", err)
	}
	for _, key := range c.Keys {
		if err = ch.QueueBind(q.Name, key, c.Exchange, false, nil); err != nil {
			return nil, nil, errorf("bind control queue to %q with key %q: %w", c.Exchange, key, err)
		}
	}
	deliveries, err := ch.Consume(q.Name, "", false, true, false, false, nil)
	if err != nil {
		return nil, nil, errorf("consume control queue %q: %w", q.Name, err)
	}
	return ch, deliveries, nil
}

// answerControl answers control requests until the channel closes. It is
// the channel's one user, closing aside.
func answerControl(ch *amqp.Channel, deliveries <-chan amqp.Delivery, answer func(*amqp.Delivery) amqp.Publishing) {
	for d := range deliveries {
		if d.ReplyTo != "" && !strings.HasPrefix(d.ReplyTo, DirectReplyTo) {
			msg := answer(&d)
			msg.CorrelationId = d.CorrelationId
			_ = ch.Publish("", d.ReplyTo, false, false, msg)
		}
		_ = d.Ack(false)
	}
}

// isNotFound reports whether err is the broker's 404 NOT_FOUND.
func isNotFound(err error) bool {
	var e *amqp.Error
	return errors.As(err, &e) && e.Code == amqp.NotFound
}

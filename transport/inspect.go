package transport

import (
	"time"

	amqp "github.com/rabbitmq/amqp091-go"
)

// QueueState is what the broker says about a queue at one moment.
type QueueState struct {
	Exists    bool
	Consumers int
	Messages  int // ready, not yet delivered
}

// InspectQueue asks the broker about queue with a passive declare on a
// short-lived channel of the current connection. It gives up after wait, so
// a broker that does not answer cannot hold the caller; the abandoned
// question ends when the connection does, and Close waits for it.
func (c *Client) InspectQueue(queue string, wait time.Duration) (QueueState, error) {
	s, err := c.current()
	if err != nil {
		return QueueState{}, err
	}
	type result struct {
		state QueueState
		err   error
	}
	res := make(chan result, 1)
	c.handlers.Add(1)
	go func() {
		defer c.handlers.Done()
		ch, err := s.conn.Channel()
		if err != nil {
			res <- result{err: errorf("inspect queue %q: %w", queue, err)}
			return
		}
		q, err := ch.QueueDeclarePassive(queue, false, false, false, false, nil)
		if err != nil {
			// A missing queue closes the channel with 404 NOT_FOUND.
			if e, ok := err.(*amqp.Error); ok && e.Code == amqp.NotFound {
				res <- result{state: QueueState{}}
				return
			}
			res <- result{err: errorf("inspect queue %q: %w", queue, err)}
			return
		}
		_ = ch.Close()
		res <- result{state: QueueState{Exists: true, Consumers: q.Consumers, Messages: q.Messages}}
	}()
	t := time.NewTimer(wait)
	defer t.Stop()
	select {
	case r := <-res:
		return r.state, r.err
	case <-t.C:
		return QueueState{}, errorf("inspect queue %q: no answer within %v", queue, wait)
	}
}

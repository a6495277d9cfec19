package transport

import (
	"sync"
	"sync/atomic"
	"time"

	amqp "github.com/rabbitmq/amqp091-go"
)

// QueueState is what the broker says about a queue at one moment.
type QueueState struct {
	Exists    bool
	Consumers int
	Messages  int // ready, not yet delivered
}

// inspector runs the questions of InspectQueue, one at a time.
type inspector struct {
	busy    atomic.Bool // a question is under way
	running sync.WaitGroup
}

// InspectQueue asks the broker about queue with a passive declare on a
// short-lived channel of the current connection. It gives up after wait, so
// a broker that does not answer cannot hold the caller; the abandoned
// question ends when the connection does, and Close waits for it. While a
// question is under way another fails at once, so a broker that does not
// answer never has more than one channel opened for it.
func (c *Client) InspectQueue(queue string, wait time.Duration) (QueueState, error) {
	s, _, err := c.sv.current()
	if err != nil {
		return QueueState{}, err
	}
	if !c.inspect.busy.CompareAndSwap(false, true) {
		return QueueState{}, errorf("inspect queue %q: an earlier question is still unanswered", queue)
	}
	type answer struct {
		state QueueState
		err   error
	}
	res := make(chan answer, 1)
	c.inspect.running.Add(1)
	go func() {
		defer c.inspect.running.Done()
		defer c.inspect.busy.Store(false)
		st, err := passiveDeclare(s.conn, queue)
		res <- answer{st, err}
	}()
	t := time.NewTimer(wait)
	defer t.Stop()
	select {
	case a := <-res:
		return a.state, a.err
	case <-t.C:
		return QueueState{}, errorf("inspect queue %q: no answer within %v", queue, wait)
	}
}

func passiveDeclare(conn *amqp.Connection, queue string) (QueueState, error) {
	ch, err := conn.Channel()
	if err != nil {
		return QueueState{}, errorf("inspect queue %q: %w", queue, err)
	}
	q, err := ch.QueueDeclarePassive(queue, false, false, false, false, nil)
	if err != nil {
		// A missing queue closes the channel with 404 NOT_FOUND.
		if e, ok := err.(*amqp.Error); ok && e.Code == amqp.NotFound {
			return QueueState{}, nil
		}
		return QueueState{}, errorf("inspect queue %q: %w", queue, err)
	}
	_ = ch.Close()
	return QueueState{Exists: true, Consumers: q.Consumers, Messages: q.Messages}, nil
}

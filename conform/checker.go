package conform

import (
	"context"
	"crypto/rand"
	"errors"
	"fmt"
	"strings"
	"time"

	amqp "github.com/rabbitmq/amqp091-go"
)

// checker holds what the checks share, one connection, and what the
// check under way uses: a caller with a private reply queue and, for the
// checks that want one, a caller with direct reply-to.
type checker struct {
	url, queue string
	timeout    time.Duration
	prefetch   int
	token      string // unique to this run: Record tokens and correlation ids
	conn       *amqp.Connection

	check   string        // the name of the check under way
	private *caller       // the check's, closed when it ends
	direct  *caller       // the check's, made on first use
	control *controlAsker // the control checks' (checkcontrol.go), once one runs
}

// newChecker connects and checks that something consumes queue.
func newChecker(url, queue string, timeout time.Duration, prefetch int) (*checker, error) {
	conn, err := amqp.DialConfig(url, amqp.Config{
		Dial:       amqp.DefaultDial(10 * time.Second),
		Properties: amqp.Table{"connection_name": "amqprpc conform server"},
	})
	if err != nil {
		return nil, fmt.Errorf("cannot connect to the broker: %w", err)
	}
	k := &checker{url: url, queue: queue, timeout: timeout, prefetch: prefetch, conn: conn,
		token: "conform-" + strings.ToLower(rand.Text()[:10])}
	q, err := inspectOn(conn, queue)
	switch {
	case err != nil:
	case !q.exists:
		err = fmt.Errorf("no queue %q on the broker; start the server to check, or check the name", queue)
	case q.consumers == 0:
		err = fmt.Errorf("nothing consumes queue %q; start the server to check", queue)
	case q.messages > 0:
		err = fmt.Errorf("queue %q holds %d requests already; the checks need it empty and the server idle", queue, q.messages)
	}
	if err != nil {
		conn.Close()
		return nil, err
	}
	return k, nil
}

// run runs one check with callers of its own, so that no reply another
// check caused reaches it; once it ends, it waits (up to the reply
// timeout) for the replies the check did not wait for, and for the queue
// to empty, so that the server is idle for the next check.
func (k *checker) run(c Check) error {
	k.check = c.Name
	var err error
	if k.private, err = newCaller(k.conn, k.queue, k.token+"-"+c.Name, false); err != nil {
		return fmt.Errorf("the checker could not start: %w", err)
	}
	defer func() {
		k.settle()
		k.private.close()
		if k.direct != nil {
			k.direct.close()
			k.direct = nil
		}
	}()
	return c.run(k)
}

// directCaller returns the check's caller with direct reply-to.
func (k *checker) directCaller() (*caller, error) {
	if k.direct == nil {
		c, err := newCaller(k.conn, k.queue, k.token+"-"+k.check+"-d", true)
		if err != nil {
			return nil, err
		}
		k.direct = c
	}
	return k.direct, nil
}

// settle waits, up to the reply timeout, until the check's requests are
// answered and nothing waits in the queue.
func (k *checker) settle() {
	deadline := time.Now().Add(k.timeout)
	for time.Now().Before(deadline) {
		busy := k.private.outstanding()
		if k.direct != nil {
			busy += k.direct.outstanding()
		}
		if busy == 0 {
			if q, err := inspectOn(k.conn, k.queue); err != nil || q.messages == 0 {
				return
			}
		}
		time.Sleep(20 * time.Millisecond) // polling the broker and the replies, with a deadline
	}
}

func (k *checker) close() {
	if k.control != nil {
		k.control.ch.Close()
	}
	k.conn.Close()
}

// queueState is what the broker says about a queue.
type queueState struct {
	exists              bool
	consumers, messages int
}

// inspectOn asks the broker about queue on a channel of its own.
func inspectOn(conn *amqp.Connection, queue string) (queueState, error) {
	ch, err := conn.Channel()
	if err != nil {
		return queueState{}, err
	}
	defer ch.Close()
	q, err := ch.QueueDeclarePassive(queue, false, false, false, false, nil)
	var ae *amqp.Error
	switch {
	case errors.As(err, &ae) && ae.Code == amqp.NotFound:
		return queueState{}, nil
	case err != nil:
		return queueState{}, err
	}
	return queueState{exists: true, consumers: q.Consumers, messages: q.Messages}, nil
}

func contextWithTimeout(d time.Duration) (context.Context, context.CancelFunc) {
	return context.WithTimeout(context.Background(), d)
}

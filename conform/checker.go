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

// checker holds what the checks share: one connection, a caller with a
// private reply queue and one with direct reply-to.
type checker struct {
	url, queue string
	timeout    time.Duration
	prefetch   int
	token      string // unique to this run: Record tokens and correlation ids
	conn       *amqp.Connection
	private    *caller
	direct     *caller
	control    *controlAsker // the control checks' (checkcontrol.go), once one runs
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
	ok := false
	defer func() {
		if !ok {
			k.close()
		}
	}()
	q, err := inspectOn(conn, queue)
	switch {
	case err != nil:
		return nil, err
	case !q.exists:
		return nil, fmt.Errorf("no queue %q on the broker; start the server to check, or check the name", queue)
	case q.consumers == 0:
		return nil, fmt.Errorf("nothing consumes queue %q; start the server to check", queue)
	case q.messages > 0:
		return nil, fmt.Errorf("queue %q holds %d requests already; the checks need it empty and the server idle", queue, q.messages)
	}
	if k.private, err = newCaller(conn, queue, k.token+"-p", false); err != nil {
		return nil, err
	}
	if k.direct, err = newCaller(conn, queue, k.token+"-d", true); err != nil {
		return nil, err
	}
	ok = true
	return k, nil
}

func (k *checker) close() {
	if k.private != nil {
		k.private.close()
	}
	if k.direct != nil {
		k.direct.close()
	}
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

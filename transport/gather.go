package transport

import (
	"context"
	"crypto/rand"
	"fmt"
	"strconv"
	"time"

	amqp "github.com/rabbitmq/amqp091-go"
)

// Query is a control request for [Gather] to publish, and how long to
// collect the answers.
type Query struct {
	// Exchange and Key address the request: the control exchange and the
	// routing key of the instances that are to answer.
	Exchange, Key string
	// Type is the request's type property.
	Type string
	// Wait bounds the collection; it is also the request's expiration, so
	// that an instance that takes the request later does not answer it.
	Wait time.Duration
	// Expect, when above 0, ends the collection as soon as that many
	// answers came.
	Expect int
}

// Gather publishes a control request on a channel of its own on conn, and
// returns the answers that came until q.Wait passed, q.Expect answers came,
// or ctx ended. Answers come to an exclusive, server-named reply queue (never
// direct reply-to, which instances do not answer). When no instance can
// take the request (no control exchange, or nothing bound under q.Key) it
// returns at once, with no answer and no error.
func Gather(ctx context.Context, conn *amqp.Connection, q Query) ([]amqp.Delivery, error) {
	ch, err := conn.Channel()
	if err != nil {
		return nil, errorf("open control channel: %w", err)
	}
	defer ch.Close()
	if err := ch.ExchangeDeclarePassive(q.Exchange, amqp.ExchangeDirect, false, true, false, false, nil); err != nil {
		if isNotFound(err) {
			return nil, nil // no instance has declared it
		}
		return nil, errorf("look up control exchange %q: %w", q.Exchange, err)
	}
	rq, err := ch.QueueDeclare("", false, true, true, false, nil)
	if err != nil {
		return nil, errorf("declare control reply queue: %w", err)
	}
	answers, err := ch.Consume(rq.Name, "", true, true, false, false, nil)
	if err != nil {
		return nil, errorf("consume control replies from %q: %w", rq.Name, err)
	}
	returns := ch.NotifyReturn(make(chan amqp.Return, 1))
	closes := ch.NotifyClose(make(chan *amqp.Error, 1))
	id := rand.Text()
	msg := amqp.Publishing{
		Type:          q.Type,
		ReplyTo:       rq.Name,
		CorrelationId: id,
		Expiration:    strconv.FormatInt(max(q.Wait.Milliseconds(), 1), 10),
	}
	if err := ch.PublishWithContext(ctx, q.Exchange, q.Key, true, false, msg); err != nil {
		return nil, errorf("publish %s control request: %w", q.Type, err)
	}
	return collect(ctx, q, id, answers, returns, closes)
}

// collect reads the answers to the request id.
func collect(ctx context.Context, q Query, id string, answers <-chan amqp.Delivery, returns <-chan amqp.Return, closes <-chan *amqp.Error) ([]amqp.Delivery, error) {
	t := time.NewTimer(q.Wait)
	defer t.Stop()
	var got []amqp.Delivery
	for q.Expect <= 0 || len(got) < q.Expect {
		select {
		case d, ok := <-answers:
			if !ok {
				return got, fmt.Errorf("%w: control reply consumer ended", ErrConnectionLost)
			}
			if d.CorrelationId == id {
				got = append(got, d)
			}
		case r := <-returns:
			if r.CorrelationId == id {
				return got, nil // nothing is bound under the key
			}
		case e, ok := <-closes:
			if ok && e != nil {
				return got, errorf("control channel closed: %w", e)
			}
			return got, errorf("control channel closed")
		case <-t.C:
			return got, nil
		case <-ctx.Done():
			return got, nil
		}
	}
	return got, nil
}

// QueueStateOf asks the broker about queue with a passive declare on a
// channel of its own on conn: whether the queue exists, how many consumers
// it has and how many messages wait in it.
func QueueStateOf(conn *amqp.Connection, queue string) (QueueState, error) {
	return passiveDeclare(conn, queue)
}

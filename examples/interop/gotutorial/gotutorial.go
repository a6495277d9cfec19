// Package gotutorial is a Fibonacci client and server in the style of
// RabbitMQ's RPC tutorial, written on amqp091-go alone: no amqprpc. It is
// the kind of code a service moving to amqprpc already has around it, and
// tutorial_test.go checks that it works unchanged on both sides of amqprpc.
//
// The contract, as the tutorial's Go programs keep it:
//
//   - a request is the number as decimal text, content_type text/plain,
//     with reply_to and a random 32-letter correlation_id; no type;
//   - the reply goes to reply_to with the same correlation_id, and is the
//     result as decimal text, content_type text/plain.
//
// The client opens a connection per call and receives its reply through a
// private, server-named, exclusive queue.
package gotutorial

import (
	"context"
	"crypto/rand"
	"errors"
	"fmt"
	"strconv"
	"strings"

	amqp "github.com/rabbitmq/amqp091-go"
)

// errorHeader is where an amqprpc server puts a failed call's text. The
// tutorial knows nothing of it; the client reports it rather than failing
// to parse an empty body.
const errorHeader = "x-rpc-error"

// Fib asks the service on queue for the n-th Fibonacci number and waits
// for the answer until ctx ends.
func Fib(ctx context.Context, url, queue string, n int) (int, error) {
	conn, err := amqp.Dial(url)
	if err != nil {
		return 0, fmt.Errorf("connect: %w", err)
	}
	defer conn.Close()
	ch, err := conn.Channel()
	if err != nil {
		return 0, fmt.Errorf("open a channel: %w", err)
	}
	replies, err := ch.QueueDeclare("", false, false, true, false, nil)
	if err != nil {
		return 0, fmt.Errorf("declare the reply queue: %w", err)
	}
	deliveries, err := ch.Consume(replies.Name, "", true, true, false, false, nil)
	if err != nil {
		return 0, fmt.Errorf("consume the reply queue: %w", err)
	}
	id := randomLetters(32)
	err = ch.PublishWithContext(ctx, "", queue, false, false, amqp.Publishing{
		ContentType:   "text/plain",
		CorrelationId: id,
		ReplyTo:       replies.Name,
		Body:          []byte(strconv.Itoa(n)),
	})
	if err != nil {
		return 0, fmt.Errorf("publish the request: %w", err)
	}
	for {
		select {
		case d, ok := <-deliveries:
			if !ok {
				return 0, errors.New("the reply consumer ended")
			}
			if d.CorrelationId != id {
				continue // not ours
			}
			if e, ok := d.Headers[errorHeader]; ok {
				return 0, fmt.Errorf("the service failed: %v", e)
			}
			v, err := strconv.Atoi(strings.TrimSpace(string(d.Body)))
			if err != nil {
				return 0, fmt.Errorf("reply %q (content_type %q) is not a number", d.Body, d.ContentType)
			}
			return v, nil
		case <-ctx.Done():
			return 0, fmt.Errorf("no reply to fib(%d): %w", n, ctx.Err())
		}
	}
}

// Serve declares queue (not durable) and answers Fibonacci requests on it
// one at a time until ctx ends. ready, if not nil, is called once it
// consumes.
func Serve(ctx context.Context, url, queue string, ready func()) error {
	conn, err := amqp.Dial(url)
	if err != nil {
		return fmt.Errorf("connect: %w", err)
	}
	defer conn.Close()
	ch, err := conn.Channel()
	if err != nil {
		return fmt.Errorf("open a channel: %w", err)
	}
	if _, err := ch.QueueDeclare(queue, false, false, false, false, nil); err != nil {
		return fmt.Errorf("declare %q: %w", queue, err)
	}
	if err := ch.Qos(1, 0, false); err != nil {
		return fmt.Errorf("set prefetch: %w", err)
	}
	requests, err := ch.Consume(queue, "", false, false, false, false, nil)
	if err != nil {
		return fmt.Errorf("consume %q: %w", queue, err)
	}
	if ready != nil {
		ready()
	}
	for {
		select {
		case <-ctx.Done():
			return nil
		case d, ok := <-requests:
			if !ok {
				return errors.New("the broker ended the consumer")
			}
			reply := amqp.Publishing{ContentType: "text/plain", CorrelationId: d.CorrelationId}
			n, err := strconv.Atoi(strings.TrimSpace(string(d.Body)))
			switch {
			case err != nil || n < 0 || n > 92:
				reply.Headers = amqp.Table{errorHeader: fmt.Sprintf("want a whole number from 0 to 92, got %q", clip(d.Body))}
			default:
				reply.Body = []byte(strconv.Itoa(fib(n)))
			}
			if err := ch.PublishWithContext(ctx, "", d.ReplyTo, false, false, reply); err != nil {
				return fmt.Errorf("reply: %w", err)
			}
			if err := d.Ack(false); err != nil {
				return fmt.Errorf("ack: %w", err)
			}
		}
	}
}

func fib(n int) int {
	a, b := 0, 1
	for range n {
		a, b = b, a+b
	}
	return a
}

func randomLetters(n int) string {
	const letters = "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ"
	b := make([]byte, n)
	_, _ = rand.Read(b)
	for i := range b {
		b[i] = letters[int(b[i])%len(letters)]
	}
	return string(b)
}

func clip(b []byte) string {
	if len(b) > 32 {
		return string(b[:32]) + "..."
	}
	return string(b)
}

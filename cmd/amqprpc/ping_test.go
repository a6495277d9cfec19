package main

import (
	"encoding/json"
	"strings"
	"testing"

	amqp "github.com/rabbitmq/amqp091-go"

	"github.com/amqprpc/amqprpc/internal/brokertest"
)

// TestPingExpiration: a ping carries a short expiration, -timeout (5s by
// default), so that a ping a server that is not amqprpc cannot answer
// leaves the queue soon; and a ping nothing answers says what it may mean.
func TestPingExpiration(t *testing.T) {
	url := brokertest.URL(t)
	queue := brokertest.Queue(t, url, "ping-expiration")
	_, ch := brokertest.Conn(t, url)
	if _, err := ch.QueueDeclare(queue, false, false, false, false, nil); err != nil {
		t.Fatal(err)
	}
	// A server that answers a ping the first time only, and keeps what
	// each request carried.
	requests := brokertest.Consume(t, ch, queue)
	expirations := make(chan string, 4)
	go func() {
		answered := false
		for d := range requests {
			expirations <- d.Expiration
			if !answered {
				answered = true
				body, _ := json.Marshal("pong")
				_ = ch.Publish("", d.ReplyTo, false, false, amqp.Publishing{CorrelationId: d.CorrelationId, ContentType: "application/json", Body: body})
			}
		}
	}()

	r := cli(t, url, nil, "ping", queue)
	if r.code != exitOK || !strings.Contains(r.stdout, "an amqprpc server answered") {
		t.Errorf("amqprpc ping = exit %d, stdout %q, stderr %q; want exit 0", r.code, r.stdout, r.stderr)
	}
	if got := <-expirations; got != "5000" {
		t.Errorf("amqprpc ping sent expiration %q; want \"5000\"", got)
	}

	args := []string{"ping", "-timeout", "300ms", queue}
	r = cli(t, url, nil, args...)
	checkFailure(t, args, r, exitTransit, "a server that is not one may ignore it, or crash on it")
	if got := <-expirations; got != "300" {
		t.Errorf("amqprpc ping -timeout 300ms sent expiration %q; want \"300\"", got)
	}
}

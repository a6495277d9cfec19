package transport

import (
	"context"
	"fmt"
	"slices"
	"testing"
	"time"

	amqp "github.com/rabbitmq/amqp091-go"
)

// forgedReplyTo is a direct reply-to name the broker cannot decode:
// RabbitMQ 3.10 closes the connection of whoever publishes to it (541).
const forgedReplyTo = "amq.rabbitmq.reply-to.g1h2AA5yZXBseUAyNzQ0OTQ1NAAAC3YAAAAAZXlgDg==.aQ3qjBUl3xbLkKwhGK4n9Q=="

// settleServer starts a Server on a new queue, and returns it with a
// channel to publish requests on and the name of a reply queue.
func settleServer(t *testing.T, confirm bool) (*Server, *amqp.Channel, string) {
	t.Helper()
	q := testQueue(t)
	s, err := NewServer(context.Background(), ServerConfig{
		Config:   Config{Dial: dialForTests, Confirm: confirm, Backoff: Backoff{Min: 10 * time.Millisecond, Max: 50 * time.Millisecond}},
		Queue:    QueueConfig{Name: q},
		Prefetch: 8,
	})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close() })
	raw := rawChannel(t)
	rq, err := raw.QueueDeclare("", false, true, true, false, nil)
	if err != nil {
		t.Fatal(err)
	}
	return s, raw, rq.Name
}

// publishRequests publishes one request per reply_to, numbered from 1 in
// their correlation ids.
func publishRequests(t *testing.T, raw *amqp.Channel, queue string, replyTo ...string) {
	t.Helper()
	for i, to := range replyTo {
		if err := raw.Publish("", queue, false, false, amqp.Publishing{ReplyTo: to, CorrelationId: fmt.Sprint(i + 1), Body: []byte("x")}); err != nil {
			t.Fatal(err)
		}
	}
}

// takeN takes n requests from s.
func takeN(t *testing.T, s *Server, n int) []Request {
	t.Helper()
	reqs := make([]Request, n)
	for i := range reqs {
		r, err := nextWithin(s, 10*time.Second)
		if err != nil {
			t.Fatal(err)
		}
		reqs[i] = r
	}
	return reqs
}

// redeliveredUntil takes requests from s until the one with correlation id
// last comes back redelivered, rejecting each, and returns the correlation
// ids of the redelivered ones, last included.
func redeliveredUntil(t *testing.T, s *Server, last string) []string {
	t.Helper()
	var again []string
	for {
		r, err := nextWithin(s, 10*time.Second)
		if err != nil {
			t.Fatalf("waiting for request %s to come back: %v (back so far: %v)", last, err, again)
		}
		_ = s.Reject(&r, false)
		if r.Redelivered {
			again = append(again, r.CorrelationId)
			if r.CorrelationId == last {
				return again
			}
		}
	}
}

// TestRejectAcksTheAnswersHeldBehindIt: a request answered while an
// earlier one still runs is held unacknowledged, as a run cannot pass the
// earlier one. When the earlier one is rejected, the answered one must be
// acknowledged then, not with whatever batch of replies comes next: here
// none comes, the connection drops, and an unacknowledged request 2 would
// come back to run again.
func TestRejectAcksTheAnswersHeldBehindIt(t *testing.T) {
	s, raw, replyTo := settleServer(t, false)
	q := s.cfg.Queue.Name
	publishRequests(t, raw, q, replyTo, replyTo, replyTo)
	reqs := takeN(t, s, 2)
	if err := s.Respond(&reqs[1], &amqp.Publishing{CorrelationId: reqs[1].CorrelationId}); err != nil {
		t.Fatal(err)
	}
	if err := s.AckAnswered(); err != nil {
		t.Fatal(err)
	}
	if err := s.Reject(&reqs[0], false); err != nil {
		t.Fatal(err)
	}
	sess, _, _ := s.sv.current()
	_ = sess.conn.Close() // what an unacknowledged request comes back from
	// Request 3 was never taken: it comes back after anything before it.
	if again := redeliveredUntil(t, s, "3"); slices.Contains(again, "2") {
		t.Errorf("requests back in the queue after the connection dropped = %v; want 3 alone (2 was answered)", again)
	}
}

// TestRespondAloneSettlesEarlierAnswers: a reply sent alone may make the
// broker close the connection, which it exists to find out. The requests
// answered before it must be settled first, or the crash sends them back
// to the queue and they run again.
func TestRespondAloneSettlesEarlierAnswers(t *testing.T) {
	for _, confirm := range []bool{false, true} {
		t.Run(fmt.Sprintf("confirms=%v", confirm), func(t *testing.T) {
			s, raw, replyTo := settleServer(t, confirm)
			publishRequests(t, raw, s.cfg.Queue.Name, replyTo, forgedReplyTo)
			reqs := takeN(t, s, 2)
			if err := s.Respond(&reqs[0], &amqp.Publishing{CorrelationId: reqs[0].CorrelationId}); err != nil {
				t.Fatal(err)
			}
			closedIt, err := s.RespondAlone(&reqs[1], &amqp.Publishing{CorrelationId: reqs[1].CorrelationId})
			if !closedIt {
				t.Skipf("RespondAlone to a forged direct reply-to name = %v, %v; this broker does not close the connection for it (RabbitMQ 3.10 does)", closedIt, err)
			}
			if again := redeliveredUntil(t, s, "2"); slices.Contains(again, "1") {
				t.Errorf("requests back in the queue after the reply sent alone closed the connection = %v; want 2 alone (1 was answered before)", again)
			}
		})
	}
}

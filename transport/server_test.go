package transport

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"os"
	"testing"
	"time"

	"github.com/google/uuid"
	amqp "github.com/rabbitmq/amqp091-go"

	"github.com/amqprpc/amqprpc/internal/brokertest"
)

// brokerURLForTests is the shared test broker: AMQP_URL, or the local one.
var brokerURLForTests = cmp.Or(os.Getenv("AMQP_URL"), brokertest.DefaultURL)

func dialForTests(ctx context.Context) (*amqp.Connection, error) { return amqp.Dial(brokerURLForTests) }

func rawChannel(t *testing.T) *amqp.Channel {
	t.Helper()
	conn, err := amqp.Dial(brokertest.URL(t))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { conn.Close() })
	ch, err := conn.Channel()
	if err != nil {
		t.Fatal(err)
	}
	return ch
}

// testQueue names a queue for the test and deletes it when the test ends;
// it skips or fails the test, as brokertest.URL does, without a broker.
func testQueue(t *testing.T) string {
	t.Helper()
	brokertest.URL(t)
	q := "transport-test-" + uuid.NewString()[:8]
	t.Cleanup(func() {
		conn, err := amqp.Dial(brokerURLForTests)
		if err != nil {
			return
		}
		defer conn.Close()
		ch, _ := conn.Channel()
		_, _ = ch.QueueDelete(q, false, false, false)
	})
	return q
}

func nextWithin(s *Server, d time.Duration) (Request, error) {
	type res struct {
		r   Request
		err error
	}
	c := make(chan res, 1)
	go func() { r, err := s.Next(); c <- res{r, err} }()
	select {
	case r := <-c:
		return r.r, r.err
	case <-time.After(d):
		return Request{}, fmt.Errorf("no request within %v", d)
	}
}

// A reply refused with ErrBlocked leaves its request unacknowledged on a live
// channel: with prefetch 1 the server never gets another request.
func TestBlockedReplyKeepsThePrefetch(t *testing.T) {
	q := testQueue(t)
	s, err := NewServer(context.Background(), ServerConfig{Config: Config{Dial: dialForTests}, Queue: QueueConfig{Name: q}, Prefetch: 1})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	raw := rawChannel(t)
	rq, _ := raw.QueueDeclare("", false, true, true, false, nil)
	for i := range 2 {
		if err := raw.Publish("", q, false, false, amqp.Publishing{ReplyTo: rq.Name, CorrelationId: fmt.Sprint(i), Body: []byte("x")}); err != nil {
			t.Fatal(err)
		}
	}
	r1, err := nextWithin(s, 5*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	sess, _, _ := s.sv.current()
	reason := "simulated memory alarm"
	sess.blocked.Store(&reason) // what watch does on connection.blocked
	err = s.Respond(&r1, &amqp.Publishing{CorrelationId: r1.CorrelationId, Body: []byte("y")})
	t.Logf("Respond while blocked = %v", err)
	sess.blocked.Store(nil) // connection.unblocked
	_ = s.AckAnswered()
	if _, err := nextWithin(s, 3*time.Second); err != nil {
		t.Errorf("after the alarm cleared: Next = %v; the first request is still unacked on the live channel and holds the only prefetch slot", err)
	}
}

// With confirms on, Close does not wait for the confirms of replies already
// published: their requests are never acknowledged and go back to the queue.
func TestCloseWaitsForReplyConfirms(t *testing.T) {
	for round := range 3 {
		q := testQueue(t)
		s, err := NewServer(context.Background(), ServerConfig{Config: Config{Dial: dialForTests, Confirm: true}, Queue: QueueConfig{Name: q}, Prefetch: 64})
		if err != nil {
			t.Fatal(err)
		}
		raw := rawChannel(t)
		rq, _ := raw.QueueDeclare("", false, true, true, false, nil)
		const n = 20
		for i := range n {
			_ = raw.Publish("", q, false, false, amqp.Publishing{ReplyTo: rq.Name, CorrelationId: fmt.Sprint(i), Body: []byte("x")})
		}
		for range n {
			r, err := nextWithin(s, 5*time.Second)
			if err != nil {
				t.Fatal(err)
			}
			if err := s.Respond(&r, &amqp.Publishing{CorrelationId: r.CorrelationId, Body: []byte("y")}); err != nil {
				t.Fatal(err)
			}
		}
		_ = s.Close()
		time.Sleep(200 * time.Millisecond)
		st, err := raw.QueueDeclarePassive(q, false, false, false, false, nil)
		if err != nil {
			t.Fatal(err)
		}
		replies, _ := raw.QueueDeclarePassive(rq.Name, false, true, true, false, nil)
		t.Logf("round %d: %d replies published, %d answered requests back in the queue", round, replies.Messages, st.Messages)
		if st.Messages > 0 {
			t.Errorf("round %d: %d requests answered (replies delivered: %d) were requeued by Close", round, st.Messages, replies.Messages)
		}
	}
}

// The broker cancels the consumer (queue deleted, or its node gone) but keeps
// the channel open: the server never consumes again.
func TestServerConsumesAgainAfterTheBrokerCancels(t *testing.T) {
	q := testQueue(t)
	s, err := NewServer(context.Background(), ServerConfig{Config: Config{Dial: dialForTests, Backoff: Backoff{Min: 50 * time.Millisecond, Max: 100 * time.Millisecond}}, Queue: QueueConfig{Name: q}, Prefetch: 4})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	raw := rawChannel(t)
	if _, err := raw.QueueDelete(q, false, false, false); err != nil {
		t.Fatal(err)
	}
	time.Sleep(200 * time.Millisecond)
	if _, err := raw.QueueDeclare(q, false, false, false, false, nil); err != nil {
		t.Fatal(err)
	}
	_ = raw.Publish("", q, false, false, amqp.Publishing{Body: []byte("x")})
	_, err = nextWithin(s, 5*time.Second)
	sess, _, cerr := s.sv.current()
	t.Logf("current() = %p, %v; channel closed: %v", sess, cerr, sess != nil && sess.ch.IsClosed())
	if err != nil {
		t.Errorf("after the queue came back: Next = %v (server stuck with a live channel and a cancelled consumer)", err)
	}
	_ = errors.New
}

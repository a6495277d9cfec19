package amqprpc

import (
	"errors"
	"fmt"
	"sync"
	"testing"
	"time"

	amqp "github.com/rabbitmq/amqp091-go"

	"github.com/amqprpc/amqprpc/internal/brokertest"
)

// TestPoisonSparesInnocentRequests: requests whose replies crash the
// server's connection (RabbitMQ 3.10's 541 INTERNAL_ERROR on a direct
// reply-to name it cannot decode: a forged one, or in a cluster that of a
// client whose node is gone) must not take the requests that were in
// flight beside them down too. Every crash sends those back to the queue
// with the poisonous ones; the server must answer them all, and reject
// only the poisonous ones. On a broker that does not crash on such names,
// the test passes trivially.
func TestPoisonSparesInnocentRequests(t *testing.T) {
	queue := testQueue(t)
	arith := newArith("s1")
	startServer(t, arith, queue, WithPrefetch(32), WithReconnectBackoff(10*time.Millisecond, 50*time.Millisecond))
	client := dial(t, queue, WithDirectReplyTo(), WithCallTimeout(5*time.Second))

	// Innocent callers: each call works a little, so that some always
	// finish after a poisonous one and have their replies written after it.
	stop := make(chan struct{})
	stopLoad := sync.OnceFunc(func() { close(stop) })
	t.Cleanup(stopLoad) // should the test end early
	done := make(chan *brokertest.Stats, 1)
	go func() { done <- runLoad(client, 16, 5*time.Second, 20, stop) }()
	// Poisonous requests with one forged reply_to, as a client on a lost
	// node leaves behind: one per caller it had.
	_, ch := rawConn(t)
	for i := range 20 {
		err := ch.Publish("", queue, false, false, amqp.Publishing{
			Type: "Arith.Multiply", ContentType: "application/json", Body: []byte(`{"A":6,"B":7}`),
			ReplyTo: forgedReplyTo, CorrelationId: fmt.Sprint(i), MessageId: fmt.Sprintf("poison-%d", i),
		})
		if err != nil {
			t.Fatal(err)
		}
	}
	time.Sleep(4 * time.Second) // load while the poison goes round
	stopLoad()
	st := <-done
	st.Report(t, "innocent callers beside 20 poisonous requests")
	st.Check(t, false) // no innocent call failed, hung or got another's reply
	// The server still answers, and the poison is gone from the queue.
	var r int
	if err := client.Call("Arith.Multiply", &Args{2, 3}, &r); err != nil || r != 6 {
		t.Fatalf("Call after the poison = %d, %v; want 6, nil", r, err)
	}
	conn, _ := rawConn(t)
	if n := brokertest.Depth(conn, queue); n != 0 {
		t.Errorf("Depth(%q) = %d; want 0, the poison rejected", queue, n)
	}
}

// TestPoisonGuard checks the guard's bookkeeping, by reply_to: suspects
// after a crash and only then, cleared by a reply that did not crash,
// poison after one that did.
func TestPoisonGuard(t *testing.T) {
	crash := &amqp.Error{Code: amqp.InternalError, Reason: "INTERNAL_ERROR"}
	req := func(id, replyTo string) *amqp.Delivery {
		return &amqp.Delivery{MessageId: id, ReplyTo: replyTo, CorrelationId: id, Redelivered: true}
	}
	const (
		dead    = "amq.rabbitmq.reply-to.dead.key"
		alive   = "amq.rabbitmq.reply-to.alive.key"
		absent  = "amq.rabbitmq.reply-to.absent.key"
		private = "amq.gen-private"
	)
	g := newPoisonGuard()
	publish := func() {
		g.replied(req("a", alive))
		g.replied(req("p", dead))
		g.replied(req("b", alive))
	}
	publish()
	g.crashed(errors.New("amqprpc: connection lost: EOF")) // not the broker's crash
	for _, to := range []string{alive, dead} {
		if g.suspect(req("x", to)) {
			t.Fatalf("suspect(reply_to %q) after a loss that was no crash = true; want false", to)
		}
	}

	publish()
	g.crashed(fmt.Errorf("amqprpc: connection lost: %w", crash))
	for _, to := range []string{alive, dead} {
		for _, d := range []*amqp.Delivery{req("a", to), {MessageId: "new", ReplyTo: to}} {
			if !g.suspect(d) {
				t.Errorf("suspect(%q to %q) after a crash its reply_to was present at = false; want true", d.MessageId, to)
			}
			if g.poisonous(d) {
				t.Errorf("poisonous(%q to %q) before any proof = true; want false", d.MessageId, to)
			}
		}
	}
	for _, to := range []string{absent, private} {
		if g.suspect(req("c", to)) {
			t.Errorf("suspect(reply_to %q, absent from the crash) = true; want false", to)
		}
	}

	g.proven(req("a", alive), false) // answered alone, the connection survived
	g.proven(req("p", dead), true)   // answered alone, the broker closed the connection
	for _, d := range []*amqp.Delivery{req("a", alive), req("b", alive)} {
		if g.suspect(d) || g.poisonous(d) {
			t.Errorf("request %q to a cleared reply_to: suspect or poisonous; want neither", d.MessageId)
		}
	}
	for _, d := range []*amqp.Delivery{req("p", dead), {MessageId: "q", ReplyTo: dead}} {
		if !g.poisonous(d) {
			t.Errorf("poisonous(%q, reply_to proven to crash) = false; want true", d.MessageId)
		}
	}
	g.crashed(errors.New("amqprpc: connection lost: EOF"))
	if !g.poisonous(req("p", dead)) {
		t.Errorf("poison forgotten after a session ended; want it remembered")
	}
}

package amqprpc

import (
	"errors"
	"fmt"
	"sync"
	"testing"
	"time"

	amqp "github.com/rabbitmq/amqp091-go"
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
	const callers = 16
	stop := make(chan struct{})
	var wg sync.WaitGroup
	var mu sync.Mutex // guards failures and answered
	var failures []string
	answered := 0
	for g := range callers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := 0; ; i++ {
				select {
				case <-stop:
					return
				default:
				}
				want := g*1_000_000 + i
				var got int
				err := client.Call("Arith.Work", &Args{A: 20, B: want}, &got)
				mu.Lock()
				switch {
				case err != nil:
					failures = append(failures, fmt.Sprintf("call %d: %v", want, err))
				case got != want:
					failures = append(failures, fmt.Sprintf("call %d answered %d", want, got))
				default:
					answered++
				}
				mu.Unlock()
			}
		}()
	}
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
	close(stop)
	wg.Wait()
	if len(failures) > 0 {
		t.Errorf("%d innocent calls failed, %d answered; want none failed:\n%v", len(failures), answered, failures[:min(len(failures), 10)])
	}
	// The server still answers, and the poison is gone from the queue.
	var r int
	if err := client.Call("Arith.Multiply", &Args{2, 3}, &r); err != nil || r != 6 {
		t.Fatalf("Call after the poison = %d, %v; want 6, nil", r, err)
	}
	conn, _ := rawConn(t)
	if n := queueDepth(conn, queue); n != 0 {
		t.Errorf("queueDepth(%q) = %d; want 0, the poison rejected", queue, n)
	}
}

// TestPoisonGuard checks the guard's bookkeeping: suspects after a crash,
// cleared by a reply that did not crash, a reply_to condemned by one that
// did.
func TestPoisonGuard(t *testing.T) {
	crash := &amqp.Error{Code: amqp.InternalError, Reason: "INTERNAL_ERROR"}
	req := func(id, replyTo string, redelivered bool) *amqp.Delivery {
		return &amqp.Delivery{MessageId: id, ReplyTo: replyTo, CorrelationId: id, Redelivered: redelivered}
	}
	const (
		dead  = "amq.rabbitmq.reply-to.dead.key"
		alive = "amq.rabbitmq.reply-to.alive.key"
	)
	g := newPoisonGuard()
	g.replied(req("a", alive, false))
	g.replied(req("p", dead, false))
	g.replied(req("b", alive, false))
	g.crashed(errors.New("amqprpc: connection lost: EOF")) // not the broker's crash
	for _, id := range []string{"a", "p", "b"} {
		if g.suspect(req(id, alive, true)) || g.suspect(req(id, dead, true)) {
			t.Fatalf("suspect(%q) after a loss that was no crash = true; want false", id)
		}
	}

	g.replied(req("a", alive, false))
	g.replied(req("p", dead, false))
	g.replied(req("b", alive, false))
	g.crashed(fmt.Errorf("amqprpc: connection lost: %w", crash))
	for _, d := range []*amqp.Delivery{req("a", alive, true), req("p", dead, true), req("b", alive, true)} {
		if !g.suspect(d) {
			t.Errorf("suspect(%q) after a crash it was present at = false; want true", d.MessageId)
		}
		if g.poisonous(d) {
			t.Errorf("poisonous(%q) before any proof = true; want false", d.MessageId)
		}
	}
	if g.suspect(req("a", alive, false)) {
		t.Errorf("suspect of a first delivery = true; want false")
	}
	if g.suspect(req("c", alive, true)) {
		t.Errorf("suspect of a request absent from the crash = true; want false")
	}

	g.proven(req("a", alive, true), false) // answered alone, the connection survived
	g.proven(req("p", dead, true), true)   // answered alone, the connection crashed
	if g.suspect(req("a", alive, true)) || g.poisonous(req("a", alive, true)) {
		t.Errorf("request cleared by its reply: suspect or poisonous; want neither")
	}
	for _, d := range []*amqp.Delivery{req("p", dead, true), req("q", dead, false)} {
		if !g.poisonous(d) {
			t.Errorf("poisonous(%q, reply_to proven to crash) = false; want true", d.MessageId)
		}
	}
	if g.poisonous(req("b", alive, true)) || g.poisonous(req("d", alive, false)) {
		t.Errorf("a request to a reply_to not proven to crash is poisonous; want not")
	}
	if !g.suspect(req("b", alive, true)) {
		t.Errorf("suspect(%q), not yet answered alone = false; want true", "b")
	}
}

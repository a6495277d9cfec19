package amqprpc

import (
	"fmt"
	"time"

	"github.com/amqprpc/amqprpc/transport"
)

// deadlines fails calls past their call timeout. One goroutine, started
// with the codec and ended by Close, sleeps until the earliest deadline of
// the pending calls; one timer serves them all. When a call that went out
// times out, it asks the broker about the service queue, so the error can
// say why (no consumer, requests waiting): the question is asked by this
// goroutine alone, and its answer serves every timeout for a second, so
// that an outage opens no more than a channel a second for it.
//
// The same answer finds a session whose requests vanish: see heal.
type deadlines struct {
	c      *clientCodec
	rearm  chan struct{} // capacity 1: a call came with an earlier deadline
	done   chan struct{} // closed by stop
	ended  chan struct{} // closed when the goroutine has ended
	at     time.Time     // when the goroutine wakes next; zero: idle; guarded by c.mu
	expiry []*call       // reused by the goroutine

	// Owned by the goroutine.
	asked    time.Time // when the broker last answered about the queue
	answer   transport.QueueState
	answerOf error
	dropping dropWatch
}

// defaultInspectWait bounds the question a timeout asks the broker, and so
// how late it can make the timeouts that come due meanwhile.
const defaultInspectWait = 500 * time.Millisecond

// inspectEvery is how long an answer about the queue serves timeouts.
const inspectEvery = time.Second

func (d *deadlines) start(c *clientCodec) {
	d.c = c
	d.rearm = make(chan struct{}, 1)
	d.done = make(chan struct{})
	d.ended = make(chan struct{})
	go d.run()
}

// arm makes the goroutine wake by deadline. c.mu must be held. Calls made
// with one timeout come in deadline order, so this hardly ever signals.
func (d *deadlines) arm(deadline time.Time) {
	if deadline.IsZero() || (!d.at.IsZero() && !deadline.Before(d.at)) {
		return
	}
	d.at = deadline
	select {
	case d.rearm <- struct{}{}:
	default:
	}
}

// stop ends the goroutine and waits for it.
func (d *deadlines) stop() {
	close(d.done)
	<-d.ended
}

func (d *deadlines) run() {
	defer close(d.ended)
	t := time.NewTimer(time.Hour)
	t.Stop()
	for {
		select {
		case <-d.done:
			t.Stop()
			return
		case <-d.rearm:
		case <-t.C:
		}
		d.expire()
		d.c.mu.Lock()
		next, ok := d.c.calls.nextDeadline()
		d.at = next
		d.c.mu.Unlock()
		if ok {
			t.Reset(time.Until(next))
		}
	}
}

// expire fails every call past its deadline, saying why as far as the
// client can tell.
func (d *deadlines) expire() {
	c := d.c
	c.mu.Lock()
	d.expiry = c.calls.popExpired(time.Now(), d.expiry[:0])
	if len(d.expiry) == 0 {
		c.mu.Unlock()
		return
	}
	c.expiries++
	suspect := d.dropping.suspect(c, d.expiry)
	c.mu.Unlock()
	c.release(len(d.expiry))
	// The expired calls are out of the pending set, so nothing else answers
	// them while the broker is asked about the queue.
	why := ""
	for _, cl := range d.expiry {
		if cl.state != held {
			why = d.queueState()
			break
		}
	}
	if suspect != nil {
		d.heal(suspect)
	}
	for i, cl := range d.expiry {
		c.failures.Put(response{seq: cl.seq, method: cl.method, fail: c.timeoutFailure(cl, why)})
		d.expiry[i] = nil
	}
}

// inspect returns what the broker said about the queue within the last
// inspectEvery, or asks it again.
func (d *deadlines) inspect() (transport.QueueState, error) {
	if d.asked.IsZero() || time.Since(d.asked) >= inspectEvery {
		d.answer, d.answerOf = d.c.transport.InspectQueue(d.c.queue, d.c.inspectWait)
		d.asked = time.Now()
	}
	return d.answer, d.answerOf
}

// queueState describes the service queue for a timeout's error.
func (d *deadlines) queueState() string {
	st, err := d.inspect()
	switch {
	case err != nil:
		return "the queue could not be inspected: " + detail(err)
	case !st.Exists:
		return "the queue no longer exists"
	}
	return fmt.Sprintf("the queue has %s, %s waiting", count(st.Consumers, "consumer"), count(st.Messages, "request"))
}

// count says n things: "no consumer", "1 consumer", "3 consumers".
func count(n int, thing string) string {
	switch n {
	case 0:
		return "no " + thing
	case 1:
		return "1 " + thing
	}
	return fmt.Sprintf("%d %ss", n, thing)
}

// timeoutFailure says why a call timed out, and what is known of whether
// its request was sent.
func (c *clientCodec) timeoutFailure(cl *call, queueState string) *callError {
	m := methodName(cl.method)
	switch cl.state {
	case held:
		return notSentFailure(ErrTimeout, "%s waited %v for a connection to the broker", m, c.timeout)
	case resend:
		return failure(ErrTimeout, "%s was sent on a connection lost before the broker confirmed it, then waited %v for a connection to send it again; it may have run",
			m, c.timeout)
	case publishing:
		return failure(ErrTimeout, "%s got no reply within %v: its request was still being published (%s)", m, c.timeout, queueState)
	}
	return failure(ErrTimeout, "%s got no reply from queue %q within %v (%s)", m, c.queue, c.timeout, queueState)
}

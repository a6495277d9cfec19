package amqprpc

import (
	"fmt"
	"time"
)

// deadlines fails calls past their call timeout. One goroutine, started
// with the codec and ended by Close, sleeps until the earliest deadline of
// the pending calls; one timer serves them all. When a call that went out
// times out, it asks the broker once about the service queue, so the error
// can say why (no consumer, requests waiting): the question is asked by
// this goroutine alone, so an outage never has many of them under way.
type deadlines struct {
	c      *clientCodec
	rearm  chan struct{} // capacity 1: a call came with an earlier deadline
	done   chan struct{} // closed by stop
	ended  chan struct{} // closed when the goroutine has ended
	at     time.Time     // when the goroutine wakes next; zero: idle; guarded by c.mu
	expiry []*call       // reused by the goroutine
}

// defaultInspectWait bounds the question a timeout asks the broker, and so
// how late it can make the timeouts that come due meanwhile.
const defaultInspectWait = 500 * time.Millisecond

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
	c.mu.Unlock()
	if len(d.expiry) == 0 {
		return
	}
	c.release(len(d.expiry))
	// The expired calls are out of the pending set, so nothing else answers
	// them while the broker is asked about the queue.
	why := ""
	for _, cl := range d.expiry {
		if !cl.held() {
			why = c.queueState()
			break
		}
	}
	for i, cl := range d.expiry {
		c.inbox.put(response{seq: cl.seq, method: cl.method, fail: c.timeoutFailure(cl, why)})
		d.expiry[i] = nil
	}
}

// queueState describes the service queue for a timeout's error.
func (c *clientCodec) queueState() string {
	st, err := c.t.InspectQueue(c.queue, c.inspectWait)
	switch {
	case err != nil:
		return "the queue could not be inspected: " + detail(err)
	case !st.Exists:
		return "the queue no longer exists"
	case st.Consumers == 0:
		return fmt.Sprintf("the queue has no consumer, %d requests waiting", st.Messages)
	case st.Consumers == 1:
		return fmt.Sprintf("the queue has 1 consumer, %d requests waiting", st.Messages)
	}
	return fmt.Sprintf("the queue has %d consumers, %d requests waiting", st.Consumers, st.Messages)
}

// timeoutFailure says why a call timed out.
func (c *clientCodec) timeoutFailure(cl *call, queueState string) *callError {
	if cl.held() {
		return failure(ErrTimeout, "%s waited %v for a connection to the broker", cl.method, c.timeout)
	}
	return failure(ErrTimeout, "%s got no reply from queue %q within %v (%s)", cl.method, c.queue, c.timeout, queueState)
}

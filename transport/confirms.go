package transport

import (
	"sync"
	"time"

	amqp "github.com/rabbitmq/amqp091-go"
)

// pendingConfirm is a message published with confirms on and what its
// confirm settles: a Client's request (by correlation id) or a Server's
// reply (the request to acknowledge).
type pendingConfirm struct {
	dc  *amqp.DeferredConfirmation
	id  string   // a Client's correlation id
	req *Request // a Server's request
}

// confirmQueue waits for the confirms of one session's publishes, in
// publishing order, on a goroutine of its own, and settles each. Confirms
// are tracked by amqp091-go's deferred confirmations, so no listener of
// amqp091-go's notifications exists that a slow publish could block, and a
// publish never waits for this goroutine: push only appends under a mutex.
type confirmQueue struct {
	sess   *session
	settle func(s *session, p pendingConfirm, ack bool)

	mu        sync.Mutex // guards pending, unsettled, idle and exited
	pending   []pendingConfirm
	unsettled int           // pushed and not yet settled
	idle      chan struct{} // closed when unsettled reaches 0, for settled
	exited    bool          // run has returned: push settles on its own
	wake      chan struct{} // capacity 1: pending grew
	done      chan struct{} // closed when the goroutine has ended
}

func newConfirmQueue(s *session, settle func(*session, pendingConfirm, bool)) *confirmQueue {
	q := &confirmQueue{sess: s, settle: settle, wake: make(chan struct{}, 1), done: make(chan struct{})}
	go q.run(s.ch.NotifyClose(make(chan *amqp.Error, 1)))
	return q
}

// push queues a published message's confirm.
func (q *confirmQueue) push(p pendingConfirm) {
	q.mu.Lock()
	if q.exited {
		q.mu.Unlock()
		if p.dc.Wait() { // resolved: the channel has closed
			q.settle(q.sess, p, true)
		}
		return
	}
	q.pending = append(q.pending, p)
	q.unsettled++
	q.mu.Unlock()
	select {
	case q.wake <- struct{}{}:
	default:
	}
}

// run settles confirms as they come, until the channel closes. When it
// closes, amqp091-go resolves every confirm still awaited as a nack; those
// are not refusals but losses, which the session's end reports, so only
// real confirms are settled.
func (q *confirmQueue) run(closed <-chan *amqp.Error) {
	defer close(q.done)
	var batch []pendingConfirm
	for {
		q.mu.Lock()
		batch, q.pending = q.pending, batch[:0]
		q.mu.Unlock()
		for i, p := range batch {
			if ack := p.dc.Wait(); ack || !q.sess.ch.IsClosed() {
				q.settle(q.sess, p, ack)
			}
			batch[i] = pendingConfirm{}
		}
		q.count(len(batch))
		if len(batch) > 0 {
			continue
		}
		select {
		case <-q.wake:
		case <-closed:
			q.mu.Lock()
			batch, q.pending = q.pending, nil
			q.exited = true
			q.mu.Unlock()
			for _, p := range batch {
				if p.dc.Wait() {
					q.settle(q.sess, p, true)
				}
			}
			q.count(len(batch))
			return
		}
	}
}

// count counts n confirms settled.
func (q *confirmQueue) count(n int) {
	q.mu.Lock()
	defer q.mu.Unlock()
	if q.unsettled -= n; q.unsettled == 0 && q.idle != nil {
		close(q.idle)
		q.idle = nil
	}
}

// settled waits until every confirm pushed so far is settled, for at most d.
func (q *confirmQueue) settled(d time.Duration) {
	q.mu.Lock()
	if q.unsettled == 0 {
		q.mu.Unlock()
		return
	}
	if q.idle == nil {
		q.idle = make(chan struct{})
	}
	idle := q.idle
	q.mu.Unlock()
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-idle:
	case <-t.C:
	}
}

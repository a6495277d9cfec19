package transport

import "sync"

// acks acknowledges a Server's requests in runs: once every delivery up to
// some tag is answered (or otherwise settled), one basic.ack with multiple
// set covers the run, where acking each would cost the broker a frame and
// this process a write apiece. Nothing is acknowledged before its reply is
// published. Answered requests held behind one still running are
// acknowledged one by one once they are half the prefetch, so a slow call
// never starves the consumer.
//
// Any goroutine may flush: after a batch of replies, after a rejection that
// ends a gap (so that answers held behind it do not wait for the next
// batch), before a reply sent alone.
type acks struct {
	mu      sync.Mutex      // guards next, settled and held
	next    uint64          // every tag below is settled
	settled map[uint64]bool // tags from next on: true, answered and not yet acked; false, settled otherwise
	held    int             // answered tags beyond next
	limit   int             // held answers that are acked one by one

	// flushing serializes flushes, from take to the last basic.ack it
	// returned, so that acknowledgements leave in the order take hands
	// them out: a multiple ack that overtook a higher one would name a
	// tag already acknowledged, and the broker would close the channel.
	// It is held across the writes, which amqp091-go serializes under the
	// channel's own lock anyway, so it makes no one wait who would not
	// wait for that lock; mu is never held across a write.
	flushing sync.Mutex
}

func newAcks(prefetch int) *acks {
	return &acks{next: 1, settled: make(map[uint64]bool), limit: max(1, prefetch/2)}
}

// answered records a request whose reply is published; settledElse, one
// nacked or rejected.
func (a *acks) answered(tag uint64)    { a.record(tag, true) }
func (a *acks) settledElse(tag uint64) { a.record(tag, false) }

func (a *acks) record(tag uint64, answered bool) {
	a.mu.Lock()
	a.settled[tag] = answered
	if answered {
		a.held++
	}
	a.mu.Unlock()
}

// take returns the tag that acks the settled run from the start with
// multiple set (0: none), and the answers behind a gap to ack one by one.
func (a *acks) take() (upTo uint64, single []uint64) {
	a.mu.Lock()
	defer a.mu.Unlock()
	for {
		answered, ok := a.settled[a.next]
		if !ok {
			break
		}
		if answered {
			upTo = a.next
			a.held--
		}
		delete(a.settled, a.next)
		a.next++
	}
	if a.held >= a.limit {
		for tag, answered := range a.settled {
			if answered {
				single = append(single, tag)
				a.settled[tag] = false
			}
		}
		a.held = 0
	}
	return upTo, single
}

// flushAcks sends the acknowledgements take says. Any goroutine may call
// it.
func (s *session) flushAcks() error {
	s.acks.flushing.Lock()
	defer s.acks.flushing.Unlock()
	upTo, single := s.acks.take()
	if upTo > 0 {
		if err := s.ch.Ack(upTo, true); err != nil {
			return err
		}
	}
	for _, tag := range single {
		if err := s.ch.Ack(tag, false); err != nil {
			return err
		}
	}
	return nil
}

// settleAnswered acknowledges the requests answered so far on the session
// and, with confirms on, waits up to endWait for the confirms of the
// replies published so far, which acknowledge their requests.
func (s *session) settleAnswered() error {
	if s.confirms != nil {
		s.confirms.settled(endWait)
		return nil
	}
	return s.flushAcks()
}

package transport

import "sync"

// acks acknowledges a Server's requests in runs: once every delivery up to
// some tag is answered (or otherwise settled), one basic.ack with multiple
// set covers the run, where acking each would cost the broker a frame and
// this process a write apiece. Nothing is acknowledged before its reply is
// published. Answered requests held behind one still running are
// acknowledged one by one once they are half the prefetch, so a slow call
// never starves the consumer.
type acks struct {
	mu      sync.Mutex      // guards next, settled and held
	next    uint64          // every tag below is settled
	settled map[uint64]bool // tags from next on: true, answered and not yet acked; false, settled otherwise
	held    int             // answered tags beyond next
	limit   int             // held answers that are acked one by one
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

// flush sends the acknowledgements take says.
func (s *session) flushAcks() error {
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

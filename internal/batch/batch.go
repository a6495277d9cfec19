// Package batch is the queue through which goroutines hand work to one
// goroutine that takes everything queued at once: the client codec's
// made-up responses and the server codec's outbox.
package batch

import "sync"

// Queue is a first-in first-out queue with any number of producers and one
// consumer, which takes all that is queued at once and hands back the slice
// it emptied for the producers to fill next. Two slices take turns, so the
// memory a Queue holds follows the most that was queued at one time,
// however long the consumer lags, and drops again once the backlog is gone.
// (A queue that reads from the front of a slice while producers append to
// its end grows for as long as the consumer never catches up.) The zero
// value is not ready: use [New].
type Queue[T any] struct {
	mu     sync.Mutex // guards items and closed
	items  []T
	closed bool
	wake   chan struct{} // capacity 1: a Put or Close since the last receive
}

// New returns an empty, open queue.
func New[T any]() *Queue[T] {
	return &Queue[T]{wake: make(chan struct{}, 1)}
}

// Put appends v and wakes the consumer. It reports false, queueing
// nothing, once the queue is closed.
func (q *Queue[T]) Put(v T) bool {
	q.mu.Lock()
	if q.closed {
		q.mu.Unlock()
		return false
	}
	q.items = append(q.items, v)
	q.mu.Unlock()
	q.signal()
	return true
}

// Take returns everything queued, oldest first, and whether the queue is
// closed. It never waits. spare is the slice of an earlier Take, done
// with: Take clears it and gives it to the producers to fill, unless it is
// much larger than what is queued now, so that a past burst does not stay
// in memory.
func (q *Queue[T]) Take(spare []T) (items []T, closed bool) {
	clear(spare)
	spare = spare[:0]
	q.mu.Lock()
	items, closed = q.items, q.closed
	if cap(spare) > 4*len(items)+64 {
		spare = nil
	}
	q.items = spare
	q.mu.Unlock()
	return items, closed
}

// Wake returns the channel the consumer waits on when Take returned
// nothing: it receives after a Put or a Close.
func (q *Queue[T]) Wake() <-chan struct{} { return q.wake }

// Close makes later Puts fail and wakes the consumer, which still takes
// what was queued before. It is idempotent.
func (q *Queue[T]) Close() {
	q.mu.Lock()
	q.closed = true
	q.mu.Unlock()
	q.signal()
}

func (q *Queue[T]) signal() {
	select {
	case q.wake <- struct{}{}:
	default:
	}
}

package amqprpc

import (
	"context"
	"errors"
	"time"
)

// Slots of WithMaxInFlight: c.slots holds one token per call in flight.
// net/rpc holds its request lock across WriteRequest, so WriteRequest never
// waits for a slot: a call of client.Go or client.Call that finds none
// fails at once, and one of Call hands the wait back to Call, which waits
// outside net/rpc's lock, within its context and the call timeout, and
// then calls again holding the slot.

// errNoSlot is WriteRequest's error for a call of Call that found every
// slot taken; Call never returns it.
var errNoSlot = errors.New("amqprpc: no slot free")

// tryAcquire takes a slot if one is free; without WithMaxInFlight there
// always is.
func (c *clientCodec) tryAcquire() bool {
	if c.slots == nil {
		return true
	}
	select {
	case c.slots <- struct{}{}:
		return true
	default:
		return false
	}
}

// waitForSlot takes a slot for a call of Call begun at begun, waiting until
// one frees up, ctx ends, the call timeout passes or the codec closes.
func (c *clientCodec) waitForSlot(ctx context.Context, method string, begun time.Time) error {
	var timeout <-chan time.Time
	if c.timeout > 0 {
		t := time.NewTimer(time.Until(begun.Add(c.timeout)))
		defer t.Stop()
		timeout = t.C
	}
	select {
	case c.slots <- struct{}{}:
		return nil
	case <-timeout:
		return notSentFailure(ErrTooManyCalls, "%s: %d calls in flight for all of %v", methodName(method), cap(c.slots), c.timeout)
	case <-c.deadline.done:
		return notSent(ErrClosed)
	case <-ctx.Done():
		return notSent(contextError(method, ctx.Err()))
	}
}

// release frees the slots of n calls that ended.
func (c *clientCodec) release(n int) {
	if c.slots == nil {
		return
	}
	for range n {
		select {
		case <-c.slots:
		default:
		}
	}
}

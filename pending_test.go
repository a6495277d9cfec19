package amqprpc

import (
	"testing"
	"time"
)

func TestPendingCallsDeadlineOrder(t *testing.T) {
	base := time.Now()
	at := func(ms int) time.Time { return base.Add(time.Duration(ms) * time.Millisecond) }
	var p pendingCalls
	// Out-of-order deadlines are kept in order too.
	for seq, ms := range []int{10, 20, 30, 25, 5} {
		p.add(&call{seq: uint64(seq), deadline: at(ms)})
	}
	p.add(&call{seq: 99}) // no deadline
	if got := p.len(); got != 6 {
		t.Fatalf("len() = %d; want 6", got)
	}
	if next, ok := p.nextDeadline(); !ok || !next.Equal(at(5)) {
		t.Fatalf("nextDeadline() = %v, %v; want +5ms", next.Sub(base), ok)
	}
	if c := p.remove(1); c == nil || c.seq != 1 { // +20ms, from the middle
		t.Fatalf("remove(1) = %v; want call 1", c)
	}
	if c := p.remove(1); c != nil {
		t.Fatalf("remove(1) twice = %v; want nil", c)
	}
	var order []uint64
	for _, c := range p.popExpired(at(30), nil) {
		order = append(order, c.seq)
	}
	want := []uint64{4, 0, 3, 2} // +5, +10, +25, +30
	if len(order) != len(want) {
		t.Fatalf("popExpired(+30ms) = %v; want %v", order, want)
	}
	for i := range want {
		if order[i] != want[i] {
			t.Fatalf("popExpired(+30ms) = %v; want %v", order, want)
		}
	}
	if _, ok := p.nextDeadline(); ok {
		t.Fatalf("nextDeadline() after all expired = true; want false")
	}
	if p.get(99) == nil || p.len() != 1 {
		t.Fatalf("the call without a deadline is gone; want it kept")
	}
}

func TestPendingCallsPopExpiredStopsAtFuture(t *testing.T) {
	now := time.Now()
	var p pendingCalls
	p.add(&call{seq: 1, deadline: now.Add(-time.Millisecond)})
	p.add(&call{seq: 2, deadline: now.Add(time.Hour)})
	got := p.popExpired(now, nil)
	if len(got) != 1 || got[0].seq != 1 || p.get(2) == nil {
		t.Fatalf("popExpired(now) = %v; want only call 1", got)
	}
}

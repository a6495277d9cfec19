package batch

import (
	"sync"
	"testing"
)

// TestMemoryFollowsTheBacklog: a consumer that never quite catches up, with
// three items queued at any time, for a hundred thousand items. A queue
// that reads from the front of one slice while producers append to its
// end held 111,820 slots after this (the client codec's inbox before this
// type); this one holds what three items need.
func TestMemoryFollowsTheBacklog(t *testing.T) {
	q := New[int]()
	for i := range 3 {
		q.Put(i)
	}
	var batch []int
	at := 0
	next := 0 // the next item the consumer expects
	for i := 3; i < 100_003; i++ {
		q.Put(i)
		if at == len(batch) {
			batch, _ = q.Take(batch)
			at = 0
		}
		if batch[at] != next {
			t.Fatalf("took %d; want %d: the queue must keep order", batch[at], next)
		}
		at++
		next++
	}
	q.mu.Lock()
	held := cap(q.items) + cap(batch)
	q.mu.Unlock()
	if held > 2*64+16 {
		t.Errorf("the queue and its consumer hold %d slots for a backlog of 3; want a few", held)
	}
}

// TestABurstIsLetGo: after a burst, a small backlog does not keep the
// burst's slices alive.
func TestABurstIsLetGo(t *testing.T) {
	q := New[int]()
	for i := range 100_000 {
		q.Put(i)
	}
	batch, _ := q.Take(nil)
	for range 4 {
		q.Put(1)
		batch, _ = q.Take(batch)
	}
	q.mu.Lock()
	held := cap(q.items) + cap(batch)
	q.mu.Unlock()
	if held > 2*64+16 {
		t.Errorf("after a burst of 100000 and a backlog of 1, the queue holds %d slots", held)
	}
}

func TestCloseRefusesPutsButKeepsWhatIsQueued(t *testing.T) {
	q := New[string]()
	q.Put("a")
	q.Close()
	if q.Put("b") {
		t.Error("Put after Close = true; want false")
	}
	<-q.Wake()
	items, closed := q.Take(nil)
	if len(items) != 1 || items[0] != "a" || !closed {
		t.Errorf("Take after Close = %q, %v; want [a], true", items, closed)
	}
}

// TestNoWakeIsLost: every Put is followed by a wake the consumer sees, so
// waiting on Wake when Take returned nothing never misses an item.
func TestNoWakeIsLost(t *testing.T) {
	q := New[int]()
	const producers, each = 4, 10_000
	var wg sync.WaitGroup
	for range producers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range each {
				q.Put(i)
			}
		}()
	}
	go func() {
		wg.Wait()
		q.Close()
	}()
	n := 0
	var batch []int
	for {
		var closed bool
		batch, closed = q.Take(batch)
		n += len(batch)
		if closed && len(batch) == 0 {
			break
		}
		if len(batch) == 0 {
			<-q.Wake()
		}
	}
	if n != producers*each {
		t.Errorf("took %d items; want %d", n, producers*each)
	}
}

package amqprpc

import (
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

type DupArgs struct {
	N int
	Delivery
}

type Dup struct {
	mu   sync.Mutex
	seen map[string]int
	runs atomic.Int64
}

func (d *Dup) Do(a *DupArgs, r *int) error {
	d.mu.Lock()
	d.seen[a.MessageID]++
	d.mu.Unlock()
	d.runs.Add(1)
	time.Sleep(3 * time.Millisecond)
	*r = a.N
	return nil
}

// A graceful stop of a server with confirms must not leave answered
// requests unacknowledged: here they come back and run a second time.
func TestGracefulStopWithConfirmsRunsEachRequestOnce(t *testing.T) {
	for _, tc := range []struct {
		name string
		opts []ServerOption
	}{{"no confirms", nil}, {"confirms", []ServerOption{WithConfirms()}}} {
		t.Run(tc.name, func(t *testing.T) {
			queue := testQueue(t)
			svc := &Dup{seen: map[string]int{}}
			stopA := startServer(t, svc, queue, tc.opts...)
			client := dial(t, queue, WithCallTimeout(20*time.Second))
			var wg sync.WaitGroup
			var failed atomic.Int64
			for g := range 8 {
				wg.Add(1)
				go func() {
					defer wg.Done()
					for i := range 200 {
						var r int
						if err := client.Call("Arith.Do", &DupArgs{N: g*1000 + i}, &r); err != nil {
							failed.Add(1)
						}
					}
				}()
			}
			time.Sleep(300 * time.Millisecond)
			stopA()
			startServer(t, svc, queue, tc.opts...)
			wg.Wait()
			svc.mu.Lock()
			twice := 0
			for _, n := range svc.seen {
				if n > 1 {
					twice++
				}
			}
			svc.mu.Unlock()
			t.Logf("%s: %d runs, %d distinct requests, %d ran twice, %d calls failed", tc.name, svc.runs.Load(), len(svc.seen), twice, failed.Load())
			if twice > 0 {
				t.Errorf("%d requests ran twice across a graceful stop", twice)
			}
		})
	}
}

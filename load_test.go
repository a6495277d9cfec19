package amqprpc

// Calls under load: runLoad, whose counts (brokertest.Stats) every fault
// test reports (the README's reliability table is built from them), and
// the soak.

import (
	"net/rpc"
	"os"
	"runtime"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/amqprpc/amqprpc/codec"
	"github.com/amqprpc/amqprpc/internal/brokertest"
)

// runLoad calls Arith.Work from n goroutines until stop closes, each call
// bounded by callTimeout plus a grace period. It returns once every
// goroutine has finished.
func runLoad(client *rpc.Client, n int, callTimeout time.Duration, work int, stop <-chan struct{}) *brokertest.Stats {
	st := new(brokertest.Stats)
	var wg sync.WaitGroup
	for g := 0; g < n; g++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := 0; ; i++ {
				select {
				case <-stop:
					return
				default:
				}
				want := g*1_000_000 + i
				st.Issued.Add(1)
				c := client.Go("Arith.Work", &Args{work, want}, new(int), make(chan *rpc.Call, 1))
				select {
				case <-c.Done:
				case <-time.After(callTimeout + 5*time.Second):
					st.Hung.Add(1)
					return // this caller is stuck; the others go on
				}
				switch {
				case c.Error != nil:
					st.Failed.Add(1)
					st.NoteError(c.Error)
					if c.Error == rpc.ErrShutdown {
						return
					}
				case *c.Reply.(*int) != want:
					st.Lost.Add(1)
				default:
					st.Answered.Add(1)
				}
			}
		}()
	}
	<-stop
	wg.Wait()
	return st
}

// Work sleeps A milliseconds, standing for real work, and returns B.
func (t *Arith) Work(args *Args, reply *int) error {
	t.calls.Add(1)
	if args.A > 0 {
		time.Sleep(time.Duration(args.A) * time.Millisecond)
	}
	*reply = args.B
	return nil
}

// TestSoak runs 64 callers for AMQPRPC_SOAK (a duration, default 5s; `make
// soak` uses 60s) and checks that goroutines and heap are stable.
func TestSoak(t *testing.T) {
	d := 5 * time.Second
	if v := os.Getenv("AMQPRPC_SOAK"); v != "" {
		var err error
		if d, err = time.ParseDuration(v); err != nil {
			t.Fatalf("AMQPRPC_SOAK=%q: %v", v, err)
		}
	}
	queue := testQueue(t)
	startServer(t, newArith("s1"), queue)
	client := dial(t, queue, WithCallTimeout(30*time.Second))
	stop := make(chan struct{})
	done := make(chan *brokertest.Stats)
	go func() { done <- runLoad(client, 64, 30*time.Second, 0, stop) }()

	time.Sleep(d / 4) // warm up under load
	m1 := measure()
	time.Sleep(d * 3 / 4)
	m2 := measure()
	close(stop)
	st := <-done
	st.Report(t, "soak, 64 callers, "+d.String())
	st.Check(t, false)
	t.Logf("goroutines %d -> %d, heap %d KiB -> %d KiB, %.0f calls/s", m1.goroutines, m2.goroutines, m1.heap>>10, m2.heap>>10, float64(st.Answered.Load())/d.Seconds())
	if m2.goroutines > m1.goroutines+8 {
		t.Errorf("goroutines grew from %d to %d under steady load", m1.goroutines, m2.goroutines)
	}
	if m2.heap > 2*m1.heap+16<<20 {
		t.Errorf("heap grew from %d KiB to %d KiB under steady load", m1.heap>>10, m2.heap>>10)
	}
}

// measured is the heap in use after garbage collection and the goroutine
// count.
type measured struct {
	heap       uint64
	goroutines int
}

// measure collects garbage and returns the heap and goroutines of this
// process. The soak and the flood compare two of them.
func measure() measured {
	runtime.GC()
	runtime.GC() // a second cycle frees what the first left to finalizers
	var ms runtime.MemStats
	runtime.ReadMemStats(&ms)
	// Under load the goroutines serving calls in flight come and go: the
	// fewest seen over 100 ms is the count a leak would raise.
	n := runtime.NumGoroutine()
	for range 10 {
		time.Sleep(10 * time.Millisecond) // sampling, not waiting
		n = min(n, runtime.NumGoroutine())
	}
	return measured{heap: ms.HeapAlloc, goroutines: n}
}

// bigReplies answers every call with a reply of the size asked for.
type bigReplies struct{}

func (bigReplies) Reply(n *int, r *[]byte) error {
	*r = make([]byte, *n)
	return nil
}

// TestSaturationMemory measures the heap while 512 callers saturate one
// client with 16 KiB replies, for AMQPRPC_SATURATION (it is skipped
// without): net/rpc's reading goroutine is then the bottleneck, and
// whatever the client queues for it shows as heap that grows with the
// calls, and stays once they are done. The figures are in the notes of
// issue 18.
func TestSaturationMemory(t *testing.T) {
	v := os.Getenv("AMQPRPC_SATURATION")
	if v == "" {
		t.Skip("a measurement: set AMQPRPC_SATURATION=10s to run it")
	}
	d, err := time.ParseDuration(v)
	if err != nil {
		t.Fatalf("AMQPRPC_SATURATION=%q: %v", v, err)
	}
	queue := testQueue(t)
	url := brokertest.URL(t)
	srv := serveArith(t, bigReplies{}, url, queue)
	brokertest.WaitForConsumers(t, url, queue, 1, srv)
	// JSON: decoding a 16 KiB reply takes long enough that net/rpc's
	// reading goroutine is the bottleneck even on a busy machine.
	client := dial(t, queue, WithEncoding(codec.JSON))
	before := measure()
	var calls atomic.Int64
	stop := make(chan struct{})
	var wg sync.WaitGroup
	for range 512 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			n := 16 << 10
			for {
				select {
				case <-stop:
					return
				default:
				}
				var r []byte
				if err := client.Call("Arith.Reply", &n, &r); err != nil {
					t.Errorf("Call: %v", err)
					return
				}
				calls.Add(1)
			}
		}()
	}
	start := time.Now()
	for time.Since(start) < d {
		time.Sleep(time.Second) // sampling
		m := measure()
		t.Logf("SATURATION | %5.1fs | %7d calls | heap %6d KiB | goroutines %d", time.Since(start).Seconds(), calls.Load(), m.heap>>10, m.goroutines)
	}
	close(stop)
	wg.Wait()
	after := measure()
	n := calls.Load()
	t.Logf("SATURATION | done | %d calls in %v | heap %d KiB before, %d KiB after: %.1f bytes kept per call",
		n, time.Since(start).Round(time.Second), before.heap>>10, after.heap>>10, (float64(after.heap)-float64(before.heap))/float64(n))
}

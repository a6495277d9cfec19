package redisstore_test

// What a reply store costs a call, side by side in one run: no store, the
// in-memory store, the Redis store, and the Redis store with its claims
// skipped (what looking the store up only for redelivered requests would
// cost a run without faults: the reply is still stored). Each reports the
// store's round trips per call. On a shared machine compare ratios only.
//
//	cd redisstore && go test -run '^$' -bench BenchmarkServe -count 3 .

import (
	"cmp"
	"context"
	"crypto/rand"
	"fmt"
	"net/rpc"
	"os"
	"runtime"
	"sync/atomic"
	"testing"
	"time"

	amqp "github.com/rabbitmq/amqp091-go"

	"github.com/amqprpc/amqprpc"
	"github.com/amqprpc/amqprpc/redisstore"
)

// Pair is the argument and reply of BenchService.Echo.
type Pair struct{ A, B int }

// BenchService answers its argument.
type BenchService struct{}

// Echo returns its argument.
func (BenchService) Echo(args *Pair, reply *Pair) error { *reply = *args; return nil }

// countingStore counts the calls that reach its store; with noClaims, its
// Claim answers at once that the caller holds the claim.
type countingStore struct {
	amqprpc.ReplyStore
	noClaims bool
	calls    atomic.Int64
}

func (s *countingStore) Claim(ctx context.Context, key, owner string, lease time.Duration) (amqprpc.Claim, error) {
	if s.noClaims {
		return amqprpc.Claim{}, nil
	}
	s.calls.Add(1)
	return s.ReplyStore.Claim(ctx, key, owner, lease)
}

func (s *countingStore) Put(ctx context.Context, key string, r amqprpc.StoredReply, ttl time.Duration) error {
	s.calls.Add(1)
	return s.ReplyStore.Put(ctx, key, r, ttl)
}

func BenchmarkServe(b *testing.B) {
	url := cmp.Or(os.Getenv("AMQP_URL"), "amqp://guest:guest@127.0.0.1:5672/")
	rdb := client(b)
	for _, tc := range []struct {
		name  string
		store func() *countingStore
	}{
		{"no-store", func() *countingStore { return nil }},
		{"memory", func() *countingStore { return &countingStore{ReplyStore: amqprpc.NewMemoryStore(0)} }},
		{"redis", func() *countingStore { return &countingStore{ReplyStore: redisstore.New(rdb)} }},
		{"redis-no-claims", func() *countingStore { return &countingStore{ReplyStore: redisstore.New(rdb), noClaims: true} }},
	} {
		b.Run(tc.name, func(b *testing.B) {
			store := tc.store()
			c := serveBench(b, url, store)
			for _, callers := range []int{1, 16, 128} {
				b.Run(fmt.Sprintf("par%d", callers), func(b *testing.B) {
					var before int64
					if store != nil {
						before = store.calls.Load()
					}
					benchCalls(b, c, callers)
					if store != nil {
						b.ReportMetric(float64(store.calls.Load()-before)/float64(b.N), "store-calls/op")
					}
				})
			}
		})
	}
}

// serveBench serves BenchService on a queue of its own, with store unless
// nil, and returns a client of it; both end with the benchmark.
func serveBench(b *testing.B, url string, store *countingStore) *rpc.Client {
	b.Helper()
	queue := "amqprpc-bench-store-" + rand.Text()[:8]
	srv := rpc.NewServer()
	if err := srv.Register(BenchService{}); err != nil {
		b.Fatal(err)
	}
	opts := []amqprpc.ServerOption{amqprpc.WithQueueExpiry(time.Minute)}
	if store != nil {
		opts = append(opts, amqprpc.WithReplyStore(store, time.Minute))
	}
	ready := make(chan struct{})
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() {
		done <- amqprpc.Serve(ctx, srv, url, queue, append(opts, amqprpc.WithReady(func() { close(ready) }))...)
	}()
	b.Cleanup(func() {
		cancel()
		<-done
		deleteQueue(url, queue)
	})
	select {
	case <-ready:
	case err := <-done:
		b.Fatalf("Serve = %v", err)
	}
	c, err := amqprpc.Dial(url, queue)
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { c.Close() })
	return c
}

// benchCalls makes b.N calls through c: from one goroutine, or from about
// callers at once.
func benchCalls(b *testing.B, c *rpc.Client, callers int) {
	b.ReportAllocs()
	if callers == 1 {
		var reply Pair
		for i := 0; b.Loop(); i++ {
			if err := c.Call("BenchService.Echo", &Pair{i, -i}, &reply); err != nil || reply.A != i {
				b.Fatalf("Call = %+v, %v; want {%d %d}", reply, err, i, -i)
			}
		}
		return
	}
	procs := runtime.GOMAXPROCS(0)
	b.SetParallelism((callers + procs - 1) / procs)
	var n atomic.Int64
	b.RunParallel(func(pb *testing.PB) {
		var reply Pair
		for pb.Next() {
			i := int(n.Add(1))
			if err := c.Call("BenchService.Echo", &Pair{i, -i}, &reply); err != nil || reply.A != i {
				b.Errorf("Call = %+v, %v; want {%d %d}", reply, err, i, -i)
				return
			}
		}
	})
}

func deleteQueue(url, queue string) {
	conn, err := amqp.Dial(url)
	if err != nil {
		return
	}
	defer conn.Close()
	if ch, err := conn.Channel(); err == nil {
		_, _ = ch.QueueDelete(queue, false, false, false)
	}
}

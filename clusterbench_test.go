package amqprpc_test

import (
	"fmt"
	"os"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/amqprpc/amqprpc/internal/faultrig"
	"github.com/amqprpc/amqprpc/internal/rabbitnodes"
)

// testClusterThroughput measures what a quorum service queue costs against
// a classic one on the cluster, in both reply modes: 32 callers on three
// clients (one per node), two servers (nodes 1 and 2) that do no work, the
// queue declared from node 1. It runs only when AMQPRPC_CLUSTER_BENCH names
// how long to measure each case (make cluster-bench: 10s, without the race
// detector); its THROUGHPUT lines are docs/CLUSTER.md's table.
func testClusterThroughput(t *testing.T, c *rabbitnodes.Cluster) {
	v := os.Getenv("AMQPRPC_CLUSTER_BENCH")
	if v == "" {
		t.Skip("set AMQPRPC_CLUSTER_BENCH to a duration (make cluster-bench) to measure")
	}
	d, err := time.ParseDuration(v)
	if err != nil {
		t.Fatalf("AMQPRPC_CLUSTER_BENCH=%q: %v", v, err)
	}
	for _, tc := range []struct {
		queue  string
		direct bool
	}{
		{"classic", false},
		{"quorum", false},
		{"classic", true},
		{"quorum", true},
	} {
		mode := "private reply queues"
		if tc.direct {
			mode = "direct reply-to"
		}
		t.Run(tc.queue+"-"+map[bool]string{false: "private", true: "direct"}[tc.direct], func(t *testing.T) {
			r := faultrig.NewRig(t, c, faultrig.Spec{Bench: true, ClassicQueue: tc.queue == "classic", DirectReplyTo: tc.direct},
				"throughput-"+tc.queue)
			calls, lat := clusterMeasure(t, r, faultrig.Callers, d)
			slices.Sort(lat)
			pct := func(p float64) time.Duration { return lat[int(p*float64(len(lat)-1))].Round(10 * time.Microsecond) }
			t.Logf("THROUGHPUT | %s queue | %s | %d callers | %.0f calls/s | p50 %v | p99 %v",
				tc.queue, mode, faultrig.Callers, float64(calls)/d.Seconds(), pct(0.5), pct(0.99))
		})
	}
}

// clusterMeasure runs callers on r's clients for d and returns how many
// calls succeeded and their latencies; any failure fails the test.
func clusterMeasure(t *testing.T, r *faultrig.Rig, callers int, d time.Duration) (int, []time.Duration) {
	t.Helper()
	var mu sync.Mutex // guards lat and errs
	var lat []time.Duration
	var errs []error
	var wg sync.WaitGroup
	end := time.Now().Add(d)
	for g := range callers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			client := r.Clients()[g%len(r.Clients())]
			var mine []time.Duration
			for i := 0; time.Now().Before(end); i++ {
				var got int
				begin := time.Now()
				if err := client.Call("Cluster.Work", &faultrig.Args{Caller: g, Seq: i}, &got); err != nil || got != faultrig.Key(g, i) {
					mu.Lock()
					errs = append(errs, fmt.Errorf("call %d: %d, %v", faultrig.Key(g, i), got, err))
					mu.Unlock()
					return
				}
				mine = append(mine, time.Since(begin))
			}
			mu.Lock()
			lat = append(lat, mine...)
			mu.Unlock()
		}()
	}
	wg.Wait()
	if len(errs) > 0 {
		t.Fatalf("%d callers failed; first: %v", len(errs), errs[0])
	}
	if len(lat) == 0 {
		t.Fatal("no call succeeded")
	}
	return len(lat), lat
}

package faultrig

import (
	"errors"
	"net/rpc"
	"sync/atomic"
	"testing"
	"time"

	"github.com/google/uuid"

	"github.com/amqprpc/amqprpc"
	"github.com/amqprpc/amqprpc/internal/rabbitnodes"
)

// Bounds of the single node's scenarios.
const (
	// nodeSteady is how long the load runs before a fault and after the
	// recovery.
	nodeSteady = 500 * time.Millisecond
	// heartbeat and the reconnect delays make the client and server of
	// the single node's scenarios notice a loss, and come back, quickly.
	heartbeat                  = time.Second
	reconnectMin, reconnectMax = 50 * time.Millisecond, 500 * time.Millisecond
)

// BrokerFaults runs the faults of a single broker node, of a private node
// of the test's own, each a subtest of t, under the load of 32 callers on
// one client and one server (prefetch 16, a durable classic queue), both
// with a 1 s heartbeat and short reconnect delays: the broker's stop_app
// and start_app, its kill -9 and restart, the broker closing the client's
// connection and then the server's, and a memory alarm that blocks
// publishing. Every scenario uses the same client and server: each must
// come back by itself for the next one to pass. With store, the server
// keeps its replies in it, and suffix ends every title.
func BrokerFaults(t *testing.T, store amqprpc.ReplyStore, suffix string) {
	c := rabbitnodes.StartCluster(t, 1)
	nd := c.Nodes[0]
	r := newNodeRig(t, c, store)
	for i, sc := range []struct {
		name, title string
		fault       func(t *testing.T)
	}{
		{"stop_app", "broker stop_app/start_app, 32 callers", func(t *testing.T) {
			nd.Ctl(t, "stop_app")
			nd.Ctl(t, "start_app")
		}},
		{"kill-9", "broker kill -9 and restart, 32 callers", func(t *testing.T) {
			nd.Kill(t)
			nd.Restart(t)
		}},
		{"close_connection-client", "client connection closed by the broker, 32 callers", func(t *testing.T) {
			c.CloseConnections(t, r.queue+"-client-1")
		}},
		{"close_connection-server", "server connection closed by the broker, 32 callers", func(t *testing.T) {
			c.CloseConnections(t, r.queue+"-server-1")
		}},
	} {
		t.Run(sc.name, func(t *testing.T) {
			r.Title = sc.title + suffix
			r.during(t, (i+1)*Callers, func() { sc.fault(t) })
		})
	}
	t.Run("blocked", func(t *testing.T) {
		r.blocked(t, nd)
	})
	t.Run("after-all", func(t *testing.T) {
		r.callWorks(t, 10*time.Second, "the same client and server after every fault")
	})
}

// newNodeRig serves a new queue on the single node of c and connects a
// client to it, both quick to notice a loss.
func newNodeRig(t *testing.T, c *rabbitnodes.Cluster, store amqprpc.ReplyStore) *Rig {
	t.Helper()
	r := &Rig{
		Spec:  Spec{ClassicQueue: true, Store: store, quick: true},
		c:     c,
		queue: "faults-" + uuid.NewString()[:8],
		runs:  &callRuns{runs: map[int][]callRun{}, byMessage: map[string]int{}},
	}
	if store != nil {
		r.store = &countingStore{ReplyStore: store, answered: map[string]bool{}}
	}
	t.Cleanup(func() { r.deleteQueue(t) })
	nd := c.Nodes[0]
	r.serve(t, nd, r.queue+"-server-1")
	name := r.queue + "-client-1"
	client, err := amqprpc.Dial(nd.URL(), r.queue, amqprpc.WithCallTimeout(CallTimeout), amqprpc.WithConnectionName(name),
		amqprpc.WithHeartbeat(heartbeat), amqprpc.WithReconnectBackoff(reconnectMin, reconnectMax), amqprpc.WithLogger(logger(name)))
	if err != nil {
		t.Fatalf("Dial(%v) = %v", nd, err)
	}
	t.Cleanup(func() { client.Close() })
	r.clients = []*rpc.Client{client}
	r.callWorks(t, 10*time.Second, "first call")
	return r
}

// during runs the load, with callers numbered from base, while fault runs,
// until a call works again and for a while longer; it reports the calls
// and checks them as a cluster scenario does.
func (r *Rig) during(t *testing.T, base int, fault func()) {
	t.Helper()
	r.load = startLoad(r.clients, Callers, base)
	stopped := false
	stop := func() {
		if !stopped {
			stopped = true
			r.load.stop()
		}
	}
	t.Cleanup(stop) // should the fault fail the test
	wait(t, recovery, "first answers", func() bool { return r.load.stats.Answered.Load() > 0 })
	time.Sleep(nodeSteady) // steady load before the fault
	begin := time.Now()
	fault()
	r.callWorks(t, recovery, r.Title+": recovery")
	over := time.Now()
	t.Logf("fault and recovery took %v", over.Sub(begin).Round(time.Millisecond))
	time.Sleep(nodeSteady) // steady load after recovery
	stop()
	r.load.stats.Report(t, r.Title)
	r.load.stats.Check(t, true)
	r.checkCalls(t, begin, over)
}

// checks numbers the calls callWorks makes, apart from every load's.
var checks atomic.Int64

// callWorks waits until a call through the rig's first client succeeds,
// or fails the test.
func (r *Rig) callWorks(t *testing.T, within time.Duration, what string) {
	t.Helper()
	deadline := time.Now().Add(within)
	var err error
	for time.Now().Before(deadline) {
		seq := int(checks.Add(1))
		var got int
		if err = r.clients[0].Call("Cluster.Work", &Args{Caller: 999, Seq: seq}, &got); err == nil && got == Key(999, seq) {
			return
		}
		time.Sleep(50 * time.Millisecond) // polling for recovery
	}
	t.Fatalf("%s: no successful call within %v; last error %v", what, within, err)
}

// blocked raises a memory alarm on nd: the broker blocks publishing
// connections, and calls must fail clearly within their timeout, never
// hang; once the alarm clears, calls work again.
func (r *Rig) blocked(t *testing.T, nd *rabbitnodes.Node) {
	nd.Ctl(t, "set_vm_memory_high_watermark", "0.0000001")
	cleared := false
	clear := func() {
		if !cleared {
			nd.Ctl(t, "set_vm_memory_high_watermark", "0.4")
			cleared = true
		}
	}
	t.Cleanup(clear)
	var blocked, other int
	deadline := time.Now().Add(15 * time.Second)
	for seq := 0; blocked == 0 && time.Now().Before(deadline); seq++ {
		var got int
		start := time.Now()
		err := r.clients[0].Call("Cluster.Work", &Args{Caller: 998, Seq: seq}, &got)
		if d := time.Since(start); d > CallTimeout+5*time.Second {
			t.Fatalf("a call on a blocked connection took %v; want at most about %v", d, CallTimeout)
		}
		switch {
		case errors.Is(amqprpc.Cause(err), amqprpc.ErrBlocked):
			blocked++
		case err != nil:
			other++
		}
	}
	if blocked == 0 {
		t.Fatalf("no call failed with ErrBlocked within 15s of the alarm (%d other failures)", other)
	}
	clear()
	r.callWorks(t, recovery, "after the alarm cleared")
	t.Logf("blocked: %d calls failed with ErrBlocked, %d otherwise, none hung", blocked, other)
}

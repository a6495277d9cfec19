package amqprpc

// Fault tests on a private three-node RabbitMQ cluster (clusternode_test.go),
// which TestCluster starts once for all its scenarios (about 3 minutes in
// all on two cores): 32 callers on three clients, one connected to each
// node first; two servers on nodes 1 and 2; a quorum service queue whose
// leader is on node 1; every client and server given all three URLs. Each
// scenario kills or restarts nodes under that load and counts what became
// of every call; the RELIABILITY and REDELIVERY lines it logs are the
// README's cluster table (scripts/reliability-table.sh).
//
//	CI=1 go test -race -count=1 -run TestCluster -v .
//	CI=1 go test -race -count=1 -run 'TestCluster/leader-killed' -v .
//
// AMQPRPC_CLUSTER_LOG=1 logs the clients' and servers' connection losses
// and reconnects to standard error.

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/rpc"
	"os"
	"slices"
	"sort"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/google/uuid"
	amqp "github.com/rabbitmq/amqp091-go"
)

// Bounds of the cluster scenarios.
const (
	clusterCallers     = 32
	clusterCallTimeout = 5 * time.Second
	// clusterWork is how long each call works on the server, so that servers
	// hold calls in flight when their node dies.
	clusterWork = 2 * time.Millisecond
	// clusterRecovery bounds how long the callers may take to get answers
	// again after a fault, and a node to rejoin after a restart.
	clusterRecovery = 30 * time.Second
	// clusterSteady is how long the load runs before the fault and after
	// the cluster is whole again.
	clusterSteady = time.Second
)

// TestCluster runs the cluster scenarios: kill -9 of the node holding the
// queue's leader, of a node with only a client, of a node with a server;
// a rolling restart of the three nodes with clients in both reply modes;
// and what a redelivered request carries.
func TestCluster(t *testing.T) {
	c := startCluster(t, 3)
	n1, n2, n3 := c.nodes[0], c.nodes[1], c.nodes[2]

	t.Run("leader-killed", func(t *testing.T) {
		sc := newClusterScenario(t, c, clusterPrivateQueues("cluster: kill -9 of the node holding the quorum queue's leader (and a server and a client), 32 callers"))
		sc.run(t, func() {
			r := sc.rigs[0]
			leader := c.Leader(t, r.queue)
			if leader != n1 {
				t.Fatalf("leader of %q on %v; want node 1, where it was declared", r.queue, leader)
			}
			sc.kill(t, leader)
			var elected *clusterNode
			clusterWait(t, clusterRecovery, "a new leader", func() bool {
				elected = c.Leader(t, r.queue)
				return elected != nil && elected != leader
			})
			t.Logf("new leader on %v", elected)
			sc.restart(t, leader)
		})
	})
	t.Run("client-node-killed", func(t *testing.T) {
		sc := newClusterScenario(t, c, clusterPrivateQueues("cluster: kill -9 of the node one client is connected to, 32 callers"))
		sc.run(t, func() {
			sc.kill(t, n3)
			sc.restart(t, n3)
		})
	})
	t.Run("server-node-killed", func(t *testing.T) {
		sc := newClusterScenario(t, c, clusterPrivateQueues("cluster: kill -9 of the node one server is connected to (and a client), 32 callers"))
		sc.run(t, func() {
			sc.kill(t, n2)
			sc.restart(t, n2)
		})
	})
	// Both reply modes under one rolling restart, each with its own queue,
	// servers, clients and 32 callers: a restart takes 10 to 20 s here.
	t.Run("rolling-restart", func(t *testing.T) {
		sc := newClusterScenario(t, c,
			clusterPrivateQueues("cluster: rolling restart of the 3 nodes, private reply queues, 32 callers (with the next row at once)"),
			clusterRigSpec{title: "cluster: rolling restart of the 3 nodes, direct reply-to, 32 callers (with the row above at once)", directReplyTo: true})
		sc.run(t, func() {
			for _, nd := range c.nodes {
				sc.restart(t, nd)
			}
		})
	})
	t.Run("delivery-count", func(t *testing.T) {
		testClusterDeliveryCount(t, c)
	})
	t.Run("permissions", func(t *testing.T) {
		testClusterPermissions(t, c)
	})
	t.Run("throughput", func(t *testing.T) {
		testClusterThroughput(t, c)
	})
}

// ClusterArgs is the argument of clusterService.Work: which caller made the
// call, and its number. The server fills in the embedded Delivery.
type ClusterArgs struct {
	Caller, Seq int
	Delivery
}

// clusterService runs the cluster tests' calls and remembers, per call,
// when and where it ran, and whether it came redelivered.
type clusterService struct {
	name string
	work time.Duration
	runs *clusterRuns
}

// Work answers Caller*1e6+Seq after s.work.
func (s *clusterService) Work(args *ClusterArgs, reply *int) error {
	s.runs.ran(clusterKey(args.Caller, args.Seq), clusterRun{at: time.Now(), server: s.name, redelivered: args.Redelivered})
	if s.work > 0 {
		time.Sleep(s.work) // standing for real work
	}
	*reply = clusterKey(args.Caller, args.Seq)
	return nil
}

func clusterKey(caller, seq int) int { return caller*1_000_000 + seq }

// clusterRun is one run of a call by a server.
type clusterRun struct {
	at          time.Time
	server      string
	redelivered bool
}

// clusterRuns holds the runs of each call, over every server.
type clusterRuns struct {
	mu   sync.Mutex // guards runs
	runs map[int][]clusterRun
}

func (r *clusterRuns) ran(key int, run clusterRun) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.runs[key] = append(r.runs[key], run)
}

// clusterRigSpec says what a rig is for: the title of its RELIABILITY line,
// and its clients' reply mode. A rig for throughput (bench) has a classic
// or a quorum queue, and a service that does no work.
type clusterRigSpec struct {
	title         string
	directReplyTo bool
	bench         bool
	classicQueue  bool
}

func clusterPrivateQueues(title string) clusterRigSpec { return clusterRigSpec{title: title} }

// clusterRig is a service queue, its servers and clients, and their load.
type clusterRig struct {
	clusterRigSpec
	c       *testCluster
	queue   string
	runs    *clusterRuns
	clients []*rpc.Client // clients[i] is connected to node i+1 at first
	load    *clusterLoad
}

// clusterScenario is one fault, under the load of one or more rigs.
type clusterScenario struct {
	c     *testCluster
	rigs  []*clusterRig
	begin time.Time // when the fault began
}

// newClusterScenario sets up a rig for each spec, and makes sure the
// cluster is whole again when the test ends, should it fail with a node
// down.
func newClusterScenario(t *testing.T, c *testCluster, specs ...clusterRigSpec) *clusterScenario {
	t.Helper()
	// The last cleanup, after the rigs' own.
	t.Cleanup(func() {
		for _, nd := range c.nodes {
			if nd.down {
				nd.Restart(t)
			}
		}
	})
	sc := &clusterScenario{c: c}
	for i, spec := range specs {
		sc.rigs = append(sc.rigs, newClusterRig(t, c, spec, fmt.Sprintf("%s-%d", strings.ReplaceAll(t.Name()[len("TestCluster/"):], "/", "-"), i+1)))
	}
	// The scenarios are built on this placement.
	conns := c.Connections(t)
	for _, r := range sc.rigs {
		for _, want := range []struct {
			name string
			node *clusterNode
		}{
			{"server-1", c.nodes[0]},
			{"server-2", c.nodes[1]},
			{"client-1", c.nodes[0]},
			{"client-2", c.nodes[1]},
			{"client-3", c.nodes[2]},
		} {
			if got := conns[r.queue+"-"+want.name]; len(got) != 1 || got[0] != want.node {
				t.Fatalf("connection %s-%s on %v; want %v", r.queue, want.name, got, want.node)
			}
		}
	}
	return sc
}

// newClusterRig declares a new quorum queue from node 1 (so that its leader
// is there), serves it from nodes 1 and 2 and connects a client to each
// node, each given every URL with its own node's first.
func newClusterRig(t *testing.T, c *testCluster, spec clusterRigSpec, name string) *clusterRig {
	t.Helper()
	r := &clusterRig{
		clusterRigSpec: spec,
		c:              c,
		queue:          "cluster-" + name + "-" + uuid.NewString()[:8],
		runs:           &clusterRuns{runs: map[int][]clusterRun{}},
	}
	t.Cleanup(func() { r.deleteQueue(t) })
	clientOpts := []ClientOption{WithCallTimeout(clusterCallTimeout)}
	if spec.directReplyTo {
		clientOpts = append(clientOpts, WithDirectReplyTo())
	}
	for i := range 2 {
		r.serve(t, c.nodes[i], fmt.Sprintf("%s-server-%d", r.queue, i+1))
	}
	if got := c.Leader(t, r.queue); got != c.nodes[0] && !spec.classicQueue {
		t.Fatalf("leader of %q on %v; want node 1", r.queue, got)
	}
	for _, nd := range c.nodes {
		name := fmt.Sprintf("%s-client-%d", r.queue, nd.index)
		urls := c.URLsFrom(nd)
		client, err := Dial(urls[0], r.queue, append(clientOpts, WithURLs(urls[1:]...), WithConnectionName(name), WithLogger(clusterLogger(name)))...)
		if err != nil {
			t.Fatalf("Dial(%s) = %v", nd, err)
		}
		t.Cleanup(func() { client.Close() })
		r.clients = append(r.clients, client)
	}
	return r
}

// clusterLogger logs the connection losses and reconnects of the client or
// server named name to standard error when AMQPRPC_CLUSTER_LOG is set, and
// nothing otherwise.
func clusterLogger(name string) *slog.Logger {
	if os.Getenv("AMQPRPC_CLUSTER_LOG") == "" {
		return nil
	}
	return slog.New(slog.NewTextHandler(os.Stderr, nil)).With("conn", name)
}

// serve runs a server of the rig's queue connected to nd first, until the
// test ends, and returns once it consumes.
func (r *clusterRig) serve(t *testing.T, nd *clusterNode, name string) {
	t.Helper()
	srv := rpc.NewServer()
	svc := &clusterService{name: name[len(r.queue)+1:], work: clusterWork, runs: r.runs}
	if r.bench {
		svc.work = 0
	}
	if err := srv.RegisterName("Cluster", svc); err != nil {
		t.Fatal(err)
	}
	urls := r.c.URLsFrom(nd)
	ready := make(chan struct{})
	opts := []ServerOption{WithURLs(urls[1:]...), WithConnectionName(name), WithPrefetch(16),
		WithReady(func() { close(ready) }), WithLogger(clusterLogger(name))}
	if !r.classicQueue {
		opts = append(opts, WithQuorumQueue())
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() {
		done <- Serve(ctx, srv, urls[0], r.queue, opts...)
	}()
	t.Cleanup(func() {
		cancel()
		select {
		case err := <-done:
			if err != nil {
				t.Errorf("Serve(%s) = %v", name, err)
			}
		case <-time.After(30 * time.Second):
			t.Errorf("Serve(%s) did not return within 30s of cancel", name)
		}
	})
	select {
	case <-ready:
	case err := <-done:
		t.Fatalf("Serve(%s) = %v before it was ready", name, err)
	case <-time.After(30 * time.Second):
		t.Fatalf("Serve(%s) not ready within 30s", name)
	}
}

// deleteQueue deletes the rig's queue through any node that answers.
func (r *clusterRig) deleteQueue(t *testing.T) {
	for _, url := range r.c.URLs() {
		conn, err := amqp.Dial(url)
		if err != nil {
			continue
		}
		defer conn.Close()
		ch, err := conn.Channel()
		if err != nil {
			continue
		}
		if _, err := ch.QueueDelete(r.queue, false, false, false); err != nil {
			t.Logf("QueueDelete(%q) = %v", r.queue, err)
		}
		return
	}
	t.Errorf("queue %q not deleted: no node answered", r.queue)
}

// run runs the rigs' loads, then fault, which ends once the cluster is
// whole again, then the loads for a while longer; it reports each rig's
// calls and checks them against the bar: none hung, none lost, every
// failure a clear one, none made after the fault was over, every
// redelivered request answered to its caller unless the caller's own
// connection was lost, and every client and node serving at the end.
func (sc *clusterScenario) run(t *testing.T, fault func()) {
	t.Helper()
	for _, r := range sc.rigs {
		r.load = startClusterLoad(r.clients, clusterCallers)
	}
	stopped := false
	stop := func() {
		if !stopped {
			stopped = true
			for _, r := range sc.rigs {
				r.load.stop()
			}
		}
	}
	t.Cleanup(stop) // should the fault fail the test
	for _, r := range sc.rigs {
		clusterWait(t, clusterRecovery, "first answers", func() bool { return r.load.stats.answered.Load() > 0 })
	}
	time.Sleep(clusterSteady) // steady load before the fault
	sc.begin = time.Now()
	fault()
	over := time.Now()
	t.Logf("fault and recovery took %v", over.Sub(sc.begin).Round(time.Millisecond))
	time.Sleep(clusterSteady) // steady load after it
	stop()
	conns := sc.c.Connections(t)
	for _, r := range sc.rigs {
		r.load.stats.report(t, r.title)
		r.load.stats.check(t, true)
		r.checkCalls(t, sc.begin, over)
		r.checkServing(t, conns)
	}
}

// kill kills nd under load and waits until every client of every rig has
// answered a call made after the kill. A client that has not within
// clusterRecovery is stalled, which fails the test with a STALL line: the
// library must heal a client whose requests the broker drops by itself
// (heal.go, docs/CLUSTER.md).
func (sc *clusterScenario) kill(t *testing.T, nd *clusterNode) {
	t.Helper()
	begin := time.Now()
	nd.Kill(t)
	for _, r := range sc.rigs {
		for i, client := range r.clients {
			if r.load.answeredAfter(client, begin, clusterRecovery) {
				continue
			}
			t.Errorf("STALL | %s | client %d (%s-client-%d) answered no call made after the kill within %v: %s",
				r.title, i+1, r.queue, i+1, clusterRecovery, r.load.since(client, begin))
		}
	}
	t.Logf("%v killed at %+.3fs; every client answered again %v later", nd, begin.Sub(sc.begin).Seconds(), time.Since(begin).Round(time.Millisecond))
}

// restart restarts nd under load and waits until it has rejoined and the
// rigs' queues have their quorum plus one again.
func (sc *clusterScenario) restart(t *testing.T, nd *clusterNode) {
	t.Helper()
	begin := time.Now()
	nd.Restart(t)
	booted := time.Since(begin)
	for _, r := range sc.rigs {
		sc.c.AwaitQuorumPlusOne(t, r.queue, clusterRecovery)
	}
	t.Logf("%v restarted at %+.3fs in %v, its queue members back %v later", nd, begin.Sub(sc.begin).Seconds(),
		booted.Round(time.Millisecond), (time.Since(begin) - booted).Round(time.Millisecond))
}

// checkCalls checks every call's fate: a failure must carry an amqprpc
// error and happen before over; a request the servers ran again after a
// redelivery must have been answered to its caller, unless the caller's
// own connection was lost. It logs what became of the calls that timed
// out, from the servers' side.
func (r *clusterRig) checkCalls(t *testing.T, begin, over time.Time) {
	t.Helper()
	r.runs.mu.Lock()
	defer r.runs.mu.Unlock()
	var redelivered, answered, lostConn, twice int
	for key, runs := range r.runs.runs {
		if len(runs) > 1 {
			twice++
		}
		if !slices.ContainsFunc(runs, func(run clusterRun) bool { return run.redelivered }) {
			continue
		}
		redelivered++
		o, ok := r.load.outcome(key)
		switch {
		case !ok:
			if key/1_000_000 < clusterCallers {
				t.Errorf("call %d was redelivered but never made", key)
			}
		case o.err == nil:
			answered++
		case !o.broken && errors.Is(Cause(o.err), ErrConnectionLost):
			lostConn++
		default:
			t.Errorf("call %d was redelivered and failed: %v; want it answered (%s)", key, o.err, r.describe(key, o, begin))
		}
	}
	t.Logf("REDELIVERY | %s | redelivered %d | answered to their caller %d | failed as their caller's connection was lost %d | run more than once %d",
		r.title, redelivered, answered, lostConn, twice)
	var late, timeouts []string
	timedOut := map[int]int{} // by runs
	r.load.each(func(key int, o clusterOutcome) {
		if o.err == nil || o.broken { // counted as hung or lost
			return
		}
		if Cause(o.err) == o.err {
			t.Errorf("call %d failed with %v; want an amqprpc error", key, o.err)
		}
		if o.issued.After(over) {
			late = append(late, fmt.Sprintf("call %d: %v", key, o.err))
		}
		if errors.Is(Cause(o.err), ErrTimeout) {
			timedOut[len(r.runs.runs[key])]++
			timeouts = append(timeouts, r.describe(key, o, begin))
		}
	})
	if len(timeouts) > 0 {
		sort.Strings(timeouts)
		t.Logf("timed-out calls by how often a server ran them: %v; for example:\n%s", timedOut, strings.Join(timeouts[:min(len(timeouts), 8)], "\n"))
	}
	if len(late) > 0 {
		sort.Strings(late)
		t.Errorf("%d calls made after the cluster was whole again failed; want none:\n%s", len(late), strings.Join(late[:min(len(late), 10)], "\n"))
	}
}

// describe tells when a call was made and ran, from begin (the fault); r.runs.mu
// must be held.
func (r *clusterRig) describe(key int, o clusterOutcome, begin time.Time) string {
	var b strings.Builder
	fmt.Fprintf(&b, "call %d made at %+.3fs", key, o.issued.Sub(begin).Seconds())
	for _, run := range r.runs.runs[key] {
		fmt.Fprintf(&b, ", ran on %s at %+.3fs", run.server, run.at.Sub(begin).Seconds())
		if run.redelivered {
			b.WriteString(" (redelivered)")
		}
	}
	return b.String()
}

// checkServing checks that every client still answers, and that a new
// client connected to each node alone does: the restarted nodes serve again.
// It logs where the rig's connections ended up.
func (r *clusterRig) checkServing(t *testing.T, conns map[string][]*clusterNode) {
	t.Helper()
	for i, client := range r.clients {
		var got int
		if err := client.Call("Cluster.Work", &ClusterArgs{Caller: 99, Seq: i}, &got); err != nil || got != clusterKey(99, i) {
			t.Errorf("client %d after the scenario: Call = %d, %v; want %d, nil", i+1, got, err, clusterKey(99, i))
		}
	}
	for _, nd := range r.c.nodes {
		opts := []ClientOption{WithCallTimeout(clusterCallTimeout)}
		if r.directReplyTo {
			opts = append(opts, WithDirectReplyTo())
		}
		client, err := Dial(nd.URL(), r.queue, opts...)
		if err != nil {
			t.Errorf("Dial(%v) after the scenario = %v", nd, err)
			continue
		}
		var got int
		if err := client.Call("Cluster.Work", &ClusterArgs{Caller: 98, Seq: nd.index}, &got); err != nil || got != clusterKey(98, nd.index) {
			t.Errorf("new client on %v alone: Call = %d, %v; want %d, nil", nd, got, err, clusterKey(98, nd.index))
		}
		client.Close()
	}
	var where []string
	for _, name := range []string{"server-1", "server-2", "client-1", "client-2", "client-3"} {
		where = append(where, fmt.Sprintf("%s on %v", name, conns[r.queue+"-"+name]))
	}
	t.Logf("connections at the end: %s", strings.Join(where, ", "))
}

// clusterWait polls cond until it holds, or fails the test after d.
func clusterWait(t *testing.T, d time.Duration, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(d)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("%s: not within %v", what, d)
		}
		time.Sleep(50 * time.Millisecond) // polling with a deadline
	}
}

// clusterOutcome is what became of one call.
type clusterOutcome struct {
	issued time.Time
	err    error // nil when answered
	// broken: the call hung, or its answer was another call's; err says
	// which.
	broken bool
}

// clusterLoad runs callers spread over clients, as runLoad does for one
// client, and keeps every call's outcome. It counts in a loadStats, so
// that its report is the same RELIABILITY line.
type clusterLoad struct {
	stats   *loadStats
	clients []*rpc.Client
	stopCh  chan struct{}
	wg      sync.WaitGroup

	mu       sync.Mutex // guards outcomes and answered
	outcomes map[int]clusterOutcome
	answered map[*rpc.Client]time.Time // when each client's latest answered call was made
}

func startClusterLoad(clients []*rpc.Client, callers int) *clusterLoad {
	l := &clusterLoad{
		stats:    &loadStats{errors: map[string]int{}},
		clients:  clients,
		stopCh:   make(chan struct{}),
		outcomes: map[int]clusterOutcome{},
		answered: map[*rpc.Client]time.Time{},
	}
	for g := range callers {
		l.wg.Add(1)
		go l.caller(g, clients[g%len(clients)])
	}
	return l
}

func (l *clusterLoad) caller(g int, client *rpc.Client) {
	defer l.wg.Done()
	st := l.stats
	for i := 0; ; i++ {
		select {
		case <-l.stopCh:
			return
		default:
		}
		key := clusterKey(g, i)
		issued := time.Now()
		st.issued.Add(1)
		c := client.Go("Cluster.Work", &ClusterArgs{Caller: g, Seq: i}, new(int), make(chan *rpc.Call, 1))
		select {
		case <-c.Done:
		case <-time.After(clusterCallTimeout + 5*time.Second):
			st.hung.Add(1)
			l.record(key, clusterOutcome{issued: issued, err: errors.New("hung"), broken: true}, nil)
			return // this caller is stuck; the others go on
		}
		switch {
		case c.Error != nil:
			st.failed.Add(1)
			st.noteError(c.Error)
			l.record(key, clusterOutcome{issued: issued, err: c.Error}, nil)
			if c.Error == rpc.ErrShutdown {
				return
			}
		case *c.Reply.(*int) != key:
			st.lost.Add(1)
			l.record(key, clusterOutcome{issued: issued, err: fmt.Errorf("lost: answer %d", *c.Reply.(*int)), broken: true}, nil)
		default:
			st.answered.Add(1)
			l.record(key, clusterOutcome{issued: issued}, client)
		}
	}
}

func (l *clusterLoad) record(key int, o clusterOutcome, answeredBy *rpc.Client) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.outcomes[key] = o
	if answeredBy != nil && o.issued.After(l.answered[answeredBy]) {
		l.answered[answeredBy] = o.issued
	}
}

// answeredAfter waits up to d until client has answered a call made after
// t0, and reports whether it has.
func (l *clusterLoad) answeredAfter(client *rpc.Client, t0 time.Time, d time.Duration) bool {
	deadline := time.Now().Add(d)
	for {
		l.mu.Lock()
		ok := l.answered[client].After(t0)
		l.mu.Unlock()
		if ok || time.Now().After(deadline) {
			return ok
		}
		time.Sleep(50 * time.Millisecond) // polling with a deadline
	}
}

// since counts the fates of client's calls made after t0, by error text.
func (l *clusterLoad) since(client *rpc.Client, t0 time.Time) string {
	l.mu.Lock()
	defer l.mu.Unlock()
	counts := map[string]int{}
	for key, o := range l.outcomes {
		if l.clients[(key/1_000_000)%len(l.clients)] != client || o.issued.Before(t0) {
			continue
		}
		what := "answered"
		if o.err != nil {
			what = fmt.Sprintf("%.160s", o.err)
		}
		counts[what]++
	}
	return fmt.Sprint(counts)
}

func (l *clusterLoad) outcome(key int) (clusterOutcome, bool) {
	l.mu.Lock()
	defer l.mu.Unlock()
	o, ok := l.outcomes[key]
	return o, ok
}

func (l *clusterLoad) each(f func(key int, o clusterOutcome)) {
	l.mu.Lock()
	defer l.mu.Unlock()
	for k, o := range l.outcomes {
		f(k, o)
	}
}

// stop ends the load and waits for every caller.
func (l *clusterLoad) stop() {
	close(l.stopCh)
	l.wg.Wait()
}

// testClusterDeliveryCount shows what a request comes back with from a
// quorum queue after its consumer's channel went away without
// acknowledging it, as when a server's node dies: the redelivered flag, and
// x-delivery-count counting the returns (RabbitMQ 3.10; 4.x counts only
// some returns, see docs/CLUSTER.md).
func testClusterDeliveryCount(t *testing.T, c *testCluster) {
	conn, err := amqp.Dial(c.nodes[1].URL())
	if err != nil {
		t.Fatalf("amqp.Dial(%v) = %v", c.nodes[1], err)
	}
	defer conn.Close()
	ch, err := conn.Channel()
	if err != nil {
		t.Fatal(err)
	}
	queue := "cluster-delivery-count-" + uuid.NewString()[:8]
	if _, err := ch.QueueDeclare(queue, true, false, false, false, amqp.Table{"x-queue-type": "quorum"}); err != nil {
		t.Fatalf("QueueDeclare(%q, quorum) = %v", queue, err)
	}
	defer ch.QueueDelete(queue, false, false, false)
	if err := ch.Publish("", queue, false, false, amqp.Publishing{Body: []byte("request")}); err != nil {
		t.Fatal(err)
	}
	for returns := range 3 {
		consumer, err := conn.Channel()
		if err != nil {
			t.Fatal(err)
		}
		deliveries, err := consumer.Consume(queue, "", false, false, false, false, nil)
		if err != nil {
			t.Fatalf("Consume(%q) = %v", queue, err)
		}
		var d amqp.Delivery
		select {
		case d = <-deliveries:
		case <-time.After(10 * time.Second):
			t.Fatalf("delivery %d: nothing within 10s", returns+1)
		}
		count, has := d.Headers["x-delivery-count"]
		switch {
		case returns == 0 && (d.Redelivered || (has && fmt.Sprint(count) != "0")):
			t.Errorf("first delivery: redelivered %v, x-delivery-count %v; want false and none (or 0)", d.Redelivered, count)
		case returns > 0 && (!d.Redelivered || fmt.Sprint(count) != fmt.Sprint(returns)):
			t.Errorf("delivery after %d returns: redelivered %v, x-delivery-count %v; want true and %d", returns, d.Redelivered, count, returns)
		}
		consumer.Close() // unacknowledged: back to the queue
	}
}

// testClusterPermissions shows that users, vhosts and permissions are the
// cluster's, not a node's: made through node 2 alone, the least-privilege
// permissions of docs/SECURITY.md let a server on node 3 declare and serve
// a quorum queue and a client on node 1 call it, with private reply queues
// and with direct reply-to.
func testClusterPermissions(t *testing.T, c *testCluster) {
	const vhost = "cluster-rpc"
	n2 := c.nodes[1]
	n2.Ctl(t, "add_vhost", vhost)
	t.Cleanup(func() { c.Ctl(t, "delete_vhost", vhost) })
	queue := "cluster-perm-" + uuid.NewString()[:8]
	users := []struct{ name, configure, write, read string }{
		{"rpc-server", "^" + queue + "$", `^amq\.default$`, "^" + queue + "$"},
		{"rpc-client", `^amq\.gen-.*`, `^amq\.default$`, `^amq\.gen-.*`},
		{"rpc-client-direct", "^$", `^amq\.default$`, "^$"},
	}
	for _, u := range users {
		n2.Ctl(t, "add_user", u.name, u.name+"-pw")
		n2.Ctl(t, "set_permissions", "-p", vhost, u.name, u.configure, u.write, u.read)
	}
	url := func(user string, nd *clusterNode) string {
		return fmt.Sprintf("amqp://%s:%s-pw@127.0.0.1:%d/%s", user, user, nd.amqpPort, vhost)
	}
	srv := rpc.NewServer()
	if err := srv.RegisterName("Cluster", &clusterService{runs: &clusterRuns{runs: map[int][]clusterRun{}}}); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	ready := make(chan struct{})
	go func() {
		done <- Serve(ctx, srv, url("rpc-server", c.nodes[2]), queue, WithQuorumQueue(), WithReady(func() { close(ready) }),
			WithURLs(url("rpc-server", c.nodes[0]), url("rpc-server", n2)))
	}()
	defer func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("Serve = %v", err)
		}
	}()
	select {
	case <-ready:
	case err := <-done:
		t.Fatalf("Serve as rpc-server on node 3 = %v", err)
	case <-time.After(30 * time.Second):
		t.Fatal("Serve not ready within 30s")
	}
	for _, tc := range []struct {
		user string
		opts []ClientOption
	}{
		{"rpc-client", nil},
		{"rpc-client-direct", []ClientOption{WithDirectReplyTo()}},
	} {
		client, err := Dial(url(tc.user, c.nodes[0]), queue, append(tc.opts, WithCallTimeout(clusterCallTimeout))...)
		if err != nil {
			t.Fatalf("Dial as %s on node 1 = %v", tc.user, err)
		}
		var got int
		if err := client.Call("Cluster.Work", &ClusterArgs{Caller: 1, Seq: 2}, &got); err != nil || got != clusterKey(1, 2) {
			t.Errorf("Call as %s = %d, %v; want %d, nil", tc.user, got, err, clusterKey(1, 2))
		}
		client.Close()
	}
}

// Package faultrig runs fault scenarios under load on private RabbitMQ
// nodes (package rabbitnodes), and reports and checks what became of every
// call: the broker faults of a single node (BrokerFaults), and those of a
// three-node cluster (Scenarios): 32 callers on three clients, one
// connected to each node first; two servers on nodes 1 and 2; a quorum
// service queue whose leader is on node 1; every client and server given
// all three URLs. The RELIABILITY and REDELIVERY lines they log are the
// README's reliability tables (scripts/reliability-table.sh). The root
// package's TestBrokerFaults and TestCluster run them without a reply
// store, and the redisstore module's with one, so that the servers'
// options are the only difference.
//
// AMQPRPC_CLUSTER_LOG=1 logs the clients' and servers' connection losses
// and reconnects to standard error.
package faultrig

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

	"github.com/amqprpc/amqprpc"
	"github.com/amqprpc/amqprpc/internal/brokertest"
	"github.com/amqprpc/amqprpc/internal/rabbitnodes"
)

// Bounds of the cluster scenarios.
const (
	// Callers is how many goroutines call at once in a scenario.
	Callers = 32
	// CallTimeout is the call timeout of the rigs' clients.
	CallTimeout = 5 * time.Second
	// work is how long each call works on the server, so that servers
	// hold calls in flight when their node dies.
	work = 2 * time.Millisecond
	// recovery bounds how long the callers may take to get answers
	// again after a fault, and a node to rejoin after a restart.
	recovery = 30 * time.Second
	// steady is how long the load runs before the fault and after
	// the cluster is whole again.
	steady = time.Second
)

// Args is the argument of service.Work: which caller made the
// call, and its number. The server fills in the embedded Delivery.
type Args struct {
	Caller, Seq int
	amqprpc.Delivery
}

// service runs the cluster tests' calls and remembers, per call,
// when and where it ran, and whether it came redelivered.
type service struct {
	name string
	work time.Duration
	runs *callRuns
}

// Work answers Caller*1e6+Seq after s.work.
func (s *service) Work(args *Args, reply *int) error {
	key := Key(args.Caller, args.Seq)
	i := s.runs.ran(key, args.MessageID, callRun{at: time.Now(), server: s.name, redelivered: args.Redelivered})
	if s.work > 0 {
		time.Sleep(s.work) // standing for real work
	}
	s.runs.finished(key, i)
	*reply = key
	return nil
}

// Key numbers the call seq of caller.
func Key(caller, seq int) int { return caller*1_000_000 + seq }

// callRun is one run of a call by a server.
type callRun struct {
	at          time.Time
	server      string
	redelivered bool
	finished    bool // the method returned; a run cut off never does
}

// callRuns holds the runs of each call, over every server.
type callRuns struct {
	mu        sync.Mutex // guards runs and byMessage
	runs      map[int][]callRun
	byMessage map[string]int // the call of each message id that ran
}

// ran records a run of the call key, whose request had the message id id,
// and returns its number among the call's runs.
func (r *callRuns) ran(key int, id string, one callRun) int {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.runs[key] = append(r.runs[key], one)
	r.byMessage[id] = key
	return len(r.runs[key]) - 1
}

// finished records that run i of the call key returned.
func (r *callRuns) finished(key, i int) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.runs[key][i].finished = true
}

// Spec says what a rig is for: the title of its RELIABILITY line, its
// clients' reply mode, and its servers' reply store. A rig for throughput
// (Bench) has a classic or a quorum queue, and a service that does no work.
type Spec struct {
	Title         string
	DirectReplyTo bool
	Bench         bool
	ClassicQueue  bool
	// Store, when set, is the servers' reply store (WithReplyStore).
	Store amqprpc.ReplyStore

	quick bool // a 1 s heartbeat and short reconnect delays (node.go)
}

// Rig is a service queue, its servers and clients, and their load.
type Rig struct {
	Spec
	c       *rabbitnodes.Cluster
	queue   string
	runs    *callRuns
	store   *countingStore // Spec.Store, counted; nil without
	clients []*rpc.Client  // clients[i] is connected to node i+1 at first
	load    *load
}

// Clients returns the rig's clients: client i is connected to node i+1
// first.
func (r *Rig) Clients() []*rpc.Client { return r.clients }

// countingStore is a reply store that remembers the requests it answered
// from what it holds.
type countingStore struct {
	amqprpc.ReplyStore

	mu       sync.Mutex // guards answered
	answered map[string]bool
}

// Claim implements amqprpc.ReplyStore.
func (s *countingStore) Claim(ctx context.Context, key, owner string, lease time.Duration) (amqprpc.Claim, error) {
	c, err := s.ReplyStore.Claim(ctx, key, owner, lease)
	if err == nil && c.Reply != nil {
		s.mu.Lock()
		s.answered[key] = true
		s.mu.Unlock()
	}
	return c, err
}

// answeredCalls returns the calls (by the message ids runs knows) of
// which mine says true that the store answered; runs.mu must be held.
func (s *countingStore) answeredCalls(runs *callRuns, queue string, mine func(call int) bool) map[int]bool {
	calls := map[int]bool{}
	if s == nil {
		return calls
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	for key := range s.answered {
		if call, ok := runs.byMessage[strings.TrimPrefix(key, queue+"/")]; ok && mine(call) {
			calls[call] = true
		}
	}
	return calls
}

// scenario is one fault, under the load of one or more rigs.
type scenario struct {
	c     *rabbitnodes.Cluster
	rigs  []*Rig
	begin time.Time // when the fault began
}

// newScenario sets up a rig for each spec, and makes sure the
// cluster is whole again when the test ends, should it fail with a node
// down.
func newScenario(t *testing.T, c *rabbitnodes.Cluster, specs ...Spec) *scenario {
	t.Helper()
	// The last cleanup, after the rigs' own.
	t.Cleanup(func() {
		for _, nd := range c.Nodes {
			if nd.Down() {
				nd.Restart(t)
			}
		}
	})
	sc := &scenario{c: c}
	for i, spec := range specs {
		_, name, _ := strings.Cut(t.Name(), "/") // the scenario's
		sc.rigs = append(sc.rigs, NewRig(t, c, spec, fmt.Sprintf("%s-%d", strings.ReplaceAll(name, "/", "-"), i+1)))
	}
	// The scenarios are built on this placement.
	conns := c.Connections(t)
	for _, r := range sc.rigs {
		for _, want := range []struct {
			name string
			node *rabbitnodes.Node
		}{
			{"server-1", c.Nodes[0]},
			{"server-2", c.Nodes[1]},
			{"client-1", c.Nodes[0]},
			{"client-2", c.Nodes[1]},
			{"client-3", c.Nodes[2]},
		} {
			if got := conns[r.queue+"-"+want.name]; len(got) != 1 || got[0] != want.node {
				t.Fatalf("connection %s-%s on %v; want %v", r.queue, want.name, got, want.node)
			}
		}
	}
	return sc
}

// NewRig declares a new quorum queue from node 1 (so that its leader
// is there), serves it from nodes 1 and 2 and connects a client to each
// node, each given every URL with its own node's first.
func NewRig(t *testing.T, c *rabbitnodes.Cluster, spec Spec, name string) *Rig {
	t.Helper()
	r := &Rig{
		Spec:  spec,
		c:     c,
		queue: "cluster-" + name + "-" + uuid.NewString()[:8],
		runs:  &callRuns{runs: map[int][]callRun{}, byMessage: map[string]int{}},
	}
	if spec.Store != nil {
		r.store = &countingStore{ReplyStore: spec.Store, answered: map[string]bool{}}
	}
	t.Cleanup(func() { r.deleteQueue(t) })
	clientOpts := []amqprpc.ClientOption{amqprpc.WithCallTimeout(CallTimeout)}
	if spec.DirectReplyTo {
		clientOpts = append(clientOpts, amqprpc.WithDirectReplyTo())
	}
	for i := range 2 {
		r.serve(t, c.Nodes[i], fmt.Sprintf("%s-server-%d", r.queue, i+1))
	}
	if got := c.Leader(t, r.queue); got != c.Nodes[0] && !spec.ClassicQueue {
		t.Fatalf("leader of %q on %v; want node 1", r.queue, got)
	}
	for _, nd := range c.Nodes {
		name := fmt.Sprintf("%s-client-%d", r.queue, nd.Index)
		urls := c.URLsFrom(nd)
		client, err := amqprpc.Dial(urls[0], r.queue, append(clientOpts, amqprpc.WithURLs(urls[1:]...), amqprpc.WithConnectionName(name), amqprpc.WithLogger(logger(name)))...)
		if err != nil {
			t.Fatalf("Dial(%s) = %v", nd, err)
		}
		t.Cleanup(func() { client.Close() })
		r.clients = append(r.clients, client)
	}
	return r
}

// logger logs the connection losses and reconnects of the client or
// server named name to standard error when AMQPRPC_CLUSTER_LOG is set, and
// nothing otherwise.
func logger(name string) *slog.Logger {
	if os.Getenv("AMQPRPC_CLUSTER_LOG") == "" {
		return nil
	}
	return slog.New(slog.NewTextHandler(os.Stderr, nil)).With("conn", name)
}

// serve runs a server of the rig's queue connected to nd first, until the
// test ends, and returns once it consumes.
func (r *Rig) serve(t *testing.T, nd *rabbitnodes.Node, name string) {
	t.Helper()
	srv := rpc.NewServer()
	svc := &service{name: name[len(r.queue)+1:], work: work, runs: r.runs}
	if r.Bench {
		svc.work = 0
	}
	if err := srv.RegisterName("Cluster", svc); err != nil {
		t.Fatal(err)
	}
	urls := r.c.URLsFrom(nd)
	ready := make(chan struct{})
	opts := []amqprpc.ServerOption{amqprpc.WithURLs(urls[1:]...), amqprpc.WithConnectionName(name), amqprpc.WithPrefetch(16),
		amqprpc.WithReady(func() { close(ready) }), amqprpc.WithLogger(logger(name))}
	if !r.ClassicQueue {
		opts = append(opts, amqprpc.WithQuorumQueue())
	}
	if r.store != nil {
		opts = append(opts, amqprpc.WithReplyStore(r.store, time.Minute))
	}
	if r.quick {
		opts = append(opts, amqprpc.WithHeartbeat(heartbeat), amqprpc.WithReconnectBackoff(reconnectMin, reconnectMax))
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() {
		done <- amqprpc.Serve(ctx, srv, urls[0], r.queue, opts...)
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
func (r *Rig) deleteQueue(t *testing.T) {
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
func (sc *scenario) run(t *testing.T, fault func()) {
	t.Helper()
	for _, r := range sc.rigs {
		r.load = startLoad(r.clients, Callers, 0)
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
		wait(t, recovery, "first answers", func() bool { return r.load.stats.Answered.Load() > 0 })
	}
	time.Sleep(steady) // steady load before the fault
	sc.begin = time.Now()
	fault()
	over := time.Now()
	t.Logf("fault and recovery took %v", over.Sub(sc.begin).Round(time.Millisecond))
	time.Sleep(steady) // steady load after it
	stop()
	conns := sc.c.Connections(t)
	for _, r := range sc.rigs {
		r.load.stats.Report(t, r.Title)
		r.load.stats.Check(t, true)
		r.checkCalls(t, sc.begin, over)
		r.checkServing(t, conns)
	}
}

// kill kills nd under load and waits until every client of every rig has
// answered a call made after the kill. A client that has not within
// recovery is stalled, which fails the test with a STALL line: the
// library must heal a client whose requests the broker drops by itself
// (heal.go, docs/CLUSTER.md).
func (sc *scenario) kill(t *testing.T, nd *rabbitnodes.Node) {
	t.Helper()
	begin := time.Now()
	nd.Kill(t)
	for _, r := range sc.rigs {
		for i, client := range r.clients {
			if r.load.answeredAfter(client, begin, recovery) {
				continue
			}
			t.Errorf("STALL | %s | client %d (%s-client-%d) answered no call made after the kill within %v: %s",
				r.Title, i+1, r.queue, i+1, recovery, r.load.since(client, begin))
		}
	}
	t.Logf("%v killed at %+.3fs; every client answered again %v later", nd, begin.Sub(sc.begin).Seconds(), time.Since(begin).Round(time.Millisecond))
}

// restart restarts nd under load and waits until it has rejoined and the
// rigs' queues have their quorum plus one again.
func (sc *scenario) restart(t *testing.T, nd *rabbitnodes.Node) {
	t.Helper()
	begin := time.Now()
	nd.Restart(t)
	booted := time.Since(begin)
	for _, r := range sc.rigs {
		sc.c.AwaitQuorumPlusOne(t, r.queue, recovery)
	}
	t.Logf("%v restarted at %+.3fs in %v, its queue members back %v later", nd, begin.Sub(sc.begin).Seconds(),
		booted.Round(time.Millisecond), (time.Since(begin) - booted).Round(time.Millisecond))
}

// checkCalls checks every call's fate: a failure must carry an amqprpc
// error and happen before over; a request the servers ran again after a
// redelivery, or answered from their reply store, must have been answered
// to its caller, unless the caller's own connection was lost; with a reply
// store, no call may have run more than once unless a run was cut off
// mid-run. It logs what became of the calls that timed out, from the
// servers' side.
func (r *Rig) checkCalls(t *testing.T, begin, over time.Time) {
	t.Helper()
	r.runs.mu.Lock()
	defer r.runs.mu.Unlock()
	fromStore := r.store.answeredCalls(r.runs, r.queue, r.load.made)
	var redelivered, answered, lostConn, twice, cutOff int
	for key, runs := range r.runs.runs {
		if !r.load.made(key) {
			continue // another load's, or a check's
		}
		if len(runs) > 1 {
			twice++
			if slices.ContainsFunc(runs, func(run callRun) bool { return !run.finished }) {
				cutOff++
			}
		}
		if !fromStore[key] && !slices.ContainsFunc(runs, func(run callRun) bool { return run.redelivered }) {
			continue
		}
		redelivered++
		o, ok := r.load.outcome(key)
		switch {
		case !ok:
			t.Errorf("call %d was redelivered but never made", key)
		case o.err == nil:
			answered++
		case !o.broken && errors.Is(amqprpc.Cause(o.err), amqprpc.ErrConnectionLost):
			lostConn++
		default:
			t.Errorf("call %d was redelivered and failed: %v; want it answered (%s)", key, o.err, r.describe(key, o, begin))
		}
	}
	t.Logf("REDELIVERY | %s | redelivered %d | answered to their caller %d | failed as their caller's connection was lost %d | answered from the store %d | run more than once %d | cut off mid-run %d",
		r.Title, redelivered, answered, lostConn, len(fromStore), twice, cutOff)
	if r.store != nil && twice != cutOff {
		t.Errorf("with a reply store, %d calls ran more than once and %d of them had a run cut off mid-run; want every call run more than once cut off", twice, cutOff)
	}
	var late, timeouts []string
	timedOut := map[int]int{} // by runs
	r.load.each(func(key int, o callOutcome) {
		if o.err == nil || o.broken { // counted as hung or lost
			return
		}
		if amqprpc.Cause(o.err) == o.err {
			t.Errorf("call %d failed with %v; want an amqprpc error", key, o.err)
		}
		if o.issued.After(over) {
			late = append(late, fmt.Sprintf("call %d: %v", key, o.err))
		}
		if errors.Is(amqprpc.Cause(o.err), amqprpc.ErrTimeout) {
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
func (r *Rig) describe(key int, o callOutcome, begin time.Time) string {
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
func (r *Rig) checkServing(t *testing.T, conns map[string][]*rabbitnodes.Node) {
	t.Helper()
	for i, client := range r.clients {
		var got int
		if err := client.Call("Cluster.Work", &Args{Caller: 99, Seq: i}, &got); err != nil || got != Key(99, i) {
			t.Errorf("client %d after the scenario: Call = %d, %v; want %d, nil", i+1, got, err, Key(99, i))
		}
	}
	for _, nd := range r.c.Nodes {
		opts := []amqprpc.ClientOption{amqprpc.WithCallTimeout(CallTimeout)}
		if r.DirectReplyTo {
			opts = append(opts, amqprpc.WithDirectReplyTo())
		}
		client, err := amqprpc.Dial(nd.URL(), r.queue, opts...)
		if err != nil {
			t.Errorf("Dial(%v) after the scenario = %v", nd, err)
			continue
		}
		var got int
		if err := client.Call("Cluster.Work", &Args{Caller: 98, Seq: nd.Index}, &got); err != nil || got != Key(98, nd.Index) {
			t.Errorf("new client on %v alone: Call = %d, %v; want %d, nil", nd, got, err, Key(98, nd.Index))
		}
		client.Close()
	}
	var where []string
	for _, name := range []string{"server-1", "server-2", "client-1", "client-2", "client-3"} {
		where = append(where, fmt.Sprintf("%s on %v", name, conns[r.queue+"-"+name]))
	}
	t.Logf("connections at the end: %s", strings.Join(where, ", "))
}

// wait polls cond until it holds, or fails the test after d.
func wait(t *testing.T, d time.Duration, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(d)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("%s: not within %v", what, d)
		}
		time.Sleep(50 * time.Millisecond) // polling with a deadline
	}
}

// callOutcome is what became of one call.
type callOutcome struct {
	issued time.Time
	err    error // nil when answered
	// broken: the call hung, or its answer was another call's; err says
	// which.
	broken bool
}

// load runs callers spread over clients, as runLoad does for one
// client, and keeps every call's outcome. It counts in a brokertest.Stats,
// so that its report is the same RELIABILITY line.
type load struct {
	stats   *brokertest.Stats
	clients []*rpc.Client
	base    int // the first caller's number: callers are base, base+1, ...
	callers int
	stopCh  chan struct{}
	wg      sync.WaitGroup

	mu       sync.Mutex // guards outcomes and answered
	outcomes map[int]callOutcome
	answered map[*rpc.Client]time.Time // when each client's latest answered call was made
}

// startLoad starts callers numbered from base, spread over clients.
func startLoad(clients []*rpc.Client, callers, base int) *load {
	l := &load{
		stats:    new(brokertest.Stats),
		clients:  clients,
		base:     base,
		callers:  callers,
		stopCh:   make(chan struct{}),
		outcomes: map[int]callOutcome{},
		answered: map[*rpc.Client]time.Time{},
	}
	for g := range callers {
		l.wg.Add(1)
		go l.caller(base+g, clients[g%len(clients)])
	}
	return l
}

// made reports whether the call key is one of this load's callers'.
func (l *load) made(key int) bool {
	c := key / 1_000_000
	return c >= l.base && c < l.base+l.callers
}

func (l *load) caller(g int, client *rpc.Client) {
	defer l.wg.Done()
	st := l.stats
	for i := 0; ; i++ {
		select {
		case <-l.stopCh:
			return
		default:
		}
		key := Key(g, i)
		issued := time.Now()
		st.Issued.Add(1)
		c := client.Go("Cluster.Work", &Args{Caller: g, Seq: i}, new(int), make(chan *rpc.Call, 1))
		select {
		case <-c.Done:
		case <-time.After(CallTimeout + 5*time.Second):
			st.Hung.Add(1)
			l.record(key, callOutcome{issued: issued, err: errors.New("hung"), broken: true}, nil)
			return // this caller is stuck; the others go on
		}
		switch {
		case c.Error != nil:
			st.Failed.Add(1)
			st.NoteError(c.Error)
			l.record(key, callOutcome{issued: issued, err: c.Error}, nil)
			if c.Error == rpc.ErrShutdown {
				return
			}
		case *c.Reply.(*int) != key:
			st.Lost.Add(1)
			l.record(key, callOutcome{issued: issued, err: fmt.Errorf("lost: answer %d", *c.Reply.(*int)), broken: true}, nil)
		default:
			st.Answered.Add(1)
			l.record(key, callOutcome{issued: issued}, client)
		}
	}
}

func (l *load) record(key int, o callOutcome, answeredBy *rpc.Client) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.outcomes[key] = o
	if answeredBy != nil && o.issued.After(l.answered[answeredBy]) {
		l.answered[answeredBy] = o.issued
	}
}

// answeredAfter waits up to d until client has answered a call made after
// t0, and reports whether it has.
func (l *load) answeredAfter(client *rpc.Client, t0 time.Time, d time.Duration) bool {
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
func (l *load) since(client *rpc.Client, t0 time.Time) string {
	l.mu.Lock()
	defer l.mu.Unlock()
	counts := map[string]int{}
	for key, o := range l.outcomes {
		if l.clients[(key/1_000_000-l.base)%len(l.clients)] != client || o.issued.Before(t0) {
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

func (l *load) outcome(key int) (callOutcome, bool) {
	l.mu.Lock()
	defer l.mu.Unlock()
	o, ok := l.outcomes[key]
	return o, ok
}

func (l *load) each(f func(key int, o callOutcome)) {
	l.mu.Lock()
	defer l.mu.Unlock()
	for k, o := range l.outcomes {
		f(k, o)
	}
}

// stop ends the load and waits for every caller.
func (l *load) stop() {
	close(l.stopCh)
	l.wg.Wait()
}

// NewService returns the rigs' service, to register as "Cluster" on a
// server of a test's own: its Work answers a call's key.
func NewService() any {
	return &service{runs: &callRuns{runs: map[int][]callRun{}, byMessage: map[string]int{}}}
}

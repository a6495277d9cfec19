package amqprpc

// A server with a reply store (WithReplyStore): a request answered before,
// by message_id, is answered again from the store without running; one
// another server holds is waited for; claims outlive long methods and
// expire with dead servers.

import (
	"context"
	"errors"
	"net/rpc"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	amqp "github.com/rabbitmq/amqp091-go"
	"github.com/stretchr/testify/require"

	"github.com/amqprpc/amqprpc/codec"
	"github.com/amqprpc/amqprpc/internal/brokertest"
)

// withReplyLease shortens the claims' lease of a WithReplyStore given
// before it, for tests that wait one out.
func withReplyLease(d time.Duration) ServerOption {
	return server(func(o *serverOptions) { o.replyStore.lease = d })
}

// replyTTL is the time to live of stored replies in the tests.
const replyTTL = time.Minute

// storeRig is a server with a reply store, and a raw client that publishes
// requests to it with message ids of its choosing.
type storeRig struct {
	queue   string
	store   *MemoryStore
	arith   *Arith
	ch      *amqp.Channel
	replyQ  string
	replies <-chan amqp.Delivery
}

func newStoreRig(t *testing.T, opts ...ServerOption) *storeRig {
	t.Helper()
	r := &storeRig{queue: testQueue(t), store: NewMemoryStore(0), arith: newArith("s1")}
	r.arith.open()
	startServer(t, r.arith, r.queue, append([]ServerOption{WithReplyStore(r.store, replyTTL)}, opts...)...)
	_, r.ch = rawConn(t)
	q, err := r.ch.QueueDeclare("", false, true, true, false, nil)
	require.NoError(t, err)
	r.replyQ = q.Name
	r.replies = brokertest.Consume(t, r.ch, q.Name)
	return r
}

// send publishes a JSON request for method with the message id id (none
// when ""), replies to replyTo with corr.
func (r *storeRig) send(t *testing.T, method, body, id, replyTo, corr string) {
	t.Helper()
	require.NoError(t, r.ch.Publish("", r.queue, false, false, amqp.Publishing{
		Type: method, ContentType: "application/json", Body: []byte(body),
		MessageId: id, CorrelationId: corr, ReplyTo: replyTo,
	}))
}

// next returns the next reply, checking it answers corr.
func (r *storeRig) next(t *testing.T, replies <-chan amqp.Delivery, corr string) amqp.Delivery {
	t.Helper()
	d := brokertest.NextDelivery(t, replies, "reply to "+corr)
	if d.CorrelationId != corr {
		t.Fatalf("reply correlation id %q; want %q", d.CorrelationId, corr)
	}
	return d
}

// TestReplyStoreAnswersARepeat sends each request twice with one message
// id, the second time to another reply queue with another correlation id:
// the method runs once, and the second reply, sent to the second reply
// queue with the second correlation id, is the first one again, error
// replies included. A request without a message id runs every time.
func TestReplyStoreAnswersARepeat(t *testing.T) {
	r := newStoreRig(t)
	q2, err := r.ch.QueueDeclare("", false, true, true, false, nil)
	require.NoError(t, err)
	replies2 := brokertest.Consume(t, r.ch, q2.Name)
	for _, tc := range []struct {
		name, method, body, id string
		runs                   int64
	}{
		{"result", "Arith.Multiply", `{"A":6,"B":7}`, "m-result", 1},
		{"service error", "Arith.Divide", `{"A":1,"B":0}`, "m-error", 1},
		{"malformed body", "Arith.Multiply", `{"A":`, "m-malformed", 0},
		{"no message id", "Arith.Multiply", `{"A":2,"B":3}`, "", 2},
	} {
		t.Run(tc.name, func(t *testing.T) {
			before := r.arith.calls.Load()
			r.send(t, tc.method, tc.body, tc.id, r.replyQ, tc.name+"-1")
			first := r.next(t, r.replies, tc.name+"-1")
			r.send(t, tc.method, tc.body, tc.id, q2.Name, tc.name+"-2")
			second := r.next(t, replies2, tc.name+"-2")
			if first.ContentType != second.ContentType || string(first.Body) != string(second.Body) ||
				first.Headers[ErrorHeader] != second.Headers[ErrorHeader] {
				t.Errorf("second reply = %q %q %v; want the first, %q %q %v", second.ContentType, second.Body, second.Headers,
					first.ContentType, first.Body, first.Headers)
			}
			if got := r.arith.calls.Load() - before; got != tc.runs {
				t.Errorf("the method ran %d times for two deliveries; want %d", got, tc.runs)
			}
		})
	}
	brokertest.NoDelivery(t, r.replies, 200*time.Millisecond, "another reply")
}

// TestReplyStoreHasTheReplyWhenItIsPublished checks, from a server hook's
// CallEnd (which runs once the reply is published), that the reply is in
// the store by then: a server that dies before acknowledging leaves it
// there for the next delivery.
func TestReplyStoreHasTheReplyWhenItIsPublished(t *testing.T) {
	queue := testQueue(t)
	store := NewMemoryStore(0)
	var mu sync.Mutex
	var found []string
	hook := func(ctx context.Context, info *CallInfo) (context.Context, CallEnd) {
		key := replyKey(queue, info.MessageID)
		return ctx, func(time.Duration, error) {
			c, err := store.Claim(context.Background(), key, "probe", time.Minute)
			mu.Lock()
			defer mu.Unlock()
			switch {
			case err != nil:
				found = append(found, err.Error())
			case c.Reply == nil:
				found = append(found, "no reply")
			default:
				found = append(found, string(c.Reply.Body))
			}
		}
	}
	arith := newArith("s1")
	startServer(t, arith, queue, WithReplyStore(store, replyTTL), WithServerHook(hook))
	client := dial(t, queue, WithEncoding(codec.JSON)) // readable in the store
	multiply(t, client, 6, 7, "")
	brokertest.WaitFor(t, 5*time.Second, "CallEnd", func() bool {
		mu.Lock()
		defer mu.Unlock()
		return len(found) == 1
	})
	if found[0] != "42" {
		t.Fatalf("the store held %q when the reply was published; want the reply 42", found[0])
	}
}

// TestReplyStoreWaitsForTheHolder claims a request as another server would
// while running it: the request waits, unrun, and gets the reply that
// server stores.
func TestReplyStoreWaitsForTheHolder(t *testing.T) {
	r := newStoreRig(t)
	ctx := context.Background()
	key := replyKey(r.queue, "m-held")
	if c, err := r.store.Claim(ctx, key, "other-server", time.Minute); err != nil || c != (Claim{}) {
		t.Fatalf("Claim = %+v, %v", c, err)
	}
	r.send(t, "Arith.Multiply", `{"A":6,"B":7}`, "m-held", r.replyQ, "held")
	brokertest.NoDelivery(t, r.replies, 500*time.Millisecond, "a reply while another server holds the claim")
	require.NoError(t, r.store.Put(ctx, key, StoredReply{ContentType: "application/json", Body: []byte("99")}, time.Minute))
	if d := r.next(t, r.replies, "held"); string(d.Body) != "99" {
		t.Fatalf("reply = %q; want the holder's, 99", d.Body)
	}
	if got := r.arith.calls.Load(); got != 0 {
		t.Fatalf("the method ran %d times; want 0", got)
	}
}

// TestReplyStoreRequeuesWhileHeld holds a request's claim longer than the
// server waits: the request goes back to the queue, again and again, unrun;
// once the holder lets its claim go, the request runs, once.
func TestReplyStoreRequeuesWhileHeld(t *testing.T) {
	var requeued atomic.Int64
	hook := WithServerHook(func(ctx context.Context, info *CallInfo) (context.Context, CallEnd) {
		return ctx, func(_ time.Duration, err error) {
			if errors.Is(err, errClaimHeld) {
				requeued.Add(1)
			}
		}
	})
	r := newStoreRig(t, withReplyLease(200*time.Millisecond), hook)
	ctx := context.Background()
	key := replyKey(r.queue, "m-held")
	_, err := r.store.Claim(ctx, key, "other-server", time.Minute)
	require.NoError(t, err)
	r.send(t, "Arith.Multiply", `{"A":6,"B":7}`, "m-held", r.replyQ, "held")
	brokertest.NoDelivery(t, r.replies, time.Second, "a reply while another server holds the claim")
	if got := r.arith.calls.Load(); got != 0 {
		t.Fatalf("the method ran %d times while another server held the claim; want 0", got)
	}
	if got := requeued.Load(); got < 2 {
		t.Fatalf("the request went back to the queue %d times in 1s of waits of 200ms; want at least 2", got)
	}
	require.NoError(t, r.store.Release(ctx, key, "other-server"))
	if d := r.next(t, r.replies, "held"); string(d.Body) != "42" {
		t.Fatalf("reply = %q; want 42", d.Body)
	}
	if got := r.arith.calls.Load(); got != 1 {
		t.Fatalf("the method ran %d times; want 1", got)
	}
}

// TestReplyStoreTakesOverAnExpiredClaim leaves a claim as a server that
// died mid-run does: once its lease is over, the request runs.
func TestReplyStoreTakesOverAnExpiredClaim(t *testing.T) {
	r := newStoreRig(t)
	key := replyKey(r.queue, "m-dead")
	const lease = 500 * time.Millisecond
	begin := time.Now()
	_, err := r.store.Claim(context.Background(), key, "dead-server", lease)
	require.NoError(t, err)
	r.send(t, "Arith.Multiply", `{"A":6,"B":7}`, "m-dead", r.replyQ, "dead")
	if d := r.next(t, r.replies, "dead"); string(d.Body) != "42" {
		t.Fatalf("reply = %q; want 42", d.Body)
	}
	if took := time.Since(begin); took < lease {
		t.Errorf("answered %v after a dead server's claim with a lease of %v; want no sooner than the lease", took, lease)
	}
	if got := r.arith.calls.Load(); got != 1 {
		t.Fatalf("the method ran %d times; want 1", got)
	}
}

// TestReplyStoreRenewsLongRuns runs a method for several leases: its claim
// stays its server's throughout, and then holds the reply.
func TestReplyStoreRenewsLongRuns(t *testing.T) {
	queue := testQueue(t)
	store := NewMemoryStore(0)
	ids := make(chan string, 1)
	hook := func(ctx context.Context, info *CallInfo) (context.Context, CallEnd) {
		ids <- info.MessageID
		return ctx, nil
	}
	const lease = 300 * time.Millisecond
	arith := newArith("s1")
	startServer(t, arith, queue, WithReplyStore(store, replyTTL), withReplyLease(lease), WithServerHook(hook))
	client := dial(t, queue)
	call := client.Go("Arith.Wait", &Args{6, 7}, new(int), nil)
	arith.waitBegan(t)
	key := replyKey(queue, <-ids)
	time.Sleep(4 * lease) // the method runs past several leases
	if c, err := store.Claim(context.Background(), key, "probe", time.Minute); err != nil || c.HeldBy == "" {
		t.Fatalf("Claim of a request running for 4 leases = %+v, %v; want it held by its server", c, err)
	}
	arith.open()
	if c := waitCall(t, call, 10*time.Second, "Arith.Wait"); c.Error != nil || *c.Reply.(*int) != 42 {
		t.Fatalf("Arith.Wait = %v, %v; want 42", *c.Reply.(*int), c.Error)
	}
	if c, _ := store.Claim(context.Background(), key, "probe", time.Minute); c.Reply == nil {
		t.Fatalf("Claim after the reply = %+v; want the reply", c)
	}
}

// failingStore fails every call.
type failingStore struct{ claims, puts atomic.Int64 }

func (s *failingStore) Claim(context.Context, string, string, time.Duration) (Claim, error) {
	s.claims.Add(1)
	return Claim{}, errors.New("store down")
}

func (s *failingStore) Put(context.Context, string, StoredReply, time.Duration) error {
	s.puts.Add(1)
	return errors.New("store down")
}

func (s *failingStore) Release(context.Context, string, string) error {
	return errors.New("store down")
}

// TestReplyStoreFailing serves with a store that fails every call: requests
// run and are answered as without a store.
func TestReplyStoreFailing(t *testing.T) {
	queue := testQueue(t)
	store := &failingStore{}
	arith := newArith("s1")
	startServer(t, arith, queue, WithReplyStore(store, replyTTL))
	client := dial(t, queue)
	for i := range 3 {
		multiply(t, client, 6, i, "with a failing store")
	}
	if got := arith.calls.Load(); got != 3 {
		t.Fatalf("ran %d calls; want 3", got)
	}
	brokertest.WaitFor(t, 5*time.Second, "3 claims and 3 puts tried", func() bool {
		return store.claims.Load() == 3 && store.puts.Load() == 3
	})
}

// TestReplyStoreCoversALostConnection is the race the claim is for: a
// server loses its connection while it runs a request, the broker gives
// the request to a second server sharing the store, and the first one
// finishes. The second sends the first one's reply; the method ran once.
// Without a store it runs twice.
func TestReplyStoreCoversALostConnection(t *testing.T) {
	for _, tc := range []struct {
		name  string
		store bool
		runs  int64
	}{{"store", true, 1}, {"no-store", false, 2}} {
		t.Run(tc.name, func(t *testing.T) {
			url := brokertest.URL(t)
			queue := testQueue(t)
			var opts []ServerOption
			if tc.store {
				opts = append(opts, WithReplyStore(NewMemoryStore(0), replyTTL))
			}
			first := newArith("first")
			conn, err := amqp.Dial(url)
			require.NoError(t, err)
			t.Cleanup(func() { conn.Close() })
			srv := rpc.NewServer()
			require.NoError(t, srv.RegisterName("Arith", first))
			sc, err := NewServerCodec(conn, queue, opts...)
			require.NoError(t, err)
			served := make(chan struct{})
			go func() { srv.ServeCodec(sc); close(served) }()
			client := dial(t, queue, WithCallTimeout(30*time.Second))
			call := client.Go("Arith.Wait", &Args{6, 7}, new(int), nil)
			first.waitBegan(t)

			conn.Close() // the first server's connection is lost mid-run
			second := newArith("second")
			second.open()
			taken := make(chan struct{}, 4)
			startServer(t, second, queue, append(opts, WithServerHook(func(ctx context.Context, _ *CallInfo) (context.Context, CallEnd) {
				taken <- struct{}{}
				return ctx, nil
			}))...)
			select { // the second server has the request: waiting for the claim, or running it
			case <-taken:
			case <-time.After(20 * time.Second):
				t.Fatal("the request was not delivered again to the second server")
			}
			first.open() // the first server finishes: its reply is stored, not sent
			if c := waitCall(t, call, 20*time.Second, "Arith.Wait"); c.Error != nil || *c.Reply.(*int) != 42 {
				t.Fatalf("Arith.Wait = %v, %v; want 42", *c.Reply.(*int), c.Error)
			}
			within(t, 10*time.Second, "the first server's end", func() { <-served })
			if runs := first.calls.Load() + second.calls.Load(); runs != tc.runs {
				t.Fatalf("the method ran %d times (first %d, second %d); want %d", runs, first.calls.Load(), second.calls.Load(), tc.runs)
			}
		})
	}
}

// TestWithReplyStoreChecks refuses a nil store and a ttl shorter than the
// default call timeout.
func TestWithReplyStoreChecks(t *testing.T) {
	for _, tc := range []struct {
		opt  ServerOption
		want string
	}{
		{WithReplyStore(nil, time.Minute), "want a store"},
		{WithReplyStore(NewMemoryStore(0), 10*time.Second), "no less than 30s"},
		{WithReplyStore(NewMemoryStore(0), 0), "want a ttl"},
	} {
		_, err := newServerOptions([]ServerOption{tc.opt})
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("newServerOptions = %v; want an error containing %q", err, tc.want)
		}
	}
	if _, err := newServerOptions([]ServerOption{WithReplyStore(NewMemoryStore(0), DefaultCallTimeout)}); err != nil {
		t.Errorf("WithReplyStore(store, %v) = %v; want nil", DefaultCallTimeout, err)
	}
}

// slowStore is a MemoryStore whose Put takes a while, and says when one
// began.
type slowStore struct {
	*MemoryStore
	delay   time.Duration
	putting chan struct{}
}

func (s *slowStore) Put(ctx context.Context, key string, r StoredReply, ttl time.Duration) error {
	select {
	case s.putting <- struct{}{}:
	default:
	}
	time.Sleep(s.delay) // standing for a slow store
	return s.MemoryStore.Put(ctx, key, r, ttl)
}

// TestReplyStoreStopWaitsForTheStore stops a server while it stores a
// reply: the reply is still published, once stored, before the server
// ends.
func TestReplyStoreStopWaitsForTheStore(t *testing.T) {
	queue := testQueue(t)
	store := &slowStore{MemoryStore: NewMemoryStore(0), delay: 500 * time.Millisecond, putting: make(chan struct{}, 1)}
	arith := newArith("s1")
	arith.open()
	srv := serveArith(t, arith, brokertest.URL(t), queue, WithReplyStore(store, replyTTL))
	brokertest.WaitForConsumers(t, brokertest.URL(t), queue, 1, srv)
	client := dial(t, queue, WithCallTimeout(10*time.Second))
	call := client.Go("Arith.Multiply", &Args{6, 7}, new(int), nil)
	select {
	case <-store.putting:
	case <-time.After(10 * time.Second):
		t.Fatal("no reply was stored within 10s")
	}
	srv.Stop() // while the reply is being stored
	if c := waitCall(t, call, 10*time.Second, "Arith.Multiply"); c.Error != nil || *c.Reply.(*int) != 42 {
		t.Fatalf("Arith.Multiply across the stop = %v, %v; want 42", *c.Reply.(*int), c.Error)
	}
}

// TestReplyStoreCutOffReleasesTheClaim stops a server whose method outlives
// the shutdown grace period: its request goes back to the queue, and its
// claim is released, so that its next delivery runs at once rather than
// after the lease.
func TestReplyStoreCutOffReleasesTheClaim(t *testing.T) {
	queue := testQueue(t)
	store := NewMemoryStore(0)
	ids := make(chan string, 1)
	hook := func(ctx context.Context, info *CallInfo) (context.Context, CallEnd) {
		ids <- info.MessageID
		return ctx, nil
	}
	arith := newArith("s1")
	t.Cleanup(arith.open)
	srv := serveArith(t, arith, brokertest.URL(t), queue, WithReplyStore(store, replyTTL), WithServerHook(hook),
		WithShutdownGrace(100*time.Millisecond))
	brokertest.WaitForConsumers(t, brokertest.URL(t), queue, 1, srv)
	client := dial(t, queue, WithCallTimeout(10*time.Second))
	client.Go("Arith.Wait", &Args{6, 7}, new(int), nil)
	arith.waitBegan(t)
	key := replyKey(queue, <-ids)
	srv.Stop() // the grace period runs out while Wait blocks
	if c, err := store.Claim(context.Background(), key, "probe", time.Minute); err != nil || c != (Claim{}) {
		t.Fatalf("Claim after the request was cut off = %+v, %v; want the claim, released by the stopped server", c, err)
	}
}

// TestReplyStoreManyCallsAtOnce makes calls from many goroutines at once,
// half of them failing, through a server with a store: each gets its own
// reply, its error or its value, as net/rpc reuses its responses between
// calls while the store keeps a reply.
func TestReplyStoreManyCallsAtOnce(t *testing.T) {
	queue := testQueue(t)
	arith := newArith("s1")
	startServer(t, arith, queue, WithReplyStore(NewMemoryStore(0), replyTTL))
	client := dial(t, queue, WithCallTimeout(20*time.Second))
	var wg sync.WaitGroup
	for g := range 16 {
		wg.Go(func() {
			for i := range 40 {
				b := (g + i) % 2 // 0: divide by zero, an error reply
				var q Quotient
				err := client.Call("Arith.Divide", &Args{100 + i, b}, &q)
				switch {
				case b == 0 && (err == nil || err.Error() != "divide by zero"):
					t.Errorf("Divide(%d, 0) = %+v, %v; want divide by zero", 100+i, q, err)
				case b == 1 && (err != nil || q.Quo != 100+i):
					t.Errorf("Divide(%d, 1) = %+v, %v; want %d", 100+i, q, err, 100+i)
				}
			}
		})
	}
	wg.Wait()
}

// TestReplyStoreRepeatIsNoCall checks what the control protocol's STATS
// says of a request answered again from the store: the method ran once, so
// it counts one call, and the repeat is neither a call nor a refusal.
func TestReplyStoreRepeatIsNoCall(t *testing.T) {
	r := newStoreRig(t)
	for _, corr := range []string{"repeat-1", "repeat-2"} {
		r.send(t, "Arith.Multiply", `{"A":6,"B":7}`, "m-repeat", r.replyQ, corr)
		r.next(t, r.replies, corr)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	instances, err := Stats(ctx, brokertest.URL(t), r.queue)
	require.NoError(t, err)
	require.Len(t, instances, 1)
	in := instances[0]
	if in.Refused != 0 {
		t.Errorf("Stats: refused = %d; want 0 (a repeat answered from the store is no refusal)", in.Refused)
	}
	var calls uint64
	for _, m := range in.Methods {
		calls += m.Calls
	}
	if calls != 1 {
		t.Errorf("Stats: %d calls over %v; want 1 (the method ran once)", calls, in.Methods)
	}
}

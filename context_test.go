package amqprpc

import (
	"context"
	"encoding/json"
	"errors"
	"io"
	"math"
	"net"
	"net/rpc"
	"net/rpc/jsonrpc"
	"strconv"
	"strings"
	"testing"
	"time"

	amqp "github.com/rabbitmq/amqp091-go"

	"github.com/amqprpc/amqprpc/internal/brokertest"
)

// CtxArgs is an argument that carries the request's Delivery, and so its
// context.
type CtxArgs struct {
	N int
	Delivery
}

// CtxReply reports the context a request arrived with.
type CtxReply struct {
	HasDeadline bool
	DeadlineMS  int64
	Token       string // put in the context by a server hook
}

// ctxService reports the context of its requests.
type ctxService struct {
	next  *rpc.Client // Relay calls it
	ended chan error  // UntilDone reports its context's end here
}

func (s *ctxService) Deadline(args *CtxArgs, reply *CtxReply) error {
	ctx := args.Context()
	d, ok := ctx.Deadline()
	*reply = CtxReply{HasDeadline: ok}
	if ok {
		reply.DeadlineMS = d.UnixMilli()
	}
	reply.Token, _ = ctx.Value(tokenKey{}).(string)
	return nil
}

// Relay asks the next service for its deadline, passing the request's
// context on.
func (s *ctxService) Relay(args *CtxArgs, reply *CtxReply) error {
	return Call(args.Context(), s.next, "Arith.Deadline", &CtxArgs{N: args.N}, reply)
}

// UntilDone waits for the request's context to end, and reports how.
func (s *ctxService) UntilDone(args *CtxArgs, reply *CtxReply) error {
	select {
	case <-args.Context().Done():
		s.ended <- args.Context().Err()
	case <-time.After(10 * time.Second):
		s.ended <- errors.New("the context did not end within 10s")
	}
	return args.Context().Err()
}

// pendingIn returns the calls a client codec holds and the slots they take.
func pendingIn(c *clientCodec) (calls, slots int) {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.calls.len(), len(c.slots)
}

// ourClient returns a client of queue and its codec, closed when the test
// ends.
func ourClient(t *testing.T, url, queue string, opts ...ClientOption) (*rpc.Client, *clientCodec) {
	t.Helper()
	cc, err := newClientCodec(context.Background(), nil, url, queue, opts)
	if err != nil {
		t.Fatalf("newClientCodec(%q) = %v", queue, err)
	}
	client := rpc.NewClientWithCodec(cc)
	t.Cleanup(func() { client.Close() })
	return client, cc
}

// TestCallReturnsWhenContextEnds checks that Call returns with ctx's error
// when ctx ends mid-call, and that the client then holds neither the call
// nor its in-flight slot: with one slot, the next call goes through at
// once instead of waiting for the stuck call's 30s timeout.
func TestCallReturnsWhenContextEnds(t *testing.T) {
	queue := testQueue(t)
	arith := newArith("s1")
	startServer(t, arith, queue)
	t.Cleanup(arith.open) // before the server stops: Wait calls must end
	client, cc := ourClient(t, brokertest.URL(t), queue, WithMaxInFlight(1), WithCallTimeout(30*time.Second))

	for _, tt := range []struct {
		name string
		ctx  func() (context.Context, context.CancelFunc)
		end  func(cancel context.CancelFunc) // ends ctx once Wait runs
		want error
	}{
		{"cancel", func() (context.Context, context.CancelFunc) { return context.WithCancel(context.Background()) },
			func(cancel context.CancelFunc) { cancel() }, context.Canceled},
		{"deadline", func() (context.Context, context.CancelFunc) {
			return context.WithTimeout(context.Background(), 500*time.Millisecond)
		}, func(context.CancelFunc) {}, context.DeadlineExceeded},
	} {
		t.Run(tt.name, func(t *testing.T) {
			ctx, cancel := tt.ctx()
			defer cancel()
			go func() {
				select {
				case <-arith.began:
					tt.end(cancel)
				case <-ctx.Done(): // the request expired before it ran
				}
			}()
			start := time.Now()
			var r int
			err := Call(ctx, client, "Arith.Wait", &Args{2, 3}, &r)
			if !errors.Is(err, tt.want) || !errors.Is(err, ctx.Err()) {
				t.Fatalf("Call(Arith.Wait) = %v; want an error matching %v", err, tt.want)
			}
			if took := time.Since(start); took > 5*time.Second {
				t.Errorf("Call(Arith.Wait) returned after %v; want it to return when ctx ends", took)
			}
			if calls, slots := pendingIn(cc); calls != 0 || slots != 0 {
				t.Errorf("after Call returned: %d calls pending, %d slots taken; want 0, 0", calls, slots)
			}
			within(t, 5*time.Second, "the next call, on the freed slot", func() {
				if err := Call(context.Background(), client, "Arith.Multiply", &Args{6, 7}, &r); err != nil || r != 42 {
					t.Errorf("Call(Arith.Multiply) = %d, %v; want 42, nil", r, err)
				}
			})
		})
	}
}

// TestCallWaitingForASlotEndsWithContext checks that a call waiting for an
// in-flight slot gives up when its context ends, not at its call timeout.
func TestCallWaitingForASlotEndsWithContext(t *testing.T) {
	queue := testQueue(t)
	arith := newArith("s1")
	startServer(t, arith, queue)
	t.Cleanup(arith.open)
	client, cc := ourClient(t, brokertest.URL(t), queue, WithMaxInFlight(1), WithCallTimeout(30*time.Second))

	stuck := client.Go("Arith.Wait", &Args{1, 1}, new(int), nil)
	arith.waitBegan(t)
	ctx, cancel := context.WithTimeout(context.Background(), 300*time.Millisecond)
	defer cancel()
	start := time.Now()
	err := Call(ctx, client, "Arith.Multiply", &Args{2, 2}, new(int))
	if !errors.Is(err, context.DeadlineExceeded) || time.Since(start) > 5*time.Second {
		t.Fatalf("Call waiting for a slot = %v after %v; want DeadlineExceeded after 300ms", err, time.Since(start))
	}
	arith.open()
	<-stuck.Done
	if stuck.Error != nil {
		t.Fatalf("the call that held the slot = %v; want it answered", stuck.Error)
	}
	brokertest.WaitFor(t, 5*time.Second, "slots to free", func() bool { _, slots := pendingIn(cc); return slots == 0 })
}

// TestCallDeadlineOnTheWire plays the server and checks the expiration and
// the deadline header of requests made with Call and without.
func TestCallDeadlineOnTheWire(t *testing.T) {
	queue := testQueue(t)
	_, ch := rawConn(t)
	if _, err := ch.QueueDeclare(queue, false, false, false, false, nil); err != nil {
		t.Fatal(err)
	}
	requests := brokertest.Consume(t, ch, queue)
	client, _ := ourClient(t, brokertest.URL(t), queue, WithCallTimeout(30*time.Second))

	// send makes a call that nobody answers, returns its request, and
	// abandons the call.
	send := func(t *testing.T, ctx context.Context, plain bool) amqp.Delivery {
		t.Helper()
		ctx, cancel := context.WithCancel(ctx)
		done := make(chan error, 1)
		go func() {
			if plain {
				call := client.Go("Arith.Multiply", &Args{1, 2}, new(int), nil)
				<-ctx.Done()
				done <- call.Error
				return
			}
			done <- Call(ctx, client, "Arith.Multiply", &Args{1, 2}, new(int))
		}()
		d := brokertest.NextDelivery(t, requests, "request")
		cancel()
		if err := <-done; !plain && !errors.Is(err, context.Canceled) {
			t.Errorf("Call after cancel = %v; want context.Canceled", err)
		}
		return d
	}
	ms := func(t *testing.T, d amqp.Delivery) int64 {
		t.Helper()
		n, err := strconv.ParseInt(d.Expiration, 10, 64)
		if err != nil {
			t.Fatalf("expiration = %q; want milliseconds", d.Expiration)
		}
		return n
	}

	t.Run("context deadline before the timeout", func(t *testing.T) {
		deadline := time.Now().Add(5 * time.Second)
		ctx, cancel := context.WithDeadline(context.Background(), deadline)
		defer cancel()
		d := send(t, ctx, false)
		if exp := ms(t, d); exp > 5000 || exp < 4000 {
			t.Errorf("expiration = %d; want the 5s left, not the 30s timeout", exp)
		}
		if got := d.Headers[DeadlineHeader]; got != deadline.UnixMilli() {
			t.Errorf("header %s = %v (%T); want %d", DeadlineHeader, got, got, deadline.UnixMilli())
		}
	})
	t.Run("timeout before the context deadline", func(t *testing.T) {
		ctx, cancel := context.WithTimeout(context.Background(), time.Hour)
		defer cancel()
		before := time.Now()
		d := send(t, ctx, false)
		if exp := ms(t, d); exp > 30000 || exp < 29000 {
			t.Errorf("expiration = %d; want the 30s timeout", exp)
		}
		got, _ := d.Headers[DeadlineHeader].(int64)
		if lo, hi := before.Add(30*time.Second).UnixMilli(), time.Now().Add(30*time.Second).UnixMilli(); got < lo || got > hi {
			t.Errorf("header %s = %d; want the call timeout's end, in [%d, %d]", DeadlineHeader, got, lo, hi)
		}
	})
	for _, tt := range []struct {
		name  string
		plain bool
	}{{"client.Go", true}, {"Call without a deadline", false}} {
		t.Run(tt.name, func(t *testing.T) {
			d := send(t, context.Background(), tt.plain)
			if d.Expiration != "30000" || d.Headers != nil {
				t.Errorf("expiration = %q, headers = %v; want 30000 and none, as before Call", d.Expiration, d.Headers)
			}
		})
	}
}

// TestServerSeesCallerDeadline checks that a service gets the caller's
// deadline from Delivery.Context, and passes it on to its own calls.
func TestServerSeesCallerDeadline(t *testing.T) {
	url := brokertest.URL(t)
	back, front := testQueue(t), testQueue(t)
	startServer(t, new(ctxService), back)
	next, _ := ourClient(t, url, back)
	startServer(t, &ctxService{next: next}, front)
	client, _ := ourClient(t, url, front)

	deadline := time.Now().Add(7 * time.Second)
	ctx, cancel := context.WithDeadline(context.Background(), deadline)
	defer cancel()
	for _, method := range []string{"Arith.Deadline", "Arith.Relay"} {
		var r CtxReply
		if err := Call(ctx, client, method, &CtxArgs{N: 1}, &r); err != nil || !r.HasDeadline || r.DeadlineMS != deadline.UnixMilli() {
			t.Errorf("Call(%q) = %+v, %v; want the deadline %d", method, r, err, deadline.UnixMilli())
		}
	}
	var r CtxReply
	if err := client.Call("Arith.Deadline", &CtxArgs{N: 1}, &r); err != nil || r.HasDeadline {
		t.Errorf("client.Call(Arith.Deadline) = %+v, %v; want no deadline", r, err)
	}
}

// TestServerContextEndsAtDeadline checks that the service's context is
// done at the caller's deadline.
func TestServerContextEndsAtDeadline(t *testing.T) {
	queue := testQueue(t)
	svc := &ctxService{ended: make(chan error, 1)}
	startServer(t, svc, queue)
	client, _ := ourClient(t, brokertest.URL(t), queue)
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
	defer cancel()
	// The service gives up at the same moment as the caller (a little
	// before: the header has whole milliseconds), so its error may reach
	// the caller first.
	if err := Call(ctx, client, "Arith.UntilDone", &CtxArgs{}, new(CtxReply)); err == nil {
		t.Errorf("Call(Arith.UntilDone) = nil; want the deadline's error")
	}
	select {
	case err := <-svc.ended:
		if !errors.Is(err, context.DeadlineExceeded) {
			t.Errorf("the service's context ended with %v; want DeadlineExceeded", err)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("the service did not return within 10s")
	}
}

// TestHeldRequestExpiresWithContext cuts the client off the broker, makes a
// call with a 4s context while it is disconnected, and lets it reconnect
// 1s later: the request published then expires in what is left of the 4s,
// not in the 30s call timeout.
func TestHeldRequestExpiresWithContext(t *testing.T) {
	url := brokertest.URL(t)
	u, err := amqp.ParseURI(url)
	if err != nil {
		t.Fatalf("ParseURI = %v", err)
	}
	p := newTCPProxy(t, net.JoinHostPort(u.Host, strconv.Itoa(u.Port)))
	u.Host, u.Port = "127.0.0.1", p.Port()

	queue := testQueue(t)
	_, ch := rawConn(t)
	if _, err := ch.QueueDeclare(queue, false, false, false, false, nil); err != nil {
		t.Fatal(err)
	}
	requests := brokertest.Consume(t, ch, queue)
	client, cc := ourClient(t, u.String(), queue, WithCallTimeout(30*time.Second), WithReconnectBackoff(20*time.Millisecond, 50*time.Millisecond))
	within(t, 10*time.Second, "a first call", func() { _ = client.Go("Arith.Multiply", &Args{1, 1}, new(int), nil) })
	brokertest.NextDelivery(t, requests, "the first request")

	p.Pause()
	p.Cut()
	brokertest.WaitFor(t, 5*time.Second, "the client to see its connection lost", func() bool {
		cc.mu.Lock()
		defer cc.mu.Unlock()
		return cc.lostGen > 0
	})
	deadline := time.Now().Add(4 * time.Second)
	ctx, cancel := context.WithDeadline(context.Background(), deadline)
	defer cancel()
	go func() { _ = Call(ctx, client, "Arith.Multiply", &Args{2, 2}, new(int)) }()
	brokertest.WaitFor(t, 5*time.Second, "the call held for a reconnect", func() bool {
		cc.mu.Lock()
		defer cc.mu.Unlock()
		waiting := false
		cc.calls.each(func(cl *call) { waiting = waiting || cl.state == held })
		return waiting
	})
	time.Sleep(time.Second) // the time the request waits is the point
	p.Resume()
	d := brokertest.NextDelivery(t, requests, "the held request")
	exp, err := strconv.ParseInt(d.Expiration, 10, 64)
	left := time.Until(deadline).Milliseconds()
	if err != nil || exp > 3100 || exp < left-500 {
		t.Errorf("held request's expiration = %q, %d ms of the context left; want about that, at most 3000", d.Expiration, left)
	}
	if got := d.Headers[DeadlineHeader]; got != deadline.UnixMilli() {
		t.Errorf("held request's %s = %v; want %d", DeadlineHeader, got, deadline.UnixMilli())
	}
}

// TestCallNeedsOurClient checks that Call refuses a client of another codec
// and sends nothing.
func TestCallNeedsOurClient(t *testing.T) {
	for _, tt := range []struct {
		name   string
		client func(io.ReadWriteCloser) *rpc.Client
	}{
		{"gob over TCP", rpc.NewClient},
		{"jsonrpc", jsonrpc.NewClient},
	} {
		t.Run(tt.name, func(t *testing.T) {
			mine, theirs := net.Pipe()
			defer theirs.Close()
			client := tt.client(mine)
			defer client.Close()
			err := Call(context.Background(), client, "Arith.Multiply", &Args{1, 2}, new(int))
			if err == nil || !strings.Contains(err.Error(), "amqprpc.Dial") {
				t.Errorf("Call(%s client) = %v; want it refused", tt.name, err)
			}
		})
	}
	if err := Call(context.Background(), nil, "Arith.Multiply", &Args{1, 2}, new(int)); err == nil {
		t.Errorf("Call(nil client) = nil; want an error")
	}
	// Should a callArgs reach another codec all the same, it does not encode.
	if _, err := json.Marshal(&callArgs{args: &Args{1, 2}}); err == nil || !strings.Contains(err.Error(), "amqprpc.Dial") {
		t.Errorf("json.Marshal(callArgs) = %v; want Call's error", err)
	}
}

func TestDeadlineFrom(t *testing.T) {
	const ms = 1_800_000_000_123
	want := time.UnixMilli(ms)
	for _, tt := range []struct {
		name string
		h    amqp.Table
		ok   bool
	}{
		{"int64 (Go, pika, amqplib)", amqp.Table{DeadlineHeader: int64(ms)}, true},
		{"float64", amqp.Table{DeadlineHeader: float64(ms)}, true},
		{"decimal string", amqp.Table{DeadlineHeader: strconv.FormatInt(ms, 10)}, true},
		{"decimal bytes", amqp.Table{DeadlineHeader: []byte(strconv.FormatInt(ms, 10))}, true},
		{"none", amqp.Table{}, false},
		{"nil table", nil, false},
		{"zero", amqp.Table{DeadlineHeader: int64(0)}, false},
		{"negative", amqp.Table{DeadlineHeader: int32(-5)}, false},
		{"garbage string", amqp.Table{DeadlineHeader: "soon"}, false},
		{"NaN", amqp.Table{DeadlineHeader: math.NaN()}, false},
		{"huge", amqp.Table{DeadlineHeader: uint64(math.MaxUint64)}, false},
		{"a table", amqp.Table{DeadlineHeader: amqp.Table{}}, false},
	} {
		t.Run(tt.name, func(t *testing.T) {
			got, ok := deadlineFrom(tt.h)
			if ok != tt.ok || (ok && !got.Equal(want)) {
				t.Errorf("deadlineFrom(%v) = %v, %v; want %v, %v", tt.h, got, ok, want, tt.ok)
			}
		})
	}
}

// TestDeliveryContextWithoutServer checks the context of a Delivery the
// server did not fill in.
func TestDeliveryContextWithoutServer(t *testing.T) {
	var d Delivery
	var nilD *Delivery
	for _, ctx := range []context.Context{d.Context(), nilD.Context()} {
		if ctx != context.Background() {
			t.Errorf("Context() of an empty Delivery = %v; want context.Background()", ctx)
		}
	}
}

package amqprpc

import (
	"context"
	"errors"
	"fmt"
	"net/rpc"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	amqp "github.com/rabbitmq/amqp091-go"

	"github.com/amqprpc/amqprpc/internal/brokertest"
)

// tokenKey is the context key a test server hook puts a token under.
type tokenKey struct{}

// hookCall is what a test hook saw of one call.
type hookCall struct {
	info    CallInfo
	header  amqp.Table // a copy of info.Header as the hook saw it
	elapsed time.Duration
	err     error
	ended   bool
}

// hookLog records what hooks see.
type hookLog struct {
	mu    sync.Mutex // guards calls and order
	calls []*hookCall
	order []string // "begin name", "end name"
}

func (l *hookLog) note(s string) {
	l.mu.Lock()
	l.order = append(l.order, s)
	l.mu.Unlock()
}

func (l *hookLog) begin(info *CallInfo) *hookCall {
	hc := &hookCall{info: *info, header: amqp.Table{}}
	for k, v := range info.Header {
		hc.header[k] = v
	}
	l.mu.Lock()
	l.calls = append(l.calls, hc)
	l.mu.Unlock()
	return hc
}

func (l *hookLog) end(hc *hookCall) CallEnd {
	return func(elapsed time.Duration, err error) {
		l.mu.Lock()
		defer l.mu.Unlock()
		if hc.ended {
			panic("CallEnd called twice")
		}
		hc.elapsed, hc.err, hc.ended = elapsed, err, true
	}
}

// waitEnded waits for n calls, all ended, and returns them.
func (l *hookLog) waitEnded(t *testing.T, n int) []*hookCall {
	t.Helper()
	var calls []*hookCall
	brokertest.WaitFor(t, 10*time.Second, fmt.Sprintf("%d calls ended", n), func() bool {
		l.mu.Lock()
		defer l.mu.Unlock()
		calls = slices.Clone(l.calls)
		for _, c := range calls {
			if !c.ended {
				return false
			}
		}
		return len(calls) >= n
	})
	return calls
}

// tokenHooks are a client hook that sends a token in a header, and a
// server hook that reads it into the service's context: an auth token's
// way through the hooks.
func tokenHooks(client, server *hookLog) (ClientHook, ServerHook) {
	c := func(ctx context.Context, info *CallInfo) CallEnd {
		info.Header["x-token"] = "secret-" + info.Method
		return client.end(client.begin(info))
	}
	s := func(ctx context.Context, info *CallInfo) (context.Context, CallEnd) {
		hc := server.begin(info)
		token, _ := info.Header["x-token"].(string)
		return context.WithValue(ctx, tokenKey{}, token), server.end(hc)
	}
	return c, s
}

// TestHooksSeeEveryCall checks what the hooks of each side see of a call
// that succeeds and of one the service fails, and that a header a client
// hook writes reaches the service through the server hook.
func TestHooksSeeEveryCall(t *testing.T) {
	queue := testQueue(t)
	var clientLog, serverLog hookLog
	ch, sh := tokenHooks(&clientLog, &serverLog)
	svc := newArith("s1")
	srv := rpc.NewServer()
	if err := srv.RegisterName("Arith", svc); err != nil {
		t.Fatal(err)
	}
	if err := srv.RegisterName("Ctx", new(ctxService)); err != nil {
		t.Fatal(err)
	}
	url := brokertest.URL(t)
	s := brokertest.Serve(t, func(ctx context.Context) error { return Serve(ctx, srv, url, queue, WithHooks(nil, sh)) })
	brokertest.WaitForConsumers(t, url, queue, 1, s)
	client := dial(t, queue, WithHooks(ch, nil))

	var r CtxReply
	if err := client.Call("Ctx.Deadline", &CtxArgs{N: 1}, &r); err != nil || r.Token != "secret-Ctx.Deadline" {
		t.Fatalf("Call(Ctx.Deadline) = %+v, %v; want the token the client hook sent", r, err)
	}
	err := client.Call("Arith.Divide", &Args{1, 0}, new(Quotient))
	if err == nil || err.Error() != "divide by zero" {
		t.Fatalf("Call(Arith.Divide by 0) = %v; want divide by zero", err)
	}

	clientCalls, serverCalls := clientLog.waitEnded(t, 2), serverLog.waitEnded(t, 2)
	if len(clientCalls) != 2 || len(serverCalls) != 2 {
		t.Fatalf("hooks saw %d client and %d server calls; want 2 and 2", len(clientCalls), len(serverCalls))
	}
	for i, want := range []struct {
		method string
		err    error
	}{{"Ctx.Deadline", nil}, {"Arith.Divide", rpc.ServerError("divide by zero")}} {
		c, s := clientCalls[i], serverCalls[i]
		for side, hc := range map[string]*hookCall{"client": c, "server": s} {
			switch {
			case hc.info.Method != want.method || hc.info.Queue != queue:
				t.Errorf("%s hook: Method, Queue = %q, %q; want %q, %q", side, hc.info.Method, hc.info.Queue, want.method, queue)
			case hc.info.CorrelationID == "" || hc.info.MessageID == "":
				t.Errorf("%s hook of %s: CorrelationID %q, MessageID %q; want both", side, want.method, hc.info.CorrelationID, hc.info.MessageID)
			case hc.elapsed <= 0:
				t.Errorf("%s hook of %s: elapsed %v; want more than 0", side, want.method, hc.elapsed)
			case !errors.Is(hc.err, want.err) && hc.err != want.err:
				t.Errorf("%s hook of %s: err %v; want %v", side, want.method, hc.err, want.err)
			}
		}
		if s.info.CorrelationID != c.info.CorrelationID || s.info.MessageID != c.info.MessageID {
			t.Errorf("server hook ids %q, %q; want the client's %q, %q", s.info.CorrelationID, s.info.MessageID, c.info.CorrelationID, c.info.MessageID)
		}
		if got := s.header["x-token"]; got != "secret-"+want.method {
			t.Errorf("server hook of %s: header x-token = %v; want the client hook's", want.method, got)
		}
		if c.info.Deadline.IsZero() || !s.info.Deadline.IsZero() {
			t.Errorf("Deadline: client %v, server %v; want the call timeout's end, and none for a plain client.Call", c.info.Deadline, s.info.Deadline)
		}
	}
}

// TestHookOrder checks that hooks run in the order given and their ends
// in reverse, and that a hook may return no CallEnd.
func TestHookOrder(t *testing.T) {
	queue := testQueue(t)
	var log hookLog
	client := func(name string) ClientHook {
		return func(context.Context, *CallInfo) CallEnd {
			log.note("begin client " + name)
			if name == "silent" {
				return nil
			}
			return func(time.Duration, error) { log.note("end client " + name) }
		}
	}
	server := func(name string) ServerHook {
		return func(ctx context.Context, _ *CallInfo) (context.Context, CallEnd) {
			log.note("begin server " + name)
			return nil, func(time.Duration, error) { log.note("end server " + name) }
		}
	}
	startServer(t, newArith("s1"), queue, WithServerHook(server("a")), WithServerHook(server("b")))
	c := dial(t, queue, WithClientHook(client("a")), WithClientHook(client("silent")), WithClientHook(client("b")))
	if err := c.Call("Arith.Multiply", &Args{2, 3}, new(int)); err != nil {
		t.Fatal(err)
	}
	// Each side in its own order. Across the two, the server's ends run
	// after its reply is published, so they may come after the client's.
	want := map[string][]string{
		"client": {"begin client a", "begin client silent", "begin client b", "end client b", "end client a"},
		"server": {"begin server a", "begin server b", "end server b", "end server a"},
	}
	brokertest.WaitFor(t, 10*time.Second, "every hook to end", func() bool {
		log.mu.Lock()
		defer log.mu.Unlock()
		return len(log.order) >= len(want["client"])+len(want["server"])
	})
	log.mu.Lock()
	defer log.mu.Unlock()
	got := map[string][]string{}
	for _, e := range log.order {
		side := strings.Fields(e)[1]
		got[side] = append(got[side], e)
	}
	for side, w := range want {
		if !slices.Equal(got[side], w) {
			t.Errorf("%s hooks ran as %q; want %q (all: %q)", side, got[side], w, log.order)
		}
	}
	if i, j := slices.Index(log.order, "begin server a"), slices.Index(log.order, "begin client b"); i < j {
		t.Errorf("a server hook began before the client's last hook: %q", log.order)
	}
}

// TestClientHookSeesFailures checks the error a client hook gets for calls
// that fail on their way: no queue, a timeout, Call's context, and Close.
func TestClientHookSeesFailures(t *testing.T) {
	queue := testQueue(t)
	arith := newArith("s1")
	startServer(t, arith, queue)
	t.Cleanup(arith.open)
	var log hookLog
	hook := WithClientHook(func(_ context.Context, info *CallInfo) CallEnd { return log.end(log.begin(info)) })

	missing := dial(t, testQueue(t), hook)
	_ = missing.Call("Arith.Multiply", &Args{1, 1}, new(int))
	short := dial(t, queue, hook, WithCallTimeout(time.Second))
	_ = short.Call("Arith.Wait", &Args{1, 1}, new(int))
	arith.waitBegan(t)
	ctx, cancel := context.WithCancel(context.Background())
	go func() {
		select {
		case <-arith.began:
		case <-time.After(10 * time.Second): // the call then fails as cancelled all the same
		}
		cancel()
	}()
	_ = Call(ctx, dial(t, queue, hook), "Arith.Wait", &Args{2, 1}, new(int))
	closing, err := Dial(brokertest.URL(t), queue, hook)
	if err != nil {
		t.Fatal(err)
	}
	call := closing.Go("Arith.Wait", &Args{3, 1}, new(int), nil)
	arith.waitBegan(t)
	closing.Close()
	<-call.Done

	calls := log.waitEnded(t, 4)
	for i, want := range []struct {
		what string
		is   func(error) bool
	}{
		{"no queue", func(err error) bool { return errors.Is(Cause(err), ErrNoQueue) }},
		{"timeout", func(err error) bool { return errors.Is(Cause(err), ErrTimeout) }},
		{"context", func(err error) bool { return errors.Is(err, context.Canceled) }},
		{"close", func(err error) bool { return errors.Is(err, rpc.ErrShutdown) }},
	} {
		if i >= len(calls) || !want.is(calls[i].err) {
			t.Errorf("client hook, call %d (%s): err = %v", i, want.what, calls[i].err)
		}
	}
}

// TestServerHookSeesRefusals checks that a request the server refuses on
// its own reaches the server hooks, with the error its caller gets.
func TestServerHookSeesRefusals(t *testing.T) {
	queue := testQueue(t)
	var log hookLog
	startServer(t, newArith("s1"), queue, WithServerHook(func(ctx context.Context, info *CallInfo) (context.Context, CallEnd) {
		return ctx, log.end(log.begin(info))
	}))
	_, ch := rawConn(t)
	err := ch.Publish("", queue, false, false, amqp.Publishing{Type: "Arith.Multiply", ContentType: "text/html", Body: []byte("6*7"), CorrelationId: "c1", MessageId: "m1"})
	if err != nil {
		t.Fatal(err)
	}
	calls := log.waitEnded(t, 1)
	if got := calls[0]; got.info.MessageID != "m1" || got.err == nil || !strings.HasPrefix(got.err.Error(), ErrUnsupportedContentType.Error()) {
		t.Errorf("server hook saw %+v, err %v; want message m1 refused for its content type", got.info, got.err)
	}
}

func TestNilHooksAreRejected(t *testing.T) {
	if _, err := newClientOptions([]ClientOption{WithClientHook(nil)}); err == nil || !strings.Contains(err.Error(), "WithClientHook(nil)") {
		t.Errorf("WithClientHook(nil) = %v; want an error", err)
	}
	if _, err := newServerOptions([]ServerOption{WithServerHook(nil)}); err == nil || !strings.Contains(err.Error(), "WithServerHook(nil)") {
		t.Errorf("WithServerHook(nil) = %v; want an error", err)
	}
	c, err := newClientOptions([]ClientOption{WithHooks(nil, nil)})
	if err != nil || len(c.hooks) != 0 {
		t.Errorf("WithHooks(nil, nil) = %d hooks, %v; want none, nil", len(c.hooks), err)
	}
}

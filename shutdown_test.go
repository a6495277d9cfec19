package amqprpc

import (
	"context"
	"errors"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/amqprpc/amqprpc/internal/brokertest"
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

// cutService has two slow methods: one returns when its request's context
// ends, the other ignores its context; both return at once when release
// is closed.
type cutService struct {
	began   chan struct{} // a method started
	cause   chan error    // UntilCancelled reports context.Cause of its context's end
	release chan struct{}
	seen    chan bool // each run reports whether its request was redelivered
}

func newCutService() *cutService {
	return &cutService{began: make(chan struct{}, 8), cause: make(chan error, 8), release: make(chan struct{}), seen: make(chan bool, 8)}
}

func (s *cutService) UntilCancelled(args *CtxArgs, reply *int) error {
	s.seen <- args.Redelivered
	s.began <- struct{}{}
	ctx := args.Context()
	select {
	case <-ctx.Done():
		s.cause <- context.Cause(ctx)
		return ctx.Err()
	case <-s.release:
		*reply = args.N
		return nil
	}
}

func (s *cutService) Stubborn(args *CtxArgs, reply *int) error {
	s.seen <- args.Redelivered
	s.began <- struct{}{}
	<-s.release
	*reply = args.N
	return nil
}

// TestShutdownGraceCutsOffRunningMethods: when Serve's context ends, a
// method still running after the grace period has its context cancelled
// (with a cause that matches ErrClosed) and its request goes back to the
// queue unanswered; Serve returns without waiting for it, even for a
// method that ignores its context. The request is not lost: another
// server answers the call, and the hooks saw the first run end once.
func TestShutdownGraceCutsOffRunningMethods(t *testing.T) {
	for _, method := range []string{"UntilCancelled", "Stubborn"} {
		t.Run(method, func(t *testing.T) {
			queue := testQueue(t)
			url := brokertest.URL(t)
			var hooks hookLog
			hook := func(ctx context.Context, info *CallInfo) (context.Context, CallEnd) {
				return ctx, hooks.end(hooks.begin(info))
			}
			first := newCutService()
			t.Cleanup(func() { close(first.release) }) // the stubborn method returns at last; its reply is dropped
			s := serveArith(t, first, url, queue, WithShutdownGrace(200*time.Millisecond), WithServerHook(hook))
			brokertest.WaitForConsumers(t, url, queue, 1, s)
			client := dial(t, queue, WithCallTimeout(30*time.Second))
			call := client.Go("Arith."+method, &CtxArgs{N: 7}, new(int), nil)
			within(t, 10*time.Second, "the method to begin", func() { <-first.began })

			within(t, 10*time.Second, "Serve to return once the grace period ran out", s.Stop)
			if method == "UntilCancelled" {
				if cause := <-first.cause; !errors.Is(cause, ErrClosed) {
					t.Errorf("context.Cause of the cut-off method's context = %v; want it to match ErrClosed", cause)
				}
			}
			ended := hooks.waitEnded(t, 1)
			if len(ended) != 1 || !errors.Is(ended[0].err, ErrClosed) {
				t.Errorf("server hook ends = %d, first with %v; want 1, matching ErrClosed", len(ended), ended[0].err)
			}

			second := newCutService()
			close(second.release)
			startServer(t, second, queue)
			c := waitCall(t, call, 20*time.Second, "the call cut off on the first server")
			if c.Error != nil || *c.Reply.(*int) != 7 {
				t.Fatalf("Call(Arith.%s) = %d, %v; want 7 from the second server", method, *c.Reply.(*int), c.Error)
			}
			if redelivered := <-second.seen; !redelivered {
				t.Errorf("the second server's request: Redelivered = false; want true, back from the first")
			}
		})
	}
}

// Package service is the Fibonacci example's service: Fib and Sum, answered
// by named instances that share one queue, so that a caller can watch the
// broker spread a burst of calls among them.
package service

import (
	"context"
	"errors"
	"fmt"
	"net/rpc"
	"time"

	"github.com/amqprpc/amqprpc"
)

// Queue is the example's service queue, the name RabbitMQ's own RPC tutorial
// uses.
const Queue = "rpc_queue"

// MaxN is the largest n Fib accepts: F(92) is the largest Fibonacci number
// an int64 holds.
const MaxN = 92

// Args is the argument of Fib and Sum.
type Args struct {
	N int
}

// Reply is a result and the name of the instance that computed it.
type Reply struct {
	Value    int64
	Instance string
}

// Fibonacci is the service. Every instance has a name, which it puts in its
// replies.
type Fibonacci struct {
	Instance string
}

// Fib sets reply to the n-th Fibonacci number, F(0) = 0 and F(1) = 1,
// computed iteratively. It fails for n outside 0 to [MaxN].
func (f *Fibonacci) Fib(args *Args, reply *Reply) error {
	if args.N < 0 || args.N > MaxN {
		return fmt.Errorf("fib(%d): n must be between 0 and %d", args.N, MaxN)
	}
	a, b := int64(0), int64(1)
	for range args.N {
		a, b = b, a+b
	}
	*reply = Reply{Value: a, Instance: f.Instance}
	return nil
}

// Sum sets reply to n+100.
func (f *Fibonacci) Sum(args *Args, reply *Reply) error {
	*reply = Reply{Value: int64(args.N) + 100, Instance: f.Instance}
	return nil
}

// QueueExpiry is how long the queue outlives its last instance.
const QueueExpiry = 10 * time.Second

// Serve serves a Fibonacci instance named instance on queue until ctx ends.
// The instance takes one request at a time (prefetch 1): while it works on
// one, the broker hands the next to an idle instance. The broker deletes the
// queue once no instance has consumed it for QueueExpiry, so a demo leaves
// nothing behind. opts come after these and so can override them.
func Serve(ctx context.Context, url, queue, instance string, opts ...amqprpc.ServerOption) error {
	// Each instance has a server of its own, since each has its own name.
	srv := rpc.NewServer()
	if err := srv.Register(&Fibonacci{Instance: instance}); err != nil {
		return err
	}
	opts = append([]amqprpc.ServerOption{amqprpc.WithPrefetch(1), amqprpc.WithQueueExpiry(QueueExpiry)}, opts...)
	return amqprpc.Serve(ctx, srv, url, queue, opts...)
}

// Burst sends Fib(0), Fib(1), ..., Fib(n-1) at once with client.Go, so that
// they wait in the queue together, and returns their replies in order. The
// error joins those of the calls that failed.
func Burst(client *rpc.Client, n int) ([]Reply, error) {
	calls := make([]*rpc.Call, n)
	for i := range calls {
		calls[i] = client.Go("Fibonacci.Fib", &Args{N: i}, new(Reply), nil)
	}
	replies := make([]Reply, n)
	var errs []error
	for i, call := range calls {
		<-call.Done
		if call.Error != nil {
			errs = append(errs, fmt.Errorf("Fib(%d): %w", i, call.Error))
			continue
		}
		replies[i] = *call.Reply.(*Reply)
	}
	return replies, errors.Join(errs...)
}

// WaitServed returns once a server answers calls on client's queue.
// [amqprpc.Serve] gives no sign that it has started, and until a server has
// declared its queue the broker returns requests to it
// ([amqprpc.ErrNoQueue]), so a caller started along with its servers asks
// again, for up to d. (A queue that exists with no server holds the
// question until one comes or the call times out.) It asks with
// [amqprpc.PingType], which an amqprpc server answers in its codec without
// running or counting a call.
func WaitServed(client *rpc.Client, d time.Duration) error {
	deadline := time.Now().Add(d)
	for {
		var pong string
		err := client.Call(amqprpc.PingType, "", &pong)
		cause := amqprpc.Cause(err)
		switch {
		case errors.Is(cause, amqprpc.ErrNoQueue) && time.Now().Before(deadline):
			time.Sleep(50 * time.Millisecond) // no queue yet: ask again
		case cause != err: // the call failed on its way: no queue, a timeout...
			return err
		default: // a server answered
			return nil
		}
	}
}

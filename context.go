package amqprpc

import (
	"context"
	"math"
	"strconv"
	"time"

	amqp "github.com/rabbitmq/amqp091-go"
)

// DeadlineHeader is the request header that carries the caller's deadline
// to the server: when the caller stops waiting, in milliseconds since the
// Unix epoch, as an integer (a string of decimal digits is accepted too).
// [Call] sends it when its context has a deadline; the server puts it in
// the context the service gets from [Delivery.Context]. A header that is
// not a positive integer is ignored.
const DeadlineHeader = "x-rpc-deadline"

// Context returns the request's context, for a service to pass on to the
// calls it makes itself with [Call]: it is done at the caller's deadline
// when the request carried one ([DeadlineHeader]), and when the server's
// shutdown grace period runs out while the method still runs
// ([WithShutdownGrace]; context.Cause then matches [ErrClosed], and the
// request is back in the queue); it holds what the server's hooks put in
// it, such as the trace span of otelamqprpc. It may be cancelled once the
// method has returned and its reply is sent: work that outlives the call
// should use context.WithoutCancel. It is context.Background() for a
// Delivery the server did not fill in.
func (d *Delivery) Context() context.Context {
	if d == nil || d.ctx == nil {
		return context.Background()
	}
	return d.ctx
}

// setContext is how the server codec hands an embedded Delivery the
// request's context. An embedded *Delivery left nil is left alone.
func (d *Delivery) setContext(ctx context.Context) {
	if d != nil {
		d.ctx = ctx
	}
}

// contextReceiver is implemented by argument types that embed Delivery.
type contextReceiver interface {
	setContext(ctx context.Context)
}

// deadlineFrom reads the DeadlineHeader of a request, as AMQP clients in
// any language send an integer: any integer type, a float, or decimal
// digits.
func deadlineFrom(h amqp.Table) (time.Time, bool) {
	v, ok := h[DeadlineHeader]
	if !ok {
		return time.Time{}, false
	}
	var ms int64
	switch n := v.(type) {
	case int64:
		ms = n
	case int32:
		ms = int64(n)
	case int:
		ms = int64(n)
	case uint32:
		ms = int64(n)
	case uint64:
		if n > math.MaxInt64 {
			return time.Time{}, false
		}
		ms = int64(n)
	case float64:
		if n != n || n > math.MaxInt64 || n < math.MinInt64 { // NaN or out of range
			return time.Time{}, false
		}
		ms = int64(n)
	case string:
		var err error
		if ms, err = strconv.ParseInt(n, 10, 64); err != nil {
			return time.Time{}, false
		}
	case []byte:
		var err error
		if ms, err = strconv.ParseInt(string(n), 10, 64); err != nil {
			return time.Time{}, false
		}
	default:
		return time.Time{}, false
	}
	if ms <= 0 {
		return time.Time{}, false
	}
	return time.UnixMilli(ms), true
}

package amqprpc

// Requests AMQP cannot carry: a method or a header key over 255 bytes, a
// header value an AMQP table has no type for, a header table larger than a
// frame. Each fails its own call at once, nothing is published, and the
// calls around it and the connection are untouched.

import (
	"context"
	"errors"
	"net/rpc"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// badHeaderKey is the context key under which a test tells its client hook
// which header to add to one call.
type badHeaderKey struct{}

type badHeader struct {
	key   string
	value any
}

// addBadHeader is a client hook that adds the header the call's context
// names, if any.
func addBadHeader(ctx context.Context, info *CallInfo) CallEnd {
	if h, ok := ctx.Value(badHeaderKey{}).(badHeader); ok {
		info.Header[h.key] = h.value
	}
	return nil
}

func TestUnpublishableRequestFailsItsCallAlone(t *testing.T) {
	queue := testQueue(t)
	startServer(t, newArith("s1"), queue)
	var log secLog
	client := dial(t, queue, WithCallTimeout(10*time.Second), WithClientHook(addBadHeader), WithLogger(log.logger()))
	multiply(t, client, 6, 7, "before")

	// Calls keep going around the bad ones.
	stop := make(chan struct{})
	var wg sync.WaitGroup
	var mu sync.Mutex // guards failures
	var failures []error
	for g := range 8 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := 0; ; i++ {
				select {
				case <-stop:
					return
				default:
				}
				var r int
				if err := client.Call("Arith.Multiply", &Args{g, i}, &r); err != nil || r != g*i {
					mu.Lock()
					failures = append(failures, err)
					mu.Unlock()
				}
			}
		}()
	}

	long := strings.Repeat("x", 300)
	for _, tc := range []struct {
		name   string
		method string
		header *badHeader
		want   string // in the error
	}{
		{"method over 255 bytes", "Arith." + long, nil, "255"},
		{"header key over 255 bytes", "Arith.Multiply", &badHeader{long, "v"}, "255"},
		{"header value uint64", "Arith.Multiply", &badHeader{"tenant", uint64(7)}, "uint64"},
		{"header value []string", "Arith.Multiply", &badHeader{"roles", []string{"a", "b"}}, "[]string"},
		{"header value map", "Arith.Multiply", &badHeader{"claims", map[string]string{"a": "b"}}, "map[string]string"},
		{"header table over frame_max", "Arith.Multiply", &badHeader{"blob", strings.Repeat("b", 200<<10)}, "frame"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			ctx := context.Background()
			if tc.header != nil {
				ctx = context.WithValue(ctx, badHeaderKey{}, *tc.header)
			}
			var r int
			start := time.Now()
			err := Call(ctx, client, tc.method, &Args{1, 2}, &r)
			took := time.Since(start)
			require.Error(t, err, "Call(%.20q)", tc.name)
			assert.Less(t, took, 2*time.Second, "Call(%s) took %v; want it to fail at once", tc.name, took)
			assert.ErrorContains(t, err, tc.want, "Call(%s): want the error to say what AMQP refuses", tc.name)
			for _, s := range []error{ErrTimeout, ErrConnectionLost} {
				assert.False(t, errors.Is(Cause(err), s), "Call(%s) = %v; want neither a timeout nor a lost connection", tc.name, err)
			}
			assert.ErrorIs(t, err, ErrNotSent, "Call(%s) = %v; want it to say the request was not sent", tc.name, err)
			multiply(t, client, 3, 4, "after "+tc.name)
		})
	}
	close(stop)
	wg.Wait()
	mu.Lock()
	defer mu.Unlock()
	assert.Empty(t, failures, "calls made around the bad requests")
	assert.NotContains(t, log.String(), "session lost", "the client's connection was lost")
	var r int
	assert.NoError(t, client.Call("Arith.Multiply", &Args{2, 2}, &r), "the client after the bad requests")
	_ = rpc.ErrShutdown
}

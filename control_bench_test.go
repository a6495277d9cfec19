package amqprpc

// BenchmarkControl measures what the control protocol costs a call: the
// same service with it on (the default: per-method counters and a control
// queue) and off (WithoutControl), side by side, small payload, serial and
// with 16 callers:
//
//	go test -run '^$' -bench '^BenchmarkControl$' -count 6 .
//
// allocs/op must be equal. go test runs the -count runs of one
// sub-benchmark back to back, so drift on a shared machine can favour
// either side: compare ns/op with benchstat over several counts, and
// throughput with make bench's cost ladder (its no-control step), which
// measures both in alternating rounds.

import (
	"context"
	"net/rpc"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/amqprpc/amqprpc/internal/brokertest"
)

func BenchmarkControl(b *testing.B) {
	modes := []struct {
		name string
		opts []ServerOption
	}{
		{"on", nil},
		{"off", []ServerOption{WithoutControl()}},
	}
	clients := make([]benchCaller, len(modes))
	for i, m := range modes {
		url, queue := brokertest.URL(b), testQueue(b)
		srv := rpc.NewServer()
		require.NoError(b, srv.RegisterName("Bench", BenchService{}))
		server := brokertest.Serve(b, func(ctx context.Context) error { return Serve(ctx, srv, url, queue, m.opts...) })
		brokertest.WaitForConsumers(b, url, queue, 1, server)
		clients[i] = brokertest.Dial(b, Dial, url, queue)
	}
	small := benchLoads[0]
	for i, m := range modes {
		b.Run("serial/"+m.name, func(b *testing.B) { benchSerial(b, clients[i], small) })
	}
	for i, m := range modes {
		b.Run("par16/"+m.name, func(b *testing.B) { benchParallel(b, clients[i], small, 16) })
	}
}

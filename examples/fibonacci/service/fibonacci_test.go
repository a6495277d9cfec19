package service_test

import (
	"context"
	"errors"
	"net/rpc"
	"strings"
	"testing"
	"time"

	"github.com/amqprpc/amqprpc"
	"github.com/amqprpc/amqprpc/examples/fibonacci/service"
	"github.com/amqprpc/amqprpc/internal/brokertest"
)

func TestFib(t *testing.T) {
	f := &service.Fibonacci{Instance: "alice"}
	for _, tt := range []struct {
		n       int
		want    int64
		wantErr bool
	}{
		{n: 0, want: 0},
		{n: 1, want: 1},
		{n: 2, want: 1},
		{n: 10, want: 55},
		{n: 50, want: 12586269025},
		{n: service.MaxN, want: 7540113804746346429},
		{n: service.MaxN + 1, wantErr: true},
		{n: -1, wantErr: true},
	} {
		var reply service.Reply
		err := f.Fib(&service.Args{N: tt.n}, &reply)
		switch {
		case tt.wantErr && err == nil:
			t.Errorf("Fib(%d) = %d; want an error", tt.n, reply.Value)
		case !tt.wantErr && (err != nil || reply != service.Reply{Value: tt.want, Instance: "alice"}):
			t.Errorf("Fib(%d) = %+v, %v; want %d from alice", tt.n, reply, err, tt.want)
		}
	}
}

// TestBurst runs the example's scenario: two instances with prefetch 1 on
// one queue, and a burst of calls that the broker spreads between them.
func TestBurst(t *testing.T) {
	url := brokertest.URL(t)
	queue := brokertest.Queue(t, url, "fibonacci")
	for _, name := range []string{"alice", "bob"} {
		brokertest.Serve(t, func(ctx context.Context) error { return service.Serve(ctx, url, queue, name) })
	}
	brokertest.WaitForConsumers(t, url, queue, 2)
	client := brokertest.Dial(t, amqprpc.Dial, url, queue, amqprpc.WithCallTimeout(10*time.Second))

	const calls = 20
	replies, err := service.Burst(client, calls)
	if err != nil {
		t.Fatalf("Burst(%d) = %v", calls, err)
	}
	answered := map[string]int{}
	a, b := int64(0), int64(1)
	for n, r := range replies {
		if r.Value != a {
			t.Errorf("Fib(%d) = %d; want %d", n, r.Value, a)
		}
		a, b = b, a+b
		answered[r.Instance]++
	}
	if answered["alice"] == 0 || answered["bob"] == 0 || len(answered) != 2 {
		t.Errorf("answers per instance = %v; want both alice and bob, and no one else", answered)
	}
	t.Logf("answers per instance: %v", answered)

	var sum service.Reply
	if err := client.Call("Fibonacci.Sum", &service.Args{N: 5}, &sum); err != nil || sum.Value != 105 {
		t.Errorf("Call(%q, 5) = %d, %v; want 105", "Fibonacci.Sum", sum.Value, err)
	}

	// A refused n is a service error, and the client stays usable.
	err = client.Call("Fibonacci.Fib", &service.Args{N: 1000}, new(service.Reply))
	var se rpc.ServerError
	if !errors.As(err, &se) || !strings.Contains(err.Error(), "between 0 and 92") {
		t.Errorf("Call(%q, 1000) = %v; want an rpc.ServerError saying n is out of range", "Fibonacci.Fib", err)
	}
	if _, err := service.Burst(client, 3); err != nil {
		t.Errorf("Burst(3) after a service error = %v; want nil", err)
	}
}

package amqprpc

// WithMaxInFlight: how many calls a client has in flight at once. (Body
// size limits are security claims: security_limits_test.go.)

import (
	"context"
	"fmt"
	"net/rpc"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
)

func TestMaxInFlight(t *testing.T) {
	queue := testQueue(t)
	arith := newArith("s1")
	startServer(t, arith, queue)
	t.Cleanup(arith.open) // before the server stops: Wait calls must end

	t.Run("no timeout: fail at once", func(t *testing.T) {
		client := dial(t, queue, WithMaxInFlight(2), WithCallTimeout(0))
		held := []*rpc.Call{
			client.Go("Arith.Wait", &Args{1, 1}, new(int), nil),
			client.Go("Arith.Wait", &Args{2, 1}, new(int), nil),
		}
		<-arith.began
		<-arith.began
		var r int
		require.ErrorIs(t, client.Call("Arith.Multiply", &Args{3, 3}, &r), ErrTooManyCalls, "third call with 2 in flight")
		arith.open()
		for _, c := range held {
			waitCall(t, c, 10*time.Second, "a call holding a slot")
		}
		multiply(t, client, 3, 3, "after the slots freed")
	})

	t.Run("client.Call fails at once, Call waits for a slot", func(t *testing.T) {
		arith.gate = make(chan struct{}) // closed again by the cleanup
		client := dial(t, queue, WithMaxInFlight(2), WithCallTimeout(10*time.Second))
		held := []*rpc.Call{
			client.Go("Arith.Wait", &Args{1, 1}, new(int), nil),
			client.Go("Arith.Wait", &Args{2, 1}, new(int), nil),
		}
		<-arith.began
		<-arith.began
		var r int
		start := time.Now()
		err := client.Call("Arith.Multiply", &Args{3, 3}, &r)
		require.ErrorIs(t, err, ErrTooManyCalls, "client.Call with 2 in flight")
		require.ErrorIs(t, err, ErrNotSent, "client.Call with 2 in flight")
		require.Less(t, time.Since(start), 2*time.Second, "client.Call with 2 in flight: want it to fail at once")
		// Call waits for the slot.
		third := make(chan error, 1)
		go func() {
			var r int
			third <- Call(context.Background(), client, "Arith.Multiply", &Args{3, 3}, &r)
		}()
		select {
		case err := <-third:
			t.Fatalf("Call with 2 in flight ended (%v); want it to wait for a slot", err)
		case <-time.After(300 * time.Millisecond):
		}
		arith.open()
		require.NoError(t, <-third, "Call, once a slot freed")
		for _, c := range held {
			require.NoError(t, waitCall(t, c, 10*time.Second, "a call holding a slot").Error, "a call holding a slot")
		}
		// Many Calls through two slots all get through, in turn.
		errs := make(chan error, 20)
		for i := range 20 {
			go func() {
				var r int
				err := Call(context.Background(), client, "Arith.Multiply", &Args{i, 2}, &r)
				if err == nil && r != 2*i {
					err = fmt.Errorf("Call(%d*2) = %d", i, r)
				}
				errs <- err
			}()
		}
		for range 20 {
			require.NoError(t, <-errs, "a Call through 2 slots")
		}
	})
}

// TestCallWaitingForASlotHoldsUpNoOtherCall: a Call that waits for a slot
// waits outside net/rpc's request lock, so a Call behind it with a shorter
// context still returns when its own context ends, and plain calls fail at
// once instead of queueing behind it.
func TestCallWaitingForASlotHoldsUpNoOtherCall(t *testing.T) {
	queue := testQueue(t)
	arith := newArith("s1")
	startServer(t, arith, queue)
	t.Cleanup(arith.open)
	client := dial(t, queue, WithMaxInFlight(1), WithCallTimeout(30*time.Second))
	stuck := client.Go("Arith.Wait", &Args{1, 1}, new(int), nil)
	arith.waitBegan(t)

	long, cancelLong := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancelLong()
	first := make(chan error, 1)
	go func() { first <- Call(long, client, "Arith.Multiply", &Args{2, 2}, new(int)) }()
	time.Sleep(200 * time.Millisecond) // the first Call waits for the slot: no condition to poll from outside

	short, cancelShort := context.WithTimeout(context.Background(), 100*time.Millisecond)
	defer cancelShort()
	start := time.Now()
	err := Call(short, client, "Arith.Multiply", &Args{3, 3}, new(int))
	took := time.Since(start)
	require.ErrorIs(t, err, context.DeadlineExceeded, "a Call with a 100ms context behind another waiting for a slot")
	require.ErrorIs(t, err, ErrNotSent, "a Call that got no slot")
	require.Less(t, took, 2*time.Second, "a Call with a 100ms context behind another waiting for a slot took %v", took)

	start = time.Now()
	var r int
	require.ErrorIs(t, client.Call("Arith.Multiply", &Args{4, 4}, &r), ErrTooManyCalls, "client.Call while a Call waits for a slot")
	require.Less(t, time.Since(start), 2*time.Second, "client.Call while a Call waits for a slot: want it to fail at once")

	arith.open()
	require.NoError(t, <-first, "the Call that waited, once the slot freed")
	require.NoError(t, waitCall(t, stuck, 10*time.Second, "the call that held the slot").Error)
}

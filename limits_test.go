package amqprpc

// WithMaxInFlight: how many calls a client has in flight at once. (Body
// size limits are security claims: security_limits_test.go.)

import (
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

	t.Run("timeout: wait for a slot", func(t *testing.T) {
		arith.gate = make(chan struct{}) // closed again by the cleanup
		client := dial(t, queue, WithMaxInFlight(2), WithCallTimeout(10*time.Second))
		held := []*rpc.Call{
			client.Go("Arith.Wait", &Args{1, 1}, new(int), nil),
			client.Go("Arith.Wait", &Args{2, 1}, new(int), nil),
		}
		<-arith.began
		<-arith.began
		// Go itself waits for the slot, as it waits for net/rpc's send.
		third := make(chan error, 1)
		go func() {
			var r int
			third <- client.Call("Arith.Multiply", &Args{3, 3}, &r)
		}()
		select {
		case err := <-third:
			t.Fatalf("third call with 2 in flight ended (%v); want it to wait for a slot", err)
		case <-time.After(300 * time.Millisecond):
		}
		arith.open()
		require.NoError(t, <-third, "third call, once a slot freed")
		for _, c := range held {
			require.NoError(t, waitCall(t, c, 10*time.Second, "a call holding a slot").Error, "a call holding a slot")
		}
		// Many calls through two slots all get through, in turn.
		calls := make([]*rpc.Call, 20)
		for i := range calls {
			calls[i] = client.Go("Arith.Multiply", &Args{i, 2}, new(int), make(chan *rpc.Call, 1))
		}
		for i, c := range calls {
			<-c.Done
			if c.Error != nil || *c.Reply.(*int) != 2*i {
				t.Fatalf("call %d through 2 slots = %d, %v", i, *c.Reply.(*int), c.Error)
			}
		}
	})
}

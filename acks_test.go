package amqprpc

import (
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// TestSlowCallDoesNotStarveTheServer: a server acknowledges answered
// requests in runs, and a run cannot pass a call still running. Answers
// held behind it must still be acknowledged in time, or they would fill the
// prefetch and the broker would stop delivering: here, with prefetch 4 and
// one call blocked, 20 more calls must all be served.
func TestSlowCallDoesNotStarveTheServer(t *testing.T) {
	queue := testQueue(t)
	arith := newArith("acks")
	stop := startServer(t, arith, queue, WithPrefetch(4))
	client := dial(t, queue, WithCallTimeout(10*time.Second))

	slow := client.Go("Arith.Wait", &Args{1, 1}, new(int), nil)
	select {
	case <-arith.began:
	case <-time.After(5 * time.Second):
		t.Fatal("the slow call did not start")
	}
	for i := range 20 {
		var r int
		require.NoError(t, client.Call("Arith.Multiply", &Args{i, 2}, &r), "call %d behind the slow one", i)
		assert.Equal(t, 2*i, r)
	}
	arith.open()
	c := <-slow.Done
	require.NoError(t, c.Error)
	// A request left unacknowledged would go back to the queue now.
	stop()
	_, ch := rawConn(t)
	q, err := ch.QueueDeclarePassive(queue, true, false, false, false, nil)
	require.NoError(t, err)
	assert.Zero(t, q.Messages, "requests back in the queue after the server stopped: they were never acknowledged")
}

package amqprpc

// Calls that get no answer: a queue that does not exist fails at once, a
// queue without a consumer or a server that does not answer times out with
// a reason, and neither a request nor a reply outlives its call.

import (
	"context"
	"testing"
	"time"

	amqp "github.com/rabbitmq/amqp091-go"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/amqprpc/amqprpc/codec"
	"github.com/amqprpc/amqprpc/internal/brokertest"
)

func TestNoSuchQueueFailsAtOnce(t *testing.T) {
	queue := testQueue(t) // never declared
	replyModes(t, func(t *testing.T, mode ClientOption) {
		client := dial(t, queue, mode, WithCallTimeout(time.Minute))
		var r int
		start := time.Now()
		err := client.Call("Arith.Multiply", &Args{1, 2}, &r)
		require.ErrorIs(t, Cause(err), ErrNoQueue, "Call to a missing queue")
		require.ErrorContains(t, err, queue, "Call to a missing queue: want the queue named")
		if d := time.Since(start); d > 10*time.Second {
			t.Fatalf("Call to a missing queue took %v; want an immediate failure", d)
		}
		// The client survives.
		require.ErrorIs(t, Cause(client.Call("Arith.Multiply", &Args{1, 2}, &r)), ErrNoQueue, "second Call")
	})
}

func TestQueueWithoutConsumerTimesOutAndExpires(t *testing.T) {
	queue := testQueue(t)
	conn, ch := rawConn(t)
	_, err := ch.QueueDeclare(queue, false, false, false, false, nil)
	require.NoError(t, err)
	client := dial(t, queue, WithCallTimeout(300*time.Millisecond), withInspectWait(5*time.Second))
	var r int
	err = client.Call("Arith.Multiply", &Args{1, 2}, &r)
	require.ErrorIs(t, Cause(err), ErrTimeout, "Call with no consumer")
	assert.ErrorContains(t, err, queue, "Call with no consumer: want the queue named")
	assert.ErrorContains(t, err, "no consumer", "Call with no consumer: want the reason")
	// The request expires in the queue, so no server ever runs it late.
	brokertest.WaitFor(t, 10*time.Second, "expired request leaves the queue", func() bool { return brokertest.Depth(conn, queue) == 0 })
}

func TestTimeoutThenLateReplyIsDropped(t *testing.T) {
	queue := testQueue(t)
	hold := make(chan amqp.Delivery, 1)
	fakeServer(t, queue, func(d amqp.Delivery) []amqp.Publishing {
		if d.Type == "Slow.Call" {
			hold <- d
			return nil
		}
		return []amqp.Publishing{{ContentType: "application/json", Body: []byte("7")}}
	})
	_, ch := rawConn(t)
	client := dial(t, queue, WithEncoding(codec.JSON), WithCallTimeout(300*time.Millisecond), withInspectWait(5*time.Second))
	var r int
	start := time.Now()
	err := client.Call("Slow.Call", &Args{}, &r)
	require.ErrorIs(t, Cause(err), ErrTimeout, "Call(Slow.Call)")
	require.ErrorContains(t, err, "has 1 consumer,", "Call(Slow.Call): want it to say the queue has a consumer")
	if d := time.Since(start); d < 300*time.Millisecond || d > 5*time.Second {
		t.Fatalf("Call(Slow.Call) timed out after %v; want about 300ms", d)
	}
	// The late reply arrives and must not be taken for a later call.
	late := <-hold
	require.NoError(t, ch.Publish("", late.ReplyTo, false, false, amqp.Publishing{CorrelationId: late.CorrelationId, ContentType: "application/json", Body: []byte("666")}))
	for i := 0; i < 3; i++ {
		if err := client.Call("Fast.Call", &Args{}, &r); err != nil || r != 7 {
			t.Fatalf("Call(Fast.Call) after a late reply = %d, %v; want 7, nil", r, err)
		}
	}
}

// TestVeryLongTimeoutsWork: a timeout of a century, meant as "no
// timeout", and a context deadline as far away, work on the broker: the
// request's expiration is clamped to what brokers take (RabbitMQ 3.10
// refuses over 10 years with 406, closing the channel).
func TestVeryLongTimeoutsWork(t *testing.T) {
	queue := testQueue(t)
	startServer(t, newArith("s1"), queue)
	t.Run("call timeout", func(t *testing.T) {
		client := dial(t, queue, WithCallTimeout(century))
		within(t, 10*time.Second, "a call with a century's timeout", func() { multiply(t, client, 6, 7, "with a century's timeout") })
	})
	t.Run("context deadline", func(t *testing.T) {
		client := dial(t, queue, WithCallTimeout(0))
		ctx, cancel := context.WithTimeout(context.Background(), century)
		defer cancel()
		var r int
		within(t, 10*time.Second, "a call with a context deadline a century away", func() {
			require.NoError(t, Call(ctx, client, "Arith.Multiply", &Args{6, 7}, &r))
		})
		require.Equal(t, 42, r)
	})
}

package amqprpc

// Calls that get no answer: a queue that does not exist fails at once, a
// queue without a consumer or a server that does not answer times out with
// a reason, and neither a request nor a reply outlives its call.

import (
	"errors"
	"strings"
	"testing"
	"time"

	amqp "github.com/rabbitmq/amqp091-go"

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
		if !errors.Is(Cause(err), ErrNoQueue) || !strings.Contains(err.Error(), queue) {
			t.Fatalf("Call to a missing queue = %v; want ErrNoQueue naming %q", err, queue)
		}
		if d := time.Since(start); d > 10*time.Second {
			t.Fatalf("Call to a missing queue took %v; want an immediate failure", d)
		}
		// The client survives.
		if err := client.Call("Arith.Multiply", &Args{1, 2}, &r); !errors.Is(Cause(err), ErrNoQueue) {
			t.Fatalf("second Call = %v; want ErrNoQueue again", err)
		}
	})
}

func TestQueueWithoutConsumerTimesOutAndExpires(t *testing.T) {
	queue := testQueue(t)
	conn, ch := rawConn(t)
	if _, err := ch.QueueDeclare(queue, false, false, false, false, nil); err != nil {
		t.Fatal(err)
	}
	client := dial(t, queue, WithCallTimeout(300*time.Millisecond))
	var r int
	err := client.Call("Arith.Multiply", &Args{1, 2}, &r)
	if !errors.Is(Cause(err), ErrTimeout) || !strings.Contains(err.Error(), queue) || !strings.Contains(err.Error(), "no consumer") {
		t.Fatalf("Call with no consumer = %v; want ErrTimeout naming the queue and saying it has no consumer", err)
	}
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
	client := dial(t, queue, WithEncoding(codec.JSON), WithCallTimeout(300*time.Millisecond))
	var r int
	start := time.Now()
	err := client.Call("Slow.Call", &Args{}, &r)
	if !errors.Is(Cause(err), ErrTimeout) || !strings.Contains(err.Error(), "has 1 consumer,") {
		t.Fatalf("Call(Slow.Call) = %v; want ErrTimeout saying the queue has 1 consumer", err)
	}
	if d := time.Since(start); d < 300*time.Millisecond || d > 5*time.Second {
		t.Fatalf("Call(Slow.Call) timed out after %v; want about 300ms", d)
	}
	// The late reply arrives and must not be taken for a later call.
	late := <-hold
	if err := ch.Publish("", late.ReplyTo, false, false, amqp.Publishing{CorrelationId: late.CorrelationId, ContentType: "application/json", Body: []byte("666")}); err != nil {
		t.Fatal(err)
	}
	for i := 0; i < 3; i++ {
		if err := client.Call("Fast.Call", &Args{}, &r); err != nil || r != 7 {
			t.Fatalf("Call(Fast.Call) after a late reply = %d, %v; want 7, nil", r, err)
		}
	}
}

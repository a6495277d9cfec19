package amqprpc

import (
	"context"
	"net/rpc"
	"strings"
	"testing"
	"time"

	amqp "github.com/rabbitmq/amqp091-go"

	"github.com/amqprpc/amqprpc/internal/brokertest"
)

// TestDeclareHint: a server whose declaration differs from the existing
// queue (a RabbitMQ tutorial server declares rpc_queue a durable quorum
// queue, the Erlang one a transient queue) fails with the option that
// matches the queue, read from the broker's 406 text; with that option,
// it serves.
func TestDeclareHint(t *testing.T) {
	url := brokertest.URL(t)
	for _, tt := range []struct {
		name     string
		durable  bool
		args     amqp.Table
		opts     []ServerOption
		want     string
		matching []ServerOption // serves the existing queue; nil: not tried
	}{
		{"quorum", true, amqp.Table{"x-queue-type": "quorum"}, nil,
			"the queue is a quorum queue: serve it with WithQuorumQueue()", []ServerOption{WithQuorumQueue()}},
		{"transient", false, nil, nil,
			"the queue is not durable: serve it with WithTransientQueue()", []ServerOption{WithTransientQueue()}},
		{"classic", true, nil, []ServerOption{WithQuorumQueue()},
			"the queue's type is classic, not quorum: serve it without WithQuorumQueue()", []ServerOption{}},
		{"durable", true, nil, []ServerOption{WithTransientQueue()},
			"the queue is durable: serve it without WithTransientQueue()", nil},
		{"expires", true, amqp.Table{"x-expires": int64(60000)}, nil,
			"the queue has x-expires 60000 ms: serve it with WithQueueExpiry(60000 * time.Millisecond)", []ServerOption{WithQueueExpiry(time.Minute)}},
		{"no-expires", true, nil, []ServerOption{WithQueueExpiry(time.Minute)},
			"the queue has no x-expires: serve it without WithQueueExpiry()", nil},
		{"max-length", true, amqp.Table{"x-max-length": int64(5)}, nil,
			"the queue was declared with x-max-length 5, which no server option sets", nil},
	} {
		t.Run(tt.name, func(t *testing.T) {
			queue := brokertest.Queue(t, url, "declare-"+tt.name)
			_, ch := brokertest.Conn(t, url)
			if _, err := ch.QueueDeclare(queue, tt.durable, false, false, false, tt.args); err != nil {
				t.Fatal(err)
			}
			ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
			defer cancel()
			err := Serve(ctx, rpc.NewServer(), url, queue, tt.opts...)
			if err == nil || !strings.Contains(err.Error(), "PRECONDITION_FAILED") || !strings.Contains(err.Error(), tt.want) {
				t.Fatalf("Serve on a queue declared otherwise = %v; want PRECONDITION_FAILED and %q", err, tt.want)
			}
			if tt.matching != nil {
				startServer(t, newArith("s1"), queue, tt.matching...)
				multiply(t, dial(t, queue), 6, 7, "with the option the hint names")
			}
		})
	}
}

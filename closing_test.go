package amqprpc

// What a server codec does with a request it takes while it closes: it is
// answered, or it goes back to the queue, and either way its hooks see it
// end exactly once.

import (
	"context"
	"errors"
	"io"
	"net/rpc"
	"testing"
	"time"

	amqp "github.com/rabbitmq/amqp091-go"

	"github.com/amqprpc/amqprpc/internal/brokertest"
)

// TestRequestsTakenWhileClosingGoBack drives the moments of a close that
// a real one passes in a flash, one at a time, by setting the codec's
// state as Close does: a request net/rpc would run, taken once Close has
// begun, and a ping or a refusal taken once the outbox has closed. Each
// must go back to the queue unanswered, end the read (io.EOF) rather than
// wait for more, and end its hooks once with an error matching ErrClosed.
func TestRequestsTakenWhileClosingGoBack(t *testing.T) {
	for _, tc := range []struct {
		name string
		req  amqp.Publishing
		at   func(c *serverCodec)
	}{
		{"request after Close began", amqp.Publishing{Type: "Arith.Multiply", Body: []byte(`{"A":6,"B":7}`)}, func(c *serverCodec) {
			c.mu.Lock()
			c.closing = true
			c.mu.Unlock()
		}},
		{"ping after the outbox closed", amqp.Publishing{Type: PingType}, func(c *serverCodec) { c.out.close() }},
		{"refusal after the outbox closed", amqp.Publishing{Type: "", Body: []byte(`{}`)}, func(c *serverCodec) { c.out.close() }},
	} {
		t.Run(tc.name, func(t *testing.T) {
			queue := testQueue(t)
			conn, ch := rawConn(t)
			var hooks hookLog
			hook := func(ctx context.Context, info *CallInfo) (context.Context, CallEnd) {
				return ctx, hooks.end(hooks.begin(info))
			}
			c, _, err := newServerCodec(context.Background(), conn, "", queue, []ServerOption{WithServerHook(hook)})
			if err != nil {
				t.Fatal(err)
			}
			tc.at(c)
			replies, err := ch.QueueDeclare("", false, true, true, false, nil)
			if err != nil {
				t.Fatal(err)
			}
			tc.req.ReplyTo, tc.req.CorrelationId, tc.req.ContentType = replies.Name, "1", "application/json"
			if err := ch.Publish("", queue, false, false, tc.req); err != nil {
				t.Fatal(err)
			}
			within(t, 10*time.Second, "ReadRequestHeader", func() {
				if err := c.ReadRequestHeader(new(rpc.Request)); err != io.EOF {
					t.Errorf("ReadRequestHeader = %v; want io.EOF", err)
				}
			})
			ended := hooks.waitEnded(t, 1)
			if len(ended) != 1 || !errors.Is(ended[0].err, ErrClosed) {
				t.Errorf("server hook ends = %d, first with %v; want 1, matching ErrClosed", len(ended), ended[0].err)
			}
			within(t, 10*time.Second, "Close", func() { c.Close() })
			if n := brokertest.Depth(conn, queue); n != 1 {
				t.Errorf("Depth(%q) after Close = %d; want 1, the request back in the queue", queue, n)
			}
			if n := brokertest.Depth(conn, replies.Name); n != 0 {
				t.Errorf("replies sent = %d; want 0", n)
			}
		})
	}
}

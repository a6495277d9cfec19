package amqprpc

import (
	"testing"
	"time"

	amqp "github.com/rabbitmq/amqp091-go"

	"github.com/amqprpc/amqprpc/codec"
	"github.com/amqprpc/amqprpc/internal/brokertest"
)

// TestPing: the server codec answers PingType itself, in every encoding,
// without running a method.
func TestPing(t *testing.T) {
	queue := testQueue(t)
	arith := newArith("s1")
	startServer(t, arith, queue)
	for _, enc := range []codec.Encoding{codec.Gob, codec.JSON, codec.Text} {
		client := dial(t, queue, WithEncoding(enc), WithCallTimeout(10*time.Second))
		var pong string
		if err := client.Call(PingType, "ping", &pong); err != nil || pong != "pong" {
			t.Errorf("%v: Call(%s) = %q, %v; want \"pong\", nil", enc, PingType, pong, err)
		}
	}
	// A bare request, as another language would send it: no content type,
	// no body.
	_, ch := rawConn(t)
	replyQ, err := ch.QueueDeclare("", false, true, true, false, nil)
	if err != nil {
		t.Fatal(err)
	}
	replies := brokertest.Consume(t, ch, replyQ.Name)
	if err := ch.Publish("", queue, false, false, amqp.Publishing{Type: PingType, CorrelationId: "p1", ReplyTo: replyQ.Name}); err != nil {
		t.Fatal(err)
	}
	d := brokertest.NextDelivery(t, replies, "ping reply")
	if d.CorrelationId != "p1" || string(d.Body) != `"pong"` || d.ContentType != codec.JSONContentType || d.Headers[ErrorHeader] != nil {
		t.Errorf("ping reply = corr %q, %s %q, headers %v; want p1, application/json \"pong\", no error", d.CorrelationId, d.ContentType, d.Body, d.Headers)
	}
	if n := arith.calls.Load(); n != 0 {
		t.Errorf("the service ran %d calls; want 0 (pings never reach it)", n)
	}
}

package amqprpc

// The wire contract, checked by playing the other side with plain
// amqp091-go: the properties and body of a request as a foreign server sees
// them, and the replies a foreign client gets.

import (
	"encoding/json"
	"testing"
	"time"

	amqp "github.com/rabbitmq/amqp091-go"

	"github.com/amqprpc/amqprpc/codec"
	"github.com/amqprpc/amqprpc/internal/brokertest"
)

// TestRequestWireFormat plays the server with plain amqp091-go and checks
// every property of a request.
func TestRequestWireFormat(t *testing.T) {
	queue := testQueue(t)
	_, ch := rawConn(t)
	if _, err := ch.QueueDeclare(queue, false, false, false, false, nil); err != nil {
		t.Fatal(err)
	}
	requests := brokertest.Consume(t, ch, queue)
	encodings(t, func(t *testing.T, enc codec.Encoding) {
		replyModes(t, func(t *testing.T, mode ClientOption) {
			client := dial(t, queue, WithEncoding(enc), mode, WithCallTimeout(20*time.Second))
			call := client.Go("Arith.Multiply", &Args{6, 7}, new(int), nil)
			d := brokertest.NextDelivery(t, requests, "request")
			switch {
			case d.Type != "Arith.Multiply":
				t.Errorf("type = %q; want Arith.Multiply", d.Type)
			case d.ContentType != enc.ContentType():
				t.Errorf("content_type = %q; want %q", d.ContentType, enc.ContentType())
			case d.CorrelationId == "":
				t.Errorf("correlation_id is empty")
			case d.ReplyTo == "":
				t.Errorf("reply_to is empty")
			case d.Expiration != "20000":
				t.Errorf("expiration = %q; want 20000", d.Expiration)
			case d.MessageId == "":
				t.Errorf("message_id is empty")
			}
			var args Args
			if err := new(codec.Codec).Unmarshal(enc, d.Body, &args); err != nil || args != (Args{6, 7}) {
				t.Errorf("body = %q decodes to %+v, %v; want {6 7}", d.Body, args, err)
			}
			if enc == codec.JSON && string(d.Body) != `{"A":6,"B":7}` {
				t.Errorf("JSON body = %q; want {\"A\":6,\"B\":7}", d.Body)
			}
			// Answer the way a foreign server would.
			body, _ := json.Marshal(42)
			if err := ch.Publish("", d.ReplyTo, false, false, amqp.Publishing{CorrelationId: d.CorrelationId, ContentType: "application/json", Body: body}); err != nil {
				t.Fatal(err)
			}
			<-call.Done
			if call.Error != nil || *call.Reply.(*int) != 42 {
				t.Fatalf("Call answered by a raw server = %d, %v; want 42, nil", *call.Reply.(*int), call.Error)
			}
		})
	})
}

// TestRawClientJSONDefaultMethod calls a Go server from plain amqp091-go with
// a JSON body and no type, and checks the reply on the wire.
func TestRawClientJSONDefaultMethod(t *testing.T) {
	queue := testQueue(t)
	startServer(t, newArith("s1"), queue, WithDefaultMethod("Arith.Multiply"))
	_, ch := rawConn(t)
	replyQ, err := ch.QueueDeclare("", false, true, true, false, nil)
	if err != nil {
		t.Fatal(err)
	}
	replies := brokertest.Consume(t, ch, replyQ.Name)
	publish := func(p amqp.Publishing) {
		t.Helper()
		p.ReplyTo = replyQ.Name
		if err := ch.Publish("", queue, false, false, p); err != nil {
			t.Fatal(err)
		}
	}

	// No type, no content type: JSON and the default method.
	publish(amqp.Publishing{CorrelationId: "c-1", Body: []byte(`{"A":6,"B":7}`)})
	d := brokertest.NextDelivery(t, replies, "reply to a call with no type")
	if d.CorrelationId != "c-1" || d.ContentType != "application/json" || string(d.Body) != "42" || d.Headers[ErrorHeader] != nil {
		t.Fatalf("reply = corr %q, type %q, body %q, headers %v; want c-1, application/json, 42, no error", d.CorrelationId, d.ContentType, d.Body, d.Headers)
	}

	// An explicit type and an error: the error header, an empty body.
	publish(amqp.Publishing{CorrelationId: "c-2", Type: "Arith.Divide", ContentType: "application/json", Body: []byte(`{"A":1,"B":0}`)})
	d = brokertest.NextDelivery(t, replies, "error reply")
	if d.CorrelationId != "c-2" || d.Headers[ErrorHeader] != "divide by zero" || len(d.Body) != 0 {
		t.Fatalf("error reply = corr %q, headers %v, body %q; want c-2, x-rpc-error divide by zero, empty", d.CorrelationId, d.Headers, d.Body)
	}

	// A struct reply: one JSON value, no trailing newline.
	publish(amqp.Publishing{CorrelationId: "c-3", Type: "Arith.Divide", ContentType: "application/json", Body: []byte(`{"A":17,"B":5}`)})
	d = brokertest.NextDelivery(t, replies, "struct reply")
	if string(d.Body) != `{"Quo":3,"Rem":2}` {
		t.Fatalf("struct reply body = %q; want {\"Quo\":3,\"Rem\":2}", d.Body)
	}
}

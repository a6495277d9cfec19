package amqprpc

// The wire contract, checked by playing the other side with plain
// amqp091-go: the properties and body of a request as a foreign server sees
// them, and the replies a foreign client gets.

import (
	"strings"
	"testing"
	"time"
	"unicode/utf8"

	amqp "github.com/rabbitmq/amqp091-go"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/amqprpc/amqprpc/codec"
	"github.com/amqprpc/amqprpc/internal/brokertest"
)

// TestRequestWireFormat plays the server with plain amqp091-go and checks
// every property of a request.
func TestRequestWireFormat(t *testing.T) {
	queue := testQueue(t)
	_, ch := rawConn(t)
	requests := playServer(t, ch, queue)
	encodings(t, func(t *testing.T, enc codec.Encoding) {
		replyModes(t, func(t *testing.T, mode ClientOption) {
			client := dial(t, queue, WithEncoding(enc), mode, WithCallTimeout(20*time.Second))
			call := client.Go("Arith.Multiply", &Args{6, 7}, new(int), nil)
			d := brokertest.NextDelivery(t, requests, "request")
			assert.Equal(t, "Arith.Multiply", d.Type, "type")
			assert.Equal(t, enc.ContentType(), d.ContentType, "content_type")
			assert.NotEmpty(t, d.CorrelationId, "correlation_id")
			assert.NotEmpty(t, d.ReplyTo, "reply_to")
			assert.Equal(t, "20000", d.Expiration, "expiration: the call timeout in ms")
			assert.NotEmpty(t, d.MessageId, "message_id")
			var args Args
			if err := new(codec.Codec).Unmarshal(enc, d.Body, &args); err != nil || args != (Args{6, 7}) {
				t.Errorf("body = %q decodes to %+v, %v; want {6 7}", d.Body, args, err)
			}
			if enc == codec.JSON && string(d.Body) != `{"A":6,"B":7}` {
				t.Errorf("JSON body = %q; want {\"A\":6,\"B\":7}", d.Body)
			}
			// Answer the way a foreign server would.
			require.NoError(t, ch.Publish("", d.ReplyTo, false, false, amqp.Publishing{CorrelationId: d.CorrelationId, ContentType: "application/json", Body: []byte("42")}))
			waitCall(t, call, 10*time.Second, "a call answered by a raw server")
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
	require.NoError(t, err)
	replies := brokertest.Consume(t, ch, replyQ.Name)
	publish := func(p amqp.Publishing) {
		t.Helper()
		p.ReplyTo = replyQ.Name
		require.NoError(t, ch.Publish("", queue, false, false, p))
	}

	// No type, no content type: JSON and the default method.
	publish(amqp.Publishing{CorrelationId: "c-1", Body: []byte(`{"A":6,"B":7}`)})
	d := brokertest.NextDelivery(t, replies, "reply to a call with no type")
	assert.Equal(t, "c-1", d.CorrelationId, "correlation_id")
	assert.Equal(t, "application/json", d.ContentType, "content_type")
	assert.Equal(t, "42", string(d.Body), "body")
	assert.NotContains(t, d.Headers, ErrorHeader, "headers")

	// An explicit type and an error: the error header, an empty body.
	publish(amqp.Publishing{CorrelationId: "c-2", Type: "Arith.Divide", ContentType: "application/json", Body: []byte(`{"A":1,"B":0}`)})
	d = brokertest.NextDelivery(t, replies, "error reply")
	assert.Equal(t, "c-2", d.CorrelationId, "error reply: correlation_id")
	assert.Equal(t, "divide by zero", d.Headers[ErrorHeader], "error reply: %s", ErrorHeader)
	assert.Empty(t, d.Body, "error reply: body")

	// A struct reply: one JSON value, no trailing newline.
	publish(amqp.Publishing{CorrelationId: "c-3", Type: "Arith.Divide", ContentType: "application/json", Body: []byte(`{"A":17,"B":5}`)})
	d = brokertest.NextDelivery(t, replies, "struct reply")
	assert.Equal(t, `{"Quo":3,"Rem":2}`, string(d.Body), "struct reply: body")
}

// TestTruncateUTF8: an error text over the header limit is cut on a
// character boundary, marked with "...", and stays valid UTF-8; one within
// it is kept whole (docs/PROTOCOL.md §4).
func TestTruncateUTF8(t *testing.T) {
	for _, tt := range []struct {
		name string
		s    string
		keep int // bytes of s kept before "..."; -1 for s whole
	}{
		{"short", "divide by zero", -1},
		{"at the limit", strings.Repeat("€", maxErrorText/3), -1},
		{"ascii", strings.Repeat("x", maxErrorText+1), maxErrorText - 3},
		// The cut at byte 3069 falls inside a character: back to its start.
		{"2-byte", "xy" + strings.Repeat("é", 2000), 3068},
		{"3-byte", "x" + strings.Repeat("€", 2000), 3067},
		{"4-byte", "long: " + strings.Repeat("😀", 1500), 3066},
	} {
		got := truncateUTF8(tt.s, maxErrorText)
		want := tt.s
		if tt.keep >= 0 {
			want = tt.s[:tt.keep] + "..."
		}
		if got != want || len(got) > maxErrorText || !utf8.ValidString(got) {
			t.Errorf("truncateUTF8(%s, %d) = %d bytes ending %q, valid UTF-8 %v; want %d bytes ending %q",
				tt.name, maxErrorText, len(got), got[max(0, len(got)-8):], utf8.ValidString(got), len(want), want[max(0, len(want)-8):])
		}
	}
}

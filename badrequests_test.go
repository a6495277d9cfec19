package amqprpc

// What a broken or hostile client sends a server: malformed or oversized
// bodies, unknown methods and content types, no reply_to, a reply_to that
// names no queue or crashes the server's connection, requests that expire
// in the queue. Each gets one error reply or none, is acknowledged, and
// leaves the server serving.

import (
	"bytes"
	"strconv"
	"strings"
	"testing"
	"time"

	amqp "github.com/rabbitmq/amqp091-go"
	"github.com/stretchr/testify/require"

	"github.com/amqprpc/amqprpc/codec"
	"github.com/amqprpc/amqprpc/internal/brokertest"
)

// TestBadRequestsGetErrorReplies sends what a broken or hostile client might
// and checks each gets one error reply, is acknowledged once, and leaves the
// server serving.
func TestBadRequestsGetErrorReplies(t *testing.T) {
	queue := testQueue(t)
	arith := newArith("s1")
	startServer(t, arith, queue, WithPrefetch(1), WithMaxBodySize(1<<10))
	_, ch := rawConn(t)
	replyQ, err := ch.QueueDeclare("", false, true, true, false, nil)
	require.NoError(t, err)
	replies := brokertest.Consume(t, ch, replyQ.Name)
	validGob, err := new(codec.Codec).Marshal(nil, codec.Gob, &Args{2, 3})
	require.NoError(t, err)
	tests := []struct {
		name string
		msg  amqp.Publishing
		want string // prefix of the x-rpc-error header
	}{
		{"no type, no default", amqp.Publishing{ContentType: "application/json", Body: []byte(`{"A":1}`)}, ErrNoMethod.Error()},
		{"malformed json", amqp.Publishing{Type: "Arith.Multiply", ContentType: "application/json", Body: []byte(`{"A":`)}, ErrMalformedRequest.Error()},
		{"empty body", amqp.Publishing{Type: "Arith.Multiply", ContentType: "application/json"}, ErrMalformedRequest.Error()},
		{"json of the wrong type", amqp.Publishing{Type: "Arith.Multiply", ContentType: "application/json", Body: []byte(`"a string"`)}, ErrMalformedRequest.Error()},
		{"truncated gob", amqp.Publishing{Type: "Arith.Multiply", ContentType: "application/x-gob", Body: validGob[:len(validGob)-2]}, ErrMalformedRequest.Error()},
		{"garbage gob", amqp.Publishing{Type: "Arith.Multiply", ContentType: "application/x-gob", Body: []byte("\x7f\xff\xff garbage")}, ErrMalformedRequest.Error()},
		{"unknown content type", amqp.Publishing{Type: "Arith.Multiply", ContentType: "text/html", Body: []byte("6*7")}, ErrUnsupportedContentType.Error()},
		{"too large", amqp.Publishing{Type: "Arith.Multiply", ContentType: "application/json", Body: bytes.Repeat([]byte(" "), 2<<10)}, ErrBodyTooLarge.Error()},
		{"type with no dot", amqp.Publishing{Type: "Multiply", ContentType: "application/json", Body: []byte(`{}`)}, "rpc: service/method request ill-formed"},
		{"deeply nested json", amqp.Publishing{Type: "Arith.Multiply", ContentType: "application/json", Body: []byte(strings.Repeat("[", 400) + strings.Repeat("]", 400))}, ErrMalformedRequest.Error()},
		{"gob claiming a huge length", amqp.Publishing{Type: "Arith.Multiply", ContentType: "application/x-gob", Body: []byte{0xf8, 0x7f, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 1, 2}}, ErrMalformedRequest.Error()},
		{"gob value claiming a huge slice", amqp.Publishing{Type: "Arith.Echo", ContentType: "application/x-gob", Body: hugeSliceGob(t)}, ErrMalformedRequest.Error()},
		{"unknown method", amqp.Publishing{Type: "Arith.Nope", ContentType: "application/json", Body: []byte(`{}`)}, "rpc: can't find method"},
	}
	for i, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			// The longest correlation id AMQP can carry (a short string)
			// comes back verbatim.
			tt.msg.CorrelationId = "bad-" + strconv.Itoa(i) + "-" + strings.Repeat("x", 240)
			tt.msg.ReplyTo = replyQ.Name
			require.NoError(t, ch.Publish("", queue, false, false, tt.msg))
			d := brokertest.NextDelivery(t, replies, "error reply")
			got, _ := d.Headers[ErrorHeader].(string)
			if d.CorrelationId != tt.msg.CorrelationId || !strings.HasPrefix(got, tt.want) {
				t.Fatalf("reply = corr %q, %s %q; want corr %q, error starting %q", d.CorrelationId, ErrorHeader, got, tt.msg.CorrelationId, tt.want)
			}
		})
	}
	// Acknowledged once: nothing is redelivered, and with prefetch 1 a real
	// call only gets through if every bad request was acknowledged.
	brokertest.NoDelivery(t, replies, 300*time.Millisecond, "a second reply to a bad request")
	client := dial(t, queue)
	multiply(t, client, 6, 7, "after bad requests")
}

// hugeSliceGob is a well-framed gob Payload whose Data claims 2^32 bytes
// in a body of a few dozen.
func hugeSliceGob(t *testing.T) []byte {
	t.Helper()
	b, err := new(codec.Codec).Marshal(nil, codec.Gob, &Payload{Data: []byte{1, 2, 3}, Note: "n"})
	require.NoError(t, err)
	v := 1 + int(b[0]) // the value message follows one definition with a one-byte count
	value := b[v+1:]   // type id, then field 1: length 3 and the bytes 1 2 3, then Note
	i := bytes.Index(value, []byte{0x03, 1, 2, 3})
	if b[0] >= 0x80 || i < 0 {
		t.Fatalf("unexpected gob layout %x", b)
	}
	huge := []byte{0xfb, 0x01, 0x00, 0x00, 0x00, 0x00} // 2^32 as a gob uint
	value = append(append(append([]byte{}, value[:i]...), huge...), value[i+1:]...)
	return append(append(append([]byte{}, b[:v]...), byte(len(value))), value...)
}

// TestHostileRequestsDoNotStopTheServer sends requests the broker or the
// server must drop rather than answer, then checks the server serves on.
func TestHostileRequestsDoNotStopTheServer(t *testing.T) {
	queue := testQueue(t)
	arith := newArith("s1")
	startServer(t, arith, queue, WithPrefetch(1))
	t.Cleanup(arith.open)
	conn, ch := rawConn(t)
	client := dial(t, queue)

	// A reply_to naming no queue: the call runs, its reply goes nowhere,
	// the request is acknowledged (prefetch 1 would stall otherwise).
	require.NoError(t, ch.Publish("", queue, false, false, amqp.Publishing{Type: "Arith.Multiply", ContentType: "application/json", Body: []byte(`{"A":1,"B":1}`), ReplyTo: "no-such-queue-" + queue, CorrelationId: "1"}))
	multiply(t, client, 4, 4, "after a request to a missing reply queue")

	// An expiration that passes while the request waits behind a busy
	// server: the broker drops it and the server never runs it.
	busy := client.Go("Arith.Wait", &Args{1, 1}, new(int), nil)
	<-arith.began
	before := arith.calls.Load()
	require.NoError(t, ch.Publish("", queue, false, false, amqp.Publishing{Type: "Arith.Multiply", ContentType: "application/json", Body: []byte(`{"A":2,"B":2}`), Expiration: "1", CorrelationId: "2"}))
	brokertest.WaitFor(t, 5*time.Second, "the expired request leaves the queue", func() bool { return brokertest.Depth(conn, queue) == 0 })
	arith.open()
	waitCall(t, busy, 10*time.Second, "the call the expired request waited behind")
	multiply(t, client, 5, 5, "after an expired request")
	if got := arith.calls.Load() - before; got != 1 {
		t.Fatalf("calls run after the expired request = %d; want 1 (the expired one never runs)", got)
	}
}

// TestRequestWithoutReplyToRuns checks that a request with no reply_to is
// executed and acknowledged, its reply dropped.
func TestRequestWithoutReplyToRuns(t *testing.T) {
	queue := testQueue(t)
	arith := newArith("s1")
	startServer(t, arith, queue, WithPrefetch(1))
	_, ch := rawConn(t)
	require.NoError(t, ch.Publish("", queue, false, false, amqp.Publishing{Type: "Arith.Multiply", ContentType: "application/json", Body: []byte(`{"A":2,"B":2}`)}))
	brokertest.WaitFor(t, 10*time.Second, "the call without reply_to runs", func() bool { return arith.calls.Load() == 1 })
	client := dial(t, queue)
	multiply(t, client, 3, 3, "after a request with no reply_to (was it acknowledged?)")
}

// forgedReplyTo looks like a direct reply-to address but names a process
// that does not exist; RabbitMQ 3.10 closes the connection that publishes to
// it with 541 INTERNAL_ERROR.
const forgedReplyTo = "amq.rabbitmq.reply-to.g1h2AA5yZXBseUAyNzQ0OTQ1NAAAC3YAAAAAZXlgDg==.aQ3qjBUl3xbLkKwhGK4n9Q=="

// TestPoisonReplyToIsRejected: a request whose reply_to crashes the
// server's connection is run at most twice, then rejected, and the server
// goes on serving.
func TestPoisonReplyToIsRejected(t *testing.T) {
	queue := testQueue(t)
	arith := newArith("s1")
	startServer(t, arith, queue, WithReconnectBackoff(10*time.Millisecond, 50*time.Millisecond))
	_, ch := rawConn(t)
	require.NoError(t, ch.Publish("", queue, false, false, amqp.Publishing{
		Type: "Arith.Multiply", ContentType: "application/json", Body: []byte(`{"A":6,"B":7}`),
		ReplyTo: forgedReplyTo, CorrelationId: "1", MessageId: "poison-1",
	}))
	conn, _ := rawConn(t)
	brokertest.WaitFor(t, 20*time.Second, "the poison request leaves the queue", func() bool {
		return arith.calls.Load() >= 1 && brokertest.Depth(conn, queue) == 0 && brokertest.Consumers(conn, queue) == 1
	})
	client := dial(t, queue, WithCallTimeout(20*time.Second))
	multiply(t, client, 2, 3, "after the poison request")
	runs := arith.calls.Load() - 1
	// It must not come back again.
	time.Sleep(time.Second) // watching for something that must not happen
	if now := arith.calls.Load() - 1; now != runs || runs > 2 {
		t.Fatalf("the poison request ran %d times, then %d; want at most 2, then no more", runs, now)
	}
}

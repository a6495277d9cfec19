package amqprpc

// End-to-end tests of net/rpc through a real RabbitMQ broker (AMQP_URL,
// default amqp://guest:guest@127.0.0.1:5672/). Each test uses queues of its
// own and removes them.

import (
	"bytes"
	"context"
	"encoding/gob"
	"encoding/json"
	"errors"
	"fmt"
	"net/rpc"
	"reflect"
	"runtime"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	amqp "github.com/rabbitmq/amqp091-go"

	"github.com/amqprpc/amqprpc/codec"
	"github.com/amqprpc/amqprpc/internal/brokertest"
)

func encodings(t *testing.T, f func(t *testing.T, enc codec.Encoding)) {
	for _, e := range []codec.Encoding{codec.Gob, codec.JSON} {
		t.Run(e.String(), func(t *testing.T) { f(t, e) })
	}
}

func TestCallRoundTrip(t *testing.T) {
	queue := testQueue(t)
	startServer(t, newArith("s1"), queue)
	encodings(t, func(t *testing.T, enc codec.Encoding) {
		replyModes(t, func(t *testing.T, mode ClientOption) {
			client := dial(t, queue, WithEncoding(enc), mode)
			var product int
			if err := client.Call("Arith.Multiply", &Args{7, 8}, &product); err != nil || product != 56 {
				t.Fatalf("Call(Arith.Multiply, 7*8) = %d, %v; want 56, nil", product, err)
			}
			var quo Quotient
			if err := client.Call("Arith.Divide", &Args{17, 5}, &quo); err != nil || quo != (Quotient{3, 2}) {
				t.Fatalf("Call(Arith.Divide, 17/5) = %+v, %v; want {3 2}, nil", quo, err)
			}
			// client.Go, as net/rpc users write it.
			done := client.Go("Arith.Multiply", &Args{3, 4}, new(int), nil).Done
			select {
			case c := <-done:
				if c.Error != nil || *c.Reply.(*int) != 12 {
					t.Fatalf("Go(Arith.Multiply, 3*4) = %d, %v; want 12, nil", *c.Reply.(*int), c.Error)
				}
			case <-time.After(10 * time.Second):
				t.Fatal("Go(Arith.Multiply) did not complete")
			}
		})
	})
}

func TestPayloadSizes(t *testing.T) {
	queue := testQueue(t)
	startServer(t, newArith("s1"), queue)
	encodings(t, func(t *testing.T, enc codec.Encoding) {
		client := dial(t, queue, WithEncoding(enc))
		for _, n := range []int{0, 4 << 10, 256 << 10, 2 << 20} {
			in := Payload{Data: bytes.Repeat([]byte{0xA5}, n), Note: strconv.Itoa(n)}
			var out Payload
			if err := client.Call("Arith.Echo", &in, &out); err != nil || !bytes.Equal(out.Data, in.Data) || out.Note != in.Note {
				t.Fatalf("Call(Arith.Echo, %d bytes) = %d bytes %q, %v; want the payload back", n, len(out.Data), out.Note, err)
			}
		}
	})
}

func TestServiceErrorIsServerError(t *testing.T) {
	queue := testQueue(t)
	startServer(t, newArith("s1"), queue)
	client := dial(t, queue)
	var quo Quotient
	err := client.Call("Arith.Divide", &Args{1, 0}, &quo)
	var se rpc.ServerError
	if !errors.As(err, &se) || string(se) != "divide by zero" {
		t.Fatalf("Call(Arith.Divide, 1/0) = %v (%T); want rpc.ServerError(\"divide by zero\")", err, err)
	}
	// The client goes on working after an error reply.
	var product int
	if err := client.Call("Arith.Multiply", &Args{2, 3}, &product); err != nil || product != 6 {
		t.Fatalf("Call after an error = %d, %v; want 6, nil", product, err)
	}
}

func TestUnknownServiceAndMethod(t *testing.T) {
	queue := testQueue(t)
	arith := newArith("s1")
	startServer(t, arith, queue, WithPrefetch(1))
	client := dial(t, queue)
	for _, method := range []string{"Nope.Multiply", "Arith.Nope", "NoDot"} {
		var r int
		err := client.Call(method, &Args{1, 2}, &r)
		var se rpc.ServerError
		if !errors.As(err, &se) || !strings.Contains(string(se), "rpc:") {
			t.Errorf("Call(%q) = %v; want net/rpc's rpc.ServerError", method, err)
		}
	}
	// With prefetch 1 this only succeeds if the refused requests were acked.
	var product int
	if err := client.Call("Arith.Multiply", &Args{4, 5}, &product); err != nil || product != 20 {
		t.Fatalf("Call after refused requests = %d, %v; want 20, nil", product, err)
	}
}

func TestManyConcurrentCalls(t *testing.T) {
	queue := testQueue(t)
	startServer(t, newArith("s1"), queue)
	encodings(t, func(t *testing.T, enc codec.Encoding) {
		replyModes(t, func(t *testing.T, mode ClientOption) {
			client := dial(t, queue, WithEncoding(enc), mode)
			const n = 500
			calls := make([]*rpc.Call, n)
			for i := range calls {
				calls[i] = client.Go("Arith.Multiply", &Args{i, 3}, new(int), make(chan *rpc.Call, 1))
			}
			within(t, 60*time.Second, "500 concurrent calls", func() {
				for i, c := range calls {
					<-c.Done
					if c.Error != nil || *c.Reply.(*int) != i*3 {
						t.Errorf("call %d = %d, %v; want %d, nil", i, *c.Reply.(*int), c.Error, i*3)
					}
				}
			})
		})
	})
}

func TestManyGoroutinesShareOneClient(t *testing.T) {
	queue := testQueue(t)
	startServer(t, newArith("s1"), queue)
	client := dial(t, queue)
	var wg sync.WaitGroup
	errs := make(chan error, 1000)
	for g := 0; g < 50; g++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := 0; i < 10; i++ {
				var r int
				if err := client.Call("Arith.Multiply", &Args{g, i}, &r); err != nil || r != g*i {
					errs <- fmt.Errorf("Call(%d*%d) = %d, %v", g, i, r, err)
				}
			}
		}()
	}
	within(t, 60*time.Second, "50 goroutines x 10 calls", wg.Wait)
	close(errs)
	for err := range errs {
		t.Error(err)
	}
}

func TestCompetingServers(t *testing.T) {
	queue := testQueue(t)
	a, b := newArith("a"), newArith("b")
	startServer(t, a, queue, WithPrefetch(4))
	startServer(t, b, queue, WithPrefetch(4))
	brokertest.WaitForConsumers(t, brokertest.URL(t), queue, 2)
	client := dial(t, queue)
	seen := map[string]int{}
	calls := make([]*rpc.Call, 200)
	for i := range calls {
		calls[i] = client.Go("Arith.Who", &Args{}, new(string), make(chan *rpc.Call, 1))
	}
	for _, c := range calls {
		<-c.Done
		if c.Error != nil {
			t.Fatalf("Call(Arith.Who) = %v", c.Error)
		}
		seen[*c.Reply.(*string)]++
	}
	if seen["a"] == 0 || seen["b"] == 0 || seen["a"]+seen["b"] != 200 {
		t.Fatalf("answers by server = %v; want both a and b, 200 in all", seen)
	}
}

func TestGobAndJSONCallersShareAQueue(t *testing.T) {
	queue := testQueue(t)
	startServer(t, newArith("s1"), queue)
	gobClient := dial(t, queue, WithEncoding(codec.Gob))
	jsonClient := dial(t, queue, WithEncoding(codec.JSON))
	var wg sync.WaitGroup
	for _, c := range []*rpc.Client{gobClient, jsonClient} {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := 0; i < 50; i++ {
				var r int
				if err := c.Call("Arith.Multiply", &Args{i, 2}, &r); err != nil || r != i*2 {
					t.Errorf("Call(%d*2) = %d, %v", i, r, err)
				}
			}
		}()
	}
	within(t, 30*time.Second, "gob and JSON callers", wg.Wait)
}

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

// TestBadRequestsGetErrorReplies sends what a broken or hostile client might
// and checks each gets one error reply, is acknowledged once, and leaves the
// server serving.
func TestBadRequestsGetErrorReplies(t *testing.T) {
	queue := testQueue(t)
	arith := newArith("s1")
	startServer(t, arith, queue, WithPrefetch(1), WithMaxBodySize(1<<10))
	_, ch := rawConn(t)
	replyQ, err := ch.QueueDeclare("", false, true, true, false, nil)
	if err != nil {
		t.Fatal(err)
	}
	replies := brokertest.Consume(t, ch, replyQ.Name)
	validGob, _ := new(codec.Codec).Marshal(nil, codec.Gob, &Args{2, 3})
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
		{"unknown content type", amqp.Publishing{Type: "Arith.Multiply", ContentType: "text/plain", Body: []byte("6*7")}, ErrUnsupportedContentType.Error()},
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
			if err := ch.Publish("", queue, false, false, tt.msg); err != nil {
				t.Fatal(err)
			}
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
	var r int
	if err := client.Call("Arith.Multiply", &Args{6, 7}, &r); err != nil || r != 42 {
		t.Fatalf("Call after bad requests = %d, %v; want 42, nil", r, err)
	}
}

// hugeSliceGob is a well-framed gob Payload whose Data claims 2^32 bytes
// in a body of a few dozen.
func hugeSliceGob(t *testing.T) []byte {
	t.Helper()
	b, err := new(codec.Codec).Marshal(nil, codec.Gob, &Payload{Data: []byte{1, 2, 3}, Note: "n"})
	if err != nil {
		t.Fatal(err)
	}
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
	if err := ch.Publish("", queue, false, false, amqp.Publishing{Type: "Arith.Multiply", ContentType: "application/json", Body: []byte(`{"A":1,"B":1}`), ReplyTo: "no-such-queue-" + queue, CorrelationId: "1"}); err != nil {
		t.Fatal(err)
	}
	var r int
	if err := client.Call("Arith.Multiply", &Args{4, 4}, &r); err != nil || r != 16 {
		t.Fatalf("Call after a request to a missing reply queue = %d, %v; want 16, nil", r, err)
	}

	// An expiration that passes while the request waits behind a busy
	// server: the broker drops it and the server never runs it.
	busy := client.Go("Arith.Wait", &Args{1, 1}, new(int), nil)
	<-arith.began
	before := arith.calls.Load()
	if err := ch.Publish("", queue, false, false, amqp.Publishing{Type: "Arith.Multiply", ContentType: "application/json", Body: []byte(`{"A":2,"B":2}`), Expiration: "1", CorrelationId: "2"}); err != nil {
		t.Fatal(err)
	}
	brokertest.WaitFor(t, 5*time.Second, "the expired request leaves the queue", func() bool { return brokertest.Depth(conn, queue) == 0 })
	arith.open()
	<-busy.Done
	if err := client.Call("Arith.Multiply", &Args{5, 5}, &r); err != nil || r != 25 {
		t.Fatalf("Call after an expired request = %d, %v; want 25, nil", r, err)
	}
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
	if err := ch.Publish("", queue, false, false, amqp.Publishing{Type: "Arith.Multiply", ContentType: "application/json", Body: []byte(`{"A":2,"B":2}`)}); err != nil {
		t.Fatal(err)
	}
	brokertest.WaitFor(t, 10*time.Second, "the call without reply_to runs", func() bool { return arith.calls.Load() == 1 })
	client := dial(t, queue)
	var r int
	if err := client.Call("Arith.Multiply", &Args{3, 3}, &r); err != nil || r != 9 {
		t.Fatalf("Call after a request with no reply_to = %d, %v; want 9, nil (was it acknowledged?)", r, err)
	}
}

// fakeServer answers requests on queue with whatever reply returns for them,
// as a broken server in another language might.
func fakeServer(t *testing.T, queue string, reply func(d amqp.Delivery) []amqp.Publishing) {
	t.Helper()
	_, ch := rawConn(t)
	if _, err := ch.QueueDeclare(queue, false, false, false, false, nil); err != nil {
		t.Fatal(err)
	}
	requests := brokertest.Consume(t, ch, queue)
	go func() {
		for d := range requests {
			for _, p := range reply(d) {
				if p.CorrelationId == "" {
					p.CorrelationId = d.CorrelationId
				}
				_ = ch.Publish("", d.ReplyTo, false, false, p)
			}
		}
	}()
}

func TestMalformedReplyFailsOnlyThatCall(t *testing.T) {
	queue := testQueue(t)
	validGob, _ := new(codec.Codec).Marshal(nil, codec.Gob, 42)
	fakeServer(t, queue, func(d amqp.Delivery) []amqp.Publishing {
		switch d.Type {
		case "Bad.JSON":
			return []amqp.Publishing{{ContentType: "application/json", Body: []byte(`{"trunc`)}}
		case "Bad.Empty":
			return []amqp.Publishing{{ContentType: "application/json"}}
		case "Bad.Gob":
			return []amqp.Publishing{{ContentType: "application/x-gob", Body: validGob[:len(validGob)-1]}}
		case "Bad.ContentType":
			return []amqp.Publishing{{ContentType: "text/csv", Body: []byte("42")}}
		case "Bad.EmptyError":
			return []amqp.Publishing{{ContentType: "application/json", Headers: amqp.Table{ErrorHeader: ""}}}
		}
		return []amqp.Publishing{{ContentType: "application/json", Body: []byte("42")}}
	})
	client := dial(t, queue, WithEncoding(codec.JSON))
	for _, method := range []string{"Bad.JSON", "Bad.Empty", "Bad.Gob", "Bad.ContentType", "Bad.EmptyError"} {
		var r int
		err := client.Call(method, &Args{}, &r)
		if !errors.Is(Cause(err), ErrMalformedReply) {
			t.Errorf("Call(%q) = %v; want ErrMalformedReply", method, err)
		}
		if err := client.Call("Good.Call", &Args{}, &r); err != nil || r != 42 {
			t.Fatalf("Call after %s = %d, %v; want 42, nil: the client must survive a bad reply", method, r, err)
		}
	}
}

func TestUnknownAndDuplicateRepliesAreDropped(t *testing.T) {
	queue := testQueue(t)
	fakeServer(t, queue, func(d amqp.Delivery) []amqp.Publishing {
		return []amqp.Publishing{
			{CorrelationId: "999999", ContentType: "application/json", Body: []byte("1")},
			{CorrelationId: "not-a-number", ContentType: "application/json", Body: []byte("2")},
			{ContentType: "application/json", Body: []byte("42")},
			{ContentType: "application/json", Body: []byte("43")}, // a duplicate
		}
	})
	client := dial(t, queue, WithEncoding(codec.JSON))
	for i := 0; i < 5; i++ {
		var r int
		if err := client.Call("Any.Thing", &Args{}, &r); err != nil || r != 42 {
			t.Fatalf("Call %d = %d, %v; want 42, nil", i, r, err)
		}
	}
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

func TestClientCloseReleasesEverything(t *testing.T) {
	queue := testQueue(t)
	conn, ch := rawConn(t)
	// The test plays the server, to learn the reply queue from a request.
	if _, err := ch.QueueDeclare(queue, false, false, false, false, nil); err != nil {
		t.Fatal(err)
	}
	requests, err := ch.Consume(queue, "", true, false, false, false, nil)
	if err != nil {
		t.Fatal(err)
	}
	next := func() amqp.Delivery {
		t.Helper()
		select {
		case d := <-requests:
			return d
		case <-time.After(5 * time.Second):
			t.Fatal("no request within 5s")
			return amqp.Delivery{}
		}
	}
	replyModes(t, func(t *testing.T, mode ClientOption) {
		client := dial(t, queue, mode, WithEncoding(codec.JSON))
		first := client.Go("Arith.Multiply", &Args{2, 2}, new(int), nil)
		d := next()
		replyTo := d.ReplyTo
		if err := ch.Publish("", replyTo, false, false, amqp.Publishing{CorrelationId: d.CorrelationId, ContentType: "application/json", Body: []byte("4")}); err != nil {
			t.Fatal(err)
		}
		if c := <-first.Done; c.Error != nil || *c.Reply.(*int) != 4 {
			t.Fatalf("Call = %v, %v; want 4, nil", *c.Reply.(*int), c.Error)
		}
		// A call in flight when the client closes fails at once.
		pending := client.Go("Arith.Multiply", &Args{1, 1}, new(int), nil)
		next()
		within(t, 5*time.Second, "Close", func() { client.Close() })
		select {
		case c := <-pending.Done:
			if !errors.Is(c.Error, rpc.ErrShutdown) {
				t.Errorf("call in flight at Close = %v; want rpc.ErrShutdown", c.Error)
			}
		case <-time.After(5 * time.Second):
			t.Fatal("call in flight at Close did not end")
		}
		var r int
		if err := client.Call("Arith.Multiply", &Args{2, 2}, &r); !errors.Is(err, rpc.ErrShutdown) {
			t.Errorf("Call after Close = %v; want rpc.ErrShutdown", err)
		}
		if replyTo != "amq.rabbitmq.reply-to" {
			brokertest.WaitFor(t, 5*time.Second, "reply queue deleted", func() bool { return brokertest.Consumers(conn, replyTo) == -1 })
		}
	})
}

func TestNewClientCodecOnABorrowedConnection(t *testing.T) {
	queue := testQueue(t)
	startServer(t, newArith("s1"), queue)
	conn, _ := rawConn(t)
	replyModes(t, func(t *testing.T, mode ClientOption) {
		cc, err := NewClientCodec(conn, queue, mode)
		if err != nil {
			t.Fatal(err)
		}
		client := rpc.NewClientWithCodec(cc)
		var r int
		if err := client.Call("Arith.Multiply", &Args{5, 5}, &r); err != nil || r != 25 {
			t.Fatalf("Call = %d, %v; want 25, nil", r, err)
		}
		client.Close()
		if conn.IsClosed() {
			t.Fatal("closing the client closed the borrowed connection")
		}
	})
}

func TestNewServerCodecOnABorrowedConnection(t *testing.T) {
	queue := testQueue(t)
	conn, _ := rawConn(t)
	sc, err := NewServerCodec(conn, queue)
	if err != nil {
		t.Fatal(err)
	}
	srv := rpc.NewServer()
	if err := srv.RegisterName("Arith", newArith("s1")); err != nil {
		t.Fatal(err)
	}
	served := make(chan struct{})
	go func() {
		defer close(served)
		srv.ServeCodec(sc)
	}()
	client := dial(t, queue)
	var r int
	if err := client.Call("Arith.Multiply", &Args{5, 6}, &r); err != nil || r != 30 {
		t.Fatalf("Call = %d, %v; want 30, nil", r, err)
	}
	closed := make(chan struct{})
	go func() { sc.Close(); close(closed) }()
	select {
	case <-closed:
	case <-time.After(10 * time.Second):
		buf := make([]byte, 1<<20)
		t.Fatalf("server codec Close did not finish within 10s:\n%s", buf[:runtime.Stack(buf, true)])
	}
	within(t, 10*time.Second, "ServeCodec to return", func() { <-served })
	if conn.IsClosed() {
		t.Fatal("closing the server codec closed the borrowed connection")
	}
}

// TestServeShutdownFinishesCallsInFlight cancels Serve while calls run and
// checks that they are answered and the prefetched requests go to another
// server.
func TestServeShutdownFinishesCallsInFlight(t *testing.T) {
	queue := testQueue(t)
	first := newArith("first")
	stopFirst := startServer(t, first, queue, WithPrefetch(4))
	client := dial(t, queue)
	calls := make([]*rpc.Call, 8)
	for i := range calls {
		calls[i] = client.Go("Arith.Wait", &Args{i, 10}, new(int), make(chan *rpc.Call, 1))
	}
	for i := 0; i < 4; i++ { // the first server takes 4, its prefetch
		<-first.began
	}
	stopped := make(chan struct{})
	go func() {
		defer close(stopped)
		stopFirst()
	}()
	select {
	case <-stopped:
		t.Fatal("Serve returned while calls were in flight")
	case <-time.After(200 * time.Millisecond):
	}
	first.open() // the 4 calls in flight finish and reply
	within(t, 20*time.Second, "Serve to return after its calls finish", func() { <-stopped })

	second := newArith("second")
	second.open()
	startServer(t, second, queue, WithPrefetch(4))
	within(t, 30*time.Second, "all calls", func() {
		for i, c := range calls {
			<-c.Done
			if c.Error != nil || *c.Reply.(*int) != i*10 {
				t.Errorf("call %d = %d, %v; want %d, nil", i, *c.Reply.(*int), c.Error, i*10)
			}
		}
	})
	if got := first.calls.Load() + second.calls.Load(); got != 8 {
		t.Fatalf("calls run = %d; want 8 (each once)", got)
	}
}

func TestServeStopsWhenContextIsAlreadyDone(t *testing.T) {
	queue := testQueue(t)
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	within(t, 10*time.Second, "Serve with a done context", func() {
		if err := Serve(ctx, rpc.NewServer(), brokertest.URL(t), queue); err != nil {
			t.Errorf("Serve = %v; want nil", err)
		}
	})
}

type InfoArgs struct {
	N int
	Delivery
}

type InfoReply struct {
	N           int
	MessageID   string
	Redelivered bool
}

// Info reports the delivery its request arrived in.
func (t *Arith) Info(args *InfoArgs, reply *InfoReply) error {
	t.calls.Add(1)
	*reply = InfoReply{N: args.N, MessageID: args.MessageID, Redelivered: args.Redelivered}
	return nil
}

func TestServiceSeesDelivery(t *testing.T) {
	queue := testQueue(t)
	conn, ch := rawConn(t)
	if _, err := ch.QueueDeclare(queue, true, false, false, false, nil); err != nil {
		t.Fatal(err)
	}
	encodings(t, func(t *testing.T, enc codec.Encoding) {
		client := dial(t, queue, WithEncoding(enc))
		// A consumer of our own takes the request and dies without
		// acknowledging it, so the broker delivers it again.
		thief, err := conn.Channel()
		if err != nil {
			t.Fatal(err)
		}
		taken, err := thief.Consume(queue, "", false, false, false, false, nil)
		if err != nil {
			t.Fatal(err)
		}
		call := client.Go("Arith.Info", &InfoArgs{N: 5, Delivery: Delivery{MessageID: "forged", Redelivered: true}}, new(InfoReply), nil)
		first := brokertest.NextDelivery(t, taken, "request taken by the thief")
		thief.Close()
		startServer(t, newArith("s1"), queue)
		<-call.Done
		got := call.Reply.(*InfoReply)
		if call.Error != nil || got.N != 5 || !got.Redelivered || got.MessageID != first.MessageId || got.MessageID == "" {
			t.Fatalf("Info after a redelivery = %+v, %v; want N 5, Redelivered, MessageID %q", got, call.Error, first.MessageId)
		}
		var fresh InfoReply
		if err := client.Call("Arith.Info", &InfoArgs{N: 6}, &fresh); err != nil || fresh.Redelivered || fresh.MessageID == "" || fresh.MessageID == first.MessageId {
			t.Fatalf("Info on a first delivery = %+v, %v; want not redelivered, a new MessageID", fresh, err)
		}
	})
}

func TestConfirmsOnBothSides(t *testing.T) {
	queue := testQueue(t)
	startServer(t, newArith("s1"), queue, WithConfirms())
	replyModes(t, func(t *testing.T, mode ClientOption) {
		client := dial(t, queue, mode, WithConfirms())
		calls := make([]*rpc.Call, 100)
		for i := range calls {
			calls[i] = client.Go("Arith.Multiply", &Args{i, 2}, new(int), make(chan *rpc.Call, 1))
		}
		within(t, 30*time.Second, "100 calls with confirms", func() {
			for i, c := range calls {
				<-c.Done
				if c.Error != nil || *c.Reply.(*int) != 2*i {
					t.Errorf("call %d = %d, %v; want %d", i, *c.Reply.(*int), c.Error, 2*i)
				}
			}
		})
	})
}

func TestConfirmsNackFailsTheCall(t *testing.T) {
	queue := testQueue(t)
	conn, ch := rawConn(t)
	// A full queue that refuses more: the broker nacks the next publish.
	_, err := ch.QueueDeclare(queue, false, false, false, false, amqp.Table{"x-max-length": int32(1), "x-overflow": "reject-publish"})
	if err != nil {
		t.Fatal(err)
	}
	client := dial(t, queue, WithConfirms(), WithCallTimeout(3*time.Second))
	first := client.Go("Arith.Multiply", &Args{1, 1}, new(int), nil) // fills the queue
	brokertest.WaitFor(t, 5*time.Second, "the first request in the queue", func() bool { return brokertest.Depth(conn, queue) == 1 })
	var r int
	start := time.Now()
	err = client.Call("Arith.Multiply", &Args{2, 2}, &r)
	if !errors.Is(Cause(err), ErrNacked) {
		t.Fatalf("Call to a full reject-publish queue = %v; want ErrNacked", err)
	}
	if d := time.Since(start); d > 2*time.Second {
		t.Fatalf("the nacked call took %v; want a prompt failure", d)
	}
	<-first.Done
	if !errors.Is(Cause(first.Error), ErrTimeout) {
		t.Fatalf("first call = %v; want ErrTimeout (nobody consumes)", first.Error)
	}
}

// TestConflictingQueueDeclaration: a queue declared otherwise (here
// non-durable, as many servers in other languages do) is an error that says
// what differs, not a crash.
func TestConflictingQueueDeclaration(t *testing.T) {
	queue := testQueue(t)
	conn, ch := rawConn(t)
	if _, err := ch.QueueDeclare(queue, false, false, false, false, nil); err != nil {
		t.Fatal(err)
	}
	err := Serve(context.Background(), rpc.NewServer(), brokertest.URL(t), queue)
	if err == nil || !strings.Contains(err.Error(), "durable") || !strings.Contains(err.Error(), "PRECONDITION_FAILED") {
		t.Fatalf("Serve on a queue declared non-durable = %v; want an error naming durable and PRECONDITION_FAILED", err)
	}
	if _, err := NewServerCodec(conn, queue, WithQuorumQueue()); err == nil || !strings.Contains(err.Error(), "quorum") {
		t.Fatalf("NewServerCodec(quorum) on a classic queue = %v; want an error naming the queue type", err)
	}
	if conn.IsClosed() {
		t.Fatal("a refused declaration closed the borrowed connection")
	}
	// The matching declaration works.
	startServer(t, newArith("s1"), queue, WithTransientQueue())
	client := dial(t, queue)
	var r int
	if err := client.Call("Arith.Multiply", &Args{2, 21}, &r); err != nil || r != 42 {
		t.Fatalf("Call = %d, %v; want 42, nil", r, err)
	}
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
	err := ch.Publish("", queue, false, false, amqp.Publishing{
		Type: "Arith.Multiply", ContentType: "application/json", Body: []byte(`{"A":6,"B":7}`),
		ReplyTo: forgedReplyTo, CorrelationId: "1", MessageId: "poison-1",
	})
	if err != nil {
		t.Fatal(err)
	}
	conn, _ := rawConn(t)
	brokertest.WaitFor(t, 20*time.Second, "the poison request leaves the queue", func() bool {
		return arith.calls.Load() >= 1 && brokertest.Depth(conn, queue) == 0 && brokertest.Consumers(conn, queue) == 1
	})
	client := dial(t, queue, WithCallTimeout(20*time.Second))
	var r int
	if err := client.Call("Arith.Multiply", &Args{2, 3}, &r); err != nil || r != 6 {
		t.Fatalf("Call after the poison request = %d, %v; want 6, nil", r, err)
	}
	runs := arith.calls.Load() - 1
	// It must not come back again.
	time.Sleep(time.Second) // watching for something that must not happen
	if now := arith.calls.Load() - 1; now != runs || runs > 2 {
		t.Fatalf("the poison request ran %d times, then %d; want at most 2, then no more", runs, now)
	}
}

type Shape struct {
	Name string
	Spec any // a registered concrete type
}

type Circle struct{ R float64 }

type Square struct{ Side int }

func init() {
	gob.Register(Circle{})
	gob.Register(Square{})
}

// EchoShape returns its argument.
func (t *Arith) EchoShape(args *Shape, reply *Shape) error {
	t.calls.Add(1)
	*reply = *args
	return nil
}

// TestGobInterfaceValues: gob writes type definitions inside a value that
// holds an interface; such bodies cross the broker intact, both ways, in any
// order of concrete types.
func TestGobInterfaceValues(t *testing.T) {
	queue := testQueue(t)
	startServer(t, newArith("s1"), queue)
	client := dial(t, queue, WithEncoding(codec.Gob))
	for round := 0; round < 2; round++ {
		for _, in := range []Shape{{"none", nil}, {"c", Circle{1.5}}, {"s", Square{2}}, {"c2", Circle{3}}, {"i", 7}} {
			var out Shape
			if err := client.Call("Arith.EchoShape", &in, &out); err != nil || !reflect.DeepEqual(in, out) {
				t.Fatalf("round %d: Call(EchoShape, %+v) = %+v, %v", round, in, out, err)
			}
		}
	}
}

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
		if err := client.Call("Arith.Multiply", &Args{3, 3}, &r); !errors.Is(err, ErrTooManyCalls) {
			t.Fatalf("third call with 2 in flight = %v; want ErrTooManyCalls", err)
		}
		arith.open()
		for _, c := range held {
			<-c.Done
		}
		if err := client.Call("Arith.Multiply", &Args{3, 3}, &r); err != nil || r != 9 {
			t.Fatalf("call after the slots freed = %d, %v; want 9, nil", r, err)
		}
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
		if err := <-third; err != nil {
			t.Fatalf("third call = %v; want it answered once a slot freed", err)
		}
		for _, c := range held {
			<-c.Done
			if c.Error != nil {
				t.Fatalf("call = %v; want it answered", c.Error)
			}
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

// TestServerConfirmsHoldTheAck: with confirms on, a server acknowledges a
// request only once the broker has confirmed its reply. A reply queue that
// refuses replies (full, reject-publish) gets the reply nacked: the request
// goes back to the queue once, and refused again it is acknowledged with its
// reply lost, so no caller can make a service run a request forever.
func TestServerConfirmsHoldTheAck(t *testing.T) {
	queue := testQueue(t)
	arith := newArith("s1")
	startServer(t, arith, queue, WithConfirms(), WithPrefetch(1))
	conn, ch := rawConn(t)
	replyQ := testQueue(t)
	if _, err := ch.QueueDeclare(replyQ, false, false, false, false, amqp.Table{"x-max-length": int32(1), "x-overflow": "reject-publish"}); err != nil {
		t.Fatal(err)
	}
	for i, body := range []string{`{"A":1,"B":1}`, `{"A":2,"B":2}`} {
		if err := ch.Publish("", queue, false, false, amqp.Publishing{Type: "Arith.Multiply", ContentType: "application/json", Body: []byte(body), ReplyTo: replyQ, CorrelationId: strconv.Itoa(i)}); err != nil {
			t.Fatal(err)
		}
	}
	// The first reply fills the reply queue. The second is refused, its
	// request runs a second time, is refused again, and is acknowledged.
	brokertest.WaitFor(t, 10*time.Second, "the request queue empties", func() bool {
		return arith.calls.Load() >= 3 && brokertest.Depth(conn, queue) == 0
	})
	time.Sleep(500 * time.Millisecond) // watching for a run that must not come
	if got := arith.calls.Load(); got != 3 {
		t.Fatalf("calls run = %d; want 3 (the second request twice, then no more)", got)
	}
	if got := brokertest.Depth(conn, replyQ); got != 1 {
		t.Fatalf("reply queue holds %d replies; want 1", got)
	}
}

func TestServeReadyAndQueueExpiry(t *testing.T) {
	queue := testQueue(t)
	srv := rpc.NewServer()
	if err := srv.RegisterName("Arith", newArith("s1")); err != nil {
		t.Fatal(err)
	}
	ready := make(chan struct{})
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() {
		done <- Serve(ctx, srv, brokertest.URL(t), queue, WithReady(func() { close(ready) }), WithQueueExpiry(300*time.Millisecond))
	}()
	select {
	case <-ready:
	case err := <-done:
		t.Fatalf("Serve = %v before it was ready", err)
	case <-time.After(10 * time.Second):
		t.Fatal("WithReady's function was not called within 10s")
	}
	// Ready means consuming: a call made now finds the queue.
	client := dial(t, queue)
	var r int
	if err := client.Call("Arith.Multiply", &Args{6, 7}, &r); err != nil || r != 42 {
		t.Fatalf("Call right after ready = %d, %v; want 42, nil", r, err)
	}
	cancel()
	if err := <-done; err != nil {
		t.Fatalf("Serve = %v", err)
	}
	// Any declare, passive ones included, counts as a use and restarts the
	// expiry, so look once, well after it.
	time.Sleep(1500 * time.Millisecond) // the broker's own timer: nothing to wait on
	conn, _ := rawConn(t)
	if n := brokertest.Consumers(conn, queue); n != -1 {
		t.Fatalf("queue %q still exists (%d consumers) 1.5s after its last consumer left; want it expired after 300ms", queue, n)
	}
}

// TestBorrowedConnectionClosedForGood: codecs built on a connection the
// caller owns give up when it closes for good, instead of waiting forever.
func TestBorrowedConnectionClosedForGood(t *testing.T) {
	queue := testQueue(t)
	arith := newArith("s1")
	startServer(t, arith, queue)
	t.Cleanup(arith.open)

	t.Run("client", func(t *testing.T) {
		conn, err := amqp.Dial(brokertest.URL(t))
		if err != nil {
			t.Fatal(err)
		}
		cc, err := NewClientCodec(conn, queue, WithCallTimeout(0)) // no timeout to save it
		if err != nil {
			t.Fatal(err)
		}
		client := rpc.NewClientWithCodec(cc)
		defer client.Close()
		pending := client.Go("Arith.Wait", &Args{1, 1}, new(int), nil)
		<-arith.began
		conn.Close()
		// Made while the client is between sessions, this call waits for a
		// reconnect that can never come.
		waiting := client.Go("Arith.Multiply", &Args{2, 2}, new(int), nil)
		select {
		case c := <-waiting.Done:
			if c.Error == nil {
				t.Fatal("a call made after the borrowed connection closed succeeded")
			}
		case <-time.After(10 * time.Second):
			t.Fatal("a call waiting for a reconnect hung after its borrowed connection closed for good")
		}
		select {
		case c := <-pending.Done:
			if !errors.Is(Cause(c.Error), ErrConnectionLost) && !errors.Is(c.Error, ErrConnectionLost) {
				t.Fatalf("call in flight when the borrowed connection closed = %v; want ErrConnectionLost", c.Error)
			}
		case <-time.After(10 * time.Second):
			t.Fatal("a call in flight hung after its borrowed connection closed")
		}
		var r int
		within(t, 10*time.Second, "a call after the connection closed", func() {
			if err := client.Call("Arith.Multiply", &Args{1, 1}, &r); err == nil {
				t.Error("Call after the borrowed connection closed = nil; want an error")
			}
		})
	})

	t.Run("server", func(t *testing.T) {
		conn, err := amqp.Dial(brokertest.URL(t))
		if err != nil {
			t.Fatal(err)
		}
		sc, err := NewServerCodec(conn, queue)
		if err != nil {
			t.Fatal(err)
		}
		srv := rpc.NewServer()
		if err := srv.RegisterName("Arith", newArith("s2")); err != nil {
			t.Fatal(err)
		}
		served := make(chan struct{})
		go func() {
			defer close(served)
			srv.ServeCodec(sc)
		}()
		conn.Close()
		within(t, 15*time.Second, "ServeCodec after its borrowed connection closed", func() { <-served })
	})
}

func TestQuorumQueue(t *testing.T) {
	queue := testQueue(t)
	startServer(t, newArith("s1"), queue, WithQuorumQueue())
	_, ch := rawConn(t)
	// The broker has it as a quorum queue: declaring it classic is refused.
	if _, err := ch.QueueDeclare(queue, true, false, false, false, nil); err == nil || !strings.Contains(err.Error(), "x-queue-type") {
		t.Fatalf("QueueDeclare(classic) over the server's queue = %v; want PRECONDITION_FAILED on x-queue-type", err)
	}
	client := dial(t, queue)
	var r int
	if err := client.Call("Arith.Multiply", &Args{6, 7}, &r); err != nil || r != 42 {
		t.Fatalf("Call through a quorum queue = %d, %v; want 42, nil", r, err)
	}
}

package amqprpc

// The codecs' contract with net/rpc, end to end through the test broker
// (AMQP_URL, default amqp://guest:guest@127.0.0.1:5672/): calls in both
// encodings and both reply modes, service errors as rpc.ServerError, bad
// replies that fail only their call, Close, and codecs on a connection the
// caller owns. Each test uses queues of its own and removes them. Other
// areas (timeouts, confirms, the server's queue, bad requests, ...) have
// files named for them.

import (
	"bytes"
	"context"
	"encoding/gob"
	"errors"
	"fmt"
	"net/rpc"
	"reflect"
	"runtime"
	"strconv"
	"sync"
	"testing"
	"time"

	amqp "github.com/rabbitmq/amqp091-go"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/amqprpc/amqprpc/codec"
	"github.com/amqprpc/amqprpc/internal/brokertest"
)

// encodings runs f with each encoding a client can use.
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
			multiply(t, client, 7, 8, "")
			var quo Quotient
			if err := client.Call("Arith.Divide", &Args{17, 5}, &quo); err != nil || quo != (Quotient{3, 2}) {
				t.Fatalf("Call(Arith.Divide, 17/5) = %+v, %v; want {3 2}, nil", quo, err)
			}
			// client.Go, as net/rpc users write it.
			c := waitCall(t, client.Go("Arith.Multiply", &Args{3, 4}, new(int), nil), 10*time.Second, "Go(Arith.Multiply)")
			if c.Error != nil || *c.Reply.(*int) != 12 {
				t.Fatalf("Go(Arith.Multiply, 3*4) = %d, %v; want 12, nil", *c.Reply.(*int), c.Error)
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
	require.Equal(t, rpc.ServerError("divide by zero"), err, "Call(Arith.Divide, 1/0)")
	// The client goes on working after an error reply.
	multiply(t, client, 2, 3, "after an error")
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
		if assert.ErrorAs(t, err, &se, "Call(%q)", method) {
			assert.Contains(t, string(se), "rpc:", "Call(%q): want net/rpc's own error", method)
		}
	}
	// With prefetch 1 this only succeeds if the refused requests were acked.
	multiply(t, client, 4, 5, "after refused requests")
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

// playServer declares queue, as a server in another language would
// (non-durable), and consumes it on ch, so that the test can play the
// server.
func playServer(t *testing.T, ch *amqp.Channel, queue string) <-chan amqp.Delivery {
	t.Helper()
	_, err := ch.QueueDeclare(queue, false, false, false, false, nil)
	require.NoError(t, err)
	return brokertest.Consume(t, ch, queue)
}

// fakeServer answers requests on queue with whatever reply returns for them,
// as a broken server in another language might.
func fakeServer(t *testing.T, queue string, reply func(d amqp.Delivery) []amqp.Publishing) {
	t.Helper()
	_, ch := rawConn(t)
	requests := playServer(t, ch, queue)
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
	validGob, err := new(codec.Codec).Marshal(nil, codec.Gob, 42)
	require.NoError(t, err)
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
		assert.ErrorIs(t, Cause(err), ErrMalformedReply, "Call(%q)", method)
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

func TestClientCloseReleasesEverything(t *testing.T) {
	queue := testQueue(t)
	conn, ch := rawConn(t)
	// The test plays the server, to learn the reply queue from a request.
	requests := playServer(t, ch, queue)
	replyModes(t, func(t *testing.T, mode ClientOption) {
		client := dial(t, queue, mode, WithEncoding(codec.JSON))
		first := client.Go("Arith.Multiply", &Args{2, 2}, new(int), nil)
		d := brokertest.NextDelivery(t, requests, "the first request")
		replyTo := d.ReplyTo
		require.NoError(t, ch.Publish("", replyTo, false, false, amqp.Publishing{CorrelationId: d.CorrelationId, ContentType: "application/json", Body: []byte("4")}))
		if c := <-first.Done; c.Error != nil || *c.Reply.(*int) != 4 {
			t.Fatalf("Call = %v, %v; want 4, nil", *c.Reply.(*int), c.Error)
		}
		// A call in flight when the client closes fails at once.
		pending := client.Go("Arith.Multiply", &Args{1, 1}, new(int), nil)
		brokertest.NextDelivery(t, requests, "the request in flight")
		within(t, 5*time.Second, "Close", func() { client.Close() })
		c := waitCall(t, pending, 5*time.Second, "the call in flight at Close")
		assert.ErrorIs(t, c.Error, rpc.ErrShutdown, "call in flight at Close")
		var r int
		assert.ErrorIs(t, client.Call("Arith.Multiply", &Args{2, 2}, &r), rpc.ErrShutdown, "Call after Close")
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
		require.NoError(t, err)
		client := rpc.NewClientWithCodec(cc)
		multiply(t, client, 5, 5, "")
		client.Close()
		require.False(t, conn.IsClosed(), "closing the client closed the borrowed connection")
	})
}

func TestNewServerCodecOnABorrowedConnection(t *testing.T) {
	queue := testQueue(t)
	conn, _ := rawConn(t)
	sc, err := NewServerCodec(conn, queue)
	require.NoError(t, err)
	served := serveCodec(t, sc, newArith("s1"))
	client := dial(t, queue)
	multiply(t, client, 5, 6, "")
	closed := make(chan struct{})
	go func() { sc.Close(); close(closed) }()
	select {
	case <-closed:
	case <-time.After(10 * time.Second):
		buf := make([]byte, 1<<20)
		t.Fatalf("server codec Close did not finish within 10s:\n%s", buf[:runtime.Stack(buf, true)])
	}
	within(t, 10*time.Second, "ServeCodec to return", func() { <-served })
	require.False(t, conn.IsClosed(), "closing the server codec closed the borrowed connection")
}

// serveCodec serves svc as "Arith" through sc in a goroutine of its own;
// the channel it returns closes when ServeCodec returns.
func serveCodec(t *testing.T, sc rpc.ServerCodec, svc any) <-chan struct{} {
	t.Helper()
	srv := rpc.NewServer()
	require.NoError(t, srv.RegisterName("Arith", svc))
	served := make(chan struct{})
	go func() {
		defer close(served)
		srv.ServeCodec(sc)
	}()
	return served
}

// TestBorrowedConnectionClosedForGood: codecs built on a connection the
// caller owns give up when it closes for good, instead of waiting forever.
func TestBorrowedConnectionClosedForGood(t *testing.T) {
	queue := testQueue(t)
	arith := newArith("s1")
	startServer(t, arith, queue)
	t.Cleanup(arith.open)

	t.Run("client", func(t *testing.T) {
		conn, _ := rawConn(t)
		cc, err := NewClientCodec(conn, queue, WithCallTimeout(0)) // no timeout to save it
		require.NoError(t, err)
		client := rpc.NewClientWithCodec(cc)
		defer client.Close()
		pending := client.Go("Arith.Wait", &Args{1, 1}, new(int), nil)
		<-arith.began
		conn.Close()
		// Made while the client is between sessions, this call waits for a
		// reconnect that can never come.
		waiting := client.Go("Arith.Multiply", &Args{2, 2}, new(int), nil)
		c := waitCall(t, waiting, 10*time.Second, "a call waiting for a reconnect after its borrowed connection closed for good")
		require.Error(t, c.Error, "a call made after the borrowed connection closed")
		c = waitCall(t, pending, 10*time.Second, "a call in flight when its borrowed connection closed")
		if !errors.Is(Cause(c.Error), ErrConnectionLost) && !errors.Is(c.Error, ErrConnectionLost) {
			t.Fatalf("call in flight when the borrowed connection closed = %v; want ErrConnectionLost", c.Error)
		}
		var r int
		within(t, 10*time.Second, "a call after the connection closed", func() {
			if err := client.Call("Arith.Multiply", &Args{1, 1}, &r); err == nil {
				t.Error("Call after the borrowed connection closed = nil; want an error")
			}
		})
	})

	t.Run("server", func(t *testing.T) {
		conn, _ := rawConn(t)
		sc, err := NewServerCodec(conn, queue)
		require.NoError(t, err)
		served := serveCodec(t, sc, newArith("s2"))
		conn.Close()
		within(t, 15*time.Second, "ServeCodec after its borrowed connection closed", func() { <-served })
	})
}

// TestReplyThatDoesNotFitFailsOnlyThatCall: a well-formed reply of the
// wrong shape fails its call alone, not the client: with Call, whose reply
// type the codec knows, and with client.Call once a reply of the method has
// shown its type. The first is what a server in another language that
// replies "832040" with no content type does to a caller reading a string.
func TestReplyThatDoesNotFitFailsOnlyThatCall(t *testing.T) {
	queue := testQueue(t)
	fakeServer(t, queue, func(d amqp.Delivery) []amqp.Publishing {
		switch string(d.Body) {
		case `"number"`:
			return []amqp.Publishing{{Body: []byte("832040")}} // no content type: JSON
		case `"object"`:
			return []amqp.Publishing{{ContentType: "application/json", Body: []byte(`{"a":1}`)}}
		case `"array"`:
			return []amqp.Publishing{{ContentType: "application/json", Body: []byte(`[1,2]`)}}
		case `"text"`:
			return []amqp.Publishing{{ContentType: "text/plain", Body: []byte("service overloaded")}}
		}
		return []amqp.Publishing{{ContentType: "application/json", Body: []byte("42")}}
	})
	client := dial(t, queue, WithEncoding(codec.JSON))
	alive := func(t *testing.T, after string) {
		t.Helper()
		var r int
		if err := client.Call("Any.Good", "good", &r); err != nil || r != 42 {
			t.Fatalf("Call after %s = %d, %v; want 42, nil: the client must survive", after, r, err)
		}
	}
	for _, tt := range []struct {
		arg   string
		reply any
	}{
		{"number", new(string)},
		{"object", new(int)},
		{"array", new(Quotient)},
		{"text", new(int)},
		{"object", new([]int)},
	} {
		t.Run(fmt.Sprintf("Call %s into %T", tt.arg, tt.reply), func(t *testing.T) {
			err := Call(context.Background(), client, "Any.Shape", tt.arg, tt.reply)
			assert.ErrorIs(t, Cause(err), ErrMalformedReply, "Call(%s into %T)", tt.arg, tt.reply)
			if tt.arg != "text" { // text that is not JSON is malformed for an *int
				assert.ErrorContains(t, err, "does not fit")
			}
			alive(t, fmt.Sprintf("%s into %T", tt.arg, tt.reply))
		})
	}
	t.Run("client.Call once the type is known", func(t *testing.T) {
		var n int
		require.NoError(t, client.Call("Any.Learned", "good", &n), "the first call shows the reply type")
		for _, arg := range []string{"object", "array", "text"} {
			var r int
			err := client.Call("Any.Learned", arg, &r)
			assert.ErrorIs(t, Cause(err), ErrMalformedReply, "client.Call(%s into *int)", arg)
			alive(t, arg+" into *int")
		}
	})
}

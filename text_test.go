package amqprpc

import (
	"errors"
	"net/rpc"
	"strconv"
	"strings"
	"testing"
	"time"

	amqp "github.com/rabbitmq/amqp091-go"

	"github.com/amqprpc/amqprpc/codec"
	"github.com/amqprpc/amqprpc/internal/brokertest"
)

// Texts has methods whose arguments and results are text, numbers and
// structs, for text/plain requests.
type Texts struct{}

func (Texts) Upper(s string, r *string) error { *r = strings.ToUpper(s); return nil }

func (Texts) Len(b []byte, n *int) error { *n = len(b); return nil }

func (Texts) Square(n int, r *int) error { *r = n * n; return nil }

func (Texts) Swap(a Args, r *Args) error { *r = Args{a.B, a.A}; return nil }

func (Texts) Bytes(s string, r *[]byte) error { *r = []byte(s); return nil }

// TestTextPlainRequests publishes text/plain requests as a hand-written
// client would and checks each reply's content type and body.
func TestTextPlainRequests(t *testing.T) {
	queue := testQueue(t)
	startServer(t, Texts{}, queue)
	_, ch := rawConn(t)
	replyQ, err := ch.QueueDeclare("", false, true, true, false, nil)
	if err != nil {
		t.Fatal(err)
	}
	replies := brokertest.Consume(t, ch, replyQ.Name)
	tests := []struct {
		method, contentType, body string
		want                      string // the reply body, or the start of x-rpc-error after "error: "
	}{
		{"Arith.Upper", "text/plain", "hello", "HELLO"},
		{"Arith.Upper", "text/plain; charset=utf-8", "hello", "HELLO"},
		{"Arith.Upper", "TEXT/PLAIN", `"quoted"`, "QUOTED"},
		{"Arith.Upper", "text/plain", "42", "42"},
		{"Arith.Upper", "text/plain", "", ""},
		{"Arith.Len", "text/plain", "\x00\xff bytes", "8"},
		{"Arith.Square", "text/plain", "30", "900"},
		{"Arith.Square", "text/plain", " 7\n", "49"},
		{"Arith.Swap", "text/plain", `{"A":1,"B":2}`, `{"A":2,"B":1}`},
		{"Arith.Bytes", "text/plain", "raw", "raw"},
		{"Arith.Upper", "text/plain", "null", ""}, // JSON null: the zero string
		{"Arith.Square", "text/plain", "thirty", "error: " + ErrMalformedRequest.Error()},
		{"Arith.Square", "text/plain", `"30"`, "error: " + ErrMalformedRequest.Error()},
		{"Arith.Swap", "text/plain", "1 2", "error: " + ErrMalformedRequest.Error()},
		{"Arith.Square", "text/html", "30", "error: " + ErrUnsupportedContentType.Error()},
	}
	for i, tt := range tests {
		id := strconv.Itoa(i)
		err := ch.Publish("", queue, false, false, amqp.Publishing{
			Type: tt.method, ContentType: tt.contentType, CorrelationId: id, ReplyTo: replyQ.Name, Body: []byte(tt.body),
		})
		if err != nil {
			t.Fatal(err)
		}
		d := brokertest.NextDelivery(t, replies, "reply to "+tt.method)
		errText, failed := d.Headers[ErrorHeader].(string)
		got := string(d.Body)
		if failed {
			got = "error: " + errText
		}
		if d.CorrelationId != id || !strings.HasPrefix(got, tt.want) || (!failed && got != tt.want) {
			t.Errorf("%s(%q as %s) = %q (corr %q); want %q", tt.method, tt.body, tt.contentType, got, d.CorrelationId, tt.want)
		}
		if failed {
			continue
		}
		if d.ContentType != "text/plain" {
			t.Errorf("%s(%q as %s): reply content_type %q; want text/plain", tt.method, tt.body, tt.contentType, d.ContentType)
		}
	}
}

// TestTextClient: a Go client with WithEncoding(codec.Text) calls a Go
// server; every value comes back as it was sent, strings that look like
// JSON included.
func TestTextClient(t *testing.T) {
	queue := testQueue(t)
	startServer(t, Texts{}, queue)
	replyModes(t, func(t *testing.T, mode ClientOption) {
		client := dial(t, queue, WithEncoding(codec.Text), WithCallTimeout(10*time.Second), mode)
		for _, s := range []string{"hello", "", "42", `"quoted"`, "null", `{"A":1}`, "héllo wörld", "two\nlines"} {
			var got string
			if err := client.Call("Arith.Upper", s, &got); err != nil || got != strings.ToUpper(s) {
				t.Errorf("Call(Arith.Upper, %q) = %q, %v; want %q, nil", s, got, err, strings.ToUpper(s))
			}
			var b []byte
			if err := client.Call("Arith.Bytes", s, &b); err != nil || string(b) != s {
				t.Errorf("Call(Arith.Bytes, %q) = %q, %v; want %q, nil", s, b, err, s)
			}
		}
		var n int
		if err := client.Call("Arith.Len", []byte("\x00\xff"), &n); err != nil || n != 2 {
			t.Errorf("Call(Arith.Len, 2 bytes) = %d, %v; want 2, nil", n, err)
		}
		if err := client.Call("Arith.Square", 12, &n); err != nil || n != 144 {
			t.Errorf("Call(Arith.Square, 12) = %d, %v; want 144, nil", n, err)
		}
		var swapped Args
		if err := client.Call("Arith.Swap", Args{1, 2}, &swapped); err != nil || swapped != (Args{2, 1}) {
			t.Errorf("Call(Arith.Swap, {1 2}) = %v, %v; want {2 1}, nil", swapped, err)
		}
		// A text argument that is not a number fails that call alone.
		err := client.Call("Arith.Square", "twelve", &n)
		var se rpc.ServerError
		if !errors.As(err, &se) || !errors.Is(Cause(err), ErrMalformedRequest) {
			t.Errorf("Call(Arith.Square, \"twelve\") = %v; want ErrMalformedRequest", err)
		}
		if err := client.Call("Arith.Square", 3, &n); err != nil || n != 9 {
			t.Errorf("Call(Arith.Square, 3) after a failed call = %d, %v; want 9, nil", n, err)
		}
	})
}

// TestOctetStream: application/octet-stream, which Ruby's Bunny puts on
// every message by default, is read as text/plain both ways. A request
// gets a text/plain reply; a reply in it is read as text by the client.
func TestOctetStream(t *testing.T) {
	queue := testQueue(t)
	startServer(t, Texts{}, queue)
	_, ch := rawConn(t)
	replyQ, err := ch.QueueDeclare("", false, true, true, false, nil)
	if err != nil {
		t.Fatal(err)
	}
	replies := brokertest.Consume(t, ch, replyQ.Name)
	for i, tt := range []struct{ method, body, want string }{
		{"Arith.Square", "30", "900"},
		{"Arith.Upper", "hello", "HELLO"},
	} {
		id := "octet-" + strconv.Itoa(i)
		err := ch.Publish("", queue, false, false, amqp.Publishing{
			Type: tt.method, ContentType: "application/octet-stream", CorrelationId: id, ReplyTo: replyQ.Name, Body: []byte(tt.body),
		})
		if err != nil {
			t.Fatal(err)
		}
		d := brokertest.NextDelivery(t, replies, "reply to "+tt.method)
		if d.CorrelationId != id || string(d.Body) != tt.want || d.ContentType != "text/plain" || d.Headers[ErrorHeader] != nil {
			t.Errorf("%s(%q as application/octet-stream) = %q, content_type %q, x-rpc-error %v; want %q, text/plain, none",
				tt.method, tt.body, d.Body, d.ContentType, d.Headers[ErrorHeader], tt.want)
		}
	}

	// A server that answers in application/octet-stream, as a Bunny
	// server does: the client reads the reply as text.
	other := testQueue(t)
	if _, err := ch.QueueDeclare(other, false, true, false, false, nil); err != nil {
		t.Fatal(err)
	}
	requests := brokertest.Consume(t, ch, other)
	go func() {
		for d := range requests {
			_ = ch.Publish("", d.ReplyTo, false, false, amqp.Publishing{
				CorrelationId: d.CorrelationId, ContentType: "application/octet-stream", Body: []byte("832040"),
			})
		}
	}()
	for _, enc := range []codec.Encoding{codec.JSON, codec.Text} {
		client := dial(t, other, WithEncoding(enc), WithCallTimeout(10*time.Second))
		var n int
		if err := client.Call("Fibonacci.Compute", 30, &n); err != nil || n != 832040 {
			t.Errorf("%v Call to a server replying application/octet-stream = %d, %v; want 832040, nil", enc, n, err)
		}
		var s string
		if err := client.Call("Fibonacci.Compute", 30, &s); err != nil || s != "832040" {
			t.Errorf("%v Call into a string = %q, %v; want \"832040\", nil", enc, s, err)
		}
	}
}

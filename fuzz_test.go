package amqprpc

import (
	"encoding/json"
	"net/rpc"
	"strings"
	"testing"

	amqp "github.com/rabbitmq/amqp091-go"

	"github.com/amqprpc/amqprpc/codec"
	"github.com/amqprpc/amqprpc/transport"
)

// fuzzSeeds are real bodies of the kinds a server and a client see.
func fuzzSeeds(f *testing.F, add func(contentType string, body []byte)) {
	var c codec.Codec
	for _, v := range []any{&Args{6, 7}, 42, &Quotient{3, 2}, &Payload{Data: []byte("abc"), Note: "n"}, &InfoArgs{N: 1}, "text"} {
		for _, e := range []codec.Encoding{codec.Gob, codec.JSON, codec.Text} {
			b, err := c.Marshal(nil, e, v)
			if err != nil {
				f.Fatal(err)
			}
			add(e.ContentType(), b)
		}
	}
	add("", []byte(`{"A":1,"B":2}`))
	add("application/json", []byte(`{"A":`))
	add("application/x-gob", []byte{0x03, 0x04, 0x00})
	add("text/plain", []byte("x"))
	add("text/plain; charset=utf-8", []byte("30"))
	add("text/html", []byte("x"))
}

// FuzzServerRequest feeds arbitrary requests through the server codec's
// decoding: it must never panic, and a request it accepts must decode the
// same way every time.
func FuzzServerRequest(f *testing.F) {
	fuzzSeeds(f, func(ct string, b []byte) { f.Add(ct, "Arith.Multiply", b) })
	f.Add("application/json", "", []byte(`{"A":1}`))
	sc := &serverCodec{defaultMethod: "", maxBody: 1 << 20, running: map[uint64]*inbound{}}
	f.Fuzz(func(t *testing.T, contentType, method string, body []byte) {
		req := transport.Request{Delivery: amqp.Delivery{ContentType: contentType, Type: method, Body: body, MessageId: "m"}}
		in, own := sc.accept(req)
		if own != nil { // a refusal, or a ping's pong
			if own.errText != "" && !strings.HasPrefix(own.errText, "amqprpc: ") {
				t.Fatalf("refusal %q lacks the amqprpc: prefix", own.errText)
			}
			return
		}
		for _, x := range []any{new(Args), new(Payload), new(InfoArgs), new(int), new(string), nil} {
			sc.cur = in
			err1 := sc.ReadRequestBody(x)
			sc.cur = in
			err2 := sc.ReadRequestBody(x)
			if (err1 == nil) != (err2 == nil) {
				t.Fatalf("decoding %q twice: %v, then %v", body, err1, err2)
			}
			if err1 != nil && !strings.HasPrefix(err1.Error(), ErrMalformedRequest.Error()) {
				t.Fatalf("ReadRequestBody error %q does not start with %q", err1, ErrMalformedRequest)
			}
		}
	})
}

// FuzzClientReply feeds arbitrary replies through the client codec: a reply
// it accepts must decode into an untyped value, so only a type mismatch can
// reach net/rpc as a body error; anything else fails that call alone.
func FuzzClientReply(f *testing.F) {
	fuzzSeeds(f, func(ct string, b []byte) { f.Add(ct, "", b) })
	f.Add("application/json", "boom", []byte{})
	cc := &clientCodec{}
	cc.replies = replyReader{bodies: &cc.bodies, maxBody: 1 << 20}
	f.Fuzz(func(t *testing.T, contentType, errHeader string, body []byte) {
		d := response{seq: 1, method: "Arith.Multiply", contentType: contentType, body: body}
		if errHeader != "" {
			d.headers = amqp.Table{ErrorHeader: errHeader}
		}
		// The reply types learned from earlier inputs make this check decode
		// typed, the first inputs untyped: both paths are fuzzed.
		r := cc.replies.check(d)
		if r.errText != "" {
			return
		}
		if errHeader != "" {
			t.Fatalf("reply with %s %q accepted as a result", ErrorHeader, errHeader)
		}
		cc.replies.cur = r
		if err := cc.ReadResponseBody(nil); err != nil {
			t.Fatalf("ReadResponseBody(nil) = %v; want nil", err)
		}
		if r.enc == codec.JSON || r.enc == codec.Text {
			cc.replies.cur = r
			var v json.RawMessage
			if err := cc.ReadResponseBody(&v); err != nil {
				t.Fatalf("accepted %v reply %q does not decode: %v", r.enc, body, err)
			}
		}
		if r.enc == codec.Text {
			// Any text fits a string.
			cc.replies.cur = r
			var s string
			if err := cc.ReadResponseBody(&s); err != nil {
				t.Fatalf("accepted text reply %q does not decode into a string: %v", body, err)
			}
		}
		// Typed decodes may fail (a mismatch) but must not panic.
		for _, x := range []any{new(int), new(Quotient), new(Payload)} {
			cc.replies.cur = r
			_ = cc.ReadResponseBody(x)
		}
	})
}

var _ rpc.ClientCodec = (*clientCodec)(nil)
var _ rpc.ServerCodec = (*serverCodec)(nil)

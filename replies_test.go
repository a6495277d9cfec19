package amqprpc

import (
	"testing"

	"github.com/amqprpc/amqprpc/codec"
)

func TestTextReplyThatDoesNotFitFailsItsCallAlone(t *testing.T) {
	var bodies codec.Codec
	rd := replyReader{bodies: &bodies, maxBody: 1 << 20}
	// First call of the method: learns *int.
	rd.cur = rd.check(response{seq: 1, method: "S.M", contentType: codec.TextContentType, body: []byte("42")})
	var x int
	if err := rd.into(&x); err != nil || x != 42 {
		t.Fatalf("first: %v %d", err, x)
	}
	// Second reply is plain text that is not a number.
	rd.cur = rd.check(response{seq: 2, method: "S.M", contentType: codec.TextContentType, body: []byte("service overloaded")})
	t.Logf("check: errText=%q (empty: net/rpc will call ReadResponseBody)", rd.cur.errText)
	var y int
	err := rd.into(&y)
	t.Logf("into: %v (returned by ReadResponseBody, this ends the *rpc.Client)", err)
	if rd.cur.errText == "" && err != nil {
		t.Errorf("a text reply that does not fit the known reply type passes the check and then kills the client")
	}
}

func TestDecodeOnceMatchesDecodingIntoTheReply(t *testing.T) {
	type inner struct {
		A []int
		M map[string]int
		P *int
	}
	type T struct {
		S   string
		I   inner
		F   float64
		Any any
	}
	var bodies codec.Codec
	for _, enc := range []codec.Encoding{codec.Gob, codec.JSON} {
		seven := 7
		v := T{S: "s", I: inner{A: []int{1}, M: map[string]int{"a": 1}, P: &seven}, F: 1.5, Any: "x"}
		b, err := bodies.Marshal(nil, enc, &v)
		if err != nil {
			t.Fatal(err)
		}
		rd := replyReader{bodies: &bodies, maxBody: 1 << 20}
		rd.cur = rd.check(response{method: "S.M", contentType: enc.ContentType(), body: b})
		var first T
		if err := rd.into(&first); err != nil {
			t.Fatal(err)
		}
		rd.cur = rd.check(response{method: "S.M", contentType: enc.ContentType(), body: b})
		if !rd.cur.decoded.IsValid() {
			t.Fatalf("%v: not decoded once", enc)
		}
		var second T
		if err := rd.into(&second); err != nil {
			t.Fatal(err)
		}
		var direct T
		_ = bodies.Unmarshal(enc, b, &direct)
		if second.S != direct.S || *second.I.P != *direct.I.P || second.I.M["a"] != 1 || second.Any != direct.Any {
			t.Errorf("%v: %+v != %+v", enc, second, direct)
		}
		// non-pointer and nil-pointer targets must not panic
		rd.cur = rd.check(response{method: "S.M", contentType: enc.ContentType(), body: b})
		t.Logf("%v non-pointer: %v", enc, rd.into(T{}))
		rd.cur = rd.check(response{method: "S.M", contentType: enc.ContentType(), body: b})
		t.Logf("%v nil pointer: %v", enc, rd.into((*T)(nil)))
	}
}

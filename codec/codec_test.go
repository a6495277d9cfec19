package codec

import (
	"errors"
	"strings"
	"testing"
)

type pair struct{ A, B int }

type nested struct {
	Name  string
	Items []pair
	Tags  map[string]int
}

func TestForContentType(t *testing.T) {
	tests := []struct {
		in   string
		want Encoding
		err  bool
	}{
		{"", JSON, false},
		{"application/json", JSON, false},
		{"Application/JSON; charset=utf-8", JSON, false},
		{"application/x-gob", Gob, false},
		{"text/plain", Text, false},
		{"Text/Plain ; charset=utf-8", Text, false},
		{"application/octet-stream", Text, false},
		{"Application/Octet-Stream; charset=binary", Text, false},
		{"text/html", 0, true},
		{"application/xml", 0, true},
	}
	for _, tt := range tests {
		got, err := ForContentType(tt.in)
		if (err != nil) != tt.err || (err == nil && got != tt.want) {
			t.Errorf("ForContentType(%q) = %v, %v; want %v, err=%v", tt.in, got, err, tt.want, tt.err)
		}
		if err != nil && !errors.Is(err, ErrUnsupportedContentType) {
			t.Errorf("ForContentType(%q) error %v does not wrap ErrUnsupportedContentType", tt.in, err)
		}
	}
}

func TestContentTypeRoundTrip(t *testing.T) {
	for _, e := range []Encoding{Gob, JSON, Text} {
		got, err := ForContentType(e.ContentType())
		if err != nil || got != e {
			t.Errorf("ForContentType(%q) = %v, %v; want %v", e.ContentType(), got, err, e)
		}
	}
}

func TestRoundTrip(t *testing.T) {
	var c Codec
	in := nested{Name: "n", Items: []pair{{1, 2}, {3, 4}}, Tags: map[string]int{"x": 1}}
	for _, e := range []Encoding{Gob, JSON, Text} {
		for i := 0; i < 3; i++ { // repeated, so any per-type reuse is exercised
			b, err := c.Marshal([]byte("prefix"), e, in)
			if err != nil {
				t.Fatalf("%v: Marshal = %v", e, err)
			}
			if !strings.HasPrefix(string(b), "prefix") {
				t.Fatalf("%v: Marshal did not append to dst", e)
			}
			b = b[len("prefix"):]
			var out nested
			if err := c.Unmarshal(e, b, &out); err != nil {
				t.Fatalf("%v: Unmarshal = %v", e, err)
			}
			if out.Name != in.Name || len(out.Items) != 2 || out.Items[1] != in.Items[1] || out.Tags["x"] != 1 {
				t.Fatalf("%v: Unmarshal = %+v; want %+v", e, out, in)
			}
			if err := c.Unmarshal(e, b, nil); err != nil {
				t.Fatalf("%v: Unmarshal(nil) = %v; want nil", e, err)
			}
		}
	}
}

func TestJSONHasNoTrailingNewline(t *testing.T) {
	var c Codec
	b, err := c.Marshal(nil, JSON, pair{1, 2})
	if err != nil {
		t.Fatal(err)
	}
	if string(b) != `{"A":1,"B":2}` {
		t.Fatalf("Marshal(JSON) = %q; want %q", b, `{"A":1,"B":2}`)
	}
}

func TestMalformedBodies(t *testing.T) {
	var c Codec
	good, err := c.Marshal(nil, Gob, pair{1, 2})
	if err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name string
		e    Encoding
		body []byte
	}{
		{"json empty", JSON, nil},
		{"json garbage", JSON, []byte("{not json")},
		{"json two values", JSON, []byte(`{"A":1} {"A":2}`)},
		{"json deep", JSON, []byte(strings.Repeat("[", 20000) + strings.Repeat("]", 20000))},
		{"gob empty", Gob, nil},
		{"gob truncated", Gob, good[:len(good)-3]},
		{"gob trailing", Gob, append(append([]byte{}, good...), 1, 2, 3)},
		{"gob huge count", Gob, []byte{0xf8, 0x7f, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 1, 2}},
		{"gob definitions only", Gob, good[:gobValueStart(t, good)]},
		{"gob garbage", Gob, []byte("\x03\x04\x05\x06garbage")},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			for _, v := range []any{nil, new(pair)} {
				err := c.Unmarshal(tt.e, tt.body, v)
				if err == nil {
					t.Fatalf("Unmarshal(%s, %.40q) = nil; want an error", tt.e, tt.body)
				}
				if !strings.HasPrefix(err.Error(), "amqprpc: ") {
					t.Errorf("error %q lacks the amqprpc: prefix", err)
				}
			}
		})
	}
}

func TestWrongTypeIsNotMalformed(t *testing.T) {
	var c Codec
	var out pair
	err := c.Unmarshal(JSON, []byte(`"a string"`), &out)
	if err == nil || errors.Is(err, ErrMalformedBody) {
		t.Fatalf("Unmarshal(string into struct) = %v; want a type error that is not ErrMalformedBody", err)
	}
}

// gobValueStart returns the offset of the value message in a gob body.
func gobValueStart(t *testing.T, b []byte) int {
	t.Helper()
	for off := 0; off < len(b); {
		m, err := nextGobMessage(b, off)
		if err != nil {
			t.Fatal(err)
		}
		if m.typeID > 0 {
			return m.start
		}
		off = m.end
	}
	t.Fatal("no value message")
	return 0
}

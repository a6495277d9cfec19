package codec

import (
	"bytes"
	"encoding/gob"
	"encoding/json"
	"reflect"
	"testing"
	"unicode/utf8"
)

// FuzzGobStream checks the framing check against the gob decoder itself:
// whatever a fresh decoder reads as exactly one value, the check accepts;
// and nothing panics.
func FuzzGobStream(f *testing.F) {
	var c Codec
	for _, v := range []any{pair{1, 2}, 42, "s", nested{Name: "n", Items: []pair{{1, 2}}, Tags: map[string]int{"a": 1}}, []byte{1, 2, 3}} {
		b, err := c.Marshal(nil, Gob, v)
		if err != nil {
			f.Fatal(err)
		}
		f.Add(b)
	}
	f.Add([]byte{})
	f.Add([]byte{0xf8, 0x7f, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff})
	f.Fuzz(func(t *testing.T, data []byte) {
		_, _, checkErr := splitGobBody(data)
		r := bytes.NewReader(data)
		decErr := gob.NewDecoder(r).DecodeValue(reflect.Value{})
		if decErr == nil && r.Len() == 0 && checkErr != nil {
			t.Fatalf("splitGobBody(%x) = %v, but a gob decoder reads it as one value", data, checkErr)
		}
		_ = c.Unmarshal(Gob, data, nil)
		var p pair
		_ = c.Unmarshal(Gob, data, &p)
		var n nested
		_ = c.Unmarshal(Gob, data, &n)
	})
}

// FuzzJSON checks that the JSON check and the decoder agree on structure.
// (A number too large for float64 is valid JSON that does not decode into
// any; with a raw message target only structure matters.)
func FuzzJSON(f *testing.F) {
	f.Add([]byte(`{"A":1,"B":2}`))
	f.Add([]byte(`[1,2,{"x":null}]`))
	f.Add([]byte(`"s"`))
	f.Fuzz(func(t *testing.T, data []byte) {
		var c Codec
		var v json.RawMessage
		valid := c.Unmarshal(JSON, data, nil) == nil
		decoded := c.Unmarshal(JSON, data, &v) == nil
		if valid != decoded {
			t.Fatalf("JSON %q: valid=%v but decodes=%v", data, valid, decoded)
		}
	})
}

// FuzzText checks the text rules on any body: every body is well-formed
// text and decodes into a string and a []byte; decoding into other types
// never panics; and a valid UTF-8 string or any []byte that Marshal writes
// is read back unchanged.
func FuzzText(f *testing.F) {
	seeds := []string{"30", "hello", `"quoted"`, "null", `{"A":1,"B":2}`, "", "\xff", `"aGk="`, " [1, 2] ", `[1,"a",{"b":null}]`}
	for _, s := range seeds {
		f.Add([]byte(s))
	}
	// encoding/json builds its per-type decoders and encoders once per
	// process, and pools its encoder state. Coverage that only a first run
	// shows cannot be reproduced, and the fuzzer spends its minimizing time
	// on each such input: build the caches here, in every worker, before
	// fuzzing. (The pools still make some coverage flaky: make fuzz bounds
	// minimizing with -fuzzminimizetime.)
	for _, s := range seeds {
		checkText(f, []byte(s))
	}
	f.Fuzz(func(t *testing.T, data []byte) { checkText(t, data) })
}

func checkText(t testing.TB, data []byte) {
	t.Helper()
	{
		var c Codec
		if err := c.Unmarshal(Text, data, nil); err != nil {
			t.Fatalf("Unmarshal(Text, %q, nil) = %v; want nil", data, err)
		}
		var s string
		if err := c.Unmarshal(Text, data, &s); err != nil {
			t.Fatalf("Unmarshal(Text, %q, *string) = %v; want nil", data, err)
		}
		var b []byte
		if err := c.Unmarshal(Text, data, &b); err != nil {
			t.Fatalf("Unmarshal(Text, %q, *[]byte) = %v; want nil", data, err)
		}
		var p pair
		_ = c.Unmarshal(Text, data, &p)
		var n int
		_ = c.Unmarshal(Text, data, &n)

		out, err := c.Marshal(nil, Text, data)
		if err != nil {
			t.Fatalf("Marshal(Text, []byte %q) = %v", data, err)
		}
		b = nil
		if err := c.Unmarshal(Text, out, &b); err != nil || !bytes.Equal(b, data) {
			t.Fatalf("[]byte %q: wrote %q, read back %q, %v", data, out, b, err)
		}
		if utf8.Valid(data) {
			out, err := c.Marshal(nil, Text, string(data))
			if err != nil {
				t.Fatalf("Marshal(Text, string %q) = %v", data, err)
			}
			s = ""
			if err := c.Unmarshal(Text, out, &s); err != nil || s != string(data) {
				t.Fatalf("string %q: wrote %q, read back %q, %v", data, out, s, err)
			}
		}
	}
}

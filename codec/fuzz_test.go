package codec

import (
	"bytes"
	"encoding/gob"
	"encoding/json"
	"reflect"
	"testing"
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

package codec

import (
	"encoding/json"
	"errors"
	"reflect"
	"testing"
)

type name string

type blob []byte

func TestTextDecodes(t *testing.T) {
	tests := []struct {
		body string
		into any // a pointer to a zero value of the target type
		want any // what it points to afterwards
	}{
		// JSON that fits the target is read as JSON.
		{"30", new(int), 30},
		{" 30\n", new(int), 30},
		{`{"A":6,"B":7}`, new(pair), pair{6, 7}},
		{`"quoted"`, new(string), "quoted"},
		{`"aGk="`, new([]byte), []byte("hi")},
		// Anything else is raw text, for a string or []byte.
		{"hello", new(string), "hello"},
		{"42", new(string), "42"},
		{`{"A":1}`, new(string), `{"A":1}`},
		{"", new(string), ""},
		{"\xff\xfe binary", new([]byte), []byte("\xff\xfe binary")},
		{"hello", new(name), name("hello")},
		{"42", new(blob), blob("42")},
		{"not json", new(json.RawMessage), json.RawMessage("not json")},
		{`[1,2]`, new(json.RawMessage), json.RawMessage(`[1,2]`)},
	}
	var c Codec
	for _, tt := range tests {
		err := c.Unmarshal(Text, []byte(tt.body), tt.into)
		got := reflect.ValueOf(tt.into).Elem().Interface()
		if err != nil || !reflect.DeepEqual(got, tt.want) {
			t.Errorf("Unmarshal(Text, %q, %T) = %#v, %v; want %#v, nil", tt.body, tt.into, got, err, tt.want)
		}
	}
}

func TestTextRefusesNonJSONForOtherTypes(t *testing.T) {
	var c Codec
	for _, tt := range []struct {
		body      string
		into      any
		malformed bool // not JSON at all, rather than JSON of another type
	}{
		{"abc", new(int), true},
		{"", new(int), true},
		{"6*7", new(pair), true},
		{`"a string"`, new(int), false},
		{`{"A":"x"}`, new(pair), false},
	} {
		err := c.Unmarshal(Text, []byte(tt.body), tt.into)
		if err == nil || errors.Is(err, ErrMalformedBody) != tt.malformed {
			t.Errorf("Unmarshal(Text, %q, %T) = %v; want an error, ErrMalformedBody %v", tt.body, tt.into, err, tt.malformed)
		}
	}
	// Without a target any body is well-formed text.
	for _, body := range []string{"", "abc", "\x00\xff", `{"A":`} {
		if err := c.Unmarshal(Text, []byte(body), nil); err != nil {
			t.Errorf("Unmarshal(Text, %q, nil) = %v; want nil", body, err)
		}
	}
}

func TestTextEncodes(t *testing.T) {
	s, b := "832040", []byte("raw\n")
	var nilString *string
	tests := []struct {
		v    any
		want string
	}{
		{"hello", "hello"},
		{&s, "832040"},
		{b, "raw\n"},
		{&b, "raw\n"},
		{name("n"), "n"},
		{blob("42"), "42"},
		{"", ""},
		{832040, "832040"},
		{pair{1, 2}, `{"A":1,"B":2}`},
		{nilString, "null"},
		{nil, "null"},
		// Raw bytes that would be read back as other JSON go as JSON.
		{`"quoted"`, `"\"quoted\""`},
		{"null", `"null"`},
		{[]byte(`"aGk="`), `"ImFHaz0i"`},
		{json.RawMessage(`{"A":1}`), `{"A":1}`},
	}
	var c Codec
	for _, tt := range tests {
		got, err := c.Marshal([]byte("p:"), Text, tt.v)
		if err != nil || string(got) != "p:"+tt.want {
			t.Errorf("Marshal(Text, %#v) = %q, %v; want %q, nil", tt.v, got, err, "p:"+tt.want)
		}
	}
}

// TestTextRoundTrip: what Marshal writes, Unmarshal reads back unchanged.
func TestTextRoundTrip(t *testing.T) {
	var c Codec
	for _, s := range []string{"", "hello", "42", `"quoted"`, "null", "true", `{"A":1}`, " 7 ", "héllo"} {
		b, err := c.Marshal(nil, Text, s)
		if err != nil {
			t.Fatal(err)
		}
		var str string
		if err := c.Unmarshal(Text, b, &str); err != nil || str != s {
			t.Errorf("string %q: wrote %q, read back %q, %v", s, b, str, err)
		}
		b, err = c.Marshal(nil, Text, []byte(s))
		if err != nil {
			t.Fatal(err)
		}
		var bs []byte
		if err := c.Unmarshal(Text, b, &bs); err != nil || string(bs) != s {
			t.Errorf("[]byte %q: wrote %q, read back %q, %v", s, b, bs, err)
		}
	}
}

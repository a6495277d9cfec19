package codec

import (
	"bytes"
	"encoding/json"
	"fmt"
	"reflect"
)

// Text bodies (text/plain) are what hand-written AMQP clients, RabbitMQ's
// RPC tutorial among them, send and expect: "30" in, "832040" out. The rules
// make JSON the common ground and let string and []byte values travel as
// their raw bytes:
//
//   - decoding: a body that is one JSON value which fits the target is read
//     as JSON; otherwise, when the target is a string or a []byte (of any
//     named type), the raw bytes are the value; otherwise the body is
//     malformed;
//   - encoding: a string or []byte is written as its raw bytes, anything
//     else as JSON. A string or []byte whose raw bytes would decode as JSON
//     into a different value of its type (`"quoted"`, `null`) is written as
//     JSON instead, so that whatever one side writes the other reads back
//     unchanged.
//
// Any bytes are a well-formed text body: whether a body fits is only known
// once its target is.

// marshalText appends the text encoding of v to dst.
func marshalText(dst []byte, v any) ([]byte, error) {
	raw, rv, ok := rawText(v)
	if !ok || readsAsJSON(raw, rv.Type()) {
		return marshalJSON(dst, v)
	}
	return append(dst, raw...), nil
}

// rawText returns the bytes of v when v is a string or []byte, or a non-nil
// pointer to one, and the value itself.
func rawText(v any) ([]byte, reflect.Value, bool) {
	rv := reflect.ValueOf(v)
	for rv.Kind() == reflect.Pointer && !rv.IsNil() {
		rv = rv.Elem()
	}
	switch {
	case !rv.IsValid():
		return nil, rv, false
	case rv.Kind() == reflect.String:
		return []byte(rv.String()), rv, true
	case isByteSlice(rv.Type()):
		return rv.Bytes(), rv, true
	}
	return nil, rv, false
}

// readsAsJSON reports whether raw, read back as text into a value of type t,
// would be decoded as JSON rather than taken as raw bytes.
func readsAsJSON(raw []byte, t reflect.Type) bool {
	if !json.Valid(raw) {
		return false
	}
	return json.Unmarshal(raw, reflect.New(t).Interface()) == nil
}

// unmarshalText decodes a text body into v; a nil v accepts any body.
func unmarshalText(data []byte, v any) error {
	if v == nil {
		return nil
	}
	target := textTarget(v)
	if json.Valid(data) {
		err := json.Unmarshal(data, v)
		switch {
		case err == nil:
			return nil
		case !target.IsValid():
			return fmt.Errorf("amqprpc: decode text body as json: %w", err)
		}
		// JSON that does not fit a string or []byte: the raw text does.
	} else if !target.IsValid() {
		return fmt.Errorf("%w: text body is not JSON, and %T takes JSON only (raw text fits a string or []byte)", ErrMalformedBody, v)
	}
	if target.Kind() == reflect.String {
		target.SetString(string(data))
	} else {
		target.SetBytes(bytes.Clone(data))
	}
	return nil
}

// textTarget returns what v points to when that is a string or []byte
// that raw text can be stored in, or the zero Value.
func textTarget(v any) reflect.Value {
	rv := reflect.ValueOf(v)
	if rv.Kind() != reflect.Pointer || rv.IsNil() {
		return reflect.Value{}
	}
	e := rv.Elem()
	if e.Kind() == reflect.String || isByteSlice(e.Type()) {
		return e
	}
	return reflect.Value{}
}

func isByteSlice(t reflect.Type) bool {
	return t.Kind() == reflect.Slice && t.Elem().Kind() == reflect.Uint8
}

package codec

import (
	"encoding/json"
	"errors"
	"fmt"
)

// marshalJSON appends the JSON encoding of v to dst, without a trailing
// newline.
func marshalJSON(dst []byte, v any) ([]byte, error) {
	b, err := json.Marshal(v)
	if err != nil {
		return dst, fmt.Errorf("amqprpc: encode json body: %w", err)
	}
	return append(dst, b...), nil
}

// unmarshalJSON decodes the single JSON value in data into v, or only checks
// it when v is nil. A syntax error wraps [ErrMalformedBody]; a well-formed
// value that does not fit v does not.
func unmarshalJSON(data []byte, v any) error {
	if v == nil {
		if !json.Valid(data) {
			return fmt.Errorf("%w: not one JSON value (%d bytes)", ErrMalformedBody, len(data))
		}
		return nil
	}
	err := json.Unmarshal(data, v)
	if err == nil {
		return nil
	}
	var syntax *json.SyntaxError
	if len(data) == 0 || errors.As(err, &syntax) {
		return fmt.Errorf("%w: json: %v", ErrMalformedBody, err)
	}
	return fmt.Errorf("amqprpc: decode json body: %w", err)
}

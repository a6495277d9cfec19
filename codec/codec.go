// Package codec encodes and decodes the bodies of amqprpc messages.
//
// A body carries one value and nothing else: the argument of a request or the
// result of a reply. Its encoding is named by the AMQP content type of the
// message, so one service queue can serve gob and JSON callers at once.
// The package uses the standard library only.
package codec

import (
	"errors"
	"fmt"
	"strings"
)

// Encoding names a body encoding. The zero value is [Gob], the encoding
// net/rpc uses over TCP.
type Encoding uint8

const (
	// Gob encodes a body as a self-contained encoding/gob stream holding one
	// value: its type definitions followed by the value.
	Gob Encoding = iota
	// JSON encodes a body as one JSON value with no envelope and no trailing
	// newline.
	JSON
)

// Content types that name the encodings on the wire.
const (
	GobContentType  = "application/x-gob"
	JSONContentType = "application/json"
)

var (
	// ErrUnsupportedContentType is returned for a content type that names
	// neither gob nor JSON.
	ErrUnsupportedContentType = errors.New("amqprpc: unsupported content type")
	// ErrMalformedBody is wrapped by every error about a body that is not one
	// well-formed value of its encoding.
	ErrMalformedBody = errors.New("amqprpc: malformed body")
)

// ContentType returns the AMQP content type that names e.
func (e Encoding) ContentType() string {
	if e == JSON {
		return JSONContentType
	}
	return GobContentType
}

// String returns "gob" or "json".
func (e Encoding) String() string {
	switch e {
	case Gob:
		return "gob"
	case JSON:
		return "json"
	}
	return fmt.Sprintf("Encoding(%d)", uint8(e))
}

// Valid reports whether e is one of the encodings this package implements.
func (e Encoding) Valid() bool { return e == Gob || e == JSON }

// ForContentType returns the encoding a content type names. An empty content
// type means JSON, so that clients in other languages need not set one.
// Parameters such as "; charset=utf-8" are ignored and case does not matter.
func ForContentType(contentType string) (Encoding, error) {
	mediaType, _, _ := strings.Cut(contentType, ";")
	mediaType = strings.TrimSpace(mediaType)
	switch {
	case mediaType == "", strings.EqualFold(mediaType, JSONContentType):
		return JSON, nil
	case strings.EqualFold(mediaType, GobContentType):
		return Gob, nil
	}
	return 0, fmt.Errorf("%w %.64q (want %q or %q)", ErrUnsupportedContentType, contentType, JSONContentType, GobContentType)
}

// Codec marshals and unmarshals bodies in any [Encoding]. It keeps per-type
// work, such as compiled gob type definitions, for reuse across messages and
// is safe for concurrent use. The zero value is ready to use.
type Codec struct {
	gob gobCodec
}

// Marshal appends the encoding of v to dst and returns the extended slice.
func (c *Codec) Marshal(dst []byte, e Encoding, v any) ([]byte, error) {
	switch e {
	case JSON:
		return marshalJSON(dst, v)
	case Gob:
		return c.gob.marshal(dst, v)
	}
	return dst, fmt.Errorf("amqprpc: marshal: unknown encoding %v", e)
}

// Unmarshal decodes data, which must hold exactly one value, into v. A nil v
// only checks that data is one well-formed value and discards it.
func (c *Codec) Unmarshal(e Encoding, data []byte, v any) error {
	switch e {
	case JSON:
		return unmarshalJSON(data, v)
	case Gob:
		return c.gob.unmarshal(data, v)
	}
	return fmt.Errorf("amqprpc: unmarshal: unknown encoding %v", e)
}

// Package codec encodes and decodes the bodies of amqprpc messages.
//
// A body carries one value and nothing else: the argument of a request or the
// result of a reply. Its encoding is named by the AMQP content type of the
// message, so one service queue can serve gob, JSON and text callers at
// once.
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
	// Text is text/plain as hand-written AMQP clients send it: a string or
	// []byte travels as its raw bytes, any other value as JSON, and a body
	// that is not JSON decodes only into a string or []byte (see text.go).
	Text
)

// Content types that name the encodings on the wire.
const (
	GobContentType  = "application/x-gob"
	JSONContentType = "application/json"
	TextContentType = "text/plain"
	// OctetStreamContentType is what some client libraries put on every
	// message they send unless told otherwise (Ruby's Bunny, Perl's
	// AnyEvent::RabbitMQ). It names no encoding of its own: a body of
	// this type is read as [Text], and the reply to it is text/plain.
	OctetStreamContentType = "application/octet-stream"
)

var (
	// ErrUnsupportedContentType is returned for a content type that names
	// none of the encodings.
	ErrUnsupportedContentType = errors.New("amqprpc: unsupported content type")
	// ErrMalformedBody is wrapped by every error about a body that is not one
	// well-formed value of its encoding.
	ErrMalformedBody = errors.New("amqprpc: malformed body")
)

// ContentType returns the AMQP content type that names e.
func (e Encoding) ContentType() string {
	switch e {
	case JSON:
		return JSONContentType
	case Text:
		return TextContentType
	}
	return GobContentType
}

// String returns "gob", "json" or "text".
func (e Encoding) String() string {
	switch e {
	case Gob:
		return "gob"
	case JSON:
		return "json"
	case Text:
		return "text"
	}
	return fmt.Sprintf("Encoding(%d)", uint8(e))
}

// Valid reports whether e is one of the encodings this package implements.
func (e Encoding) Valid() bool { return e == Gob || e == JSON || e == Text }

// ForContentType returns the encoding a content type names. An empty content
// type means JSON, so that clients in other languages need not set one, and
// [OctetStreamContentType], a client library's default, means [Text].
// Parameters such as "; charset=utf-8" are ignored and case does not matter.
func ForContentType(contentType string) (Encoding, error) {
	mediaType, _, _ := strings.Cut(contentType, ";")
	mediaType = strings.TrimSpace(mediaType)
	switch {
	case mediaType == "", strings.EqualFold(mediaType, JSONContentType):
		return JSON, nil
	case strings.EqualFold(mediaType, GobContentType):
		return Gob, nil
	case strings.EqualFold(mediaType, TextContentType), strings.EqualFold(mediaType, OctetStreamContentType):
		return Text, nil
	}
	return 0, fmt.Errorf("%w %.64q (want %q, %q, %q or %q)", ErrUnsupportedContentType, contentType, JSONContentType, GobContentType, TextContentType, OctetStreamContentType)
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
	case Text:
		return marshalText(dst, v)
	}
	return dst, fmt.Errorf("amqprpc: marshal: unknown encoding %v", e)
}

// Unmarshal decodes data, which must hold exactly one value, into v. A nil v
// only checks that data is one well-formed value and discards it; any data
// is a well-formed [Text] body.
func (c *Codec) Unmarshal(e Encoding, data []byte, v any) error {
	switch e {
	case JSON:
		return unmarshalJSON(data, v)
	case Gob:
		return c.gob.unmarshal(data, v)
	case Text:
		return unmarshalText(data, v)
	}
	return fmt.Errorf("amqprpc: unmarshal: unknown encoding %v", e)
}

package transport

import (
	"fmt"
	"time"

	amqp "github.com/rabbitmq/amqp091-go"
)

// What AMQP cannot carry, checked before a message is written. amqp091-go
// finds a short string over 255 bytes (a property such as type, or a
// header's name) only halfway through writing the frame, and then closes
// the whole connection (501 FRAME_ERROR); the broker closes it for a content
// header larger than a frame. A message that would do either is refused
// here, so that its publisher fails alone and nothing is written.

// maxShortString is AMQP's limit on a short string.
const maxShortString = 255

// frameOverhead is what a frame adds to its payload: type, channel and size
// (7 bytes) and the end octet.
const frameOverhead = 8

// checkEncodable reports why msg cannot be published, or nil. frameMax is
// the connection's negotiated frame_max (0: no limit).
func checkEncodable(msg *amqp.Publishing, frameMax int) error {
	size := 14 // class, weight, body size and property flags
	for _, p := range []struct {
		name, value string
	}{
		{"type", msg.Type}, {"correlation_id", msg.CorrelationId}, {"message_id", msg.MessageId},
		{"reply_to", msg.ReplyTo}, {"content_type", msg.ContentType}, {"content_encoding", msg.ContentEncoding},
		{"expiration", msg.Expiration}, {"user_id", msg.UserId}, {"app_id", msg.AppId},
	} {
		if len(p.value) > maxShortString {
			return fmt.Errorf("%w: the %s property is %d bytes, AMQP allows %d", ErrUnencodable, p.name, len(p.value), maxShortString)
		}
		if p.value != "" {
			size += 1 + len(p.value)
		}
	}
	if msg.DeliveryMode > 0 {
		size++
	}
	if msg.Priority > 0 {
		size++
	}
	if !msg.Timestamp.IsZero() {
		size += 8
	}
	if len(msg.Headers) > 0 {
		n, err := tableSize(msg.Headers)
		if err != nil {
			return fmt.Errorf("%w: header %w", ErrUnencodable, err)
		}
		size += n
	}
	if frameMax > 0 && size > frameMax-frameOverhead {
		return fmt.Errorf("%w: the properties and headers take %d bytes, more than the %d of one frame (the broker's frame_max)",
			ErrUnencodable, size, frameMax-frameOverhead)
	}
	return nil
}

// tableSize returns the encoded size of an AMQP field table: its length,
// then each name (a short string) with its value. It fails for a name over
// 255 bytes or a value of a type amqp091-go cannot write.
func tableSize(t amqp.Table) (int, error) {
	size := 4
	for name, v := range t {
		if len(name) > maxShortString {
			return 0, fmt.Errorf("name of %d bytes (%.32q...), AMQP allows %d", len(name), name, maxShortString)
		}
		n, err := fieldSize(v)
		if err != nil {
			return 0, fmt.Errorf("%.64q: %w", name, err)
		}
		size += 1 + len(name) + n
	}
	return size, nil
}

// fieldSize returns the encoded size of a field value, its type octet
// included, for the types amqp091-go writes (amqp.Table.Validate's list).
func fieldSize(v any) (int, error) {
	switch v := v.(type) {
	case nil:
		return 1, nil
	case bool, byte, int8:
		return 2, nil
	case int16, uint16:
		return 3, nil
	case int, int32, uint32, float32:
		return 5, nil
	case amqp.Decimal:
		return 6, nil
	case int64, float64, time.Time:
		return 9, nil
	case string:
		return 5 + len(v), nil
	case []byte:
		return 5 + len(v), nil
	case []any:
		size := 5
		for _, e := range v {
			n, err := fieldSize(e)
			if err != nil {
				return 0, fmt.Errorf("in an array: %w", err)
			}
			size += n
		}
		return size, nil
	case amqp.Table:
		n, err := tableSize(v)
		if err != nil {
			return 0, fmt.Errorf("in a table: %w", err)
		}
		return 1 + n, nil
	}
	return 0, fmt.Errorf("a value of type %T, which an AMQP table cannot hold (use string, []byte, bool, int64, float64, time.Time, amqp.Table or []any)", v)
}

package codec

import (
	"errors"
	"fmt"
)

// A gob stream is a run of messages, each a byte count followed by that many
// bytes. A message starts with a type id: negative for a type definition,
// positive for a value. A self-contained body is zero or more definitions and
// then one value. The value usually fills one message, but not always: when
// it holds an interface whose concrete type is new to the encoder, gob ends
// the message inside the value, with that type's definition, and goes on in
// further messages.

// errShortGob is returned when a gob integer runs past the end of the data.
var errShortGob = errors.New("integer runs past the end")

// gobMessage is the position of one message of a gob stream.
type gobMessage struct {
	start, end int   // bounds of the message, count included
	typeID     int64 // negative for a type definition
}

// splitGobBody verifies the framing of a gob body without decoding it (every
// count lies within the data and the last message ends it; some message
// after the leading definitions carries a value) and returns where the
// value starts and whether it fills exactly one message. It guards the
// decoder against truncated bodies and counts that claim more bytes than
// there are.
func splitGobBody(data []byte) (value int, single bool, err error) {
	if len(data) == 0 {
		return 0, false, fmt.Errorf("%w: empty gob body", ErrMalformedBody)
	}
	value = -1
	for off := 0; off < len(data); {
		m, err := nextGobMessage(data, off)
		if err != nil {
			return 0, false, fmt.Errorf("%w: gob message at byte %d: %v", ErrMalformedBody, off, err)
		}
		switch {
		case m.typeID == 0 && value < 0:
			// After the value, a message continues an interface value
			// and gob reads its first integer in that context; before
			// it, 0 names no type.
			return 0, false, fmt.Errorf("%w: gob message at byte %d: type id 0", ErrMalformedBody, off)
		case m.typeID > 0 && value < 0:
			value = m.start
			single = m.end == len(data)
		}
		off = m.end
	}
	if value < 0 {
		return 0, false, fmt.Errorf("%w: gob stream holds no value", ErrMalformedBody)
	}
	return value, single, nil
}

// nextGobMessage reads the framing of the message that starts at off.
func nextGobMessage(data []byte, off int) (gobMessage, error) {
	count, n, err := gobUint(data[off:])
	if err != nil {
		return gobMessage{}, fmt.Errorf("count: %w", err)
	}
	body := off + n
	if count == 0 || count > uint64(len(data)-body) {
		return gobMessage{}, fmt.Errorf("count %d with %d bytes left", count, len(data)-body)
	}
	end := body + int(count)
	u, _, err := gobUint(data[body:end])
	if err != nil {
		return gobMessage{}, fmt.Errorf("type id: %w", err)
	}
	id := int64(u >> 1) // gob keeps the sign in the low bit
	if u&1 != 0 {
		id = ^id
	}
	return gobMessage{start: off, end: end, typeID: id}, nil
}

// gobUint decodes one gob unsigned integer: a byte below 0x80 is the value;
// otherwise the byte is minus the length of the big-endian value that follows.
func gobUint(b []byte) (v uint64, n int, err error) {
	if len(b) == 0 {
		return 0, 0, errShortGob
	}
	if b[0] < 0x80 {
		return uint64(b[0]), 1, nil
	}
	size := -int(int8(b[0]))
	if size > 8 {
		return 0, 0, fmt.Errorf("integer of %d bytes", size)
	}
	if len(b) < 1+size {
		return 0, 0, errShortGob
	}
	for _, c := range b[1 : 1+size] {
		v = v<<8 | uint64(c)
	}
	return v, 1 + size, nil
}

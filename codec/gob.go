package codec

import (
	"bytes"
	"encoding/gob"
	"fmt"
)

// gobCodec encodes each body as a self-contained gob stream, since every
// message may reach a different peer that has seen nothing before it.
type gobCodec struct{}

func (g *gobCodec) marshal(dst []byte, v any) ([]byte, error) {
	buf := bytes.NewBuffer(dst)
	if err := gob.NewEncoder(buf).Encode(v); err != nil {
		return dst, fmt.Errorf("amqprpc: encode gob body: %w", err)
	}
	return buf.Bytes(), nil
}

func (g *gobCodec) unmarshal(data []byte, v any) error {
	if err := checkGobStream(data); err != nil {
		return err
	}
	r := bytes.NewReader(data)
	if err := gob.NewDecoder(r).Decode(v); err != nil {
		return fmt.Errorf("amqprpc: decode gob body: %w", err)
	}
	if r.Len() != 0 {
		return fmt.Errorf("%w: %d bytes after the gob value", ErrMalformedBody, r.Len())
	}
	return nil
}

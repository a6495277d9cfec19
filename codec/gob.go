package codec

import (
	"bytes"
	"encoding/gob"
	"fmt"
	"reflect"
	"sync"
)

// gobCodec encodes each body as a self-contained gob stream, since every
// message may reach a peer that has seen nothing before it. Building a gob
// encoder or decoder and compiling its type definitions costs far more than
// the value itself, so both sides keep primed ones:
//
//   - an encoder per Go type that has already sent that type's definitions:
//     each body is those definitions, kept as bytes, followed by the value
//     message the primed encoder writes;
//   - a decoder per run of definitions (the bytes that precede the value):
//     a decoder that has read those exact bytes once knows every type they
//     define, so only the value message is fed to it.
//
// Values that carry definitions inside them (interfaces holding types new
// to the encoder, see gobstream.go) bypass both caches. The bytes on the
// wire are the ones a fresh encoder writes, and a decode behaves as a fresh
// decoder's would (FuzzGobCache checks this).
type gobCodec struct {
	encoders sync.Map // reflect.Type -> *sync.Pool of *gobEncoder

	mu       sync.Mutex            // guards decoders
	decoders map[string]*sync.Pool // definitions -> pool of *gobDecoder
}

// Bounds on what the decoder cache keeps, so hostile bodies cannot grow it.
const (
	maxCachedDefinitions = 256     // distinct runs of definitions
	maxDefinitionBytes   = 8 << 10 // longest run cached
)

// gobEncoder is an encoder primed for one Go type.
type gobEncoder struct {
	enc *gob.Encoder
	out bytes.Buffer // what enc writes
	// defs holds every definition enc has written so far; a body is defs
	// followed by one value message.
	defs []byte
}

// gobDecoder is a decoder that has read one run of definitions.
type gobDecoder struct {
	in  bytes.Reader // a ByteReader, so gob reads exactly one message
	dec *gob.Decoder
}

func (g *gobCodec) marshal(dst []byte, v any) ([]byte, error) {
	if v == nil {
		return dst, fmt.Errorf("amqprpc: encode gob body: nil value")
	}
	pool := g.encoderPool(reflect.TypeOf(v))
	e, _ := pool.Get().(*gobEncoder)
	if e == nil {
		e = &gobEncoder{}
		e.enc = gob.NewEncoder(&e.out)
	}
	e.out.Reset()
	if err := e.enc.Encode(v); err != nil {
		// The encoder may be half-way through a message: drop it.
		return dst, fmt.Errorf("amqprpc: encode gob body: %w", err)
	}
	out := e.out.Bytes()
	// What the encoder wrote must be new definitions, if any, and then the
	// value in one message. Otherwise the value carried definitions inside
	// it, which later values would leave out: drop this encoder and write
	// the body with a fresh one.
	value, single, err := splitGobBody(out)
	if err != nil || !single {
		buf := bytes.NewBuffer(dst)
		if err := gob.NewEncoder(buf).Encode(v); err != nil {
			return dst, fmt.Errorf("amqprpc: encode gob body: %w", err)
		}
		return buf.Bytes(), nil
	}
	e.defs = append(e.defs, out[:value]...)
	dst = append(dst, e.defs...)
	dst = append(dst, out[value:]...)
	pool.Put(e)
	return dst, nil
}

func (g *gobCodec) encoderPool(t reflect.Type) *sync.Pool {
	if p, ok := g.encoders.Load(t); ok {
		return p.(*sync.Pool)
	}
	p, _ := g.encoders.LoadOrStore(t, new(sync.Pool))
	return p.(*sync.Pool)
}

func (g *gobCodec) unmarshal(data []byte, v any) error {
	value, single, err := splitGobBody(data)
	if err != nil {
		return err
	}
	var pool *sync.Pool
	if single {
		pool = g.decoderPool(data[:value])
	}
	var d *gobDecoder
	if pool != nil {
		d, _ = pool.Get().(*gobDecoder)
	}
	if d != nil {
		// A primed decoder can only differ from a fresh one by failing (its
		// earlier inputs may have defined types); ask a fresh one then.
		if g.decode(d, data[value:], v) == nil {
			pool.Put(d)
			return nil
		}
	}
	d = &gobDecoder{}
	d.dec = gob.NewDecoder(&d.in)
	if err := g.decode(d, data, v); err != nil {
		return err
	}
	if pool != nil {
		pool.Put(d) // now primed with the definitions
	}
	return nil
}

// decode reads one value from b with d.
func (g *gobCodec) decode(d *gobDecoder, b []byte, v any) error {
	d.in.Reset(b)
	var rv reflect.Value
	if v != nil {
		rv = reflect.ValueOf(v)
	}
	if err := d.dec.DecodeValue(rv); err != nil {
		return fmt.Errorf("amqprpc: decode gob body: %w", err)
	}
	if d.in.Len() != 0 {
		return fmt.Errorf("%w: %d bytes after the gob value", ErrMalformedBody, d.in.Len())
	}
	return nil
}

// decoderPool returns the pool of decoders primed with defs, or nil when
// defs is not worth caching.
func (g *gobCodec) decoderPool(defs []byte) *sync.Pool {
	if len(defs) > maxDefinitionBytes {
		return nil
	}
	g.mu.Lock()
	defer g.mu.Unlock()
	if p, ok := g.decoders[string(defs)]; ok {
		return p
	}
	if len(g.decoders) >= maxCachedDefinitions {
		return nil
	}
	if g.decoders == nil {
		g.decoders = make(map[string]*sync.Pool)
	}
	p := new(sync.Pool)
	g.decoders[string(defs)] = p
	return p
}

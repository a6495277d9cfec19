package codec

import (
	"bytes"
	"encoding/gob"
	"reflect"
	"sync"
	"testing"
)

type withAny struct {
	Name  string
	Value any
}

type circle struct{ R float64 }
type square struct{ Side int }

func init() {
	gob.Register(circle{})
	gob.Register(square{})
}

// freshGob is what net/rpc's gob codec would write for v alone.
func freshGob(t *testing.T, v any) []byte {
	t.Helper()
	var b bytes.Buffer
	if err := gob.NewEncoder(&b).Encode(v); err != nil {
		t.Fatal(err)
	}
	return b.Bytes()
}

// freshDecode decodes b with a new decoder, as a peer that has seen nothing
// else would.
func freshDecode(b []byte, v any) error {
	r := bytes.NewReader(b)
	if err := gob.NewDecoder(r).Decode(v); err != nil {
		return err
	}
	if r.Len() != 0 {
		return ErrMalformedBody
	}
	return nil
}

func TestGobCacheWritesWhatAFreshEncoderWrites(t *testing.T) {
	var c Codec
	values := []any{pair{1, 2}, &pair{3, 4}, 42, "text", []byte{1, 2}, nested{Name: "n", Items: []pair{{5, 6}}, Tags: map[string]int{"k": 7}}, map[string]pair{"a": {1, 1}}}
	for round := 0; round < 3; round++ {
		for _, v := range values {
			got, err := c.Marshal(nil, Gob, v)
			if err != nil {
				t.Fatalf("Marshal(%#v) = %v", v, err)
			}
			if want := freshGob(t, v); !bytes.Equal(got, want) {
				t.Fatalf("round %d: Marshal(%#v) = %x; want %x (a fresh encoder's bytes)", round, v, got, want)
			}
		}
	}
}

func TestGobCacheInterfaceFields(t *testing.T) {
	var c Codec
	values := []withAny{{"a", nil}, {"b", circle{1.5}}, {"c", square{2}}, {"d", circle{2.5}}, {"e", 7}, {"f", square{3}}}
	for round := 0; round < 3; round++ {
		for _, v := range values {
			b, err := c.Marshal(nil, Gob, v)
			if err != nil {
				t.Fatalf("Marshal(%+v) = %v", v, err)
			}
			var fresh, cached withAny
			if err := freshDecode(b, &fresh); err != nil || !reflect.DeepEqual(fresh, v) {
				t.Fatalf("round %d: a fresh decoder reads Marshal(%+v) as %+v, %v", round, v, fresh, err)
			}
			if err := c.Unmarshal(Gob, b, &cached); err != nil || !reflect.DeepEqual(cached, v) {
				t.Fatalf("round %d: Unmarshal(Marshal(%+v)) = %+v, %v", round, v, cached, err)
			}
		}
	}
}

func TestGobCacheDecodesForeignEncoders(t *testing.T) {
	var c Codec
	// Bodies from fresh encoders, as other processes send them; the type
	// ids of one process need not match another's, so vary them.
	for i := 0; i < 5; i++ {
		for _, v := range []any{pair{i, i + 1}, nested{Name: "x", Items: []pair{{i, i}}}} {
			b := freshGob(t, v)
			out := reflect.New(reflect.TypeOf(v))
			if err := c.Unmarshal(Gob, b, out.Interface()); err != nil || !reflect.DeepEqual(out.Elem().Interface(), v) {
				t.Fatalf("Unmarshal(fresh %+v) = %+v, %v", v, out.Elem().Interface(), err)
			}
		}
	}
}

func TestGobCacheConcurrentUse(t *testing.T) {
	var c Codec
	var wg sync.WaitGroup
	for g := 0; g < 8; g++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := 0; i < 200; i++ {
				in := nested{Name: "g", Items: []pair{{g, i}}}
				b, err := c.Marshal(nil, Gob, in)
				if err != nil {
					t.Error(err)
					return
				}
				var out nested
				if err := c.Unmarshal(Gob, b, &out); err != nil || out.Items[0] != in.Items[0] {
					t.Errorf("round trip = %+v, %v; want %+v", out, err, in)
					return
				}
			}
		}()
	}
	wg.Wait()
}

// FuzzGobCache checks the cached decoder against a fresh one on any input:
// same success, same value.
func FuzzGobCache(f *testing.F) {
	var seed Codec
	for _, v := range []any{pair{1, 2}, 42, "s", nested{Name: "n", Items: []pair{{1, 2}}, Tags: map[string]int{"a": 1}}, withAny{"w", circle{1}}} {
		b, err := seed.Marshal(nil, Gob, v)
		if err != nil {
			f.Fatal(err)
		}
		f.Add(b)
	}
	var c Codec // shared across inputs, so cached state is exercised
	f.Fuzz(func(t *testing.T, data []byte) {
		for _, newV := range []func() any{func() any { return new(pair) }, func() any { return new(nested) }, func() any { return new(withAny) }, func() any { return new(int) }} {
			fresh, cached := newV(), newV()
			freshErr := freshDecode(data, fresh)
			cachedErr := c.Unmarshal(Gob, data, cached)
			if (freshErr == nil) != (cachedErr == nil) {
				t.Fatalf("decoding %x into %T: fresh decoder %v, cached %v", data, fresh, freshErr, cachedErr)
			}
			if freshErr == nil && !reflect.DeepEqual(fresh, cached) {
				t.Fatalf("decoding %x into %T: fresh %+v, cached %+v", data, fresh, fresh, cached)
			}
		}
	})
}

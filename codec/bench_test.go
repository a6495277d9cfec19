package codec

import (
	"fmt"
	"testing"
)

// benchSmall and benchBlob are the payloads of the root package's
// BenchmarkTransport: two ints, and a byte slice of 4 KiB or 256 KiB.
type benchSmall struct{ A, B int }

type benchBlob struct{ Data []byte }

// BenchmarkCodec measures one Marshal and one Unmarshal of a body, the codec
// cost a call pays on each side (twice per call: request and reply), with no
// broker:
//
//	go test -run '^$' -bench BenchmarkCodec ./codec
//
// The body-bytes metric is the encoded size.
func BenchmarkCodec(b *testing.B) {
	loads := []struct {
		name     string
		in       any
		newOut   func() any
		wantSize int
	}{
		{"small", &benchSmall{A: 3, B: 4}, func() any { return new(benchSmall) }, 0},
		{"4KiB", &benchBlob{Data: make([]byte, 4<<10)}, func() any { return new(benchBlob) }, 4 << 10},
		{"256KiB", &benchBlob{Data: make([]byte, 256<<10)}, func() any { return new(benchBlob) }, 256 << 10},
	}
	for _, enc := range []Encoding{Gob, JSON} {
		for _, load := range loads {
			b.Run(fmt.Sprintf("%s/%s", enc, load.name), func(b *testing.B) {
				var c Codec
				var buf []byte
				out := load.newOut()
				b.ReportAllocs()
				for b.Loop() {
					var err error
					buf, err = c.Marshal(buf[:0], enc, load.in)
					if err != nil {
						b.Fatal(err)
					}
					if err := c.Unmarshal(enc, buf, out); err != nil {
						b.Fatal(err)
					}
				}
				b.ReportMetric(float64(len(buf)), "body-bytes")
				if o, ok := out.(*benchBlob); ok && len(o.Data) != load.wantSize {
					b.Fatalf("decoded %d bytes; want %d", len(o.Data), load.wantSize)
				}
			})
		}
	}
}

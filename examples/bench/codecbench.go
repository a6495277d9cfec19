package main

import (
	"errors"
	"reflect"
	"runtime"
	"time"

	"github.com/amqprpc/amqprpc/codec"
)

// codecCost is one Marshal plus one Unmarshal of a body with codec.Codec,
// as BenchmarkCodec in codec/ measures it: the codec work one side of a
// call does for one message, without a broker.
type codecCost struct {
	enc       codec.Encoding
	load      string
	bodyBytes int
	ns        float64
	allocs    float64
	bytes     float64
	err       error
}

func measureCodec(enc codec.Encoding, l load, d time.Duration) codecCost {
	res := codecCost{enc: enc, load: l.name}
	var c codec.Codec
	var buf []byte
	out := l.newReply()
	step := func() bool {
		var err error
		if buf, err = c.Marshal(buf[:0], enc, l.args); err == nil {
			err = c.Unmarshal(enc, buf, out)
		}
		res.err = err
		return err == nil
	}
	if !step() { // warm the buffer and gob's type cache
		return res
	}
	runtime.GC()
	var before, after runtime.MemStats
	runtime.ReadMemStats(&before)
	n, start := 0, time.Now()
	for ; time.Since(start) < d; n++ {
		if !step() {
			return res
		}
	}
	elapsed := time.Since(start)
	runtime.ReadMemStats(&after)
	if !reflect.DeepEqual(out, l.args) {
		res.err = errors.New("the decoded value differs from the encoded one")
	}
	res.bodyBytes = len(buf)
	res.ns = float64(elapsed.Nanoseconds()) / float64(n)
	res.allocs = float64(after.Mallocs-before.Mallocs) / float64(n)
	res.bytes = float64(after.TotalAlloc-before.TotalAlloc) / float64(n)
	return res
}

package amqprpc

// BenchmarkTransport compares one service over net/rpc on TCP loopback,
// over amqprpc, and over the raw-amqp floor (examples/floor):
//
//	go test -run '^$' -bench BenchmarkTransport .
//
// Names are BenchmarkTransport/<transport>/<payload>/<serial|parN>, where
// parN runs N callers at once on one client (b.RunParallel with
// SetParallelism(N/GOMAXPROCS), rounded up). Client and server run in this
// process, so allocs/op and B/op are the total of both sides per call.
// examples/bench measures the same cells in one run and writes a report.

import (
	"context"
	"encoding/json"
	"fmt"
	"net"
	"net/rpc"
	"net/rpc/jsonrpc"
	"runtime"
	"sync"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/amqprpc/amqprpc/codec"
	"github.com/amqprpc/amqprpc/examples/floor"
	"github.com/amqprpc/amqprpc/internal/brokertest"
)

// BenchPair is the small payload, in and out.
type BenchPair struct{ A, B int }

// BenchBlob is the 4 KiB and 256 KiB payload, echoed back.
type BenchBlob struct{ Data []byte }

// BenchService is the service every transport serves, as "Bench".
type BenchService struct{}

func (BenchService) Small(args *BenchPair, reply *BenchPair) error {
	reply.A, reply.B = args.A+args.B, args.A*args.B
	return nil
}

func (BenchService) Echo(args *BenchBlob, reply *BenchBlob) error {
	reply.Data = args.Data
	return nil
}

// benchHandle is BenchService for the raw floor: JSON in, JSON out.
func benchHandle(method string, body []byte) ([]byte, error) {
	switch method {
	case "Bench.Small":
		var args, reply BenchPair
		if err := json.Unmarshal(body, &args); err != nil {
			return nil, err
		}
		_ = BenchService{}.Small(&args, &reply)
		return json.Marshal(&reply)
	case "Bench.Echo":
		var args, reply BenchBlob
		if err := json.Unmarshal(body, &args); err != nil {
			return nil, err
		}
		_ = BenchService{}.Echo(&args, &reply)
		return json.Marshal(&reply)
	}
	return nil, fmt.Errorf("no method %q", method)
}

// benchCaller is what *rpc.Client and *floor.Client have in common.
type benchCaller interface {
	Call(method string, args, reply any) error
}

type benchLoad struct {
	name     string
	method   string
	args     any
	newReply func() any
	check    func(reply any) error
}

var benchLoads = []benchLoad{
	{
		name: "small", method: "Bench.Small", args: &BenchPair{A: 3, B: 4},
		newReply: func() any { return new(BenchPair) },
		check: func(r any) error {
			if p := r.(*BenchPair); *p != (BenchPair{7, 12}) {
				return fmt.Errorf("reply %+v; want {7 12}", *p)
			}
			return nil
		},
	},
	blobLoad("4KiB", 4<<10),
	blobLoad("256KiB", 256<<10),
}

func blobLoad(name string, n int) benchLoad {
	return benchLoad{
		name: name, method: "Bench.Echo", args: &BenchBlob{Data: make([]byte, n)},
		newReply: func() any { return new(BenchBlob) },
		check: func(r any) error {
			if got := len(r.(*BenchBlob).Data); got != n {
				return fmt.Errorf("reply of %d bytes; want %d", got, n)
			}
			return nil
		},
	}
}

var benchTransports = []struct {
	name  string
	start func(b *testing.B) benchCaller
}{
	{"tcp-gob", func(b *testing.B) benchCaller { return startBenchTCP(b, false) }},
	{"tcp-json", func(b *testing.B) benchCaller { return startBenchTCP(b, true) }},
	{"amqp-gob-direct", func(b *testing.B) benchCaller { return startBenchAMQP(b, codec.Gob, true) }},
	{"amqp-gob-private", func(b *testing.B) benchCaller { return startBenchAMQP(b, codec.Gob, false) }},
	{"amqp-json-direct", func(b *testing.B) benchCaller { return startBenchAMQP(b, codec.JSON, true) }},
	{"amqp-json-private", func(b *testing.B) benchCaller { return startBenchAMQP(b, codec.JSON, false) }},
	{"raw-amqp-direct", func(b *testing.B) benchCaller { return startBenchFloor(b, true) }},
	{"raw-amqp-private", func(b *testing.B) benchCaller { return startBenchFloor(b, false) }},
}

// benchCallers are the concurrency levels of the parallel sub-benchmarks.
var benchCallers = []int{16, 128}

func BenchmarkTransport(b *testing.B) {
	for _, tr := range benchTransports {
		b.Run(tr.name, func(b *testing.B) {
			c := tr.start(b) // one client and server for every payload
			for _, load := range benchLoads {
				b.Run(load.name, func(b *testing.B) {
					b.Run("serial", func(b *testing.B) { benchSerial(b, c, load) })
					for _, n := range benchCallers {
						b.Run(fmt.Sprintf("par%d", n), func(b *testing.B) { benchParallel(b, c, load, n) })
					}
				})
			}
		})
	}
}

func benchSerial(b *testing.B, c benchCaller, load benchLoad) {
	b.ReportAllocs()
	reply := load.newReply()
	for b.Loop() {
		if err := c.Call(load.method, load.args, reply); err != nil {
			b.Fatal(err)
		}
	}
	if err := load.check(reply); err != nil {
		b.Fatal(err)
	}
}

func benchParallel(b *testing.B, c benchCaller, load benchLoad, callers int) {
	b.ReportAllocs()
	procs := runtime.GOMAXPROCS(0)
	p := (callers + procs - 1) / procs
	b.SetParallelism(p)
	b.ReportMetric(float64(p*procs), "callers")
	b.RunParallel(func(pb *testing.PB) {
		reply, calls := load.newReply(), 0
		for pb.Next() {
			if err := c.Call(load.method, load.args, reply); err != nil {
				b.Error(err)
				return
			}
			calls++
		}
		if err := load.check(reply); calls > 0 && err != nil {
			b.Error(err)
		}
	})
}

// startBenchTCP serves Bench on a loopback listener with net/rpc's gob codec
// or net/rpc/jsonrpc, and dials it.
func startBenchTCP(b *testing.B, useJSON bool) benchCaller {
	srv := rpc.NewServer()
	if err := srv.RegisterName("Bench", BenchService{}); err != nil {
		b.Fatal(err)
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		b.Fatal(err)
	}
	var wg sync.WaitGroup
	wg.Go(func() {
		for {
			conn, err := ln.Accept()
			if err != nil {
				return
			}
			wg.Go(func() {
				if useJSON {
					srv.ServeCodec(jsonrpc.NewServerCodec(conn))
				} else {
					srv.ServeConn(conn)
				}
			})
		}
	})
	dial := rpc.Dial
	if useJSON {
		dial = jsonrpc.Dial
	}
	c, err := dial("tcp", ln.Addr().String())
	if err != nil {
		ln.Close()
		wg.Wait()
		b.Fatal(err)
	}
	b.Cleanup(func() {
		c.Close() // the server's ServeConn ends on EOF
		ln.Close()
		wg.Wait()
	})
	return c
}

// startBenchAMQP serves Bench with Serve and dials it with Dial.
func startBenchAMQP(b *testing.B, enc codec.Encoding, directReplyTo bool) benchCaller {
	url, queue := brokertest.URL(b), testQueue(b)
	srv := rpc.NewServer()
	require.NoError(b, srv.RegisterName("Bench", BenchService{}))
	server := brokertest.Serve(b, func(ctx context.Context) error { return Serve(ctx, srv, url, queue) })
	brokertest.WaitForConsumers(b, url, queue, 1, server)
	opts := []ClientOption{WithEncoding(enc)}
	if directReplyTo {
		opts = append(opts, WithDirectReplyTo())
	}
	return brokertest.Dial(b, Dial, url, queue, opts...)
}

// startBenchFloor serves and calls Bench through the raw-amqp floor.
func startBenchFloor(b *testing.B, directReplyTo bool) benchCaller {
	url, queue := brokertest.URL(b), testQueue(b)
	s, err := floor.Serve(url, queue, DefaultPrefetch, benchHandle)
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { s.Close() })
	c, err := floor.Dial(url, queue, directReplyTo)
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { c.Close() })
	return c
}

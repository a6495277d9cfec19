package main

import (
	"encoding/json"
	"fmt"
)

// Pair is the small payload, in and out.
type Pair struct{ A, B int }

// Blob is the 4 KiB and 256 KiB payload, echoed back.
type Blob struct{ Data []byte }

// Service is what every transport serves, as "Bench".
type Service struct{}

// Small computes a pair from a pair.
func (Service) Small(args *Pair, reply *Pair) error {
	reply.A, reply.B = args.A+args.B, args.A*args.B
	return nil
}

// Echo returns its argument.
func (Service) Echo(args *Blob, reply *Blob) error {
	reply.Data = args.Data
	return nil
}

// handleJSON is Service for the raw floor: JSON in, JSON out, as amqprpc's
// JSON encoding puts it on the wire.
func handleJSON(method string, body []byte) ([]byte, error) {
	switch method {
	case "Bench.Small":
		var args, reply Pair
		if err := json.Unmarshal(body, &args); err != nil {
			return nil, err
		}
		_ = Service{}.Small(&args, &reply)
		return json.Marshal(&reply)
	case "Bench.Echo":
		var args, reply Blob
		if err := json.Unmarshal(body, &args); err != nil {
			return nil, err
		}
		_ = Service{}.Echo(&args, &reply)
		return json.Marshal(&reply)
	}
	return nil, fmt.Errorf("no method %q", method)
}

// load is one payload size: the call to make and how to check its reply.
type load struct {
	name     string
	label    string
	method   string
	args     any
	newReply func() any
	check    func(reply any) error
}

var (
	small = load{
		name: "small", label: "small (struct{A, B int})", method: "Bench.Small", args: &Pair{A: 3, B: 4},
		newReply: func() any { return new(Pair) },
		check: func(r any) error {
			if p := r.(*Pair); *p != (Pair{7, 12}) {
				return fmt.Errorf("reply %+v; want {7 12}", *p)
			}
			return nil
		},
	}
	blob4K   = blobLoad("4KiB", "4 KiB ([]byte echo)", 4<<10)
	blob256K = blobLoad("256KiB", "256 KiB ([]byte echo)", 256<<10)
)

func blobLoad(name, label string, n int) load {
	return load{
		name: name, label: label, method: "Bench.Echo", args: &Blob{Data: make([]byte, n)},
		newReply: func() any { return new(Blob) },
		check: func(r any) error {
			if got := len(r.(*Blob).Data); got != n {
				return fmt.Errorf("reply of %d bytes; want %d", got, n)
			}
			return nil
		},
	}
}

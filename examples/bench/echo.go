package main

import (
	"fmt"

	"github.com/amqprpc/amqprpc"
	"github.com/amqprpc/amqprpc/codec"
	"github.com/amqprpc/amqprpc/examples/floor"
)

// echoCaller calls through an echo floor client (examples/floor). Without
// encoding it sends the gob body amqprpc would send for the load's
// argument, encoded once beforehand, and takes the reply's bytes as they
// come: bytes in, the same bytes out, nothing decoded. With encoding it
// encodes each argument and decodes each reply with gob, as amqprpc does
// by default, and its server decodes, computes and encodes.
type echoCaller struct {
	c      *floor.EchoClient
	encode bool
	bodies map[any][]byte // request body by load argument; read only
	codec  *codec.Codec
}

// decodes says whether the reply argument of Call is filled in.
func (e *echoCaller) decodes() bool { return e.encode }

func (e *echoCaller) Call(method string, args, reply any) error {
	if !e.encode {
		body, ok := e.bodies[args]
		if !ok {
			return fmt.Errorf("no body for %s's argument", method)
		}
		got, err := e.c.Call(body)
		if err == nil && len(got) != len(body) {
			err = fmt.Errorf("echo of %d bytes; want %d", len(got), len(body))
		}
		return err
	}
	body, err := e.codec.Marshal(nil, codec.Gob, args)
	if err != nil {
		return err
	}
	got, err := e.c.Call(body)
	if err != nil {
		return err
	}
	return e.codec.Unmarshal(codec.Gob, got, reply)
}

func (e *echoCaller) Close() error { return e.c.Close() }

// echoBodies are the gob bodies of every load's argument.
func echoBodies() (map[any][]byte, error) {
	var c codec.Codec
	m := map[any][]byte{}
	for _, l := range []load{small, blob4K, blob256K} {
		b, err := c.Marshal(nil, codec.Gob, l.args)
		if err != nil {
			return nil, err
		}
		m[l.args] = b
	}
	return m, nil
}

// smallGob is the echo floor server's handler with encoding: Service.Small,
// gob in and gob out.
func smallGob(c *codec.Codec) floor.EchoHandler {
	return func(body []byte) ([]byte, error) {
		var args, reply Pair
		if err := c.Unmarshal(codec.Gob, body, &args); err != nil {
			return nil, err
		}
		_ = Service{}.Small(&args, &reply)
		return c.Marshal(nil, codec.Gob, &reply)
	}
}

// echoStart serves and calls through the echo floor with options o (and
// amqprpc's default prefetch), encoding with gob if encode is set.
func echoStart(o floor.EchoOptions, encode bool) func(string, string) (caller, func(), error) {
	return func(url, queue string) (caller, func(), error) {
		bodies, err := echoBodies()
		if err != nil {
			return nil, nil, err
		}
		o.Prefetch = amqprpc.DefaultPrefetch
		e := &echoCaller{encode: encode, bodies: bodies, codec: new(codec.Codec)}
		var handle floor.EchoHandler
		if encode {
			handle = smallGob(new(codec.Codec)) // the server's own, as in its own process
		}
		s, err := floor.ServeEcho(url, queue, o, handle)
		if err != nil {
			return nil, nil, err
		}
		stop := func() {
			s.Close()
			if o.DurableQueue {
				deleteQueue(url, queue)
			}
		}
		if e.c, err = floor.DialEcho(url, queue, o); err != nil {
			stop()
			return nil, nil, err
		}
		return e, stop, nil
	}
}

package main

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/rpc"
	"net/rpc/jsonrpc"
	"sync"
	"time"

	amqp "github.com/rabbitmq/amqp091-go"

	"github.com/amqprpc/amqprpc"
	"github.com/amqprpc/amqprpc/codec"
	"github.com/amqprpc/amqprpc/examples/floor"
)

// caller is what *rpc.Client, *floor.Client and *echoCaller have in common.
type caller interface {
	Call(method string, args, reply any) error
	Close() error
}

// transport is one way of calling Service.
type transport struct {
	name  string
	about string
	start func(url, queue string) (caller, func(), error)

	noBroker  bool // calls do not go through the broker
	smallOnly bool // measured with the small payload only

	c      caller
	stop   func()
	broken error // set when a cell failed so badly the client was closed
}

func transports() []*transport {
	return []*transport{
		{name: "tcp-gob", about: "net/rpc, gob, TCP loopback", start: tcpStart(false), noBroker: true},
		{name: "tcp-json", about: "net/rpc/jsonrpc, TCP loopback", start: tcpStart(true), noBroker: true},
		{name: "amqp-gob-direct", about: "amqprpc, gob, direct reply-to", start: amqpStart(codec.Gob, true)},
		{name: "amqp-gob-private", about: "amqprpc, gob, private reply queue (default)", start: amqpStart(codec.Gob, false)},
		{name: "amqp-json-direct", about: "amqprpc, JSON, direct reply-to", start: amqpStart(codec.JSON, true)},
		{name: "amqp-json-private", about: "amqprpc, JSON, private reply queue (default)", start: amqpStart(codec.JSON, false)},
		{name: "floor-json-direct", about: "JSON floor on amqp091-go, direct reply-to", start: floorStart(true)},
		{name: "floor-json-private", about: "JSON floor on amqp091-go, private reply queue", start: floorStart(false)},
		{name: "floor-echo-direct", about: "echo floor on amqp091-go (bytes echoed, nothing decoded), direct reply-to",
			start: echoStart(floor.EchoOptions{DirectReplyTo: true}, false)},
		{name: "floor-echo-private", about: "echo floor on amqp091-go (bytes echoed, nothing decoded), private reply queue",
			start: echoStart(floor.EchoOptions{}, false)},
		{name: "floor-echo-noack", about: "echo floor whose server consumes with auto-ack and never acknowledges (the at-most-once bound), private reply queue",
			start: echoStart(floor.EchoOptions{AutoAck: true}, false), smallOnly: true},
		{name: "floor-gob-private", about: "gob floor with amqprpc's wire: the echo floor + durable queue, `mandatory`, `expiration`, `message_id`, `type`, `content_type`, gob both ways, acks in runs (the ladder's step 11)",
			start: echoStart(sameAsAmqprpc(), true), smallOnly: true},
		{name: "peer-fast", about: "github.com/0x4b53/amqp-rpc/v5 " + modVersion(peerModule) + ", fast mode: classic non-durable auto-delete queue, no confirms, auto-ack server; gob both ways",
			start: peerStart(peerFast), smallOnly: true},
		{name: "peer-default", about: "the same peer with its defaults: quorum queue, publisher confirms, auto-ack server; gob both ways",
			start: peerStart(peerDefaults), smallOnly: true},
		{name: "amqp-gob-private-memstore", about: "amqprpc defaults with a reply store in memory (WithReplyStore, NewMemoryStore)",
			start: storeStart(memoryStore), smallOnly: true},
		{name: "amqp-gob-private-redisstore", about: "amqprpc defaults with a reply store on Redis (WithReplyStore, redisstore)",
			start: storeStart(redisStore), smallOnly: true},
	}
}

// tcpStart serves Service on a loopback listener with net/rpc's gob codec or
// net/rpc/jsonrpc, and dials it.
func tcpStart(useJSON bool) func(string, string) (caller, func(), error) {
	return func(string, string) (caller, func(), error) {
		srv := rpc.NewServer()
		if err := srv.RegisterName("Bench", Service{}); err != nil {
			return nil, nil, err
		}
		ln, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			return nil, nil, err
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
		stop := func() {
			ln.Close()
			wg.Wait() // each ServeConn ends when its client closes
		}
		if err != nil {
			stop()
			return nil, nil, err
		}
		return c, stop, nil
	}
}

// amqpStart serves Service with amqprpc.Serve and dials it with
// amqprpc.Dial, both with default options but the encoding, the reply mode
// and the options for both sides in both.
func amqpStart(enc codec.Encoding, directReplyTo bool, both ...amqprpc.Option) func(string, string) (caller, func(), error) {
	return amqpStartServer(enc, directReplyTo, nil, both...)
}

// amqpStartServer is amqpStart with server options besides.
func amqpStartServer(enc codec.Encoding, directReplyTo bool, server []amqprpc.ServerOption, both ...amqprpc.Option) func(string, string) (caller, func(), error) {
	return func(url, queue string) (caller, func(), error) {
		srv := rpc.NewServer()
		if err := srv.RegisterName("Bench", Service{}); err != nil {
			return nil, nil, err
		}
		ctx, cancel := context.WithCancel(context.Background())
		done := make(chan error, 1)
		serverOpts := append([]amqprpc.ServerOption(nil), server...)
		for _, o := range both {
			serverOpts = append(serverOpts, o)
		}
		go func() { done <- amqprpc.Serve(ctx, srv, url, queue, serverOpts...) }()
		stop := func() {
			cancel()
			select {
			case <-done:
			case <-time.After(20 * time.Second):
			}
			deleteQueue(url, queue)
		}
		if err := waitForConsumer(url, queue, done); err != nil {
			stop()
			return nil, nil, err
		}
		opts := []amqprpc.ClientOption{amqprpc.WithEncoding(enc)}
		for _, o := range both {
			opts = append(opts, o)
		}
		if directReplyTo {
			opts = append(opts, amqprpc.WithDirectReplyTo())
		}
		c, err := amqprpc.Dial(url, queue, opts...)
		if err != nil {
			stop()
			return nil, nil, err
		}
		return c, stop, nil
	}
}

// floorStart serves and calls Service through the JSON floor.
func floorStart(directReplyTo bool) func(string, string) (caller, func(), error) {
	return func(url, queue string) (caller, func(), error) {
		s, err := floor.Serve(url, queue, amqprpc.DefaultPrefetch, handleJSON)
		if err != nil {
			return nil, nil, err
		}
		stop := func() {
			s.Close()
			deleteQueue(url, queue)
		}
		c, err := floor.Dial(url, queue, directReplyTo)
		if err != nil {
			stop()
			return nil, nil, err
		}
		return c, stop, nil
	}
}

// waitForConsumer waits up to 10s until queue has a consumer, or its
// server reports a failure (or returns) on failed.
func waitForConsumer(url, queue string, failed <-chan error) error {
	conn, err := amqp.Dial(url)
	if err != nil {
		return err
	}
	defer conn.Close()
	for deadline := time.Now().Add(10 * time.Second); time.Now().Before(deadline); time.Sleep(20 * time.Millisecond) {
		select {
		case err := <-failed:
			return fmt.Errorf("the server of %q failed at once: %v", queue, err)
		default:
		}
		// A passive declare of a missing queue closes the channel: use a
		// channel per attempt.
		ch, err := conn.Channel()
		if err != nil {
			return err
		}
		q, err := ch.QueueDeclarePassive(queue, true, false, false, false, nil)
		ch.Close()
		if err == nil && q.Consumers > 0 {
			return nil
		}
	}
	return errors.New("no consumer on " + queue + " within 10s")
}

// deleteQueue removes a request queue the run declared.
func deleteQueue(url, queue string) {
	conn, err := amqp.Dial(url)
	if err != nil {
		return
	}
	defer conn.Close()
	if ch, err := conn.Channel(); err == nil {
		_, _ = ch.QueueDelete(queue, false, false, false)
	}
}

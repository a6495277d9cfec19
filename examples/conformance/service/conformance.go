// Package service is the conformance service of docs/PROTOCOL.md (§9) in
// Go: the methods that `amqprpc conform server` calls to check a server
// against the wire protocol, served with amqprpc.Serve. A server in another
// language implements the same methods to be checked the same way
// (examples/interop/python/server.py does).
package service

import (
	"context"
	"errors"
	"fmt"
	"net/rpc"
	"sync"
	"time"

	"github.com/amqprpc/amqprpc"
)

// The service as the conformance checks expect it to be served.
const (
	// DefaultMethod answers requests that name no method (no type).
	DefaultMethod = "Conformance.Echo"
	// Prefetch is how many requests a conformance server holds at once; the
	// checks assume it unless told otherwise (amqprpc conform server
	// -prefetch).
	Prefetch = 10
	// MaxSleep is the longest Sleep a conformance server accepts, in ms.
	MaxSleep = 10_000
)

// Args is the argument of Add.
type Args struct{ A, B int }

// Conformance is the service. Its zero value is ready to serve.
type Conformance struct {
	mu   sync.Mutex     // guards runs
	runs map[string]int // Record's token -> how many times it ran
}

// Echo replies with its argument.
func (c *Conformance) Echo(s string, reply *string) error {
	*reply = s
	return nil
}

// Add replies with A+B.
func (c *Conformance) Add(args *Args, sum *int) error {
	*sum = args.A + args.B
	return nil
}

// Fail fails with the error text it is given, which must not be empty.
func (c *Conformance) Fail(text string, _ *string) error {
	if text == "" {
		return errors.New("Conformance.Fail: empty error text")
	}
	return errors.New(text)
}

// Sleep replies with ms after sleeping ms milliseconds (0 to MaxSleep).
func (c *Conformance) Sleep(ms int, reply *int) error {
	if ms < 0 || ms > MaxSleep {
		return fmt.Errorf("Conformance.Sleep: %d ms: want 0 to %d", ms, MaxSleep)
	}
	time.Sleep(time.Duration(ms) * time.Millisecond)
	*reply = ms
	return nil
}

// Record counts a run for token and replies with how many times it has run.
func (c *Conformance) Record(token string, n *int) error {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.runs == nil {
		c.runs = make(map[string]int)
	}
	c.runs[token]++
	*n = c.runs[token]
	return nil
}

// Count replies with how many times Record ran for token.
func (c *Conformance) Count(token string, n *int) error {
	c.mu.Lock()
	defer c.mu.Unlock()
	*n = c.runs[token]
	return nil
}

// Serve serves a new Conformance on queue at url, with DefaultMethod and
// Prefetch, until ctx ends; opts come after those and may override them.
func Serve(ctx context.Context, url, queue string, opts ...amqprpc.ServerOption) error {
	srv := rpc.NewServer()
	if err := srv.Register(new(Conformance)); err != nil {
		return err
	}
	opts = append([]amqprpc.ServerOption{
		amqprpc.WithDefaultMethod(DefaultMethod),
		amqprpc.WithPrefetch(Prefetch),
	}, opts...)
	return amqprpc.Serve(ctx, srv, url, queue, opts...)
}

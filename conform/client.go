package conform

import (
	"context"
	"io"
)

// ClientOptions tune [ServeClient]. The zero value serves with the
// defaults and logs nothing.
type ClientOptions struct {
	// Prefetch is how many requests are held, and answered, at once
	// (DefaultPrefetch when 0).
	Prefetch int
	// Log, when not nil, gets one line per request answered.
	Log io.Writer
	// Ready, when not nil, is called once the queue is consumed.
	Ready func()
}

// A ClientReport is what [ServeClient] did: its verdict on the client,
// one result per check of the client flow, and how many replies it sent.
type ClientReport struct {
	Report
	Answered int // requests answered
	Strays   int // replies sent with a correlation_id no call has
	Repeats  int // replies sent a second time
}

// ClientChecks returns the checks of [ServeClient], in the order its
// report gives them.
func ClientChecks() []Check {
	return append([]Check(nil), clientChecks...)
}

// ServeClient declares queue (durable and auto-delete: the broker deletes
// it once ServeClient returns) and serves the conformance service of
// docs/PROTOCOL.md §9 on it, with the edge cases a client must cope with:
// before each reply a stray reply to the same reply_to, after it the same
// reply again, and requests that arrive together answered last first. A
// call of Conformance.Echo with the name of a step of the client flow gets
// a reply of the shape that step names. It serves until the client
// records "done", the end of the flow, or until ctx ends, and then judges
// the client by what it recorded. It returns an error only when it cannot
// start.
func ServeClient(ctx context.Context, url, queue string, opts ClientOptions) (*ClientReport, error) {
	if opts.Prefetch <= 0 {
		opts.Prefetch = DefaultPrefetch
	}
	log := opts.Log
	if log == nil {
		log = io.Discard
	}
	s := &conformServer{prefetch: opts.Prefetch, edges: true, log: log, finished: make(chan struct{})}
	if err := s.serve(ctx, url, queue, opts.Ready); err != nil {
		return nil, err
	}
	s.mu.Lock()
	results := verdict(s.runs)
	s.mu.Unlock()
	return &ClientReport{
		Report:   Report{Queue: queue, Prefetch: opts.Prefetch, Results: results},
		Answered: int(s.answered.Load()),
		Strays:   int(s.strays.Load()),
		Repeats:  int(s.repeats.Load()),
	}, nil
}

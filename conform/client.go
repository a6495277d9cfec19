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

// A ClientReport is what [ServeClient] did.
type ClientReport struct {
	Answered int // requests answered
	Strays   int // replies sent with a correlation_id no call has
	Repeats  int // replies sent a second time
}

// ServeClient declares queue (durable and auto-delete: the broker deletes
// it once ServeClient returns) and serves the conformance service of
// docs/PROTOCOL.md §9 on it until ctx ends, with the edge cases a client
// must cope with: before each reply a stray reply to the same reply_to,
// after it the same reply again, and requests that arrive together
// answered last first. It returns an error only when it cannot start.
func ServeClient(ctx context.Context, url, queue string, opts ClientOptions) (*ClientReport, error) {
	if opts.Prefetch <= 0 {
		opts.Prefetch = DefaultPrefetch
	}
	log := opts.Log
	if log == nil {
		log = io.Discard
	}
	s := &conformServer{prefetch: opts.Prefetch, edges: true, log: log}
	if err := s.serve(ctx, url, queue, opts.Ready); err != nil {
		return nil, err
	}
	return &ClientReport{
		Answered: int(s.answered.Load()),
		Strays:   int(s.strays.Load()),
		Repeats:  int(s.repeats.Load()),
	}, nil
}

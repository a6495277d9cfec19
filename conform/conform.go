// Package conform checks implementations of amqprpc's wire protocol
// (docs/PROTOCOL.md), in any language, through a broker.
//
// [CheckServer] checks the server that consumes a queue and serves the
// conformance service of PROTOCOL.md §9: it sends requests over the raw
// wire, as a client in another language would, and returns one [Result]
// per check. [ServeClient] serves that service on a queue, with the edge
// cases a client must cope with, while a client runs the client flow of
// §9 against it, sending back what it got; it then returns its verdict on
// the client, one [Result] per check. The amqprpc command's `conform
// server` and `conform client` are these two functions with flags; an
// implementer can call them from a Go test:
//
//	report, err := conform.CheckServer(ctx, url, "conformance", conform.ServerOptions{})
//	if err != nil {
//		t.Fatal(err) // no broker, no queue, nothing consumes it
//	}
//	for _, r := range report.Failures() {
//		t.Errorf("%s (%s): %v", r.Name, r.Sections, r.Err)
//	}
package conform

import (
	"context"
	"slices"
	"time"
)

// ProtocolVersion is the version of docs/PROTOCOL.md the checks check.
const ProtocolVersion = "1.1"

// Defaults of [ServerOptions].
const (
	DefaultTimeout  = 5 * time.Second
	DefaultPrefetch = 10
)

// A Check is one statement of docs/PROTOCOL.md that a caller can observe,
// checked against a server.
type Check struct {
	Name     string // as `conform server -run` matches it: "reply-private"
	Sections string // of PROTOCOL.md it tests: "§3 §4"
	What     string // what a conformant server does, in one sentence
	run      func(k *checker) error
}

// Checks returns the checks of [CheckServer], in the order they run.
func Checks() []Check {
	return append([]Check(nil), serverChecks...)
}

// ControlChecks returns the checks of the control protocol
// (docs/PROTOCOL.md §13), which [CheckServer] runs after [Checks] when
// [ServerOptions].Control is set.
func ControlChecks() []Check {
	return append([]Check(nil), controlChecks...)
}

// A Result is the outcome of one check.
type Result struct {
	Check
	// Err is nil when the server behaves as the check's statement says,
	// else what it did instead.
	Err error
}

// Passed reports whether the check passed.
func (r Result) Passed() bool { return r.Err == nil }

// A Report is what [CheckServer] found.
type Report struct {
	Queue    string
	Prefetch int
	Results  []Result // one per check run, in order
}

// Passed returns how many checks passed.
func (r *Report) Passed() int { return len(r.Results) - len(r.Failures()) }

// Failures returns the results of the checks that failed.
func (r *Report) Failures() []Result {
	var failed []Result
	for _, res := range r.Results {
		if !res.Passed() {
			failed = append(failed, res)
		}
	}
	return failed
}

// OK reports whether at least one check ran and every check passed.
func (r *Report) OK() bool { return len(r.Results) > 0 && len(r.Failures()) == 0 }

// ServerOptions tune [CheckServer]. The zero value runs every check with
// the defaults.
type ServerOptions struct {
	// Timeout is how long to wait for each reply (DefaultTimeout when 0).
	Timeout time.Duration
	// Prefetch is the server's prefetch, how many requests it holds
	// unacknowledged at once (DefaultPrefetch when 0).
	Prefetch int
	// Control also runs the checks of the control protocol (PROTOCOL.md
	// §13), which a server may or may not take part in.
	Control bool
	// Run, when not nil, picks the checks to run by name.
	Run func(name string) bool
	// Started, when not nil, is called once the checker has connected and
	// found the server, before the first check.
	Started func()
	// Checked, when not nil, is called with each result as its check ends.
	Checked func(Result)
}

// CheckServer checks the server that consumes queue at the broker at url.
// It returns an error, and no report, when the checks cannot run: no
// broker, no such queue, nothing consumes it, or requests already wait in
// it. When ctx ends, the checks not yet run are left out of the report.
func CheckServer(ctx context.Context, url, queue string, opts ServerOptions) (*Report, error) {
	if opts.Timeout <= 0 {
		opts.Timeout = DefaultTimeout
	}
	if opts.Prefetch <= 0 {
		opts.Prefetch = DefaultPrefetch
	}
	k, err := newChecker(url, queue, opts.Timeout, opts.Prefetch)
	if err != nil {
		return nil, err
	}
	defer k.close()
	if opts.Started != nil {
		opts.Started()
	}
	report := &Report{Queue: queue, Prefetch: opts.Prefetch}
	checks := serverChecks
	if opts.Control {
		checks = append(slices.Clip(checks), controlChecks...)
	}
	for _, c := range checks {
		if ctx.Err() != nil {
			break
		}
		if opts.Run != nil && !opts.Run(c.Name) {
			continue
		}
		r := Result{Check: c, Err: k.run(c)}
		report.Results = append(report.Results, r)
		if opts.Checked != nil {
			opts.Checked(r)
		}
	}
	return report, nil
}

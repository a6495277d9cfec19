package main

import (
	"fmt"
	"math"
	"net/url"
	"path/filepath"
	"runtime"
	"runtime/debug"
	"strings"
	"time"

	"github.com/amqprpc/amqprpc"
)

// pairs are the comparisons of the report: amqprpc over the raw floor in the
// same reply mode (the floor speaks JSON, so the JSON rows are like for like
// and the gob rows include the cost of gob), and amqprpc over net/rpc on TCP
// in the same encoding.
var pairs = []struct{ a, b string }{
	{"amqp-json-direct", "raw-amqp-direct"},
	{"amqp-json-private", "raw-amqp-private"},
	{"amqp-gob-direct", "raw-amqp-direct"},
	{"amqp-gob-private", "raw-amqp-private"},
	{"amqp-gob-direct", "tcp-gob"},
	{"amqp-gob-private", "tcp-gob"},
	{"amqp-json-direct", "tcp-json"},
	{"amqp-json-private", "tcp-json"},
}

func chartPath(out string) string {
	return filepath.Join(filepath.Dir(out), chartName(out))
}

func chartName(out string) string {
	base := filepath.Base(out)
	return strings.TrimSuffix(base, filepath.Ext(base)) + "-throughput.png"
}

func (r *run) markdown(chart string) string {
	var b strings.Builder
	p := func(format string, args ...any) { fmt.Fprintf(&b, format, args...) }

	p("# amqprpc benchmark\n\n")
	p("Written by `make bench` (`examples/bench`) on %s in %v. ", r.started.UTC().Format("2006-01-02 15:04 MST"), r.took.Round(time.Second))
	p("%s, %s/%s, %d CPUs (GOMAXPROCS %d), amqp091-go %s, %s at %s.\n\n",
		runtime.Version(), runtime.GOOS, runtime.GOARCH, runtime.NumCPU(), runtime.GOMAXPROCS(0),
		modVersion("github.com/rabbitmq/amqp091-go"), r.broker, redactURL(r.url))
	p("Each cell calls one client for %v in all, in %d rounds over every cell, each after %v of warm-up; in each cell the transports take turns. ", r.cellTime, r.rounds, r.warmup)
	p("Client, server and broker share the machine, and other work may run beside them: absolute numbers are noisy, ")
	p("and the ratios between transports of one run are what the report is for.\n\n")
	p("- **p50, p99**: latency of serial calls (one caller).\n")
	p("- **calls/s ×N**: throughput with N goroutines calling one client at once (×1 is the serial run).\n")
	p("- **allocs/call, B/call**: `runtime.MemStats` Mallocs and TotalAlloc deltas over the serial run, divided by the calls. ")
	p("Client and server run in this one process, so this is the total of both sides (plus amqp091-go's goroutines), not the client alone.\n\n")
	p("| transport | what |\n| --- | --- |\n")
	for _, t := range r.transports {
		what := t.about
		if t.broken != nil {
			what += " — **" + t.broken.Error() + "**"
		}
		p("| %s | %s |\n", t.name, what)
	}
	p("\nThe raw floor ([`examples/floor`](../examples/floor/floor.go), also used by the root package's `BenchmarkTransport`) is the simplest correct request/reply on amqp091-go: ")
	p("one connection and channel per side, requests published with mandatory to the default exchange, replies consumed with no-ack and matched through a mutex-guarded map; ")
	p("the server uses the same prefetch (%d), publishes each reply and then acknowledges the request. Bodies are JSON. ", amqprpc.DefaultPrefetch)
	p("Its server handles one request at a time, decoding, computing, encoding and publishing in one goroutine, ")
	p("while net/rpc (and so amqprpc) decodes the next request while another goroutine encodes a reply: ")
	p("where the codec dominates (256 KiB), amqprpc can beat the floor.\n\n")

	for _, pl := range plan {
		p("## %s\n\n", pl.load.label)
		p("| transport | p50 | p99 |")
		for _, n := range pl.callers {
			p(" calls/s ×%d |", n)
		}
		p(" allocs/call | B/call |\n|---|--:|--:|")
		for range pl.callers {
			p("--:|")
		}
		p("--:|--:|\n")
		for _, t := range r.transports {
			s, ok := r.cells[key{t.name, pl.load.name, 1}]
			p("| %s | %s | %s |", t.name, durOr(s.p50, s.measured), durOr(s.p99, s.measured))
			for _, n := range pl.callers {
				c := r.cells[key{t.name, pl.load.name, n}]
				p(" %s |", rateOr(c))
			}
			if ok && s.measured {
				p(" %.0f | %s |\n", s.allocs, bytesText(s.bytesPer))
			} else {
				p(" – | – |\n")
			}
		}
		p("\n")
		r.errorNotes(&b, pl.load.name, pl.callers)
	}

	p("## amqprpc / baseline\n\n")
	p("Each ratio is amqprpc's number over the baseline's, measured in the same run: ")
	p("below 1 is better for p50 and allocations, above 1 is better for calls/s.\n\n")
	for _, pl := range plan {
		p("**%s**\n\n| amqprpc | baseline | p50 |", pl.load.label)
		for _, n := range pl.callers {
			p(" calls/s ×%d |", n)
		}
		p(" allocs/call |\n|---|---|--:|")
		for range pl.callers {
			p("--:|")
		}
		p("--:|\n")
		for _, pr := range pairs {
			sa, sb := r.cells[key{pr.a, pl.load.name, 1}], r.cells[key{pr.b, pl.load.name, 1}]
			p("| %s | %s | %s |", pr.a, pr.b, ratio(sa.p50.Seconds(), sb.p50.Seconds(), sa.measured && sb.measured))
			for _, n := range pl.callers {
				ca, cb := r.cells[key{pr.a, pl.load.name, n}], r.cells[key{pr.b, pl.load.name, n}]
				p(" %s |", ratio(ca.rate, cb.rate, ca.measured && cb.measured))
			}
			p(" %s |\n", ratio(sa.allocs, sb.allocs, sa.measured && sb.measured))
		}
		p("\n")
	}

	p("## Targets\n\n")
	p("Printed for tracking, never asserted: small payload, amqprpc against the raw floor in the same reply mode ")
	p("(the floor speaks JSON, so the JSON rows are like for like).\n\n")
	p("| target | measured | |\n|---|---|---|\n")
	for _, pr := range pairs[:4] {
		a, b := r.cells[key{pr.a, small.name, 128}], r.cells[key{pr.b, small.name, 128}]
		ok := a.measured && b.measured
		q := a.rate / b.rate
		p("| calls/s ×128: %s ≥ 0.9 × %s | %s (%s vs %s) | %s |\n", pr.a, pr.b,
			ratio(a.rate, b.rate, ok), rateOr(a), rateOr(b), verdict(ok, q >= 0.9))
	}
	for _, pr := range pairs[:4] {
		a, b := r.cells[key{pr.a, small.name, 1}], r.cells[key{pr.b, small.name, 1}]
		ok := a.measured && b.measured
		q := a.p50.Seconds() / b.p50.Seconds()
		p("| serial p50: %s ≤ 1.1 × %s | %s (%s vs %s) | %s |\n", pr.a, pr.b,
			ratio(a.p50.Seconds(), b.p50.Seconds(), ok), durOr(a.p50, a.measured), durOr(b.p50, b.measured), verdict(ok, q <= 1.1))
	}
	p("\n")

	p("## Codec cost: gob and JSON, no broker\n\n")
	p("One `codec.Codec` Marshal plus one Unmarshal of the body, in this process (as `go test -bench BenchmarkCodec ./codec`). ")
	p("A call pays this twice, for the request and the reply. Gob bodies are self-contained streams, so each carries its type definitions.\n\n")
	p("| encoding | payload | body bytes | µs/op | allocs/op | B/op |\n|---|---|--:|--:|--:|--:|\n")
	for _, c := range r.codec {
		if c.err != nil {
			p("| %s | %s | – | error: %v | | |\n", c.enc, c.load, c.err)
			continue
		}
		p("| %s | %s | %d | %.1f | %.0f | %s |\n", c.enc, c.load, c.bodyBytes, c.ns/1e3, c.allocs, bytesText(c.bytes))
	}
	p("\n## Throughput against concurrency\n\n![calls/s against concurrent callers, per transport and payload](%s)\n", chart)
	return b.String()
}

// errorNotes lists the cells of one payload that failed calls.
func (r *run) errorNotes(b *strings.Builder, load string, callers []int) {
	for _, t := range r.transports {
		for _, n := range callers {
			c := r.cells[key{t.name, load, n}]
			if c.errs > 0 || c.hungClosing {
				fmt.Fprintf(b, "- %s ×%d: %d failed calls, first: %v\n", t.name, n, c.errs, c.firstErr)
			}
		}
	}
}

// redactURL hides the password of a broker URL.
func redactURL(s string) string {
	u, err := url.Parse(s)
	if err != nil {
		return "(unparsable URL)"
	}
	return u.Redacted()
}

func durOr(d time.Duration, ok bool) string {
	switch {
	case !ok:
		return "–"
	case d >= 10*time.Millisecond:
		return fmt.Sprintf("%.1f ms", float64(d)/1e6)
	case d >= time.Millisecond:
		return fmt.Sprintf("%.2f ms", float64(d)/1e6)
	}
	return fmt.Sprintf("%.0f µs", float64(d)/1e3)
}

func rateOr(c cell) string {
	if !c.measured {
		return "–"
	}
	return thousands(int64(math.Round(c.rate)))
}

func thousands(n int64) string {
	s := fmt.Sprint(n)
	for i := len(s) - 3; i > 0; i -= 3 {
		s = s[:i] + "," + s[i:]
	}
	return s
}

func bytesText(n float64) string {
	switch {
	case n >= 1<<20:
		return fmt.Sprintf("%.1f MiB", n/(1<<20))
	case n >= 10<<10:
		return fmt.Sprintf("%.0f KiB", n/(1<<10))
	}
	return fmt.Sprintf("%.0f", n)
}

func ratio(a, b float64, ok bool) string {
	if !ok || b == 0 {
		return "–"
	}
	return fmt.Sprintf("%.2f×", a/b)
}

func verdict(measured, pass bool) string {
	switch {
	case !measured:
		return "not measured"
	case pass:
		return "PASS"
	}
	return "**MISS**"
}

// modVersion is the version of a module this program was built with.
func modVersion(path string) string {
	if bi, ok := debug.ReadBuildInfo(); ok {
		for _, m := range bi.Deps {
			if m.Path == path {
				return m.Version
			}
		}
	}
	return "?"
}

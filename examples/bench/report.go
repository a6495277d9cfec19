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

// pairs are the comparisons of the report: amqprpc over each floor in the
// same reply mode, and over net/rpc on TCP in the same encoding. The echo
// floor decodes nothing; the JSON floor speaks JSON, so amqprpc's JSON rows
// are like for like with it and its gob rows include the cost of gob.
var pairs = []struct{ a, b string }{
	{"amqp-gob-private", "floor-echo-private"},
	{"amqp-gob-private", "floor-json-private"},
	{"amqp-json-private", "floor-echo-private"},
	{"amqp-json-private", "floor-json-private"},
	{"amqp-gob-direct", "floor-echo-direct"},
	{"amqp-gob-direct", "floor-json-direct"},
	{"amqp-json-direct", "floor-echo-direct"},
	{"amqp-json-direct", "floor-json-direct"},
	{"amqp-gob-private", "tcp-gob"},
	{"amqp-gob-direct", "tcp-gob"},
	{"amqp-json-private", "tcp-json"},
	{"amqp-json-direct", "tcp-json"},
	{"amqp-gob-private", "floor-echo-noack"},
	{"amqp-gob-private", "floor-gob-private"},
	{"amqp-gob-private", "peer-fast"},
	{"amqp-gob-private", "peer-default"},
	{"amqp-gob-direct", "floor-echo-noack"},
	{"amqp-gob-direct", "peer-fast"},
	{"amqp-gob-direct", "peer-default"},
	{"amqp-gob-private-memstore", "amqp-gob-private"},
	{"amqp-gob-private-redisstore", "amqp-gob-private"},
}

func chartPath(out string) string {
	return filepath.Join(filepath.Dir(out), chartName(out))
}

func chartName(out string) string {
	base := filepath.Base(out)
	return strings.TrimSuffix(base, filepath.Ext(base)) + "-throughput.png"
}

// printer appends formatted text to a report.
type printer struct{ b *strings.Builder }

func (p printer) f(format string, args ...any) { fmt.Fprintf(p.b, format, args...) }

// markdown is the whole report.
func (r *run) markdown(chart string) string {
	var b strings.Builder
	p := printer{&b}
	r.header(p)
	r.targets(p)
	r.standing(p)
	r.ladderReport(p)
	for _, pl := range plan {
		r.payloadTable(p, pl.load, pl.callers)
	}
	r.ratioTables(p)
	r.codecTable(p)
	p.f("## Throughput against concurrency\n\n![calls/s against concurrent callers, per transport and payload](%s)\n", chart)
	return b.String()
}

func (r *run) header(p printer) {
	p.f("# amqprpc benchmark\n\n")
	p.f("Written by `make bench` (`examples/bench`) on %s in %v. ", r.started.UTC().Format("2006-01-02 15:04 MST"), r.took.Round(time.Second))
	p.f("%s, %s/%s, %d CPUs (GOMAXPROCS %d), amqp091-go %s, %s at %s.\n\n",
		runtime.Version(), runtime.GOOS, runtime.GOARCH, runtime.NumCPU(), runtime.GOMAXPROCS(0),
		modVersion("github.com/rabbitmq/amqp091-go"), r.broker, redactURL(r.url))
	p.f("Each cell calls one client for %v in all, in %d rounds over every cell, each after %v of warm-up; ", r.cellTime, r.rounds, r.warmup)
	p.f("in each cell the transports take turns, each round starting one transport further on. ")
	p.f("Client, server and broker share the machine, and other work may run beside them (the broker may be serving others too): absolute numbers are noisy, ")
	p.f("and the ratios between transports of one run are what the report is for. ")
	p.f("The machine's load average (1 min) was %s when the run started and %s when it ended.\n\n", r.load[0], r.load[1])
	p.f("- **p50, p99**: latency of serial calls (one caller).\n")
	p.f("- **calls/s ×N**: throughput with N goroutines calling one client at once (×1 is the serial run).\n")
	p.f("- **allocs/call, B/call**: `runtime.MemStats` Mallocs and TotalAlloc deltas over the serial run, divided by the calls. ")
	p.f("Client and server run in this one process, so this is the total of both sides (plus amqp091-go's goroutines), not the client alone.\n")
	p.f("- **Go, broker µs/call**: CPU time (user + system) over the run with the most callers, divided by the calls: of this process (`getrusage`), and of the broker's `beam.smp` (`/proc/<pid>/stat`; %s).\n\n", r.meter.about())
	p.f("| transport | what |\n| --- | --- |\n")
	for _, t := range r.transports {
		what := t.about
		if t.broken != nil {
			what += " — **" + t.broken.Error() + "**"
		}
		p.f("| %s | %s |\n", t.name, what)
	}
	p.f("\nThe floors ([`examples/floor`](../examples/floor)) are the simplest correct request/reply on amqp091-go, ")
	p.f("with the same prefetch as amqprpc's server (%d): one connection and channel per side, ", amqprpc.DefaultPrefetch)
	p.f("a server that handles one request at a time in one goroutine, publishes its reply and then acknowledges it, ")
	p.f("and a client that matches replies to callers through a mutex-guarded map and consumes them with no-ack. ")
	p.f("The **echo floor** is the barest: bytes in, the same bytes out (the gob body amqprpc would send, encoded once before the run), nothing decoded, ")
	p.f("a transient exclusive service queue declared by its server, requests with correlation_id and reply_to only. ")
	p.f("The **JSON floor** also decodes and encodes JSON on both sides, declares a durable queue as amqprpc does, and sends `type`, `content_type` and `mandatory`, ")
	p.f("but neither `message_id` nor `expiration`. ")
	p.f("net/rpc (and so amqprpc) decodes the next request while another goroutine encodes a reply: ")
	p.f("where the codec dominates (256 KiB), amqprpc can beat the JSON floor.\n\n")
	p.f("Measured with the small payload only: the **no-ack floor** (`floor-echo-noack`), the echo floor with a server that consumes with auto-ack, ")
	p.f("the at-most-once bound that no server which acknowledges after its reply can pass; ")
	p.f("the **gob floor** (`floor-gob-private`), the floor with amqprpc's wire (its queue, properties, gob bodies and acknowledgements in runs), ")
	p.f("against which amqprpc's own allocations and broker CPU are judged; ")
	p.f("and the **peer**, [github.com/0x4b53/amqp-rpc/v5](https://pkg.go.dev/github.com/0x4b53/amqp-rpc/v5) %s, ", modVersion(peerModule))
	p.f("required by this program's go.mod alone, in its defaults and its fast mode, both with its auto-ack server. ")
	p.f("Its client and its server each use two connections, one to publish and one to consume; its server runs each request in a goroutine of its own. ")
	p.f("Its calls carry the same gob bodies as amqprpc's; everything else is the peer's own default.\n\n")
}

// payloadTable is every transport's numbers for one payload.
func (r *run) payloadTable(p printer, l load, callers []int) {
	top := callers[len(callers)-1]
	p.f("## %s\n\n| transport | p50 | p99 |", l.label)
	for _, n := range callers {
		p.f(" calls/s ×%d |", n)
	}
	p.f(" allocs/call | B/call | Go µs/call ×%d | broker µs/call ×%d |\n|---|--:|--:|", top, top)
	for range callers {
		p.f("--:|")
	}
	p.f("--:|--:|--:|--:|\n")
	for _, t := range r.transports {
		if t.smallOnly && l.name != small.name {
			continue
		}
		s := r.cell(t.name, l.name, 1).sum
		p.f("| %s | %s | %s |", t.name, durOr(s.p50, s.measured), durOr(s.p99, s.measured))
		for _, n := range callers {
			p.f(" %s |", rateOr(r.cell(t.name, l.name, n).sum))
		}
		c := r.cell(t.name, l.name, top).sum
		if s.measured {
			p.f(" %.0f | %s |", s.allocs, bytesText(s.bytesPer))
		} else {
			p.f(" – | – |")
		}
		p.f(" %s | %s |\n", cpuOr(c.goCPU, c.measured && !c.use.goUnknown), cpuOr(c.brokerCPU, c.measured && !c.use.brokerUnknown && !t.noBroker))
	}
	p.f("\n")
	r.errorNotes(p, l.name, callers)
}

// ratioTables are amqprpc over each baseline, per payload.
func (r *run) ratioTables(p printer) {
	p.f("## amqprpc / baseline\n\n")
	p.f("Each ratio is amqprpc's number over the baseline's, measured in the same run: ")
	p.f("below 1 is better for p50 and allocations, above 1 is better for calls/s.\n\n")
	for _, pl := range plan {
		p.f("**%s**\n\n| amqprpc | baseline | p50 |", pl.load.label)
		for _, n := range pl.callers {
			p.f(" calls/s ×%d |", n)
		}
		p.f(" allocs/call |\n|---|---|--:|")
		for range pl.callers {
			p.f("--:|")
		}
		p.f("--:|\n")
		for _, pr := range pairs {
			sa, sb := r.cell(pr.a, pl.load.name, 1).sum, r.cell(pr.b, pl.load.name, 1).sum
			if !sb.measured && !r.cell(pr.b, pl.load.name, pl.callers[len(pl.callers)-1]).sum.measured {
				continue // not measured with this payload
			}
			p.f("| %s | %s | %s |", pr.a, pr.b, ratio(sa.p50.Seconds(), sb.p50.Seconds(), sa.measured && sb.measured))
			for _, n := range pl.callers {
				ca, cb := r.cell(pr.a, pl.load.name, n).sum, r.cell(pr.b, pl.load.name, n).sum
				p.f(" %s |", ratio(ca.rate, cb.rate, ca.measured && cb.measured))
			}
			p.f(" %s |\n", ratio(sa.allocs, sb.allocs, sa.measured && sb.measured))
		}
		p.f("\n")
	}
}

// codecTable is the codec's cost without a broker.
func (r *run) codecTable(p printer) {
	p.f("## Codec cost: gob and JSON, no broker\n\n")
	p.f("One `codec.Codec` Marshal plus one Unmarshal of the body, in this process (as `go test -bench BenchmarkCodec ./codec`). ")
	p.f("A call pays this twice, for the request and the reply. Gob bodies are self-contained streams, so each carries its type definitions.\n\n")
	p.f("| encoding | payload | body bytes | µs/op | allocs/op | B/op |\n|---|---|--:|--:|--:|--:|\n")
	for _, c := range r.codec {
		if c.err != nil {
			p.f("| %s | %s | – | error: %v | | |\n", c.enc, c.load, c.err)
			continue
		}
		p.f("| %s | %s | %d | %.1f | %.0f | %s |\n", c.enc, c.load, c.bodyBytes, c.ns/1e3, c.allocs, bytesText(c.bytes))
	}
	p.f("\n")
}

// errorNotes lists the cells of one payload that failed calls.
func (r *run) errorNotes(p printer, load string, callers []int) {
	noted := false
	for _, t := range r.transports {
		for _, n := range callers {
			c := r.cell(t.name, load, n).sum
			if c.errs > 0 || c.hungClosing {
				p.f("- %s ×%d: %d failed calls, first: %v\n", t.name, n, c.errs, c.firstErr)
				noted = true
			}
		}
	}
	if noted {
		p.f("\n")
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

func cpuOr(us float64, ok bool) string {
	if !ok {
		return "–"
	}
	return fmt.Sprintf("%.0f", us)
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

package conform

import (
	"bytes"
	"context"
	"os"
	"regexp"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/amqprpc/amqprpc"
	"github.com/amqprpc/amqprpc/examples/conformance/service"
	"github.com/amqprpc/amqprpc/internal/brokertest"
)

// checkRun is what one run of CheckServer found: the names of the checks
// that passed and failed.
type checkRun struct {
	report         *Report
	passed, failed []string
}

// checkServer runs CheckServer against queue, failing the test when the
// checks cannot run.
func checkServer(t *testing.T, url, queue string, opts ServerOptions) checkRun {
	t.Helper()
	start := time.Now()
	report, err := CheckServer(context.Background(), url, queue, opts)
	t.Logf("CheckServer ran %v", time.Since(start).Round(time.Millisecond))
	if err != nil {
		t.Fatalf("CheckServer(%q) = %v", queue, err)
	}
	r := checkRun{report: report}
	for _, res := range report.Results {
		if res.Passed() {
			r.passed = append(r.passed, res.Name)
		} else {
			r.failed = append(r.failed, res.Name)
		}
	}
	return r
}

// logReport logs every result, each line marked, so that no line stands
// alone as a summary in the test log.
func logReport(t *testing.T, r checkRun) {
	t.Helper()
	var b strings.Builder
	for _, res := range r.report.Results {
		if res.Passed() {
			b.WriteString("\n  conform | PASS " + res.Name)
		} else {
			b.WriteString("\n  conform | FAIL " + res.Name + ": " + res.Err.Error())
		}
	}
	t.Log("CheckServer found:" + b.String())
}

// allChecks are the names of every check.
func allChecks() []string {
	var names []string
	for _, c := range Checks() {
		names = append(names, c.Name)
	}
	return names
}

// controlCheckNames are the names of the control checks.
func controlCheckNames() []string {
	var names []string
	for _, c := range ControlChecks() {
		names = append(names, c.Name)
	}
	return names
}

// wantAllPass fails the test unless every check ran and passed (the
// control checks too, when they ran).
func wantAllPass(t *testing.T, r checkRun) {
	t.Helper()
	want := allChecks()
	if len(r.report.Results) > len(want) {
		want = append(want, controlCheckNames()...)
	}
	if len(r.failed) > 0 || !slices.Equal(r.passed, want) || !r.report.OK() {
		t.Errorf("CheckServer: failed %q; want every check to pass", r.failed)
		logReport(t, r)
	}
}

// TestGoServer: the conformance service served by amqprpc passes, with
// the default options, with publisher confirms (a request is acknowledged
// only once its reply is confirmed) and on a quorum queue (where the
// broker expires requests too), the control checks included.
func TestGoServer(t *testing.T) {
	url := brokertest.URL(t)
	for _, tt := range []struct {
		name string
		opts []amqprpc.ServerOption
	}{
		{"defaults", nil},
		{"confirms", []amqprpc.ServerOption{amqprpc.WithConfirms()}},
		{"quorum", []amqprpc.ServerOption{amqprpc.WithQuorumQueue()}},
	} {
		t.Run(tt.name, func(t *testing.T) {
			queue := brokertest.Queue(t, url, "conform-go-"+tt.name)
			srv := brokertest.Serve(t, func(ctx context.Context) error { return service.Serve(ctx, url, queue, tt.opts...) })
			brokertest.WaitForConsumers(t, url, queue, 1, srv)
			wantAllPass(t, checkServer(t, url, queue, ServerOptions{Control: true}))
		})
	}
}

// serveConform runs s on queue until the test ends.
func serveConform(t *testing.T, s *conformServer, url, queue string) {
	t.Helper()
	if s.log == nil {
		s.log = new(lockedBuffer)
	}
	srv := brokertest.Serve(t, func(ctx context.Context) error { return s.serve(ctx, url, queue, nil) })
	brokertest.WaitForConsumers(t, url, queue, 1, srv)
}

// TestConformantVariants: servers that do what the protocol allows in
// ways of their own pass every check: without the edge cases of
// ServeClient, with another marker on a cut error text, and one that runs
// one request at a time with a prefetch of 1; the control checks included
// (servercontrol.go).
func TestConformantVariants(t *testing.T) {
	url := brokertest.URL(t)
	for _, tt := range []struct {
		name     string
		faults   serverFaults
		prefetch int
	}{
		{"plain", serverFaults{}, 10},
		{"cut-marker", serverFaults{cutMarker: " [cut]"}, 10},
		{"one-at-a-time", serverFaults{workers: 1}, 1},
	} {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			queue := brokertest.Queue(t, url, "conform-ok-"+tt.name)
			serveConform(t, &conformServer{prefetch: tt.prefetch, faults: tt.faults}, url, queue)
			wantAllPass(t, checkServer(t, url, queue, ServerOptions{Prefetch: tt.prefetch, Control: true}))
		})
	}
}

// TestBrokenServers: a server broken in one way fails exactly the checks
// that test what is broken.
func TestBrokenServers(t *testing.T) {
	url := brokertest.URL(t)
	for _, tt := range []struct {
		name    string
		faults  serverFaults
		timeout time.Duration
		want    []string
	}{
		// Nothing is matched to its call: every check fails. A short
		// reply timeout keeps it quick.
		{"drop-correlation-id", serverFaults{dropCorrelationID: true}, 500 * time.Millisecond, allChecks()},
		{"cut-correlation-id", serverFaults{cutCorrelationID: true}, 0, []string{"correlation-id"}},
		{"error-in-body", serverFaults{errorInBody: true}, 0, []string{
			"error-reply", "error-text-whole", "error-text-cut", "content-type-unsupported",
			"unknown-method", "unknown-service", "ill-formed-method", "malformed-body", "mistyped-body", "ping"}},
		{"echo-content-type", serverFaults{echoContentType: true}, 0, []string{
			"content-type-params", "content-type-unsupported", "content-type-absent", "content-type-empty", "ping"}},
		{"cut-inside-character", serverFaults{cutInsideRune: true}, 0, []string{"error-text-cut"}},
		{"no-ping", serverFaults{noPing: true}, 0, []string{"ping"}},
		{"no-default-method", serverFaults{noDefaultMethod: true}, 0, []string{"type-absent", "type-empty"}},
		{"reply-to-on-reply", serverFaults{replyToOnReply: true}, 0, []string{"reply-properties", "error-reply"}},
		{"trailing-newline", serverFaults{trailingNewline: true}, 0, []string{"reply-properties"}},
		{"no-prefetch-limit", serverFaults{takeAll: true}, 0, []string{"runs-at-once", "expired-not-run"}},
		{"reply-twice", serverFaults{replyTwice: true}, 0, []string{"one-reply"}},
		{"extra-properties", serverFaults{extraProperties: true}, 0, []string{"reply-properties", "error-reply"}},
		{"extra-header", serverFaults{extraHeader: true}, 0, []string{"reply-properties", "error-reply"}},
		{"cut-above-6005", serverFaults{cutAbove: 6005}, 0, []string{"error-text-cut"}},
		{"requeue-no-reply-to", serverFaults{requeueNoReplyTo: true}, 0, []string{"reply-to-absent", "reply-to-empty"}},
		// The two requests it never acknowledges keep two of its ten
		// places for good: the later checks that fill its prefetch fail
		// too, saying so.
		{"never-ack-no-reply-to", serverFaults{neverAckNoReplyTo: true}, 0, []string{"reply-to-absent", "reply-to-empty", "runs-at-once", "expired-not-run"}},
		{"five-workers", serverFaults{workers: 5}, 0, []string{"runs-at-once"}},
		{"ping-decodes", serverFaults{pingDecodes: true}, 0, []string{"ping"}},
		{"ping-any-content-type", serverFaults{pingAnyType: true}, 0, []string{"ping"}},
		{"echo-any-json", serverFaults{echoAnyJSON: true}, 0, []string{"mistyped-body"}},
		{"first-dot", serverFaults{firstDot: true}, 0, []string{"unknown-service"}},
		// The control protocol's (servercontrol.go): only its checks run.
		{"control-not-under-all", serverFaults{controlNoAll: true}, 0, []string{"control-all"}},
		{"control-not-under-instance", serverFaults{controlNoInstance: true}, 0, []string{"control-instance"}},
		{"control-no-counts", serverFaults{controlNoCounts: true}, 0, []string{"control-stats"}},
		{"control-answers-direct-reply-to", serverFaults{controlDirect: true}, 0, []string{"control-direct-reply-to"}},
		{"control-carries-call-data", serverFaults{controlCallData: true}, 0, []string{"control-no-call-data"}},
		{"control-unknown-type-answered", serverFaults{controlUnknownType: true}, 0, []string{"control-unknown-type"}},
		{"control-no-metadata", serverFaults{controlNoMetadata: true}, 0, []string{"control-ping"}},
	} {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			queue := brokertest.Queue(t, url, "conform-broken-"+tt.name)
			serveConform(t, &conformServer{prefetch: 10, faults: tt.faults}, url, queue)
			opts := ServerOptions{Timeout: tt.timeout}
			if strings.HasPrefix(tt.name, "control-") {
				opts.Control, opts.Run = true, func(name string) bool { return strings.HasPrefix(name, "control-") }
			}
			r := checkServer(t, url, queue, opts)
			if !slices.Equal(r.failed, tt.want) || r.report.OK() {
				t.Errorf("CheckServer against a server with %s: failed %q; want failed %q", tt.name, r.failed, tt.want)
				logReport(t, r)
			}
		})
	}
}

// TestCannotCheck: what CheckServer says when it cannot check.
func TestCannotCheck(t *testing.T) {
	url := brokertest.URL(t)
	missing := brokertest.Queue(t, url, "conform-missing")
	idle := brokertest.Queue(t, url, "conform-idle")
	_, ch := brokertest.Conn(t, url)
	if _, err := ch.QueueDeclare(idle, true, false, false, false, nil); err != nil {
		t.Fatal(err)
	}
	for _, tt := range []struct {
		queue, want string
	}{
		{missing, `no queue "` + missing + `" on the broker`},
		{idle, `nothing consumes queue "` + idle + `"`},
	} {
		report, err := CheckServer(context.Background(), url, tt.queue, ServerOptions{})
		if err == nil || !strings.Contains(err.Error(), tt.want) || report != nil {
			t.Errorf("CheckServer(%q) = %v, %v; want no report and an error holding %q", tt.queue, report, err, tt.want)
		}
	}
}

// TestRunPicksChecks: ServerOptions.Run picks checks by name, and Started
// and Checked are called around them.
func TestRunPicksChecks(t *testing.T) {
	url := brokertest.URL(t)
	queue := brokertest.Queue(t, url, "conform-run")
	serveConform(t, &conformServer{prefetch: 10}, url, queue)
	re := regexp.MustCompile("^(ping|type-.*)$")
	var events []string
	r := checkServer(t, url, queue, ServerOptions{
		Run:     re.MatchString,
		Started: func() { events = append(events, "started") },
		Checked: func(r Result) { events = append(events, r.Name) },
	})
	if want := []string{"type-absent", "type-empty", "ping"}; !slices.Equal(r.passed, want) || len(r.failed) > 0 {
		t.Errorf("CheckServer with Run: passed %q, failed %q; want passed %q", r.passed, r.failed, want)
	}
	if want := []string{"started", "type-absent", "type-empty", "ping"}; !slices.Equal(events, want) {
		t.Errorf("Started and Checked were called for %q; want %q", events, want)
	}
}

// TestChecksDocumented: docs/PROTOCOL.md §9 lists every check of
// CheckServer, then every check of ServeClient, and §13 the control
// checks, with the sections each tests, in order.
func TestChecksDocumented(t *testing.T) {
	doc, err := os.ReadFile("../docs/PROTOCOL.md")
	if err != nil {
		t.Fatal(err)
	}
	row := regexp.MustCompile("(?m)^\\| `([a-z-]+)` \\| (§\\d+(?:, §\\d+)*) \\|")
	var got, want []string
	for _, m := range row.FindAllStringSubmatch(string(doc), -1) {
		got = append(got, m[1]+" "+strings.ReplaceAll(m[2], ",", ""))
	}
	for _, c := range append(append(Checks(), ClientChecks()...), ControlChecks()...) {
		want = append(want, c.Name+" "+c.Sections)
	}
	if !slices.Equal(got, want) {
		t.Errorf("docs/PROTOCOL.md lists the checks\n%q\nwant, as CheckServer runs them,\n%q", got, want)
	}
}

// lockedBuffer is a bytes.Buffer safe for a conformServer's goroutines.
type lockedBuffer struct {
	mu sync.Mutex // guards b
	b  bytes.Buffer
}

func (l *lockedBuffer) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.Write(p)
}

func (l *lockedBuffer) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.String()
}

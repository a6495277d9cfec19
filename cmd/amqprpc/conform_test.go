package main

import (
	"bufio"
	"bytes"
	"context"
	"os"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/amqprpc/amqprpc"
	"github.com/amqprpc/amqprpc/examples/conformance/service"
	"github.com/amqprpc/amqprpc/internal/brokertest"
)

// conformRun is what one run of amqprpc conform server printed.
type conformRun struct {
	code           int
	passed, failed []string // check names
	stdout, stderr string
}

var (
	checkLine   = regexp.MustCompile(`^(PASS|FAIL)  (\S+) +(§\d(?: §\d)*) +\S`)
	summaryLine = regexp.MustCompile(`^(\d+) passed, (\d+) failed$`)
)

// conformServerRun runs amqprpc conform server in-process against queue
// and checks the form of what it prints: a line per check, then the
// summary, whose counts match the lines and the exit status.
func conformServerRun(t *testing.T, url, queue string, flags ...string) conformRun {
	t.Helper()
	var stdout, stderr bytes.Buffer
	start := time.Now()
	args := append(append([]string{"conform", "server", "-url", url}, flags...), queue)
	code := run(args, nil, &stdout, &stderr)
	r := conformRun{code: code, stdout: stdout.String(), stderr: stderr.String()}
	t.Logf("conform server ran %v", time.Since(start).Round(time.Millisecond))
	lines := strings.Split(strings.TrimSuffix(r.stdout, "\n"), "\n")
	if len(lines) < 2 || !strings.HasPrefix(lines[0], "checking the server on queue ") {
		t.Fatalf("conform server printed %q; want a heading, checks and a summary (stderr %q)", r.stdout, r.stderr)
	}
	for _, l := range lines[1 : len(lines)-1] {
		m := checkLine.FindStringSubmatch(l)
		if m == nil {
			t.Errorf("conform server printed %q; want PASS or FAIL, a check, its sections and what it checks", l)
			continue
		}
		if m[1] == "PASS" {
			r.passed = append(r.passed, m[2])
		} else {
			r.failed = append(r.failed, m[2])
		}
	}
	m := summaryLine.FindStringSubmatch(lines[len(lines)-1])
	switch {
	case m == nil:
		t.Errorf("conform server's last line is %q; want N passed, M failed", lines[len(lines)-1])
	case m[1] != strconv.Itoa(len(r.passed)) || m[2] != strconv.Itoa(len(r.failed)):
		t.Errorf("conform server's summary %q does not count its %d PASS and %d FAIL lines", m[0], len(r.passed), len(r.failed))
	}
	if want := exitCode(len(r.failed) == 0); code != want {
		t.Errorf("conform server exit status %d with %d failed checks; want %d", code, len(r.failed), want)
	}
	return r
}

func exitCode(ok bool) int {
	if ok {
		return exitOK
	}
	return exitFailed
}

// logOutput logs what conform server printed, each line marked, so that
// no line stands alone as a summary in the test log.
func logOutput(t *testing.T, r conformRun) {
	t.Helper()
	var b strings.Builder
	sc := bufio.NewScanner(strings.NewReader(r.stdout + r.stderr))
	for sc.Scan() {
		b.WriteString("\n  conform | " + sc.Text())
	}
	t.Log("conform server printed:" + b.String())
}

// allChecks are the names of every check.
func allChecks() []string {
	var names []string
	for _, c := range conformChecks {
		names = append(names, c.name)
	}
	return names
}

// wantAllPass fails the test unless every check ran and passed.
func wantAllPass(t *testing.T, r conformRun) {
	t.Helper()
	if len(r.failed) > 0 || !slices.Equal(r.passed, allChecks()) || r.code != exitOK {
		t.Errorf("conform server: exit %d, failed %q; want every check to pass", r.code, r.failed)
		logOutput(t, r)
	}
}

// TestConformGoServer: the conformance service served by amqprpc passes,
// with the default options, with publisher confirms (a request is
// acknowledged only once its reply is confirmed) and on a quorum queue
// (where the broker expires requests too).
func TestConformGoServer(t *testing.T) {
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
			wantAllPass(t, conformServerRun(t, url, queue))
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

// TestConformClientServerPasses: the edge cases of conform client (stray
// and repeated replies, answers last first) are all within the protocol,
// so conform client's server passes conform server, with them or without.
func TestConformClientServerPasses(t *testing.T) {
	url := brokertest.URL(t)
	for _, edges := range []bool{true, false} {
		t.Run("edges="+strconv.FormatBool(edges), func(t *testing.T) {
			queue := brokertest.Queue(t, url, "conform-raw")
			serveConform(t, &conformServer{prefetch: 10, edges: edges}, url, queue)
			wantAllPass(t, conformServerRun(t, url, queue))
		})
	}
}

// TestConformBrokenServers: a server broken in one way fails exactly the
// checks that test what is broken.
func TestConformBrokenServers(t *testing.T) {
	url := brokertest.URL(t)
	for _, tt := range []struct {
		name    string
		faults  serverFaults
		timeout string
		want    []string
	}{
		// Nothing is matched to its call: every check fails. A short
		// reply timeout keeps it quick.
		{"drop-correlation-id", serverFaults{dropCorrelationID: true}, "500ms", allChecks()},
		{"cut-correlation-id", serverFaults{cutCorrelationID: true}, "", []string{"correlation-id"}},
		{"error-in-body", serverFaults{errorInBody: true}, "", []string{
			"error-reply", "error-text-whole", "error-text-cut", "content-type-unsupported",
			"unknown-method", "unknown-service", "ill-formed-method", "malformed-body", "mistyped-body"}},
		{"echo-content-type", serverFaults{echoContentType: true}, "", []string{
			"content-type-params", "content-type-unsupported", "content-type-absent", "content-type-empty"}},
		{"cut-inside-character", serverFaults{cutInsideRune: true}, "", []string{"error-text-cut"}},
		{"no-ping", serverFaults{noPing: true}, "", []string{"ping"}},
		{"no-default-method", serverFaults{noDefaultMethod: true}, "", []string{"type-absent", "type-empty"}},
		{"reply-to-on-reply", serverFaults{replyToOnReply: true}, "", []string{"reply-properties"}},
		{"trailing-newline", serverFaults{trailingNewline: true}, "", []string{"reply-properties"}},
		{"no-prefetch-limit", serverFaults{takeAll: true}, "", []string{"expired-not-run"}},
	} {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			queue := brokertest.Queue(t, url, "conform-broken-"+tt.name)
			serveConform(t, &conformServer{prefetch: 10, edges: true, faults: tt.faults}, url, queue)
			var flags []string
			if tt.timeout != "" {
				flags = []string{"-timeout", tt.timeout}
			}
			r := conformServerRun(t, url, queue, flags...)
			if !slices.Equal(r.failed, tt.want) || r.code != exitFailed {
				t.Errorf("conform server against a server with %s: exit %d, failed %q; want exit 1, failed %q", tt.name, r.code, r.failed, tt.want)
				logOutput(t, r)
			}
		})
	}
}

// TestConformServerUsage: what conform server says when it cannot check.
func TestConformServerUsage(t *testing.T) {
	url := brokertest.URL(t)
	missing := brokertest.Queue(t, url, "conform-missing")
	idle := brokertest.Queue(t, url, "conform-idle")
	_, ch := brokertest.Conn(t, url)
	if _, err := ch.QueueDeclare(idle, true, false, false, false, nil); err != nil {
		t.Fatal(err)
	}
	for _, tt := range []struct {
		args []string
		code int
		want string
	}{
		{[]string{"conform"}, exitUsage, "Usage:"},
		{[]string{"conform", "both"}, exitUsage, `unknown command "both"`},
		{[]string{"conform", "server"}, exitUsage, "want QUEUE, got 0 arguments"},
		{[]string{"conform", "server", "-prefetch", "0", "q"}, exitUsage, "-prefetch 0: want 1 to 1000"},
		{[]string{"conform", "server", "-run", "(", "q"}, exitUsage, "-run: error parsing regexp"},
		{[]string{"conform", "client", "a", "b"}, exitUsage, "want QUEUE, got 2 arguments"},
		{[]string{"conform", "server", missing}, exitTransit, `no queue "` + missing + `" on the broker`},
		{[]string{"conform", "server", idle}, exitTransit, `nothing consumes queue "` + idle + `"`},
	} {
		r := cli(t, url, nil, tt.args...)
		if r.code != tt.code || !strings.Contains(r.stderr, tt.want) || r.stdout != "" {
			t.Errorf("amqprpc %s = exit %d, stdout %q, stderr %q; want exit %d and stderr holding %q",
				strings.Join(tt.args, " "), r.code, r.stdout, r.stderr, tt.code, tt.want)
		}
	}
}

// TestConformRunFlag: -run picks checks by name.
func TestConformRunFlag(t *testing.T) {
	url := brokertest.URL(t)
	queue := brokertest.Queue(t, url, "conform-run")
	serveConform(t, &conformServer{prefetch: 10}, url, queue)
	r := conformServerRun(t, url, queue, "-run", "^(ping|type-.*)$")
	if want := []string{"type-absent", "type-empty", "ping"}; !slices.Equal(r.passed, want) || len(r.failed) > 0 {
		t.Errorf("conform server -run: passed %q, failed %q; want passed %q", r.passed, r.failed, want)
	}
}

// TestConformHelp: each conform command explains itself with an example.
func TestConformHelp(t *testing.T) {
	for _, tt := range []struct {
		args []string
		want []string
	}{
		{[]string{"conform", "-h"}, []string{"Usage:", "amqprpc conform server [flags] QUEUE", "amqprpc conform client [flags] QUEUE"}},
		{[]string{"conform", "server", "-h"}, []string{"Usage:", "Example:", "-prefetch", "-timeout", "-run", "Exit status: 0 every check passed"}},
		{[]string{"conform", "client", "-h"}, []string{"Usage:", "Example:", "-prefetch", "-for", "stray reply"}},
	} {
		r := cli(t, "", nil, tt.args...)
		for _, w := range tt.want {
			if r.code != exitOK || !strings.Contains(r.stdout, w) || r.stderr != "" {
				t.Errorf("amqprpc %s = exit %d, stdout %q, stderr %q; want exit 0 and %q on stdout", strings.Join(tt.args, " "), r.code, r.stdout, r.stderr, w)
			}
		}
	}
}

// TestConformChecksDocumented: docs/PROTOCOL.md §9 lists every check of
// conform server, with the sections it tests, in order.
func TestConformChecksDocumented(t *testing.T) {
	doc, err := os.ReadFile("../../docs/PROTOCOL.md")
	if err != nil {
		t.Fatal(err)
	}
	row := regexp.MustCompile("(?m)^\\| `([a-z-]+)` \\| (§\\d(?:, §\\d)*) \\|")
	var got, want []string
	for _, m := range row.FindAllStringSubmatch(string(doc), -1) {
		got = append(got, m[1]+" "+strings.ReplaceAll(m[2], ",", ""))
	}
	for _, c := range conformChecks {
		want = append(want, c.name+" "+c.sections)
	}
	if !slices.Equal(got, want) {
		t.Errorf("docs/PROTOCOL.md lists the checks\n%q\nwant, as conform server runs them,\n%q", got, want)
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

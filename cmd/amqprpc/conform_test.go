package main

import (
	"bufio"
	"bytes"
	"context"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/amqprpc/amqprpc/conform"
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
	checkLine   = regexp.MustCompile(`^(PASS|FAIL)  (\S+) +(§\d+(?: §\d+)*) +\S`)
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
	for _, c := range conform.Checks() {
		names = append(names, c.Name)
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

// TestConformGoServer: conform server passes amqprpc's own conformance
// server, and prints a line per check and the summary (the checks and the
// servers they fail are tested in package conform).
func TestConformGoServer(t *testing.T) {
	url := brokertest.URL(t)
	queue := brokertest.Queue(t, url, "conform-go")
	srv := brokertest.Serve(t, func(ctx context.Context) error { return service.Serve(ctx, url, queue) })
	brokertest.WaitForConsumers(t, url, queue, 1, srv)
	wantAllPass(t, conformServerRun(t, url, queue))
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
	srv := brokertest.Serve(t, func(ctx context.Context) error { return service.Serve(ctx, url, queue) })
	brokertest.WaitForConsumers(t, url, queue, 1, srv)
	r := conformServerRun(t, url, queue, "-run", "^(ping|type-.*)$")
	if want := []string{"type-absent", "type-empty", "ping"}; !slices.Equal(r.passed, want) || len(r.failed) > 0 {
		t.Errorf("conform server -run: passed %q, failed %q; want passed %q", r.passed, r.failed, want)
	}
}

// TestConformControlFlag: -control adds the control protocol's checks,
// which amqprpc's server passes.
func TestConformControlFlag(t *testing.T) {
	url := brokertest.URL(t)
	queue := brokertest.Queue(t, url, "conform-control")
	srv := brokertest.Serve(t, func(ctx context.Context) error { return service.Serve(ctx, url, queue) })
	brokertest.WaitForConsumers(t, url, queue, 1, srv)
	r := conformServerRun(t, url, queue, "-control", "-run", "^control-")
	var want []string
	for _, c := range conform.ControlChecks() {
		want = append(want, c.Name)
	}
	if !slices.Equal(r.passed, want) || len(r.failed) > 0 || len(want) == 0 {
		t.Errorf("conform server -control: passed %q, failed %q; want passed %q", r.passed, r.failed, want)
		logOutput(t, r)
	}
}

// TestConformHelp: each conform command explains itself with an example.
func TestConformHelp(t *testing.T) {
	for _, tt := range []struct {
		args []string
		want []string
	}{
		{[]string{"conform", "-h"}, []string{"Usage:", "amqprpc conform server [flags] QUEUE", "amqprpc conform client [flags] QUEUE"}},
		{[]string{"conform", "server", "-h"}, []string{"Usage:", "Example:", "-prefetch", "-timeout", "-run", "-control", "Exit status: 0 every check passed"}},
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

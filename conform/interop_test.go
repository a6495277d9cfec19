package conform

// The checker against the programs of examples/interop: the Python
// server passes CheckServer, and the Python and Node clients run their
// calls against ServeClient. internal/interoptest finds their tools; without
// them the tests skip, or fail when CI is set.

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/rpc"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"testing"
	"time"

	"github.com/amqprpc/amqprpc"
	"github.com/amqprpc/amqprpc/codec"
	"github.com/amqprpc/amqprpc/internal/brokertest"
	"github.com/amqprpc/amqprpc/internal/interoptest"
)

// TestConformPythonServer: the Python interop server, which serves the
// conformance service beside Arith, passes conform server.
func TestConformPythonServer(t *testing.T) {
	python := interoptest.Python(t)
	url := brokertest.URL(t)
	queue := brokertest.Queue(t, url, "conform-python")
	interoptest.StartServer(t, url, python, filepath.Join(interoptest.Dir(t), "python", "server.py"),
		"--queue", queue, "--default-method", "Conformance.Echo", "--prefetch", "10")
	wantAllPass(t, checkServer(t, url, queue, ServerOptions{}))
}

// clientLine is one line a client program of examples/interop prints: a
// check or the result.
type clientLine struct {
	Check   string          `json:"check"`
	OK      bool            `json:"ok"`
	Problem *string         `json:"problem"`
	Detail  json.RawMessage `json:"detail"`
	Result  string          `json:"result"`
	Passed  int             `json:"passed"`
	Failed  int             `json:"failed"`
	Error   string          `json:"error"`
}

// clientConformChecks are the checks the client programs run with
// --conformance.
var clientConformChecks = []string{"echo", "default", "add", "error-reply", "delayed", "concurrent", "strays-dropped"}

// runConformClientProgram runs a client program with --conformance against
// queue and checks that it ran every check and each one passed.
func runConformClientProgram(t *testing.T, url, queue string, argv ...string) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 90*time.Second)
	defer cancel()
	argv = append(argv, "--conformance", "--queue", queue, "--call-timeout", "10", "--time-limit", "60")
	cmd := exec.CommandContext(ctx, argv[0], argv[1:]...)
	cmd.Env = append(os.Environ(), "AMQP_URL="+url)
	cmd.WaitDelay = 5 * time.Second
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	err := cmd.Run()
	if ctx.Err() != nil {
		t.Fatalf("%s did not finish within 90s", argv[1])
	}
	var seen []string
	var result *clientLine
	sc := bufio.NewScanner(&stdout)
	for sc.Scan() {
		var l clientLine
		if err := json.Unmarshal(sc.Bytes(), &l); err != nil {
			t.Errorf("%s printed %q, not JSON: %v", argv[1], sc.Text(), err)
			continue
		}
		switch {
		case l.Check != "":
			seen = append(seen, l.Check)
			if !l.OK || l.Problem != nil {
				problem := "(none given)"
				if l.Problem != nil {
					problem = *l.Problem
				}
				t.Errorf("%s: check %q failed: %s (detail %s)", argv[1], l.Check, problem, l.Detail)
			}
		case l.Result != "":
			result = &l
		}
	}
	if !slices.Equal(seen, clientConformChecks) {
		t.Errorf("%s ran the checks %q; want %q", argv[1], seen, clientConformChecks)
	}
	if result == nil || result.Result != "ok" || result.Failed != 0 || result.Passed != len(clientConformChecks) {
		t.Errorf("%s: result %+v; want ok, %d passed, 0 failed", argv[1], result, len(clientConformChecks))
	}
	if err != nil {
		t.Errorf("%s: %v; want exit status 0", argv[1], err)
	}
	if t.Failed() && stderr.Len() > 0 {
		t.Logf("%s stderr:\n%s", argv[1], stderr.String())
	}
}

// serveConformClient serves conform client's service, edge cases and all,
// on a new queue until the test ends, and returns the queue.
func serveConformClient(t *testing.T, url string) (string, *conformServer) {
	t.Helper()
	queue := brokertest.Queue(t, url, "conform-client")
	s := &conformServer{prefetch: 10, edges: true}
	serveConform(t, s, url, queue)
	return queue, s
}

// TestConformClientPython: the pika client (a private reply queue) gets
// the right result of each call from conform client, dropping the stray
// and repeated replies.
func TestConformClientPython(t *testing.T) {
	python := interoptest.Python(t)
	url := brokertest.URL(t)
	queue, s := serveConformClient(t, url)
	runConformClientProgram(t, url, queue, python, filepath.Join(interoptest.Dir(t), "python", "client.py"))
	if s.strays.Load() == 0 || s.repeats.Load() == 0 {
		t.Errorf("conform client sent %d stray and %d repeated replies; want some of each", s.strays.Load(), s.repeats.Load())
	}
}

// TestConformClientNode: the amqplib client (direct reply-to) does the
// same.
func TestConformClientNode(t *testing.T) {
	node := interoptest.Node(t)
	url := brokertest.URL(t)
	queue, _ := serveConformClient(t, url)
	runConformClientProgram(t, url, queue, node, filepath.Join(interoptest.Dir(t), "node", "client.js"))
}

// TestConformClientGo: an amqprpc client, through either reply mode, gets
// the right result of each call from conform client too.
func TestConformClientGo(t *testing.T) {
	url := brokertest.URL(t)
	queue, _ := serveConformClient(t, url)
	for _, mode := range []struct {
		name string
		opts []amqprpc.ClientOption
	}{
		{"private-queue", nil},
		{"direct-reply-to", []amqprpc.ClientOption{amqprpc.WithDirectReplyTo()}},
	} {
		t.Run(mode.name, func(t *testing.T) {
			opts := append([]amqprpc.ClientOption{amqprpc.WithEncoding(codec.JSON), amqprpc.WithCallTimeout(10 * time.Second)}, mode.opts...)
			client := brokertest.Dial(t, amqprpc.Dial, url, queue, opts...)
			var s string
			if err := client.Call("Conformance.Echo", "hello ✓", &s); err != nil || s != "hello ✓" {
				t.Errorf(`Call(Conformance.Echo, "hello ✓") = %q, %v; want "hello ✓", nil`, s, err)
			}
			s = ""
			if err := client.Call("", "no type", &s); err != nil || s != "no type" {
				t.Errorf(`Call("", "no type") = %q, %v; want "no type", nil`, s, err)
			}
			var n int
			if err := client.Call("Conformance.Add", map[string]int{"A": 2, "B": 3}, &n); err != nil || n != 5 {
				t.Errorf("Call(Conformance.Add, 2+3) = %d, %v; want 5, nil", n, err)
			}
			err := client.Call("Conformance.Fail", "conformance: failed as asked", new(string))
			var se rpc.ServerError
			if !errors.As(err, &se) || string(se) != "conformance: failed as asked" {
				t.Errorf("Call(Conformance.Fail) = %v; want rpc.ServerError(%q)", err, "conformance: failed as asked")
			}
			start := time.Now()
			if err := client.Call("Conformance.Sleep", 300, &n); err != nil || n != 300 || time.Since(start) < 300*time.Millisecond {
				t.Errorf("Call(Conformance.Sleep, 300) = %d, %v after %v; want 300, nil after 300ms or more", n, err, time.Since(start))
			}
			calls := make([]*rpc.Call, 20)
			for i := range calls {
				calls[i] = client.Go("Conformance.Echo", fmt.Sprint("m", i), new(string), make(chan *rpc.Call, 1))
			}
			for i, c := range calls {
				select {
				case <-c.Done:
				case <-time.After(20 * time.Second):
					t.Fatalf("Go(Conformance.Echo, m%d): no reply within 20s", i)
				}
				if got := *c.Reply.(*string); c.Error != nil || got != fmt.Sprint("m", i) {
					t.Errorf("Go(Conformance.Echo, m%d) = %q, %v; want %q, nil", i, got, c.Error, fmt.Sprint("m", i))
				}
			}
		})
	}
}

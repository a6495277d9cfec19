package conform

// The conformance commands against the programs of examples/interop: the
// Python server passes conform server, and the Python and Node clients
// run their calls against conform client. They need Debian's python3-pika
// for /usr/bin/python3, and node with examples/interop/node/node_modules
// (scripts/install-interop-deps.sh); without them the tests skip, or fail
// when CI is set.

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/rpc"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/amqprpc/amqprpc"
	"github.com/amqprpc/amqprpc/codec"
	"github.com/amqprpc/amqprpc/internal/brokertest"
)

// systemPython is the interpreter Debian's python3-pika installs for.
const systemPython = "/usr/bin/python3"

var interopDir = filepath.Join("..", "examples", "interop")

// missingTool fails the test under CI and skips it otherwise.
func missingTool(t *testing.T, what string) {
	t.Helper()
	brokertest.Missing(t, what, "run scripts/install-interop-deps.sh as root (or `make test`) to install the interop tools")
}

// requirePika checks that the system Python can import pika.
func requirePika(t *testing.T) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if out, err := exec.CommandContext(ctx, systemPython, "-c", "import pika").CombinedOutput(); err != nil {
		missingTool(t, fmt.Sprintf("%s cannot import pika (%v: %s)", systemPython, err, bytes.TrimSpace(out)))
	}
}

// requireNode checks for node and the amqplib that npm ci installs, and
// returns node's path.
func requireNode(t *testing.T) string {
	t.Helper()
	node, err := exec.LookPath("node")
	if err != nil {
		missingTool(t, "node is not installed ("+err.Error()+")")
	}
	if _, err := os.Stat(filepath.Join(interopDir, "node", "node_modules", "amqplib", "package.json")); err != nil {
		missingTool(t, fmt.Sprintf("amqplib is not installed in examples/interop/node/node_modules (%v)", err))
	}
	return node
}

// startServerScript starts a server program that prints READY once it
// consumes, waits for that line, and stops it with SIGTERM when the test
// ends, failing the test unless it then exits 0 within 10 s.
func startServerScript(t *testing.T, url string, argv ...string) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	cmd := exec.CommandContext(ctx, argv[0], argv[1:]...)
	cmd.Env = append(os.Environ(), "AMQP_URL="+url)
	var stderr bytes.Buffer // read only after Wait
	cmd.Stderr = &stderr
	cmd.WaitDelay = 5 * time.Second
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		cancel()
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		cancel()
		t.Fatalf("starting %s: %v", argv[1], err)
	}
	ready := make(chan bool, 1)
	go func() {
		sc := bufio.NewScanner(stdout)
		ready <- sc.Scan() && strings.HasPrefix(sc.Text(), "READY")
		_, _ = io.Copy(io.Discard, stdout)
	}()
	t.Cleanup(func() {
		defer cancel()
		_ = cmd.Process.Signal(syscall.SIGTERM)
		done := make(chan error, 1)
		go func() { done <- cmd.Wait() }()
		select {
		case err := <-done:
			if err != nil {
				t.Errorf("%s: %v after SIGTERM; stderr:\n%s", argv[1], err, stderr.String())
			}
		case <-time.After(10 * time.Second):
			cancel() // kills it
			<-done
			t.Errorf("%s did not exit within 10s of SIGTERM; stderr:\n%s", argv[1], stderr.String())
		}
	})
	select {
	case ok := <-ready:
		if !ok {
			t.Fatalf("%s printed no READY line", argv[1])
		}
	case <-time.After(20 * time.Second):
		t.Fatalf("%s printed no READY within 20s", argv[1])
	}
}

// TestConformPythonServer: the Python interop server, which serves the
// conformance service beside Arith, passes conform server.
func TestConformPythonServer(t *testing.T) {
	requirePika(t)
	url := brokertest.URL(t)
	queue := brokertest.Queue(t, url, "conform-python")
	startServerScript(t, url, systemPython, filepath.Join(interopDir, "python", "server.py"),
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
	requirePika(t)
	url := brokertest.URL(t)
	queue, s := serveConformClient(t, url)
	runConformClientProgram(t, url, queue, systemPython, filepath.Join(interopDir, "python", "client.py"))
	if s.strays.Load() == 0 || s.repeats.Load() == 0 {
		t.Errorf("conform client sent %d stray and %d repeated replies; want some of each", s.strays.Load(), s.repeats.Load())
	}
}

// TestConformClientNode: the amqplib client (direct reply-to) does the
// same.
func TestConformClientNode(t *testing.T) {
	node := requireNode(t)
	url := brokertest.URL(t)
	queue, _ := serveConformClient(t, url)
	runConformClientProgram(t, url, queue, node, filepath.Join(interopDir, "node", "client.js"))
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

package amqprpc

// Cross-language interop: the programs in examples/interop (a Python client
// and server on pika, a Node.js client on amqplib) against the Go library,
// through the test broker. They need Debian's python3-pika for
// /usr/bin/python3, and node with examples/interop/node/node_modules;
// scripts/install-interop-deps.sh installs both. Without them the tests
// skip, or fail when CI is set.

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
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/amqprpc/amqprpc/codec"
	"github.com/amqprpc/amqprpc/internal/brokertest"
)

// systemPython is the interpreter Debian's python3-pika installs for; a
// python3 earlier on PATH (pyenv, a venv) does not see it.
const systemPython = "/usr/bin/python3"

var (
	interopDir       = filepath.Join("examples", "interop")
	pythonClientPath = filepath.Join(interopDir, "python", "client.py")
	pythonServerPath = filepath.Join(interopDir, "python", "server.py")
	nodeDir          = filepath.Join(interopDir, "node")
	nodeClientPath   = filepath.Join(nodeDir, "client.js")
)

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
	out, err := exec.CommandContext(ctx, systemPython, "-c", "import pika").CombinedOutput()
	if err != nil {
		missingTool(t, fmt.Sprintf("%s cannot import pika (%v: %s)", systemPython, err, strings.TrimSpace(lastLine(out))))
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
	if _, err := os.Stat(filepath.Join(nodeDir, "node_modules", "amqplib", "package.json")); err != nil {
		missingTool(t, fmt.Sprintf("amqplib is not installed in %s/node_modules (%v)", nodeDir, err))
	}
	return node
}

func lastLine(b []byte) string {
	lines := strings.Split(strings.TrimSpace(string(b)), "\n")
	return lines[len(lines)-1]
}

// interopLine is one line a client program prints: a check or the result.
type interopLine struct {
	Check   string          `json:"check"`
	OK      bool            `json:"ok"`
	Problem *string         `json:"problem"`
	Detail  json.RawMessage `json:"detail"`
	Result  string          `json:"result"`
	Passed  int             `json:"passed"`
	Failed  int             `json:"failed"`
	Error   string          `json:"error"`
}

// interopChecks are the checks every client program runs.
var interopChecks = []string{"typed", "default", "error-reply", "concurrent"}

// concurrentCalls is how many calls the clients' concurrent check makes.
const concurrentCalls = 50

// runInteropClient runs a client program against queue and checks that it
// ran every check and each one passed.
func runInteropClient(t *testing.T, url, queue string, argv ...string) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 90*time.Second)
	defer cancel()
	argv = append(argv, "--queue", queue, "--call-timeout", "10", "--time-limit", "60")
	cmd := exec.CommandContext(ctx, argv[0], argv[1:]...)
	cmd.Env = append(os.Environ(), "AMQP_URL="+url) // not in argv, where ps shows it
	cmd.WaitDelay = 5 * time.Second
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	start := time.Now()
	err := cmd.Run()
	t.Logf("%s ran %v:\n%s", filepath.Base(argv[1]), time.Since(start).Round(time.Millisecond), stdout.String())
	if stderr.Len() > 0 {
		t.Logf("stderr:\n%s", stderr.String())
	}
	if ctx.Err() != nil {
		t.Fatalf("%s did not finish within 90s", argv[1])
	}

	seen := map[string]bool{}
	var result *interopLine
	sc := bufio.NewScanner(&stdout)
	for sc.Scan() {
		var l interopLine
		if err := json.Unmarshal(sc.Bytes(), &l); err != nil {
			t.Errorf("output line %q is not JSON: %v", sc.Text(), err)
			continue
		}
		switch {
		case l.Check != "":
			if seen[l.Check] {
				t.Errorf("check %q reported twice", l.Check)
			}
			seen[l.Check] = true
			if !l.OK || l.Problem != nil {
				problem := "(none given)"
				if l.Problem != nil {
					problem = *l.Problem
				}
				t.Errorf("check %q failed: %s (detail %s)", l.Check, problem, l.Detail)
			}
		case l.Result != "":
			result = &l
		}
	}
	for _, c := range interopChecks {
		if !seen[c] {
			t.Errorf("check %q was not reported", c)
		}
	}
	switch {
	case result == nil:
		t.Errorf("no result line")
	case result.Result != "ok" || result.Failed != 0 || result.Passed != len(interopChecks):
		t.Errorf("result %q, %d passed, %d failed, error %q; want ok, %d passed, 0 failed",
			result.Result, result.Passed, result.Failed, result.Error, len(interopChecks))
	}
	if err != nil {
		t.Errorf("%s: %v; want exit status 0", argv[1], err)
	}
}

// testInteropClient runs a client program against a Go server with a
// default method and against one without.
func testInteropClient(t *testing.T, argv ...string) {
	t.Run("default-method", func(t *testing.T) {
		url, queue := brokertest.URL(t), testQueue(t)
		arith := newArith("go")
		startServer(t, arith, queue, WithDefaultMethod("Arith.Multiply"))
		runInteropClient(t, url, queue, append(argv, "--expect-default", "multiply")...)
		if got, want := arith.calls.Load(), int64(3+concurrentCalls); got != want {
			t.Errorf("the Go service ran %d calls; want %d", got, want)
		}
	})
	t.Run("no-default-method", func(t *testing.T) {
		url, queue := brokertest.URL(t), testQueue(t)
		arith := newArith("go")
		startServer(t, arith, queue)
		runInteropClient(t, url, queue, append(argv, "--expect-default", "none")...)
		if got, want := arith.calls.Load(), int64(2+concurrentCalls); got != want {
			t.Errorf("the Go service ran %d calls; want %d", got, want)
		}
	})
}

// TestInteropPythonClient: a pika client with a private reply queue calls
// the Go server.
func TestInteropPythonClient(t *testing.T) {
	requirePika(t)
	testInteropClient(t, systemPython, pythonClientPath)
}

// TestInteropNodeClient: an amqplib client with direct reply-to calls the
// Go server.
func TestInteropNodeClient(t *testing.T) {
	node := requireNode(t)
	testInteropClient(t, node, nodeClientPath)
}

// pythonServer is a server program of examples/interop/python running as a
// child.
type pythonServer struct {
	path     string
	cmd      *exec.Cmd
	stderr   bytes.Buffer // read only after cmd.Wait
	lines    chan string  // stdout, closed at EOF
	stopOnce sync.Once
	stopErr  error
	stopped  []string // stdout lines after READY
}

// startPythonServer starts server.py on queue and waits for its READY line.
// The server is stopped when the test ends, if the test did not stop it.
func startPythonServer(t *testing.T, url, queue string) *pythonServer {
	t.Helper()
	return startPythonScript(t, url, pythonServerPath, "--queue", queue, "--prefetch", "10")
}

// startPythonScript starts the server program at path with args and waits
// for its READY line. The server is stopped when the test ends, if the test
// did not stop it.
func startPythonScript(t *testing.T, url, path string, args ...string) *pythonServer {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	s := &pythonServer{path: path, lines: make(chan string, 16)}
	s.cmd = exec.CommandContext(ctx, systemPython, append([]string{path}, args...)...)
	s.cmd.Env = append(os.Environ(), "AMQP_URL="+url)
	s.cmd.Stderr = &s.stderr
	s.cmd.WaitDelay = 5 * time.Second
	stdout, err := s.cmd.StdoutPipe()
	if err != nil {
		cancel()
		t.Fatalf("StdoutPipe = %v", err)
	}
	if err := s.cmd.Start(); err != nil {
		cancel()
		t.Fatalf("starting %s: %v", path, err)
	}
	go func() {
		defer close(s.lines)
		sc := bufio.NewScanner(stdout)
		for sc.Scan() {
			s.lines <- sc.Text()
		}
		_, _ = io.Copy(io.Discard, stdout)
	}()
	t.Cleanup(func() {
		if err := s.stop(); err != nil {
			t.Errorf("stopping %s: %v", path, err)
		}
		cancel()
	})

	select {
	case l, ok := <-s.lines:
		if ok && strings.HasPrefix(l, "READY") {
			return s
		}
		_ = s.stop()
		t.Fatalf("%s printed %q, not READY; stderr:\n%s", path, l, s.stderr.String())
	case <-time.After(20 * time.Second):
		_ = s.stop()
		t.Fatalf("%s printed no READY within 20s; stderr:\n%s", path, s.stderr.String())
	}
	return nil
}

// stop sends SIGTERM, kills the server if it has not exited 10s later, and
// waits for it. It returns an error unless the server exited 0 on its own.
func (s *pythonServer) stop() error {
	s.stopOnce.Do(func() {
		_ = s.cmd.Process.Signal(syscall.SIGTERM)
		var killed bool
		timeout := time.After(10 * time.Second)
	read:
		for {
			select {
			case l, ok := <-s.lines:
				if !ok {
					break read
				}
				s.stopped = append(s.stopped, l)
			case <-timeout:
				killed = true
				_ = s.cmd.Process.Kill()
				timeout = nil
			}
		}
		err := s.cmd.Wait()
		switch {
		case killed:
			s.stopErr = fmt.Errorf("no exit within 10s of SIGTERM; killed (%v); stderr:\n%s", err, s.stderr.String())
		case err != nil:
			s.stopErr = fmt.Errorf("%v; stderr:\n%s", err, s.stderr.String())
		}
	})
	return s.stopErr
}

// TestInteropGoClientPythonServer: the Go client calls a pika server that
// follows the wire contract, then times out once that server is gone.
func TestInteropGoClientPythonServer(t *testing.T) {
	requirePika(t)
	url, queue := brokertest.URL(t), testQueue(t)
	py := startPythonServer(t, url, queue)
	const callTimeout = 2 * time.Second
	replyModes(t, func(t *testing.T, mode ClientOption) {
		goCallsPythonServer(t, dial(t, queue, WithEncoding(codec.JSON), WithCallTimeout(callTimeout), mode))
	})
	if t.Failed() {
		return
	}
	client := dial(t, queue, WithEncoding(codec.JSON), WithCallTimeout(callTimeout))

	// A gob client gets a clear refusal from a JSON-only server.
	var product int
	gobClient := dial(t, queue, WithCallTimeout(callTimeout))
	err := gobClient.Call("Arith.Multiply", &Args{2, 3}, &product)
	if !errors.Is(Cause(err), ErrUnsupportedContentType) {
		t.Errorf("gob Call to the Python server = %v; want ErrUnsupportedContentType", err)
	}

	// Stopped, the server leaves its queue behind: a call now times out
	// rather than being returned as ErrNoQueue.
	if err := py.stop(); err != nil {
		t.Fatalf("stopping %s: %v", pythonServerPath, err)
	}
	if len(py.stopped) == 0 || !strings.HasPrefix(py.stopped[len(py.stopped)-1], "STOPPED") {
		t.Errorf("%s printed %q after SIGTERM; want a STOPPED line", pythonServerPath, py.stopped)
	}
	conn, _ := rawConn(t)
	brokertest.WaitFor(t, 10*time.Second, "no consumer on the queue", func() bool { return brokertest.Consumers(conn, queue) == 0 })
	start := time.Now()
	err = client.Call("Arith.Multiply", &Args{2, 3}, &product)
	took := time.Since(start)
	if !errors.Is(Cause(err), ErrTimeout) {
		t.Fatalf("Call after the server stopped = %v; want ErrTimeout", err)
	}
	if took < callTimeout-100*time.Millisecond || took > callTimeout+5*time.Second {
		t.Errorf("Call after the server stopped took %v; want about the call timeout %v", took, callTimeout)
	}
	// The request expired in the queue with the call, never to be run.
	brokertest.WaitFor(t, 10*time.Second, "the expired request to leave the queue", func() bool { return brokertest.Depth(conn, queue) == 0 })
}

// goCallsPythonServer makes the Go client's calls to the Python server.
func goCallsPythonServer(t *testing.T, client *rpc.Client) {
	t.Helper()
	var product int
	multiply(t, client, 6, 7, "")
	for _, c := range []struct {
		args Args
		want Quotient
	}{
		{Args{17, 5}, Quotient{3, 2}},
		{Args{-7, 2}, Quotient{-3, -1}}, // Go's truncated division, not Python's floor
	} {
		var quo Quotient
		if err := client.Call("Arith.Divide", &c.args, &quo); err != nil || quo != c.want {
			t.Errorf("Call(Arith.Divide, %d/%d) = %+v, %v; want %+v, nil", c.args.A, c.args.B, quo, err, c.want)
		}
	}

	// A service error arrives as the rpc.ServerError a Go server would give.
	var quo Quotient
	err := client.Call("Arith.Divide", &Args{1, 0}, &quo)
	var se rpc.ServerError
	if !errors.As(err, &se) || string(se) != "divide by zero" {
		t.Errorf("Call(Arith.Divide, 1/0) = %v (%T); want rpc.ServerError(\"divide by zero\")", err, err)
	}
	err = client.Call("Arith.Nope", &Args{1, 2}, &product)
	if !errors.As(err, &se) || string(se) != "rpc: can't find method Arith.Nope" {
		t.Errorf("Call(Arith.Nope) = %v; want rpc.ServerError(\"rpc: can't find method Arith.Nope\")", err)
	}

	// Many calls in flight at once, each matched to its reply.
	calls := make([]*rpc.Call, concurrentCalls)
	for i := range calls {
		calls[i] = client.Go("Arith.Multiply", &Args{i, i + 1}, new(int), make(chan *rpc.Call, 1))
	}
	within(t, 20*time.Second, "the concurrent calls", func() {
		for i, c := range calls {
			<-c.Done
			if c.Error != nil || *c.Reply.(*int) != i*(i+1) {
				t.Errorf("Go(Arith.Multiply, %d*%d) = %d, %v; want %d, nil", i, i+1, *c.Reply.(*int), c.Error, i*(i+1))
			}
		}
	})
}

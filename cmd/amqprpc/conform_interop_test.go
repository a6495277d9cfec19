package main

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
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/amqprpc/amqprpc/internal/brokertest"
)

// systemPython is the interpreter Debian's python3-pika installs for.
const systemPython = "/usr/bin/python3"

var interopDir = filepath.Join("..", "..", "examples", "interop")

// missingTool fails the test under CI and skips it otherwise.
func missingTool(t *testing.T, what string) {
	t.Helper()
	msg := what + "; run scripts/install-interop-deps.sh as root (or `make test`) to install the interop tools"
	if os.Getenv("CI") != "" {
		t.Fatalf("CI is set and %s", msg)
	}
	t.Skipf("%s (set CI=1 to make this a failure)", msg)
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
	wantAllPass(t, conformServerRun(t, url, queue))
}

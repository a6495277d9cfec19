package conform

// The checker against the programs of examples/interop: the Python
// server passes CheckServer, and the Python and Node clients run their
// calls against ServeClient. internal/interoptest finds their tools; without
// them the tests skip, or fail when CI is set.

import (
	"bytes"
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

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

// runFlowProgram runs a client program with --conformance, which runs the
// client flow, against ServeClient on a new queue, and checks that the
// program ran the flow to its end and ServeClient passed it on every check.
func runFlowProgram(t *testing.T, url string, argv ...string) {
	t.Helper()
	queue, reports, stop := serveClientCheck(t, url)
	ctx, cancel := context.WithTimeout(context.Background(), 90*time.Second)
	defer cancel()
	argv = append(argv, "--conformance", "--queue", queue, "--call-timeout", "10", "--time-limit", "60")
	cmd := exec.CommandContext(ctx, argv[0], argv[1:]...)
	cmd.Env = append(os.Environ(), "AMQP_URL="+url)
	cmd.WaitDelay = 5 * time.Second
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	err := cmd.Run()
	if err != nil || !strings.HasSuffix(stdout.String(), `{"result": "ok"}`+"\n") && !strings.HasSuffix(stdout.String(), `{"result":"ok"}`+"\n") {
		t.Errorf("%s: %v; want exit status 0 and a last line {\"result\": \"ok\"}; stdout:\n%s\nstderr:\n%s", argv[1], err, stdout.String(), stderr.String())
	}
	if failed := verdictOf(t, reports, stop); len(failed) > 0 {
		t.Errorf("ServeClient failed %s on %q; want every check passed; it printed:\n%s", argv[1], failed, stdout.String())
	}
}

// TestConformClientPython: the pika client (a private reply queue) passes
// ServeClient's client flow.
func TestConformClientPython(t *testing.T) {
	runFlowProgram(t, brokertest.URL(t), interoptest.Python(t), filepath.Join(interoptest.Dir(t), "python", "client.py"))
}

// TestConformClientNode: the amqplib client (direct reply-to) does too.
func TestConformClientNode(t *testing.T) {
	runFlowProgram(t, brokertest.URL(t), interoptest.Node(t), filepath.Join(interoptest.Dir(t), "node", "client.js"))
}

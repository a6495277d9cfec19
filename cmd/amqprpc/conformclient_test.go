package main

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

// TestConformClientVerdict: conform client exits 0 once a conformant
// client (the Python one) has run the client flow, printing a PASS line
// per check; with no client, -for ends it with every step failed and exit
// status 1.
func TestConformClientVerdict(t *testing.T) {
	url := brokertest.URL(t)
	t.Run("python", func(t *testing.T) {
		python := interoptest.Python(t)
		queue := brokertest.Queue(t, url, "conform-client-verdict")
		done := make(chan result, 1)
		go func() {
			var stdout, stderr bytes.Buffer
			code := run([]string{"conform", "client", "-url", url, "-for", "60s", queue}, nil, &stdout, &stderr)
			done <- result{code, stdout.String(), stderr.String()}
		}()
		conn, _ := brokertest.Conn(t, url)
		brokertest.WaitFor(t, 20*time.Second, "conform client consuming", func() bool { return brokertest.Consumers(conn, queue) == 1 })
		ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
		defer cancel()
		cmd := exec.CommandContext(ctx, python, filepath.Join(interoptest.Dir(t), "python", "client.py"), "--conformance", "--queue", queue)
		cmd.Env = append(os.Environ(), "AMQP_URL="+url)
		if out, err := cmd.CombinedOutput(); err != nil {
			t.Errorf("client.py --conformance: %v\n%s", err, out)
		}
		r := <-done
		if r.code != exitOK || !strings.Contains(r.stdout, "\nPASS  plain ") || !strings.HasSuffix(r.stdout, "\n10 passed, 0 failed\n") {
			t.Errorf("amqprpc conform client = exit %d, stdout %q, stderr %q; want exit 0, a PASS line per check", r.code, r.stdout, r.stderr)
		}
	})
	t.Run("no-client", func(t *testing.T) {
		queue := brokertest.Queue(t, url, "conform-client-idle")
		r := cli(t, url, nil, "conform", "client", "-for", "1s", queue)
		if r.code != exitFailed || !strings.Contains(r.stdout, `FAIL  done `) || !strings.HasSuffix(r.stdout, "\n0 passed, 10 failed\n") {
			t.Errorf("amqprpc conform client with no client = exit %d, stdout %q, stderr %q; want exit 1, every check failed", r.code, r.stdout, r.stderr)
		}
	})
}

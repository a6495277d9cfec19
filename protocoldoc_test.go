package amqprpc

import (
	"bytes"
	"context"
	"os"
	"os/exec"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/amqprpc/amqprpc/internal/brokertest"
)

// TestProtocolPythonSample runs the pika caller that docs/PROTOCOL.md §7
// prints, as printed but for the queue and the broker URL: it gets 42 from
// a Go server, and against a missing queue it fails at once, because it
// handles basic.return (§5), instead of waiting 30 s for its timeout.
func TestProtocolPythonSample(t *testing.T) {
	requirePika(t)
	doc, err := os.ReadFile("docs/PROTOCOL.md")
	if err != nil {
		t.Fatal(err)
	}
	m := regexp.MustCompile("(?s)A Python caller with pika.*?```python\n(.*?)```").FindSubmatch(doc)
	if m == nil {
		t.Fatal("docs/PROTOCOL.md has no Python caller")
	}
	const docQueue, docURL = `"arith"`, `"amqp://guest:guest@localhost:5672/"`
	sample := string(m[1])
	if strings.Count(sample, docQueue) != 1 || strings.Count(sample, docURL) != 1 {
		t.Fatalf("the Python caller no longer names the queue as %s and the broker as %s once each:\n%s", docQueue, docURL, sample)
	}
	url := brokertest.URL(t)
	run := func(t *testing.T, queue string) (stdout, stderr string, took time.Duration, err error) {
		t.Helper()
		code := strings.Replace(strings.Replace(sample, docQueue, strconv.Quote(queue), 1), docURL, strconv.Quote(url), 1)
		ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
		defer cancel()
		cmd := exec.CommandContext(ctx, systemPython, "-c", code)
		var out, errOut bytes.Buffer
		cmd.Stdout, cmd.Stderr = &out, &errOut
		start := time.Now()
		err = cmd.Run()
		return out.String(), errOut.String(), time.Since(start), err
	}

	t.Run("reply", func(t *testing.T) {
		queue := testQueue(t)
		startServer(t, newArith("doc"), queue)
		stdout, stderr, _, err := run(t, queue)
		if err != nil || stdout != "42\n" {
			t.Errorf("the Python caller printed %q, %v; want 42 (stderr %q)", stdout, err, stderr)
		}
	})
	t.Run("no-queue", func(t *testing.T) {
		queue := testQueue(t) // never declared
		stdout, stderr, took, err := run(t, queue)
		if err == nil || !strings.Contains(stderr, "no such queue") || stdout != "" || took > 10*time.Second {
			t.Errorf("the Python caller of a missing queue: %v after %v, stdout %q, stderr %q; want it to fail at once saying no such queue",
				err, took.Round(time.Millisecond), stdout, stderr)
		}
	})
}

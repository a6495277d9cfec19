package main

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net/rpc"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	amqp "github.com/rabbitmq/amqp091-go"

	"github.com/amqprpc/amqprpc"

	"github.com/amqprpc/amqprpc/internal/brokertest"
)

// TestMain fails the run when the tests leave goroutines behind: a command
// must release its connection and client.
func TestMain(m *testing.M) { brokertest.Main(m) }

// result is what one run of the command did.
type result struct {
	code           int
	stdout, stderr string
}

// cli runs the command in-process with stdin (nil: a terminal) and
// AMQP_URL set to url.
func cli(t *testing.T, url string, stdin *string, args ...string) result {
	t.Helper()
	t.Setenv("AMQP_URL", url)
	var in io.Reader
	if stdin != nil {
		in = strings.NewReader(*stdin)
	}
	var stdout, stderr bytes.Buffer
	code := run(args, in, &stdout, &stderr)
	return result{code, stdout.String(), stderr.String()}
}

// checkFailure checks an exit status, no output on stdout but what ping
// says about the queue, and one line on stderr holding want.
func checkFailure(t *testing.T, args []string, r result, code int, want string) {
	t.Helper()
	stdout := r.stdout
	if len(args) > 0 && args[0] == "ping" && strings.HasPrefix(stdout, "queue ") && strings.Count(stdout, "\n") == 1 {
		stdout = ""
	}
	if r.code != code || !strings.Contains(r.stderr, want) || strings.Count(r.stderr, "\n") != 1 || stdout != "" {
		t.Errorf("amqprpc %s = exit %d, stdout %q, stderr %q; want exit %d, no stdout, one line holding %q",
			strings.Join(args, " "), r.code, r.stdout, r.stderr, code, want)
	}
}

func TestHelp(t *testing.T) {
	for _, args := range [][]string{{"-h"}, {"call", "-h"}, {"ping", "-h"}} {
		r := cli(t, "", nil, args...)
		if r.code != exitOK || !strings.Contains(r.stdout, "Usage:") || !strings.Contains(r.stdout, "amqprpc ") || r.stderr != "" {
			t.Errorf("amqprpc %s = exit %d, stdout %q, stderr %q; want exit 0 and usage on stdout", strings.Join(args, " "), r.code, r.stdout, r.stderr)
		}
		if args[0] != "-h" && (!strings.Contains(r.stdout, "Example") || !strings.Contains(r.stdout, "-timeout")) {
			t.Errorf("amqprpc %s prints no example or flags:\n%s", strings.Join(args, " "), r.stdout)
		}
	}
	// The default URL shown never carries a password from $AMQP_URL.
	r := cli(t, "amqp://u:hidden-pw@host/", nil, "call", "-h")
	if strings.Contains(r.stdout, "hidden-pw") {
		t.Errorf("amqprpc call -h shows the password of $AMQP_URL:\n%s", r.stdout)
	}
}

// TestUsageErrors: mistakes on the command line end with status 2 and one
// line that says what to do, before any connection.
func TestUsageErrors(t *testing.T) {
	const unreachable = "amqp://guest:guest@127.0.0.1:1/"
	empty := ""
	for _, tt := range []struct {
		args  []string
		stdin *string
		want  string
	}{
		{nil, nil, "Usage:"},
		{[]string{"cal"}, nil, `unknown command "cal"`},
		{[]string{"call"}, nil, "want QUEUE SERVICE.METHOD [JSON], got 0 arguments"},
		{[]string{"call", "q"}, nil, "got 1 argument"},
		{[]string{"call", "q", "S.M", "{}", "extra"}, nil, "quote the JSON argument"},
		{[]string{"call", "q", "S.M", "{}", "-timeout", "1s"}, nil, "flags go before QUEUE"},
		{[]string{"call", "-nope", "q", "S.M", "{}"}, nil, "flag provided but not defined: -nope"},
		{[]string{"call", "-timeout", "soon", "q", "S.M", "{}"}, nil, "invalid value"},
		{[]string{"call", "-timeout", "0s", "q", "S.M", "{}"}, nil, "-timeout 0s: want at least 1ms"},
		{[]string{"call", "q", "Multiply", "{}"}, nil, `method "Multiply" is not SERVICE.METHOD`},
		{[]string{"call", "amq.gen-x", "S.M", "{}"}, nil, "reserved"},
		{[]string{"call", "q", "S.M", `{"A":`}, nil, "the argument is not JSON"},
		{[]string{"call", "q", "S.M", "hello"}, nil, `a string needs quotes`},
		{[]string{"call", "q", "S.M"}, nil, "pipe it on stdin"},
		{[]string{"call", "q", "S.M"}, &empty, "the JSON argument is empty"},
		{[]string{"call", "-url", "http//u:secret-pw@host", "q", "S.M", "1"}, nil, "-url is not an AMQP URL"},
		{[]string{"ping"}, nil, "want QUEUE, got 0 arguments"},
		{[]string{"ping", "a", "b"}, nil, "got 2 arguments"},
	} {
		r := cli(t, unreachable, tt.stdin, tt.args...)
		if tt.args == nil {
			if r.code != exitUsage || !strings.Contains(r.stderr, tt.want) {
				t.Errorf("amqprpc = exit %d, stderr %q; want exit 2 and usage", r.code, r.stderr)
			}
			continue
		}
		checkFailure(t, tt.args, r, exitUsage, tt.want)
		if strings.Contains(r.stderr, "secret-pw") {
			t.Errorf("amqprpc %s: stderr %q shows the password", strings.Join(tt.args, " "), r.stderr)
		}
	}
}

// brokerURL returns the test broker's URL; a missing broker fails the test
// under CI and skips it otherwise.
func brokerURL(t *testing.T) string {
	t.Helper()
	return brokertest.URL(t)
}

// testQueue returns a queue name unique to this run and deletes the queue
// when the test ends.
func testQueue(t *testing.T, u string) string {
	t.Helper()
	return brokertest.Queue(t, u, "cmd")
}

type Args struct{ A, B int }

type Quotient struct{ Quo, Rem int }

// Arith is net/rpc's example service, with a text method.
type Arith struct{ calls atomic.Int64 }

func (a *Arith) Multiply(args *Args, reply *int) error {
	a.calls.Add(1)
	*reply = args.A * args.B
	return nil
}

func (a *Arith) Divide(args *Args, quo *Quotient) error {
	a.calls.Add(1)
	if args.B == 0 {
		return errors.New("divide by zero")
	}
	*quo = Quotient{args.A / args.B, args.A % args.B}
	return nil
}

func (a *Arith) Upper(s string, r *string) error {
	a.calls.Add(1)
	*r = strings.ToUpper(s)
	return nil
}

// serve serves a new Arith on queue until the test ends.
func serve(t *testing.T, u, queue string, opts ...amqprpc.ServerOption) *Arith {
	t.Helper()
	arith := new(Arith)
	srv := rpc.NewServer()
	if err := srv.Register(arith); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done, ready := make(chan error, 1), make(chan struct{})
	opts = append(opts, amqprpc.WithReady(func() { close(ready) }))
	go func() { done <- amqprpc.Serve(ctx, srv, u, queue, opts...) }()
	t.Cleanup(func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("Serve = %v", err)
		}
	})
	select {
	case <-ready:
	case err := <-done:
		t.Fatalf("Serve = %v", err)
	}
	return arith
}

// TestCall: replies, service errors and refusals from a running server.
func TestCall(t *testing.T) {
	u := brokerURL(t)
	queue := testQueue(t, u)
	arith := serve(t, u, queue)
	divide := `{"A":17,"B":5}`
	for _, tt := range []struct {
		args  []string
		stdin *string
		code  int
		out   string // stdout, for a reply; else what stderr holds
	}{
		{[]string{"call", queue, "Arith.Multiply", `{"A":7,"B":8}`}, nil, exitOK, "56\n"},
		{[]string{"call", queue, "Arith.Divide"}, &divide, exitOK, `{"Quo":3,"Rem":2}` + "\n"},
		{[]string{"call", "-direct", "-timeout", "10s", queue, "Arith.Multiply", ` { "A" : 6, "B" : 7 } `}, nil, exitOK, "42\n"},
		{[]string{"call", "-text", queue, "Arith.Multiply", `{"A":2,"B":3}`}, nil, exitOK, "6\n"},
		{[]string{"call", "-text", queue, "Arith.Upper", `"hello"`}, nil, exitOK, `"HELLO"` + "\n"},
		// Text is ambiguous: a string reply that is JSON prints as that JSON.
		{[]string{"call", "-text", queue, "Arith.Upper", `"{\"a\":1}"`}, nil, exitOK, `{"A":1}` + "\n"},
		{[]string{"call", queue, "Arith.Upper", `"hello"`}, nil, exitOK, `"HELLO"` + "\n"},
		{[]string{"call", queue, "Arith.Divide", `{"A":1,"B":0}`}, nil, exitFailed, "Arith.Divide: divide by zero"},
		{[]string{"call", queue, "Arith.Nope", `{}`}, nil, exitFailed, "rpc: can't find method Arith.Nope; check SERVICE.METHOD"},
		{[]string{"call", queue, "Nope.Multiply", `{}`}, nil, exitFailed, "rpc: can't find service Nope.Multiply"},
		{[]string{"call", queue, "Arith.Multiply", `"six"`}, nil, exitFailed, "malformed request"},
		{[]string{"call", queue, "", `{"A":1,"B":2}`}, nil, exitFailed, "no default method"},
	} {
		r := cli(t, u, tt.stdin, tt.args...)
		if tt.code == exitOK {
			if r.code != exitOK || r.stdout != tt.out || r.stderr != "" {
				t.Errorf("amqprpc %s = exit %d, stdout %q, stderr %q; want exit 0, stdout %q", strings.Join(tt.args, " "), r.code, r.stdout, r.stderr, tt.out)
			}
			continue
		}
		checkFailure(t, tt.args, r, tt.code, tt.out)
	}

	// ping reaches the server's codec, never the service.
	before := arith.calls.Load()
	for _, args := range [][]string{{"ping", queue}, {"ping", "-direct", queue}} {
		r := cli(t, u, nil, args...)
		want := fmt.Sprintf("queue %q: 1 consumer, 0 requests waiting\nping: an amqprpc server answered in ", queue)
		if r.code != exitOK || !strings.HasPrefix(r.stdout, want) || r.stderr != "" {
			t.Errorf("amqprpc %s = exit %d, stdout %q, stderr %q; want exit 0, stdout starting %q", strings.Join(args, " "), r.code, r.stdout, r.stderr, want)
		}
	}
	if n := arith.calls.Load() - before; n != 0 {
		t.Errorf("ping ran %d service calls; want 0", n)
	}
}

// TestCallDefaultMethod: an empty method sends no type, for a server's
// default method, as RabbitMQ's tutorial clients do with -text.
func TestCallDefaultMethod(t *testing.T) {
	u := brokerURL(t)
	queue := testQueue(t, u)
	serve(t, u, queue, amqprpc.WithDefaultMethod("Arith.Divide"))
	for _, tt := range []struct {
		args []string
		code int
		out  string
	}{
		{[]string{"call", queue, "", `{"A":9,"B":2}`}, exitOK, `{"Quo":4,"Rem":1}` + "\n"},
		{[]string{"call", "-text", queue, "", `{"A":9,"B":2}`}, exitOK, `{"Quo":4,"Rem":1}` + "\n"},
		{[]string{"call", queue, "", `{"A":9,"B":0}`}, exitFailed, "the default method: divide by zero"},
		{[]string{"call", "-text", queue, "", `"nine"`}, exitFailed, "malformed request"},
	} {
		r := cli(t, u, nil, tt.args...)
		if tt.code == exitOK {
			if r.code != exitOK || r.stdout != tt.out || r.stderr != "" {
				t.Errorf("amqprpc %s = exit %d, stdout %q, stderr %q; want exit 0, stdout %q", strings.Join(tt.args, " "), r.code, r.stdout, r.stderr, tt.out)
			}
			continue
		}
		checkFailure(t, tt.args, r, tt.code, tt.out)
	}
}

// TestTransitFailures: calls that fail on the way end with status 3 and a
// line that says why, and never show the password.
func TestTransitFailures(t *testing.T) {
	u := brokerURL(t)
	// The broker's URL with another password, and at host when not "".
	other := func(pw, host string) string {
		p, err := url.Parse(u)
		if err != nil {
			t.Fatal(err)
		}
		p.User = url.UserPassword(p.User.Username(), pw)
		if host != "" {
			p.Host = host
		}
		return p.String()
	}
	refused := other("refused-pw", "127.0.0.1:1") // nothing listens on port 1

	missing := testQueue(t, u)
	idle := testQueue(t, u) // exists, with no consumer
	conn, err := amqp.Dial(u)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	ch, err := conn.Channel()
	if err != nil {
		t.Fatal(err)
	}
	if _, err := ch.QueueDeclare(idle, false, false, false, false, nil); err != nil {
		t.Fatal(err)
	}

	for _, tt := range []struct {
		url  string
		args []string
		want string
	}{
		{u, []string{"call", missing, "Arith.Multiply", `{"A":1,"B":2}`}, `no such queue: "` + missing + `"`},
		{u, []string{"ping", missing}, `no queue "` + missing + `" on the broker`},
		{u, []string{"call", "-timeout", "300ms", idle, "Arith.Multiply", `{"A":1,"B":2}`}, "call timed out"},
		{u, []string{"ping", idle}, "nothing consumes queue"},
		{refused, []string{"call", "never-reached", "Arith.Multiply", "{}"}, "connection refused; is the broker running"},
		{refused, []string{"ping", "never-reached"}, "connection refused"},
		{other("wrong-pw", ""), []string{"call", "never-reached", "Arith.Multiply", "{}"}, "check the user name and password"},
	} {
		r := cli(t, tt.url, nil, tt.args...)
		checkFailure(t, tt.args, r, exitTransit, tt.want)
		for _, pw := range []string{"refused-pw", "wrong-pw"} {
			if strings.Contains(r.stderr, pw) {
				t.Errorf("amqprpc %s: stderr %q shows the password", strings.Join(tt.args, " "), r.stderr)
			}
		}
	}
	// The request that timed out expires in the queue: nothing runs it
	// later.
	for deadline := time.Now().Add(10 * time.Second); ; {
		q, err := ch.QueueDeclarePassive(idle, false, false, false, false, nil)
		if err != nil {
			t.Fatalf("QueueDeclarePassive(%q) = %v", idle, err)
		}
		if q.Messages == 0 {
			break
		}
		if time.Now().After(deadline) {
			t.Errorf("queue %q holds %d messages 10s after the call timed out; want 0 (expired)", idle, q.Messages)
			break
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// TestBinary builds the command and runs it as a user would: the argument
// on stdin, the exit status of the process.
func TestBinary(t *testing.T) {
	u := brokerURL(t)
	q := testQueue(t, u)
	serve(t, u, q)
	bin := filepath.Join(t.TempDir(), "amqprpc")
	if out, err := exec.Command("go", "build", "-o", bin, ".").CombinedOutput(); err != nil {
		t.Fatalf("go build: %v\n%s", err, out)
	}
	for _, tt := range []struct {
		stdin, method string
		code          int
		stdout        string
	}{
		{`{"A":7,"B":8}`, "Arith.Multiply", 0, "56\n"},
		{`{"A":1,"B":0}`, "Arith.Divide", 1, ""},
	} {
		cmd := exec.Command(bin, "call", q, tt.method)
		cmd.Env = append(os.Environ(), "AMQP_URL="+u)
		cmd.Stdin = strings.NewReader(tt.stdin)
		var stdout, stderr bytes.Buffer
		cmd.Stdout, cmd.Stderr = &stdout, &stderr
		err := cmd.Run()
		code := 0
		var ee *exec.ExitError
		if errors.As(err, &ee) {
			code = ee.ExitCode()
		} else if err != nil {
			t.Fatal(err)
		}
		if code != tt.code || stdout.String() != tt.stdout {
			t.Errorf("echo %s | amqprpc call %s = exit %d, stdout %q, stderr %q; want exit %d, stdout %q", tt.stdin, tt.method, code, stdout.String(), stderr.String(), tt.code, tt.stdout)
		}
	}
}

package amqprpc

// The contract of RabbitMQ's RPC tutorial (a Fibonacci service: the number
// as text in, the result as text out, reply_to and correlation_id) against
// amqprpc, with tutorial-style programs of our own in examples/interop:
// clients in Go (gotutorial, text/plain), Python (pika), Node (amqplib,
// direct reply-to), Java (Debian's librabbitmq-client-java), Ruby (Bunny,
// application/octet-stream) and PHP (php-amqplib) calling an amqprpc
// server with a default method; and an amqprpc client calling
// tutorial-style servers in Go (replies text/plain), Python, Ruby (replies
// application/octet-stream) and PHP. Each test
// uses a queue of its own rather than the tutorial's rpc_queue.
// scripts/install-interop-deps.sh installs the tools; without them the
// tests skip, or fail when CI is set.

import (
	"bufio"
	"bytes"
	"context"
	"fmt"
	"net/rpc"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/amqprpc/amqprpc/codec"
	"github.com/amqprpc/amqprpc/examples/interop/gotutorial"
	"github.com/amqprpc/amqprpc/internal/brokertest"
	"github.com/amqprpc/amqprpc/internal/interoptest"
)

var (
	fibClientPy   = filepath.Join(interopDir, "python", "fib_client.py")
	fibServerPy   = filepath.Join(interopDir, "python", "fib_server.py")
	fibClientJS   = filepath.Join(nodeDir, "fib_client.js")
	fibClientJava = filepath.Join(interopDir, "java", "FibClient.java")
	fibClientRuby = filepath.Join(interopDir, "ruby", "fib_client.rb")
	fibServerRuby = filepath.Join(interopDir, "ruby", "fib_server.rb")
	fibClientPHP  = filepath.Join(interopDir, "php", "fib_client.php")
	fibServerPHP  = filepath.Join(interopDir, "php", "fib_server.php")
)

// tutorialNumbers are the arguments each client sends.
var tutorialNumbers = []int{0, 1, 2, 10, 30, 70} // fib(70) still fits a JavaScript number

// Fibonacci is the tutorial's service written for net/rpc.
type Fibonacci struct{}

// Compute sets r to the n-th Fibonacci number.
func (*Fibonacci) Compute(n int, r *int) error {
	if n < 0 || n > 92 {
		return fmt.Errorf("fibonacci: want n from 0 to 92, got %d", n)
	}
	*r = fib(n)
	return nil
}

func fib(n int) int {
	a, b := 0, 1
	for range n {
		a, b = b, a+b
	}
	return a
}

// startFibServer serves Fibonacci on queue, as the method for requests
// without a type, until the test ends.
func startFibServer(t *testing.T, queue string) {
	t.Helper()
	srv := rpc.NewServer()
	if err := srv.Register(new(Fibonacci)); err != nil {
		t.Fatal(err)
	}
	url := brokertest.URL(t)
	s := brokertest.Serve(t, func(ctx context.Context) error {
		return Serve(ctx, srv, url, queue, WithDefaultMethod("Fibonacci.Compute"))
	})
	brokertest.WaitForConsumers(t, url, queue, 1, s)
}

// TestTutorialClients: tutorial-style clients in six languages call an
// amqprpc server that has a default method.
func TestTutorialClients(t *testing.T) {
	url, queue := brokertest.URL(t), testQueue(t)
	startFibServer(t, queue)
	args := make([]string, len(tutorialNumbers))
	for i, n := range tutorialNumbers {
		args[i] = strconv.Itoa(n)
	}

	t.Run("go", func(t *testing.T) {
		t.Parallel()
		for _, n := range tutorialNumbers {
			ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
			got, err := gotutorial.Fib(ctx, url, queue, n)
			cancel()
			if err != nil || got != fib(n) {
				t.Errorf("gotutorial.Fib(%d) = %d, %v; want %d, nil", n, got, err, fib(n))
			}
		}
	})
	t.Run("python", func(t *testing.T) {
		t.Parallel()
		requirePika(t)
		runFibClient(t, url, append([]string{systemPython, fibClientPy, "--queue", queue}, args...)...)
	})
	t.Run("node", func(t *testing.T) {
		t.Parallel()
		node := requireNode(t)
		runFibClient(t, url, append([]string{node, fibClientJS, "--queue", queue}, args...)...)
	})
	t.Run("java", func(t *testing.T) {
		t.Parallel()
		classpath := compileJava(t, fibClientJava)
		// 32 calls in a row, each with a reply queue of its own.
		var javaArgs []string
		for n := range 32 {
			javaArgs = append(javaArgs, strconv.Itoa(n))
		}
		runFibClient(t, url, append([]string{"java", "-cp", classpath, "FibClient", queue}, javaArgs...)...)
	})
	t.Run("ruby", func(t *testing.T) {
		t.Parallel()
		runFibClient(t, url, append([]string{interoptest.Ruby(t), fibClientRuby, "--queue", queue}, args...)...)
	})
	t.Run("php", func(t *testing.T) {
		t.Parallel()
		runFibClient(t, url, append([]string{interoptest.PHP(t), fibClientPHP, "--queue", queue}, args...)...)
	})
}

// runFibClient runs a client program and checks that it printed
// "fib(N) = V" for every N it was given, in order, and exited 0.
func runFibClient(t *testing.T, url string, argv ...string) {
	t.Helper()
	var want []string
	for _, a := range argv {
		if n, err := strconv.Atoi(a); err == nil {
			want = append(want, fmt.Sprintf("fib(%d) = %d", n, fib(n)))
		}
	}
	ctx, cancel := context.WithTimeout(context.Background(), 90*time.Second)
	defer cancel()
	cmd := exec.CommandContext(ctx, argv[0], argv[1:]...)
	cmd.Env = append(os.Environ(), "AMQP_URL="+url)
	cmd.WaitDelay = 5 * time.Second
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	start := time.Now()
	err := cmd.Run()
	t.Logf("%s ran %v", filepath.Base(argv[0]), time.Since(start).Round(time.Millisecond))
	if stderr.Len() > 0 {
		t.Logf("stderr:\n%s", stderr.String())
	}
	if err != nil {
		t.Errorf("%s: %v; want exit status 0", strings.Join(argv[:2], " "), err)
	}
	var got []string
	sc := bufio.NewScanner(&stdout)
	for sc.Scan() {
		got = append(got, sc.Text())
	}
	if strings.Join(got, "\n") != strings.Join(want, "\n") {
		t.Errorf("output:\n%s\nwant:\n%s", strings.Join(got, "\n"), strings.Join(want, "\n"))
	}
}

// compileJava compiles a Java program against the RabbitMQ Java client and
// returns the classpath to run it with.
func compileJava(t *testing.T, src string) string {
	t.Helper()
	for _, tool := range []string{"javac", "java"} {
		if _, err := exec.LookPath(tool); err != nil {
			missingTool(t, tool+" is not installed ("+err.Error()+")")
		}
	}
	jars := javaClientJars(t)
	dir := t.TempDir()
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	out, err := exec.CommandContext(ctx, "javac", "-cp", strings.Join(jars, ":"), "-d", dir, src).CombinedOutput()
	if err != nil {
		t.Fatalf("javac %s: %v\n%s", src, err, out)
	}
	return strings.Join(append(jars, dir), ":")
}

// javaClientJars finds the jar of Debian's librabbitmq-client-java, and the
// slf4j API it logs through (with the no-op binding, when present, so that
// slf4j does not warn on stderr).
func javaClientJars(t *testing.T) []string {
	t.Helper()
	client := "/usr/share/java/amqp-client.jar"
	if out, err := exec.Command("dpkg", "-L", "librabbitmq-client-java").Output(); err == nil {
		for _, l := range strings.Split(string(out), "\n") {
			if strings.HasPrefix(l, "/usr/share/java/") && strings.HasSuffix(l, ".jar") {
				client = l
				break
			}
		}
	}
	if _, err := os.Stat(client); err != nil {
		missingTool(t, "the RabbitMQ Java client jar is missing ("+err.Error()+"); it comes with Debian's librabbitmq-client-java")
	}
	jars := []string{client}
	for _, j := range []string{"/usr/share/java/slf4j-api.jar", "/usr/share/java/slf4j-nop.jar"} {
		if _, err := os.Stat(j); err == nil {
			jars = append(jars, j)
		}
	}
	return jars
}

// TestTutorialServers: an amqprpc client calls tutorial-style servers, in
// JSON and in text, with a private reply queue and with direct reply-to.
func TestTutorialServers(t *testing.T) {
	t.Run("go", func(t *testing.T) {
		url, queue := brokertest.URL(t), testQueue(t)
		ctx, cancel := context.WithCancel(context.Background())
		done := make(chan error, 1)
		ready := make(chan struct{})
		go func() { done <- gotutorial.Serve(ctx, url, queue, func() { close(ready) }) }()
		t.Cleanup(func() {
			cancel()
			if err := <-done; err != nil {
				t.Errorf("gotutorial.Serve = %v", err)
			}
		})
		select {
		case <-ready:
		case err := <-done:
			t.Fatalf("gotutorial.Serve = %v", err)
		case <-time.After(10 * time.Second):
			t.Fatal("gotutorial.Serve did not consume within 10s")
		}
		callTutorialServer(t, queue)
		// Its replies are text/plain: a string reply variable takes the
		// text as it came.
		client := dial(t, queue, WithEncoding(codec.JSON))
		var s string
		if err := client.Call("Fibonacci.Compute", 30, &s); err != nil || s != "832040" {
			t.Errorf("Call(Fibonacci.Compute, 30) into a string = %q, %v; want \"832040\", nil", s, err)
		}
	})
	t.Run("python", func(t *testing.T) {
		requirePika(t)
		url, queue := brokertest.URL(t), testQueue(t)
		startPythonScript(t, url, fibServerPy, "--queue", queue)
		callTutorialServer(t, queue)
	})
	t.Run("ruby", func(t *testing.T) {
		url, queue := brokertest.URL(t), testQueue(t)
		interoptest.StartServer(t, url, interoptest.Ruby(t), fibServerRuby, "--queue", queue)
		callTutorialServer(t, queue)
	})
	t.Run("php", func(t *testing.T) {
		url, queue := brokertest.URL(t), testQueue(t)
		interoptest.StartServer(t, url, interoptest.PHP(t), fibServerPHP, "--queue", queue)
		callTutorialServer(t, queue)
	})
}

// callTutorialServer makes the amqprpc client's calls to a Fibonacci
// server that ignores the type and replies the number as text.
func callTutorialServer(t *testing.T, queue string) {
	t.Helper()
	for _, enc := range []codec.Encoding{codec.JSON, codec.Text} {
		t.Run(enc.String(), func(t *testing.T) {
			replyModes(t, func(t *testing.T, mode ClientOption) {
				client := dial(t, queue, WithEncoding(enc), WithCallTimeout(10*time.Second), mode)
				for _, n := range tutorialNumbers {
					var got int
					if err := client.Call("Fibonacci.Compute", n, &got); err != nil || got != fib(n) {
						t.Errorf("Call(Fibonacci.Compute, %d) = %d, %v; want %d, nil", n, got, err, fib(n))
					}
				}
			})
		})
	}
	// A gob request is not text: the server cannot read it, and the call
	// fails, by timeout at worst. (A server that answers it with text that
	// does not fit an int, as the Ruby one does, fails it as a reply that
	// does not fit: see the README's Errors section.)
	client := dial(t, queue, WithCallTimeout(2*time.Second))
	var got int
	if err := client.Call("Fibonacci.Compute", 7, &got); err == nil {
		t.Errorf("gob Call to a tutorial server = %d, nil; want a failed call", got)
	}
}

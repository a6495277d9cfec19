// Package interoptest runs the programs of examples/interop (Python, Node,
// Java, Ruby and PHP) from tests: it finds their interpreters and client
// libraries, failing the test under CI when one is missing and skipping it
// otherwise, and starts a server program until the test ends.
// scripts/install-interop-deps.sh installs everything it looks for.
package interoptest

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

// SystemPython is the interpreter Debian's python3-pika installs for; a
// python3 earlier on PATH (pyenv, a venv) does not see it.
const SystemPython = "/usr/bin/python3"

// phpAmqplib is where Debian's php-amqplib puts its autoloader.
const phpAmqplib = "/usr/share/php/PhpAmqpLib/autoload.php"

// Dir returns examples/interop, found from the test's working directory
// (the directory of the package under test) up.
func Dir(t testing.TB) string {
	t.Helper()
	dir, err := os.Getwd()
	if err != nil {
		t.Fatal(err)
	}
	for {
		if _, err := os.Stat(filepath.Join(dir, "examples", "interop", "README.md")); err == nil {
			return filepath.Join(dir, "examples", "interop")
		}
		parent := filepath.Dir(dir)
		if parent == dir {
			t.Fatal("no examples/interop above the test's directory")
		}
		dir = parent
	}
}

// Missing fails the test under CI and skips it otherwise.
func Missing(t testing.TB, what string) {
	t.Helper()
	brokertest.Missing(t, what, "run scripts/install-interop-deps.sh as root (or `make test`) to install the interop tools")
}

// try runs a command that shows whether a tool works, within 30 s.
func try(t testing.TB, what string, argv ...string) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if out, err := exec.CommandContext(ctx, argv[0], argv[1:]...).CombinedOutput(); err != nil {
		Missing(t, fmt.Sprintf("%s (%s: %v: %s)", what, strings.Join(argv, " "), err, bytes.TrimSpace(out)))
	}
}

// Python returns the system Python once it imports pika.
func Python(t testing.TB) string {
	t.Helper()
	try(t, SystemPython+" cannot import pika", SystemPython, "-c", "import pika")
	return SystemPython
}

// Node returns node's path once amqplib is installed beside the Node
// programs.
func Node(t testing.TB) string {
	t.Helper()
	node, err := exec.LookPath("node")
	if err != nil {
		Missing(t, "node is not installed ("+err.Error()+")")
	}
	if _, err := os.Stat(filepath.Join(Dir(t), "node", "node_modules", "amqplib", "package.json")); err != nil {
		Missing(t, fmt.Sprintf("amqplib is not installed in examples/interop/node/node_modules (%v)", err))
	}
	return node
}

// Ruby returns ruby's path once it loads Bunny (Debian's ruby-bunny).
func Ruby(t testing.TB) string {
	t.Helper()
	ruby, err := exec.LookPath("ruby")
	if err != nil {
		Missing(t, "ruby is not installed ("+err.Error()+")")
	}
	try(t, "ruby cannot load Bunny (Debian's ruby-bunny)", ruby, "-e", "require 'bunny'")
	return ruby
}

// PHP returns php's path once Debian's php-amqplib is installed.
func PHP(t testing.TB) string {
	t.Helper()
	php, err := exec.LookPath("php")
	if err != nil {
		Missing(t, "php is not installed ("+err.Error()+")")
	}
	if _, err := os.Stat(phpAmqplib); err != nil {
		Missing(t, fmt.Sprintf("php-amqplib is not installed (%v)", err))
	}
	return php
}

// StartServer starts a server program that prints a line starting READY
// once it consumes, with AMQP_URL set to url, and waits for that line. When
// the test ends it stops the program with SIGTERM, failing the test unless
// it then exits 0 within 10 s.
func StartServer(t testing.TB, url string, argv ...string) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
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
	ready := make(chan string, 1)
	go func() {
		sc := bufio.NewScanner(stdout)
		if sc.Scan() {
			ready <- sc.Text()
		}
		close(ready)
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
	case line := <-ready:
		if !strings.HasPrefix(line, "READY") {
			t.Fatalf("%s printed %q, not READY", argv[1], line)
		}
	case <-time.After(20 * time.Second):
		t.Fatalf("%s printed no READY within 20s", argv[1])
	}
}

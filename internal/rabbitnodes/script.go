// Package rabbitnodes starts RabbitMQ nodes and clusters of a test's own,
// apart from the shared broker, for the fault tests: it picks their ports
// and runs the scripts that manage them (scripts/rabbitmq-node.sh,
// scripts/rabbitmq-cluster.sh). It knows nothing of amqprpc, so that the
// root package's own tests can import it, and so can the tests of the
// repository's other modules.
package rabbitnodes

import (
	"bytes"
	"context"
	"fmt"
	"math/rand/v2"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"
)

// Ports are picked below Linux's ephemeral range (32768-60999), so that no
// outgoing connection takes one between the pick and the node's bind, and
// above 25672-25999, the distribution ports of nodes on 5672-5999 (the
// shared broker, hand-made clusters).
const (
	portMin = 28000
	portMax = 32700
)

// portsUsed holds every port handed to a node of this test binary, so that
// nodes starting at the same time never pick the same one: a port is free
// until its node binds it, seconds later.
var portsUsed struct {
	mu    sync.Mutex // guards ports
	ports map[int]bool
}

// PickPorts returns n distinct ports free on 127.0.0.1 and not handed out
// before in this test binary.
func PickPorts(t testing.TB, n int) []int {
	t.Helper()
	portsUsed.mu.Lock()
	defer portsUsed.mu.Unlock()
	if portsUsed.ports == nil {
		portsUsed.ports = make(map[int]bool)
	}
	var ports []int
	for tries := 0; len(ports) < n; tries++ {
		if tries > 1000 {
			t.Fatalf("no %d free ports in %d-%d on 127.0.0.1", n, portMin, portMax)
		}
		p := portMin + rand.IntN(portMax-portMin)
		if portsUsed.ports[p] {
			continue
		}
		ln, err := net.Listen("tcp", net.JoinHostPort("127.0.0.1", strconv.Itoa(p)))
		if err != nil {
			continue
		}
		ln.Close()
		portsUsed.ports[p] = true
		ports = append(ports, p)
	}
	return ports
}

// RunScript runs a node or cluster script with args and env added to this
// process's, bounded by timeout, and returns its standard output and error.
// Should this binary die without running its cleanups (a test timeout, a
// signal), the script's watchdogs stop what it started.
func RunScript(timeout time.Duration, script string, env []string, args ...string) (stdout, stderr string, err error) {
	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	defer cancel()
	cmd := exec.CommandContext(ctx, "bash", append([]string{script}, args...)...)
	cmd.Env = append(append(os.Environ(), env...), "PRIVNODE_OWNER_PID="+strconv.Itoa(os.Getpid()))
	// Should the script hang past its own time limits, its children might
	// keep the output pipes open: stop waiting for them too.
	cmd.WaitDelay = 5 * time.Second
	var out, errOut bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &errOut
	err = cmd.Run()
	if ctx.Err() != nil {
		err = fmt.Errorf("%w (after %v)", ctx.Err(), timeout)
	}
	return strings.TrimSpace(out.String()), strings.TrimSpace(errOut.String()), err
}

// Script returns the absolute path of the repository's script named name
// (rabbitmq-cluster.sh, say), found in the scripts directory of the
// working directory or of the nearest directory above it that has one: a
// test runs in its package's directory, anywhere in the repository.
func Script(t testing.TB, name string) string {
	t.Helper()
	dir, err := os.Getwd()
	if err != nil {
		t.Fatalf("os.Getwd = %v", err)
	}
	for {
		path := filepath.Join(dir, "scripts", name)
		if _, err := os.Stat(path); err == nil {
			return path
		}
		parent := filepath.Dir(dir)
		if parent == dir {
			t.Fatalf("scripts/%s not found in or above the working directory", name)
		}
		dir = parent
	}
}

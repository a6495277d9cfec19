package amqprpc

import (
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/amqprpc/amqprpc/internal/brokertest"
	"github.com/amqprpc/amqprpc/internal/rabbitnodes"
)

// A privateNode is a RabbitMQ node of the test's own, apart from the shared
// broker: its own node name, ports, HOME and cookie, epmd and data directory,
// all on 127.0.0.1. Fault tests stop, kill and restart it at will.
// scripts/rabbitmq-node.sh does the work; this type drives it.
type privateNode struct {
	name     string // node name without "@localhost"
	dir      string // config, data and logs, under t.TempDir()
	script   string // absolute path of scripts/rabbitmq-node.sh
	amqpPort int
	tlsPort  int // 0 without TLS
	distPort int
	epmdPort int
	mtls     bool
}

const (
	// privateNodeScript is the script that manages a node, relative to the
	// package directory, where go test runs.
	privateNodeScript = "scripts/rabbitmq-node.sh"
	// privateNodeBootTimeout bounds a start or restart; the script gives up
	// after its own 90 s (PRIVNODE_BOOT_TIMEOUT) first.
	privateNodeBootTimeout = 2 * time.Minute
	// privateNodeCtlTimeout bounds every other script call; the script
	// bounds each rabbitmqctl call by 60 s itself.
	privateNodeCtlTimeout = 90 * time.Second
)

// privateNodeOption configures startPrivateNode.
type privateNodeOption func(*privateNodeConfig)

type privateNodeConfig struct {
	caPEM, certPEM, keyPEM []byte // TLS listener when certPEM is set
	requireClientCert      bool
}

// privateNodeTLS gives the node a TLS listener (see TLSURL) serving certPEM
// with keyPEM; with requireClientCert, it accepts only clients presenting a
// certificate signed by caPEM. Without this option the node has no TLS.
func privateNodeTLS(caPEM, certPEM, keyPEM []byte, requireClientCert bool) privateNodeOption {
	return func(c *privateNodeConfig) {
		c.caPEM, c.certPEM, c.keyPEM = caPEM, certPEM, keyPEM
		c.requireClientCert = requireClientCert
	}
}

// startPrivateNode starts a fresh node (about 10 s on two cores) and stops
// it, removing its files, when the test ends, whether it passed or not. It
// skips the test when RabbitMQ is not installed, or fails it when CI is set.
func startPrivateNode(t testing.TB, opts ...privateNodeOption) *privateNode {
	t.Helper()
	brokertest.SkipShort(t, "a private RabbitMQ node")
	var cfg privateNodeConfig
	for _, o := range opts {
		o(&cfg)
	}
	script, err := filepath.Abs(privateNodeScript)
	if err != nil {
		t.Fatalf("filepath.Abs(%q) = %v", privateNodeScript, err)
	}
	if reason := privateNodeUnavailable(script); reason != "" {
		if os.Getenv("CI") != "" {
			t.Fatalf("CI is set and a private RabbitMQ node cannot run: %s", reason)
		}
		t.Skipf("a private RabbitMQ node cannot run: %s; set CI=1 to make this a failure", reason)
	}
	ports := rabbitnodes.PickPorts(t, 4)
	n := &privateNode{
		name:     fmt.Sprintf("amqprpc-%d-%d", os.Getpid(), ports[0]),
		dir:      t.TempDir(), // before the Cleanup below, so removed after the stop
		script:   script,
		amqpPort: ports[0],
		distPort: ports[1],
		epmdPort: ports[2],
		mtls:     cfg.requireClientCert,
	}
	args := []string{"start", n.name, strconv.Itoa(n.amqpPort), n.dir}
	if cfg.certPEM != nil {
		n.tlsPort = ports[3]
		n.writeTLSFiles(t, cfg)
		args = append(args, strconv.Itoa(n.tlsPort))
	}
	// Registered before the start, so that a node that failed to boot is
	// cleaned up too.
	t.Cleanup(func() {
		if _, stderr, err := n.run(privateNodeCtlTimeout, "stop", n.dir); err != nil {
			t.Errorf("stopping private node %s: %v\n%s", n.name, err, stderr)
		}
	})
	begin := time.Now()
	if _, stderr, err := n.run(privateNodeBootTimeout, args...); err != nil {
		t.Fatalf("starting private node %s: %v\n%s", n.name, err, stderr)
	}
	t.Logf("private node %s@localhost up on 127.0.0.1:%d (TLS port %d) in %v",
		n.name, n.amqpPort, n.tlsPort, time.Since(begin).Round(time.Millisecond))
	return n
}

// privateNodeUnavailable says why no private node can run here, or "" when
// one can.
func privateNodeUnavailable(script string) string {
	if _, err := exec.LookPath("bash"); err != nil {
		return "bash not found"
	}
	if _, err := os.Stat(script); err != nil {
		return err.Error()
	}
	out, err := exec.Command("bash", script, "check").CombinedOutput()
	if err != nil {
		return strings.TrimSpace(string(out))
	}
	return ""
}

// writeTLSFiles puts the PEM files where the script expects them.
func (n *privateNode) writeTLSFiles(t testing.TB, cfg privateNodeConfig) {
	t.Helper()
	tlsDir := filepath.Join(n.dir, "tls")
	if err := os.Mkdir(tlsDir, 0o700); err != nil {
		t.Fatalf("os.Mkdir(%q) = %v", tlsDir, err)
	}
	for name, data := range map[string][]byte{
		"ca.pem":     cfg.caPEM,
		"server.pem": cfg.certPEM,
		"server.key": cfg.keyPEM,
	} {
		if err := os.WriteFile(filepath.Join(tlsDir, name), data, 0o600); err != nil {
			t.Fatalf("os.WriteFile(%q) = %v", name, err)
		}
	}
}

// run runs the script with args, bounded by timeout, and returns its
// standard output and error.
func (n *privateNode) run(timeout time.Duration, args ...string) (stdout, stderr string, err error) {
	env := []string{
		"PRIVNODE_DIST_PORT=" + strconv.Itoa(n.distPort),
		"PRIVNODE_EPMD_PORT=" + strconv.Itoa(n.epmdPort),
	}
	if n.mtls {
		env = append(env, "PRIVNODE_MTLS=1")
	}
	return rabbitnodes.RunScript(timeout, n.script, env, args...)
}

// do runs one script command against the node and fails the test if it
// fails.
func (n *privateNode) do(t testing.TB, timeout time.Duration, args ...string) string {
	t.Helper()
	out, stderr, err := n.run(timeout, args...)
	if err != nil {
		t.Fatalf("rabbitmq-node.sh %s (node %s): %v\n%s\n%s", strings.Join(args, " "), n.name, err, out, stderr)
	}
	return out
}

// Name returns the node's Erlang node name.
func (n *privateNode) Name() string { return n.name + "@localhost" }

// URL returns the node's AMQP URL, as guest, who may connect from loopback.
func (n *privateNode) URL() string {
	return fmt.Sprintf("amqp://guest:guest@127.0.0.1:%d/", n.amqpPort)
}

// TLSURL returns the node's AMQPS URL, as guest, or "" when the node has no
// TLS listener. The server certificate must name 127.0.0.1; to check the
// name localhost instead, set tls.Config.ServerName.
func (n *privateNode) TLSURL() string {
	if n.tlsPort == 0 {
		return ""
	}
	return fmt.Sprintf("amqps://guest:guest@127.0.0.1:%d/", n.tlsPort)
}

// AMQPAddr returns the host:port of the plain AMQP listener, for a
// tcpProxy to forward to.
func (n *privateNode) AMQPAddr() string {
	return net.JoinHostPort("127.0.0.1", strconv.Itoa(n.amqpPort))
}

// StopApp stops the RabbitMQ application but not the Erlang VM: clients see
// 320 CONNECTION_FORCED and new connections are refused until StartApp.
func (n *privateNode) StopApp(t testing.TB) {
	t.Helper()
	n.do(t, privateNodeCtlTimeout, "stop_app", n.dir)
}

// StartApp starts the application again after StopApp and returns once it
// accepts connections.
func (n *privateNode) StartApp(t testing.TB) {
	t.Helper()
	n.do(t, privateNodeCtlTimeout, "start_app", n.dir)
}

// Kill kills the node's Erlang VM with SIGKILL and returns once it is gone:
// clients see their connections reset.
func (n *privateNode) Kill(t testing.TB) {
	t.Helper()
	n.do(t, privateNodeCtlTimeout, "kill", n.dir)
}

// Restart boots the node again on its data directory, after Kill or Stop
// (stopping it first if it runs), and returns once it accepts connections.
func (n *privateNode) Restart(t testing.TB) {
	t.Helper()
	n.do(t, privateNodeBootTimeout, "restart", n.dir)
}

// Stop stops the node gracefully (SIGTERM) and its epmd. The test's cleanup
// does this anyway; Restart boots it again.
func (n *privateNode) Stop(t testing.TB) {
	t.Helper()
	n.do(t, privateNodeCtlTimeout, "stop", n.dir)
}

// Pid returns the pid of the node's Erlang VM, or 0 when it does not run.
func (n *privateNode) Pid(t testing.TB) int {
	t.Helper()
	out, _, err := n.run(privateNodeCtlTimeout, "pid", n.dir)
	if err != nil {
		return 0
	}
	pid, err := strconv.Atoi(out)
	if err != nil {
		t.Fatalf("rabbitmq-node.sh pid = %q; want a number", out)
	}
	return pid
}

// Ctl runs rabbitmqctl -q with args against the node and returns its
// output; it fails the test if rabbitmqctl fails. -q drops the banners but
// not the header row of list_* commands: pass --no-table-headers for rows
// only (tab-separated). RabbitMQ 3.10 knows no user_provided_name column:
// the name a client gives is in client_properties.
func (n *privateNode) Ctl(t testing.TB, args ...string) string {
	t.Helper()
	return n.do(t, privateNodeCtlTimeout, append([]string{"ctl", n.dir, "-q"}, args...)...)
}

// AddVhost adds a virtual host.
func (n *privateNode) AddVhost(t testing.TB, vhost string) {
	t.Helper()
	n.Ctl(t, "add_vhost", vhost)
}

// AddUser adds a user with password pass and gives it the configure, write
// and read permissions (regular expressions) on vhost. Failures do not show
// the password.
func (n *privateNode) AddUser(t testing.TB, user, pass, vhost, configure, write, read string) {
	t.Helper()
	if _, stderr, err := n.run(privateNodeCtlTimeout, "ctl", n.dir, "-q", "add_user", user, pass); err != nil {
		t.Fatalf("add_user %q on %s: %v\n%s", user, n.name, err, strings.ReplaceAll(stderr, pass, "***"))
	}
	n.Ctl(t, "set_permissions", "-p", vhost, user, configure, write, read)
}

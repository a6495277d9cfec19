package rabbitnodes

import (
	"fmt"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/amqprpc/amqprpc/internal/brokertest"
)

// A Cluster is a private RabbitMQ cluster of the tests' own, apart from
// the shared broker: three nodes on 127.0.0.1 with their own names, ports,
// data directories, Erlang cookie and epmd. scripts/rabbitmq-cluster.sh does
// the work; this type drives it. A cluster takes about 25 s to form on two
// cores, so a test starts one and its subtests share it.
type Cluster struct {
	name     string // node i is <name>-i@localhost
	dir      string // config, data and logs, under t.TempDir()
	script   string // absolute path of scripts/rabbitmq-cluster.sh
	epmdPort int
	Nodes    []*Node
}

// A Node is one node of a Cluster.
type Node struct {
	c        *Cluster
	Index    int // from 1, as the script counts
	AMQPPort int
	distPort int
	down     bool // killed, and not restarted since; owned by the test goroutine
}

const (
	// clusterStartTimeout bounds the start: the nodes boot at once (the
	// script gives each 90 s), then two join one after the other.
	clusterStartTimeout = 4 * time.Minute
	// clusterNodeTimeout bounds a restart and the wait until the node has
	// rejoined (90 s and 60 s in the script).
	clusterNodeTimeout = 3 * time.Minute
	// clusterCtlTimeout bounds other calls; the script bounds each CLI call
	// by 60 s.
	clusterCtlTimeout = 90 * time.Second
)

// StartCluster starts a cluster of n nodes and stops it, removing its files,
// when the test ends, whether it passed or not. Should the test binary die
// first, the script's watchdog stops it. It skips the test when RabbitMQ is
// not installed, or fails it when CI is set.
func StartCluster(t *testing.T, n int) *Cluster {
	t.Helper()
	brokertest.SkipShort(t, "a private RabbitMQ cluster")
	script := Script(t, "rabbitmq-cluster.sh")
	if out, err := exec.Command("bash", script, "check").CombinedOutput(); err != nil {
		reason := strings.TrimSpace(string(out))
		if reason == "" {
			reason = err.Error()
		}
		if os.Getenv("CI") != "" {
			t.Fatalf("CI is set and a private RabbitMQ cluster cannot run: %s", reason)
		}
		t.Skipf("a private RabbitMQ cluster cannot run: %s; set CI=1 to make this a failure", reason)
	}
	ports := PickPorts(t, 2*n+1)
	c := &Cluster{
		name:     fmt.Sprintf("amqprpc-cluster-%d", os.Getpid()),
		dir:      t.TempDir(), // before the Cleanup below, so removed after the stop
		script:   script,
		epmdPort: ports[2*n],
	}
	args := []string{"start", c.dir, c.name}
	for i := range n {
		nd := &Node{c: c, Index: i + 1, AMQPPort: ports[i], distPort: ports[n+i]}
		c.Nodes = append(c.Nodes, nd)
		args = append(args, strconv.Itoa(nd.AMQPPort))
	}
	// Registered before the start, so that a cluster that failed to form
	// is cleaned up too.
	t.Cleanup(func() {
		if _, stderr, err := c.run(clusterCtlTimeout, "stop", c.dir); err != nil {
			t.Errorf("stopping cluster %s: %v\n%s", c.name, err, stderr)
		}
	})
	begin := time.Now()
	if _, stderr, err := c.run(clusterStartTimeout, args...); err != nil {
		t.Fatalf("starting cluster %s: %v\n%s", c.name, err, stderr)
	}
	t.Logf("cluster %s of %d nodes formed on 127.0.0.1 ports %v in %v",
		c.name, n, ports[:n], time.Since(begin).Round(time.Millisecond))
	return c
}

// run runs the script with args, bounded by timeout, and returns its
// standard output and error.
func (c *Cluster) run(timeout time.Duration, args ...string) (stdout, stderr string, err error) {
	dist := make([]string, len(c.Nodes))
	for i, nd := range c.Nodes {
		dist[i] = strconv.Itoa(nd.distPort)
	}
	return RunScript(timeout, c.script, []string{
		"PRIVCLUSTER_EPMD_PORT=" + strconv.Itoa(c.epmdPort),
		"PRIVCLUSTER_DIST_PORTS=" + strings.Join(dist, " "),
	}, args...)
}

// do runs one script command and fails the test if it fails.
func (c *Cluster) do(t testing.TB, timeout time.Duration, args ...string) string {
	t.Helper()
	out, stderr, err := c.run(timeout, args...)
	if err != nil {
		t.Fatalf("rabbitmq-cluster.sh %s: %v\n%s\n%s", strings.Join(args, " "), err, out, stderr)
	}
	return out
}

// URLs returns the AMQP URL of every node, as guest, in node order.
func (c *Cluster) URLs() []string {
	urls := make([]string, len(c.Nodes))
	for i, nd := range c.Nodes {
		urls[i] = nd.URL()
	}
	return urls
}

// URLsFrom returns every node's URL, starting with node i's: what a client
// that should connect to node i first is given.
func (c *Cluster) URLsFrom(nd *Node) []string {
	urls := c.URLs()
	k := nd.Index - 1
	return append(urls[k:], urls[:k]...)
}

// up returns a node that runs, for CLI calls.
func (c *Cluster) up(t testing.TB) *Node {
	t.Helper()
	for _, nd := range c.Nodes {
		if !nd.down {
			return nd
		}
	}
	t.Fatalf("cluster %s: every node is down", c.name)
	return nil
}

// Ctl runs rabbitmqctl -q with args against a running node and returns its
// output; it fails the test if rabbitmqctl fails.
func (c *Cluster) Ctl(t testing.TB, args ...string) string {
	t.Helper()
	return c.up(t).Ctl(t, args...)
}

// CLI runs another of RabbitMQ's CLI tools (rabbitmq-queues,
// rabbitmq-upgrade, rabbitmq-diagnostics) with args against a running node.
func (c *Cluster) CLI(t testing.TB, tool string, args ...string) string {
	t.Helper()
	nd := c.up(t)
	return c.do(t, clusterCtlTimeout, append([]string{"cli", c.dir, strconv.Itoa(nd.Index), tool, "-q"}, args...)...)
}

// node returns the node an Erlang node name or pid names, or nil.
func (c *Cluster) node(erlang string) *Node {
	for _, nd := range c.Nodes {
		if strings.Contains(erlang, nd.Name()) {
			return nd
		}
	}
	return nil
}

// Leader returns the node that holds the leader of the quorum queue, or
// nil while it has none.
func (c *Cluster) Leader(t testing.TB, queue string) *Node {
	t.Helper()
	for _, line := range strings.Split(c.Ctl(t, "list_queues", "--no-table-headers", "name", "leader"), "\n") {
		if f := strings.Split(line, "\t"); len(f) == 2 && f[0] == queue {
			return c.node(f[1])
		}
	}
	return nil
}

// OnlineMembers returns how many members of the quorum queue are online.
func (c *Cluster) OnlineMembers(t testing.TB, queue string) int {
	t.Helper()
	for _, line := range strings.Split(c.Ctl(t, "list_queues", "--no-table-headers", "name", "online"), "\n") {
		if f := strings.Split(line, "\t"); len(f) == 2 && f[0] == queue {
			// [a@localhost, b@localhost]
			return strings.Count(f[1], "@")
		}
	}
	return 0
}

// Connections returns the node of each open connection, by the name its
// client gave it (WithConnectionName): RabbitMQ 3.10 lists the name among
// the client properties, and a connection's pid names its node.
func (c *Cluster) Connections(t testing.TB) map[string][]*Node {
	t.Helper()
	conns := map[string][]*Node{}
	for _, line := range strings.Split(c.Ctl(t, "list_connections", "--no-table-headers", "pid", "client_properties"), "\n") {
		pid, props, ok := strings.Cut(line, "\t")
		if !ok {
			continue
		}
		_, name, ok := strings.Cut(props, `{"connection_name","`)
		if name, _, ok2 := strings.Cut(name, `"}`); ok && ok2 {
			conns[name] = append(conns[name], c.node(pid))
		}
	}
	return conns
}

// CloseConnections has the broker close every connection named name, as
// rabbitmqctl close_connection does for an operator.
func (c *Cluster) CloseConnections(t testing.TB, name string) {
	t.Helper()
	n := 0
	for _, line := range strings.Split(c.Ctl(t, "list_connections", "--no-table-headers", "pid", "client_properties"), "\n") {
		pid, props, ok := strings.Cut(line, "\t")
		if ok && strings.Contains(props, `{"connection_name","`+name+`"}`) {
			if _, stderr, err := c.run(clusterCtlTimeout, "ctl", c.dir, strconv.Itoa(c.up(t).Index), "-q", "close_connection", pid, "closed by the cluster test"); err != nil {
				t.Logf("close_connection %s (%s): %v %s", pid, name, err, stderr)
			}
			n++
		}
	}
	if n == 0 {
		t.Fatalf("no connection named %q to close", name)
	}
}

// AwaitQuorumPlusOne waits until every member of the quorum queue is online
// and the cluster can lose any node without a quorum queue losing its
// quorum: what an operator waits for before restarting the next node.
func (c *Cluster) AwaitQuorumPlusOne(t testing.TB, queue string, within time.Duration) {
	t.Helper()
	deadline := time.Now().Add(within)
	for c.OnlineMembers(t, queue) < len(c.Nodes) {
		if time.Now().After(deadline) {
			t.Fatalf("quorum queue %q: fewer than %d members online after %v", queue, len(c.Nodes), within)
		}
		time.Sleep(100 * time.Millisecond) // polling the broker with a deadline
	}
	left := max(time.Until(deadline), time.Second)
	c.CLI(t, "rabbitmq-upgrade", "await_online_quorum_plus_one", "-t", strconv.Itoa(int(left.Seconds())))
}

// Name returns the node's Erlang node name.
func (nd *Node) Name() string { return fmt.Sprintf("%s-%d@localhost", nd.c.name, nd.Index) }

// Down reports whether the node was killed and not restarted since (or is
// restarting). Only the test's goroutine may ask.
func (nd *Node) Down() bool { return nd.down }

// String names the node for messages: node 2.
func (nd *Node) String() string {
	if nd == nil {
		return "no node"
	}
	return "node " + strconv.Itoa(nd.Index)
}

// URL returns the node's AMQP URL, as guest, who may connect from loopback.
func (nd *Node) URL() string {
	return fmt.Sprintf("amqp://guest:guest@127.0.0.1:%d/", nd.AMQPPort)
}

// Kill kills the node's Erlang VM with SIGKILL and returns once it is gone.
func (nd *Node) Kill(t testing.TB) {
	t.Helper()
	nd.c.do(t, clusterCtlTimeout, "kill", nd.c.dir, strconv.Itoa(nd.Index))
	nd.down = true
}

// Restart boots the node again on its data, stopping it gracefully first
// if it runs, and returns once every node sees every other running.
func (nd *Node) Restart(t testing.TB) {
	t.Helper()
	nd.down = true // while it restarts
	nd.c.do(t, clusterNodeTimeout, "restart", nd.c.dir, strconv.Itoa(nd.Index))
	nd.down = false
}

// Ctl runs rabbitmqctl -q with args against this node.
func (nd *Node) Ctl(t testing.TB, args ...string) string {
	t.Helper()
	return nd.c.do(t, clusterCtlTimeout, append([]string{"ctl", nd.c.dir, strconv.Itoa(nd.Index), "-q"}, args...)...)
}

package amqprpc_test

// Fault tests on a private three-node RabbitMQ cluster
// (internal/rabbitnodes), which TestCluster starts once for all its
// scenarios (about 3 minutes in all on two cores). The scenarios
// themselves are internal/faultrig's, which the redisstore module's
// TestCluster runs again with a reply store on Redis; their RELIABILITY and
// REDELIVERY lines are the README's cluster tables
// (scripts/reliability-table.sh).
//
//	CI=1 go test -race -count=1 -run TestCluster -v .
//	CI=1 go test -race -count=1 -run 'TestCluster/leader-killed' -v .
//
// AMQPRPC_CLUSTER_LOG=1 logs the clients' and servers' connection losses
// and reconnects to standard error.

import (
	"context"
	"fmt"
	"net/rpc"
	"testing"
	"time"

	"github.com/google/uuid"
	amqp "github.com/rabbitmq/amqp091-go"

	"github.com/amqprpc/amqprpc"
	"github.com/amqprpc/amqprpc/internal/faultrig"
	"github.com/amqprpc/amqprpc/internal/rabbitnodes"
)

// TestCluster runs the cluster scenarios without a reply store (kill -9 of
// the node holding the queue's leader, of a node with only a client, of a
// node with a server; a rolling restart of the three nodes with clients in
// both reply modes), and shows what a redelivered request carries, that
// permissions are the cluster's, and (make cluster-bench) what a quorum
// queue costs.
func TestCluster(t *testing.T) {
	c := rabbitnodes.StartCluster(t, 3)
	faultrig.Scenarios(t, c, nil, "")
	t.Run("delivery-count", func(t *testing.T) {
		testClusterDeliveryCount(t, c)
	})
	t.Run("permissions", func(t *testing.T) {
		testClusterPermissions(t, c)
	})
	t.Run("throughput", func(t *testing.T) {
		testClusterThroughput(t, c)
	})
}

// testClusterDeliveryCount shows what a request comes back with from a
// quorum queue after its consumer's channel went away without
// acknowledging it, as when a server's node dies: the redelivered flag, and
// x-delivery-count counting the returns (RabbitMQ 3.10; 4.x counts only
// some returns, see docs/CLUSTER.md).
func testClusterDeliveryCount(t *testing.T, c *rabbitnodes.Cluster) {
	conn, err := amqp.Dial(c.Nodes[1].URL())
	if err != nil {
		t.Fatalf("amqp.Dial(%v) = %v", c.Nodes[1], err)
	}
	defer conn.Close()
	ch, err := conn.Channel()
	if err != nil {
		t.Fatal(err)
	}
	queue := "cluster-delivery-count-" + uuid.NewString()[:8]
	if _, err := ch.QueueDeclare(queue, true, false, false, false, amqp.Table{"x-queue-type": "quorum"}); err != nil {
		t.Fatalf("QueueDeclare(%q, quorum) = %v", queue, err)
	}
	defer ch.QueueDelete(queue, false, false, false)
	if err := ch.Publish("", queue, false, false, amqp.Publishing{Body: []byte("request")}); err != nil {
		t.Fatal(err)
	}
	for returns := range 3 {
		consumer, err := conn.Channel()
		if err != nil {
			t.Fatal(err)
		}
		deliveries, err := consumer.Consume(queue, "", false, false, false, false, nil)
		if err != nil {
			t.Fatalf("Consume(%q) = %v", queue, err)
		}
		var d amqp.Delivery
		select {
		case d = <-deliveries:
		case <-time.After(10 * time.Second):
			t.Fatalf("delivery %d: nothing within 10s", returns+1)
		}
		count, has := d.Headers["x-delivery-count"]
		switch {
		case returns == 0 && (d.Redelivered || (has && fmt.Sprint(count) != "0")):
			t.Errorf("first delivery: redelivered %v, x-delivery-count %v; want false and none (or 0)", d.Redelivered, count)
		case returns > 0 && (!d.Redelivered || fmt.Sprint(count) != fmt.Sprint(returns)):
			t.Errorf("delivery after %d returns: redelivered %v, x-delivery-count %v; want true and %d", returns, d.Redelivered, count, returns)
		}
		consumer.Close() // unacknowledged: back to the queue
	}
}

// testClusterPermissions shows that users, vhosts and permissions are the
// cluster's, not a node's: made through node 2 alone, the least-privilege
// permissions of docs/SECURITY.md let a server on node 3 declare and serve
// a quorum queue and a client on node 1 call it, with private reply queues
// and with direct reply-to.
func testClusterPermissions(t *testing.T, c *rabbitnodes.Cluster) {
	const vhost = "cluster-rpc"
	n2 := c.Nodes[1]
	n2.Ctl(t, "add_vhost", vhost)
	t.Cleanup(func() { c.Ctl(t, "delete_vhost", vhost) })
	queue := "cluster-perm-" + uuid.NewString()[:8]
	users := []struct{ name, configure, write, read string }{
		{"rpc-server", "^" + queue + "$", `^amq\.default$`, "^" + queue + "$"},
		{"rpc-client", `^amq\.gen-.*`, `^amq\.default$`, `^amq\.gen-.*`},
		{"rpc-client-direct", "^$", `^amq\.default$`, "^$"},
	}
	for _, u := range users {
		n2.Ctl(t, "add_user", u.name, u.name+"-pw")
		n2.Ctl(t, "set_permissions", "-p", vhost, u.name, u.configure, u.write, u.read)
	}
	url := func(user string, nd *rabbitnodes.Node) string {
		return fmt.Sprintf("amqp://%s:%s-pw@127.0.0.1:%d/%s", user, user, nd.AMQPPort, vhost)
	}
	srv := rpc.NewServer()
	if err := srv.RegisterName("Cluster", faultrig.NewService()); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	ready := make(chan struct{})
	go func() {
		done <- amqprpc.Serve(ctx, srv, url("rpc-server", c.Nodes[2]), queue, amqprpc.WithQuorumQueue(), amqprpc.WithReady(func() { close(ready) }),
			amqprpc.WithURLs(url("rpc-server", c.Nodes[0]), url("rpc-server", n2)))
	}()
	defer func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("Serve = %v", err)
		}
	}()
	select {
	case <-ready:
	case err := <-done:
		t.Fatalf("Serve as rpc-server on node 3 = %v", err)
	case <-time.After(30 * time.Second):
		t.Fatal("Serve not ready within 30s")
	}
	for _, tc := range []struct {
		user string
		opts []amqprpc.ClientOption
	}{
		{"rpc-client", nil},
		{"rpc-client-direct", []amqprpc.ClientOption{amqprpc.WithDirectReplyTo()}},
	} {
		client, err := amqprpc.Dial(url(tc.user, c.Nodes[0]), queue, append(tc.opts, amqprpc.WithCallTimeout(faultrig.CallTimeout))...)
		if err != nil {
			t.Fatalf("Dial as %s on node 1 = %v", tc.user, err)
		}
		var got int
		if err := client.Call("Cluster.Work", &faultrig.Args{Caller: 1, Seq: 2}, &got); err != nil || got != faultrig.Key(1, 2) {
			t.Errorf("Call as %s = %d, %v; want %d, nil", tc.user, got, err, faultrig.Key(1, 2))
		}
		client.Close()
	}
}

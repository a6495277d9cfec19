package faultrig

import (
	"testing"

	"github.com/amqprpc/amqprpc"
	"github.com/amqprpc/amqprpc/internal/rabbitnodes"
)

// Scenarios runs the fault scenarios on c, each a subtest of t: kill -9 of
// the node holding the queue's leader, of a node with only a client, of a
// node with a server; a rolling restart of the three nodes with clients in
// both reply modes. With store, every server of every rig keeps its
// replies in it, and suffix ends every title.
func Scenarios(t *testing.T, c *rabbitnodes.Cluster, store amqprpc.ReplyStore, suffix string) {
	n1, n2, n3 := c.Nodes[0], c.Nodes[1], c.Nodes[2]
	spec := func(title string) Spec { return Spec{Title: "cluster: " + title + suffix, Store: store} }

	t.Run("leader-killed", func(t *testing.T) {
		sc := newScenario(t, c, spec("kill -9 of the node holding the quorum queue's leader (and a server and a client), 32 callers"))
		sc.run(t, func() {
			r := sc.rigs[0]
			leader := c.Leader(t, r.queue)
			if leader != n1 {
				t.Fatalf("leader of %q on %v; want node 1, where it was declared", r.queue, leader)
			}
			sc.kill(t, leader)
			var elected *rabbitnodes.Node
			wait(t, recovery, "a new leader", func() bool {
				elected = c.Leader(t, r.queue)
				return elected != nil && elected != leader
			})
			t.Logf("new leader on %v", elected)
			sc.restart(t, leader)
		})
	})
	t.Run("client-node-killed", func(t *testing.T) {
		sc := newScenario(t, c, spec("kill -9 of the node one client is connected to, 32 callers"))
		sc.run(t, func() {
			sc.kill(t, n3)
			sc.restart(t, n3)
		})
	})
	t.Run("server-node-killed", func(t *testing.T) {
		sc := newScenario(t, c, spec("kill -9 of the node one server is connected to (and a client), 32 callers"))
		sc.run(t, func() {
			sc.kill(t, n2)
			sc.restart(t, n2)
		})
	})
	// Both reply modes under one rolling restart, each with its own queue,
	// servers, clients and 32 callers: a restart takes 10 to 20 s here.
	t.Run("rolling-restart", func(t *testing.T) {
		direct := spec("rolling restart of the 3 nodes, direct reply-to, 32 callers (with the row above at once)")
		direct.DirectReplyTo = true
		sc := newScenario(t, c, spec("rolling restart of the 3 nodes, private reply queues, 32 callers (with the next row at once)"), direct)
		sc.run(t, func() {
			for _, nd := range c.Nodes {
				sc.restart(t, nd)
			}
		})
	})
}

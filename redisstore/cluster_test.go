package redisstore_test

import (
	"testing"

	"github.com/amqprpc/amqprpc/internal/faultrig"
	"github.com/amqprpc/amqprpc/internal/rabbitnodes"
	"github.com/amqprpc/amqprpc/redisstore"
)

// TestCluster runs the cluster scenarios of the root package's TestCluster
// (internal/faultrig: nodes killed and restarted under load) with the
// servers' replies in a Redis reply store: a request the broker delivers
// again is answered from the store, and no call runs more than once but
// one cut off mid-run. Its REDELIVERY lines are the README's cluster table
// with the store (scripts/reliability-table.sh).
//
//	CI=1 go test -race -count=1 -run TestCluster -v .
func TestCluster(t *testing.T) {
	rdb := client(t)
	c := rabbitnodes.StartCluster(t, 3)
	faultrig.Scenarios(t, c, redisstore.New(rdb), ", Redis reply store")
}

// TestBrokerFaults runs the single broker node's faults of the root
// package's TestBrokerFaults (internal/faultrig) with the server's replies
// in a Redis reply store.
//
//	CI=1 go test -race -count=1 -run TestBrokerFaults -v .
func TestBrokerFaults(t *testing.T) {
	faultrig.BrokerFaults(t, redisstore.New(client(t)), ", Redis reply store")
}

package redisstore_test

import (
	"os"
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
//	AMQPRPC_STORE_FAULTS=1 CI=1 go test -race -count=1 -run TestCluster -v .
func TestCluster(t *testing.T) {
	faultsWanted(t)
	rdb := client(t)
	c := rabbitnodes.StartCluster(t, 3)
	faultrig.Scenarios(t, c, redisstore.New(rdb), ", Redis reply store")
}

// TestBrokerFaults runs the single broker node's faults of the root
// package's TestBrokerFaults (internal/faultrig) with the server's replies
// in a Redis reply store.
//
//	AMQPRPC_STORE_FAULTS=1 CI=1 go test -race -count=1 -run TestBrokerFaults -v .
func TestBrokerFaults(t *testing.T) {
	faultsWanted(t)
	faultrig.BrokerFaults(t, redisstore.New(client(t)), ", Redis reply store")
}

// faultsWanted skips the test unless AMQPRPC_STORE_FAULTS is set: the
// scenarios take about 8 minutes here, which make test cannot spare, and
// the root package's tests run the same scenarios without a store. make
// reliability (scripts/reliability-table.sh) sets it.
func faultsWanted(t *testing.T) {
	if os.Getenv("AMQPRPC_STORE_FAULTS") == "" {
		t.Skip("set AMQPRPC_STORE_FAULTS=1 (make reliability does) to run the fault scenarios with the Redis store")
	}
}

package amqprpc_test

import (
	"testing"

	"github.com/amqprpc/amqprpc/internal/faultrig"
)

// TestBrokerFaults runs the broker faults of a single private node under
// load (internal/faultrig): stop_app and start_app, kill -9 and restart,
// the client's and then the server's connection closed by the broker, a
// memory alarm. The client and server must come back by themselves from
// each. The redisstore module's TestBrokerFaults runs them again with a
// reply store.
//
//	CI=1 go test -race -count=1 -run TestBrokerFaults -v .
func TestBrokerFaults(t *testing.T) {
	faultrig.BrokerFaults(t, nil, "")
}

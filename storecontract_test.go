package amqprpc_test

import (
	"testing"

	"github.com/amqprpc/amqprpc"
	"github.com/amqprpc/amqprpc/storetest"
)

// TestMemoryStoreContract runs the reply store contract on MemoryStore.
func TestMemoryStoreContract(t *testing.T) {
	t.Parallel()
	storetest.Run(t, func(*testing.T) amqprpc.ReplyStore { return amqprpc.NewMemoryStore(0) })
}

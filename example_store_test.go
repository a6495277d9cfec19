package amqprpc_test

import (
	"context"
	"log"
	"net/rpc"
	"os"
	"os/signal"
	"time"

	"github.com/amqprpc/amqprpc"
)

// A server that answers a request delivered again (its first server died
// after replying, before acknowledging) with the reply it already sent.
// NewMemoryStore covers one process; for every instance of a service, use
// a store they share, such as the module redisstore's.
func ExampleWithReplyStore() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt)
	defer stop()
	srv := rpc.NewServer()
	if err := srv.Register(new(Arith)); err != nil {
		log.Fatal(err)
	}
	store := amqprpc.NewMemoryStore(64 << 20) // 64 MiB of replies at most
	err := amqprpc.Serve(ctx, srv, "amqp://guest:guest@localhost:5672/", "arith",
		amqprpc.WithReplyStore(store, time.Minute)) // at least the callers' call timeout
	if err != nil {
		log.Fatal(err)
	}
}

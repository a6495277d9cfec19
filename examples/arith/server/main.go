// Command server serves net/rpc's Arith example on the RabbitMQ queue
// "arith" until interrupted. Over TCP it would be rpc.Accept(listener);
// here the only change is the amqprpc.Serve line.
package main

import (
	"context"
	"flag"
	"log"
	"net/rpc"
	"os"
	"os/signal"
	"syscall"
	"time"

	"github.com/amqprpc/amqprpc"
	"github.com/amqprpc/amqprpc/examples/arith/arith"
)

func main() {
	url := flag.String("url", envOr("AMQP_URL", "amqp://guest:guest@127.0.0.1:5672/"), "broker URL")
	queue := flag.String("queue", "arith", "service queue")
	expiry := flag.Duration("expiry", 10*time.Second, "the broker deletes the queue once it has had no server this long (0: keep it)")
	flag.Parse()

	if err := rpc.Register(new(arith.Arith)); err != nil {
		log.Fatal(err)
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	log.Printf("arith server: serving queue %q (Ctrl-C to stop)", *queue)
	var opts []amqprpc.ServerOption
	if *expiry > 0 {
		opts = append(opts, amqprpc.WithQueueExpiry(*expiry))
	}
	if err := amqprpc.Serve(ctx, nil, *url, *queue, opts...); err != nil {
		log.Fatal(err)
	}
	log.Print("arith server: stopped after finishing the calls in flight")
}

func envOr(key, def string) string {
	if v := os.Getenv(key); v != "" {
		return v
	}
	return def
}

// Command conformance serves the conformance service of docs/PROTOCOL.md
// (§9) on a queue with amqprpc, until interrupted, for `amqprpc conform
// server` to check:
//
//	go run ./examples/conformance -queue conformance &
//	amqprpc conform server conformance
package main

import (
	"cmp"
	"context"
	"flag"
	"log"
	"os"
	"os/signal"
	"syscall"
	"time"

	"github.com/amqprpc/amqprpc"
	"github.com/amqprpc/amqprpc/examples/conformance/service"
)

func main() {
	url := flag.String("url", cmp.Or(os.Getenv("AMQP_URL"), "amqp://guest:guest@127.0.0.1:5672/"), "broker URL")
	queue := flag.String("queue", "conformance", "service queue")
	expiry := flag.Duration("expiry", 10*time.Second, "the broker deletes the queue once it has had no server this long (0: keep it)")
	flag.Parse()

	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	var opts []amqprpc.ServerOption
	if *expiry > 0 {
		opts = append(opts, amqprpc.WithQueueExpiry(*expiry))
	}
	log.Printf("conformance server: serving queue %q with prefetch %d and default method %s (Ctrl-C to stop)",
		*queue, service.Prefetch, service.DefaultMethod)
	if err := service.Serve(ctx, *url, *queue, opts...); err != nil {
		log.Fatal(err)
	}
	log.Print("conformance server: stopped")
}
